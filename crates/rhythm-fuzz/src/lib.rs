//! Fuzz targets for every reader of outside input: the safetensors header
//! check, `config.json`, the JSONL readers (datasets and the CLI's prompt
//! files), TOML training configs, the Countdown / math / choice answer
//! parsers, and the attention-map checks and summaries behind `rhythm
//! score`.
//!
//! Each target takes arbitrary bytes and must return without panicking,
//! aborting or allocating without bound; some also check invariants (one-
//! line error messages, agreement with the safetensors crate). They run
//! two ways (docs/reliability.md):
//!
//! * coverage-guided, as libFuzzer binaries (`--features libfuzzer`, built
//!   with the sanitizer-coverage passes on stable Rust);
//! * as a bounded mutation run on stable in `tests/fuzz.rs`, which also
//!   replays the committed corpora in `corpus/<target>/`.

use std::path::Path;

use rhythm_core::{HeadMap, HeadSummary, SummaryConfig};
use rhythm_model::weights::{check_header, check_safetensors_bytes};
use rhythm_model::Config;

/// The CLI's JSONL reader, compiled in from the binary crate's source.
#[allow(dead_code)]
#[path = "../../rhythm-cli/src/jsonl.rs"]
mod cli_jsonl;

/// The names of the targets (and of their corpus folders).
pub const TARGETS: &[&str] = &[
    "safetensors",
    "config_json",
    "jsonl",
    "toml",
    "answers",
    "maps",
];

/// Runs target `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "safetensors" => safetensors(data),
        "config_json" => config_json(data),
        "jsonl" => jsonl(data),
        "toml" => toml(data),
        "answers" => answers(data),
        "maps" => maps(data),
        _ => return false,
    }
    true
}

fn one_line(msg: &str) {
    assert!(!msg.contains('\n'), "a multi-line error message: {msg:?}");
}

/// The safetensors header check ([`check_safetensors_bytes`]) on a whole
/// file, against the safetensors crate: a file that crate accepts must pass
/// the check too (which is looser: it allows gaps between tensors).
pub fn safetensors(data: &[u8]) {
    let ours = check_safetensors_bytes(data);
    if let Err(e) = &ours {
        one_line(e);
    }
    if let Ok(st) = ::safetensors::SafeTensors::deserialize(data) {
        let n = ours.unwrap_or_else(|e| panic!("safetensors accepts, we refuse: {e}"));
        assert_eq!(n, st.len(), "tensor count");
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

/// `config.json`: parsing and validation; an accepted configuration has a
/// finite weight count and a weight list that can be built.
pub fn config_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_json_str(text, Path::new("config.json")) {
        Ok(cfg) => {
            assert!(cfg.parameter_count().is_some());
            let specs = rhythm_model::weight_specs(&cfg);
            assert!(!specs.is_empty());
            let _ = cfg.rope_scaling();
            let _ = cfg.eos_ids();
        }
        Err(e) => one_line(&e.to_string()),
    }
}

/// The JSONL readers: datasets (any shape, Countdown, prompt/answer) and
/// the CLI's prompt files; every error is one line.
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
    if let Err(e) = cli_jsonl::parse_records("f.jsonl", text) {
        one_line(&format!("{e:#}"));
    }
}

/// TOML training configurations: parsing, validation, and the derived
/// rhythm parameters of an accepted one.
pub fn toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = rhythm_rl::config::TrainConfig::from_toml_str(text) {
        if cfg.validate().is_ok() {
            let _ = cfg.params();
            let _ = cfg.to_toml();
        }
    }
}

/// The answer parsers. The first line names the problem, the rest is the
/// response: `nums... target` for Countdown (also parsed as an expression
/// directly), a reference answer for math, a key for multiple choice.
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
    }
    if let Ok(e) = countdown::Expr::parse(response) {
        let _ = e.eval();
        let _ = e.uses_exactly(&nums);
        let _ = e.literals().count();
    }
    let _ = countdown::extract_answer(response);
    let _ = math::verify(response, head);
    let _ = math::reward(response, head);
    let _ = math::normalize(response);
    let _ = math::parse_number(head);
    let _ = math::extract_boxed(response);
    let _ = choice::verify(response, head);
    let _ = choice::extract_choice(response);
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
