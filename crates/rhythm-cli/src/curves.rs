//! `rhythm curves`: summarise RL runs written by `rhythm train` (the paper's
//! table 3 and training-curve figure).
//!
//! Each run directory holds `config.toml` (its resolved
//! [`TrainConfig`](rhythm_rl::config::TrainConfig), of which `strategy` and
//! `seed` are read) and `metrics.jsonl` (one object per step: `step`,
//! `accuracy`, `response_len`, and `eval_accuracy` on evaluation steps).
//! Runs are grouped by strategy (the *method*); the runs of a method are its
//! seeds. Per run:
//!
//! - **final eval**: `eval_accuracy` of the run's last evaluation step;
//! - **peak eval**: the highest `eval_accuracy` of the run, and the first step
//!   that reached it (`--start-accuracy` does not count);
//! - **final train**: the mean `accuracy` of the last [`FINAL_WINDOW`] steps
//!   (of all steps if fewer);
//! - **response length**: the mean `response_len` of the same steps.
//!
//! A method's figure is the mean over its runs with the sample standard
//! deviation (`n - 1`; none for a single run). Its curves are the mean over
//! runs at the steps that every run has (runs of different lengths are cut
//! to the common steps); `--start-accuracy` adds the starting model's
//! accuracy at step 0 of every eval curve. The thick eval line is
//! the paper's smoothing ([`paper_ema`], appendix A.2), the thick training
//! line the plain [`ema`] of the mean.
//!
//! Outputs (each written atomically) under `--out DIR`: `summary.json`
//! (accuracies as fractions in `[0, 1]`), `table.md` (percent),
//! `eval_curves.svg` and `train_curves.svg`. The table is also printed.
//! Bad input is one line `FILE:LINE: what is wrong` (exit status 2).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rhythm_rl::config::TrainConfig;
use serde_json::{json, Value};

use crate::jsonl::write_atomic;

/// Methods in table and legend order; any others follow alphabetically.
pub const METHOD_ORDER: [&str; 7] = [
    "none",
    "random",
    "entropy",
    "local",
    "global",
    "coupled",
    "coupled-bottom",
];

/// Number of last steps whose training accuracy and response length are
/// averaged into a run's "final" values.
pub const FINAL_WINDOW: usize = 10;

/// Arguments of `rhythm curves`.
#[derive(Args, Debug)]
pub struct CurvesArgs {
    /// Run directories written by `rhythm train` (each with config.toml and
    /// metrics.jsonl); runs are grouped by their strategy.
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Output directory: summary.json, table.md, eval_curves.svg and
    /// train_curves.svg (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Factor of the exponential moving average of the thick curves:
    /// s_0 = x_0, s_t = ema * x_t + (1 - ema) * s_{t-1}; in (0, 1].
    #[arg(long, default_value_t = 0.3)]
    pub ema: f64,
    /// Title of the figures and heading of table.md.
    #[arg(long)]
    pub title: Option<String>,
    /// Accuracy of the starting model, a fraction in [0, 1]: drawn at step 0
    /// of every eval curve.
    #[arg(long)]
    pub start_accuracy: Option<f64>,
}

/// The fields of one `metrics.jsonl` line that `curves` reads.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    /// Rollout step (1-based in runs of `rhythm train`).
    pub step: u64,
    /// Training rollout accuracy (share right).
    pub accuracy: f64,
    /// Mean response length in tokens.
    pub response_len: f64,
    /// Greedy eval accuracy, on evaluation steps.
    pub eval_accuracy: Option<f64>,
}

/// One run directory, read and checked.
#[derive(Clone, Debug)]
pub struct Run {
    /// The directory as given.
    pub dir: PathBuf,
    /// Its strategy (the method).
    pub strategy: String,
    /// Its seed.
    pub seed: u64,
    /// Its steps, in increasing step order (at least one evaluation step).
    pub steps: Vec<StepRow>,
}

/// A run's own figures (accuracies as fractions).
#[derive(Clone, Debug, PartialEq)]
pub struct RunStats {
    /// Eval accuracy of the last evaluation step.
    pub final_eval: f64,
    /// That step.
    pub final_eval_step: u64,
    /// Highest eval accuracy.
    pub peak_eval: f64,
    /// First step that reached it.
    pub peak_step: u64,
    /// Mean training accuracy of the last [`FINAL_WINDOW`] steps.
    pub final_train: f64,
    /// Mean response length of the last [`FINAL_WINDOW`] steps.
    pub response_len: f64,
    /// The last step.
    pub last_step: u64,
}

