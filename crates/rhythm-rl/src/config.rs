//! [`TrainConfig`]: every knob of `rhythm train`, as one struct that is both
//! a TOML file (serde, every field optional) and a set of command-line flags
//! (clap), documented field by field with its default, in the manner of
//! TRL's `GRPOConfig`.
//!
//! Precedence: a flag given on the command line beats the file, which beats
//! the default ([`TrainConfig::merge_explicit`]).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rhythm_core::{CreditSettings, Horizon, Layers, MetricSettings, Params};
use rhythm_model::DeviceSettings;
use serde::{Deserialize, Serialize};

use crate::data::{DataSettings, TaskSource};
use crate::tasks::PromptStyle;

/// How the local/global head groups of SPEC section 3 are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum GroupMode {
    /// Per sequence, from its own head spans (SPEC's default).
    Sequence,
    /// Once, from the first rollout batch (the calibration batch), then frozen.
    Static,
    /// From the current rollout batch every `refresh_every` steps.
    Refresh,
}

/// How the clipped surrogate is averaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LossAgg {
    /// Per sequence, the mean over its tokens; then the mean over sequences
    /// (SPEC eq. 12, the paper's setting).
    SeqMeanTokenMean,
    /// DAPO: the mean over all response tokens of the (mini-)batch.
    TokenMean,
}

// ---- optimizer and schedule: declared once in the training toolkit ----
pub use rhythm_train::{OptimSettings, Schedule};

/// Prompt style of Countdown instances (see [`PromptStyle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// TinyZero's question.
    Tinyzero,
    /// TinyZero's full base-model template.
    TinyzeroBase,
    /// `nums: 19 36 55 7 target: 65\n`, for small models.
    Compact,
}

impl From<Style> for PromptStyle {
    fn from(s: Style) -> PromptStyle {
        match s {
            Style::Tinyzero => PromptStyle::TinyZero,
            Style::TinyzeroBase => PromptStyle::TinyZeroBase,
            Style::Compact => PromptStyle::Compact,
        }
    }
}

/// The task family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Countdown (SPEC section 13): generated splits, or `dataset` JSONL of
    /// `{"nums", "target"}`.
    Countdown,
    /// Math: `dataset` JSONL of `{"prompt", "answer"}`, scored by `\boxed{}`.
    Math,
    /// Multiple choice: `dataset` JSONL of `{"prompt", "answer"}` (a letter).
    Choice,
}

/// Every setting of a GRPO run. TOML keys are the field names; flags are
/// the same names in kebab case (`prompts_per_batch` = `--prompts-per-batch`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Args)]
#[serde(default)]
pub struct TrainConfig {
    // ---- model and data ----
    /// Policy model: a Hugging Face directory (config.json, model.safetensors,
    /// tokenizer.json). Default `models/countdown-tiny`.
    #[arg(long, default_value = "models/countdown-tiny")]
    pub model: PathBuf,
    /// Task family: countdown, math or choice. Default `countdown`.
    #[arg(long, value_enum, default_value_t = TaskKind::Countdown)]
    pub task: TaskKind,
    /// Training JSONL; required for math and choice. For countdown, default
    /// none: the generated train split (`data_seed`, `train_size`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Evaluation JSONL. Default none: the generated Countdown test split
    /// (for math and choice, evaluation then is off).
    #[arg(long)]
    pub eval_dataset: Option<PathBuf>,
    /// Seed of the generated Countdown splits. Default 0.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Size of the generated Countdown train split. Default 20000 (the paper).
    #[arg(long, default_value_t = 20_000)]
    pub train_size: usize,
    /// Size of the generated Countdown test split. Default 512 (the paper).
    #[arg(long, default_value_t = 512)]
    pub test_size: usize,
    /// Countdown prompt style: tinyzero, tinyzero-base, compact. Default `compact`.
    #[arg(long, value_enum, default_value_t = Style::Compact)]
    pub prompt_style: Style,
    /// Countdown reward of a well-formed wrong answer. Default 0.
    #[arg(long, default_value_t = 0.0)]
    pub format_score: f32,
    /// How dataset files are read and prompts built (declared once in
    /// [`DataSettings`]; flat keys `prompt_field`, `messages_field`,
    /// `completion_field`, `answer_field`, `skip_invalid_rows`,
    /// `chat_template`, `enable_thinking`).
    #[serde(flatten)]
    #[command(flatten)]
    pub data: DataSettings,

