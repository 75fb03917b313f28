//! `rhythm probe` end to end on the tiny Qwen3 fixture: captured maps read by
//! `rhythm score` give the same rhythm as the streamed probe, and bad input
//! is a one-line error with exit status 2.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;
use common::rhythm;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-qwen3")
}

const IDS: &str =
    "5,17,30,2,44,61,8,9,12,70,33,21,4,4,15,88,90,3,27,50,51,52,13,14,60,61,62,7,19,23";

#[test]
fn streamed_probe_equals_score_of_captured_maps() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("maps.safetensors");
    let m = model();
    let m = m.to_str().unwrap();
    let (code, _, err) = rhythm(&[
        "probe",
        "--model",
        m,
        "--ids",
        IDS,
        "--response-start",
        "9",
        "--layers",
        "all",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for strategy in ["coupled", "entropy", "local"] {
        let (c1, a, e1) = rhythm(&[
            "score",
            out.to_str().unwrap(),
            "--json",
            "--strategy",
            strategy,
            "--horizon",
            "1:8",
        ]);
        assert_eq!(c1, 0, "{e1}");
        let (c2, b, e2) = rhythm(&[
            "probe",
            "--model",
            m,
            "--ids",
            IDS,
            "--response-start",
            "9",
            "--layers",
            "all",
            "--stream",
            "--json",
            "--strategy",
            strategy,
            "--horizon",
            "1:8",
        ]);
        assert_eq!(c2, 0, "{e2}");
        let a: Value = serde_json::from_str(&a).unwrap();
        let b: Value = serde_json::from_str(&b).unwrap();
        for key in [
            "preplan",
            "anchors",
            "dominated",
            "intro",
            "positions",
            "gamma",
        ] {
            assert_eq!(a[key], b[key], "{strategy}: {key}");
        }
        for key in ["waad", "fai", "delta"] {
            let (x, y) = (a[key].as_array().unwrap(), b[key].as_array().unwrap());
            assert_eq!(x.len(), 21);
            for (u, v) in x.iter().zip(y) {
                assert!(
                    (u.as_f64().unwrap() - v.as_f64().unwrap()).abs() < 1e-6,
                    "{key}"
                );
            }
        }
    }
}

#[test]
fn probe_bad_input_is_one_line_exit_2() {
    let m = model();
    let m = m.to_str().unwrap();
    let long: String = (0..200)
        .map(|i| (i % 90 + 1).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--model", m, "--ids", "1,2,96", "--out", "/tmp/x.st"],
            "96",
        ),
        (
            vec![
                "--model",
                "/nonexistent/model",
                "--ids",
                "1,2",
                "--out",
                "/tmp/x.st",
            ],
            "/nonexistent/model",
        ),
        (
            vec!["--model", m, "--ids", &long, "--out", "/tmp/x.st"],
            "max_position_embeddings",
        ),
        (
            vec!["--model", m, "--ids", "1,x,3", "--out", "/tmp/x.st"],
            "x",
        ),
        (
            vec![
                "--model",
                m,
                "--ids",
                "1,2,3",
                "--layers",
                "9",
                "--out",
                "/tmp/x.st",
            ],
            "9",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["probe"];
        a.extend(args.iter());
        let (code, _, err) = rhythm(&a);
        assert_eq!(code, 2, "{a:?}: {err}");
        assert!(err.contains(want), "{a:?}: {err:?} lacks {want:?}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert!(!err.contains("panicked"));
    }
}
