//! The attention probe: one forward pass over prompt + response that
//! reports, for the response positions, each token's log-probability and
//! the entropy of its predictive distribution, together with the attention
//! of chosen layers, either captured as `[heads, N, N]` maps or streamed
//! row by row into [`HeadSummary`]s.
//!
//! Attention is computed in blocks of query rows: block `[r0, r1)` needs
//! the keys `0..r1` only, so no `N x N` matrix is ever held (the captured
//! mode stores the rows it is asked for, by definition). Logits are likewise
//! computed for blocks of rows and reduced at once to (log-prob, entropy).

use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};
use rayon::prelude::*;
use rhythm_core::{HeadSummary, SummaryConfig};

use crate::error::{ModelError, Result};
use crate::kernels;
use crate::model::Model;
use crate::ops::{self, Kernels};

/// The ascending, de-duplicated layer indices of `layers`, each checked to
/// exist in a model of `num_layers` layers. (Which layers to probe is a user
/// setting, parsed once as [`rhythm_core::Layers`].)
fn checked_layers(layers: &[usize], num_layers: usize) -> Result<Vec<usize>> {
    let mut v = layers.to_vec();
    v.sort_unstable();
    v.dedup();
    if let Some(&bad) = v.iter().find(|&&l| l >= num_layers) {
        return Err(ModelError::arg(
            "layers",
            format!("layer {bad} does not exist (expected < {num_layers})"),
        ));
    }
    Ok(v)
}

/// Something that receives attention rows of one head.
pub trait RowSink: Send {
    /// Receives row `t` (probabilities for columns `0..=t`).
    fn push_row(&mut self, t: usize, row: &[f32]);
}

impl RowSink for HeadSummary {
    fn push_row(&mut self, t: usize, row: &[f32]) {
        HeadSummary::push_row(self, t, row)
    }
}

/// A full `N x N` map of one head, filled row by row (upper triangle 0).
#[derive(Debug, Clone)]
pub struct MapSink {
    n: usize,
    data: Vec<f32>,
}

impl MapSink {
    /// An all-zero `n x n` map.
    pub fn new(n: usize) -> Self {
        MapSink {
            n,
            data: vec![0.0; n * n],
        }
    }

    /// The row-major map.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

impl RowSink for MapSink {
    fn push_row(&mut self, t: usize, row: &[f32]) {
        self.data[t * self.n..t * self.n + t + 1].copy_from_slice(&row[..=t]);
    }
}

/// Per-token statistics of positions `start..N`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenStats {
    /// The first position covered (`max(response_start, 1)`).
    pub start: usize,
    /// `ln p(x_t | x_<t)` from the logits at `t - 1`, for `t in start..N`.
    pub logprobs: Vec<f64>,
    /// Entropy (nats, temperature 1) of the distribution at `t - 1`.
    pub entropies: Vec<f64>,
}

/// Result of [`Model::probe_captured`].
#[derive(Debug, Clone)]
pub struct CapturedProbe {
    /// Log-probabilities and entropies of the response tokens.
    pub stats: TokenStats,
    /// The probed layers, ascending.
    pub layers: Vec<usize>,
    /// One `[heads, N, N]` f32 map per probed layer (post-softmax, causal).
    pub attn: Vec<Tensor>,
    /// `[N, vocab]` logits, when requested.
    pub logits: Option<Tensor>,
}

/// Result of [`Model::probe_streamed`].
#[derive(Debug, Clone)]
pub struct StreamedProbe {
    /// Log-probabilities and entropies of the response tokens.
    pub stats: TokenStats,
    /// The probed layers, ascending.
    pub layers: Vec<usize>,
    /// One summary per (layer, head), layer-major.
    pub summaries: Vec<HeadSummary>,
}

/// Wall time spent in the probe's phases (reported at `debug` level).
#[derive(Debug, Default)]
struct Timing {
    linear: Duration,
    attention: Duration,
    sinks: Duration,
    logits: Duration,
}

/// Tuning knobs of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeTuning {
    /// Query rows per attention block (0: automatic, at most 256 rows and
    /// about 64 MiB of scores).
    pub attn_block_rows: usize,
    /// Rows per logits block (0: automatic, at most 512 rows and about 256 MiB of logits).
    pub logit_block_rows: usize,
}

impl ProbeTuning {
    fn attn_rows(&self, heads: usize, n: usize) -> usize {
        if self.attn_block_rows > 0 {
            return self.attn_block_rows;
        }
        ((16usize << 20) / (heads * n).max(1)).clamp(32, 256)
    }

