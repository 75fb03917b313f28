//! `rhythm`: read an LLM's attention rhythm and turn it into RL credit.
//!
//! Every subcommand reports bad input as one line on stderr (`error: ...`)
//! and exits with status 2.
//!
//! "SPEC section N" in these docs is section N of the project's specification,
//! `docs/spec.md` in the repository: the binding definitions this code follows.

mod analyze;
mod common;
mod curves;
mod eval;
mod jsonl;
mod perturb;
mod pretrain;
mod probe;
mod report;
mod score;
mod stats;
mod train;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// rhythm: preplan-and-anchor attention analysis and rhythm credit for GRPO.
#[derive(Parser)]
#[command(name = "rhythm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score attention maps from a safetensors file: WAAD, FAI, preplan and
    /// anchor tokens, and the per-token credit gamma.
    Score(score::ScoreArgs),
    /// Run a model over prompt + response: write its logits and attention
    /// maps (the format `score` reads), or with `--stream --json` print the
    /// rhythm computed from streamed summaries.
    Probe(probe::ProbeArgs),
    /// GRPO with rhythm credit: `--config FILE.toml` and/or flags; `--resume OUT`.
    Train(Box<train::TrainArgs>),
    /// Greedy pass@1 and sampled avg@k of a model on a task split.
    Eval(eval::EvalArgs),
    /// Train the small Countdown reasoning model from scratch on synthetic
    /// search traces and save it as a Hugging Face directory.
    Pretrain(pretrain::PretrainArgs),
    /// Analyse responses (generated or given): per-token WAAD, FAI, entropy,
    /// preplan and anchor tokens, chunks; `--out DIR` writes analysis.json
    /// and a self-contained report.html.
    Analyze(Box<analyze::AnalyzeArgs>),
    /// Coupling statistics over many prompts (the paper's table 2).
    Stats(Box<stats::StatsArgs>),
    /// Perturbation test at top- and bottom-FAI positions (the paper's table 1).
    Perturb(Box<perturb::PerturbArgs>),
    /// Summarise RL runs of `rhythm train` by method (the paper's table 3
    /// and training curves): a table, summary.json, table.md and SVG figures.
    Curves(curves::CurvesArgs),
}

/// Parses the command line: `rhythm pretrain`'s optimizer flags default to
/// the pretraining preset ([`pretrain::with_preset_defaults`]).
fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let cmd = Cli::command().mut_subcommand("pretrain", pretrain::with_preset_defaults);
    let matches = cmd.try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

fn main() {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // Bad flags are one line too: clap's first line, without its
            // "For more information" footer.
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad arguments"));
            std::process::exit(2);
        }
    };
    let result = match &cli.command {
        Command::Score(args) => score::run(args),
        Command::Probe(args) => probe::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Pretrain(args) => pretrain::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Stats(args) => stats::run(args),
        Command::Perturb(args) => perturb::run(args),
        Command::Curves(args) => curves::run(args),
    };
    if let Err(e) = result {
        // One line: the chain of causes joined by ': '.
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretrain_config(args: &[&str]) -> rhythm_pretrain::PretrainConfig {
        let argv = ["rhythm", "pretrain"].iter().chain(args).map(Into::into);
        match parse(argv).unwrap().command {
            Command::Pretrain(a) => a.config(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn pretrain_flags_lay_over_the_pretraining_preset() {
        let preset = rhythm_pretrain::PretrainConfig::default();
        assert_eq!(pretrain_config(&[]), preset);
        assert_eq!(preset.optim, rhythm_train::OptimSettings::pretrain());
        let c = pretrain_config(&[
            "--schedule",
            "linear",
            "--min-lr-ratio",
            "0.25",
            "--beta2",
            "0.98",
            "--grad-clip",
            "0.5",
            "--lr",
            "1e-3",
        ]);
        let o = &c.optim;
        assert_eq!(o.schedule, rhythm_train::Schedule::Linear);
        assert_eq!(
            (o.min_lr_ratio, o.beta2, o.max_grad_norm, o.lr),
            (0.25, 0.98, 0.5, 1e-3)
        );
        assert_eq!(
            (o.warmup, o.weight_decay),
            (preset.optim.warmup, preset.optim.weight_decay)
        );
        // `train` keeps GRPO's defaults.
        let argv = ["rhythm", "train"].map(Into::into);
        match parse(argv).unwrap().command {
            Command::Train(a) => assert_eq!(a.cfg.optim, rhythm_train::OptimSettings::default()),
            _ => unreachable!(),
        }
    }
}
