//! Fuzz targets for every reader of outside input: the safetensors header
//! check and `rhythm score`'s maps-file reader, `config.json`, the other
//! files of a model directory (`tokenizer.json`, `generation_config.json`,
//! `model.safetensors.index.json`), the JSONL readers (datasets, the CLI's
//! prompt files, the `metrics.jsonl` of `rhythm curves` and of a resumed
//! run), TOML training configs (also as `rhythm curves` reads them),
//! checkpoint states (`trainer_state.json` and the file manifest in it),
//! the Countdown / math / choice answer parsers, and the attention-map
//! checks and summaries behind `rhythm score`.
//!
//! Each target takes arbitrary bytes and must return without panicking,
//! aborting or allocating without bound; each also checks invariants that
//! are cheap to state: one-line error messages, agreement with the
//! safetensors crate, round trips (Countdown records, TOML configs,
//! printed expressions and numbers), accepted maps obeying the row-sum
//! rule, accepted states obeying their bounds. Readers that only take a
//! path get the bytes through a file in a per-process scratch directory
//! ([`scratch`]); where a cheaper in-memory check already rejects the
//! input, the file is skipped. They run two ways (docs/reliability.md):
//!
//! * coverage-guided, as libFuzzer binaries (`--features libfuzzer`, built
//!   with the sanitizer-coverage passes on stable Rust);
//! * as a bounded mutation run on stable in `tests/fuzz.rs`, which also
//!   replays the committed corpora in `corpus/<target>/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rhythm_core::{HeadMap, HeadSummary, SummaryConfig};
use rhythm_model::weights::{check_header, check_safetensors_bytes};
use rhythm_model::Config;

// Modules of the `rhythm` binary crate, compiled in from its source (it has
// no library target); `crate::jsonl` and `crate::common` are the paths they
// use for each other.
#[allow(dead_code)]
#[path = "../../rhythm-cli/src/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../../rhythm-cli/src/curves/mod.rs"]
mod curves;
#[allow(dead_code)]
#[path = "../../rhythm-cli/src/jsonl.rs"]
mod jsonl;
#[allow(dead_code)]
#[path = "../../rhythm-cli/src/score.rs"]
mod score;

/// The names of the targets (and of their corpus folders).
pub const TARGETS: &[&str] = &[
    "safetensors",
    "config_json",
    "model_files",
    "jsonl",
    "toml",
    "checkpoint",
    "answers",
    "maps",
];

/// This process's scratch directory (`$TMPDIR/rhythm-fuzz-PID`), made on
/// first use, for the readers that take a path. [`remove_scratch`] deletes
/// it; a libFuzzer process leaves it behind (it exits without unwinding).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("rhythm-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    })
}

/// Deletes this process's scratch directory, if it was made.
pub fn remove_scratch() {
    let d = std::env::temp_dir().join(format!("rhythm-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(d);
}

/// Writes `data` to `name` in [`scratch`] and returns the path.
fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let p = scratch().join(name);
    std::fs::write(&p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p
}

/// Runs target `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "safetensors" => safetensors(data),
        "config_json" => config_json(data),
        "model_files" => model_files(data),
        "jsonl" => jsonl(data),
        "toml" => toml(data),
        "checkpoint" => checkpoint(data),
        "answers" => answers(data),
        "maps" => maps(data),
        _ => return false,
    }
    true
}

fn one_line(msg: &str) {
    assert!(!msg.contains('\n'), "a multi-line error message: {msg:?}");
}

/// An error of the CLI's modules, printed as `rhythm` prints it (main.rs
/// joins the causes with `: ` and turns line breaks into spaces, so text
/// from the file may hold them): it must say something.
fn cli_error(e: &anyhow::Error) {
    let msg = format!("{e:#}").replace('\n', " ");
    assert!(!msg.trim().is_empty(), "an empty error message");
}

/// The safetensors header check ([`check_safetensors_bytes`]) on a whole
/// file, against the safetensors crate: a file that crate accepts must pass
/// the check too (which is looser: it allows gaps between tensors). Such a
/// file is also read as `rhythm score`'s maps file; accepted maps are
/// checked and summarized, and every head that passes the check has rows
/// that are non-negative, causal and sum to 1 within the dtype's tolerance.
pub fn safetensors(data: &[u8]) {
    let ours = check_safetensors_bytes(data);
    if let Err(e) = &ours {
        one_line(e);
    }
    if let Ok(st) = ::safetensors::SafeTensors::deserialize(data) {
        let n = ours.unwrap_or_else(|e| panic!("safetensors accepts, we refuse: {e}"));
        assert_eq!(n, st.len(), "tensor count");
        score_maps(data);
    }
    // The header alone against a few data lengths.
    if data.len() > 8 {
        for len in [0u64, 1, data.len() as u64, u64::MAX] {
            if let Err(e) = check_header(&data[8..], len) {
                one_line(&e);
            }
        }
    }
}

