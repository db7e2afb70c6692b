//! Prompt generation and the prompts file, on the synthetic tokenizer and
//! on a small English one with a BOS post-processor.

use super::prompts::{generate, parse_jsonl, word_list};
use super::*;

/// The tokenizer a synthetic model runs with, as measure builds it.
fn synthetic(vocab: u32) -> ModelTokenizer {
    let stored = assay_model::prepare::synthetic::tokenizer_json(vocab).to_string();
    ModelTokenizer::from_json(&synthetic_text_tokenizer(&stored).unwrap()).unwrap()
}

/// English words, whitespace-split, a BOS prepended by the post-processor
/// (as Llama's tokenizers do).
fn english() -> ModelTokenizer {
    let words = [
        "the", "time", "people", "way", "day", "man", "thing", "woman", "life", "child",
    ];
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    vocab.insert("<s>".into(), 1.into());
    for (i, w) in words.iter().enumerate() {
        vocab.insert((*w).into(), (i + 2).into());
    }
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
        ],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    });
    ModelTokenizer::from_json(&json.to_string()).unwrap()
}

#[test]
fn the_stored_synthetic_tokenizer_cannot_read_its_own_pieces_the_one_that_runs_can() {
    let stored = assay_model::prepare::synthetic::tokenizer_json(300).to_string();
    let raw = ModelTokenizer::from_json(&stored).unwrap();
    // `Whitespace` splits `▁` from `t299`: both unknown.
    assert!(
        raw.encode("\u{2581}t299")
            .unwrap()
            .iter()
            .all(|id| *id == 0)
    );
    let tok = synthetic(300);
    assert_eq!(tok.encode("\u{2581}t299").unwrap(), vec![299]);
    // Every id, specials and byte tokens included, reads back as itself.
    let ids: Vec<u32> = (0..300).collect();
    let text = tok.decode(&ids).unwrap();
    assert_eq!(tok.encode(&text).unwrap(), ids);
}

#[test]
fn generated_prompts_have_exactly_the_requested_tokens() {
    for (name, tok) in [("synthetic", synthetic(300)), ("english", english())] {
        let words = word_list(&tok).unwrap();
        for target in [2, 7, 64, 300] {
            for seq in 0..3 {
                let (text, n) = generate(&tok, &words, target, 11, seq).unwrap();
                assert_eq!(n, target, "{name}: {target} tokens for sequence {seq}");
                assert_eq!(tok.encode(&text).unwrap().len() as u32, target, "{name}");
            }
        }
    }
}

#[test]
fn generated_prompts_are_a_function_of_seed_and_sequence() {
    let tok = synthetic(300);
    let words = word_list(&tok).unwrap();
    let a = generate(&tok, &words, 32, 5, 0).unwrap();
    assert_eq!(a, generate(&tok, &words, 32, 5, 0).unwrap());
    assert_ne!(a.0, generate(&tok, &words, 32, 6, 0).unwrap().0);
    assert_ne!(a.0, generate(&tok, &words, 32, 5, 1).unwrap().0);
    // English words where the tokenizer knows them; never the unknown token.
    let tok = english();
    let words = word_list(&tok).unwrap();
    assert!(
        words
            .iter()
            .all(|(w, c)| *c == 1 && w.chars().all(|c| c.is_ascii_lowercase()))
    );
    let (text, _) = generate(&tok, &words, 20, 5, 0).unwrap();
    assert!(!tok.encode(&text).unwrap().contains(&0));
}

#[test]
fn a_target_below_what_any_word_costs_gives_the_nearest_achievable() {
    // With a BOS, one token is the BOS alone: the shortest prompt is one
    // word, two tokens, and the count says so.
    let tok = english();
    let words = word_list(&tok).unwrap();
    let (text, n) = generate(&tok, &words, 1, 0, 0).unwrap();
    assert_eq!(n, 2);
    assert_eq!(tok.encode(&text).unwrap().len(), 2);
}

#[test]
fn prompts_files_are_read_line_by_line() {
    let file = b"{\"prompt\": \"first\"}\n\n{\"prompt\": \"second\", \"id\": 7}\n";
    assert_eq!(parse_jsonl(file).unwrap(), ["first", "second"]);
}

#[test]
fn a_malformed_prompts_file_says_which_line() {
    let cases: [(&[u8], usize, &str); 7] = [
        (
            b"{\"prompt\": \"ok\"}\n{\"prompt\": \"ok\"\n",
            2,
            "not JSON",
        ),
        (
            b"{\"prompt\": \"ok\"}\n\n[\"a list\"]\n",
            3,
            "expected an object",
        ),
        (b"{\"text\": \"x\"}\n", 1, "missing the string field"),
        (b"{\"prompt\": 3}\n", 1, "must be a string"),
        (b"{\"prompt\": \"  \"}\n", 1, "is empty"),
        (b"\n\n", 1, "no prompts"),
        (
            b"{\"prompt\": \"ok\"}\n{\"prompt\": \"\xff\"}\n",
            2,
            "not UTF-8",
        ),
    ];
    for (bytes, line, message) in cases {
        let e = parse_jsonl(bytes).unwrap_err();
        assert_eq!(e.line, line, "{e:?}");
        assert!(e.message.contains(message), "{e:?}");
    }
}