    fn logit_rows(&self, vocab: usize) -> usize {
        if self.logit_block_rows > 0 {
            return self.logit_block_rows;
        }
        ((64usize << 20) / vocab.max(1)).clamp(4, 512)
    }
}

impl Model {
    /// Every layer of `layers` exists in the model (one-line error naming
    /// the first that does not).
    pub(crate) fn check_layers_exist(&self, layers: &[usize]) -> Result<()> {
        if let Some(&bad) = layers.iter().find(|&&l| l >= self.num_layers()) {
            return Err(ModelError::arg(
                "layers",
                format!(
                    "layer {bad} does not exist (expected < {})",
                    self.num_layers()
                ),
            ));
        }
        Ok(())
    }

    /// Fast inference forward of one sequence: `[N, vocab]` logits, with
    /// fused kernels and row-blocked attention (no autograd; see
    /// [`Model::forward`] for the differentiable path).
    pub fn forward_inference(&self, ids: &[u32]) -> Result<Tensor> {
        let mut none: Vec<Vec<MapSink>> = Vec::new();
        let (_, logits) = self.probe_with(
            ids,
            ids.len(),
            &[],
            &mut none,
            ids.len(),
            true,
            ProbeTuning::default(),
        )?;
        logits.ok_or_else(|| ModelError::arg("ids", "expected at least one token"))
    }

