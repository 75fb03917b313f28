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
//!
//! The pieces: [`read`] (run directories), [`smooth`] (statistics and
//! smoothing), [`summary`] (methods, table, `summary.json`) and [`svg`]
//! (the charts); this file holds the types they share and the command.

pub(crate) mod read;
mod smooth;
mod summary;
mod svg;

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::jsonl::write_atomic;

use read::read_run;
use summary::{summarise, summary_json, table_markdown, table_text};
use svg::figures;
#[cfg(test)]
use {
    read::{parse_config, parse_metrics},
    smooth::{ema, mean_curve, mean_std, paper_ema},
    svg::{tick_label, ticks},
};

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
    /// Factor `f` of the thick curves, in (0, 1]: evaluation accuracy gets
    /// the paper's smoothing (appendix A.2), s_0 = x_0,
    /// s_t = f * max(x_t, s_{t-1}) + (1 - f) * s_{t-1}; rollout accuracy a
    /// plain moving average, s_t = f * x_t + (1 - f) * s_{t-1}.
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

/// Table rank of a method: the known ones in [`METHOD_ORDER`], then the
/// others alphabetically.
fn method_key(name: &str) -> (usize, String) {
    let i = METHOD_ORDER
        .iter()
        .position(|m| *m == name)
        .unwrap_or(METHOD_ORDER.len());
    (i, name.to_string())
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
        // The reader itself is tested in rhythm_rl::metrics; here, that
        // `curves` goes through it and keeps its one-line messages.
        let full = |step: usize| {
            serde_json::to_string(&rhythm_rl::trainer::StepMetrics {
                step,
                accuracy: 0.5,
                response_len: 3.0,
                ..Default::default()
            })
            .unwrap()
        };
        for (text, want) in [
            (
                format!("{}\n{{oops", full(1)),
                "m:2: expected a JSON object: ",
            ),
            ("\n{\"step\":1}".to_string(), "m:2: missing field `reward`"),
            (
                full(1).replace("0.5", "\"x\""),
                "m:1: \"accuracy\": invalid type: string",
            ),
            (
                format!("{}\n{}", full(2), full(2)),
                "m:2: step 2 does not come after step 2",
            ),
            ("\n \n".to_string(), "m: no steps"),
        ] {
            let e = format!("{:#}", parse_metrics("m", &text).unwrap_err());
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let rows = parse_metrics("m", &full(4)).unwrap();
        assert_eq!(
            rows,
            [StepRow {
                step: 4,
                accuracy: 0.5,
                response_len: 3.0,
                eval_accuracy: None
            }]
        );
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