/// `rhythm score`'s reader and checks on a safetensors file.
fn score_maps(data: &[u8]) {
    let path = scratch_file("maps.safetensors", data);
    let file = match score::read_maps(&path) {
        Ok(f) => f,
        Err(e) => return cli_error(&e),
    };
    let n = file.seq_len;
    assert!(n > 0 && file.heads > 0);
    if let Some(e) = &file.entropy {
        assert_eq!(e.len(), n);
        assert!(e.iter().all(|x| x.is_finite()), "entropy {e:?}");
    }
    let p = file.response_start.unwrap_or(0).min(n - 1);
    let cfg = SummaryConfig {
        response_start: p,
        seq_len: n,
        window: 2,
        horizon: (1, usize::MAX),
        proximity: 1,
    };
    let tol = rhythm_core::maps::row_sum_tolerance(&file.dtype, n);
    for (&layer, maps) in &file.layers {
        assert_eq!(maps.len(), file.heads * n * n, "layer {layer} size");
        match score::summarize_maps(&path, &file, &[layer], &cfg) {
            Ok(s) => {
                assert_eq!(s.len(), file.heads);
                for m in maps.chunks_exact(n * n) {
                    assert_rows_valid(m, n, tol);
                }
            }
            Err(e) => cli_error(&e),
        }
    }
}

/// Every row of an accepted `n x n` map is finite, non-negative, (nearly)
/// zero above the diagonal and sums to 1 within `tol`.
fn assert_rows_valid(map: &[f32], n: usize, tol: f64) {
    for (t, row) in map.chunks_exact(n).enumerate() {
        assert!(row.iter().all(|a| a.is_finite() && *a >= 0.0), "row {t}");
        assert!(
            row[t + 1..].iter().all(|a| *a <= 1e-6),
            "row {t} not causal"
        );
        let sum: f64 = row.iter().map(|&a| a as f64).sum();
        assert!((sum - 1.0).abs() <= tol, "row {t} sums to {sum}, tol {tol}");
    }
}

/// `config.json`: parsing and validation; an accepted configuration stays
/// inside the documented limits, has a weight count and a weight list that
/// can be built.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_json_str(text, Path::new("config.json")) {
        Ok(cfg) => {
            let count = cfg
                .parameter_count()
                .expect("an accepted config has a weight count");
            assert!(count <= 1 << 40, "{count} weights");
            assert!(cfg.num_hidden_layers <= 1024 && cfg.vocab_size <= 1 << 21);
            let specs = rhythm_model::weight_specs(&cfg);
            assert!(!specs.is_empty());
            let _ = cfg.rope_scaling();
            let _ = cfg.eos_ids();
        }
        Err(e) => one_line(&e.to_string()),
    }
}

/// The other files of a model directory, each read from the same bytes:
/// `tokenizer.json` (through the tokenizers crate), `generation_config.json`
/// and `model.safetensors.index.json` (whose shard names must stay inside
/// the directory). Every error is one line.
pub fn model_files(data: &[u8]) {
    let dir = scratch().join("model");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let write = |name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    };
    // Valid JSON only past the tokenizers crate's own parser (it is not
    // instrumented; the inputs that reach it are what matter).
    if serde_json::from_slice::<serde_json::Value>(data).is_ok() {
        let p = write("tokenizer.json");
        match rhythm_model::pretrained::load_tokenizer(&p) {
            Ok(tok) => {
                let _ = tok.encode("12 + 3 = 15", false);
            }
            Err(e) => one_line(&e.to_string()),
        }
    }
    let p = write("generation_config.json");
    if let Err(e) = rhythm_model::GenerationDefaults::from_file(&p) {
        one_line(&e.to_string());
    }
    write("model.safetensors.index.json");
    match rhythm_model::weights::weight_files(&dir) {
        Ok(files) => {
            for f in files {
                assert!(
                    f.starts_with(&dir),
                    "shard {} outside the directory",
                    f.display()
                );
            }
        }
        Err(e) => one_line(&e.to_string()),
    }
}

