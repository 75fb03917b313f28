//! `rhythm eval` on the tiny Qwen3 fixture: table and JSON.

use std::path::{Path, PathBuf};

mod common;
use common::rhythm;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-qwen3")
}

#[test]
fn json_lists_instances() {
    let m = model();
    let m = m.to_str().unwrap();
    let base = [
        "eval",
        "--model",
        m,
        "--task",
        "countdown",
        "--split",
        "test",
        "--limit",
        "3",
        "--max-new-tokens",
        "8",
    ];
    let mut args = base.to_vec();
    args.extend(["--k", "2", "--json"]);
    let (code, out, err) = rhythm(&args);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["n"], 3);
    assert_eq!(v["k"], 2);
    assert!(v["pass_at_1"].is_number() && v["avg_at_k"].is_number());
    let inst = v["instances"].as_array().unwrap();
    assert_eq!(inst.len(), 3);
    for i in inst {
        assert!(i["task"]["nums"].is_array() && i["task"]["target"].is_number());
        assert!(i["greedy"]["response"].is_string() && i["greedy"]["reward"].is_number());
        assert_eq!(i["samples"].as_array().unwrap().len(), 2);
    }
    let (code, out, err) = rhythm(&base);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("pass@1") && out.contains("instances  3"),
        "{out}"
    );
    let (code, _, err) = rhythm(&["eval", "--model", m, "--split", "dev"]);
    assert_eq!(code, 2);
    assert!(err.contains("--split"), "{err}");
}
