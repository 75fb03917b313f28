//! Grouping runs into methods, their figures, the table (text and
//! Markdown) and `summary.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::smooth::{ema, mean_curve, mean_std, paper_ema};
use super::{method_key, MethodSummary, Run, RunStats, FINAL_WINDOW};

/// Groups runs by method (in table order) and computes figures and curves.
/// `warn` receives a line for each method whose runs differ in length.
pub fn summarise(
    runs: Vec<Run>,
    start_accuracy: Option<f64>,
    mut warn: impl FnMut(String),
) -> Result<Vec<MethodSummary>> {
    let mut groups: BTreeMap<(usize, String), Vec<Run>> = BTreeMap::new();
    for r in runs {
        groups.entry(method_key(&r.strategy)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((_, method), runs) in groups {
        let lens: Vec<u64> = runs.iter().map(|r| r.stats().last_step).collect();
        if lens.iter().any(|&l| l != lens[0]) {
            warn(format!(
                "method '{method}': runs end at different steps ({}); curves use the steps all runs have",
                lens.iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut eval_curve = mean_curve(&runs.iter().map(Run::eval_curve).collect::<Vec<_>>());
        if eval_curve.is_empty() {
            bail!(
                "method '{method}': its runs ({}) share no evaluation step",
                runs.iter()
                    .map(|r| r.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(a) = start_accuracy {
            if eval_curve[0].0 == 0 {
                warn(format!(
                    "method '{method}': the runs evaluate at step 0; --start-accuracy is not used for it"
                ));
            } else {
                eval_curve.insert(0, (0, a));
            }
        }
        let train_curve = mean_curve(&runs.iter().map(Run::train_curve).collect::<Vec<_>>());
        let runs = runs
            .into_iter()
            .map(|r| {
                let s = r.stats();
                (r, s)
            })
            .collect();
        out.push(MethodSummary {
            method,
            runs,
            eval_curve,
            train_curve,
        });
    }
    Ok(out)
}

impl MethodSummary {
    fn figure(&self, f: impl Fn(&RunStats) -> f64) -> (f64, Option<f64>) {
        mean_std(&self.runs.iter().map(|(_, s)| f(s)).collect::<Vec<_>>())
    }

    /// Final eval accuracy: mean and sample std over runs.
    pub fn final_eval(&self) -> (f64, Option<f64>) {
        self.figure(|s| s.final_eval)
    }

    /// Peak eval accuracy: mean and sample std over runs.
    pub fn peak_eval(&self) -> (f64, Option<f64>) {
        self.figure(|s| s.peak_eval)
    }

    /// Final training accuracy: mean and sample std over runs.
    pub fn final_train(&self) -> (f64, Option<f64>) {
        self.figure(|s| s.final_train)
    }

    /// Final response length: mean and sample std over runs.
    pub fn response_len(&self) -> (f64, Option<f64>) {
        self.figure(|s| s.response_len)
    }
}

/// `mean ± std` with one decimal, of `scale` times the values.
fn pm((mean, std): (f64, Option<f64>), scale: f64) -> String {
    match std {
        Some(s) => format!("{:.1} ± {:.1}", scale * mean, scale * s),
        None => format!("{:.1} ± -", scale * mean),
    }
}

/// The table's header and rows (accuracies in percent).
fn table_cells(methods: &[MethodSummary]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "method",
        "seeds",
        "final eval acc (%)",
        "peak eval acc (%)",
        "final train acc (%)",
        "response len",
    ]
    .map(String::from)
    .to_vec();
    let rows = methods
        .iter()
        .map(|m| {
            vec![
                m.method.clone(),
                m.runs.len().to_string(),
                pm(m.final_eval(), 100.0),
                pm(m.peak_eval(), 100.0),
                pm(m.final_train(), 100.0),
                pm(m.response_len(), 1.0),
            ]
        })
        .collect();
    (header, rows)
}

/// The table as aligned text for the terminal.
pub fn table_text(methods: &[MethodSummary]) -> String {
    let (header, rows) = table_cells(methods);
    let width = |i: usize| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |r: &[String]| {
        r.iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(widths[i] - c.chars().count());
                if i == 0 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut s = String::new();
    let _ = writeln!(s, "{}", line(&header));
    let total = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    let _ = writeln!(s, "{}", "-".repeat(total));
    for r in &rows {
        let _ = writeln!(s, "{}", line(r));
    }
    s
}

/// The table as Markdown (with the title as heading, if any).
pub fn table_markdown(methods: &[MethodSummary], title: Option<&str>) -> String {
    let (header, rows) = table_cells(methods);
    let mut s = String::new();
    if let Some(t) = title {
        let _ = writeln!(s, "# {t}\n");
    }
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|i| if i == 0 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(s, "| {} |", align.join(" | "));
    for r in &rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    let _ = writeln!(
        s,
        "\nMean ± sample std over seeds (- for one seed). Final eval: the last evaluation; \
         peak eval: the best evaluation of each run; final train and response length: \
         the mean of the last {FINAL_WINDOW} steps."
    );
    s
}

/// The whole summary as JSON (accuracies as fractions).
pub fn summary_json(
    methods: &[MethodSummary],
    ema_factor: f64,
    title: Option<&str>,
    start_accuracy: Option<f64>,
) -> Value {
    let ms = |(mean, std): (f64, Option<f64>)| json!({"mean": mean, "std": std});
    let methods: Vec<Value> = methods
        .iter()
        .map(|m| {
            let runs: Vec<Value> = m
                .runs
                .iter()
                .map(|(r, s)| {
                    json!({
                        "dir": r.dir.display().to_string(),
                        "seed": r.seed,
                        "steps": r.steps.len(),
                        "last_step": s.last_step,
                        "final_eval": s.final_eval,
                        "final_eval_step": s.final_eval_step,
                        "peak_eval": s.peak_eval,
                        "peak_step": s.peak_step,
                        "final_train": s.final_train,
                        "response_len": s.response_len,
                    })
                })
                .collect();
            let (es, ev): (Vec<u64>, Vec<f64>) = m.eval_curve.iter().copied().unzip();
            let (ts, tv): (Vec<u64>, Vec<f64>) = m.train_curve.iter().copied().unzip();
            json!({
                "method": m.method,
                "n": m.runs.len(),
                "final_eval": ms(m.final_eval()),
                "peak_eval": ms(m.peak_eval()),
                "final_train": ms(m.final_train()),
                "response_len": ms(m.response_len()),
                "runs": runs,
                "eval_curve": {"step": es, "mean": ev, "peak_ema": paper_ema(&ev, ema_factor)},
                "train_curve": {"step": ts, "mean": tv, "ema": ema(&tv, ema_factor)},
            })
        })
        .collect();
    json!({
        "title": title,
        "ema": ema_factor,
        "start_accuracy": start_accuracy,
        "final_window": FINAL_WINDOW,
        "methods": methods,
    })
}
