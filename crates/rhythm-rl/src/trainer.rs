//! The GRPO training loop with rhythm credit (SPEC sections 8 and 9).
//!
//! One [`Trainer::step`]:
//!
//! 1. **Prompts.** `prompts_per_batch` tasks, in the order of a per-epoch
//!    permutation of the training set seeded by `(seed, epoch)`.
//! 2. **Rollout.** Each prompt `group_size` times, one left-padded batch
//!    decoded in lockstep with KV caches ([`Model::generate_batch`]) at the
//!    configured temperature; row `i` samples from stream `i` of a seed
//!    derived from `(seed, step)`.
//! 3. **Rewards** from the task's verifier, **group advantages**
//!    ([`group_advantages`]).
//! 4. **Probe.** One batched inference pass ([`Model::probe_responses`])
//!    over the responses that get a gradient (all of them when static or
//!    refreshed head groups are due) gives `logp_old`, per-token entropy
//!    and, when the strategy reads attention, the streamed [`HeadSummary`]s
//!    of the probed layers; from them each response's [`Rhythm`] (head
//!    groups per sequence, or the static / refreshed groups of a
//!    [`SpanPool`]) and its `gamma` ([`gamma`]; the `random` strategy draws
//!    from a seed derived from `(seed, step, index)`), and the shaped
//!    advantages ([`shaped_advantages`]). With the hand-written CPU update,
//!    the first mini-batch's micro-batches are probed by
//!    [`Model::probe_for_update`] instead: that forward is also their
//!    training forward (no optimizer step has happened yet), and its tape
//!    goes to the update (up to [`HELD_TAPE_BYTES`]), which then runs only
//!    the backward for them.
//! 5. **Update.** The batch (in rollout order) is cut into `grad_steps`
//!    mini-batches (`update_plan`); each is one AdamW step on the loss of
//!    [`crate::grpo::grpo_loss`], its gradient accumulated over micro-batches
//!    of `micro_batch` sequences through the hand-written forward/backward
//!    ([`Model::train_forward`], [`Model::train_backward`]) on the CPU or
//!    the differentiable [`Model::token_logprobs`] elsewhere, clipped to
//!    `max_grad_norm`. Sequences whose advantage is 0 contribute exactly no
//!    gradient (without a KL term) and are skipped, though they still
//!    count in the averages.
//!
//! All randomness is derived from `(seed, step[, index])`, so a run resumed
//! from a checkpoint repeats exactly what the uninterrupted run would have
//! done.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhythm_core::{
    gamma, group_advantages, shaped_advantages, CreditInputs, HeadGroups, HeadSummary, Params,
    Rhythm, SpanPool,
};
use rhythm_model::{
    Gradients, LoadOptions, Model, Pretrained, ProbedResponse, SamplingParams, Tape,
};
use rhythm_train::eval::strip_eos;
use rhythm_train::metrics::append_jsonl;
use rhythm_train::{clip_grad_norm, mix, trainable_vars, AdamW};

use crate::checkpoint::{self, TrainerState};
use crate::config::{GroupMode, TrainConfig};
use crate::dataset;
use crate::eval::{self, EvalConfig};
use crate::grpo::{self, LossConfig};
use crate::tasks::{PromptStyle, Task};

