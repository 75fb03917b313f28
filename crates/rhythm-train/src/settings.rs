//! The optimizer and schedule settings, declared once: each knob with its
//! flag (clap), its TOML/JSON key (serde), its documentation, its default
//! and its validation. `rhythm_rl::config::TrainConfig` flattens
//! [`OptimSettings`] (keys `lr`, `warmup`, `schedule`, `min_lr_ratio`,
//! `beta1`, `beta2`, `adam_eps`, `weight_decay`, `max_grad_norm`), and so
//! does the pretraining configuration.
//!
//! The defaults ([`OptimSettings::default`], also the flags' defaults) are
//! GRPO's: a small constant learning rate without weight decay, as in the
//! paper's RL runs. Supervised pretraining from scratch lays its own preset
//! ([`OptimSettings::pretrain`], the settings of `models/countdown-tiny`)
//! under its flags, as the rhythm settings lay SPEC's presets.
//!
//! Checkpoints of pretraining written before this struct existed name three
//! keys differently (`warmup_steps`, `eps`, `grad_clip`); they are read as
//! aliases.

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::schedule::{lr_at, Schedule};

/// AdamW and learning-rate schedule settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(default)]
pub struct OptimSettings {
    /// Peak learning rate (AdamW). Default 1e-5 (`rhythm pretrain`: 3e-3).
    #[arg(long, default_value_t = 1e-5)]
    pub lr: f64,
    /// Linear warmup steps. Default 0 (`rhythm pretrain`: 50).
    #[arg(long, default_value_t = 0)]
    #[serde(alias = "warmup_steps")]
    pub warmup: usize,
    /// Schedule after warmup: constant, linear, cosine. Default `constant`
    /// (`rhythm pretrain`: `cosine`).
    #[arg(long, value_enum, default_value_t = Schedule::Constant)]
    pub schedule: Schedule,
    /// Final learning rate of the linear and cosine schedules, as a
    /// fraction of `lr`, in [0, 1]. Default 0 (`rhythm pretrain`: 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub min_lr_ratio: f64,
    /// AdamW beta1. Default 0.9.
    #[arg(long, default_value_t = 0.9)]
    pub beta1: f64,
    /// AdamW beta2. Default 0.999 (`rhythm pretrain`: 0.95).
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// AdamW epsilon. Default 1e-8.
    #[arg(long, default_value_t = 1e-8)]
    #[serde(alias = "eps")]
    pub adam_eps: f64,
    /// AdamW decoupled weight decay of matrices and embeddings (norm gains
    /// never decay). Default 0 (`rhythm pretrain`: 0.1).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm (0: off). Default 1.0.
    #[arg(long, default_value_t = 1.0, alias = "grad-clip")]
    #[serde(alias = "grad_clip")]
    pub max_grad_norm: f64,
}

impl Default for OptimSettings {
    fn default() -> Self {
        OptimSettings {
            lr: 1e-5,
            warmup: 0,
            schedule: Schedule::Constant,
            min_lr_ratio: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
        }
    }
}

impl OptimSettings {
    /// The preset of supervised pretraining from scratch (the settings of
    /// `models/countdown-tiny`): peak 3e-3 after 50 warmup steps, cosine
    /// decay to a tenth, beta2 0.95, weight decay 0.1, clip 1.0.
    pub fn pretrain() -> Self {
        OptimSettings {
            lr: 3e-3,
            warmup: 50,
            schedule: Schedule::Cosine,
            min_lr_ratio: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            adam_eps: 1e-8,
            weight_decay: 0.1,
            max_grad_norm: 1.0,
        }
    }

    /// Lays `self` over the flags of [`OptimSettings`] in `cmd` as their
    /// defaults (in parsing and in `--help`): how a command whose preset is
    /// not [`OptimSettings::default`] (`rhythm pretrain`) keeps the one
    /// declaration of these flags.
    pub fn as_flag_defaults(&self, cmd: clap::Command) -> clap::Command {
        let schedule = clap::ValueEnum::to_possible_value(&self.schedule)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        [
            ("lr", self.lr.to_string()),
            ("warmup", self.warmup.to_string()),
            ("schedule", schedule),
            ("min_lr_ratio", self.min_lr_ratio.to_string()),
            ("beta1", self.beta1.to_string()),
            ("beta2", self.beta2.to_string()),
            ("adam_eps", self.adam_eps.to_string()),
            ("weight_decay", self.weight_decay.to_string()),
            ("max_grad_norm", self.max_grad_norm.to_string()),
        ]
        .into_iter()
        .fold(cmd, |cmd, (id, v)| cmd.mut_arg(id, |a| a.default_value(v)))
    }

    /// The learning rate at step `step` (0-based) of a run of `total` steps
    /// ([`lr_at`]).
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        lr_at(
            self.lr,
            self.min_lr_ratio,
            step,
            self.warmup,
            total,
            self.schedule,
        )
    }

    /// Checks every field's domain; the message names the key, its value
    /// and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        let nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} = {v}, expected a finite number >= 0"))
            }
        };
        nonneg("lr", self.lr)?;
        nonneg("weight_decay", self.weight_decay)?;
        nonneg("max_grad_norm", self.max_grad_norm)?;
        nonneg("adam_eps", self.adam_eps)?;
        for (name, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(format!("{name} = {b}, expected a number in [0, 1)"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(format!(
                "min_lr_ratio = {}, expected a number in [0, 1]",
                self.min_lr_ratio
            ));
        }
        Ok(())
    }
}