/// The JSONL readers: datasets (any shape, Countdown, prompt/answer), the
/// CLI's prompt files and `rhythm curves`' `metrics.jsonl`; every error is
/// one line, Countdown records round-trip, accepted metrics have increasing
/// steps and accuracies in `[0, 1]`.
pub fn jsonl(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use rhythm_rl::dataset;
    if let Err(e) = dataset::parse_jsonl(text, "f.jsonl") {
        one_line(&e.to_string());
    }
    match dataset::parse_countdown(text, "f.jsonl") {
        Ok(v) => {
            // Serialising and reading back gives the same instances.
            let back = dataset::parse_countdown(&dataset::countdown_to_jsonl(&v), "g")
                .expect("round trip");
            assert_eq!(back.len(), v.len());
        }
        Err(e) => one_line(&e.to_string()),
    }
    if let Err(e) = dataset::parse_prompt_answer(text, "f.jsonl") {
        one_line(&e.to_string());
    }
    if let Err(e) = jsonl::parse_records("f.jsonl", text) {
        cli_error(&e);
    }
    match curves::read::parse_metrics("metrics.jsonl", text) {
        Ok(rows) => {
            for w in rows.windows(2) {
                assert!(w[0].step < w[1].step, "steps {} {}", w[0].step, w[1].step);
            }
            for r in &rows {
                assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
                assert!(r.eval_accuracy.is_none_or(|a| (0.0..=1.0).contains(&a)));
            }
        }
        Err(e) => cli_error(&e),
    }
}

/// TOML training configurations: parsing, validation, the derived rhythm
/// parameters of a valid one, and its round trip (written and read back, it
/// is the same configuration); also `rhythm curves`' reading of a run's
/// `config.toml`.
pub fn toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use rhythm_rl::config::TrainConfig;
    match TrainConfig::from_toml_str(text) {
        Ok(cfg) => {
            if cfg.validate().is_ok() {
                let _ = cfg.params();
                let written = cfg.to_toml();
                let back = TrainConfig::from_toml_str(&written)
                    .unwrap_or_else(|e| panic!("written config unreadable: {e}\n{written}"));
                assert!(back == cfg, "round trip changed the config:\n{written}");
            }
        }
        Err(e) => one_line(&e.to_string()),
    }
    if let Err(e) = curves::read::parse_config("config.toml", text) {
        cli_error(&e);
    }
}

/// Checkpoint states: `trainer_state.json` read by `checkpoint::load_state`
/// and checked with its file manifest by `checkpoint::verify` (inputs that
/// do not even deserialize skip the file); an accepted state keeps
/// `step <= config.steps` and the `adam_t` bound. The same bytes as a run's
/// `metrics.jsonl`, cut back by `trainer::truncate_metrics` to steps
/// `1..=3`, leave a prefix of whole lines numbered 1, 2, 3.
pub fn checkpoint(data: &[u8]) {
    use rhythm_rl::checkpoint;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = checkpoint::checkpoint_step(text);
        let _ = checkpoint::is_stale_temp(text);
    }
    if serde_json::from_slice::<checkpoint::TrainerState>(data).is_ok() {
        let dir = scratch().join("checkpoint-000003");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let p = dir.join(checkpoint::STATE_FILE);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        match checkpoint::load_state(&dir) {
            Ok(st) => {
                assert!(st.step <= st.config.steps);
                assert!(
                    st.adam_t <= (st.step as u64).saturating_mul(checkpoint::MAX_UPDATES_PER_STEP)
                );
            }
            Err(e) => one_line(&e.to_string()),
        }
        if let Err(e) = checkpoint::verify(&dir) {
            one_line(&e.to_string());
        }
    }
    let p = scratch_file("metrics.jsonl", data);
    rhythm_rl::trainer::truncate_metrics(&p, 3).expect("truncate_metrics");
    let kept = std::fs::read(&p).expect("metrics.jsonl");
    assert!(data.starts_with(&kept), "not a prefix");
    assert!(kept.is_empty() || kept.ends_with(b"\n"));
    let lines: Vec<&[u8]> = kept.split_inclusive(|&b| b == b'\n').collect();
    assert!(lines.len() <= 3);
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_slice(l).expect("kept line is JSON");
        assert_eq!(v.get("step").and_then(|s| s.as_u64()), Some(i as u64 + 1));
    }
}

