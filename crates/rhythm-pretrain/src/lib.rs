//! Supervised pretraining (`rhythm pretrain`): a small Qwen3 Countdown
//! model trained from scratch on synthetic search traces.
//!
//! The project must run on a CPU-only machine with no downloads, so it
//! ships a tiny reasoning model that it made itself. This module holds
//! everything needed to remake it:
//!
//! - [`trace`]: the search traces (a `<think>` section that tries paths,
//!   abandons dead ends with ` no` and ends with a successful one, then the
//!   `<answer>`), deterministic by seed;
//! - [`tokenizer`]: a character-level Hugging Face `tokenizer.json`;
//! - [`train`]: the training loop, nanoGPT style, readable top to bottom:
//!   batches of right-padded prompt + trace sequences, cross-entropy on the
//!   response tokens only, AdamW with warmup and cosine decay, gradient
//!   clipping, periodic greedy evaluation on the held-out Countdown test
//!   split, crash-consistent checkpoints with exact resume, and a final
//!   Hugging Face model directory (`config.json`, `model.safetensors`,
//!   `tokenizer.json`, `generation_config.json`).
//!
//! Pretraining is not reinforcement learning, so it lives in its own crate;
//! it takes the Countdown instances, prompts and verifier from
//! [`rhythm_rl::tasks`] and every training piece (optimizer, schedule,
//! checkpoint files, evaluation loop, trainable weights) from the toolkit
//! [`rhythm_train`] that GRPO uses too.
//!
//! Everything is a function of [`PretrainConfig`]: the batch of step `s` is
//! drawn from ChaCha8 stream `s` of the seed, so a run resumed from a
//! checkpoint takes exactly the steps an uninterrupted run takes.
//!
//! The loss uses only the model's differentiable path
//! ([`Model::token_logprobs`]: gather minus a log-sum-exp built from basic
//! ops), never candle-nn's fused kernels, which have no backward pass. The
//! optimiser is the toolkit's [`AdamW`] (decoupled weight decay of matrices
//! and embeddings only, bias-corrected moments, checkpointable state).
//!
//! The checkpoint is one rolling directory (`OUT.ckpt` by default) holding
//! `model.safetensors`, `optimizer.safetensors` and `state.json` (step,
//! AdamW step count, configuration, and the size and hash of the other two
//! files); it is assembled under a temporary name, fsync'd and renamed into
//! place ([`rhythm_train::checkpoint::commit_dir`]), so a killed run leaves
//! the previous checkpoint intact. Checkpoints written before the toolkit
//! (no manifest, the older optimizer key names) still load.

