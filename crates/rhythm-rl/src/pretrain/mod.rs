//! `rhythm pretrain`: a small Qwen3 Countdown model trained from scratch by
//! supervised learning on synthetic search traces.
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
//!   split, atomic checkpoints with exact resume, and a final Hugging Face
//!   model directory (`config.json`, `model.safetensors`, `tokenizer.json`,
//!   `generation_config.json`).
//!
//! Everything is a function of [`PretrainConfig`]: the batch of step `s` is
//! drawn from ChaCha8 stream `s` of the seed, so a run resumed from a
//! checkpoint takes exactly the steps an uninterrupted run takes.
//!
//! The loss uses only the model's differentiable path
//! ([`Model::token_logprobs`]: gather minus a log-sum-exp built from basic
//! ops), never candle-nn's fused kernels, which have no backward pass. The
//! optimiser is AdamW written out here ([`AdamW`]) rather than
//! `candle_nn::AdamW`, whose moment estimates are private and so could not
//! be checkpointed for an exact resume; the update is the same (decoupled
//! weight decay, bias-corrected moments).

pub mod tokenizer;
pub mod trace;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhythm_model::{Config, DeviceSpec, Model, SamplingParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokenizers::Tokenizer;

use crate::tasks::countdown::{self, CountdownInstance, PromptStyle};

/// Why pretraining failed.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// An error from the model engine.
    #[error(transparent)]
    Model(#[from] rhythm_model::ModelError),
    /// A tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A bad setting or an unusable checkpoint.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PretrainError + '_ {
    move |source| PretrainError::Io {
        path: path.to_path_buf(),
        source,
    }
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
    /// Peak learning rate (default 3e-3).
    pub lr: f64,
    /// Final learning rate as a fraction of the peak (default 0.1).
    pub min_lr_ratio: f64,
    /// Linear warmup steps (default 50).
    pub warmup_steps: usize,
    /// Decoupled weight decay of matrices and embeddings (default 0.1).
    pub weight_decay: f64,
    /// AdamW beta1 (default 0.9).
    pub beta1: f64,
    /// AdamW beta2 (default 0.95).
    pub beta2: f64,
    /// AdamW epsilon (default 1e-8).
    pub eps: f64,
    /// Global gradient-norm clip (default 1.0).
    pub grad_clip: f64,
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
            lr: 3e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 50,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
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
        if !(self.lr > 0.0 && (0.0..=1.0).contains(&self.min_lr_ratio)) {
            return bad("need lr > 0 and min_lr_ratio in [0, 1]");
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

    /// Learning rate at `step` (0-based): linear warmup to `lr`, then
    /// cosine decay to `lr * min_lr_ratio` at the last step.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * progress).cos())
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

/// AdamW with decoupled weight decay and bias-corrected moments, with its
/// state exposed for checkpoints.
pub struct AdamW {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    decay: Vec<bool>,
    /// Steps taken.
    pub t: usize,
}

impl AdamW {
    /// Zero moments for every variable; weight decay applies to matrices
    /// and embeddings (rank >= 2), not to norm gains.
    pub fn new(vars: Vec<(String, Var)>) -> Result<Self> {
        let m = vars
            .iter()
            .map(|(_, v)| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let decay = vars.iter().map(|(_, v)| v.rank() >= 2).collect();
        Ok(AdamW {
            v: m.clone(),
            m,
            decay,
            vars,
            t: 0,
        })
    }

    /// One update from the gradients of `loss` with learning rate `lr`,
    /// after clipping the global gradient norm to `cfg.grad_clip`. Returns
    /// the norm before clipping.
    pub fn step(&mut self, loss: &Tensor, lr: f64, cfg: &PretrainConfig) -> Result<f64> {
        let grads = loss.backward()?;
        let gs =
            self.vars
                .iter()
                .map(|(name, var)| {
                    grads.get(var.as_tensor()).cloned().ok_or_else(|| {
                        PretrainError::Invalid(format!("no gradient reached {name}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
        self.step_grads(gs, lr, cfg)
    }

    /// [`AdamW::step`] from named gradients (as [`sft_grads`] returns them).
    pub fn step_named(
        &mut self,
        grads: Vec<(String, Tensor)>,
        lr: f64,
        cfg: &PretrainConfig,
    ) -> Result<f64> {
        let mut by: HashMap<String, Tensor> = grads.into_iter().collect();
        let gs = self
            .vars
            .iter()
            .map(|(name, _)| {
                by.remove(name)
                    .ok_or_else(|| PretrainError::Invalid(format!("no gradient reached {name}")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.step_grads(gs, lr, cfg)
    }

    fn step_grads(&mut self, gs: Vec<Tensor>, lr: f64, cfg: &PretrainConfig) -> Result<f64> {
        let mut sq = 0f64;
        for g in &gs {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
        let norm = sq.sqrt();
        let scale = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip {
            cfg.grad_clip / (norm + 1e-6)
        } else {
            1.0
        };
        self.t += 1;
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let g = (&gs[i] * scale)?;
            let m = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            let v = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&m / c1)? / ((&v / c2)?.sqrt()? + cfg.eps)?)?;
            let theta = var.as_tensor().detach();
            let theta = if self.decay[i] {
                (theta * (1.0 - lr * cfg.weight_decay))?
            } else {
                theta
            };
            var.set(&(theta - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(norm)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.vars.len());
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("m.{name}"), self.m[i].clone()));
            out.push((format!("v.{name}"), self.v[i].clone()));
        }
        out
    }

    fn load_state(&mut self, map: &HashMap<String, Tensor>, t: usize) -> Result<()> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            let get = |k: String| {
                map.get(&k)
                    .cloned()
                    .ok_or_else(|| PretrainError::Invalid(format!("checkpoint lacks {k}")))
            };
            self.m[i] = get(format!("m.{name}"))?;
            self.v[i] = get(format!("v.{name}"))?;
        }
        self.t = t;
        Ok(())
    }
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
    for chunk in instances.chunks(64) {
        let prompts = chunk
            .iter()
            .map(|i| encode(tok, &i.prompt(PromptStyle::Compact)))
            .collect::<Result<Vec<_>>>()?;
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let params = SamplingParams {
            eos_token_ids: vec![0],
            ..SamplingParams::greedy(max_len.saturating_sub(longest))
        };
        let gens = model.generate_batch(&prompts, &params)?;
        for (inst, g) in chunk.iter().zip(gens) {
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
    let mut vars: Vec<(String, Var)> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let mut opt = AdamW::new(vars.clone())?;

    // 2. Resume from the checkpoint, if asked and present.
    let mut start = 0;
    if paths.resume && paths.checkpoint.join(STATE).is_file() {
        start = load_checkpoint(&paths.checkpoint, cfg, &vars, &mut opt, &device)?;
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
        let grad_norm = if model.supports_fast_train()
            && std::env::var("RHYTHM_UPDATE").as_deref() != Ok("candle")
        {
            let (loss, grads) = sft_grads(&model, &b)?;
            final_loss = loss;
            opt.step_named(grads, lr, cfg)?
        } else {
            let loss = sft_loss(&model, &b)?;
            let n = opt.step(&loss, lr, cfg)?;
            final_loss = f64::from(loss.to_scalar::<f32>()?);
            n
        };
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
            save_checkpoint(&paths.checkpoint, cfg, done, &vars, &opt)?;
            on_event(&Event::Checkpoint { step: done });
        }
        if paths.stop_at == Some(done) && done < cfg.steps {
            save_checkpoint(&paths.checkpoint, cfg, done, &vars, &opt)?;
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
    let side = sibling(&paths.out, "side");
    write_side_files(&side, cfg)?;
    let r = rhythm_model::save_pretrained(model, &paths.out, paths.dtype, Some(&side));
    let _ = std::fs::remove_dir_all(&side);
    Ok(r?)
}

const STATE: &str = "state.json";

fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{tag}.{}", std::process::id()))
}

/// Writes `dir` (weights, optimiser moments, step and config) under a
/// temporary name and renames it into place.
pub fn save_checkpoint(
    dir: &Path,
    cfg: &PretrainConfig,
    step: usize,
    vars: &[(String, Var)],
    opt: &AdamW,
) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = sibling(dir, "tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let meta = BTreeMap::new();
    let weights: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
        .collect();
    rhythm_model::write_safetensors(&tmp.join("model.safetensors"), &weights, &meta)?;
    rhythm_model::write_safetensors(&tmp.join("optimizer.safetensors"), &opt.state(), &meta)?;
    let state = json!({"step": step, "adam_t": opt.t, "config": cfg});
    let p = tmp.join(STATE);
    std::fs::write(&p, serde_json::to_string_pretty(&state).expect("json")).map_err(io(&p))?;
    if dir.exists() {
        let old = sibling(dir, "old");
        std::fs::rename(dir, &old).map_err(io(dir))?;
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(io(dir))?;
    }
    Ok(())
}

/// Restores weights and optimiser from `dir`; returns the step to continue
/// from. The checkpoint's config must equal `cfg` except for `steps`,
/// `eval_every`, `eval_size` and `checkpoint_every`.
pub fn load_checkpoint(
    dir: &Path,
    cfg: &PretrainConfig,
    vars: &[(String, Var)],
    opt: &mut AdamW,
    device: &Device,
) -> Result<usize> {
    let p = dir.join(STATE);
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    let state: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| PretrainError::Invalid(format!("{}: {e}", p.display())))?;
    let saved: PretrainConfig = serde_json::from_value(state["config"].clone())
        .map_err(|e| PretrainError::Invalid(format!("{}: {e}", p.display())))?;
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
    let step = state["step"].as_u64().unwrap_or(0) as usize;
    let t = state["adam_t"].as_u64().unwrap_or(step as u64) as usize;
    let weights = candle_core::safetensors::load(dir.join("model.safetensors"), device)?;
    for (name, var) in vars {
        let w = weights
            .get(name)
            .ok_or_else(|| PretrainError::Invalid(format!("checkpoint lacks {name}")))?;
        var.set(w)?;
    }
    let moments = candle_core::safetensors::load(dir.join("optimizer.safetensors"), device)?;
    opt.load_state(&moments, t)?;
    Ok(step)
}