    // ---- rhythm credit (SPEC 3-8) ----
    /// The credit strategy, `gamma_amp` and `alpha` (declared once in
    /// [`CreditSettings`]; flat keys `strategy`, `gamma_amp`, `alpha`).
    #[serde(flatten)]
    #[command(flatten)]
    pub credit: CreditSettings,
    /// The metric settings (declared once in [`MetricSettings`]; flat keys
    /// `layers`, `window`, `horizon`, `q`, `head_ratio`, `receiver_ratio`,
    /// `proximity`, `k`, `tau_waad`, `tau_delta`). The horizon defaults to
    /// SPEC's RL `10:50`, the layers to `sampled`.
    #[serde(flatten)]
    #[command(flatten)]
    pub metrics: MetricSettings,
    /// Head groups: sequence, static or refresh. Default `sequence`.
    #[arg(long, value_enum, default_value_t = GroupMode::Sequence)]
    pub group_mode: GroupMode,
    /// With `group_mode = refresh`: recompute the groups every this many steps.
    /// Default 10.
    #[arg(long, default_value_t = 10)]
    pub refresh_every: usize,

    // ---- GRPO ----
    /// Prompts per rollout batch. Default 8.
    #[arg(long, default_value_t = 8)]
    pub prompts_per_batch: usize,
    /// Responses per prompt, G. Default 8.
    #[arg(long, default_value_t = 8)]
    pub group_size: usize,
    /// Sequences per forward/backward pass (gradients are accumulated).
    /// Default 8.
    #[arg(long, default_value_t = 8)]
    pub micro_batch: usize,
    /// Optimizer steps per rollout batch: the batch is split into this many
    /// mini-batches. Default 1.
    #[arg(long, default_value_t = 1)]
    pub grad_steps: usize,
    /// Lower clip range eps_low. Default 0.2.
    #[arg(long, default_value_t = 0.2)]
    pub eps_low: f64,
    /// Upper clip range eps_high. Default 0.2.
    #[arg(long, default_value_t = 0.2)]
    pub eps_high: f64,
    /// Loss aggregation: seq-mean-token-mean (SPEC) or token-mean (DAPO).
    /// Default `seq-mean-token-mean`.
    #[arg(long, value_enum, default_value_t = LossAgg::SeqMeanTokenMean)]
    pub loss_agg: LossAgg,
    /// Weight beta of the k3 KL estimate to the frozen initial policy; 0
    /// turns it off (and no reference model is loaded). Default 0.
    #[arg(long, default_value_t = 0.0)]
    pub kl_coef: f64,

    // ---- optimizer ----
    /// AdamW and the learning-rate schedule (declared once in
    /// [`OptimSettings`], the training toolkit's; flat keys `lr`, `warmup`
    /// (in rollout steps), `schedule`, `min_lr_ratio`, `beta1`, `beta2`,
    /// `adam_eps`, `weight_decay`, `max_grad_norm`). Defaults: GRPO's,
    /// [`OptimSettings::default`].
    #[serde(flatten)]
    #[command(flatten)]
    pub optim: OptimSettings,

