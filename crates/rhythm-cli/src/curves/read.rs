//! Reading a run directory of `rhythm train`: its `config.toml` through
//! [`TrainConfig`] and its `metrics.jsonl`, checked line by line (a bad line
//! is one error naming the file and line), and a run's own figures.

use std::path::Path;

use anyhow::{bail, Context, Result};
use rhythm_rl::config::TrainConfig;
use serde_json::Value;

use super::{Curve, Run, RunStats, StepRow, FINAL_WINDOW};

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
pub(super) fn kind(v: &Value) -> &'static str {
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
