//! `rhythm pretrain`: train the small Countdown reasoning model from
//! scratch (see the `rhythm_pretrain` crate). Defaults are
//! [`PretrainConfig::default`]'s, the settings of `models/countdown-tiny`
//! (for the optimizer: the toolkit's `OptimSettings::pretrain` preset).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use rhythm_model::{DType, DeviceSettings};
use rhythm_pretrain::{self as pretrain, Event, Paths, PretrainConfig};
use rhythm_train::OptimSettings;

/// Flags of `rhythm pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Output model directory (Hugging Face layout).
    #[arg(long, default_value = "models/countdown-tiny")]
    pub out: PathBuf,
    /// Checkpoint directory [default: OUT.ckpt].
    #[arg(long)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue from the checkpoint directory if it holds a checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Storage dtype of the saved weights: f32 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    /// Stop after this step (checkpointed, model not saved); continue
    /// later with `--resume`.
    #[arg(long)]
    pub stop_at: Option<usize>,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// Skip the final greedy evaluation on the whole test split.
    #[arg(long)]
    pub no_eval: bool,
    /// Print a log line every this many steps (besides the progress bar).
    #[arg(long, default_value_t = 50)]
    pub log_every: usize,
    /// Seed of the initial weights and the batches.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seed of the Countdown splits (its test split is held out).
    #[arg(long)]
    pub data_seed: Option<u64>,
    /// Distinct training instances.
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Held-out test instances.
    #[arg(long)]
    pub test_size: Option<usize>,
    /// Most dead ends per trace (0..=N, uniform).
    #[arg(long)]
    pub max_dead_ends: Option<usize>,
    /// Residual width.
    #[arg(long)]
    pub hidden_size: Option<usize>,
    /// MLP width.
    #[arg(long)]
    pub intermediate_size: Option<usize>,
    /// Decoder layers.
    #[arg(long)]
    pub layers: Option<usize>,
    /// Query heads.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Key/value heads.
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// Longest prompt + response in tokens.
    #[arg(long)]
    pub max_len: Option<usize>,
    /// Optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sequences per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// The optimizer and schedule (`OptimSettings`, declared once in the
    /// training toolkit); their defaults here are the pretraining preset,
    /// `OptimSettings::pretrain` ([`with_preset_defaults`]).
    #[command(flatten)]
    pub optim: OptimSettings,
    /// Evaluate every N steps (0: never).
    #[arg(long)]
    pub eval_every: Option<usize>,
    /// Test instances in the periodic evaluation.
    #[arg(long)]
    pub eval_size: Option<usize>,
    /// Checkpoint every N steps (0: never).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
}

impl PretrainArgs {
    /// The run's configuration: defaults overridden by the given flags.
    pub fn config(&self) -> PretrainConfig {
        let mut c = PretrainConfig {
            optim: self.optim.clone(),
            ..PretrainConfig::default()
        };
        macro_rules! set {
            ($($flag:ident => $($field:ident).+),*) => {
                $(if let Some(v) = self.$flag { c.$($field).+ = v; })*
            };
        }
        set!(seed => seed, data_seed => data_seed, train_size => train_size,
             test_size => test_size, max_dead_ends => max_dead_ends,
             hidden_size => hidden_size, intermediate_size => intermediate_size,
             layers => num_layers, heads => num_heads, kv_heads => num_kv_heads,
             max_len => max_len, steps => steps, batch_size => batch_size,
             eval_every => eval_every, eval_size => eval_size,
             checkpoint_every => checkpoint_every);
        c
    }
}

/// The `pretrain` subcommand with the pretraining preset
/// ([`OptimSettings::pretrain`], the optimizer of [`PretrainConfig::default`])
/// as the defaults of its optimizer flags.
pub fn with_preset_defaults(cmd: clap::Command) -> clap::Command {
    PretrainConfig::default().optim.as_flag_defaults(cmd)
}

/// Runs `rhythm pretrain`.
pub fn run(args: &PretrainArgs) -> Result<()> {
    let cfg = args.config();
    let dtype = match args.dtype.as_str() {
        "f32" => DType::F32,
        "bf16" => DType::BF16,
        other => bail!("--dtype: expected f32 or bf16, found {other}"),
    };
    let checkpoint = args.checkpoint_dir.clone().unwrap_or_else(|| {
        let mut s = args.out.clone().into_os_string();
        s.push(".ckpt");
        PathBuf::from(s)
    });
    let paths = Paths {
        out: args.out.clone(),
        checkpoint,
        dtype,
        resume: args.resume,
        final_eval: !args.no_eval,
        stop_at: args.stop_at,
        device: args.device.device,
    };
    let bar = crate::common::progress(cfg.steps as u64, "");
    let log_every = args.log_every.max(1);
    // A hidden bar (output not a terminal, e.g. a log file) prints nothing,
    // so log lines go to stderr directly.
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let summary = pretrain::train(&cfg, &paths, |e| match e {
        Event::Start {
            step,
            steps,
            params,
        } => {
            bar.set_position(*step as u64);
            say(format!(
                "pretrain: {params} parameters, steps {step}..{steps}, checkpoint {}",
                paths.checkpoint.display()
            ));
        }
        Event::Step {
            step,
            loss,
            lr,
            grad_norm,
            tokens_per_s,
        } => {
            bar.set_position(*step as u64);
            bar.set_message(format!(
                "loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s"
            ));
            if step.is_multiple_of(log_every) {
                say(format!(
                    "step {step} loss {loss:.4} lr {lr:.3e} grad_norm {grad_norm:.3} \
                     {tokens_per_s:.0} tok/s elapsed {:.0}s",
                    bar.elapsed().as_secs_f64()
                ));
            }
        }
        Event::Eval { step, report } => say(format!(
            "eval step {step}: greedy accuracy {:.1}% ({}/{}; 3 numbers {:.1}%, 4 numbers \
             {:.1}%), finished {}, mean {:.0} tokens\nsample:\n{}",
            100.0 * report.accuracy,
            report.correct,
            report.n,
            100.0 * report.accuracy_3,
            100.0 * report.accuracy_4,
            report.finished,
            report.mean_tokens,
            report.sample
        )),
        Event::Checkpoint { step } => say(format!("checkpoint at step {step}")),
    })?;
    bar.finish_and_clear();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "out": paths.out,
            "summary": summary,
        }))?
    );
    Ok(())
}
