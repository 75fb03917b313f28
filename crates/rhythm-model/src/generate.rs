//! Autoregressive generation with a per-sequence KV cache.
//!
//! Each prompt of a batch runs with its own cache and its own random
//! stream (ChaCha8 seeded with `seed`, stream = index in the batch), so
//! results do not depend on batch composition or padding.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{ModelError, Result};
use crate::model::Model;

/// Decoding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Upper bound on generated tokens.
    pub max_new_tokens: usize,
    /// Softmax temperature; `<= 0` means greedy decoding.
    pub temperature: f64,
    /// Nucleus threshold in `(0, 1]` (1 disables it).
    pub top_p: f64,
    /// Keep only the `top_k` most likely tokens (0 disables it).
    pub top_k: usize,
    /// Tokens that end a sequence (reported as [`FinishReason::Eos`]).
    pub eos_token_ids: Vec<u32>,
    /// Further tokens that end a sequence ([`FinishReason::Stop`]).
    pub stop_token_ids: Vec<u32>,
    /// Seed of the sampling streams.
    pub seed: u64,
    /// Also return each generated token's log-probability and the entropy
    /// of the distribution it was drawn from (both untempered).
    pub logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_new_tokens: 256,
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            eos_token_ids: Vec::new(),
            stop_token_ids: Vec::new(),
            seed: 0,
            logprobs: false,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding of at most `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        SamplingParams {
            max_new_tokens,
            temperature: 0.0,
            ..Default::default()
        }
    }

    fn validate(&self) -> Result<()> {
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::arg(
                "top_p",
                format!("expected a value in (0, 1], found {}", self.top_p),
            ));
        }
        if !self.temperature.is_finite() {
            return Err(ModelError::arg("temperature", "expected a finite number"));
        }
        Ok(())
    }
}

/// Why a sequence stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token was produced (it is included in the output).
    Eos,
    /// A stop token was produced (it is included in the output).
    Stop,
    /// `max_new_tokens` was reached, or prompt + output filled
    /// `max_position_embeddings`.
    Length,
}

/// The continuation of one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// Generated token ids (prompt excluded).
    pub tokens: Vec<u32>,
    /// `ln p(token)` under the model's untempered distribution (temperature 1,
    /// no top-k/top-p), one per token; empty unless requested.
    pub logprobs: Vec<f32>,
    /// The entropy (nats) of that untempered distribution at each generated
    /// token (SPEC section 5's `H[t]` as the decoder saw it); empty unless
    /// `logprobs` was requested.
    pub entropy: Vec<f32>,
    /// Why generation ended.
    pub finish: FinishReason,
}

impl Generation {
    /// Appends `ln p(tok)` and the entropy of `softmax(logits)` (one
    /// vectorised pass over the vocabulary).
    pub(crate) fn record(&mut self, logits: &[f32], tok: u32) {
        let (h, lp) = crate::kernels::entropy_and_logprob(logits, tok as usize);
        self.logprobs.push(lp as f32);
        self.entropy.push(h as f32);
    }
}

impl Model {
    /// Continues every prompt (each with its own cache; see module docs).
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        params.validate()?;
        let model = self.detached();
        prompts
            .iter()
            .enumerate()
            .map(|(i, p)| model.generate_one(p, params, i as u64))
            .collect()
    }

    /// Continues every prompt in one left-padded batch decoded in lockstep
    /// (KV cache `[batch, ...]`, padded keys masked, position ids counting
    /// real tokens only). Row `i` samples from stream `i` of the seed, as in
    /// [`Model::generate`], whose results it equals up to float rounding
    /// (batched matmuls may round differently, which can flip near-ties).
    pub fn generate_batch(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        params.validate()?;
        let model = self.detached();
        let this: &Model = &model;
        let b = prompts.len();
        if b == 0 {
            return Ok(Vec::new());
        }
        for p in prompts {
            if p.is_empty() {
                return Err(ModelError::arg("prompt", "expected at least one token"));
            }
            this.check_ids(p)?;
        }
        // The hand-written CPU decoder (crate::decode); RHYTHM_DECODE=candle
        // keeps the candle path below.
        if this.supports_fast_train() && std::env::var("RHYTHM_DECODE").as_deref() != Ok("candle") {
            return this.generate_batch_fast(prompts, params);
        }
        let max_pos = this.config().max_position_embeddings;
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut out: Vec<Generation> = (0..b)
            .map(|_| Generation {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                entropy: Vec::new(),
                finish: FinishReason::Length,
            })
            .collect();
        // A row is done when it stopped or prompt + output fills max_pos.
        let mut done: Vec<bool> = prompts
            .iter()
            .map(|p| params.max_new_tokens == 0 || p.len() >= max_pos)
            .collect();
        if done.iter().all(|&d| d) {
            return Ok(out);
        }
        let mut rngs = row_streams(params.seed, b);
        let mut cache = this.new_batch_cache(b, width + params.max_new_tokens)?;
        // 1. Prefill the left-padded prompts.
        let mut valid: Vec<Vec<bool>> = prompts
            .iter()
            .map(|p| {
                let mut v = vec![false; width - p.len()];
                v.resize(width, true);
                v
            })
            .collect();
        let ids: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                let mut v = vec![p[0]; width - p.len()];
                v.extend_from_slice(p);
                v
            })
            .collect();
        let positions: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| {
                let pad = width - p.len();
                (0..width).map(|j| j.saturating_sub(pad) as u32).collect()
            })
            .collect();
        let mut next_pos: Vec<u32> = prompts.iter().map(|p| p.len() as u32).collect();
        let mut logits = this
            .forward_step_batch(&ids, &positions, &valid, &mut cache)?
            .to_vec2::<f32>()?;
        loop {
            // 2. Pick a token for every live row; stop rows that end.
            let mut step = Vec::with_capacity(b);
            for r in 0..b {
                if done[r] {
                    step.push(prompts[r][0]);
                    continue;
                }
                let tok = pick(&logits[r], params, &mut rngs[r]);
                let g = &mut out[r];
                g.tokens.push(tok);
                if params.logprobs {
                    g.record(&logits[r], tok);
                }
                if params.eos_token_ids.contains(&tok) {
                    g.finish = FinishReason::Eos;
                    done[r] = true;
                } else if params.stop_token_ids.contains(&tok) {
                    g.finish = FinishReason::Stop;
                    done[r] = true;
                } else if g.tokens.len() >= params.max_new_tokens
                    || prompts[r].len() + g.tokens.len() >= max_pos
                {
                    done[r] = true;
                }
                step.push(tok);
            }
            if done.iter().all(|&d| d) {
                break;
            }
            // 3. Feed the new column (finished rows feed a masked filler).
            for r in 0..b {
                valid[r].push(!done[r]);
            }
            let pos: Vec<Vec<u32>> = next_pos
                .iter()
                .zip(&done)
                .map(|(&p, &d)| vec![if d { 0 } else { p }])
                .collect();
            for (p, &d) in next_pos.iter_mut().zip(&done) {
                if !d {
                    *p += 1;
                }
            }
            let col: Vec<Vec<u32>> = step.into_iter().map(|t| vec![t]).collect();
            logits = this
                .forward_step_batch(&col, &pos, &valid, &mut cache)?
                .to_vec2::<f32>()?;
        }
        Ok(out)
    }

    /// Continues one prompt, sampling from stream `stream` of the seed.
    pub fn generate_one(
        &self,
        prompt: &[u32],
        params: &SamplingParams,
        stream: u64,
    ) -> Result<Generation> {
        params.validate()?;
        let detached = self.detached();
        let this: &Model = &detached;
        if prompt.is_empty() {
            return Err(ModelError::arg("prompt", "expected at least one token"));
        }
        this.check_ids(prompt)?;
        let max_pos = this.config().max_position_embeddings;
        let capacity = (prompt.len() + params.max_new_tokens).min(max_pos);
        let mut cache = this.new_cache(capacity)?;
        let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
        rng.set_stream(stream);
        let mut out = Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            entropy: Vec::new(),
            finish: FinishReason::Length,
        };
        // The whole sequence must stay probeable: at most max_position_embeddings.
        if params.max_new_tokens == 0 || prompt.len() >= max_pos {
            return Ok(out);
        }
        // 1. Prefill the prompt.
        let mut logits = this.forward_step(prompt, &mut cache)?.to_vec1::<f32>()?;
        loop {
            // 2. Pick the next token.
            let tok = pick(&logits, params, &mut rng);
            out.tokens.push(tok);
            if params.logprobs {
                out.record(&logits, tok);
            }
            // 3. Stop on EOS / stop tokens / length.
            if params.eos_token_ids.contains(&tok) {
                out.finish = FinishReason::Eos;
                break;
            }
            if params.stop_token_ids.contains(&tok) {
                out.finish = FinishReason::Stop;
                break;
            }
            if out.tokens.len() >= params.max_new_tokens
                || prompt.len() + out.tokens.len() >= capacity
            {
                break;
            }
            // 4. Feed it back.
            logits = this.forward_step(&[tok], &mut cache)?.to_vec1::<f32>()?;
        }
        Ok(out)
    }
}

/// `ln softmax(logits)[tok]`, computed in f64.
pub fn log_prob(logits: &[f32], tok: usize) -> f64 {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let s: f64 = logits.iter().map(|&x| (x as f64 - m).exp()).sum();
    logits[tok] as f64 - m - s.ln()
}

/// Index of the first maximum (ties go to the lowest id, like `argmax`).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Applies temperature, top-k and top-p (in that order, as transformers
/// does) and draws one token (one uniform draw from `rng` either way).
/// Without top-k and top-p the draw walks the vocabulary in id order: no
/// sort and no allocation per token (a sort of Qwen3's 151,936 logits costs
/// about as much as a small model's forward); with them, the candidates are
/// sorted by logit as transformers does.
pub fn pick<R: Rng>(logits: &[f32], params: &SamplingParams, rng: &mut R) -> u32 {
    if params.temperature <= 0.0 {
        return argmax(logits);
    }
    let t = params.temperature;
    if params.top_k == 0 && params.top_p >= 1.0 {
        return pick_all(logits, t, rng);
    }
    // 1. Candidates sorted by logit, descending (ties by id), cut to top-k.
    let mut idx: Vec<u32> = (0..logits.len() as u32)
        .filter(|&i| logits[i as usize].is_finite())
        .collect();
    if idx.is_empty() {
        return argmax(logits);
    }
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if params.top_k > 0 && params.top_k < idx.len() {
        idx.select_nth_unstable_by(params.top_k - 1, cmp);
        idx.truncate(params.top_k);
    }
    idx.sort_unstable_by(cmp);
    // 2. Tempered probabilities.
    let m = logits[idx[0] as usize] as f64;
    let mut p: Vec<f64> = idx
        .iter()
        .map(|&i| ((logits[i as usize] as f64 - m) / t).exp())
        .collect();
    let z: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= z);
    // 3. Nucleus: the shortest prefix whose mass reaches top_p.
    if params.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = p.len();
        for (j, &x) in p.iter().enumerate() {
            acc += x;
            if acc >= params.top_p {
                keep = j + 1;
                break;
            }
        }
        p.truncate(keep);
        idx.truncate(keep);
    }
    // 4. Draw.
    let total: f64 = p.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (j, &x) in p.iter().enumerate() {
        if u < x {
            return idx[j];
        }
        u -= x;
    }
    *idx.last().expect("non-empty")
}

/// [`pick`] without top-k or top-p: `softmax(logits / t)` over every finite
/// logit, drawn by walking the ids in order. Each weight's `exp` is computed
/// once, into a per-thread buffer that is reused from token to token.
fn pick_all<R: Rng>(logits: &[f32], t: f64, rng: &mut R) -> u32 {
    thread_local! {
        static WEIGHTS: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let m = logits
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return argmax(logits);
    }
    let m = f64::from(m);
    WEIGHTS.with(|buf| {
        let mut w = buf.borrow_mut();
        w.clear();
        w.extend(logits.iter().map(|&x| {
            if x.is_finite() {
                ((f64::from(x) - m) / t).exp()
            } else {
                0.0
            }
        }));
        let total: f64 = w.iter().sum();
        let mut u = rng.random::<f64>() * total;
        let mut last = 0;
        for (i, &wi) in w.iter().enumerate() {
            if wi > 0.0 {
                if u < wi {
                    return i as u32;
                }
                u -= wi;
                last = i;
            }
        }
        last as u32
    })
}

/// The sampler of each row of a batch: row `i` draws from stream `i` of
/// ChaCha8 seeded with `seed` (the candle and hand-written decoders share
/// this, so they sample the same tokens).
pub(crate) fn row_streams(seed: u64, rows: usize) -> Vec<ChaCha8Rng> {
    (0..rows)
        .map(|i| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_stream(i as u64);
            r
        })
        .collect()
}
