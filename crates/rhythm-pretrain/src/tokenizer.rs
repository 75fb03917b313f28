//! The character-level Countdown tokenizer, written as a Hugging Face
//! `tokenizer.json`.
//!
//! Words of lowercase letters (`nums`, `target`, `no`) are one token each;
//! every other character (digits, `+ - * / ( ) = :`, space, newline) is its
//! own token; the tags `<think>`, `</think>`, `<answer>`, `</answer>` and
//! `<|endoftext|>` (end of text and padding, id 0) are added tokens. The
//! file uses only standard components (a `WordLevel` model, a regex `Split`
//! pre-tokenizer and the `Fuse` decoder), so transformers loads it with
//! `PreTrainedTokenizerFast(tokenizer_file=...)`.

use std::path::Path;

use serde_json::{json, Value};
use tokenizers::Tokenizer;

use super::trace::EOS;

/// Added tokens in id order (id 0 is end of text and padding).
pub const ADDED: [&str; 5] = [EOS, "<think>", "</think>", "<answer>", "</answer>"];

/// The unknown-word token.
pub const UNK: &str = "<unk>";

/// Every token in id order.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = ADDED.iter().map(|s| s.to_string()).collect();
    v.push(UNK.into());
    v.extend((0..10).map(|d| d.to_string()));
    v.extend(
        ["+", "-", "*", "/", "(", ")", "=", ":", " ", "\n"]
            .iter()
            .map(|s| s.to_string()),
    );
    v.extend(["nums", "target", "no"].iter().map(|s| s.to_string()));
    v
}

/// The `tokenizer.json` document.
pub fn tokenizer_json() -> Value {
    let vocab = vocabulary();
    let added: Vec<Value> = ADDED
        .iter()
        .enumerate()
        .map(|(id, s)| {
            json!({
                "id": id, "content": s, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": *s == EOS,
            })
        })
        .collect();
    let map: serde_json::Map<String, Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), json!(i)))
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": "[a-z]+|[^a-z]"},
            "behavior": "Isolated",
            "invert": false
        },
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": map, "unk_token": UNK}
    })
}

/// The tokenizer, built from [`tokenizer_json`].
pub fn build() -> Tokenizer {
    let text = tokenizer_json().to_string();
    text.parse::<Tokenizer>()
        .expect("the built-in tokenizer.json is valid")
}

/// Writes `tokenizer.json` (plus `tokenizer_config.json` naming the
/// special tokens for transformers) into `dir`.
pub fn save(dir: &Path) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&tokenizer_json()).expect("serializes");
    std::fs::write(dir.join("tokenizer.json"), text)?;
    let cfg = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "pad_token": EOS,
        "unk_token": UNK,
        "model_max_length": 1_000_000,
        "clean_up_tokenization_spaces": false,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&cfg).expect("serializes"),
    )
}