    // ---- sampling and schedule ----
    /// Rollout steps. Default 100.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Maximum response tokens (the bundled model holds 384 positions,
    /// prompts take up to about 30). Default 320.
    #[arg(long, default_value_t = 320)]
    pub max_new_tokens: usize,
    /// Rollout temperature. Default 1.0 (the paper's).
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Greedy evaluation every this many steps (0: off). Default 0.
    #[arg(long, default_value_t = 0)]
    pub eval_interval: usize,
    /// Test instances per evaluation. Default 64.
    #[arg(long, default_value_t = 64)]
    pub eval_size: usize,
    /// Checkpoint every this many steps (and always at the last). Default 10.
    #[arg(long, default_value_t = 10)]
    pub save_interval: usize,
    /// Seed of prompt order, sampling and the random strategy. Default 0.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory (metrics.jsonl, checkpoints). Default `runs/train`.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Where the policy trains: `device = "cpu"` (default), `cuda`, `cuda:N`
    /// or `metal` (flag `--device`).
    #[serde(flatten)]
    #[command(flatten)]
    pub device: DeviceSettings,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model: "models/countdown-tiny".into(),
            task: TaskKind::Countdown,
            dataset: None,
            eval_dataset: None,
            data_seed: 0,
            train_size: 20_000,
            test_size: 512,
            prompt_style: Style::Compact,
            format_score: 0.0,
            data: DataSettings::default(),
            credit: CreditSettings::default(),
            metrics: MetricSettings {
                layers: Some(Layers::Sampled),
                horizon: Some(Horizon::RL),
                ..MetricSettings::default()
            },
            group_mode: GroupMode::Sequence,
            refresh_every: 10,
            prompts_per_batch: 8,
            group_size: 8,
            micro_batch: 8,
            grad_steps: 1,
            eps_low: 0.2,
            eps_high: 0.2,
            loss_agg: LossAgg::SeqMeanTokenMean,
            kl_coef: 0.0,
            optim: OptimSettings::default(),
            steps: 100,
            max_new_tokens: 320,
            temperature: 1.0,
            eval_interval: 0,
            eval_size: 64,
            save_interval: 10,
            seed: 0,
            out: "runs/train".into(),
            device: DeviceSettings::default(),
        }
    }
}

/// Largest generated Countdown split or evaluation size.
pub const MAX_SPLIT: usize = 10_000_000;
/// Largest number of sequences in one rollout batch.
pub const MAX_BATCH_SEQUENCES: usize = 1 << 20;
/// Largest response length.
pub const MAX_NEW_TOKENS: usize = 1 << 20;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed.
    #[error("{path}: {msg}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },
    /// A field is out of its domain.
    #[error("{0}")]
    Invalid(String),
}

