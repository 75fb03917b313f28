//! Chat templates render and tokenize exactly as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True, tokenize=True)`:
//! fixtures/chat/expected.json (written by tools/make_chat_fixtures.py with
//! transformers) holds the text and ids for a Qwen3-style, a Llama-3-style
//! and an unusual template, with `enable_thinking` unset, true and false.

use std::path::{Path, PathBuf};

use rhythm_model::{ChatMode, ChatSettings, ChatTemplate, Prompt, RenderOptions};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn templates_match_transformers_token_for_token() {
    let text = std::fs::read_to_string(root().join("fixtures/chat/expected.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut dirs = std::collections::BTreeSet::new();
    for case in cases {
        let dir = root().join(case["dir"].as_str().unwrap());
        dirs.insert(dir.clone());
        let template = ChatTemplate::from_dir(&dir).unwrap().expect("a template");
        let tokenizer = rhythm_model::load_tokenizer(&dir.join("tokenizer.json")).unwrap();
        let opts = RenderOptions {
            add_generation_prompt: true,
            enable_thinking: case["enable_thinking"].as_bool(),
        };
        let label = format!(
            "{} / {} / enable_thinking={}",
            case["dir"], case["conversation"], case["enable_thinking"]
        );
        let rendered = template
            .render(case["messages"].as_array().unwrap(), &opts)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(rendered, case["text"].as_str().unwrap(), "{label}");
        let ids: Vec<u32> = tokenizer
            .encode(rendered.as_str(), false)
            .unwrap()
            .get_ids()
            .to_vec();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, want, "{label}");
    }
    assert_eq!(dirs.len(), 3);
}

#[test]
fn the_model_path_matches_too() {
    // Through Pretrained and ChatSettings, as the commands use it.
    let text = std::fs::read_to_string(root().join("fixtures/chat/expected.json")).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let dir = root().join("fixtures/models/tiny-qwen3-chat");
    let model = rhythm_model::Pretrained::load(&dir).unwrap();
    let mut checked = 0;
    for case in expected["cases"].as_array().unwrap() {
        if case["dir"] != "fixtures/models/tiny-qwen3-chat" {
            continue;
        }
        let settings = ChatSettings {
            chat_template: ChatMode::Auto,
            enable_thinking: case["enable_thinking"].as_bool(),
        };
        let prompt = Prompt::from_json(&case["messages"]).unwrap();
        let ids = settings.encode(&model, &prompt).unwrap();
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
        assert_eq!(ids, want);
        checked += 1;
    }
    assert_eq!(checked, 12);
    // `on` wraps plain text as one user message; `auto` leaves it alone.
    let on = ChatSettings {
        chat_template: ChatMode::On,
        enable_thinking: None,
    };
    let text_ids = on
        .encode(&model, &Prompt::Text("what is 2+3?".into()))
        .unwrap();
    let messages =
        Prompt::from_json(&serde_json::json!([{"role": "user", "content": "what is 2+3?"}]))
            .unwrap();
    assert_eq!(
        text_ids,
        ChatSettings::default().encode(&model, &messages).unwrap()
    );
    let plain = ChatSettings::default()
        .encode(&model, &Prompt::Text("what is 2+3?".into()))
        .unwrap();
    assert_eq!(plain, model.encode("what is 2+3?").unwrap());
    assert!(plain.len() < text_ids.len());
    // `off` refuses a message list; a model without a template cannot render one.
    let off = ChatSettings {
        chat_template: ChatMode::Off,
        enable_thinking: None,
    };
    let e = off.encode(&model, &messages).unwrap_err().to_string();
    assert!(e.contains("list of messages"), "{e}");
    let bare = rhythm_model::Pretrained::load(root().join("fixtures/models/tiny-qwen3")).unwrap();
    let e = ChatSettings::default()
        .encode(&bare, &messages)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tiny-qwen3/chat_template.jinja: file not found (expected a chat template"),
        "{e}"
    );
}

#[test]
fn bad_template_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
    // No template at all.
    write("tokenizer_config.json", r#"{"eos_token": "x"}"#);
    assert!(ChatTemplate::from_dir(dir).unwrap().is_none());
    // A list without "default".
    write(
        "tokenizer_config.json",
        r#"{"chat_template": [{"name": "tool_use", "template": "x"}]}"#,
    );
    let e = ChatTemplate::from_dir(dir).unwrap_err().to_string();
    assert!(e.contains("tokenizer_config.json: field `chat_template`: a list of named templates without \"default\" (found tool_use)"), "{e}");
    // A number.
    write("tokenizer_config.json", r#"{"chat_template": 3}"#);
    let e = ChatTemplate::from_dir(dir).unwrap_err().to_string();
    assert!(e.contains("expected a string or a list"), "{e}");
    // A bad bos_token.
    write(
        "tokenizer_config.json",
        r#"{"bos_token": 5, "chat_template": "x"}"#,
    );
    let e = ChatTemplate::from_dir(dir).unwrap_err().to_string();
    assert!(
        e.contains("field `bos_token`: expected a string or an AddedToken object, found a number"),
        "{e}"
    );
    // Invalid JSON.
    write("tokenizer_config.json", "{");
    let e = ChatTemplate::from_dir(dir).unwrap_err().to_string();
    assert!(e.contains("tokenizer_config.json: invalid JSON"), "{e}");
    // A .jinja file with a syntax error wins over the config and is named.
    write("tokenizer_config.json", r#"{"chat_template": "ok"}"#);
    write("chat_template.jinja", "{% for m in messages %}{{ m.role }");
    let e = ChatTemplate::from_dir(dir).unwrap_err().to_string();
    assert!(
        e.contains("chat_template.jinja: field `chat_template`: cannot compile: syntax error"),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
    // A template that fails while rendering.
    write(
        "chat_template.jinja",
        "{{ messages[0].content.upper() + 1 }}",
    );
    let t = ChatTemplate::from_dir(dir).unwrap().unwrap();
    let e = t
        .render(
            &[serde_json::json!({"role": "user", "content": "x"})],
            &RenderOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("chat_template.jinja: field `chat_template`: cannot render: "),
        "{e}"
    );
    assert!(!e.contains('\n'), "{e}");
}