pub mod tokenizer;
pub mod trace;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhythm_model::{Config, DeviceSpec, Model};
use rhythm_rl::tasks::countdown::{self, CountdownInstance, PromptStyle};
use rhythm_train::checkpoint::{self as files, FileSum};
use rhythm_train::{clip_grad_norm, trainable_vars, AdamW, OptimSettings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokenizers::Tokenizer;

/// Why pretraining failed.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// An error from the model engine.
    #[error(transparent)]
    Model(#[from] rhythm_model::ModelError),
    /// A tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error of the training toolkit (optimizer, checkpoint files).
    #[error(transparent)]
    Train(#[from] rhythm_train::Error),
    /// A bad setting or an unusable checkpoint.
    #[error("{0}")]
    Invalid(String),
}

/// An I/O error on `path` (the toolkit's [`rhythm_train::Error::Io`]).
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PretrainError + '_ {
    move |source| rhythm_train::io_err(path)(source).into()
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, PretrainError>;

/// Every setting of a pretraining run. The defaults are those of the
/// bundled `models/countdown-tiny` (its model card gives the exact
/// commands).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Seed of the initial weights and of the batch streams (default 0).
    pub seed: u64,
    /// Seed of the Countdown splits; the test split of this seed is held
    /// out (default 0, the RL default).
    pub data_seed: u64,
    /// Distinct training instances (default 50,000; drawn by
    /// [`countdown::splits`], so disjoint from the test split).
    pub train_size: usize,
    /// Held-out test instances (default 512, the paper's test size).
    pub test_size: usize,
    /// Most failed paths per trace: a trace is a random-order depth-first
    /// search that succeeds within this many dead ends (see [`trace::trace`];
    /// default 6).
    pub max_dead_ends: usize,
    /// Residual width (default 128).
    pub hidden_size: usize,
    /// MLP width (default 512).
    pub intermediate_size: usize,
    /// Decoder layers (default 4).
    pub num_layers: usize,
    /// Query heads (default 4).
    pub num_heads: usize,
    /// Key/value heads (default 2).
    pub num_kv_heads: usize,
    /// Embedding rows; at least the tokenizer's size (default 64).
    pub vocab_size: usize,
    /// Longest prompt + response in tokens; longer traces are redrawn
    /// (default 384).
    pub max_len: usize,
    /// Optimiser steps (default 3000).
    pub steps: usize,
    /// Sequences per step (default 16).
    pub batch_size: usize,
    /// Optimizer and schedule (declared once in [`OptimSettings`]; flat
    /// keys). Default [`OptimSettings::pretrain`]: peak 3e-3 after 50
    /// warmup steps, cosine decay to a tenth, beta2 0.95, weight decay 0.1,
    /// clip 1.0.
    #[serde(flatten)]
    pub optim: OptimSettings,
    /// Greedy evaluation every this many steps; 0 disables (default 500).
    pub eval_every: usize,
    /// Test instances used by the periodic evaluation (default 64; the
    /// final evaluation uses the whole test split).
    pub eval_size: usize,
    /// Checkpoint every this many steps; 0 disables (default 50).
    pub checkpoint_every: usize,
    /// Initialisation scale (std 0.02 times this; default 1.0).
    pub init_scale: f64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            seed: 0,
            data_seed: 0,
            train_size: 50_000,
            test_size: countdown::DEFAULT_TEST_SIZE,
            max_dead_ends: 6,
            hidden_size: 128,
            intermediate_size: 512,
            num_layers: 4,
            num_heads: 4,
            num_kv_heads: 2,
            vocab_size: 64,
            max_len: 384,
            steps: 3000,
            batch_size: 16,
            optim: OptimSettings::pretrain(),
            eval_every: 500,
            eval_size: 64,
            checkpoint_every: 50,
            init_scale: 1.0,
        }
    }
}

impl PretrainConfig {
    /// Checks the settings for consistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(PretrainError::Invalid(format!("pretrain config: {m}")));
        if self.vocab_size < tokenizer::vocabulary().len() {
            return bad("vocab_size is smaller than the tokenizer");
        }
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
            || !self.hidden_size.is_multiple_of(self.num_heads)
            || !(self.hidden_size / self.num_heads).is_multiple_of(2)
        {
            return bad("need heads divisible by kv heads and an even head width");
        }
        if self.batch_size == 0 || self.train_size == 0 || self.max_len < 64 {
            return bad("need batch_size, train_size > 0 and max_len >= 64");
        }
        self.optim
            .validate()
            .map_err(|m| PretrainError::Invalid(format!("pretrain config: {m}")))?;
        if self.optim.lr <= 0.0 {
            return bad("need lr > 0");
        }
        Ok(())
    }

    /// The model's `config.json` (Qwen3 architecture, tied embeddings,
    /// end of text = padding = id 0).
    pub fn model_config(&self) -> Result<Config> {
        let head_dim = self.hidden_size / self.num_heads;
        let v = json!({
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": self.max_len,
            "rms_norm_eps": 1e-6,
            "rope_theta": 10000.0,
            "tie_word_embeddings": true,
            "attention_bias": false,
            "attention_dropout": 0.0,
            "hidden_act": "silu",
            "use_sliding_window": false,
            "sliding_window": null,
            "max_window_layers": self.num_layers,
            "initializer_range": 0.02,
            "use_cache": true,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "pad_token_id": 0,
        });
        Ok(Config::from_json_str(
            &v.to_string(),
            Path::new("<pretrain>"),
        )?)
    }

    /// Learning rate at `step` (0-based) of `steps`
    /// ([`OptimSettings::lr_at`]: by default linear warmup to `lr`, then
    /// cosine decay to `lr * min_lr_ratio` at the last step).
    pub fn lr_at(&self, step: usize) -> f64 {
        self.optim.lr_at(step, self.steps)
    }
}

