//! `rhythm curves` on synthetic run directories: grouping, the figures
//! against hand-computed values, the EMA of the running peak, the SVG
//! figures, and one-line errors with exit status 2.

use std::path::{Path, PathBuf};

use rhythm_core::{CreditSettings, Strategy};
use rhythm_rl::config::TrainConfig;
use rhythm_rl::trainer::StepMetrics;
use serde_json::{json, Value};

mod common;
use common::rhythm;

/// A metrics line as the trainer writes it (every field; the others zero).
fn line(step: u64, acc: f64, len: f64, eval: Option<f64>) -> String {
    serde_json::to_string(&StepMetrics {
        step: step as usize,
        reward: acc,
        accuracy: acc,
        response_len: len,
        eval_accuracy: eval,
        ..Default::default()
    })
    .unwrap()
}

/// Writes `root/name/{config.toml, metrics.jsonl}`.
fn write_run(root: &Path, name: &str, config: &str, lines: &[String]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    dir
}

fn cfg(strategy: &str, seed: u64) -> String {
    format!(
        "model = \"models/countdown-tiny\"\nstrategy = \"{strategy}\"\nseed = {seed}\nsteps = 12\n"
    )
}

fn close(v: &Value, want: f64) {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {v} (want {want})"));
    assert!((x - want).abs() < 1e-9, "{x} != {want}");
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close_all(v: &Value, want: &[f64]) {
    let got = nums(v);
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-9, "{got:?} vs {want:?}");
    }
}

/// Five runs in four methods (none x2, coupled x2, global-bottom, local-bottom: the last two are not in METHOD_ORDER, so they follow alphabetically); the
/// run dirs in a scrambled order.
fn fixture(root: &Path) -> Vec<PathBuf> {
    // coupled seed 0: a real StepMetrics serialization; eval 0.2, 0.5, 0.4.
    let c0: Vec<String> = (1..=12u64)
        .map(|t| {
            let m = StepMetrics {
                step: t as usize,
                reward: 0.01 * t as f64,
                accuracy: 0.01 * t as f64,
                response_len: 10.0 + t as f64,
                entropy: 1.0,
                gamma_mean: 1.2,
                lr: 1e-5,
                eval_accuracy: match t {
                    4 => Some(0.2),
                    8 => Some(0.5),
                    12 => Some(0.4),
                    _ => None,
                },
                ..Default::default()
            };
            serde_json::to_string(&m).unwrap()
        })
        .collect();
    // coupled seed 1: the config file `rhythm train` writes; eval 0.3, 0.3, 0.6.
    let c1_cfg = TrainConfig {
        credit: CreditSettings {
            strategy: Strategy::Coupled,
            ..CreditSettings::default()
        },
        seed: 1,
        ..TrainConfig::default()
    }
    .to_toml();
    let c1: Vec<String> = (1..=12u64)
        .map(|t| {
            let e = match t {
                4 => Some(0.3),
                8 => Some(0.3),
                12 => Some(0.6),
                _ => None,
            };
            line(t, 0.02 * t as f64, 20.0 + t as f64, e)
        })
        .collect();
    // none seed 0: only 8 steps; eval 0.1, 0.2.
    let n0: Vec<String> = (1..=8u64)
        .map(|t| {
            let e = match t {
                4 => Some(0.1),
                8 => Some(0.2),
                _ => None,
            };
            line(t, 0.5, 30.0, e)
        })
        .collect();
    // none seed 1: 12 steps; eval 0.3, 0.1, 0.0 (null on other steps).
    let n1: Vec<String> = (1..=12u64)
        .map(|t| {
            let e = match t {
                4 => Some(0.3),
                8 => Some(0.1),
                12 => Some(0.0),
                _ => None,
            };
            let mut v: Value = serde_json::from_str(&line(t, 0.3, 40.0, e)).unwrap();
            if e.is_none() {
                v["eval_accuracy"] = Value::Null;
            }
            v.to_string()
        })
        .collect();
    let a: Vec<String> = (1..=4u64)
        .map(|t| line(t, 0.9, 5.0, (t % 2 == 0).then_some(0.8 - 0.075 * t as f64)))
        .collect();
    let z: Vec<String> = vec![line(1, 0.1, 7.0, Some(0.1))];
    vec![
        write_run(root, "zz", &cfg("local-bottom", 3), &z),
        write_run(root, "c1", &c1_cfg, &c1),
        write_run(root, "n0", &cfg("none", 0), &n0),
        write_run(root, "global-bottom", &cfg("global-bottom", 9), &a),
        write_run(root, "c0", &cfg("coupled", 0), &c0),
        write_run(root, "n1", &cfg("none", 1), &n1),
    ]
}

