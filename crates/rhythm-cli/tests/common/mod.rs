//! Helpers shared by the CLI integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the `rhythm` binary with `args`: exit code, stdout, stderr.
pub fn rhythm(args: &[&str]) -> (i32, String, String) {
    rhythm_in(Path::new("."), args)
}

/// Runs the `rhythm` binary with `args` in directory `dir`.
pub fn rhythm_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rhythm"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `rhythm SUBCOMMAND --input (one Countdown prompt) EXTRA... --json`
/// from the workspace root with no `--model`, and checks that the bundled
/// model was used.
pub fn assert_bundled_model_default(subcommand: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("p.jsonl");
    std::fs::write(&input, "{\"prompt\": \"nums: 3 5 7 target: 22\\n\"}\n").unwrap();
    let mut args = vec![subcommand, "--input", input.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let (code, stdout, err) = rhythm_in(&root(), &args);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let model = doc["model"].as_str().unwrap();
    assert!(model.ends_with("models/countdown-tiny"), "{model}");
}