/// The training and test instances of a configuration.
pub fn data(cfg: &PretrainConfig) -> countdown::Splits {
    countdown::splits(cfg.data_seed, cfg.train_size, cfg.test_size)
}

/// Token ids of `text` (no special-token processing beyond the added tags).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| PretrainError::Invalid(format!("tokenizer: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// One training batch: right-padded ids `[B, T]` and the loss mask
/// `[B, T - 1]` (1 where the next token is a response token).
#[derive(Debug)]
pub struct Batch {
    /// Token ids, padded with end of text (id 0).
    pub ids: Tensor,
    /// 1.0 on predicted response tokens, 0.0 on prompt and padding.
    pub mask: Tensor,
    /// Number of response tokens (the loss denominator).
    pub tokens: usize,
}

/// The batch of step `step`: instances and search orders drawn from
/// ChaCha8 stream `step` of `seed` (so any step can be rebuilt alone).
pub fn batch(
    cfg: &PretrainConfig,
    train: &[CountdownInstance],
    tok: &Tokenizer,
    step: usize,
    device: &Device,
) -> Result<Batch> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_7ace);
    rng.set_stream(step as u64);
    let mut rows: Vec<(Vec<u32>, usize)> = Vec::with_capacity(cfg.batch_size);
    while rows.len() < cfg.batch_size {
        let inst = &train[rng.random_range(0..train.len())];
        let Some(t) = trace::trace(inst, cfg.max_dead_ends, &mut rng) else {
            continue;
        };
        let p = encode(tok, &t.prompt)?;
        let r = encode(tok, &t.response)?;
        if p.len() + r.len() > cfg.max_len {
            continue;
        }
        let plen = p.len();
        rows.push(([p, r].concat(), plen));
    }
    let t = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(2);
    let mut ids = Vec::with_capacity(rows.len() * t);
    let mut mask = Vec::with_capacity(rows.len() * (t - 1));
    let mut tokens = 0;
    for (row, plen) in &rows {
        ids.extend_from_slice(row);
        ids.extend(std::iter::repeat_n(0u32, t - row.len()));
        // Position j predicts token j + 1: a response token when
        // plen <= j + 1 < len.
        for j in 0..t - 1 {
            let on = j + 1 >= *plen && j + 1 < row.len();
            tokens += usize::from(on);
            mask.push(if on { 1f32 } else { 0f32 });
        }
    }
    let b = rows.len();
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t - 1), device)?,
        tokens,
    })
}

/// Mean negative log-likelihood of the response tokens (differentiable).
pub fn sft_loss(model: &Model, batch: &Batch) -> Result<Tensor> {
    // Right padding: real tokens never attend to later padding under the
    // causal mask, so no attention mask is needed.
    let lp = model.token_logprobs(&batch.ids, None)?;
    let total = (lp * &batch.mask)?.sum_all()?;
    Ok((total.neg()? / batch.tokens.max(1) as f64)?)
}