fn run_curves(runs: &[PathBuf], out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> = vec!["curves".into()];
    args.extend(runs.iter().map(|p| p.to_str().unwrap().to_string()));
    args.extend(["--out".into(), out.to_str().unwrap().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    rhythm(&refs)
}

#[test]
fn groups_runs_and_computes_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let out = dir.path().join("out");
    let (code, stdout, err) = run_curves(
        &runs,
        &out,
        &[
            "--ema",
            "0.5",
            "--start-accuracy",
            "0.1",
            "--title",
            "Countdown <tiny>",
        ],
    );
    assert_eq!(code, 0, "{err}");
    // The two `none` runs differ in length: a warning, not an error.
    assert!(err.contains("warning: method 'none'"), "{err}");

    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    close(&doc["ema"], 0.5);
    close(&doc["start_accuracy"], 0.1);
    assert_eq!(doc["title"], "Countdown <tiny>");
    let methods = doc["methods"].as_array().unwrap();
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["none", "coupled", "global-bottom", "local-bottom"]);
    let ns: Vec<u64> = methods.iter().map(|m| m["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, [2, 2, 1, 1]);
    let s2 = std::f64::consts::SQRT_2;

    // none: finals 0.2 (step 8), 0.0 (step 12); peaks 0.2 (8), 0.3 (4).
    let none = &methods[0];
    close(&none["final_eval"]["mean"], 0.1);
    close(&none["final_eval"]["std"], 0.2 / s2);
    close(&none["peak_eval"]["mean"], 0.25);
    close(&none["peak_eval"]["std"], 0.1 / s2);
    close(&none["final_train"]["mean"], 0.4);
    close(&none["final_train"]["std"], 0.2 / s2);
    close(&none["response_len"]["mean"], 35.0);
    close(&none["response_len"]["std"], 10.0 / s2);
    let r = &none["runs"][0];
    assert!(r["dir"].as_str().unwrap().ends_with("n0"), "{r}");
    assert_eq!(r["seed"], 0);
    assert_eq!(r["final_eval_step"], 8);
    assert_eq!(r["peak_step"], 8);
    let r = &none["runs"][1];
    assert_eq!(r["seed"], 1);
    close(&r["final_eval"], 0.0);
    close(&r["peak_eval"], 0.3);
    assert_eq!(r["peak_step"], 4);
    assert_eq!(r["final_eval_step"], 12);
    // Curves over the common steps only, the start accuracy at step 0.
    assert_eq!(none["eval_curve"]["step"], json!([0, 4, 8]));
    close_all(&none["eval_curve"]["mean"], &[0.1, 0.2, 0.15]);
    // The paper's smoothing, s_t = 0.5 max(x_t, s_{t-1}) + 0.5 s_{t-1}:
    // 0.1; 0.5*0.2 + 0.05 = 0.15; 0.5*max(0.15, 0.15) + 0.075 = 0.15.
    close_all(&none["eval_curve"]["peak_ema"], &[0.1, 0.15, 0.15]);
    assert_eq!(none["train_curve"]["step"], json!([1, 2, 3, 4, 5, 6, 7, 8]));
    close_all(&none["train_curve"]["mean"], &[0.4; 8]);

    // coupled: finals 0.4, 0.6; peaks 0.5 (8), 0.6 (12); train mean of steps
    // 3..=12: 0.075, 0.15; lengths 17.5, 27.5.
    let c = &methods[1];
    close(&c["final_eval"]["mean"], 0.5);
    close(&c["final_eval"]["std"], 0.2 / s2);
    close(&c["peak_eval"]["mean"], 0.55);
    close(&c["peak_eval"]["std"], 0.1 / s2);
    close(&c["final_train"]["mean"], 0.1125);
    close(&c["final_train"]["std"], 0.075 / s2);
    close(&c["response_len"]["mean"], 22.5);
    close(&c["response_len"]["std"], 10.0 / s2);
    let seeds: Vec<u64> = c["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [1, 0]); // the order given
    assert_eq!(c["runs"][1]["peak_step"], 8);
    assert_eq!(c["eval_curve"]["step"], json!([0, 4, 8, 12]));
    close_all(&c["eval_curve"]["mean"], &[0.1, 0.25, 0.4, 0.5]);
    // The paper's smoothing by hand (a rising series): s = 0.1,
    // 0.5*0.25+0.5*0.1 = 0.175, 0.5*0.4+0.5*0.175 = 0.2875, 0.39375.
    close_all(&c["eval_curve"]["peak_ema"], &[0.1, 0.175, 0.2875, 0.39375]);
    let tm: Vec<f64> = (1..=12).map(|t| 0.015 * t as f64).collect();
    close_all(&c["train_curve"]["mean"], &tm);
    // Plain EMA (no running peak) of the training curve.
    let mut s = tm[0];
    let mut want = vec![s];
    for &x in &tm[1..] {
        s = 0.5 * x + 0.5 * s;
        want.push(s);
    }
    close_all(&c["train_curve"]["ema"], &want);

    // global-bottom: one run, std null; eval 0.65, 0.5 at steps 2, 4.
    let a = &methods[2];
    close(&a["final_eval"]["mean"], 0.5);
    assert!(a["final_eval"]["std"].is_null());
    close(&a["peak_eval"]["mean"], 0.65);
    assert_eq!(a["runs"][0]["peak_step"], 2);
    assert_eq!(a["runs"][0]["seed"], 9);
    // A falling series: 0.1; 0.5*0.65 + 0.05 = 0.375; then x = 0.5 is above
    // s = 0.375: 0.5*0.5 + 0.5*0.375 = 0.4375.
    close_all(&a["eval_curve"]["peak_ema"], &[0.1, 0.375, 0.4375]);

    // The table: rows in method order, mean ± std in percent.
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            ["none ", "coupled ", "global-bottom ", "local-bottom "]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .collect();
    assert_eq!(rows.len(), 4, "{stdout}");
    assert!(rows[0].starts_with("none "), "{stdout}");
    for cell in ["10.0 ± 14.1", "25.0 ± 7.1", "40.0 ± 14.1", "35.0 ± 7.1"] {
        assert!(rows[0].contains(cell), "{}: no {cell}", rows[0]);
    }
    assert!(rows[1].starts_with("coupled "), "{stdout}");
    for cell in ["50.0 ± 14.1", "55.0 ± 7.1", "22.5 ± 7.1"] {
        assert!(rows[1].contains(cell), "{}: no {cell}", rows[1]);
    }
    assert!(rows[2].starts_with("global-bottom ") && rows[2].contains("50.0 ± -"));
    assert!(rows[3].starts_with("local-bottom "));
    assert!(stdout.starts_with("Countdown <tiny>"), "{stdout}");

    // table.md: the same cells, as Markdown.
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(md.starts_with("# Countdown <tiny>"), "{md}");
    assert!(
        md.lines()
            .any(|l| l.starts_with("| none | 2 | 10.0 ± 14.1 | 25.0 ± 7.1 | 40.0 ± 14.1 |")),
        "{md}"
    );
    assert!(
        md.lines()
            .any(|l| l.starts_with("| coupled | 2 | 50.0 ± 14.1 | 55.0 ± 7.1 |")),
        "{md}"
    );

    // The figures: SVG, a thin and a thick line per method, escaped title.
    for (name, title) in [
        ("eval_curves.svg", "Countdown &lt;tiny&gt;: eval accuracy"),
        (
            "train_curves.svg",
            "Countdown &lt;tiny&gt;: training rollout accuracy",
        ),
    ] {
        let svg = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(svg.contains(title), "{name}");
        assert!(svg.contains(">step</text>"), "{name}");
        assert_eq!(svg.matches("<svg").count(), 1, "{name}: one document");
        for m in ["none", "coupled", "global-bottom", "local-bottom"] {
            let lines = svg
                .matches(&format!("<polyline class=\"raw\" data-method=\"{m}\""))
                .count()
                + svg
                    .matches(&format!("<polyline class=\"smooth\" data-method=\"{m}\""))
                    .count();
            assert_eq!(lines, 2, "{name}: {m}");
            assert!(svg.contains(&format!(">{m} (n=")), "{name}: legend {m}");
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{name}");
        // Balanced tags, roughly: every opened group is closed.
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
    }
    // The coupled eval polyline has a point per curve step (4 with step 0).
    let svg = std::fs::read_to_string(out.join("eval_curves.svg")).unwrap();
    let poly = svg
        .lines()
        .find(|l| l.contains("class=\"raw\" data-method=\"coupled\""))
        .unwrap();
    let points = poly.split("points=\"").nth(1).unwrap();
    assert_eq!(points.trim_end_matches("\"/>").split(' ').count(), 4);

    // Atomic writes leave only the four outputs.
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "eval_curves.svg",
            "summary.json",
            "table.md",
            "train_curves.svg"
        ]
    );
}

#[test]
fn defaults_without_start_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let out = dir.path().join("o");
    let (code, stdout, err) = run_curves(&runs[1..2], &out, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("method"), "{stdout}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    close(&doc["ema"], 0.3);
    assert!(doc["start_accuracy"].is_null());
    let c = &doc["methods"][0];
    assert_eq!(c["method"], "coupled");
    assert_eq!(c["eval_curve"]["step"], json!([4, 8, 12]));
    // eval 0.3, 0.3, 0.6, paper's smoothing with 0.3: 0.3, 0.3, 0.3*0.6 + 0.7*0.3 = 0.39.
    close_all(&c["eval_curve"]["peak_ema"], &[0.3, 0.3, 0.39]);
}

#[test]
fn bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let runs = fixture(dir.path());
    let out = dir.path().join("out");
    let check = |runs: &[PathBuf], extra: &[&str], want: &[&str]| {
        let (code, _, err) = run_curves(runs, &out, extra);
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        for w in want {
            assert!(err.contains(w), "{err}: no {w}");
        }
        assert!(!err.contains("panicked"), "{err}");
    };

    // A malformed metrics line: file and line.
    let bad = write_run(
        dir.path(),
        "bad",
        &cfg("local", 0),
        &[
            line(1, 0.5, 3.0, Some(0.1)),
            line(2, 0.5, 3.0, None),
            "{\"step\": 3, \"accuracy\": 0.5,".into(),
        ],
    );
    let want = format!(
        "{}:3: expected a JSON object: ",
        bad.join("metrics.jsonl").display()
    );
    check(&[runs[0].clone(), bad], &[], &[&want]);

    // A line that is JSON but not an object.
    let arr = write_run(
        dir.path(),
        "arr",
        &cfg("local", 0),
        &[line(1, 0.5, 3.0, Some(0.1)), "[1, 2]".into()],
    );
    check(
        &[arr],
        &[],
        &["arr/metrics.jsonl:2: expected a JSON object"],
    );

    // A missing field and a value out of range.
    let miss = write_run(
        dir.path(),
        "miss",
        &cfg("local", 0),
        &[{
            let mut v: Value = serde_json::from_str(&line(1, 0.5, 3.0, Some(0.1))).unwrap();
            v.as_object_mut().unwrap().remove("accuracy");
            v.to_string()
        }],
    );
    check(
        &[miss],
        &[],
        &["miss/metrics.jsonl:1: missing field `accuracy`"],
    );
    let range = write_run(
        dir.path(),
        "range",
        &cfg("local", 0),
        &[line(1, 0.5, 3.0, Some(45.0))],
    );
    check(
        &[range],
        &[],
        &["range/metrics.jsonl:1: \"eval_accuracy\" = 45"],
    );

    // Steps out of order.
    let order = write_run(
        dir.path(),
        "order",
        &cfg("local", 0),
        &[line(2, 0.5, 3.0, Some(0.1)), line(1, 0.5, 3.0, None)],
    );
    check(
        &[order],
        &[],
        &["order/metrics.jsonl:2: step 1 does not come after step 2"],
    );

    // A run without evaluation steps is named.
    let noeval = write_run(
        dir.path(),
        "noeval",
        &cfg("local", 0),
        &[line(1, 0.5, 3.0, None), line(2, 0.5, 3.0, None)],
    );
    check(
        &[noeval],
        &[],
        &["noeval/metrics.jsonl: no evaluation steps"],
    );

    // An empty metrics file, a missing directory, a bad config.
    let empty = write_run(dir.path(), "empty", &cfg("local", 0), &[]);
    check(&[empty], &[], &["empty/metrics.jsonl: no steps"]);
    check(&[dir.path().join("nope")], &[], &["nope: not a directory"]);
    let badcfg = write_run(
        dir.path(),
        "badcfg",
        "model = \"m\"\nseed = \"one\"\n",
        &[line(1, 0.5, 3.0, Some(0.1))],
    );
    check(
        &[badcfg],
        &[],
        &["badcfg/config.toml: line 2, key `seed`: invalid type: string \"one\""],
    );
    let badtoml = write_run(
        dir.path(),
        "badtoml",
        "model = \"m\"\nstrategy = [\n",
        &[line(1, 0.5, 3.0, Some(0.1))],
    );
    check(&[badtoml], &[], &["badtoml/config.toml:", "not valid TOML"]);
    let nocfg = dir.path().join("nocfg");
    std::fs::create_dir_all(&nocfg).unwrap();
    check(&[nocfg], &[], &["nocfg/config.toml"]);

    // Runs of one method that share no evaluation step.
    let e1 = write_run(
        dir.path(),
        "e1",
        &cfg("global", 0),
        &[line(1, 0.5, 3.0, Some(0.1)), line(2, 0.5, 3.0, None)],
    );
    let e2 = write_run(
        dir.path(),
        "e2",
        &cfg("global", 1),
        &[line(1, 0.5, 3.0, None), line(2, 0.5, 3.0, Some(0.2))],
    );
    check(
        &[e1, e2],
        &[],
        &["method 'global'", "share no evaluation step"],
    );

    // Bad flags and a run given twice.
    check(&runs[..1], &["--ema", "0"], &["--ema"]);
    check(
        &runs[..1],
        &["--start-accuracy", "41"],
        &["--start-accuracy"],
    );
    check(&[runs[0].clone(), runs[0].clone()], &[], &["given twice"]);

    // Nothing was written.
    assert!(!out.exists());
    // No run directory at all: clap's usage error, also status 2.
    let (code, _, _) = rhythm(&["curves", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2);
}
