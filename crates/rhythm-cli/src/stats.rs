//! `rhythm stats`: the coupling statistics of SPEC section 10 (the paper's
//! table 2) over many prompts, micro-averaged.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use rhythm_core::CouplingStats;
use rhythm_model::DeviceSettings;
use serde_json::{json, Value};

use crate::analyze::{params_json, prepare, probe, AnalysisOpts, GenOpts, PromptBuilder};
use crate::common::progress;
use crate::jsonl::{check_destination, read_records, write_atomic};

/// The paper's figures (Qwen3-4B-Base, 70 GSM8K problems): observed, random.
pub const PAPER: [(f64, f64); 3] = [(0.3608, 0.2386), (0.6084, 0.2241), (0.5253, 0.3687)];

/// Arguments of `rhythm stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// A local Hugging Face model directory; default: the bundled Countdown model.
    #[arg(long, default_value = "models/countdown-tiny")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// A JSONL or parquet file of prompts with optional responses (TRL's
    /// standard or conversational format).
    #[arg(long)]
    pub input: PathBuf,
    /// Columns, invalid rows and the chat template.
    #[command(flatten)]
    pub data: rhythm_rl::data::DataSettings,
    /// Print the JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON object to this file (atomically).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub gen: GenOpts,
    #[command(flatten)]
    pub opts: AnalysisOpts,
}

/// The table as text.
pub fn table_text(doc: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<44} {:>10} {:>10} {:>10}   {:>22}",
        "statistic", "observed", "random", "lift", "paper (obs / rand)"
    );
    let _ = writeln!(s, "{}", "-".repeat(102));
    for (row, (po, pr)) in doc["rows"].as_array().into_iter().flatten().zip(PAPER) {
        let pct = row["name"].as_str() != Some("entropy at WAAD peaks");
        let f = |v: &Value| match v.as_f64() {
            Some(x) if pct => format!("{:.2}%", 100.0 * x),
            Some(x) => format!("{x:.4}"),
            None => "n/a".into(),
        };
        let paper = if pct {
            format!("{:.2}% / {:.2}%", 100.0 * po, 100.0 * pr)
        } else {
            format!("{po:.4} / {pr:.4}")
        };
        let lift = match row["lift"].as_f64() {
            Some(l) => format!("{:+.2}%", 100.0 * l),
            None => "n/a".into(),
        };
        let _ = writeln!(
            s,
            "{:<44} {:>10} {:>10} {:>10}   {:>22}",
            row["name"].as_str().unwrap_or("?"),
            f(&row["observed"]),
            f(&row["random"]),
            lift,
            paper
        );
    }
    let _ = write!(
        s,
        "{} sequences, {} response tokens{}",
        doc["sequences"],
        doc["tokens"],
        match doc["skipped"].as_array().map_or(0, |a| a.len()) {
            0 => String::new(),
            k => format!(", {k} skipped"),
        }
    );
    s
}

/// Runs `rhythm stats`.
pub fn run(args: &StatsArgs) -> Result<()> {
    if let Some(out) = &args.out {
        check_destination(out)?;
    }
    let params = args.opts.params()?;
    let records = read_records(&args.input, &args.data)?;
    let model = args.device.device.load(&args.model)?;
    let layers = args.opts.layers(&model)?;
    let prompts = PromptBuilder::new(&args.data);
    let sampling = args.gen.sampling(&model);
    let mut acc = CouplingStats::new();
    let mut tokens = 0usize;
    let mut skipped = Vec::new();
    let bar = progress(records.len() as u64, "stats");
    for (i, rec) in records.iter().enumerate() {
        let seq = match prepare(&model, &prompts, rec, &sampling, i as u64) {
            Ok(s) => s,
            // A generated response that is empty is skipped, not fatal.
            Err(e) if rec.response.is_none() && e.to_string().contains("response is empty") => {
                bar.suspend(|| eprintln!("warning: {e:#}; skipped"));
                skipped.push(json!({"origin": rec.origin, "reason": e.to_string()}));
                bar.inc(1);
                continue;
            }
            Err(e) => return Err(e),
        };
        let pr = probe(&model, &seq, &layers, &params, 0, false)?;
        let r = &pr.rhythm;
        acc.add(&r.waad, &r.fai, &r.receiver_fai, &pr.entropy);
        tokens += r.n;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows: Vec<Value> = acc
        .table()
        .iter()
        .zip(PAPER)
        .map(|(row, (po, pr))| {
            json!({
                "name": row.name,
                "observed": row.observed,
                "random": row.random,
                "lift": row.lift,
                "paper": {"observed": po, "random": pr, "lift": (po - pr) / pr},
            })
        })
        .collect();
    let doc = json!({
        "model": args.model.display().to_string(),
        "input": args.input.display().to_string(),
        "layers": layers,
        "params": params_json(&params),
        "generation": args.gen.to_json(),
        "sequences": acc.sequences(),
        "tokens": tokens,
        "skipped": skipped,
        "rows": rows,
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