/// The loss of [`sft_loss`] and its gradient for every weight (in
/// [`Model::named_weights`] order), through the hand-written training pass
/// ([`Model::train_forward`], CPU only): each row runs unpadded, up to its
/// last response token.
pub fn sft_grads(model: &Model, batch: &Batch) -> Result<(f64, Vec<(String, Tensor)>)> {
    let ids = batch.ids.to_vec2::<u32>()?;
    let mask = batch.mask.to_vec2::<f32>()?;
    let mut rows = Vec::new();
    let mut masks = Vec::new();
    for (row, m) in ids.iter().zip(&mask) {
        // Position j predicts token j + 1: the row ends after its last
        // response token.
        let Some(last) = m.iter().rposition(|&v| v > 0.0) else {
            continue;
        };
        rows.push(&row[..last + 2]);
        masks.push(&m[..last + 1]);
    }
    let total = batch.tokens.max(1) as f32;
    let dl: Vec<Vec<f32>> = masks
        .iter()
        .map(|m| m.iter().map(|&v| -v / total).collect())
        .collect();
    let mut grads = rhythm_model::Gradients::zeros(model);
    if rows.is_empty() {
        return Ok((0.0, grads.to_tensors(model.device())?));
    }
    let tape = model.train_forward(&rows)?;
    let loss: f64 = tape
        .logprobs
        .iter()
        .zip(&dl)
        .map(|(lp, d)| {
            lp.iter()
                .zip(d)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>()
        })
        .sum();
    model.train_backward(tape, &dl, &mut grads)?;
    Ok((loss, grads.to_tensors(model.device())?))
}

/// Greedy accuracy on a set of instances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    /// Instances evaluated.
    pub n: usize,
    /// Responses whose answer verified correct.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
    /// Accuracy on the 3-number instances.
    pub accuracy_3: f64,
    /// Accuracy on the 4-number instances.
    pub accuracy_4: f64,
    /// Responses that ended with end of text.
    pub finished: usize,
    /// Mean response length in tokens.
    pub mean_tokens: f64,
    /// The first response, decoded (end of text removed).
    pub sample: String,
}

