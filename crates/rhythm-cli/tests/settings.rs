//! The settings every command shares: `--device` on every command that runs
//! a model, and the rhythm flags, refused the same way everywhere.

mod common;

use common::{rhythm_in, root};

fn one_line_error(code: i32, err: &str, want: &str) {
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(want), "wanted {want:?} in {err}");
    assert!(
        err.trim_end().lines().count() == 1 && err.starts_with("error: "),
        "not a one-line error: {err}"
    );
}

#[test]
fn a_device_the_binary_lacks_is_a_clear_error_in_every_command() {
    if cfg!(feature = "cuda") {
        return;
    }
    let qwen = "fixtures/models/tiny-qwen3";
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "probe",
            "--model",
            qwen,
            "--ids",
            "1,2,3",
            "--out",
            "x.safetensors",
        ],
        vec!["analyze", "--countdown", "0"],
        vec!["stats", "--input", "examples/countdown70.jsonl"],
        vec!["perturb", "--input", "examples/countdown70.jsonl"],
        vec!["eval", "--test-size", "2"],
        vec!["train", "--steps", "1", "--out", "never-written"],
        vec!["pretrain", "--out", "never-written", "--steps", "1"],
    ];
    for mut args in cases {
        args.extend(["--device", "cuda:1"]);
        let (code, _, err) = rhythm_in(&root(), &args);
        one_line_error(code, &err, "built without cuda support");
        assert!(err.contains("--features cuda"), "{err}");
    }
    assert!(!root().join("never-written").exists());
    let (code, _, err) = rhythm_in(&root(), &["eval", "--device", "gpu"]);
    one_line_error(code, &err, "'gpu': expected cpu, cuda, cuda:N");
}

#[test]
fn rhythm_flags_are_validated_where_they_are_declared() {
    // The same flag, the same refusal, in a command of each preset.
    for cmd in [
        vec!["score", "examples/tiny-qwen3.maps.safetensors"],
        vec!["analyze", "--countdown", "0"],
        vec!["train", "--steps", "1", "--out", "never-written"],
    ] {
        for (flag, value, want) in [
            ("--q", "0", "q = 0, expected a number in (0, 1]"),
            ("--q", "NaN", "q = NaN, expected a number in (0, 1]"),
            ("--window", "0", "window = 0, expected at least 1"),
            ("--horizon", "9:3", "expected LO <= HI"),
            ("--proximity", "99999999999999999999", "--proximity"),
            (
                "--proximity",
                "9999999999",
                "proximity = 9999999999, expected at most 1000000000",
            ),
            ("--layers", "1,x", "'x' is not a layer number"),
        ] {
            let mut args = cmd.clone();
            args.extend([flag, value]);
            let (code, _, err) = rhythm_in(&root(), &args);
            one_line_error(code, &err, want);
        }
    }
    for (flag, value, want) in [
        (
            "--gamma-amp",
            "-1",
            "gamma_amp = -1, expected a finite number >= 0",
        ),
        ("--alpha", "2", "alpha = 2, expected a number in [0, 1]"),
        ("--strategy", "best", "unknown strategy 'best'"),
    ] {
        let arg = format!("{flag}={value}");
        let args = vec!["score", "examples/tiny-qwen3.maps.safetensors", &arg];
        let (code, _, err) = rhythm_in(&root(), &args);
        one_line_error(code, &err, want);
    }
    assert!(!root().join("never-written").exists());
}

#[test]
fn sizes_from_flags_are_bounded_before_anything_is_allocated() {
    for (args, want) in [
        (
            vec!["eval", "--k", "1000000000000"],
            "--k 1000000000000: expected at most",
        ),
        (
            vec!["eval", "--test-size", "1000000000000"],
            "test_size = 1000000000000, expected at most",
        ),
        (
            vec![
                "train",
                "--prompts-per-batch",
                "1000000000000",
                "--out",
                "never-written",
            ],
            "prompts_per_batch = 1000000000000, expected at most",
        ),
        (
            vec![
                "train",
                "--group-size",
                "100000",
                "--prompts-per-batch",
                "100000",
                "--out",
                "never-written",
            ],
            "prompts_per_batch x group_size = 10000000000, expected at most",
        ),
        (
            vec![
                "train",
                "--max-new-tokens",
                "18446744073709551615",
                "--out",
                "never-written",
            ],
            "max_new_tokens = 18446744073709551615, expected at most",
        ),
    ] {
        let (code, _, err) = rhythm_in(&root(), &args);
        one_line_error(code, &err, want);
    }
    assert!(!root().join("never-written").exists());
}