/// The answer parsers. The first line names the problem, the rest is the
/// response: `nums... target` for Countdown (also parsed as an expression
/// directly), a reference answer for math, a key for multiple choice.
/// Checked: a parsed expression prints as one that parses and has the
/// same value; one that uses the numbers and hits the target is judged
/// correct in answer tags; a number prints as one that reads back the same;
/// the letter a response chooses is accepted as its key.
pub fn answers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    use rhythm_rl::verify::{choice, countdown, math};
    let (head, response) = text.split_once('\n').unwrap_or((text, ""));
    let nums: Vec<u32> = head
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    if let Some((&target, nums)) = nums.split_last() {
        let o = countdown::verify(response, nums, target);
        let _ = countdown::reward(o, 0.1);
        let _ = countdown::check_expression(head, nums, target);
        if let Ok(e) = countdown::Expr::parse(response) {
            let value = e.eval();
            if e.uses_exactly(nums) && value == Ok(target.into()) && !response.contains("answer>") {
                let tagged = format!("<think>.</think><answer>{response}</answer>");
                assert_eq!(
                    countdown::verify(&tagged, nums, target),
                    countdown::Outcome::Correct
                );
            }
        }
    }
    if let Ok(e) = countdown::Expr::parse(response) {
        let value = e.eval();
        let _ = e.uses_exactly(&nums);
        if e.literals().all(|l| l.is_some()) {
            let printed = e.to_string();
            let again = countdown::Expr::parse(&printed)
                .unwrap_or_else(|err| panic!("{printed:?} does not parse: {err:?}"));
            if let (Ok(a), Ok(b)) = (&value, again.eval()) {
                assert_eq!(*a, b, "{printed}");
            }
        }
    }
    let _ = countdown::extract_answer(response);
    let _ = math::verify(response, head);
    let _ = math::reward(response, head);
    let _ = math::normalize(response);
    if let Some(r) = math::parse_number(head) {
        let printed = r.to_string();
        assert_eq!(math::parse_number(&printed), Some(r), "{printed}");
    }
    let _ = math::extract_boxed(response);
    let _ = choice::verify(response, head);
    if let Some(c) = choice::extract_choice(response) {
        assert!(choice::verify(response, &c.to_string()), "chose {c}");
    }
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

/// The map checks and summaries of `rhythm score`. Bytes 0..34 choose the
/// size `N` (1..=12), the dtype tolerance, `P`, and the window, horizon and
/// proximity (full 64-bit values, so overflows are reached); the rest are
/// the `N x N` entries as f32 (missing ones 0). A map that passes the check
/// is summarized with those parameters and compared with the reference
/// formulas.
pub fn maps(data: &[u8]) {
    let n = (data.first().copied().unwrap_or(0) % 12) as usize + 1;
    let dtype = ["F32", "BF16", "F16"][(data.get(1).copied().unwrap_or(0) % 3) as usize];
    let p = (data.get(2).copied().unwrap_or(0) as usize) % n;
    let window = u64_at(data, 3) as usize;
    let lo = u64_at(data, 11) as usize;
    let hi = u64_at(data, 19) as usize;
    let proximity = u64_at(data, 27) as usize;
    let body = data.get(35..).unwrap_or(&[]);
    let mut map = vec![0f32; n * n];
    for (x, c) in map.iter_mut().zip(body.chunks_exact(4)) {
        *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    let head = HeadMap {
        layer: 0,
        head: 0,
        seq_len: n,
        data: &map,
    };
    let tol = rhythm_core::maps::row_sum_tolerance(dtype, n);
    if let Err(e) = head.validate_with_tol(tol) {
        one_line(&e.to_string());
        return;
    }
    assert_rows_valid(&map, n, tol);
    let cfg = SummaryConfig {
        response_start: p,
        seq_len: n,
        window: window.max(1),
        horizon: (lo.min(hi), lo.max(hi)),
        proximity,
    };
    if cfg.validate().is_err() {
        return;
    }
    let s: HeadSummary = head.summarize(&cfg);
    let _ = s.kurtosis();
    let mean = rhythm_core::maps::mean_map(&[&map], n);
    let waad = rhythm_core::maps::waad_of_map(&mean, n, p, cfg.window);
    let fai = rhythm_core::maps::fai_of_map(&mean, n, p, cfg.horizon);
    let vert = rhythm_core::maps::vertical_of_map(&mean, n, p, proximity);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * (1.0 + a.abs().max(b.abs()));
    assert_eq!(s.waad().len(), waad.len());
    for (a, b) in s.waad().iter().zip(&waad) {
        assert!(close(*a, *b), "waad {a} vs {b}");
    }
    for (a, b) in s.fai().iter().zip(&fai) {
        assert!(close(*a, *b), "fai {a} vs {b}");
    }
    let sv = s.vertical_scores();
    assert_eq!(sv.len(), vert.len(), "vertical scores");
    for (a, b) in sv.iter().zip(&vert) {
        assert!(close(*a, *b), "vertical {a} vs {b}");
    }
}
