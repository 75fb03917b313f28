//! `rhythm perturb`: the perturbation test of SPEC section 12 (the paper's
//! table 1). Forcing an alternative token at a high-FAI position should
//! change the rest of the greedy response more (lower Jaccard similarity of
//! content words) than at a low-FAI position.
//!
//! Per problem: the greedy response `o` (or the given response); the
//! `k_pos` response positions of highest and of lowest analysis FAI,
//! leaving out the first and the last `ceil(0.1 n)` positions (the bottom
//! positions are taken among those not already at the top); at each, the
//! `k_cand` most likely tokens under `p(. | o_<i)` other than `o_i` (ties
//! toward the smaller id), each forced at `i` and continued greedily for
//! `h` tokens, where `h` is the original length after `i` (capped by
//! `--max-continuation`). The continuation is compared with the original
//! `o_{i+1..i+h}` by the Jaccard index of their content-word sets (two empty
//! sets count as identical, 1).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Result;
use clap::Args;
use rhythm_model::{DeviceSettings, SamplingParams};
use serde_json::{json, Value};

use crate::analyze::{params_json, prepare, probe, AnalysisOpts, PromptBuilder};
use crate::common::progress;
use crate::jsonl::{check_destination, read_records, write_atomic};

/// The paper's figures (Qwen3-4B-Base, 70 problems): top, bottom, Pr(top < bottom).
pub const PAPER: (f64, f64, f64) = (0.534, 0.631, 0.8714);

const STOPWORDS_TXT: &str = include_str!("../assets/stopwords.txt");

/// The shipped English stop-word list.
pub fn stopwords() -> &'static BTreeSet<&'static str> {
    static SET: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        STOPWORDS_TXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// The content words of `text`: maximal runs of letters and digits,
/// lower-cased, minus the stop words.
pub fn content_words(text: &str) -> BTreeSet<String> {
    let stop = stopwords();
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| !stop.contains(w.as_str()))
        .collect()
}

/// Jaccard index `|a ∩ b| / |a ∪ b|`; 1 when both are empty.
pub fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// The response offsets perturbed: `(top, bottom)` by FAI among offsets
/// `cut..n-cut`, `cut = ceil(0.1 n)`; ties toward the smaller offset; bottom
/// positions are chosen among those not in top. Each list is ascending.
pub fn pick_positions(fai: &[f64], k_pos: usize) -> (Vec<usize>, Vec<usize>) {
    let n = fai.len();
    let cut = (n as f64 * 0.1 - 1e-9).ceil().max(0.0) as usize;
    let eligible: Vec<usize> = (cut..n.saturating_sub(cut)).collect();
    let mut by_desc = eligible.clone();
    by_desc.sort_by(|&a, &b| fai[b].total_cmp(&fai[a]).then(a.cmp(&b)));
    let mut top: Vec<usize> = by_desc.into_iter().take(k_pos).collect();
    let mut by_asc: Vec<usize> = eligible.into_iter().filter(|o| !top.contains(o)).collect();
    by_asc.sort_by(|&a, &b| fai[a].total_cmp(&fai[b]).then(a.cmp(&b)));
    let mut bottom: Vec<usize> = by_asc.into_iter().take(k_pos).collect();
    top.sort_unstable();
    bottom.sort_unstable();
    (top, bottom)
}

/// The `k` most likely token ids of `logits` other than `except`, ties
/// toward the smaller id.
pub fn top_candidates(logits: &[f32], except: u32, k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).filter(|&i| i != except).collect();
    idx.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    idx.truncate(k);
    idx
}