impl TrainConfig {
    /// Reads a TOML file; missing keys take their defaults, unknown keys
    /// are an error.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.into(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::from_toml_str(&text).map_err(|e| ConfigError::File {
            path: path.into(),
            msg: e.to_string(),
        })
    }

    /// Parses TOML text; an unknown key, or a value of the wrong type, is an
    /// error naming the key.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let one_line =
            |e: &dyn std::fmt::Display| e.to_string().replace('\n', " ").trim().to_string();
        // serde cannot deny unknown fields through `flatten`: check the keys here.
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::Invalid(format!("not valid TOML: {}", one_line(&e))))?;
        let known = Self::keys();
        if let Some(key) = table.keys().find(|k| !known.contains(k)) {
            return Err(ConfigError::Invalid(format!(
                "unknown key `{key}`, expected one of {}",
                known.join(", ")
            )));
        }
        toml::Value::Table(table.clone()).try_into().map_err(|e| {
            // Through `flatten` serde loses the key: find it by trying the
            // keys one at a time.
            let bad = table.iter().find_map(|(k, v)| {
                let one = toml::Table::from_iter([(k.clone(), v.clone())]);
                toml::Value::Table(one)
                    .try_into::<Self>()
                    .err()
                    .map(|e| (k, e))
            });
            match bad {
                Some((k, e)) => {
                    // The key's line, for the message (top-level `key = ...`).
                    let line = text.lines().position(|l| {
                        l.trim_start()
                            .strip_prefix(k.as_str())
                            .is_some_and(|rest| rest.trim_start().starts_with('='))
                    });
                    let at = line.map_or(String::new(), |i| format!("line {}, ", i + 1));
                    ConfigError::Invalid(format!("{at}key `{k}`: {}", one_line(&e)))
                }
                None => ConfigError::Invalid(one_line(&e)),
            }
        })
    }

    /// Every key of the TOML file (the field names, flattened).
    pub fn keys() -> Vec<String> {
        // The flags are the keys: clap's ids are the field names.
        let cmd = <Self as Args>::augment_args(clap::Command::new("train"));
        cmd.get_arguments()
            .map(|a| a.get_id().to_string())
            .collect()
    }

    /// The configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serializes")
    }

    /// `base` with the fields named in `explicit` (field names, e.g.
    /// `"lr"`) taken from `self` (typically: `self` parsed from flags,
    /// `base` read from the file, `explicit` the flags actually given).
    pub fn merge_explicit(&self, base: &TrainConfig, explicit: &[String]) -> TrainConfig {
        let me = serde_json::to_value(self).expect("config serializes");
        let mut out = serde_json::to_value(base).expect("config serializes");
        if let (Some(me), Some(out)) = (me.as_object(), out.as_object_mut()) {
            for key in explicit {
                if let Some(v) = me.get(key) {
                    out.insert(key.clone(), v.clone());
                }
            }
        }
        serde_json::from_value(out).expect("merged config deserializes")
    }

    /// The rhythm [`Params`] (SPEC 3-8) of this run: the settings over
    /// SPEC's RL preset, with the run's seed for the `random` strategy.
    pub fn params(&self) -> Result<Params, ConfigError> {
        let invalid = |e: rhythm_core::CoreError| ConfigError::Invalid(e.to_string());
        let p = self.metrics.params(&Params::rl()).map_err(invalid)?;
        self.credit.apply(&p, self.seed).map_err(invalid)
    }

    /// Where this run's tasks come from (for [`crate::data::load_tasks`]).
    pub fn task_source(&self) -> TaskSource {
        TaskSource {
            task: self.task,
            dataset: self.dataset.clone(),
            eval_dataset: self.eval_dataset.clone(),
            data_seed: self.data_seed,
            train_size: self.train_size,
            test_size: self.test_size,
            data: self.data.clone(),
        }
    }

    /// The probed layers (default `sampled`).
    pub fn layers(&self) -> Layers {
        self.metrics.layers_or(Layers::Sampled)
    }

    /// Checks the sizes that memory is allocated from (splits, batch shape,
    /// response length) against [`MAX_SPLIT`], [`MAX_BATCH_SEQUENCES`] and
    /// [`MAX_NEW_TOKENS`], before anything is allocated from them.
    pub fn check_sizes(&self) -> Result<(), ConfigError> {
        let at_most = |name: &str, v: usize, max: usize| {
            if v > max {
                Err(ConfigError::Invalid(format!(
                    "{name} = {v}, expected at most {max}"
                )))
            } else {
                Ok(())
            }
        };
        at_most("train_size", self.train_size, MAX_SPLIT)?;
        at_most("test_size", self.test_size, MAX_SPLIT)?;
        at_most("eval_size", self.eval_size, MAX_SPLIT)?;
        at_most("max_new_tokens", self.max_new_tokens, MAX_NEW_TOKENS)?;
        at_most(
            "prompts_per_batch",
            self.prompts_per_batch,
            MAX_BATCH_SEQUENCES,
        )?;
        at_most("group_size", self.group_size, MAX_BATCH_SEQUENCES)?;
        at_most("micro_batch", self.micro_batch, MAX_BATCH_SEQUENCES)?;
        let seqs = self.prompts_per_batch.saturating_mul(self.group_size);
        at_most("prompts_per_batch x group_size", seqs, MAX_BATCH_SEQUENCES)
    }

    /// Checks every field's domain; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_sizes()?;
        self.params()?;
        let pos = |name: &str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid(format!(
                    "{name} = 0, expected at least 1"
                )))
            } else {
                Ok(())
            }
        };
        pos("prompts_per_batch", self.prompts_per_batch)?;
        pos("group_size", self.group_size)?;
        pos("micro_batch", self.micro_batch)?;
        pos("grad_steps", self.grad_steps)?;
        pos("max_new_tokens", self.max_new_tokens)?;
        pos("refresh_every", self.refresh_every)?;
        if self.grad_steps > self.prompts_per_batch * self.group_size {
            return Err(ConfigError::Invalid(format!(
                "grad_steps = {} exceeds the {} sequences of a rollout batch",
                self.grad_steps,
                self.prompts_per_batch * self.group_size
            )));
        }
        let nonneg = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "{name} = {v}, expected a finite number >= 0"
                )))
            }
        };
        self.optim.validate().map_err(ConfigError::Invalid)?;
        nonneg("eps_low", self.eps_low)?;
        nonneg("eps_high", self.eps_high)?;
        nonneg("kl_coef", self.kl_coef)?;
        nonneg("temperature", self.temperature)?;
        if self.eps_low >= 1.0 {
            return Err(ConfigError::Invalid(format!(
                "eps_low = {}, expected < 1",
                self.eps_low
            )));
        }
        if self.task != TaskKind::Countdown && self.dataset.is_none() {
            return Err(ConfigError::Invalid(format!(
                "task {:?} needs a dataset (JSONL of prompt/answer records)",
                self.task
            )));
        }
        Ok(())
    }
}
