//! `rhythm train`: GRPO with rhythm credit.
//!
//! Settings come from `--config FILE.toml` (every key optional) and from
//! flags of the same names, which override the file. `--resume OUT`
//! continues the run in `OUT` from its newest checkpoint with the saved
//! configuration (flags given alongside still override it, e.g. a larger
//! `--steps`). See `docs/training.md`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{parser::ValueSource, Args, CommandFactory, FromArgMatches};
use indicatif::ProgressBar;
use rhythm_rl::config::TrainConfig;
use rhythm_rl::trainer::Trainer;

/// Arguments of `rhythm train`.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// A TOML file of settings (keys as the flags, in snake_case).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run in this output directory from its newest checkpoint.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// No progress bar (one line per step on stderr instead).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub cfg: TrainConfig,
}

/// A clap parser for `TrainArgs` alone, to learn which flags were given.
#[derive(clap::Parser)]
#[command(name = "train")]
struct Only {
    #[command(flatten)]
    args: TrainArgs,
}

/// The `TrainConfig` fields given on the command line (`rhythm train ...`).
fn explicit_fields() -> Vec<String> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Ok(m) = Only::command().try_get_matches_from(argv) else {
        return Vec::new();
    };
    let _ = Only::from_arg_matches(&m);
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
}

/// Runs `rhythm train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let explicit = explicit_fields();
    let mut trainer = if let Some(out) = &args.resume {
        Trainer::resume(out, Some((&args.cfg, &explicit)))
            .with_context(|| format!("cannot resume {}", out.display()))?
    } else {
        let cfg = match &args.config {
            Some(path) => {
                let file = TrainConfig::from_toml_file(path)?;
                args.cfg.merge_explicit(&file, &explicit)
            }
            None => args.cfg.clone(),
        };
        if rhythm_rl::checkpoint::latest(&cfg.out).is_some() {
            anyhow::bail!(
                "{} already holds a run; continue it with --resume {} or choose another --out",
                cfg.out.display(),
                cfg.out.display()
            );
        }
        Trainer::new(cfg.clone())
            .with_context(|| format!("cannot start training from {}", cfg.model.display()))?
    };
    let total = trainer.cfg.steps as u64;
    let bar = if args.no_progress {
        ProgressBar::hidden()
    } else {
        crate::common::progress(total, "")
    };
    bar.set_position(trainer.step as u64);
    let quiet = args.no_progress;
    trainer.run(|m| {
        let msg = format!(
            "reward {:.3} acc {:.3} len {:.1} gamma>1 {:.2} loss {:+.4}{}",
            m.reward,
            m.accuracy,
            m.response_len,
            m.gamma_boost_share,
            m.loss,
            m.eval_accuracy
                .map(|a| format!(" eval {a:.3}"))
                .unwrap_or_default()
        );
        if quiet {
            eprintln!("step {}/{total}: {msg}", m.step);
        }
        bar.set_message(msg);
        bar.set_position(m.step as u64);
    })?;
    bar.finish();
    eprintln!(
        "done: {} steps; checkpoints and metrics.jsonl in {}",
        trainer.step,
        trainer.cfg.out.display()
    );
    Ok(())
}