/// A curve: `(step, value)` points in increasing step order.
pub type Curve = Vec<(u64, f64)>;

/// One method: its runs, figures and mean curves.
#[derive(Clone, Debug)]
pub struct MethodSummary {
    /// The strategy name.
    pub method: String,
    /// Its runs and their figures, in the order given.
    pub runs: Vec<(Run, RunStats)>,
    /// Mean eval accuracy over runs at their common evaluation steps (with
    /// `--start-accuracy` at step 0).
    pub eval_curve: Curve,
    /// Mean training accuracy over runs at their common steps.
    pub train_curve: Curve,
}

/// Mean and sample standard deviation (`n - 1`; `None` when `n < 2`).
pub fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, None);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, Some(var.sqrt()))
}

/// Exponential moving average: `s_0 = x_0`, `s_t = f * x_t + (1 - f) * s_{t-1}`.
pub fn ema(x: &[f64], factor: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for (t, &v) in x.iter().enumerate() {
        let s = if t == 0 {
            v
        } else {
            factor * v + (1.0 - factor) * out[t - 1]
        };
        out.push(s);
    }
    out
}

/// The smoothing of the paper's appendix A.2, an EMA that only rises with
/// a new high: `s_0 = x_0`, `s_t = f * max(x_t, s_{t-1}) + (1 - f) * s_{t-1}`.
pub fn paper_ema(x: &[f64], factor: f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(x.len());
    for &v in x {
        let s = match out.last() {
            None => v,
            Some(&prev) => factor * v.max(prev) + (1.0 - factor) * prev,
        };
        out.push(s);
    }
    out
}

/// Mean of the curves at the steps that all of them have.
pub fn mean_curve(curves: &[Curve]) -> Curve {
    let mut acc: BTreeMap<u64, (usize, f64)> = BTreeMap::new();
    for c in curves {
        for &(s, v) in c {
            let e = acc.entry(s).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += v;
        }
    }
    acc.into_iter()
        .filter(|(_, (k, _))| *k == curves.len())
        .map(|(s, (k, sum))| (s, sum / k as f64))
        .collect()
}

/// Table rank of a method: the known ones in [`METHOD_ORDER`], then the
/// others alphabetically.
fn method_key(name: &str) -> (usize, String) {
    let i = METHOD_ORDER
        .iter()
        .position(|m| *m == name)
        .unwrap_or(METHOD_ORDER.len());
    (i, name.to_string())
}

/// Reads a run's `config.toml` as the trainer wrote it ([`TrainConfig`],
/// whose defaults apply to missing keys) and returns its strategy (the
/// method) and seed (`name` is used in messages).
pub fn parse_config(name: &str, text: &str) -> Result<(String, u64)> {
    let cfg = TrainConfig::from_toml_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok((cfg.credit.strategy.name().to_string(), cfg.seed))
}

/// Parses the text of a run's `metrics.jsonl` (`name` is used in messages).
/// Blank lines are skipped; steps must increase; accuracies must lie in
/// `[0, 1]`.
pub fn parse_metrics(name: &str, text: &str) -> Result<Vec<StepRow>> {
    let mut out: Vec<StepRow> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{origin}: expected a JSON object: {e}"))?;
        let Some(obj) = v.as_object() else {
            bail!("{origin}: expected a JSON object, got {}", kind(&v));
        };
        let num = |key: &str| -> Result<f64> {
            match obj.get(key) {
                Some(Value::Number(n)) => n
                    .as_f64()
                    .with_context(|| format!("{origin}: \"{key}\" is not a finite number")),
                Some(other) => bail!("{origin}: \"{key}\" must be a number, got {}", kind(other)),
                None => bail!("{origin}: missing \"{key}\""),
            }
        };
        let frac = |key: &str, x: f64| -> Result<f64> {
            if !(0.0..=1.0).contains(&x) {
                bail!("{origin}: \"{key}\" = {x} is outside [0, 1]");
            }
            Ok(x)
        };
        let step = match obj.get("step") {
            Some(s) => s.as_u64().with_context(|| {
                format!("{origin}: \"step\" must be a non-negative integer, got {s}")
            })?,
            None => bail!("{origin}: missing \"step\""),
        };
        if let Some(prev) = out.last() {
            if step <= prev.step {
                bail!(
                    "{origin}: step {step} does not come after step {}",
                    prev.step
                );
            }
        }
        let accuracy = frac("accuracy", num("accuracy")?)?;
        let response_len = num("response_len")?;
        if response_len < 0.0 {
            bail!("{origin}: \"response_len\" = {response_len} is negative");
        }
        let eval_accuracy = match obj.get("eval_accuracy") {
            None | Some(Value::Null) => None,
            Some(_) => Some(frac("eval_accuracy", num("eval_accuracy")?)?),
        };
        out.push(StepRow {
            step,
            accuracy,
            response_len,
            eval_accuracy,
        });
    }
    if out.is_empty() {
        bail!("{name}: no steps (expected one JSON object per line)");
    }
    Ok(out)
}