/// Greedy decoding of every instance's compact prompt (batches of 64,
/// at most `max_len` tokens in all), scored with the Countdown verifier.
pub fn evaluate(
    model: &Model,
    tok: &Tokenizer,
    instances: &[CountdownInstance],
) -> Result<EvalReport> {
    let max_len = model.config().max_position_embeddings;
    let mut correct = [0usize; 2];
    let mut count = [0usize; 2];
    let (mut finished, mut total_tokens) = (0, 0);
    let mut sample = String::new();
    let prompts = instances
        .iter()
        .map(|i| encode(tok, &i.prompt(PromptStyle::Compact)))
        .collect::<Result<Vec<_>>>()?;
    // Each batch of 64 may fill the context after its longest prompt.
    let budget = |chunk: &[Vec<u32>]| {
        let longest = chunk.iter().map(Vec::len).max().unwrap_or(0);
        max_len.saturating_sub(longest)
    };
    let gens = rhythm_train::eval::greedy_in_batches(model, &prompts, 64, &[0], budget)?;
    for (inst, g) in instances.iter().zip(gens) {
        let text = tok
            .decode(&g.tokens, true)
            .map_err(|e| PretrainError::Invalid(format!("tokenizer: {e}")))?;
        let k = usize::from(inst.nums.len() >= 4);
        count[k] += 1;
        if inst.verify(&text).is_correct() {
            correct[k] += 1;
        }
        finished += usize::from(g.finish == rhythm_model::FinishReason::Eos);
        total_tokens += g.tokens.len();
        if sample.is_empty() {
            sample = format!("{}{text}", inst.prompt(PromptStyle::Compact));
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let n = instances.len();
    Ok(EvalReport {
        n,
        correct: correct[0] + correct[1],
        accuracy: ratio(correct[0] + correct[1], n),
        accuracy_3: ratio(correct[0], count[0]),
        accuracy_4: ratio(correct[1], count[1]),
        finished,
        mean_tokens: ratio(total_tokens, n),
        sample,
    })
}

/// What the loop reports as it goes.
#[derive(Clone, Debug)]
pub enum Event {
    /// Training starts (or resumes) at `step` of `steps`.
    Start {
        /// First step to run.
        step: usize,
        /// Total steps.
        steps: usize,
        /// Trainable parameters.
        params: usize,
    },
    /// One optimiser step finished.
    Step {
        /// Steps done.
        step: usize,
        /// Its loss.
        loss: f64,
        /// Its learning rate.
        lr: f64,
        /// Gradient norm before clipping.
        grad_norm: f64,
        /// Response tokens trained on per second, since the start.
        tokens_per_s: f64,
    },
    /// A greedy evaluation finished.
    Eval {
        /// Steps done.
        step: usize,
        /// The report.
        report: EvalReport,
    },
    /// A checkpoint was written.
    Checkpoint {
        /// Steps done.
        step: usize,
    },
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Steps done.
    pub steps: usize,
    /// Loss of the last step.
    pub final_loss: f64,
    /// Trainable parameters.
    pub params: usize,
    /// Seconds spent in this invocation.
    pub seconds: f64,
    /// Greedy accuracy on the whole test split (None when skipped).
    pub eval: Option<EvalReport>,
}

/// Where and how [`train`] writes.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The final Hugging Face model directory.
    pub out: PathBuf,
    /// The checkpoint directory (replaced atomically at every checkpoint).
    pub checkpoint: PathBuf,
    /// Storage dtype of the final weights (F32, BF16 or F16).
    pub dtype: DType,
    /// Continue from the checkpoint if there is one.
    pub resume: bool,
    /// Run the final evaluation on the whole test split.
    pub final_eval: bool,
    /// Stop after this step (checkpointing it) without saving the model,
    /// to split a run across sessions; `--resume` continues it exactly.
    pub stop_at: Option<usize>,
    /// Where the model trains (`--device`).
    pub device: DeviceSpec,
}

/// Trains a model as `cfg` says and saves it to `paths.out`.
pub fn train(
    cfg: &PretrainConfig,
    paths: &Paths,
    mut on_event: impl FnMut(&Event),
) -> Result<Summary> {
    cfg.validate()?;
    let device = paths.device.device()?;
    let started = Instant::now();

    // 1. Data, tokenizer, model and optimiser.
    let splits = data(cfg);
    let tok = tokenizer::build();
    let model_cfg = cfg.model_config()?;
    let (model, varmap) = Model::random(&model_cfg, cfg.seed, cfg.init_scale, &device)?;
    let mut opt = AdamW::new(trainable_vars(&varmap), &cfg.optim)?;
    let params = opt.num_params();

    // 2. Remove what killed runs left; resume from the checkpoint, if
    //    asked and present.
    clean_stale(&paths.checkpoint)?;
    clean_stale(&paths.out)?;
    let mut start = 0;
    if paths.resume && paths.checkpoint.join(STATE).is_file() {
        start = load_checkpoint(&paths.checkpoint, cfg, &mut opt, &device)?;
    }
    on_event(&Event::Start {
        step: start,
        steps: cfg.steps,
        params,
    });

    // 3. The loop.
    let mut trained_tokens = 0usize;
    let loop_start = Instant::now();
    let mut final_loss = f64::NAN;
    for step in start..cfg.steps {
        let b = batch(cfg, &splits.train, &tok, step, &device)?;
        let lr = cfg.lr_at(step);
        // The hand-written training pass on the CPU (RHYTHM_UPDATE=candle:
        // candle autograd, as on other devices).
        let mut grads = if model.supports_fast_train()
            && std::env::var("RHYTHM_UPDATE").as_deref() != Ok("candle")
        {
            let (loss, grads) = sft_grads(&model, &b)?;
            final_loss = loss;
            opt.grads_by_name(grads)
        } else {
            let loss = sft_loss(&model, &b)?;
            final_loss = f64::from(loss.to_scalar::<f32>()?);
            opt.grads_of(&loss.backward()?)
        };
        if let Some(i) = grads.iter().position(Option::is_none) {
            return Err(PretrainError::Invalid(format!(
                "no gradient reached {}",
                opt.vars[i].0
            )));
        }
        let grad_norm = clip_grad_norm(&mut grads, cfg.optim.max_grad_norm)?;
        opt.step(&grads, lr)?;
        if !final_loss.is_finite() {
            return Err(PretrainError::Invalid(format!(
                "loss became {final_loss} at step {step}"
            )));
        }
        trained_tokens += b.tokens;
        let done = step + 1;
        on_event(&Event::Step {
            step: done,
            loss: final_loss,
            lr,
            grad_norm,
            tokens_per_s: trained_tokens as f64 / loop_start.elapsed().as_secs_f64(),
        });
        if cfg.eval_every > 0 && done.is_multiple_of(cfg.eval_every) && done < cfg.steps {
            let n = cfg.eval_size.min(splits.test.len());
            let report = evaluate(&model, &tok, &splits.test[..n])?;
            on_event(&Event::Eval { step: done, report });
        }
        if cfg.checkpoint_every > 0
            && (done.is_multiple_of(cfg.checkpoint_every) || done == cfg.steps)
        {
            save_checkpoint(&paths.checkpoint, cfg, done, &opt)?;
            on_event(&Event::Checkpoint { step: done });
        }
        if paths.stop_at == Some(done) && done < cfg.steps {
            save_checkpoint(&paths.checkpoint, cfg, done, &opt)?;
            on_event(&Event::Checkpoint { step: done });
            return Ok(Summary {
                steps: done,
                final_loss,
                params,
                seconds: started.elapsed().as_secs_f64(),
                eval: None,
            });
        }
    }

    // 4. The Hugging Face directory, then the full evaluation.
    save_model(&model, cfg, paths)?;
    let eval = if paths.final_eval {
        let report = evaluate(&model, &tok, &splits.test)?;
        on_event(&Event::Eval {
            step: cfg.steps,
            report: report.clone(),
        });
        Some(report)
    } else {
        None
    };
    Ok(Summary {
        steps: cfg.steps,
        final_loss,
        params,
        seconds: started.elapsed().as_secs_f64(),
        eval,
    })
}

/// Side files of the model directory: `tokenizer.json`,
/// `tokenizer_config.json`, `generation_config.json`.
pub fn write_side_files(dir: &Path, cfg: &PretrainConfig) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    tokenizer::save(dir).map_err(io(dir))?;
    let gen = json!({
        "bos_token_id": 0,
        "eos_token_id": 0,
        "pad_token_id": 0,
        "do_sample": false,
        "max_length": cfg.max_len,
    });
    let p = dir.join("generation_config.json");
    std::fs::write(&p, serde_json::to_string_pretty(&gen).expect("json")).map_err(io(&p))
}