    /// Probe with captured maps: `[heads, N, N]` for each layer of
    /// `layers` (short inputs only: `O(layers x heads x N^2)` memory), the
    /// token statistics from `response_start` on, and optionally the full
    /// `[N, vocab]` logits.
    pub fn probe_captured(
        &self,
        ids: &[u32],
        response_start: usize,
        layers: &[usize],
        with_logits: bool,
    ) -> Result<CapturedProbe> {
        let n = ids.len();
        let layers = checked_layers(layers, self.num_layers())?;
        let heads = self.num_heads();
        let mut sinks: Vec<Vec<MapSink>> = layers
            .iter()
            .map(|_| (0..heads).map(|_| MapSink::new(n)).collect())
            .collect();
        let (stats, logits) = self.probe_with(
            ids,
            response_start,
            &layers,
            &mut sinks,
            0,
            with_logits,
            ProbeTuning::default(),
        )?;
        let attn = sinks
            .into_iter()
            .map(|hs| {
                let data: Vec<f32> = hs.into_iter().flat_map(MapSink::into_vec).collect();
                Tensor::from_vec(data, (heads, n, n), self.device())
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(CapturedProbe {
            stats,
            layers,
            attn,
            logits,
        })
    }

    /// Streamed probe: every attention row of the chosen layers goes into a
    /// [`HeadSummary`] built from `cfg` (whose `seq_len` must be `ids.len()`
    /// and `response_start >= 1`); memory stays `O(N x hidden)` plus the
    /// summaries.
    pub fn probe_streamed(
        &self,
        ids: &[u32],
        cfg: &SummaryConfig,
        layers: &[usize],
    ) -> Result<StreamedProbe> {
        self.probe_streamed_tuned(ids, cfg, layers, ProbeTuning::default())
    }

    /// [`Model::probe_streamed`] with explicit block sizes.
    pub fn probe_streamed_tuned(
        &self,
        ids: &[u32],
        cfg: &SummaryConfig,
        layers: &[usize],
        tuning: ProbeTuning,
    ) -> Result<StreamedProbe> {
        if cfg.seq_len != ids.len() {
            return Err(ModelError::arg(
                "seq_len",
                format!(
                    "SummaryConfig.seq_len = {} but {} ids were given",
                    cfg.seq_len,
                    ids.len()
                ),
            ));
        }
        if cfg.response_start == 0 || cfg.response_start >= ids.len() {
            return Err(ModelError::arg(
                "response_start",
                format!(
                    "expected 1 <= response_start < {} (the sequence length), found {}",
                    ids.len(),
                    cfg.response_start
                ),
            ));
        }
        let layers = checked_layers(layers, self.num_layers())?;
        let heads = self.num_heads();
        let mut sinks: Vec<Vec<HeadSummary>> = layers
            .iter()
            .map(|&l| (0..heads).map(|h| HeadSummary::new(l, h, cfg)).collect())
            .collect();
        let (stats, _) = self.probe_with(
            ids,
            cfg.response_start,
            &layers,
            &mut sinks,
            cfg.response_start,
            false,
            tuning,
        )?;
        Ok(StreamedProbe {
            stats,
            layers,
            summaries: sinks.into_iter().flatten().collect(),
        })
    }

    /// The probe's engine: one blockwise forward pass over `ids` that feeds
    /// rows `first_row..N` of every head of `layers[i]` to `sinks[i][head]`
    /// and returns the token statistics of `max(response_start, 1)..N` (and
    /// the `[N, vocab]` logits when `with_logits`).
    #[allow(clippy::too_many_arguments)]
    pub fn probe_with<S: RowSink>(
        &self,
        ids: &[u32],
        response_start: usize,
        layers: &[usize],
        sinks: &mut [Vec<S>],
        first_row: usize,
        with_logits: bool,
        tuning: ProbeTuning,
    ) -> Result<(TokenStats, Option<Tensor>)> {
        let n = ids.len();
        if n == 0 {
            return Err(ModelError::arg("ids", "expected at least one token"));
        }
        if response_start > n {
            return Err(ModelError::arg(
                "response_start",
                format!("expected <= {n} (the sequence length), found {response_start}"),
            ));
        }
        self.check_layers_exist(layers)?;
        if sinks.len() != layers.len() || sinks.iter().any(|s| s.len() != self.num_heads()) {
            return Err(ModelError::arg(
                "sinks",
                "expected one sink per head of every probed layer",
            ));
        }
        self.check_ids(ids)?;
        crate::alloc::tune_allocator();
        match self.detached() {
            std::borrow::Cow::Owned(m) => m.probe_detached(
                ids,
                response_start,
                layers,
                sinks,
                first_row,
                with_logits,
                tuning,
            ),
            std::borrow::Cow::Borrowed(m) => m.probe_detached(
                ids,
                response_start,
                layers,
                sinks,
                first_row,
                with_logits,
                tuning,
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn probe_detached<S: RowSink>(
        &self,
        ids: &[u32],
        response_start: usize,
        layers: &[usize],
        sinks: &mut [Vec<S>],
        first_row: usize,
        with_logits: bool,
        tuning: ProbeTuning,
    ) -> Result<(TokenStats, Option<Tensor>)> {
        let n = ids.len();
        let k = Kernels::Fused;
        let dev = self.device();
        let eps = self.cfg.rms_norm_eps;
        // 1. Embed the whole sequence; rotary tables for 0..N.
        let idt = Tensor::from_slice(ids, n, dev)?;
        let mut x = self.embed_tokens.index_select(&idt, 0)?.unsqueeze(0)?;
        let (cos, sin) = self.rope.range(0, n, dev)?;
        let rows = tuning.attn_rows(self.num_heads(), n);
        let (kvh, hd) = (self.dims.kv_heads, self.dims.head_dim);
        let groups = self.dims.heads / kvh;
        // 2. Layers, attention row-blocked.
        let mut timing = Timing::default();
        for (l, layer) in self.layers.iter().enumerate() {
            let t0 = Instant::now();
            let h = ops::rms_norm(&x, &layer.input_layernorm, eps, k)?;
            let (q, key, val) = self.qkv(&layer.self_attn, &h, &cos, &sin, k)?;
            drop(h);
            timing.linear += t0.elapsed();
            let mut sink = layers.iter().position(|&c| c == l).map(|i| &mut sinks[i]);
            let mut outs = Vec::with_capacity(n.div_ceil(rows));
            for r0 in (0..n).step_by(rows) {
                let nb = rows.min(n - r0);
                let r1 = r0 + nb;
                let t0 = Instant::now();
                let qb = q.narrow(2, r0, nb)?.contiguous()?;
                let kb = key.narrow(2, 0, r1)?;
                let vb = val.narrow(2, 0, r1)?;
                // Scores [kv_heads, groups * nb, r1] == [heads, nb, r1].
                let scores = qb.reshape((1, kvh, groups * nb, hd))?.matmul(&kb.t()?)?;
                let probs = with_f32_slice(&scores, |sc| {
                    causal_softmax(sc, nb, r1, r0, self.dims.scale() as f32)
                })?;
                drop(scores);
                check_finite_attention(&probs, l, r0, nb, r1)?;
                timing.attention += t0.elapsed();
                let t0 = Instant::now();
                if let Some(sink) = sink.as_deref_mut() {
                    if r1 > first_row {
                        sink.par_iter_mut().enumerate().for_each(|(hd, s)| {
                            for i in 0..nb {
                                let t = r0 + i;
                                if t >= first_row {
                                    let off = (hd * nb + i) * r1;
                                    s.push_row(t, &probs[off..off + t + 1]);
                                }
                            }
                        });
                    }
                }
                timing.sinks += t0.elapsed();
                let t0 = Instant::now();
                let p = Tensor::from_vec(probs, (1, kvh, groups * nb, r1), dev)?;
                outs.push(p.matmul(&vb)?.reshape((1, self.dims.heads, nb, hd))?);
                timing.attention += t0.elapsed();
            }
            let t0 = Instant::now();
            let o = if outs.len() == 1 {
                outs.pop().expect("one block")
            } else {
                Tensor::cat(&outs, 2)?
            };
            drop(outs);
            x = (x + self.attn_out(&layer.self_attn, &o)?)?;
            let h = ops::rms_norm(&x, &layer.post_attention_layernorm, eps, k)?;
            x = (&x + layer.mlp.forward(&h)?)?;
            timing.linear += t0.elapsed();
        }
        let t0 = Instant::now();
        // 3. Final norm.
        let hn = ops::rms_norm(&x.squeeze(0)?, &self.norm, eps, k)?;
        drop(x);
        // 4. Token statistics from row-blocked logits (rows t - 1 for t in start..N).
        let start = response_start.max(1);
        let mut stats = TokenStats {
            start,
            logprobs: Vec::with_capacity(n.saturating_sub(start)),
            entropies: Vec::with_capacity(n.saturating_sub(start)),
        };
        let vocab = self.vocab_size();
        let full_logits = if with_logits {
            Some(self.lm_logits(&hn)?.to_dtype(DType::F32)?)
        } else {
            None
        };
        if start < n {
            let lrows = tuning.logit_rows(vocab);
            for a in (start - 1..n - 1).step_by(lrows) {
                let b = lrows.min(n - 1 - a);
                let block = match &full_logits {
                    Some(lg) => lg.narrow(0, a, b)?,
                    None => self.lm_logits(&hn.narrow(0, a, b)?)?,
                };
                let pairs: Vec<(f64, f64)> = with_f32_slice(&block, |data| {
                    (0..b)
                        .into_par_iter()
                        .map(|i| {
                            let row = &data[i * vocab..(i + 1) * vocab];
                            kernels::entropy_and_logprob(row, ids[a + i + 1] as usize)
                        })
                        .collect()
                })?;
                for (i, (h, lp)) in pairs.into_iter().enumerate() {
                    if !(h.is_finite() && lp.is_finite()) {
                        return Err(ModelError::NonFinite {
                            what: format!(
                                "non-finite logits predicting position {} (entropy {h}, log-prob {lp}); \
                                 the model's weights or activations are not finite",
                                a + i + 1
                            ),
                        });
                    }
                    stats.entropies.push(h);
                    stats.logprobs.push(lp);
                }
            }
        }
        timing.logits += t0.elapsed();
        tracing::debug!(
            linear_s = timing.linear.as_secs_f64(),
            attention_s = timing.attention.as_secs_f64(),
            sinks_s = timing.sinks.as_secs_f64(),
            logits_s = timing.logits.as_secs_f64(),
            "probe timing"
        );
        Ok((stats, full_logits))
    }
}

/// Runs `f` on the contiguous `f32` data of `t` (borrowed on the CPU,
/// copied from other devices).
fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (candle_core::Storage::Cpu(cpu), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            let data = cpu.as_slice::<f32>()?;
            return Ok(f(&data[a..b]));
        }
    }
    let v = t.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

/// Refuses a block of attention rows `[heads, nb, r1]` (rows `r0..r0 + nb`
/// of layer `layer`) holding a NaN or infinite weight, naming the layer,
/// head and position. One vectorizable pass, then a search only on failure.
fn check_finite_attention(
    probs: &[f32],
    layer: usize,
    r0: usize,
    nb: usize,
    r1: usize,
) -> Result<()> {
    if !probs.iter().fold(false, |acc, x| acc | !x.is_finite()) {
        return Ok(());
    }
    let k = probs.iter().position(|x| !x.is_finite()).unwrap_or(0);
    let (head, i, j) = (k / (nb * r1), (k / r1) % nb, k % r1);
    Err(ModelError::NonFinite {
        what: format!(
            "layer {layer}, head {head}: non-finite attention weight ({}) at query position {}, key {j}; \
             the model's weights or activations are not finite",
            probs[k],
            r0 + i
        ),
    })
}

/// Scaled causal softmax of a block of score rows `[heads, nb, r1]` whose
/// row `i` is query position `r0 + i`: row `t` keeps columns `0..=t` and is
/// zero beyond. One pass, parallel over rows.
fn causal_softmax(scores: &[f32], nb: usize, r1: usize, r0: usize, scale: f32) -> Vec<f32> {
    let mut out = vec![0f32; scores.len()];
    out.par_chunks_mut(r1)
        .zip(scores.par_chunks(r1))
        .enumerate()
        .for_each(|(ri, (o, s))| {
            let t = r0 + ri % nb;
            kernels::softmax_scaled(&s[..=t], &mut o[..=t], scale);
        });
    out
}