/// What kind of JSON value `v` is, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads and checks a run directory.
pub fn read_run(dir: &Path) -> Result<Run> {
    if !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    let cpath = dir.join("config.toml");
    let ctext = std::fs::read_to_string(&cpath)
        .with_context(|| format!("cannot read {}", cpath.display()))?;
    let (strategy, seed) = parse_config(&cpath.display().to_string(), &ctext)?;
    let mpath = dir.join("metrics.jsonl");
    let mtext = std::fs::read_to_string(&mpath)
        .with_context(|| format!("cannot read {}", mpath.display()))?;
    let steps = parse_metrics(&mpath.display().to_string(), &mtext)?;
    if steps.iter().all(|s| s.eval_accuracy.is_none()) {
        bail!(
            "{}: no evaluation steps (no \"eval_accuracy\"; train with eval_interval > 0)",
            mpath.display()
        );
    }
    Ok(Run {
        dir: dir.to_path_buf(),
        strategy,
        seed,
        steps,
    })
}

impl Run {
    /// The eval accuracy curve of the run.
    pub fn eval_curve(&self) -> Curve {
        self.steps
            .iter()
            .filter_map(|s| s.eval_accuracy.map(|e| (s.step, e)))
            .collect()
    }

    /// The training accuracy curve of the run.
    pub fn train_curve(&self) -> Curve {
        self.steps.iter().map(|s| (s.step, s.accuracy)).collect()
    }

    /// The run's own figures.
    pub fn stats(&self) -> RunStats {
        let eval = self.eval_curve();
        let (final_eval_step, final_eval) = eval.last().copied().unwrap_or((0, f64::NAN));
        let (mut peak_step, mut peak_eval) = (0, f64::NEG_INFINITY);
        for &(s, v) in &eval {
            if v > peak_eval {
                (peak_step, peak_eval) = (s, v);
            }
        }
        let tail = &self.steps[self.steps.len().saturating_sub(FINAL_WINDOW)..];
        let k = tail.len().max(1) as f64;
        RunStats {
            final_eval,
            final_eval_step,
            peak_eval,
            peak_step,
            final_train: tail.iter().map(|s| s.accuracy).sum::<f64>() / k,
            response_len: tail.iter().map(|s| s.response_len).sum::<f64>() / k,
            last_step: self.steps.last().map_or(0, |s| s.step),
        }
    }
}

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

/// Fixed colours of the known methods (same index as [`METHOD_ORDER`]).
const KNOWN_COLOURS: [&str; 7] = [
    "#7f7f7f", "#bcbd22", "#9467bd", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e",
];
/// Colours of the other methods, in turn.
const OTHER_COLOURS: [&str; 6] = [
    "#8c564b", "#e377c2", "#17becf", "#393b79", "#637939", "#843c39",
];

/// The colour of each method, in the order given.
fn colours(methods: &[MethodSummary]) -> Vec<&'static str> {
    let mut next = 0;
    methods
        .iter()
        .map(|m| match METHOD_ORDER.iter().position(|k| *k == m.method) {
            Some(i) => KNOWN_COLOURS[i],
            None => {
                let c = OTHER_COLOURS[next % OTHER_COLOURS.len()];
                next += 1;
                c
            }
        })
        .collect()
}

