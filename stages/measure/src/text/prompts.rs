//! The text prompts of a cell whose boundary includes tokenisation: read
//! from a user's JSONL file, or generated from a word list to an exact
//! token length with the model's tokenizer.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::ModelTokenizer;

/// A line of a prompts file that is not a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptFileError {
    /// 1-based line of the file.
    pub line: usize,
    pub message: String,
}

/// The prompts of a JSONL file: one JSON object per line with a non-empty
/// string `prompt` (other fields are ignored); blank lines are skipped. At
/// least one prompt is required.
pub fn parse_jsonl(bytes: &[u8]) -> Result<Vec<String>, PromptFileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        PromptFileError {
            line,
            message: "not UTF-8 text".into(),
        }
    })?;
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| PromptFileError {
            line: i + 1,
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
        let prompt = match value.get("prompt") {
            _ if !value.is_object() => {
                return Err(bad(r#"expected an object {"prompt": "..."}"#.into()));
            }
            None => return Err(bad("missing the string field \"prompt\"".into())),
            Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
                return Err(bad("\"prompt\" is empty".into()));
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(bad(format!("\"prompt\" must be a string, not {other}")));
            }
        };
        prompts.push(prompt);
    }
    if prompts.is_empty() {
        return Err(PromptFileError {
            line: 1,
            message: "no prompts: one JSON object {\"prompt\": \"...\"} per line".into(),
        });
    }
    Ok(prompts)
}

/// A cell's text prompts, one per sequence of the batch, and what the
/// model's tokenizer made of them before the timed region (the manifest's
/// record of the prompts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellPromptTexts {
    /// `generated` or `file`.
    pub source: String,
    pub texts: Vec<String>,
    /// Tokens each text encodes to (before the cut to `prompt_tokens`).
    pub tokens: Vec<u32>,
    /// The scenario's `prompt_tokens`, which a generated prompt hits
    /// exactly unless `tokens` says otherwise (the nearest achievable).
    pub requested: u32,
}

/// Common English words: each one token, or a few, in the usual
/// vocabularies.
const WORDS: [&str; 48] = [
    "the", "time", "people", "way", "day", "man", "thing", "woman", "life", "child", "world",
    "school", "state", "family", "group", "country", "problem", "hand", "part", "place", "case",
    "week", "company", "system", "program", "question", "work", "number", "night", "point", "home",
    "water", "room", "mother", "area", "money", "story", "fact", "month", "lot", "right", "study",
    "book", "eye", "job", "word", "business", "issue",
];

/// At most this many vocabulary pieces are tried as words when the model's
/// tokenizer knows none of [`WORDS`] (a synthetic vocabulary).
const MAX_PIECES: usize = 512;

/// The words a prompt is made of, with what each costs in tokens: the
/// English words the tokenizer knows (none of their tokens unknown), else
/// the vocabulary's own pieces that read back as themselves (a synthetic
/// vocabulary of `▁t300` pieces). Deterministic for a tokenizer.
pub fn word_list(tok: &ModelTokenizer) -> Result<Vec<(String, usize)>, String> {
    let unknown = tok.unknown();
    // Cost of a word after a space: what it adds to a prompt.
    let cost = |w: &str| -> Result<Option<usize>, String> {
        let ids = tok.encode(w)?;
        let known = !ids.is_empty() && !ids.iter().any(|id| Some(*id) == unknown);
        Ok(known.then_some(ids.len()))
    };
    let base = tok.encode("")?.len();
    let mut words = Vec::new();
    for w in WORDS {
        if let Some(c) = cost(w)? {
            words.push((w.to_string(), c.saturating_sub(base).max(1)));
        }
    }
    if words.is_empty() {
        for (id, piece) in tok.pieces() {
            if words.len() == MAX_PIECES {
                break;
            }
            if piece.chars().any(char::is_whitespace) {
                continue;
            }
            let ids = tok.encode(&piece)?;
            if ids.len() == base + 1 && ids.contains(&id) && Some(id) != unknown {
                words.push((piece, 1));
            }
        }
    }
    if words.is_empty() {
        return Err("the model's tokenizer knows none of the prompt words".into());
    }
    Ok(words)
}

/// A prompt of `target` tokens with the model's tokenizer (its special
/// tokens included), words drawn from `words` by a generator seeded from
/// `seed` and `sequence`. Returns the text and its token count, which is
/// `target` unless no combination of the words reaches it (then the
/// nearest below it, or the single shortest word above it).
pub fn generate(
    tok: &ModelTokenizer,
    words: &[(String, usize)],
    target: u32,
    seed: u64,
    sequence: u32,
) -> Result<(String, u32), String> {
    let target = target as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (u64::from(sequence) << 32 | 0x5eed));
    let base = tok.encode("")?.len();
    let mut parts: Vec<&str> = Vec::new();
    let mut estimate = base;
    // Words add their own cost under whitespace pre-tokenizers; the count
    // of the whole text is checked (and corrected) below.
    while estimate < target {
        let room = target - estimate;
        let start = rng.random_range(0..words.len());
        let fits = (0..words.len())
            .map(|k| &words[(start + k) % words.len()])
            .find(|(_, c)| *c <= room);
        let Some((w, c)) = fits else { break };
        parts.push(w);
        estimate += c;
    }
    let count =
        |parts: &[&str]| -> Result<usize, String> { Ok(tok.encode(&parts.join(" "))?.len()) };
    let mut n = count(&parts)?;
    // A tokenizer that merges across words: trim while over, then top up
    // with the cheapest word while under, a bounded number of times.
    let cheapest = words
        .iter()
        .min_by_key(|(_, c)| *c)
        .map(|(w, _)| w.as_str());
    for _ in 0..64 {
        if n > target && parts.len() > 1 {
            parts.pop();
        } else if n < target
            && let Some(w) = cheapest
        {
            parts.push(w);
            let m = count(&parts)?;
            if m > target {
                parts.pop();
                break;
            }
        } else {
            break;
        }
        n = count(&parts)?;
    }
    if parts.is_empty()
        && let Some(w) = cheapest
    {
        parts.push(w);
        n = count(&parts)?;
    }
    Ok((parts.join(" "), n as u32))
}