/// Writes the model directory atomically (weights in `paths.dtype`).
pub fn save_model(model: &Model, cfg: &PretrainConfig, paths: &Paths) -> Result<()> {
    let mut side = files::temp_sibling(&paths.out).into_os_string();
    side.push("-side");
    let side = PathBuf::from(side);
    write_side_files(&side, cfg)?;
    let r = rhythm_model::save_pretrained(model, &paths.out, paths.dtype, Some(&side));
    let _ = std::fs::remove_dir_all(&side);
    Ok(r?)
}

/// Name of the state file inside a pretraining checkpoint.
pub const STATE: &str = "state.json";
const WEIGHTS: &str = "model.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";
/// Largest `state.json` accepted.
const MAX_STATE_BYTES: u64 = 16 << 20;

/// Removes the temporaries that killed runs left beside `path` (entries
/// `.{name}.tmp...` of its parent directory).
fn clean_stale(path: &Path) -> Result<()> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(());
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    files::clean_stale_by(parent, |n| files::is_temp_of(n, &name))?;
    Ok(())
}

/// Writes the checkpoint `dir` (weights, optimiser moments, then
/// `state.json` with step, config and the manifest of the other files)
/// under a temporary name, fsync'd, and renames it into place.
pub fn save_checkpoint(dir: &Path, cfg: &PretrainConfig, step: usize, opt: &AdamW) -> Result<()> {
    let tmp = files::begin_dir(dir)?;
    let weights: Vec<(String, Tensor)> = opt
        .vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect();
    rhythm_model::write_safetensors(&tmp.join(WEIGHTS), &weights, &BTreeMap::new())?;
    opt.save(&tmp.join(OPTIMIZER))?;
    let manifest = files::manifest(&tmp, STATE)?;
    let state = json!({"step": step, "adam_t": opt.t, "config": cfg, "files": manifest});
    let text = serde_json::to_string_pretty(&state).expect("state serializes");
    files::write_synced(&tmp.join(STATE), text.as_bytes())?;
    files::commit_dir(&tmp, dir)?;
    Ok(())
}