/// One method's lines in a chart: values in the chart's units.
pub struct Series {
    /// Method name (legend and `data-method` attribute).
    pub method: String,
    /// Number of runs (legend).
    pub n: usize,
    /// Stroke colour.
    pub colour: String,
    /// The thin line.
    pub raw: Vec<(f64, f64)>,
    /// The thick line.
    pub smooth: Vec<(f64, f64)>,
}

/// Escapes text for SVG/XML content and attributes.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Axis ticks for `[lo, hi]`: a "nice" step (1, 2, 5 x 10^k, at least
/// `min_step`), the extended bounds and the tick values.
fn ticks(lo: f64, hi: f64, target: usize, min_step: f64) -> (f64, f64, f64, Vec<f64>) {
    let range = (hi - lo).max(1e-12);
    let raw = range / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = (nice * mag).max(min_step);
    let a = (lo / step + 1e-9).floor() * step;
    let b = (hi / step - 1e-9).ceil() * step;
    let b = if b <= a { a + step } else { b };
    let k = ((b - a) / step).round() as usize;
    let vals = (0..=k).map(|i| a + i as f64 * step).collect();
    (a, b, step, vals)
}

/// A tick label with as many decimals as the step needs.
fn tick_label(v: f64, step: f64) -> String {
    let d = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.d$}")
}

