//! Text inside the boundary (`boundary.tokenization: included`): the
//! model's own tokenizer through the `tokenizers` crate, the text prompts a
//! cell sends (`prompts.rs`), and the `texts` table of what came back.
//!
//! The harness times the tokenizer (`harness::TextCodec`); this module
//! only knows how to find it, load it and run it.

pub mod prompts;
#[cfg(test)]
mod tests;

use std::path::Path;

use serde_json::Value;

use crate::harness::{BackendError, TextCodec};
use assay_core::domain::{FileRole, ModelSource};
use assay_core::stage::{StageContext, StageError};
use assay_model::prepare::ModelRecord;

/// The row type lives in core's tables with every other stored row; its
/// old path stays for the code and tests that name it here.
pub use assay_core::tables::TextRow;

/// A model's tokenizer, loaded from its `tokenizer.json`.
pub struct ModelTokenizer {
    inner: tokenizers::Tokenizer,
}

impl ModelTokenizer {
    pub fn from_json(json: &str) -> Result<Self, String> {
        tokenizers::Tokenizer::from_bytes(json.as_bytes())
            .map(|inner| ModelTokenizer { inner })
            .map_err(|e| format!("tokenizer.json does not load: {e}"))
    }

    /// The ids a service would feed the model: the tokenizer's own special
    /// tokens (a BOS from its post-processor) included.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        self.inner
            .encode(text, true)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenizer: {e}"))
    }

    /// Special tokens are kept: a generation that picked one must still
    /// read back as the ids it was.
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| format!("tokenizer: {e}"))
    }

    /// The vocabulary, ordered by id, without the added (special) tokens.
    pub fn pieces(&self) -> Vec<(u32, String)> {
        let mut v: Vec<(u32, String)> = self
            .inner
            .get_vocab(false)
            .into_iter()
            .map(|(piece, id)| (id, piece))
            .collect();
        let added = self.inner.get_added_tokens_decoder();
        v.retain(|(id, _)| !added.contains_key(id));
        v.sort();
        v
    }

    /// The id of the unknown token, if the model has one.
    pub fn unknown(&self) -> Option<u32> {
        ["<unk>", "[UNK]", "<|unk|>"]
            .iter()
            .find_map(|t| self.inner.token_to_id(t))
    }
}

/// The harness's view of a tokenizer: parsed inside the timed `load`
/// phase (a service initialises its tokenizer with its model).
pub struct Codec {
    json: String,
    loaded: Option<ModelTokenizer>,
}

impl Codec {
    pub fn new(json: String) -> Self {
        Codec { json, loaded: None }
    }

    fn tokenizer(&self) -> Result<&ModelTokenizer, BackendError> {
        self.loaded.as_ref().ok_or(BackendError::NotLoaded)
    }
}

impl TextCodec for Codec {
    fn load(&mut self) -> Result<(), BackendError> {
        self.loaded = Some(ModelTokenizer::from_json(&self.json).map_err(BackendError::Weights)?);
        Ok(())
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, BackendError> {
        self.tokenizer()?
            .encode(text)
            .map_err(BackendError::Library)
    }

    fn decode(&self, ids: &[u32]) -> Result<String, BackendError> {
        self.tokenizer()?.decode(ids).map_err(BackendError::Library)
    }
}

/// The tokenizer a prepared model runs with, as JSON text: its
/// `tokenizer.json` (a stored object for a synthetic model, a file beside
/// a local checkpoint's weights).
///
/// A synthetic checkpoint's file (prepare version 1) pairs a `Whitespace`
/// pre-tokenizer with SentencePiece-style pieces (`▁t300`): `Whitespace`
/// splits `▁` from `t300`, so no piece of its own vocabulary reads back and
/// every word is `<unk>`. The stored file is left as it is (it is in every
/// prepare and measure key of existing stores); the synthetic tokenizer
/// that runs is that file with `WhitespaceSplit`, under which every id
/// round-trips. The manifest records the digest of what ran.
pub fn tokenizer_json(ctx: &StageContext<'_>, record: &ModelRecord) -> Result<String, StageError> {
    let file = record
        .files
        .iter()
        .find(|f| f.role() == Some(FileRole::Tokenizer))
        .ok_or_else(|| {
            StageError::Failed(format!(
                "model {} has no tokenizer.json: boundary.tokenization: included needs the model's tokenizer",
                record.info.name
            ))
        })?;
    let text = match &file.path {
        Some(path) => std::fs::read_to_string(Path::new(path))
            .map_err(|e| StageError::Failed(format!("{path}: {e}")))?,
        None => {
            let digest = file
                .blake3
                .parse()
                .map_err(|e| StageError::Failed(format!("tokenizer digest: {e}")))?;
            let bytes = ctx.store.get(&digest)?;
            String::from_utf8(bytes)
                .map_err(|e| StageError::Failed(format!("tokenizer.json is not UTF-8: {e}")))?
        }
    };
    if record.source() == Some(ModelSource::Synthetic) {
        return synthetic_text_tokenizer(&text);
    }
    Ok(text)
}

/// The synthetic tokenizer with the pre-tokenizer its pieces need.
pub(crate) fn synthetic_text_tokenizer(stored: &str) -> Result<String, StageError> {
    let mut json: Value = serde_json::from_str(stored)
        .map_err(|e| StageError::Failed(format!("synthetic tokenizer.json: {e}")))?;
    json["pre_tokenizer"] = serde_json::json!({ "type": "WhitespaceSplit" });
    serde_json::to_string(&json).map_err(|e| StageError::Failed(e.to_string()))
}
