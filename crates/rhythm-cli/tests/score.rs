//! `rhythm score` end to end: on a fixture file, against rhythm-core's
//! full-map path, and on bad input.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rhythm_core::{ceil_q, HeadMap, Params, Rhythm};
use safetensors::tensor::{serialize_to_file, TensorView};
use safetensors::Dtype;
use serde_json::Value;

mod common;
use common::{rhythm, root};

fn fixture() -> PathBuf {
    root().join("fixtures/models/tiny-qwen3/golden.safetensors")
}

fn score_json(args: &[&str]) -> Value {
    let (code, out, err) = rhythm(args);
    assert_eq!(code, 0, "stderr: {err}");
    serde_json::from_str(&out).unwrap()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// Writes `attn.{l}` tensors (f32) and optional metadata.
fn write_maps(path: &Path, layers: &[(usize, Vec<usize>, Vec<f32>)], meta: Option<(&str, &str)>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = layers
        .iter()
        .map(|(l, sh, d)| {
            (
                format!("attn.{l}"),
                sh.clone(),
                d.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, sh, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, sh.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = meta.map(|(k, v)| HashMap::from([(k.to_string(), v.to_string())]));
    serialize_to_file(views, meta, path).unwrap();
}

/// A valid causal map `[heads, n, n]`: row t puts weight on s <= t.
fn good_maps(heads: usize, n: usize, salt: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; heads * n * n];
    for h in 0..heads {
        for t in 0..n {
            let row = &mut out[(h * n + t) * n..(h * n + t + 1) * n];
            let mut sum = 0.0;
            for (s, x) in row.iter_mut().enumerate().take(t + 1) {
                *x = 1.0 + ((s * 7 + t * 3 + h * 5 + salt) % 11) as f32;
                sum += *x;
            }
            row.iter_mut().for_each(|x| *x /= sum);
        }
    }
    out
}

#[test]
fn json_matches_core_full_map_path() {
    let f = fixture();
    let j = score_json(&[
        "score",
        f.to_str().unwrap(),
        "--response-start",
        "8",
        "--json",
    ]);
    // Independent path: read the maps here and use Rhythm::from_maps.
    let bytes = std::fs::read(&f).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut data = Vec::new();
    for l in 0..3 {
        let v = st.tensor(&format!("attn.{l}")).unwrap();
        let f: Vec<f32> = v
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        data.push((l, v.shape().to_vec(), f));
    }
    let mut maps = Vec::new();
    for (l, sh, d) in &data {
        let n = sh[1];
        for h in 0..sh[0] {
            maps.push(HeadMap {
                layer: *l,
                head: h,
                seq_len: n,
                data: &d[h * n * n..(h + 1) * n * n],
            });
        }
    }
    let r = Rhythm::from_maps(&maps, 8, &Params::rl(), None).unwrap();
    assert_eq!(j["response_start"], 8);
    assert_eq!(j["n"], 16);
    assert_eq!(usizes(&j["positions"]), (8..24).collect::<Vec<_>>());
    for (key, want) in [("waad", &r.waad), ("fai", &r.fai), ("delta", &r.sel.delta)] {
        let got = nums(&j[key]);
        assert_eq!(got.len(), 16);
        for (a, b) in got.iter().zip(want.iter()) {
            assert!((a - b).abs() < 1e-9, "{key}: {a} vs {b}");
        }
    }
    assert_eq!(usizes(&j["preplan"]), r.sel.preplan);
    assert_eq!(usizes(&j["anchors"]), r.sel.anchors);
    assert_eq!(usizes(&j["dominated"]), r.sel.dominated);
    assert_eq!(usizes(&j["intro"]), r.sel.intro);
    assert_eq!(j["heads"]["span"].as_array().unwrap().len(), 12);
    // ceil_q(0.3, 12) = 4 heads per group.
    assert_eq!(j["heads"]["local"].as_array().unwrap().len(), 4);
    assert_eq!(j["heads"]["global"].as_array().unwrap().len(), 4);
    // Coupled gamma takes values in {1, 1.25, 1.5, 1.75}.
    for g in nums(&j["gamma"]) {
        assert!([1.0, 1.25, 1.5, 1.75].contains(&g), "{g}");
    }
    // Key order is the documented one.
    let keys: Vec<&String> = j.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "response_start",
            "n",
            "heads",
            "positions",
            "waad",
            "fai",
            "delta",
            "gamma",
            "preplan",
            "anchors",
            "dominated",
            "intro"
        ]
    );
}

#[test]
fn options_change_what_they_should() {
    let f = fixture();
    let f = f.to_str().unwrap();
    let base = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--strategy",
        "local",
    ]);
    // n = 20, q = 0.25 -> 5 preplan tokens, each boosted to gamma_amp = 2.
    let j = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--strategy",
        "local",
        "--q",
        "0.25",
        "--gamma-amp",
        "2",
    ]);
    assert_eq!(usizes(&j["preplan"]).len(), ceil_q(0.25, 20));
    let g = nums(&j["gamma"]);
    assert_eq!(g.iter().filter(|&&x| x == 2.0).count(), 5);
    assert_eq!(g.iter().filter(|&&x| x == 1.0).count(), 15);
    // Fewer layers change the head list.
    let one = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--layers",
        "1",
    ]);
    assert_eq!(one["heads"]["span"].as_array().unwrap().len(), 4);
    // The window changes WAAD.
    let w = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--window",
        "2",
    ]);
    assert_ne!(w["waad"], base["waad"]);
    // Entropy works from the file's logits; random is seeded.
    let e = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--strategy",
        "entropy",
    ]);
    assert_eq!(
        nums(&e["gamma"]).iter().filter(|&&x| x > 1.0).count(),
        ceil_q(0.4, 20)
    );
    let r1 = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--strategy",
        "random",
        "--seed",
        "3",
    ]);
    let r2 = score_json(&[
        "score",
        f,
        "--response-start",
        "4",
        "--json",
        "--strategy",
        "random",
        "--seed",
        "3",
    ]);
    assert_eq!(r1["gamma"], r2["gamma"]);
    // The readable summary names the strategy.
    let (code, out, _) = rhythm(&["score", f, "--response-start", "4"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("gamma [coupled]") && out.contains("preplan"),
        "{out}"
    );
}