/// A line chart as a standalone SVG document: one colour per series, a
/// thin polyline for `raw` and a thick one for `smooth`, axes with ticks,
/// labels, a legend and the title.
pub fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    note: &str,
    series: &[Series],
) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    const LEFT: f64 = 72.0;
    const RIGHT: f64 = 240.0;
    const TOP: f64 = 48.0;
    const BOTTOM: f64 = 58.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let pts = series.iter().flat_map(|s| s.raw.iter().chain(&s.smooth));
    let (mut xmax, mut ymin, mut ymax) = (0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if !ymin.is_finite() {
        (ymin, ymax) = (0.0, 1.0);
    }
    if ymax - ymin < 1e-9 {
        ymin = if ymin >= 0.0 {
            (ymin - 1.0).max(0.0)
        } else {
            ymin - 1.0
        };
        ymax += 1.0;
    }
    let (x0, x1, xstep, xt) = ticks(0.0, xmax.max(1.0), 8, 1.0);
    let (y0, y1, ystep, yt) = ticks(ymin, ymax, 6, 0.0);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        LEFT + pw / 2.0,
        xml_escape(title)
    );
    // Grid and y ticks.
    let _ = writeln!(s, r##"<g class="y-axis" stroke="#000">"##);
    for &v in &yt {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#e4e4e4"/><line x1="{:.2}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}"/><text x="{:.2}" y="{:.2}" text-anchor="end" stroke="none">{}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            LEFT - 8.0,
            y + 4.0,
            tick_label(v, ystep)
        );
    }
    let _ = writeln!(s, "</g>");
    // x ticks.
    let _ = writeln!(s, r##"<g class="x-axis" stroke="#000">"##);
    for &v in &xt {
        let x = px(v);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}"/><text x="{x:.2}" y="{:.2}" text-anchor="middle" stroke="none">{}</text>"#,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 19.0,
            tick_label(v, xstep)
        );
    }
    let _ = writeln!(s, "</g>");
    // Frame and axis labels.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#000"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle" font-size="13">{}</text>"#,
        LEFT + pw / 2.0,
        H - 14.0,
        xml_escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.2}) rotate(-90)" text-anchor="middle" font-size="13">{}</text>"#,
        TOP + ph / 2.0,
        xml_escape(y_label)
    );
    // Lines.
    let poly = |p: &[(f64, f64)]| {
        p.iter()
            .map(|&(x, y)| format!("{:.2},{:.2}", px(x), py(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for se in series {
        let m = xml_escape(&se.method);
        let c = xml_escape(&se.colour);
        let _ = writeln!(s, r#"<g class="series" data-method="{m}">"#);
        let _ = writeln!(
            s,
            r#"<polyline class="raw" data-method="{m}" fill="none" stroke="{c}" stroke-width="1" stroke-opacity="0.55" points="{}"/>"#,
            poly(&se.raw)
        );
        let _ = writeln!(
            s,
            r#"<polyline class="smooth" data-method="{m}" fill="none" stroke="{c}" stroke-width="2.75" stroke-linejoin="round" points="{}"/>"#,
            poly(&se.smooth)
        );
        if se.smooth.len() == 1 {
            let (x, y) = se.smooth[0];
            let _ = writeln!(
                s,
                r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    // Legend.
    let lx = LEFT + pw + 16.0;
    let _ = writeln!(s, r#"<g class="legend">"#);
    for (i, se) in series.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2.75"/><text x="{}" y="{}">{} (n={})</text>"#,
            lx + 24.0,
            xml_escape(&se.colour),
            lx + 30.0,
            y + 4.0,
            xml_escape(&se.method),
            se.n
        );
    }
    let ny = TOP + 10.0 + 20.0 * series.len() as f64 + 8.0;
    for (j, part) in note.split('\n').enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{lx}" y="{}" font-size="10" fill="#555">{}</text>"##,
            ny + 13.0 * j as f64,
            xml_escape(part)
        );
    }
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// The two figures: eval accuracy and training accuracy (percent).
fn figures(methods: &[MethodSummary], ema_factor: f64, title: Option<&str>) -> (String, String) {
    let cols = colours(methods);
    let pct = |c: &Curve| -> (Vec<f64>, Vec<f64>) {
        c.iter().map(|&(s, v)| (s as f64, 100.0 * v)).unzip()
    };
    let zip = |a: &[f64], b: Vec<f64>| -> Vec<(f64, f64)> { a.iter().copied().zip(b).collect() };
    let mut eval = Vec::new();
    let mut train = Vec::new();
    for (m, c) in methods.iter().zip(&cols) {
        let (xs, ys) = pct(&m.eval_curve);
        eval.push(Series {
            method: m.method.clone(),
            n: m.runs.len(),
            colour: c.to_string(),
            raw: zip(&xs, ys.clone()),
            smooth: zip(&xs, paper_ema(&ys, ema_factor)),
        });
        let (xs, ys) = pct(&m.train_curve);
        train.push(Series {
            method: m.method.clone(),
            n: m.runs.len(),
            colour: c.to_string(),
            raw: zip(&xs, ys.clone()),
            smooth: zip(&xs, ema(&ys, ema_factor)),
        });
    }
    let head = |what: &str| match title {
        Some(t) => format!("{t}: {what}"),
        None => what[..1].to_uppercase() + &what[1..],
    };
    let eval_svg = svg_chart(
        &head("eval accuracy"),
        "step",
        "eval accuracy (%)",
        &format!("mean over seeds\nthin: raw mean\nthick: paper EMA ({ema_factor}), rises with new highs"),
        &eval,
    );
    let train_svg = svg_chart(
        &head("training rollout accuracy"),
        "step",
        "training accuracy (%)",
        &format!("mean over seeds\nthin: raw mean\nthick: EMA ({ema_factor})"),
        &train,
    );
    (eval_svg, train_svg)
}

/// Runs `rhythm curves`.
pub fn run(args: &CurvesArgs) -> Result<()> {
    if !(args.ema > 0.0 && args.ema <= 1.0) {
        bail!("--ema {}: expected a factor in (0, 1]", args.ema);
    }
    if let Some(a) = args.start_accuracy {
        if !(0.0..=1.0).contains(&a) {
            bail!("--start-accuracy {a}: expected a fraction in [0, 1]");
        }
    }
    let mut seen = HashSet::new();
    let mut runs = Vec::with_capacity(args.runs.len());
    for dir in &args.runs {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if !seen.insert(key) {
            bail!("{}: run directory given twice", dir.display());
        }
        runs.push(read_run(dir)?);
    }
    let methods = summarise(runs, args.start_accuracy, |w| eprintln!("warning: {w}"))?;
    let title = args.title.as_deref();
    let doc = summary_json(&methods, args.ema, title, args.start_accuracy);
    let (eval_svg, train_svg) = figures(&methods, args.ema, title);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    write_atomic(
        &args.out.join("summary.json"),
        (serde_json::to_string_pretty(&doc)? + "\n").as_bytes(),
    )?;
    write_atomic(
        &args.out.join("table.md"),
        table_markdown(&methods, title).as_bytes(),
    )?;
    write_atomic(&args.out.join("eval_curves.svg"), eval_svg.as_bytes())?;
    write_atomic(&args.out.join("train_curves.svg"), train_svg.as_bytes())?;
    if let Some(t) = title {
        println!("{t}\n");
    }
    print!("{}", table_text(&methods));
    eprintln!(
        "wrote summary.json, table.md, eval_curves.svg and train_curves.svg to {}",
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_ema_by_hand() {
        // s = 0.1; 0.5*0.3 + 0.05 = 0.2; 0.5*max(0.2, 0.2) + 0.1 = 0.2;
        // 0.5*0.5 + 0.1 = 0.35; 0.5*max(0.4, 0.35) + 0.175 = 0.375. (The EMA
        // of the running peak, plotted before, gives 0.25 and 0.4375 at t = 2, 4.)
        let x = [0.1, 0.3, 0.2, 0.5, 0.4];
        let e = paper_ema(&x, 0.5);
        let want = [0.1, 0.2, 0.2, 0.35, 0.375];
        for (a, b) in e.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{e:?}");
        }
        assert_eq!(ema(&[], 0.3), Vec::<f64>::new());
        assert_eq!(ema(&[2.0, 2.0], 1.0), vec![2.0, 2.0]);
    }

    #[test]
    fn mean_std_and_common_steps() {
        assert_eq!(mean_std(&[1.0]), (1.0, None));
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s.unwrap() - 1.0).abs() < 1e-12);
        let c = mean_curve(&[vec![(1, 0.0), (2, 1.0), (3, 1.0)], vec![(1, 1.0), (2, 0.0)]]);
        assert_eq!(c, vec![(1, 0.5), (2, 0.5)]);
    }

    #[test]
    fn method_order_then_alphabetical() {
        let mut v = [
            "zeta",
            "coupled",
            "alpha",
            "none",
            "global-bottom",
            "random",
        ];
        v.sort_by_key(|m| method_key(m));
        assert_eq!(
            v,
            [
                "none",
                "random",
                "coupled",
                "alpha",
                "global-bottom",
                "zeta"
            ]
        );
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (text, want) in [
            ("{\"step\":1,\"accuracy\":0.5,\"response_len\":3}\n{oops", "m:2: expected a JSON object: "),
            ("[1]", "m:1: expected a JSON object, got an array"),
            ("\n{\"accuracy\":0.5,\"response_len\":3}", "m:2: missing \"step\""),
            ("{\"step\":1,\"accuracy\":\"x\",\"response_len\":3}", "m:1: \"accuracy\" must be a number"),
            ("{\"step\":1,\"accuracy\":1.5,\"response_len\":3}", "m:1: \"accuracy\" = 1.5 is outside"),
            (
                "{\"step\":2,\"accuracy\":0.5,\"response_len\":3}\n{\"step\":2,\"accuracy\":0.5,\"response_len\":3}",
                "m:2: step 2 does not come after step 2",
            ),
            ("\n \n", "m: no steps"),
        ] {
            let e = format!("{:#}", parse_metrics("m", text).unwrap_err());
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        for (text, want) in [
            (
                "model = \"x\"\nstrategy = 3\n",
                "line 2, key `strategy`: invalid type: integer `3`",
            ),
            (
                "strategy = \"best\"\n",
                "key `strategy`: unknown variant `best`",
            ),
            ("seed = 1\nstrategy = \n", "line 2"),
            ("sead = 1\n", "unknown key `sead`"),
        ] {
            let e = parse_config("c.toml", text).unwrap_err().to_string();
            assert!(e.starts_with("c.toml: ") && e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(
            parse_config("c.toml", "strategy = \"local\"\nseed = 4\n").unwrap(),
            ("local".to_string(), 4)
        );
    }

    #[test]
    fn ticks_are_nice() {
        let (a, b, step, v) = ticks(0.0, 100.0, 8, 1.0);
        assert_eq!((a, b, step), (0.0, 100.0, 20.0));
        assert_eq!(v.len(), 6);
        let (a, b, step, _) = ticks(12.3, 47.9, 6, 0.0);
        assert_eq!((a, b, step), (10.0, 50.0, 10.0));
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(20.0, 10.0), "20");
    }
}
