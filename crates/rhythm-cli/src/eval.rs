//! `rhythm eval`: greedy pass@1 and sampled avg@k of a model on a task
//! split, as a table or (`--json`) as JSON listing every instance.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use rhythm_model::DeviceSettings;
use rhythm_rl::config::{Style, TaskKind, MAX_SPLIT};
use rhythm_rl::data::DataSettings;
use rhythm_rl::eval::{evaluate, EvalConfig};

/// Arguments of `rhythm eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A Hugging Face model directory (with tokenizer.json).
    #[arg(long, default_value = "models/countdown-tiny")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// Task family: countdown, math or choice.
    #[arg(long, value_enum, default_value_t = TaskKind::Countdown)]
    pub task: TaskKind,
    /// Split of the generated Countdown data: train or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// A JSONL or parquet file to evaluate instead of a generated split
    /// (TRL's standard or conversational format, with the answer column).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Columns, invalid rows and the chat template (as in `train`).
    #[command(flatten)]
    pub data: DataSettings,
    /// Seed of the generated Countdown splits.
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Size of the generated Countdown train split.
    #[arg(long, default_value_t = 20_000)]
    pub train_size: usize,
    /// Size of the generated Countdown test split.
    #[arg(long, default_value_t = 512)]
    pub test_size: usize,
    /// Countdown prompt style.
    #[arg(long, value_enum, default_value_t = Style::Compact)]
    pub prompt_style: Style,
    /// Evaluate only the first N instances.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Samples per instance for avg@k (0: greedy only).
    #[arg(long, default_value_t = 0)]
    pub k: usize,
    /// Sampling temperature of avg@k.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// Maximum response tokens (generation also stops at the model's
    /// `max_position_embeddings`).
    #[arg(long, default_value_t = 320)]
    pub max_new_tokens: usize,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Countdown reward of a well-formed wrong answer.
    #[arg(long, default_value_t = 0.0)]
    pub format_score: f32,
    /// Print JSON (summary and every instance) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `rhythm eval`.
pub fn run(args: &EvalArgs) -> Result<()> {
    use rhythm_rl::config::{MAX_BATCH_SEQUENCES, MAX_NEW_TOKENS};
    for (flag, v, max) in [
        ("--k", args.k, MAX_BATCH_SEQUENCES),
        ("--batch-size", args.batch_size, MAX_BATCH_SEQUENCES),
        ("--max-new-tokens", args.max_new_tokens, MAX_NEW_TOKENS),
    ] {
        if v > max {
            anyhow::bail!("{flag} {v}: expected at most {max}");
        }
    }
    for (name, v) in [
        ("train_size", args.train_size),
        ("test_size", args.test_size),
    ] {
        if v > MAX_SPLIT {
            bail!("{name} = {v}, expected at most {MAX_SPLIT}");
        }
    }
    let mut tasks = match (&args.dataset, args.split.as_str()) {
        (Some(path), _) => args.data.load_tasks_file(path, args.task)?,
        (None, "test") | (None, "train") if args.task != TaskKind::Countdown => {
            bail!(
                "--task {:?} needs --dataset FILE (.jsonl or .parquet)",
                args.task
            )
        }
        (None, "test") => rhythm_rl::tasks::countdown::splits(args.data_seed, 0, args.test_size)
            .test
            .into_iter()
            .map(rhythm_rl::tasks::Task::Countdown)
            .collect(),
        (None, "train") => rhythm_rl::tasks::countdown::splits(args.data_seed, args.train_size, 0)
            .train
            .into_iter()
            .map(rhythm_rl::tasks::Task::Countdown)
            .collect(),
        (None, s) => bail!("--split '{s}': expected train or test"),
    };
    if let Some(n) = args.limit {
        tasks.truncate(n);
    }
    let model = args.device.device.load(&args.model)?;
    let ec = EvalConfig {
        k: args.k,
        temperature: args.temperature,
        max_new_tokens: args.max_new_tokens,
        seed: args.seed,
        batch_size: args.batch_size,
        format_score: args.format_score,
        style: args.prompt_style.into(),
        chat: args.data.chat,
    };
    let report = evaluate(&model, &tasks, &ec)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        v["model"] = serde_json::json!(args.model.display().to_string());
        v["split"] = serde_json::json!(if args.dataset.is_some() {
            "dataset"
        } else {
            args.split.as_str()
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("model      {}", args.model.display());
        println!("instances  {}", report.n);
        println!("pass@1     {:.4}  (greedy)", report.pass_at_1);
        if let Some(a) = report.avg_at_k {
            println!(
                "avg@{:<6} {:.4}  (temperature {})",
                report.k, a, report.temperature
            );
        }
    }
    Ok(())
}