#[test]
fn metadata_response_start_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    write_maps(
        &p,
        &[
            (0, vec![2, 12, 12], good_maps(2, 12, 0)),
            (1, vec![2, 12, 12], good_maps(2, 12, 1)),
        ],
        Some(("response_start", "5")),
    );
    let j = score_json(&["score", p.to_str().unwrap(), "--json"]);
    assert_eq!(j["response_start"], 5);
    assert_eq!(j["n"], 7);
    // The flag wins over the metadata.
    let j = score_json(&[
        "score",
        p.to_str().unwrap(),
        "--json",
        "--response-start",
        "2",
    ]);
    assert_eq!(j["n"], 10);
}

/// Every bad input: exit 2, one line on stderr naming the problem, no panic.
#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name);
    let n = 6;
    let mut noncausal = good_maps(1, n, 0);
    noncausal[1] = 0.5; // row 0, column 1
    write_maps(&d("noncausal"), &[(0, vec![1, n, n], noncausal)], None);
    let mut badsum = good_maps(1, n, 0);
    badsum[n * 3] += 0.01; // row 3 sums to 1.01
    write_maps(&d("badsum"), &[(0, vec![1, n, n], badsum)], None);
    let mut nan = good_maps(1, n, 0);
    nan[n * 4 + 2] = f32::NAN;
    write_maps(&d("nan"), &[(0, vec![1, n, n], nan)], None);
    let mut inf = good_maps(1, n, 0);
    inf[n * 4 + 2] = f32::INFINITY;
    write_maps(&d("inf"), &[(0, vec![1, n, n], inf)], None);
    write_maps(
        &d("shapes"),
        &[
            (0, vec![1, n, n], good_maps(1, n, 0)),
            (1, vec![2, n, n], good_maps(2, n, 0)),
        ],
        None,
    );
    write_maps(
        &d("notsquare"),
        &[(0, vec![1, n, n - 1], vec![0.0; n * (n - 1)])],
        None,
    );
    std::fs::write(d("garbage"), b"not a safetensors file").unwrap();
    write_maps(&d("ok"), &[(0, vec![1, n, n], good_maps(1, n, 0))], None);
    let s = |p: &str| d(p).to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![s("noncausal"), "--response-start".into(), "2".into()],
            "above the diagonal",
        ),
        (
            vec![s("badsum"), "--response-start".into(), "2".into()],
            "row 3: sums to 1.01",
        ),
        (
            vec![s("nan"), "--response-start".into(), "2".into()],
            "expected a finite number",
        ),
        (
            vec![s("inf"), "--response-start".into(), "2".into()],
            "expected a finite number",
        ),
        (
            vec![s("shapes"), "--response-start".into(), "2".into()],
            "every layer must have the same shape",
        ),
        (
            vec![s("notsquare"), "--response-start".into(), "2".into()],
            "expected [heads, N, N]",
        ),
        (
            vec![s("garbage"), "--response-start".into(), "2".into()],
            "not a valid safetensors file",
        ),
        (
            vec![s("ok"), "--response-start".into(), "6".into()],
            "outside the sequence",
        ),
        (
            vec![s("ok"), "--response-start".into(), "60".into()],
            "outside the sequence",
        ),
        (vec![s("ok")], "no response start"),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--strategy".into(),
                "best".into(),
            ],
            "unknown strategy 'best'",
        ),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--layers".into(),
                "4".into(),
            ],
            "layer 4 is not available",
        ),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--layers".into(),
                "x".into(),
            ],
            "not a layer number",
        ),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--horizon".into(),
                "9:3".into(),
            ],
            "LO <= HI",
        ),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--q".into(),
                "1.5".into(),
            ],
            "q = 1.5",
        ),
        (
            vec![
                s("ok"),
                "--response-start".into(),
                "2".into(),
                "--strategy".into(),
                "entropy".into(),
            ],
            "needs per-token entropy",
        ),
        (
            vec![s("missing"), "--response-start".into(), "2".into()],
            "cannot read",
        ),
    ];
    for (args, want) in cases {
        let mut a = vec!["score".to_string()];
        a.extend(args.iter().cloned());
        let a: Vec<&str> = a.iter().map(|x| x.as_str()).collect();
        let (code, out, err) = rhythm(&a);
        assert_eq!(
            code, 2,
            "{a:?}: expected exit 2, stdout {out}, stderr {err}"
        );
        assert!(err.contains(want), "{a:?}: stderr {err:?} lacks {want:?}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{a:?}: not one line: {err:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}