/// Arguments of `rhythm perturb`.
#[derive(Args, Debug)]
pub struct PerturbArgs {
    /// A local Hugging Face model directory; default: the bundled Countdown model.
    #[arg(long, default_value = "models/countdown-tiny")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// A JSONL or parquet file of prompts with optional responses (TRL's
    /// standard or conversational format); without a response, the greedy
    /// response is generated.
    #[arg(long)]
    pub input: PathBuf,
    /// Columns, invalid rows and the chat template.
    #[command(flatten)]
    pub data: rhythm_rl::data::DataSettings,
    /// Positions perturbed at each end of the FAI ranking.
    #[arg(long, default_value_t = 3)]
    pub k_pos: usize,
    /// Alternative tokens forced at each position.
    #[arg(long, default_value_t = 3)]
    pub k_cand: usize,
    /// Cap on the continuation compared after a forced token (default: the
    /// original length after it).
    #[arg(long)]
    pub max_continuation: Option<usize>,
    /// Upper bound on the greedy response's length.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Print the JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub opts: AnalysisOpts,
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// Runs `rhythm perturb`.
pub fn run(args: &PerturbArgs) -> Result<()> {
    if let Some(out) = &args.out {
        check_destination(out)?;
    }
    if args.k_pos == 0 || args.k_cand == 0 {
        anyhow::bail!("--k-pos and --k-cand must be at least 1");
    }
    let params = args.opts.params()?;
    let records = read_records(&args.input, &args.data)?;
    let model = args.device.device.load(&args.model)?;
    let layers = args.opts.layers(&model)?;
    let prompts = PromptBuilder::new(&args.data);
    let eos = model.eos_token_ids();
    let greedy = SamplingParams {
        eos_token_ids: eos.clone(),
        ..SamplingParams::greedy(args.max_new_tokens)
    };
    let bar = progress(records.len() as u64, "perturb");
    let mut problems = Vec::new();
    let mut skipped = Vec::new();
    let (mut tops, mut bottoms, mut wins) = (Vec::new(), Vec::new(), 0usize);
    for (i, rec) in records.iter().enumerate() {
        let skip = |why: String, skipped: &mut Vec<Value>| {
            bar.suspend(|| eprintln!("warning: {}: {why}; skipped", rec.origin));
            skipped.push(json!({"origin": rec.origin, "reason": why}));
        };
        let seq = match prepare(&model, &prompts, rec, &greedy, i as u64) {
            Ok(s) => s,
            Err(e) if rec.response.is_none() && e.to_string().contains("response is empty") => {
                skip(e.to_string(), &mut skipped);
                bar.inc(1);
                continue;
            }
            Err(e) => return Err(e),
        };
        let pr = probe(&model, &seq, &layers, &params, 0, true)?;
        let logits = pr.logits.as_ref().expect("asked for logits");
        let ids = seq.ids();
        let p = seq.prompt.len();
        let n = seq.response.len();
        let (top, bottom) = pick_positions(&pr.rhythm.fai, args.k_pos);
        if top.is_empty() || bottom.is_empty() {
            skip(
                format!("response of {n} tokens is too short for top and bottom positions"),
                &mut skipped,
            );
            bar.inc(1);
            continue;
        }
        let score = |offsets: &[usize]| -> Result<(Vec<Value>, f64)> {
            let mut detail = Vec::new();
            let mut means = Vec::new();
            for &o in offsets {
                let t = p + o;
                let after = ids.len() - 1 - t;
                let h = args.max_continuation.map_or(after, |c| c.min(after));
                let row = logits.get(t - 1)?.to_vec1::<f32>()?;
                let cands = top_candidates(&row, ids[t], args.k_cand);
                let original = model.decode(&ids[t + 1..t + 1 + h])?;
                let orig_words = content_words(&original);
                let prompts: Vec<Vec<u32>> = cands
                    .iter()
                    .map(|&c| {
                        let mut v = ids[..t].to_vec();
                        v.push(c);
                        v
                    })
                    .collect();
                let cont = if h > 0 {
                    let params = SamplingParams {
                        eos_token_ids: eos.clone(),
                        ..SamplingParams::greedy(h)
                    };
                    model.model.generate(&prompts, &params)?
                } else {
                    Vec::new()
                };
                let mut js = Vec::new();
                let mut alts = Vec::new();
                for (k, &c) in cands.iter().enumerate() {
                    let toks = cont.get(k).map(|g| g.tokens.as_slice()).unwrap_or(&[]);
                    let text = model.decode(toks)?;
                    let j = jaccard(&orig_words, &content_words(&text));
                    js.push(j);
                    alts.push(json!({"token": c, "text": model.decode(&[c])?, "continuation": text, "jaccard": j}));
                }
                let m = mean(&js);
                means.push(m);
                detail.push(json!({
                    "pos": t,
                    "token": ids[t],
                    "text": model.decode(&ids[t..=t])?,
                    "fai": pr.rhythm.fai[o],
                    "horizon": h,
                    "mean_jaccard": m,
                    "alternatives": alts,
                }));
            }
            Ok((detail, mean(&means)))
        };
        let (top_detail, top_mean) = score(&top)?;
        let (bottom_detail, bottom_mean) = score(&bottom)?;
        tops.push(top_mean);
        bottoms.push(bottom_mean);
        if top_mean < bottom_mean {
            wins += 1;
        }
        problems.push(json!({
            "origin": rec.origin,
            "response_start": p,
            "response_tokens": n,
            "top_mean": top_mean,
            "bottom_mean": bottom_mean,
            "top": top_detail,
            "bottom": bottom_detail,
        }));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let m = problems.len();
    let doc = json!({
        "model": args.model.display().to_string(),
        "input": args.input.display().to_string(),
        "layers": layers,
        "params": params_json(&params),
        "k_pos": args.k_pos,
        "k_cand": args.k_cand,
        "max_continuation": args.max_continuation,
        "max_new_tokens": args.max_new_tokens,
        "problems": m,
        "skipped": skipped,
        "top_mean": mean(&tops),
        "bottom_mean": mean(&bottoms),
        "pr_top_lt_bottom": if m == 0 { f64::NAN } else { wins as f64 / m as f64 },
        "paper": {"top_mean": PAPER.0, "bottom_mean": PAPER.1, "pr_top_lt_bottom": PAPER.2},
        "per_problem": problems,
    });
    // Print first: a failing write of --out must not lose the result.
    let text = serde_json::to_string_pretty(&doc)?;
    if args.json {
        println!("{text}");
    } else {
        println!("{}", table_text(&doc));
    }
    if let Some(out) = &args.out {
        write_atomic(out, text.as_bytes())?;
    }
    Ok(())
}

/// The table as text.
pub fn table_text(doc: &Value) -> String {
    let f = |v: &Value| v.as_f64().map_or("n/a".to_string(), |x| format!("{x:.3}"));
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("n/a".to_string(), |x| format!("{:.2}%", 100.0 * x))
    };
    format!(
        "{:<34} {:>10} {:>10}\n{}\n{:<34} {:>10} {:>10}\n{:<34} {:>10} {:>10}\n{:<34} {:>10} {:>10}\n{} problems, {} skipped; k_pos {}, k_cand {}",
        "", "this run", "paper",
        "-".repeat(56),
        "mean Jaccard at top-FAI positions", f(&doc["top_mean"]), f(&json!(PAPER.0)),
        "mean Jaccard at bottom-FAI positions", f(&doc["bottom_mean"]), f(&json!(PAPER.1)),
        "Pr(top < bottom)", pct(&doc["pr_top_lt_bottom"]), pct(&json!(PAPER.2)),
        doc["problems"],
        doc["skipped"].as_array().map_or(0, |a| a.len()),
        doc["k_pos"],
        doc["k_cand"],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn content_words_drop_stop_words_and_punctuation() {
        let w = content_words("The answer IS 42, so we add 3+4 = 7. Don't stop!");
        assert_eq!(w, set(&["answer", "42", "add", "3", "4", "7", "stop"]));
        assert!(content_words("the and of, it's").is_empty());
        assert_eq!(content_words("Über café"), set(&["über", "café"]));
    }

    #[test]
    fn jaccard_by_hand() {
        let a = set(&["x", "y", "z"]);
        let b = set(&["y", "z", "w", "v"]);
        assert!((jaccard(&a, &b) - 2.0 / 5.0).abs() < 1e-12);
        assert_eq!(jaccard(&a, &a), 1.0);
        assert_eq!(jaccard(&set(&[]), &set(&[])), 1.0);
        assert_eq!(jaccard(&a, &set(&[])), 0.0);
    }

    #[test]
    fn stopword_list_is_standard_and_clean() {
        let s = stopwords();
        for w in ["the", "a", "and", "is", "of", "to", "we", "t", "don"] {
            assert!(s.contains(w), "{w}");
        }
        assert!(s.len() > 150);
        assert!(s.iter().all(|w| w.chars().all(|c| c.is_ascii_lowercase())));
    }

    #[test]
    fn positions_skip_the_ends_and_do_not_overlap() {
        // n = 20: cut = 2, eligible offsets 2..18.
        let mut fai = vec![0.5; 20];
        fai[0] = 9.0; // left out (first 10%)
        fai[19] = 9.0; // left out (last 10%)
        fai[5] = 3.0;
        fai[7] = 2.0;
        fai[9] = 1.0;
        fai[10] = 0.1;
        fai[12] = 0.2;
        let (top, bottom) = pick_positions(&fai, 3);
        assert_eq!(top, vec![5, 7, 9]);
        assert_eq!(bottom, vec![2, 10, 12]);
        // Too few eligible positions: top first, bottom gets the rest.
        let (top, bottom) = pick_positions(&[1.0, 2.0, 3.0], 3);
        assert_eq!((top, bottom), (vec![1], vec![]));
    }

    #[test]
    fn candidates_exclude_the_original_and_break_ties_low() {
        let logits = [0.5f32, 2.0, 2.0, 3.0, -1.0];
        assert_eq!(top_candidates(&logits, 3, 2), vec![1, 2]);
        assert_eq!(top_candidates(&logits, 1, 3), vec![3, 2, 0]);
    }
}