/// Errors of training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Model error.
    #[error(transparent)]
    Model(#[from] rhythm_model::ModelError),
    /// Tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Rhythm error.
    #[error(transparent)]
    Core(#[from] rhythm_core::CoreError),
    /// Dataset error.
    #[error(transparent)]
    Dataset(#[from] dataset::DatasetError),
    /// Checkpoint error.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Anything else.
    #[error("{0}")]
    Msg(String),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, TrainError>;

pub use crate::metrics::StepMetrics;

/// One sampled response with everything the update needs.
#[derive(Clone, Debug)]
struct Rollout {
    prompt: Vec<u32>,
    response: Vec<u32>,
    reward: f64,
    advantage: f64,
    logp_old: Vec<f64>,
    entropy: Vec<f64>,
    gamma: Vec<f64>,
}

/// A reward function replacing the task's verifier (tests, custom rewards).
pub type RewardFn = Box<dyn Fn(&Task, &str) -> f64 + Send + Sync>;

/// The GRPO trainer: policy, optimizer, data and run state.
pub struct Trainer {
    reward_fn: Option<RewardFn>,
    /// The run's configuration.
    pub cfg: TrainConfig,
    params: Params,
    /// The policy (model, tokenizer).
    pub policy: Pretrained,
    reference: Option<Model>,
    /// The optimizer (and the parameter list).
    pub opt: AdamW,
    train: Vec<Task>,
    eval: Vec<Task>,
    layers: Vec<usize>,
    groups: Option<HeadGroups>,
    /// Rollout steps completed.
    pub step: usize,
    source: PathBuf,
    eos: Vec<u32>,
    perm: Option<(usize, Vec<usize>)>,
    held_tape_bytes: usize,
}

fn load_policy(dir: &Path, device: &Device) -> Result<(Pretrained, Vec<(String, Var)>)> {
    let policy = Pretrained::load_with(
        dir,
        &LoadOptions {
            device: device.clone(),
            trainable: true,
        },
    )?;
    if policy.tokenizer.is_none() {
        return Err(TrainError::Msg(format!(
            "{}: no tokenizer.json (needed to render prompts and read responses)",
            dir.display()
        )));
    }
    let varmap = policy.varmap.as_ref().expect("trainable load has a varmap");
    let vars = trainable_vars(varmap);
    Ok((policy, vars))
}

impl Trainer {
    /// A fresh run of `cfg` from `cfg.model`.
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        let device = cfg.device.device.device()?;
        let (policy, vars) = load_policy(&cfg.model, &device)?;
        let opt = AdamW::new(vars, &cfg.optim)?;
        let source = cfg.model.clone();
        Self::assemble(cfg, policy, opt, source, 0, None)
    }

    /// Continues the run in `out` from its newest intact checkpoint (see
    /// [`checkpoint::find_latest`]; damaged newer ones are skipped with a
    /// warning), with the configuration saved there, except the fields of
    /// `overrides` named in `explicit` (e.g. a larger `steps`). A run killed
    /// before its first checkpoint restarts from step 0 with the
    /// `config.toml` it wrote when it started. `metrics.jsonl` is cut back
    /// to the checkpoint's step when the run continues ([`Trainer::run`]).
    pub fn resume(out: &Path, overrides: Option<(&TrainConfig, &[String])>) -> Result<Self> {
        let (found, skipped) = checkpoint::find_latest(out);
        if found.is_some() {
            // Said on stderr: a fallback repeats steps, the user must know.
            for (dir, why) in &skipped {
                eprintln!(
                    "warning: skipping damaged checkpoint {}: {why}",
                    dir.display()
                );
            }
        }
        let Some(dir) = found else {
            if let Some((dir, why)) = skipped.first() {
                return Err(TrainError::Msg(format!(
                    "{}: no intact checkpoint to resume from (newest, {}: {why}); \
                     remove the damaged checkpoints to restart the run",
                    out.display(),
                    dir.display()
                )));
            }
            // Killed before the first checkpoint: start over with the
            // configuration the run recorded.
            let cpath = out.join("config.toml");
            if !cpath.is_file() {
                return Err(TrainError::Msg(format!(
                    "{}: no checkpoint and no config.toml to resume from",
                    out.display()
                )));
            }
            let mut cfg = TrainConfig::from_toml_file(&cpath)?;
            if let Some((o, explicit)) = overrides {
                cfg = o.merge_explicit(&cfg, explicit);
            }
            cfg.out = out.to_path_buf();
            return Self::new(cfg);
        };
        let state = checkpoint::load_state(&dir)?;
        let mut cfg = state.config.clone();
        if let Some((o, explicit)) = overrides {
            cfg = o.merge_explicit(&cfg, explicit);
        }
        cfg.out = out.to_path_buf();
        cfg.validate()?;
        let device = cfg.device.device.device()?;
        let (policy, vars) = load_policy(&dir, &device)?;
        let mut opt = AdamW::new(vars, &cfg.optim)?;
        checkpoint::load_optimizer(&dir, &mut opt, &device)?;
        // The reference (if any) is the run's starting model.
        let source = state.config.model.clone();
        let mut t = Self::assemble(cfg, policy, opt, source, state.step, state.groups)?;
        t.source = dir;
        Ok(t)
    }

    fn assemble(
        cfg: TrainConfig,
        policy: Pretrained,
        opt: AdamW,
        source: PathBuf,
        step: usize,
        groups: Option<HeadGroups>,
    ) -> Result<Self> {
        let params = cfg.params()?;
        let (train, eval) = crate::data::load_tasks(&cfg.task_source())?;
        let layers = cfg.layers().resolve(policy.model.num_layers())?;
        let reference = if cfg.kl_coef > 0.0 {
            Some(cfg.device.device.load(&source)?.model)
        } else {
            None
        };
        let eos = policy.eos_token_ids();
        Ok(Trainer {
            reward_fn: None,
            cfg,
            params,
            policy,
            reference,
            opt,
            train,
            eval,
            layers,
            groups,
            step,
            source,
            eos,
            perm: None,
            held_tape_bytes: HELD_TAPE_BYTES,
        })
    }

    /// Replaces the verifier's reward by `f` (a response counts as right
    /// when `f` gives at least 1).
    pub fn set_reward_fn(&mut self, f: RewardFn) {
        self.reward_fn = Some(f);
    }

    /// The evaluation tasks.
    pub fn eval_tasks(&self) -> &[Task] {
        &self.eval
    }

    fn style(&self) -> PromptStyle {
        self.cfg.prompt_style.into()
    }

    /// Indices of the training tasks of rollout step `step`.
    fn batch_indices(&mut self, step: usize) -> Vec<usize> {
        let len = self.train.len();
        let b = self.cfg.prompts_per_batch;
        (0..b)
            .map(|k| {
                let j = step * b + k;
                let epoch = j / len;
                if self.perm.as_ref().is_none_or(|(e, _)| *e != epoch) {
                    let mut p: Vec<usize> = (0..len).collect();
                    let mut rng = ChaCha8Rng::seed_from_u64(mix(self.cfg.seed, epoch as u64));
                    rng.set_stream(1);
                    p.shuffle(&mut rng);
                    self.perm = Some((epoch, p));
                }
                self.perm.as_ref().expect("set above").1[j % len]
            })
            .collect()
    }

    fn decode_response(&self, tokens: &[u32]) -> Result<String> {
        Ok(self.policy.decode(strip_eos(tokens, &self.eos))?)
    }

    /// Runs steps until `cfg.steps`, checkpointing and writing
    /// `metrics.jsonl`; `on_step` sees each step's metrics.
    ///
    /// Crash consistency: first the temporary entries of killed runs are
    /// removed ([`checkpoint::clean_stale`]) and `metrics.jsonl` is cut back
    /// to the lines of steps `1..=self.step` (the steps the current state
    /// holds; all of it for a fresh run), so that a run killed at any
    /// instant and resumed writes exactly the lines of an uninterrupted
    /// run. Each line is fsync'd before the step's checkpoint is written,
    /// so the metrics never lag a checkpoint.
    pub fn run(&mut self, mut on_step: impl FnMut(&StepMetrics)) -> Result<()> {
        let out = self.cfg.out.clone();
        std::fs::create_dir_all(&out)
            .map_err(|e| TrainError::Msg(format!("{}: {e}", out.display())))?;
        let removed = checkpoint::clean_stale(&out)?;
        if !removed.is_empty() {
            tracing::debug!(
                "removed temporary files of an interrupted run in {}: {}",
                out.display(),
                removed.join(", ")
            );
        }
        truncate_metrics(&out.join("metrics.jsonl"), self.step)?;
        let cfg_text = self.cfg.to_toml();
        checkpoint::write_atomic(&out.join("config.toml"), cfg_text.as_bytes())?;
        while self.step < self.cfg.steps {
            let mut m = self.step()?;
            if self.cfg.eval_interval > 0
                && (self.step.is_multiple_of(self.cfg.eval_interval) || self.step == self.cfg.steps)
                && !self.eval.is_empty()
            {
                m.eval_accuracy = Some(self.evaluate()?);
            }
            append_jsonl(&out.join("metrics.jsonl"), &m)?;
            on_step(&m);
            if self.step.is_multiple_of(self.cfg.save_interval.max(1))
                || self.step == self.cfg.steps
            {
                self.save()?;
            }
        }
        Ok(())
    }

    /// Saves a checkpoint of the current state under `cfg.out`.
    pub fn save(&self) -> Result<PathBuf> {
        let state = TrainerState {
            step: self.step,
            adam_t: self.opt.t,
            config: self.cfg.clone(),
            groups: self.groups.clone(),
            rng: "ChaCha8 seeded from (seed, step[, index]); nothing to restore beyond step".into(),
            files: Default::default(),
        };
        Ok(checkpoint::save(
            &self.cfg.out,
            &self.policy.model,
            &self.source,
            &self.opt,
            &state,
        )?)
    }

    /// Greedy pass@1 on the first `eval_size` evaluation tasks.
    pub fn evaluate(&self) -> Result<f64> {
        let n = self.cfg.eval_size.min(self.eval.len());
        let ec = EvalConfig {
            k: 0,
            temperature: 1.0,
            max_new_tokens: self.cfg.max_new_tokens,
            seed: self.cfg.seed,
            batch_size: 64,
            format_score: self.cfg.format_score,
            style: self.style(),
            chat: self.cfg.data.chat,
        };
        let r = eval::evaluate(&self.policy, &self.eval[..n], &ec)
            .map_err(|e| TrainError::Msg(e.to_string()))?;
        Ok(r.pass_at_1)
    }

    /// One rollout step (see the module docs). Returns its metrics.
    pub fn step(&mut self) -> Result<StepMetrics> {
        let step = self.step;
        let cfg = self.cfg.clone();
        let g = cfg.group_size;
        let mut m = StepMetrics {
            step: step + 1,
            ..Default::default()
        };
        // 1. Prompts.
        let idx = self.batch_indices(step);
        let style = self.style();
        let inputs: Vec<_> = idx.iter().map(|&i| self.train[i].input(style)).collect();
        let encoded = self.cfg.data.chat.encode_all(&self.policy, &inputs)?;
        let mut prompts = Vec::with_capacity(idx.len() * g);
        for (&i, ids) in idx.iter().zip(encoded) {
            if ids.is_empty() {
                return Err(TrainError::Msg(format!(
                    "training prompt {i} encodes to no tokens"
                )));
            }
            for _ in 0..g {
                prompts.push(ids.clone());
            }
        }
        // 2. Rollout.
        let t0 = Instant::now();
        let sp = SamplingParams {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature,
            eos_token_ids: self.eos.clone(),
            seed: mix(cfg.seed, step as u64 + 1),
            // For the entropy column: every response's, as the rollout saw it.
            logprobs: true,
            ..Default::default()
        };
        let gens = self.policy.model.generate_batch(&prompts, &sp)?;
        m.rollout_s = t0.elapsed().as_secs_f64();
        let (hsum, htok) = gens.iter().fold((0.0, 0usize), |(h, n), g| {
            (
                h + g.entropy.iter().map(|&x| f64::from(x)).sum::<f64>(),
                n + g.entropy.len(),
            )
        });
        if htok > 0 {
            m.entropy = hsum / htok as f64;
        }
        // 3. Rewards and advantages.
        let mut rolls = Vec::with_capacity(gens.len());
        let mut correct = 0usize;
        for (j, gen) in gens.into_iter().enumerate() {
            let task = &self.train[idx[j / g]];
            let text = self.decode_response(&gen.tokens)?;
            let r = match &self.reward_fn {
                Some(f) => f(task, &text),
                None => task.reward(&text, cfg.format_score) as f64,
            };
            if r >= 1.0 {
                correct += 1;
            }
            rolls.push(Rollout {
                prompt: prompts[j].clone(),
                response: gen.tokens,
                reward: r,
                advantage: 0.0,
                logp_old: Vec::new(),
                entropy: Vec::new(),
                gamma: Vec::new(),
            });
        }
        for chunk in rolls.chunks_mut(g) {
            let rewards: Vec<f64> = chunk.iter().map(|r| r.reward).collect();
            for (r, a) in chunk.iter_mut().zip(group_advantages(&rewards)) {
                r.advantage = a;
            }
        }
        let total = rolls.len() as f64;
        m.reward = rolls.iter().map(|r| r.reward).sum::<f64>() / total;
        m.accuracy = correct as f64 / total;
        m.gen_tokens = rolls.iter().map(|r| r.response.len()).sum();
        m.response_len = m.gen_tokens as f64 / total;
        // 4. Probe: logp_old, entropy, summaries -> gamma.
        let t0 = Instant::now();
        let tapes = self
            .probe_and_credit(&mut rolls, &mut m)
            .map_err(|e| match e {
                TrainError::Model(rhythm_model::ModelError::NonFinite { what }) => {
                    TrainError::Msg(format!("step {}: {what}", step + 1))
                }
                e => e,
            })?;
        check_finite_rollouts(step + 1, &rolls)?;
        m.probe_s = t0.elapsed().as_secs_f64();
        // 5. Update.
        let t0 = Instant::now();
        self.update(&rolls, tapes, &mut m)?;
        if !(m.loss.is_finite() && m.grad_norm.is_finite()) {
            return Err(TrainError::Msg(format!(
                "step {}: non-finite loss ({}) or gradient norm ({}); \
                 no checkpoint of this step is written (lower lr or check the model)",
                step + 1,
                m.loss,
                m.grad_norm
            )));
        }
        m.update_s = t0.elapsed().as_secs_f64();
        self.step += 1;
        Ok(m)
    }

    /// Caps the bytes of probe tapes kept for the update (default
    /// [`HELD_TAPE_BYTES`]; 0 makes the update run every forward itself).
    /// Tests use it to hold the two paths to each other.
    #[doc(hidden)]
    pub fn set_held_tape_bytes(&mut self, bytes: usize) {
        self.held_tape_bytes = bytes;
    }

    /// Whether the update runs the hand-written forward/backward
    /// ([`Model::train_forward`]): on the CPU, unless `RHYTHM_UPDATE=candle`
    /// asks for candle autograd.
    fn fast_update(&self) -> bool {
        self.policy.model.supports_fast_train()
            && std::env::var("RHYTHM_UPDATE").as_deref() != Ok("candle")
    }

    /// Probes the responses that get a gradient (every non-empty one when
    /// static or refreshed head groups are due): `logp_old`, entropy,
    /// summaries; then computes their credit. With the hand-written update, the first
    /// mini-batch's micro-batches are probed by [`Model::probe_for_update`],
    /// whose forward is also their training forward (the weights do not
    /// change before the first optimizer step): the returned tapes (one per
    /// micro-batch of that mini-batch, `None` where the update must run its
    /// own forward) save the update that forward.
    fn probe_and_credit(
        &mut self,
        rolls: &mut [Rollout],
        m: &mut StepMetrics,
    ) -> Result<Vec<Option<Tape>>> {
        let strategy = self.cfg.credit.strategy;
        let attn = strategy.needs_attention();
        let layers: Vec<usize> = if attn {
            self.layers.clone()
        } else {
            Vec::new()
        };
        let model = self.policy.model.detached().into_owned();
        let seqs: Vec<Vec<u32>> = rolls
            .iter()
            .map(|r| [r.prompt.as_slice(), r.response.as_slice()].concat())
            .collect();
        let item = |i: usize| (seqs[i].as_slice(), rolls[i].prompt.len());
        // Static / refreshed head groups come from every response's
        // summaries; otherwise only the responses that get a gradient need
        // a probe (the others' credit changes nothing).
        let refresh = attn
            && match self.cfg.group_mode {
                GroupMode::Sequence => false,
                GroupMode::Static => self.groups.is_none(),
                GroupMode::Refresh => {
                    self.groups.is_none() || self.step.is_multiple_of(self.cfg.refresh_every)
                }
            };
        let plan = update_plan(rolls, &self.cfg);
        let mut trained = vec![false; rolls.len()];
        for i in plan.iter().flat_map(|p| p.micros.iter().flatten()) {
            trained[*i] = true;
        }
        let mut summaries: Vec<Vec<HeadSummary>> = vec![Vec::new(); rolls.len()];
        let mut probed_already = vec![false; rolls.len()];
        let mut probed_rows: Vec<(usize, ProbedResponse)> = Vec::new();
        // 1. The first mini-batch's micro-batches, keeping their tapes while
        //    they fit HELD_TAPE_BYTES.
        let mut tapes = Vec::new();
        if let (true, Some(first)) = (self.fast_update(), plan.first()) {
            let mut held = 0usize;
            for micro in &first.micros {
                let items: Vec<(&[u32], usize)> = micro.iter().map(|&i| item(i)).collect();
                if !model.probe_fits_one_pass(&items) {
                    tapes.push(None);
                    continue;
                }
                let (probed, tape) = model
                    .probe_for_update(&items, &layers, &self.params)
                    .map_err(|e| name_responses(e, micro))?;
                for (&i, p) in micro.iter().zip(probed) {
                    probed_already[i] = true;
                    probed_rows.push((i, p));
                }
                held += tape.bytes();
                tapes.push((held <= self.held_tape_bytes).then_some(tape));
            }
        }
        // 2. One batched probe pass over every other response that needs one.
        let rest: Vec<usize> = (0..rolls.len())
            .filter(|&i| {
                !rolls[i].response.is_empty() && !probed_already[i] && (trained[i] || refresh)
            })
            .collect();
        let items: Vec<(&[u32], usize)> = rest.iter().map(|&i| item(i)).collect();
        if !items.is_empty() {
            probed_rows.extend(rest.iter().copied().zip(model.probe_responses(
                &items,
                &layers,
                &self.params,
            )?));
        }
        for (i, probed) in probed_rows {
            rolls[i].logp_old = probed.logprobs;
            rolls[i].entropy = probed.entropy;
            summaries[i] = probed.summaries;
        }
        let t0 = Instant::now();
        if refresh {
            let mut pool = SpanPool::new();
            for s in &summaries {
                pool.add(s);
            }
            self.groups = Some(pool.groups(self.params.head_ratio));
        }
        let groups = match self.cfg.group_mode {
            GroupMode::Sequence => None,
            _ => self.groups.clone(),
        };
        let (mut gsum, mut gboost, mut ntok) = (0.0, 0usize, 0usize);
        for (i, r) in rolls.iter_mut().enumerate() {
            let n = r.response.len();
            if n == 0 || !trained[i] {
                continue;
            }
            let rhythm = if attn {
                Some(Rhythm::from_summaries(
                    &summaries[i],
                    &self.params,
                    groups.as_ref(),
                )?)
            } else {
                None
            };
            let params = Params {
                seed: mix(mix(self.cfg.seed ^ 0x5EED, self.step as u64), i as u64),
                ..self.params.clone()
            };
            r.gamma = gamma(
                strategy,
                &CreditInputs {
                    n,
                    rhythm: rhythm.as_ref(),
                    entropy: Some(&r.entropy),
                },
                &params,
            )?;
            gsum += r.gamma.iter().sum::<f64>();
            gboost += r.gamma.iter().filter(|&&x| x > 1.0).count();
            ntok += n;
        }
        m.rhythm_s = t0.elapsed().as_secs_f64();
        if ntok > 0 {
            m.gamma_mean = gsum / ntok as f64;
            m.gamma_boost_share = gboost as f64 / ntok as f64;
        }
        Ok(tapes)
    }

    /// The update: one AdamW step per mini-batch of [`update_plan`];
    /// `tapes` are the training forwards of the first mini-batch's
    /// micro-batches that the probe already ran ([`Self::probe_and_credit`]).
    fn update(
        &mut self,
        rolls: &[Rollout],
        mut tapes: Vec<Option<Tape>>,
        m: &mut StepMetrics,
    ) -> Result<()> {
        let fast = self.fast_update();
        let cfg = &self.cfg;
        let lr = cfg.optim.lr_at(self.step, cfg.steps);
        m.lr = lr;
        let lcfg = LossConfig {
            eps_low: cfg.eps_low,
            eps_high: cfg.eps_high,
            kl_coef: cfg.kl_coef,
        };
        let (mut loss_sum, mut norm_sum, mut opt_steps) = (0.0, 0.0, 0usize);
        let (mut tok, mut clipped, mut kl) = (0usize, 0usize, 0.0);
        for (k, plan) in update_plan(rolls, cfg).into_iter().enumerate() {
            let mini = &rolls[plan.range.clone()];
            let lens: Vec<usize> = mini.iter().map(|r| r.response.len()).collect();
            let w = grpo::token_weights(&lens, cfg.loss_agg);
            if plan.micros.is_empty() {
                continue;
            }
            let mut acc: Vec<Option<Tensor>> = vec![None; self.opt.vars.len()];
            let mut mini_loss = 0.0;
            // The clipped loss of a micro-batch and its statistics, for both
            // forward paths below.
            let mut loss_of =
                |logp: &Tensor, lref: Option<&Tensor>, batch: &Batch| -> Result<Tensor> {
                    let (loss, st) = grpo::grpo_loss(
                        logp,
                        &batch.logp_old,
                        &batch.adv,
                        &batch.weight,
                        lref,
                        &lcfg,
                    )?;
                    mini_loss += loss.to_scalar::<f32>()? as f64;
                    tok += st.tokens;
                    clipped += st.clipped;
                    kl += st.kl;
                    Ok(loss)
                };
            // The hand-written forward/backward (rhythm_model::backprop) on
            // the CPU; candle autograd elsewhere, or with RHYTHM_UPDATE=candle.
            let mut fast_grads = fast.then(|| Gradients::zeros(&self.policy.model));
            for (mi, micro_idx) in plan.micros.iter().enumerate() {
                let micro: Vec<(usize, &Rollout)> = micro_idx
                    .iter()
                    .map(|&i| (i - plan.range.start, &rolls[i]))
                    .collect();
                let micro = micro.as_slice();
                let batch = build_batch(micro, &w, self.policy.model.device())?;
                m.update_tokens += batch.tokens;
                if let Some(fg) = fast_grads.as_mut() {
                    let seqs: Vec<Vec<u32>> = micro
                        .iter()
                        .map(|(_, r)| [r.prompt.as_slice(), r.response.as_slice()].concat())
                        .collect();
                    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
                    let held = if k == 0 {
                        tapes.get_mut(mi).and_then(Option::take)
                    } else {
                        None
                    };
                    let tape = match held {
                        Some(t) => t,
                        None => self.policy.model.train_forward(&refs)?,
                    };
                    let (b, t1) = batch.logp_old.dims2()?;
                    let logp = Var::from_tensor(&pad_rows(&tape.logprobs, b, t1, &batch.ids)?)?;
                    let lref = match &self.reference {
                        Some(r) => Some(pad_rows(&r.fast_logprobs(&refs)?, b, t1, &batch.ids)?),
                        None => None,
                    };
                    let loss = loss_of(logp.as_tensor(), lref.as_ref(), &batch)?;
                    let gl = loss.backward()?;
                    let dl = match gl.get(logp.as_tensor()) {
                        Some(d) => d.to_vec2::<f32>()?,
                        None => vec![vec![0f32; t1]; b],
                    };
                    let dl: Vec<Vec<f32>> = dl
                        .into_iter()
                        .zip(&tape.logprobs)
                        .map(|(row, lp)| row[..lp.len()].to_vec())
                        .collect();
                    self.policy.model.train_backward(tape, &dl, fg)?;
                    continue;
                }
                let logp = self
                    .policy
                    .model
                    .token_logprobs(&batch.ids, Some(&batch.mask))?;
                let lref = match &self.reference {
                    Some(r) => Some(r.token_logprobs(&batch.ids, Some(&batch.mask))?.detach()),
                    None => None,
                };
                let loss = loss_of(&logp, lref.as_ref(), &batch)?;
                let grads = self.opt.grads_of(&loss.backward()?);
                for (slot, gr) in acc.iter_mut().zip(grads) {
                    if let Some(gr) = gr {
                        *slot = Some(match slot.take() {
                            Some(a) => (a + gr)?,
                            None => gr,
                        });
                    }
                }
            }
            if let Some(fg) = fast_grads {
                acc = self
                    .opt
                    .grads_by_name(fg.to_tensors(self.policy.model.device())?);
            }
            let norm = clip_grad_norm(&mut acc, cfg.optim.max_grad_norm)?;
            self.opt.step(&acc, lr)?;
            loss_sum += mini_loss;
            norm_sum += norm;
            opt_steps += 1;
        }
        if opt_steps > 0 {
            m.loss = loss_sum / opt_steps as f64;
            m.grad_norm = norm_sum / opt_steps as f64;
            m.kl = kl / opt_steps as f64;
        }
        if tok > 0 {
            m.clip_frac = clipped as f64 / tok as f64;
        }
        Ok(())
    }
}

/// Bytes of probe tapes the trainer's probe may hold for the
/// update (past this, the update runs those micro-batches' forwards again).
pub const HELD_TAPE_BYTES: usize = 2 << 30;

/// One mini-batch of the update (one optimizer step): its sequences, and the
/// micro-batches of those that get a gradient (non-empty, and a non-zero
/// advantage or a KL term), as indices into the rollout batch.
struct MiniPlan {
    range: std::ops::Range<usize>,
    micros: Vec<Vec<usize>>,
}

/// The update's partition of a rollout batch: `grad_steps` mini-batches in
/// rollout order, each cut into micro-batches of `micro_batch` sequences.
/// The probe and the update both read it, so that the probe's tapes are the
/// update's micro-batches.
fn update_plan(rolls: &[Rollout], cfg: &TrainConfig) -> Vec<MiniPlan> {
    let per = rolls.len().div_ceil(cfg.grad_steps).max(1);
    (0..rolls.len())
        .step_by(per)
        .map(|lo| {
            let range = lo..(lo + per).min(rolls.len());
            let active: Vec<usize> = range
                .clone()
                .filter(|&i| {
                    let r = &rolls[i];
                    !r.response.is_empty() && (r.advantage != 0.0 || cfg.kl_coef > 0.0)
                })
                .collect();
            MiniPlan {
                range,
                micros: active
                    .chunks(cfg.micro_batch)
                    .map(<[usize]>::to_vec)
                    .collect(),
            }
        })
        .collect()
}

/// Names the responses of a micro-batch in a non-finite probe error.
fn name_responses(e: rhythm_model::ModelError, micro: &[usize]) -> rhythm_model::ModelError {
    match e {
        rhythm_model::ModelError::NonFinite { what } => rhythm_model::ModelError::NonFinite {
            what: format!("responses {micro:?}: {what}"),
        },
        other => other,
    }
}

/// A padded micro-batch.
struct Batch {
    ids: Tensor,
    mask: Tensor,
    logp_old: Tensor,
    adv: Tensor,
    weight: Tensor,
    tokens: usize,
}

fn build_batch(micro: &[(usize, &Rollout)], w: &[f64], dev: &Device) -> Result<Batch> {
    let t = micro
        .iter()
        .map(|(_, r)| r.prompt.len() + r.response.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let b = micro.len();
    let mut ids = vec![0u32; b * t];
    let mut mask = vec![0f32; b * t];
    let mut lo = vec![0f32; b * (t - 1)];
    let mut adv = vec![0f32; b * (t - 1)];
    let mut wt = vec![0f32; b * (t - 1)];
    let mut tokens = 0;
    for (row, (j, r)) in micro.iter().enumerate() {
        let p = r.prompt.len();
        let n = r.response.len();
        tokens += p + n;
        for (k, &id) in r.prompt.iter().chain(&r.response).enumerate() {
            ids[row * t + k] = id;
            mask[row * t + k] = 1.0;
        }
        let shaped = shaped_advantages(r.advantage, &r.gamma);
        for (k, (&l, &a)) in r.logp_old.iter().zip(&shaped).enumerate().take(n) {
            let c = row * (t - 1) + p + k - 1;
            lo[c] = l as f32;
            adv[c] = a as f32;
            wt[c] = w[*j] as f32;
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), dev)?,
        mask: Tensor::from_vec(mask, (b, t), dev)?,
        logp_old: Tensor::from_vec(lo, (b, t - 1), dev)?,
        adv: Tensor::from_vec(adv, (b, t - 1), dev)?,
        weight: Tensor::from_vec(wt, (b, t - 1), dev)?.to_dtype(DType::F32)?,
        tokens,
    })
}

/// Refuses a rollout batch holding a non-finite reward, old
/// log-probability or entropy, naming the step, response and token.
fn check_finite_rollouts(step: usize, rolls: &[Rollout]) -> Result<()> {
    for (j, r) in rolls.iter().enumerate() {
        if !r.reward.is_finite() {
            return Err(TrainError::Msg(format!(
                "step {step}: response {j} has a non-finite reward ({})",
                r.reward
            )));
        }
        for (what, v) in [("log-probability", &r.logp_old), ("entropy", &r.entropy)] {
            if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                return Err(TrainError::Msg(format!(
                    "step {step}: response {j} has a non-finite {what} ({}) at response token {k} \
                     (the policy's logits are not finite)",
                    v[k]
                )));
            }
        }
    }
    Ok(())
}

