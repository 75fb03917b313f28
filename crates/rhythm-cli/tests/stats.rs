//! `rhythm stats` on the tiny Qwen3 fixture: the JSON shape, values in
//! range, and the file written by `--out`.

use serde_json::Value;

mod common;
use common::{rhythm, root};

#[test]
fn table_json_shape_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stats.json");
    let model = root().join("fixtures/models/tiny-qwen3");
    let input = root().join("examples/prompts.jsonl");
    let (code, stdout, err) = rhythm(&[
        "stats",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        "24",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc, file);
    let lines = std::fs::read_to_string(&input).unwrap().lines().count() as u64;
    let seqs = doc["sequences"].as_u64().unwrap();
    let skipped = doc["skipped"].as_array().unwrap().len() as u64;
    assert_eq!(seqs + skipped, lines);
    assert!(seqs > 0);
    assert!(doc["tokens"].as_u64().unwrap() >= seqs);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "entropy at WAAD peaks",
            "receiver/global FAI co-occurrence",
            "FAI peak follows/coincides with WAAD peak"
        ]
    );
    for (i, r) in rows.iter().enumerate() {
        let (o, rnd, lift) = (
            r["observed"].as_f64().unwrap(),
            r["random"].as_f64().unwrap(),
            r["lift"].as_f64().unwrap(),
        );
        assert!(((o - rnd) / rnd - lift).abs() < 1e-9);
        if i == 0 {
            // Entropy in nats of a 96-token vocabulary.
            assert!(o >= 0.0 && rnd > 0.0 && o <= 96f64.ln() && rnd <= 96f64.ln());
        } else {
            assert!(
                (0.0..=1.0).contains(&o) && (0.0..=1.0).contains(&rnd),
                "{r}"
            );
        }
        assert!(r["paper"]["observed"].as_f64().is_some());
    }
    // Peaks are the top 20%: the global-FAI share of R is about 0.2.
    let share = rows[1]["random"].as_f64().unwrap();
    assert!((0.2..0.3).contains(&share), "{share}");

    // The plain table mentions every row.
    let (code, table, err) = rhythm(&[
        "stats",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        "24",
    ]);
    assert_eq!(code, 0, "{err}");
    for n in names {
        assert!(table.contains(n), "{table}");
    }
}

#[test]
fn bundled_model_is_the_default() {
    common::assert_bundled_model_default("stats", &["--max-new-tokens", "16"]);
}
