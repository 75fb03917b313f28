//! `metrics.jsonl`, the trainer's log: one [`StepMetrics`] per finished
//! step, written by [`crate::trainer::Trainer`] and read back by
//! [`read_metrics`], the one parser of the format (`rhythm curves`, the
//! fuzz targets and anyone else reading a run go through it).
//!
//! A line is read as JSON first (so a line that is not an object says so),
//! then as a [`StepMetrics`] with the path of the field that failed
//! (`serde_path_to_error`), then checked: steps increase, accuracies lie in
//! `[0, 1]`, lengths and times are not negative. Every error is one line
//! naming the file and line.

use rhythm_model::json_kind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::trainer::{Result, TrainError};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Rollout step (1-based: the number of steps done after this one).
    pub step: usize,
    /// Mean reward.
    pub reward: f64,
    /// Share of responses that are right (reward >= 1).
    pub accuracy: f64,
    /// Mean response length in tokens.
    pub response_len: f64,
    /// Mean per-token entropy (nats) of the responses, as the rollout's
    /// sampler saw the untempered distributions.
    pub entropy: f64,
    /// Mean `gamma` over the tokens of the responses that get a gradient
    /// (a non-zero advantage, or a KL term); the others' credit changes
    /// nothing and is not computed. 0 when no response gets one.
    pub gamma_mean: f64,
    /// Share of those tokens with `gamma > 1`.
    pub gamma_boost_share: f64,
    /// Mean loss over the optimizer steps.
    pub loss: f64,
    /// Share of trained tokens whose gradient the clip removed.
    pub clip_frac: f64,
    /// Global gradient norm before clipping (mean over optimizer steps).
    pub grad_norm: f64,
    /// k3 KL estimate to the reference (0 without one).
    pub kl: f64,
    /// Learning rate of this step.
    pub lr: f64,
    /// Seconds generating.
    pub rollout_s: f64,
    /// Seconds in the probe pass (logp_old, entropy, summaries) and the
    /// rhythm/gamma computation. With the hand-written update this includes
    /// the training forward of the first mini-batch, which the probe runs
    /// and the update reuses.
    pub probe_s: f64,
    /// Of `probe_s`, seconds computing rhythms and gammas from summaries.
    pub rhythm_s: f64,
    /// Seconds in forward/backward and optimizer (the first mini-batch's
    /// forward counts in `probe_s` when the probe ran it).
    pub update_s: f64,
    /// Response tokens generated.
    pub gen_tokens: usize,
    /// Tokens (prompt + response) through forward/backward.
    pub update_tokens: usize,
    /// Greedy pass@1 on the evaluation set, on evaluation steps.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_accuracy: Option<f64>,
}

/// Parses the text of a run's `metrics.jsonl` (`name` is used in
/// messages). Blank lines are skipped; there must be at least one step;
/// steps must increase; `accuracy` and `eval_accuracy` must lie in `[0, 1]`;
/// `response_len` and the phase times must not be negative.
pub fn read_metrics(name: &str, text: &str) -> Result<Vec<StepMetrics>> {
    let mut out: Vec<StepMetrics> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let m = parse_line(line).map_err(|e| TrainError::Msg(format!("{origin}: {e}")))?;
        if let Some(prev) = out.last() {
            if m.step <= prev.step {
                return Err(TrainError::Msg(format!(
                    "{origin}: step {} does not come after step {}",
                    m.step, prev.step
                )));
            }
        }
        out.push(m);
    }
    if out.is_empty() {
        return Err(TrainError::Msg(format!(
            "{name}: no steps (expected one JSON object per line)"
        )));
    }
    Ok(out)
}

/// One line: JSON, then the fields, then their ranges.
fn parse_line(line: &str) -> std::result::Result<StepMetrics, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("expected a JSON object: {e}"))?;
    if !v.is_object() {
        return Err(format!("expected a JSON object, got {}", json_kind(&v)));
    }
    let m: StepMetrics = serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            inner.to_string()
        } else {
            format!("\"{path}\": {inner}")
        }
    })?;
    let frac = |key: &str, x: f64| {
        if (0.0..=1.0).contains(&x) {
            Ok(())
        } else {
            Err(format!("\"{key}\" = {x} is outside [0, 1]"))
        }
    };
    frac("accuracy", m.accuracy)?;
    if let Some(e) = m.eval_accuracy {
        frac("eval_accuracy", e)?;
    }
    for (key, x) in [
        ("response_len", m.response_len),
        ("rollout_s", m.rollout_s),
        ("probe_s", m.probe_s),
        ("rhythm_s", m.rhythm_s),
        ("update_s", m.update_s),
    ] {
        if x < 0.0 {
            return Err(format!("\"{key}\" = {x} is negative"));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(step: usize, acc: f64) -> String {
        serde_json::to_string(&StepMetrics {
            step,
            reward: acc,
            accuracy: acc,
            response_len: 3.0,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn round_trip_and_errors() {
        let text = format!("{}\n\n{}\n", full(1, 0.25), full(3, 0.5));
        let rows = read_metrics("m", &text).unwrap();
        assert_eq!(rows.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(rows[1].accuracy, 0.5);
        let no_acc = {
            let mut v: Value = serde_json::from_str(&full(1, 0.5)).unwrap();
            v.as_object_mut().unwrap().remove("accuracy");
            v.to_string()
        };
        let str_acc = full(1, 0.5).replace("\"accuracy\":0.5", "\"accuracy\":\"x\"");
        let neg_step = full(1, 0.5).replace("\"step\":1", "\"step\":-1");
        let neg_len = full(1, 0.5).replace("\"response_len\":3.0", "\"response_len\":-3.0");
        let bad_eval = full(1, 0.5).replace('}', ",\"eval_accuracy\":45}");
        for (text, want) in [
            (
                format!("{}\n{{oops", full(1, 0.5)),
                "m:2: expected a JSON object: ",
            ),
            (
                "[1]".to_string(),
                "m:1: expected a JSON object, got an array",
            ),
            (format!("\n{no_acc}"), "m:2: missing field `accuracy`"),
            (
                str_acc,
                "m:1: \"accuracy\": invalid type: string \"x\", expected f64",
            ),
            (neg_step, "m:1: \"step\": invalid value: integer `-1`"),
            (full(1, 1.5), "m:1: \"accuracy\" = 1.5 is outside [0, 1]"),
            (bad_eval, "m:1: \"eval_accuracy\" = 45 is outside [0, 1]"),
            (neg_len, "m:1: \"response_len\" = -3 is negative"),
            (
                format!("{}\n{}", full(2, 0.5), full(2, 0.5)),
                "m:2: step 2 does not come after step 2",
            ),
            ("\n \n".to_string(), "m: no steps"),
        ] {
            let e = read_metrics("m", &text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}\nwanted: {want}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
