//! `rhythm analyze` end to end on the tiny Qwen3 fixture: the fields of
//! analysis.json, their consistency with rhythm-core and with the streamed
//! `rhythm probe` path, determinism, and bad input.

use std::path::Path;
use std::process::Command;

use rhythm_core::{ceil_q, chunk_ids, Params, Selections};
use serde_json::Value;

mod common;
use common::{rhythm, root};

fn model() -> String {
    root()
        .join("fixtures/models/tiny-qwen3")
        .display()
        .to_string()
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

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

const PROMPT: &str = "using 2, 5, 9 make 19. step by step:\n";
const RESPONSE: &str =
    "<think>let 2*5=10. so 10+9=19. wait, check: 19 is the answer.</think> <answer>2*5+9</answer>";

#[test]
fn given_response_fields_and_consistency() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a");
    let (code, stdout, err) = rhythm(&[
        "analyze",
        "--model",
        &model(),
        "--prompt",
        PROMPT,
        "--response",
        RESPONSE,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("WAAD") && stdout.contains("top FAI"),
        "{stdout}"
    );
    let doc = read_json(&out.join("analysis.json"));
    assert_eq!(
        doc["layers"],
        serde_json::json!([1, 2]),
        "sampled layers of 3"
    );
    assert_eq!(doc["params"]["horizon"], serde_json::json!([1, "end"]));
    let r = &doc["responses"][0];
    assert_eq!(r["generated"], false);
    let p = r["response_start"].as_u64().unwrap() as usize;
    let n = r["n"].as_u64().unwrap() as usize;
    let ids = usizes(&r["ids"]);
    assert_eq!(ids.len(), p + n);
    assert_eq!(r["seq_len"].as_u64().unwrap() as usize, p + n);
    let toks = r["tokens"].as_array().unwrap();
    assert_eq!(toks.len(), n);
    // The token texts spell the response.
    let text: String = toks.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(text, RESPONSE);
    assert_eq!(r["response"], RESPONSE);
    let col = |k: &str| -> Vec<f64> { toks.iter().map(|t| t[k].as_f64().unwrap()).collect() };
    let flag = |k: &str| -> Vec<usize> {
        toks.iter()
            .filter(|t| t[k].as_bool().unwrap())
            .map(|t| t["pos"].as_u64().unwrap() as usize)
            .collect()
    };
    for (o, t) in toks.iter().enumerate() {
        assert_eq!(t["pos"].as_u64().unwrap() as usize, p + o);
        assert_eq!(t["id"].as_u64().unwrap() as usize, ids[p + o]);
        let h = t["entropy"].as_f64().unwrap();
        assert!((0.0..=(96f64).ln() + 1e-9).contains(&h), "entropy {h}");
        assert!(t["logprob"].as_f64().unwrap() <= 0.0);
        assert!(t["fai"].as_f64().unwrap() >= 0.0 && t["waad"].as_f64().unwrap() >= 0.0);
        assert!(
            t["waad"].as_f64().unwrap() <= 10.0 + 1e-9,
            "WAAD is at most W"
        );
    }
    // Selections and chunks agree with rhythm-core on the same WAAD / FAI.
    let (waad, fai) = (col("waad"), col("fai"));
    let sel = Selections::new(p, &waad, &fai, &Params::analysis());
    assert_eq!(flag("preplan"), sel.preplan);
    assert_eq!(flag("anchor"), sel.anchors);
    assert_eq!(flag("dominated"), sel.dominated);
    assert_eq!(flag("intro"), sel.intro);
    assert_eq!(sel.preplan.len(), ceil_q(0.4, n));
    // (serde_json's float parsing may differ from Rust's in the last bit.)
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + b.abs());
    for (a, b) in col("delta").iter().zip(&sel.delta) {
        assert!(close(*a, *b), "{a} vs {b}");
    }
    assert!(close(r["tau_delta"].as_f64().unwrap(), sel.tau_delta));
    let chunks: Vec<usize> = toks
        .iter()
        .map(|t| t["chunk"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(chunks, chunk_ids(&waad, sel.tau_delta));
    assert_eq!(r["chunks"].as_u64().unwrap() as usize, chunks[n - 1] + 1);
    // Heads: 2 layers x 4 heads; groups of ceil_q(0.3, 8) = 3; 1 receiver.
    let heads = r["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 8);
    let count = |g: &str| heads.iter().filter(|h| h["group"] == g).count();
    assert_eq!((count("local"), count("global"), count("other")), (3, 3, 2));
    assert_eq!(heads.iter().filter(|h| h["receiver"] == true).count(), 1);
    let max_local = heads
        .iter()
        .filter(|h| h["group"] == "local")
        .map(|h| h["span"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    let min_global = heads
        .iter()
        .filter(|h| h["group"] == "global")
        .map(|h| h["span"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(max_local <= min_global);
    // Heatmaps: binned, capped at the extent, rows of mean mass <= 1.
    for g in ["local", "global"] {
        let m = &r["maps"][g];
        let (rows, cols) = (
            m["rows"].as_u64().unwrap() as usize,
            m["cols"].as_u64().unwrap() as usize,
        );
        assert_eq!((rows, cols), (n.min(96), (p + n).min(96)));
        let cells = nums(&m["cells"]);
        assert_eq!(cells.len(), rows * cols);
        for i in 0..rows {
            let s: f64 = cells[i * cols..(i + 1) * cols].iter().sum();
            assert!((s - 1.0).abs() < 1e-3, "row {i} sums to {s}");
        }
    }

    // The streamed probe path (`rhythm probe --stream --json`, the JSON of
    // `rhythm score`) computes the same rhythm on the same ids.
    let id_list = ids
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (code, js, err) = rhythm(&[
        "probe",
        "--model",
        &model(),
        "--ids",
        &id_list,
        "--response-start",
        &p.to_string(),
        "--stream",
        "--json",
        "--horizon",
        "1:end",
    ]);
    assert_eq!(code, 0, "{err}");
    let s: Value = serde_json::from_str(&js).unwrap();
    for (a, b) in nums(&s["waad"]).iter().zip(&waad) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    for (a, b) in nums(&s["fai"]).iter().zip(&fai) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    assert_eq!(usizes(&s["preplan"]), sel.preplan);
    assert_eq!(usizes(&s["anchors"]), sel.anchors);
    assert_eq!(usizes(&s["dominated"]), sel.dominated);
    assert_eq!(usizes(&s["intro"]), sel.intro);
}

#[test]
fn generated_responses_are_seeded_and_files_complete() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"what is 12+7?\\n\"}\n\n{\"prompt\": \"add 3 and 4.\", \"response\": \"3+4=7\"}\n",
    )
    .unwrap();
    let run = |out: &Path, seed: &str| {
        let (code, _, err) = rhythm(&[
            "analyze",
            "--model",
            &model(),
            "--input",
            input.to_str().unwrap(),
            "--max-new-tokens",
            "24",
            "--seed",
            seed,
            "--bins",
            "8",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        std::fs::read_to_string(out.join("analysis.json")).unwrap()
    };
    let a = run(&dir.path().join("a"), "5");
    let b = run(&dir.path().join("b"), "5");
    assert_eq!(a, b, "same seed, same analysis");
    let doc: Value = serde_json::from_str(&a).unwrap();
    let rs = doc["responses"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0]["generated"], true);
    assert_eq!(rs[0]["origin"], format!("{}:1", input.display()));
    assert_eq!(rs[1]["origin"], format!("{}:3", input.display()));
    assert!(rs[0]["n"].as_u64().unwrap() <= 24);
    assert_eq!(doc["generation"]["temperature"], 0.7);
    assert_eq!(
        rs[0]["maps"]["local"]["rows"].as_u64().unwrap(),
        8.min(rs[0]["n"].as_u64().unwrap())
    );
    // Only the two outputs, no temporary files.
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["analysis.json", "report.html"]);
}

#[test]
fn malformed_jsonl_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\", oops}\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let m = model();
    for cmd in ["analyze", "stats", "perturb"] {
        let mut args = vec![cmd, "--model", &m, "--input", input.to_str().unwrap()];
        if cmd == "analyze" {
            args.extend(["--out", out.to_str().unwrap()]);
        }
        let (code, _, err) = rhythm(&args);
        assert_eq!(code, 2, "{cmd}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{cmd}: {err}");
        assert!(
            err.contains(&format!("{}:3:", input.display())),
            "{cmd}: {err}"
        );
    }
    assert!(!out.exists(), "nothing written on bad input");
    let missing = dir.path().join("none.jsonl");
    let (code, _, err) = rhythm(&[
        "stats",
        "--model",
        &model(),
        "--input",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("none.jsonl"), "{err}");
}

#[test]
fn bad_flags_are_one_line_errors() {
    for args in [
        vec!["--horizon", "5:2"],
        vec!["--layers", "7"],
        vec!["--q", "0"],
    ] {
        let m = model();
        let mut all = vec!["analyze", "--model", &m, "--prompt", "1+1="];
        all.extend(args.iter());
        let (code, _, err) = rhythm(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn bundled_model_and_countdown_prompt_are_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_rhythm"))
            .current_dir(root())
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "analyze",
        "--countdown",
        "3",
        "--max-new-tokens",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let doc = read_json(&out.join("analysis.json"));
    assert!(doc["model"]
        .as_str()
        .unwrap()
        .ends_with("models/countdown-tiny"));
    let split = rhythm_rl::tasks::countdown::default_splits(0);
    let want = split.test[3].prompt(rhythm_rl::tasks::countdown::PromptStyle::Compact);
    assert_eq!(doc["responses"][0]["prompt"], want.as_str());
    assert_eq!(doc["responses"][0]["origin"], "--countdown 3");
    assert!(out.join("report.html").exists());
    let (code, err) = run(&["analyze", "--countdown", "512"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--countdown 512"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
