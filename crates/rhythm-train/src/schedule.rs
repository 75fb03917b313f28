//! The learning-rate schedule: a linear warmup from `lr / warmup` to `lr`
//! over the first `warmup` steps, then constant, linear or cosine decay to
//! `lr * min_lr_ratio` at the last step. GRPO's default is constant (the
//! paper's); pretraining decays by cosine to a tenth.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// Learning-rate schedule after the linear warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Constant at `lr`.
    Constant,
    /// Linear decay to `lr * min_lr_ratio` at the last step.
    Linear,
    /// Cosine decay to `lr * min_lr_ratio` at the last step.
    Cosine,
}

/// The learning rate at step `step` (0-based) of `total`: linear warmup
/// over `warmup` steps to `lr`, then `schedule` down to `lr * min_lr_ratio`.
///
/// ```
/// use rhythm_train::schedule::{lr_at, Schedule};
/// assert_eq!(lr_at(1.0, 0.0, 0, 2, 10, Schedule::Constant), 0.5);
/// assert_eq!(lr_at(1.0, 0.0, 6, 2, 10, Schedule::Linear), 0.5);
/// assert!((lr_at(1.0, 0.5, 10, 2, 10, Schedule::Cosine) - 0.5).abs() < 1e-12);
/// ```
pub fn lr_at(
    lr: f64,
    min_lr_ratio: f64,
    step: usize,
    warmup: usize,
    total: usize,
    schedule: Schedule,
) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let min = lr * min_lr_ratio;
    match schedule {
        Schedule::Constant => lr,
        Schedule::Linear => min + (lr - min) * (1.0 - progress),
        Schedule::Cosine => {
            min + 0.5 * (lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
    }
}
