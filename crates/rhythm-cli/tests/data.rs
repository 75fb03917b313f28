//! Users' own models and data: a chat checkpoint's template applied to
//! conversational rows, parquet and JSONL giving the same prompts, rewards
//! and first training step, and one-line errors for bad templates, missing
//! fields, wrong column types and corrupt parquet files.

use std::path::PathBuf;

mod common;
use common::{rhythm, root};

fn chat_model() -> PathBuf {
    root().join("fixtures/models/tiny-qwen3-chat")
}

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/data").join(name)
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A one-line error with exit code 2 that contains every `want`.
fn assert_one_line_error(args: &[&str], wants: &[&str]) {
    let (code, _, err) = rhythm(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    for want in wants {
        assert!(err.contains(want), "{args:?}: {err} lacks {want}");
    }
}

fn eval_json(dataset: &std::path::Path) -> serde_json::Value {
    let m = chat_model();
    let (code, out, err) = rhythm(&[
        "eval",
        "--model",
        s(&m),
        "--task",
        "math",
        "--dataset",
        s(dataset),
        "--max-new-tokens",
        "6",
        "--k",
        "2",
        "--temperature",
        "1.0",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_object_mut().unwrap().remove("model");
    v
}

#[test]
fn parquet_and_jsonl_give_the_same_prompts_rewards_and_first_step() {
    let parquet = fixture("conversational.parquet");
    let jsonl = fixture("conversational.jsonl");
    // Same prompts, responses and rewards (greedy and sampled).
    let a = eval_json(&parquet);
    let b = eval_json(&jsonl);
    assert_eq!(a["n"], 8);
    assert_eq!(a, b);
    // The prompts are the conversations without their final assistant turn.
    assert_eq!(
        a["instances"][0]["task"]["prompt"],
        serde_json::json!([
            {"role": "system", "content": "think, then give the answer in a box."},
            {"role": "user", "content": "what is 2+3?"}
        ])
    );
    // The same first step of `rhythm train` (same seed).
    let tmp = tempfile::tempdir().unwrap();
    let m = chat_model();
    let mut runs = Vec::new();
    for (name, data) in [("p", &parquet), ("j", &jsonl)] {
        let out = tmp.path().join(name);
        let (code, _, err) = rhythm(&[
            "train",
            "--model",
            s(&m),
            "--task",
            "math",
            "--dataset",
            s(data),
            "--steps",
            "1",
            "--prompts-per-batch",
            "4",
            "--group-size",
            "2",
            "--max-new-tokens",
            "6",
            "--lr",
            "0.01",
            "--save-interval",
            "1",
            "--out",
            s(&out),
            "--no-progress",
        ]);
        assert_eq!(code, 0, "{err}");
        let line = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        o.retain(|k, _| !k.ends_with("_s"));
        let weights = std::fs::read(out.join("checkpoint-000001/model.safetensors")).unwrap();
        runs.push((v, weights));
    }
    assert_eq!(runs[0].0, runs[1].0);
    assert!(runs[0].0["gen_tokens"].as_u64().unwrap() > 0);
    assert!(runs[0].1 == runs[1].1, "weights after step 1 differ");
}

#[test]
fn conversational_rows_go_through_the_chat_template() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("a");
    let m = chat_model();
    let (code, _, err) = rhythm(&[
        "analyze",
        "--model",
        s(&m),
        "--input",
        s(&fixture("conversational.parquet")),
        "--max-new-tokens",
        "6",
        "--enable-thinking",
        "false",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap()).unwrap();
    let first = &doc["responses"][0];
    let prompt: String = first["prompt_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        prompt,
        "<|im_start|>system\nthink, then give the answer in a box.<|im_end|>\n\
         <|im_start|>user\nwhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    // The final assistant message is the analysed response.
    assert_eq!(first["response"], "so 2+3=5.");
    assert_eq!(first["generated"], false);
    assert!(first["origin"]
        .as_str()
        .unwrap()
        .ends_with("conversational.parquet: row 1"));
    // Plain text stays plain unless --chat-template on.
    for (mode, templated) in [("auto", false), ("on", true)] {
        let out = tmp.path().join(mode);
        let (code, _, err) = rhythm(&[
            "analyze",
            "--model",
            s(&m),
            "--prompt",
            "what is 2+3?",
            "--response",
            "5",
            "--chat-template",
            mode,
            "--out",
            s(&out),
        ]);
        assert_eq!(code, 0, "{err}");
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap())
                .unwrap();
        let first = doc["responses"][0]["prompt_tokens"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(first == "<|im_start|>", templated, "{mode}: {first}");
    }
    // --chat-template off refuses a conversation.
    assert_one_line_error(
        &[
            "stats",
            "--model",
            s(&m),
            "--input",
            s(&fixture("conversational.jsonl")),
            "--chat-template",
            "off",
        ],
        &["conversational.jsonl:1:", "list of messages"],
    );
}

#[test]
fn bad_templates_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for f in std::fs::read_dir(chat_model()).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, m.join(f.file_name().unwrap())).unwrap();
    }
    let input = fixture("conversational.jsonl");
    std::fs::write(
        m.join("chat_template.jinja"),
        "{% for x in messages %}{{ x.role }",
    )
    .unwrap();
    assert_one_line_error(
        &["analyze", "--model", s(&m), "--input", s(&input)],
        &["chat_template.jinja", "cannot compile: syntax error"],
    );
    std::fs::write(
        m.join("chat_template.jinja"),
        "{{ raise_exception('this model takes no system prompt') }}",
    )
    .unwrap();
    assert_one_line_error(
        &["perturb", "--model", s(&m), "--input", s(&input)],
        &[
            "conversational.jsonl:1:",
            "chat_template.jinja",
            "cannot render",
            "this model takes no system prompt",
        ],
    );
    // A model without a template cannot render a conversation.
    let bare = root().join("fixtures/models/tiny-qwen3");
    assert_one_line_error(
        &["analyze", "--model", s(&bare), "--input", s(&input)],
        &["tiny-qwen3/chat_template.jinja: file not found (expected a chat template"],
    );
}

#[test]
fn bad_rows_and_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let m = chat_model();
    let eval = |data: &std::path::Path, extra: &[&str], wants: &[&str]| {
        let mut args = vec![
            "eval",
            "--model",
            s(&m),
            "--task",
            "math",
            "--dataset",
            s(data),
            "--max-new-tokens",
            "2",
        ];
        args.extend_from_slice(extra);
        assert_one_line_error(&args, wants);
    };
    // Missing fields.
    let missing = tmp.path().join("missing.jsonl");
    std::fs::write(
        &missing,
        "{\"prompt\": \"what is 1+1?\", \"answer\": \"2\"}\n{\"question\": \"what is 2+2?\", \"answer\": \"4\"}\n{\"prompt\": \"what is 3+3?\"}\n",
    )
    .unwrap();
    eval(&missing, &[], &["missing.jsonl:2: expected a \"prompt\" or \"messages\" field, found an object with keys \"question\", \"answer\""]);
    eval(
        &missing,
        &["--prompt-field", "question"],
        &["missing.jsonl:1: expected a \"question\" or \"messages\" field"],
    );
    // Wrong column types in parquet.
    eval(&fixture("bad-types.parquet"), &[], &["bad-types.parquet: row 1: expected \"prompt\" to be text or a list of messages, found a number"]);
    eval(
        &fixture("bad-binary.parquet"),
        &[],
        &["bad-binary.parquet: row 1: column \"prompt\": binary data, expected text"],
    );
    // A corrupt parquet file: cut short, or not parquet at all.
    let bytes = std::fs::read(fixture("conversational.parquet")).unwrap();
    let cut = tmp.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    eval(&cut, &[], &["cut.parquet: not a readable parquet file"]);
    let text = tmp.path().join("text.parquet");
    std::fs::write(&text, "{\"prompt\": \"x\"}\n").unwrap();
    eval(&text, &[], &["text.parquet: not a readable parquet file"]);
    // Training refuses them the same way.
    let out = tmp.path().join("run");
    assert_one_line_error(
        &[
            "train",
            "--model",
            s(&m),
            "--task",
            "math",
            "--dataset",
            s(&cut),
            "--steps",
            "1",
            "--out",
            s(&out),
            "--no-progress",
        ],
        &["cut.parquet: not a readable parquet file"],
    );
    // Skipping is explicit, and counted.
    let (code, out, err) = rhythm(&[
        "eval",
        "--model",
        s(&m),
        "--task",
        "math",
        "--dataset",
        s(&missing),
        "--max-new-tokens",
        "2",
        "--skip-invalid-rows",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("missing.jsonl: skipped 2 invalid rows of 3 (skip_invalid_rows)"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["n"], 1);
}
