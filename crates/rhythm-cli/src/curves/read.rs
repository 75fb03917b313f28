//! Reading a run directory of `rhythm train`: its `config.toml` through
//! [`TrainConfig`] and its `metrics.jsonl` through the trainer's reader
//! ([`read_metrics`]: a bad line is one error naming the file and line), and
//! a run's own figures.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rhythm_rl::config::TrainConfig;
use rhythm_rl::metrics::read_metrics;

use super::{Curve, Run, RunStats, StepRow, FINAL_WINDOW};

/// Reads a run's `config.toml` as the trainer wrote it ([`TrainConfig`],
/// whose defaults apply to missing keys) and returns its strategy (the
/// method) and seed (`name` is used in messages).
pub fn parse_config(name: &str, text: &str) -> Result<(String, u64)> {
    let cfg = TrainConfig::from_toml_str(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    Ok((cfg.credit.strategy.name().to_string(), cfg.seed))
}

/// Parses the text of a run's `metrics.jsonl` (`name` is used in messages)
/// with the trainer's own reader ([`read_metrics`]: blank lines skipped,
/// every field of [`rhythm_rl::metrics::StepMetrics`] present, steps
/// increasing, accuracies in `[0, 1]`) and keeps the fields `curves` uses.
pub fn parse_metrics(name: &str, text: &str) -> Result<Vec<StepRow>> {
    let rows = read_metrics(name, text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(rows
        .into_iter()
        .map(|m| StepRow {
            step: m.step as u64,
            accuracy: m.accuracy,
            response_len: m.response_len,
            eval_accuracy: m.eval_accuracy,
        })
        .collect())
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