/// Restores weights and optimiser from `dir`; returns the step to continue
/// from. The checkpoint's files must match its manifest (checkpoints from
/// before manifests: be present with readable headers), and its config
/// must equal `cfg` except for `steps`, `eval_every`, `eval_size` and
/// `checkpoint_every`.
pub fn load_checkpoint(
    dir: &Path,
    cfg: &PretrainConfig,
    opt: &mut AdamW,
    device: &Device,
) -> Result<usize> {
    let p = dir.join(STATE);
    let invalid = |m: String| PretrainError::Invalid(format!("{}: {m}", p.display()));
    let len = std::fs::metadata(&p).map_err(io(&p))?.len();
    if len > MAX_STATE_BYTES {
        return Err(invalid(format!(
            "{len} bytes, expected at most {MAX_STATE_BYTES}"
        )));
    }
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    let mut state: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    // Checkpoints from before the shared toolkit had no `schedule` key:
    // their schedule was always cosine.
    if let Some(c) = state.get_mut("config").and_then(|c| c.as_object_mut()) {
        c.entry("schedule").or_insert_with(|| json!("cosine"));
    }
    let saved: PretrainConfig = serde_json::from_value(state["config"].clone())
        .map_err(|e| invalid(format!("config: {e}")))?;
    let comparable = |c: &PretrainConfig| PretrainConfig {
        steps: 0,
        eval_every: 0,
        eval_size: 0,
        checkpoint_every: 0,
        ..c.clone()
    };
    if comparable(&saved) != comparable(cfg) {
        return Err(PretrainError::Invalid(format!(
            "{}: the checkpoint was made with other settings; use the same flags or a fresh \
             checkpoint directory",
            dir.display()
        )));
    }
    match state.get("files") {
        Some(f) => {
            let manifest: BTreeMap<String, FileSum> =
                serde_json::from_value(f.clone()).map_err(|e| invalid(format!("files: {e}")))?;
            files::check_manifest(dir, &p, &manifest, &[WEIGHTS, OPTIMIZER])?;
        }
        None => files::check_legacy(dir, &[WEIGHTS, OPTIMIZER], &[WEIGHTS, OPTIMIZER])?,
    }
    let step = state["step"]
        .as_u64()
        .ok_or_else(|| invalid("step: expected a non-negative integer".into()))?
        as usize;
    let t = state["adam_t"].as_u64().unwrap_or(step as u64);
    let wpath = dir.join(WEIGHTS);
    let weights = candle_core::safetensors::load(&wpath, device)?;
    for (name, var) in &opt.vars {
        let w = weights
            .get(name)
            .ok_or_else(|| PretrainError::Invalid(format!("{}: lacks {name}", wpath.display())))?;
        if w.dims() != var.as_tensor().dims() {
            return Err(PretrainError::Invalid(format!(
                "{}: {name} has shape {:?}, expected {:?}",
                wpath.display(),
                w.dims(),
                var.as_tensor().dims()
            )));
        }
        var.set(w)?;
    }
    opt.load(&dir.join(OPTIMIZER), t, device)?;
    Ok(step)
}
