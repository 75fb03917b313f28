//! `rhythm perturb` on the tiny Qwen3 fixture with a short horizon: the
//! JSON shape, the positions chosen, and values in range.

use serde_json::Value;

mod common;
use common::{rhythm, root};

#[test]
fn short_horizon_shape_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("p.jsonl");
    std::fs::write(
        &input,
        concat!(
            "{\"prompt\": \"what is 12+7?\\n\"}\n",
            "{\"prompt\": \"sum the digits of 4096.\\n\", \"response\": \"the digits are 4, 0, 9, 6. add: 4+0=4, 4+9=13, 13+6=19. so the sum is 19.\"}\n",
        ),
    )
    .unwrap();
    let model = root().join("fixtures/models/tiny-qwen3");
    let (code, stdout, err) = rhythm(&[
        "perturb",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        "30",
        "--max-continuation",
        "6",
        "--k-pos",
        "2",
        "--k-cand",
        "2",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let m = doc["problems"].as_u64().unwrap();
    assert_eq!(m + doc["skipped"].as_array().unwrap().len() as u64, 2);
    assert!(m >= 1, "{doc}");
    let unit = |v: &Value| {
        let x = v.as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{x}");
        x
    };
    unit(&doc["top_mean"]);
    unit(&doc["bottom_mean"]);
    let pr = unit(&doc["pr_top_lt_bottom"]);
    let probs = doc["per_problem"].as_array().unwrap();
    let wins = probs
        .iter()
        .filter(|p| p["top_mean"].as_f64().unwrap() < p["bottom_mean"].as_f64().unwrap())
        .count();
    assert!((pr - wins as f64 / m as f64).abs() < 1e-12);
    for p in probs {
        let n = p["response_tokens"].as_u64().unwrap() as usize;
        let cut = (n as f64 * 0.1).ceil() as usize;
        let p0 = p["response_start"].as_u64().unwrap() as usize;
        let (top, bottom) = (
            p["top"].as_array().unwrap(),
            p["bottom"].as_array().unwrap(),
        );
        assert_eq!(top.len(), 2);
        assert!(!bottom.is_empty());
        let min_top = top
            .iter()
            .map(|x| x["fai"].as_f64().unwrap())
            .fold(f64::MAX, f64::min);
        for b in bottom {
            assert!(b["fai"].as_f64().unwrap() <= min_top);
        }
        let mut pos = Vec::new();
        for site in top.iter().chain(bottom) {
            let t = site["pos"].as_u64().unwrap() as usize;
            pos.push(t);
            assert!(
                t >= p0 + cut && t < p0 + n - cut,
                "{t} is in the first or last 10%"
            );
            assert!(site["horizon"].as_u64().unwrap() <= 6);
            let alts = site["alternatives"].as_array().unwrap();
            assert_eq!(alts.len(), 2);
            let js: Vec<f64> = alts.iter().map(|a| unit(&a["jaccard"])).collect();
            assert!((unit(&site["mean_jaccard"]) - (js[0] + js[1]) / 2.0).abs() < 1e-12);
            for a in alts {
                assert_ne!(
                    a["token"], site["token"],
                    "the original token is not an alternative"
                );
            }
        }
        pos.sort_unstable();
        pos.dedup();
        assert_eq!(
            pos.len(),
            top.len() + bottom.len(),
            "top and bottom are disjoint"
        );
    }
}

#[test]
fn bundled_model_is_the_default() {
    common::assert_bundled_model_default(
        "perturb",
        &[
            "--max-new-tokens",
            "16",
            "--max-continuation",
            "4",
            "--k-pos",
            "1",
            "--k-cand",
            "1",
        ],
    );
}
