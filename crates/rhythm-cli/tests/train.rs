//! `rhythm train` end to end on the tiny Qwen3 fixture: a TOML file with
//! flags that override it, metrics and checkpoints, `--resume`, and errors.

use std::path::{Path, PathBuf};

mod common;
use common::rhythm;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-qwen3")
}

#[test]
fn config_file_flags_override_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = tmp.path().join("train.toml");
    std::fs::write(
        &cfg,
        format!(
            "model = {:?}\nsteps = 5\nprompts_per_batch = 2\ngroup_size = 3\n\
             max_new_tokens = 8\ntrain_size = 20\ntest_size = 2\nsave_interval = 1\n\
             strategy = \"global\"\nlr = 0.001\n",
            model().display().to_string()
        ),
    )
    .unwrap();
    let o = out.to_str().unwrap();
    let c = cfg.to_str().unwrap();
    // --steps 2 beats the file's 5.
    let (code, _, err) = rhythm(&[
        "train",
        "--config",
        c,
        "--steps",
        "2",
        "--out",
        o,
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{err}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);
    let saved = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        saved.contains("strategy = \"global\"") && saved.contains("steps = 2"),
        "{saved}"
    );
    assert!(out.join("checkpoint-000002/model.safetensors").is_file());
    // A second start into the same directory is refused.
    let (code, _, err) = rhythm(&["train", "--config", c, "--out", o, "--no-progress"]);
    assert_eq!(code, 2);
    assert!(err.contains("--resume"), "{err}");
    // Resume with more steps.
    let (code, _, err) = rhythm(&["train", "--resume", o, "--steps", "3", "--no-progress"]);
    assert_eq!(code, 0, "{err}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3);
    assert!(out.join("checkpoint-000003").is_dir());
}

#[test]
fn bad_config_is_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "stepz = 3\n").unwrap();
    let (code, _, err) = rhythm(&["train", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error: ") && err.contains("stepz"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) = rhythm(&[
        "train",
        "--model",
        "/nonexistent",
        "--out",
        tmp.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}