pub use rhythm_train::metrics::truncate_metrics;

/// Rows of per-sequence log-probabilities padded with zeros to `[b, t1]`
/// (the layout of [`Batch`]; padded entries carry no weight).
fn pad_rows(rows: &[Vec<f32>], b: usize, t1: usize, ids: &Tensor) -> Result<Tensor> {
    let mut v = vec![0f32; b * t1];
    for (i, r) in rows.iter().enumerate() {
        v[i * t1..i * t1 + r.len()].copy_from_slice(r);
    }
    Ok(Tensor::from_vec(v, (b, t1), ids.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// End to end from rollouts to the loss's gradient: each shaped
    /// advantage `gamma[k] * A` lands on the column whose logit predicts
    /// response token `k`, a negative advantage is left as it is (SPEC
    /// section 8), and at ratio 1 the loss's gradient with respect to that
    /// column's log-probability is `-Atilde * w` and 0 off the response.
    #[test]
    fn shaped_advantages_land_on_their_tokens_and_negatives_stay() {
        let roll = |prompt: &[u32], response: &[u32], advantage: f64, gamma: &[f64]| Rollout {
            prompt: prompt.to_vec(),
            response: response.to_vec(),
            reward: 0.0,
            advantage,
            logp_old: (0..response.len()).map(|k| -1.0 - k as f64).collect(),
            entropy: vec![0.0; response.len()],
            gamma: gamma.to_vec(),
        };
        let a = roll(&[1, 2, 3], &[10, 11, 12, 13], 2.0, &[1.0, 1.5, 1.25, 1.0]);
        let b = roll(&[4, 5], &[20, 21, 22], -1.0, &[1.5, 1.5, 1.0]);
        let w = [0.5, 0.25];
        let batch = build_batch(&[(0, &a), (1, &b)], &w, &Device::Cpu).unwrap();
        let ids = batch.ids.to_vec2::<u32>().unwrap();
        let adv = batch.adv.to_vec2::<f32>().unwrap();
        let wt = batch.weight.to_vec2::<f32>().unwrap();
        let lo = batch.logp_old.to_vec2::<f32>().unwrap();
        assert_eq!((ids.len(), ids[0].len(), adv[0].len()), (2, 7, 6));
        // Expected (column -> shaped advantage) per row: column p + k - 1
        // holds response token k's advantage, and ids[column + 1] is it.
        let want: [Vec<(usize, f32)>; 2] = [
            vec![(2, 2.0), (3, 3.0), (4, 2.5), (5, 2.0)],
            vec![(1, -1.0), (2, -1.0), (3, -1.0)],
        ];
        let rolls = [&a, &b];
        for row in 0..2 {
            for c in 0..6 {
                match want[row].iter().find(|(col, _)| *col == c) {
                    Some(&(_, v)) => {
                        let k = c + 1 - rolls[row].prompt.len();
                        assert_eq!(ids[row][c + 1], rolls[row].response[k]);
                        assert_eq!(adv[row][c], v, "row {row} column {c}");
                        assert_eq!(wt[row][c], w[row] as f32);
                        assert_eq!(lo[row][c], -1.0 - k as f32);
                    }
                    None => assert_eq!((adv[row][c], wt[row][c]), (0.0, 0.0)),
                }
            }
        }
        // The loss at ratio 1: d loss / d logp_new = -Atilde * w.
        let logp = Var::from_tensor(&batch.logp_old).unwrap();
        let (loss, _) = grpo::grpo_loss(
            logp.as_tensor(),
            &batch.logp_old,
            &batch.adv,
            &batch.weight,
            None,
            &LossConfig::default(),
        )
        .unwrap();
        let g = loss.backward().unwrap();
        let grad = g.get(logp.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        for row in 0..2 {
            for c in 0..6 {
                let expect = -adv[row][c] * wt[row][c];
                assert!((grad[row][c] - expect).abs() < 1e-6, "row {row} col {c}");
            }
        }
    }
}
