//! The `rhythm` binary against hostile input (issue #13): absurd sizes in
//! config.json, broken safetensors headers, NaN and overflowing weights,
//! very long lines, huge parameters, implausible checkpoint states, 16-bit
//! maps, runs killed before their first checkpoint and bad output paths.
//! Every case runs under an address-space limit (`prlimit --as`, when the
//! system has it) and must end with a nonzero exit and one line on stderr,
//! `error: ...`, naming what is wrong; never a panic or an abort.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use safetensors::tensor::{serialize_to_file, TensorView};
use safetensors::{Dtype, SafeTensors};

mod common;
use common::root;

/// Address-space limit of every run (bytes).
const AS_LIMIT: u64 = 3 << 30;

fn fixture() -> PathBuf {
    root().join("fixtures/models/tiny-qwen3")
}

/// Runs the binary under the address-space limit: exit code, stdout, stderr.
fn run(args: &[&str]) -> (i32, String, String) {
    let bin = env!("CARGO_BIN_EXE_rhythm");
    let limited = Command::new("prlimit").arg("--version").output().is_ok();
    let mut cmd = if limited {
        let mut c = Command::new("prlimit");
        c.arg(format!("--as={AS_LIMIT}")).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd
        .current_dir(root())
        .env("RAYON_NUM_THREADS", "2")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Expects a clean failure: exit 2 and exactly one stderr line, `error:
/// ...`, holding every needle.
fn fails(args: &[&str], needles: &[&str]) -> String {
    let (code, _, err) = run(args);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(code, 2, "exit {code} for {args:?}; stderr: {err}");
    assert_eq!(lines.len(), 1, "not one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` missing from: {err}");
    }
    lines[0].to_string()
}

/// A copy of the fixture model in `dir`.
fn copy_model(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for e in std::fs::read_dir(fixture()).unwrap().flatten() {
        std::fs::copy(e.path(), m.join(e.file_name())).unwrap();
    }
    m
}

fn set_config(model: &Path, key: &str, value: serde_json::Value) {
    let p = model.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v[key] = value;
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Rewrites `model.safetensors` with every f32 of tensor `name` set by `f`.
fn patch_weight(model: &Path, name: &str, f: impl Fn(usize) -> f32) {
    let p = model.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (n, v) in st.tensors() {
        assert_eq!(v.dtype(), Dtype::F32);
        let mut data = v.data().to_vec();
        if n == name {
            for (i, c) in data.chunks_exact_mut(4).enumerate() {
                c.copy_from_slice(&f(i).to_le_bytes());
            }
        }
        owned.push((n, v.shape().to_vec(), data));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    serialize_to_file(views, None, &p).unwrap();
}

fn probe_args(model: &Path) -> Vec<String> {
    [
        "probe",
        "--model",
        model.to_str().unwrap(),
        "--text",
        "nums: 3 5 7 target: 22",
        "--response-start",
        "3",
        "--layers",
        "all",
        "--stream",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn fixture_probe_runs_under_the_limit() {
    let (code, _, err) = run(&strs(&probe_args(&fixture())));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn absurd_config_sizes_are_refused_before_allocation() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_model(tmp.path());
    for (key, value, limit) in [
        ("num_hidden_layers", 5_000_000u64, "1024"),
        ("vocab_size", 1 << 40, "2097152"),
        ("hidden_size", 1 << 33, "65536"),
        ("intermediate_size", 1 << 30, "262144"),
        ("num_attention_heads", 1 << 20, "1024"),
        ("max_position_embeddings", 1 << 50, "16777216"),
        ("head_dim", 1 << 30, "1024"),
    ] {
        let _ = std::fs::remove_dir_all(&m);
        let m = copy_model(tmp.path());
        set_config(&m, key, serde_json::json!(value));
        fails(
            &strs(&probe_args(&m)),
            &["config.json", key, &value.to_string(), limit],
        );
    }
    // Within each limit, but together too many weights.
    let _ = std::fs::remove_dir_all(&m);
    let m = copy_model(tmp.path());
    set_config(&m, "num_hidden_layers", serde_json::json!(1000));
    set_config(&m, "hidden_size", serde_json::json!(65536));
    set_config(&m, "intermediate_size", serde_json::json!(262144));
    set_config(&m, "head_dim", serde_json::json!(128));
    fails(&strs(&probe_args(&m)), &["config.json", "parameters"]);
    // A 20 MB config.json is not read.
    let _ = std::fs::remove_dir_all(&m);
    let m = copy_model(tmp.path());
    std::fs::write(m.join("config.json"), vec![b' '; 20 << 20]).unwrap();
    fails(&strs(&probe_args(&m)), &["config.json", "bytes"]);
}

#[test]
fn broken_safetensors_headers_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixture().join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let body = &good[8 + n..];
    let with_header = |h: &str, data: &[u8]| {
        let mut h = h.as_bytes().to_vec();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (u64::MAX.to_le_bytes().to_vec(), "header length"),
        (vec![1, 2, 3], "shorter than"),
        (with_header("[1, 2]", body), "not a JSON object"),
        (
            with_header(
                &header.replacen("[64,32]", "[4294967296,4294967296,4294967296]", 1),
                body,
            ),
            "overflows",
        ),
        (with_header(&header, &body[..body.len() / 2]), "outside"),
        (
            with_header(&header.replacen("\"F32\"", "\"Q7\"", 1), body),
            "unknown dtype",
        ),
    ];
    for (i, (bytes, needle)) in cases.into_iter().enumerate() {
        let m = tmp.path().join(format!("m{i}"));
        std::fs::create_dir_all(&m).unwrap();
        for f in ["config.json", "tokenizer.json"] {
            std::fs::copy(fixture().join(f), m.join(f)).unwrap();
        }
        std::fs::write(m.join("model.safetensors"), bytes).unwrap();
        fails(&strs(&probe_args(&m)), &["model.safetensors", needle]);
    }
}

#[test]
fn nan_weights_are_refused_at_load_naming_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    let m = copy_model(tmp.path());
    let name = "model.layers.1.mlp.up_proj.weight";
    patch_weight(&m, name, |i| if i == 77 { f32::NAN } else { 0.01 });
    fails(&strs(&probe_args(&m)), &[name, "NaN", "index 77"]);
    // Training refuses it too.
    let out = tmp.path().join("run");
    fails(
        &[
            "train",
            "--model",
            m.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "1",
            "--no-progress",
        ],
        &[name, "non-finite"],
    );
}

#[test]
fn overflowing_activations_are_caught_in_the_probe() {
    let tmp = tempfile::tempdir().unwrap();
    // Scores overflow in layer 0: q and k norms of 1e30.
    let m = copy_model(tmp.path());
    patch_weight(&m, "model.layers.0.self_attn.q_norm.weight", |_| 1e30);
    patch_weight(&m, "model.layers.0.self_attn.k_norm.weight", |_| 1e30);
    fails(&strs(&probe_args(&m)), &["layer 0", "non-finite attention"]);
    // Logits overflow: final norm of 3e38.
    let _ = std::fs::remove_dir_all(&m);
    let m = copy_model(tmp.path());
    patch_weight(&m, "model.norm.weight", |_| 3e38);
    fails(&strs(&probe_args(&m)), &["non-finite logits", "position"]);
}

#[test]
fn very_long_lines_are_refused_before_tokenizing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("long.jsonl");
    // A 50 MB prompt: tokenizing it whole would take over 10 GB.
    let mut text =
        String::from("{\"prompt\": \"nums: 1 2 target: 3\", \"answer\": \"3\"}\n{\"prompt\": \"");
    text.push_str(&"nums: 3 5 7 ".repeat(50 << 20 >> 4));
    text.push_str("\"}\n");
    std::fs::write(&input, text).unwrap();
    let i = input.to_str().unwrap();
    fails(
        &["stats", "--input", i],
        &[
            "long.jsonl:2",
            "bytes is longer than the 1048576-byte limit",
        ],
    );
    // A training dataset line likewise.
    let out = tmp.path().join("run");
    fails(
        &[
            "train",
            "--model",
            fixture().to_str().unwrap(),
            "--task",
            "math",
            "--dataset",
            i,
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ],
        &["long.jsonl:2", "1048576-byte limit"],
    );
    // A 100 kB --text: the first 4 kB already exceed the 128 positions.
    let long = "nums: 3 5 7 ".repeat(100_000 / 12);
    let mut args = probe_args(&fixture());
    args[4] = long;
    fails(
        &strs(&args),
        &["max_position_embeddings = 128", "first 4096 bytes"],
    );
}

#[test]
fn huge_proximity_and_horizon_do_not_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (flag, value)) in [
        ("--proximity", "18446744073709551615"),
        ("--horizon", "18446744073709551615:18446744073709551615"),
        ("--horizon", "0:18446744073709551615"),
        ("--window", "18446744073709551615"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("a{i}"));
        let (code, _, err) = run(&[
            "analyze",
            "--prompt",
            "nums: 3 5 7 target: 22",
            "--response",
            " 3 + 5 = 8, 8 * 7 = 56",
            flag,
            value,
            "--out",
            out.to_str().unwrap(),
        ]);
        // Either a result or a one-line refusal; never a panic.
        assert!(code == 0 || code == 2, "{flag} {value}: exit {code}: {err}");
        if code == 0 {
            assert!(out.join("analysis.json").is_file());
        } else {
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}

/// A short run's output directory (1 step, a checkpoint).
fn short_run(out: &Path, steps: &str) {
    let (code, _, err) = run(&[
        "train",
        "--model",
        fixture().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        steps,
        "--save-interval",
        "1",
        "--prompts-per-batch",
        "1",
        "--group-size",
        "2",
        "--max-new-tokens",
        "4",
        "--train-size",
        "4",
        "--test-size",
        "1",
        "--eval-interval",
        "1",
        "--eval-size",
        "1",
        "--no-progress",
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn implausible_checkpoint_states_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    short_run(&out, "1");
    let o = out.to_str().unwrap();
    let sp = out.join("checkpoint-000001/trainer_state.json");
    let good = std::fs::read_to_string(&sp).unwrap();
    for (edit, needle) in [
        (
            ("step", serde_json::json!(1_000_000_000_000u64)),
            "step = 1000000000000 exceeds",
        ),
        (
            ("adam_t", serde_json::json!(u64::MAX)),
            "adam_t = 18446744073709551615 exceeds",
        ),
    ] {
        let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
        v[edit.0] = edit.1;
        std::fs::write(&sp, v.to_string()).unwrap();
        fails(
            &["train", "--resume", o, "--no-progress"],
            &[needle, "no intact checkpoint"],
        );
    }
    std::fs::write(&sp, "{\"step\": ").unwrap();
    fails(
        &["train", "--resume", o, "--no-progress"],
        &["trainer_state.json"],
    );
}

#[test]
fn run_killed_before_its_first_checkpoint_resumes_from_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    short_run(&a, "2");
    // What a run killed after step 1's metrics line (and a stale temp
    // directory and pointer) leaves: config.toml, metrics.jsonl, temps.
    let b = tmp.path().join("b");
    std::fs::create_dir_all(b.join(".checkpoint-000002.tmp999999")).unwrap();
    std::fs::write(b.join(".latest.tmp999999"), "x").unwrap();
    let toml = std::fs::read_to_string(a.join("config.toml"))
        .unwrap()
        .replace(a.to_str().unwrap(), b.to_str().unwrap());
    std::fs::write(b.join("config.toml"), toml).unwrap();
    let first = std::fs::read_to_string(a.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(
        b.join("metrics.jsonl"),
        format!("{first}\n{{\"step\": 2, \"rew"),
    )
    .unwrap();
    let (code, _, err) = run(&["train", "--resume", b.to_str().unwrap(), "--no-progress"]);
    assert_eq!(code, 0, "{err}");
    let lines = std::fs::read_to_string(b.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2], "{lines}");
    for f in ["model.safetensors", "optimizer.safetensors"] {
        assert_eq!(
            std::fs::read(a.join("checkpoint-000002").join(f)).unwrap(),
            std::fs::read(b.join("checkpoint-000002").join(f)).unwrap(),
            "{f}"
        );
    }
    let names: Vec<String> = std::fs::read_dir(&b)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    // `rhythm curves` reads the result.
    let (code, _, err) = run(&[
        "curves",
        b.to_str().unwrap(),
        "--out",
        tmp.path().join("curves").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}

/// Writes `attn.{l}` maps `[heads, n, n]` as bf16 (or f16) bytes.
fn write_half_maps(
    path: &Path,
    dtype: Dtype,
    layers: usize,
    heads: usize,
    n: usize,
    row: impl Fn(usize, usize) -> f32,
) {
    let mut owned = Vec::new();
    for l in 0..layers {
        let mut bytes = Vec::with_capacity(heads * n * n * 2);
        for _h in 0..heads {
            for t in 0..n {
                for s in 0..n {
                    let x = if s <= t { row(t, s) } else { 0.0 };
                    let b = match dtype {
                        Dtype::BF16 => half::bf16::from_f32(x).to_le_bytes(),
                        _ => half::f16::from_f32(x).to_le_bytes(),
                    };
                    bytes.extend_from_slice(&b);
                }
            }
        }
        owned.push((format!("attn.{l}"), bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(name, b)| {
            (
                name.clone(),
                TensorView::new(dtype, vec![heads, n, n], b).unwrap(),
            )
        })
        .collect();
    let meta = HashMap::from([("response_start".to_string(), "8".to_string())]);
    serialize_to_file(views, Some(meta), path).unwrap();
}

#[test]
fn sixteen_bit_maps_rounded_from_valid_rows_score() {
    let tmp = tempfile::tempdir().unwrap();
    for dtype in [Dtype::BF16, Dtype::F16] {
        // Uniform causal rows 1/(t+1): rounding each entry moves a bf16 row
        // sum by up to 2^-8 (1/15 -> 0.06689453, the row sums to 1.00342,
        // outside the f32 tolerance 1e-3).
        let p = tmp.path().join(format!("{dtype:?}.safetensors"));
        write_half_maps(&p, dtype, 2, 2, 40, |t, _| 1.0 / (t + 1) as f32);
        let (code, out, err) = run(&["score", p.to_str().unwrap(), "--json"]);
        assert_eq!(code, 0, "{dtype:?}: {err}");
        assert!(out.contains("gamma"), "{out}");
        // A row summing to 1.01 is still refused.
        let q = tmp.path().join(format!("{dtype:?}-bad.safetensors"));
        write_half_maps(&q, dtype, 2, 2, 40, |t, s| {
            1.0 / (t + 1) as f32
                * if t == 20 && s == 0 {
                    1.0 + 0.01 * 21.0
                } else {
                    1.0
                }
        });
        fails(
            &["score", q.to_str().unwrap(), "--json"],
            &["row 20", "sums to"],
        );
    }
}

#[test]
fn bad_out_paths_fail_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("p.jsonl");
    std::fs::write(&input, "{\"prompt\": \"nums: 3 5 7 target: 22\"}\n").unwrap();
    let missing = tmp.path().join("no/such/dir/out.json");
    for cmd in ["stats", "perturb"] {
        fails(
            &[
                cmd,
                "--input",
                input.to_str().unwrap(),
                "--out",
                missing.to_str().unwrap(),
            ],
            &["--out", "does not exist"],
        );
    }
}
