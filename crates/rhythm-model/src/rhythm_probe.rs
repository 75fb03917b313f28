//! The one step from a model to the rhythm: prompt + response ids, the
//! response start, the probed layers and the [`Params`] in; per-head
//! summaries, the response's entropy and log-probabilities (and, when
//! asked, binned maps and logits) out, and from them the [`Rhythm`].
//!
//! `rhythm analyze`, `stats`, `perturb` and `probe --stream` go through
//! [`Model::probe_response`]; the GRPO trainer probes its whole rollout
//! batch at once with [`Model::probe_responses`], which on the CPU runs the
//! hand-written packed forward of [`crate::backprop`] over many sequences
//! (one GEMM per projection for the batch, the summaries fed from its
//! attention probabilities) and elsewhere falls back to one
//! [`Model::probe_response`] per sequence. Nothing else builds summary
//! sinks by hand.

use candle_core::Tensor;
use rhythm_core::{CoreError, HeadGroups, HeadSummary, Params, Rhythm};

use rayon::prelude::*;

use crate::backprop::{AttentionProbs, Tape};
use crate::error::{ModelError, Result};
use crate::kernels;
use crate::model::Model;
use crate::probe::ProbeTuning;

/// Attention probabilities one packed forward of [`Model::probe_responses`]
/// may hold per layer (`sum of heads x len^2` over its sequences, f32): 256
/// MiB. A batch is cut into passes under this; a sequence alone above it is
/// probed by [`Model::probe_response`] (blockwise, never an `N x N` map).
pub const PROBE_BATCH_FLOATS: usize = 1 << 26;

/// What to take from a probe pass besides the summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeExtras {
    /// Keep a `bins x bins` downsampled map per head (0: none), for the
    /// report's heatmaps.
    pub bins: usize,
    /// Return the `[N, vocab]` logits (the perturbation test needs them).
    pub logits: bool,
}

/// One response, probed.
#[derive(Clone, Debug)]
pub struct ProbedResponse {
    /// `P`, the first response position.
    pub response_start: usize,
    /// Per-head summaries of the probed layers, in `(layer, head)` order
    /// (empty when no layer was probed).
    pub summaries: Vec<HeadSummary>,
    /// `H[t]` for every response position (SPEC section 5).
    pub entropy: Vec<f64>,
    /// `log p(token t)` for every response position.
    pub logprobs: Vec<f64>,
    /// The `[N, vocab]` logits, when asked for.
    pub logits: Option<Tensor>,
}

impl ProbedResponse {
    /// The rhythm of the response (SPEC sections 3-7) from its summaries;
    /// `groups` fixes the head groups (static/refresh modes), `None`
    /// computes them from this response.
    pub fn rhythm(
        &self,
        params: &Params,
        groups: Option<&HeadGroups>,
    ) -> std::result::Result<Rhythm, CoreError> {
        Rhythm::from_summaries(&self.summaries, params, groups)
    }
}

impl Model {
    /// One probe pass over `ids` (prompt + response) whose response starts
    /// at `response_start` (`1 <= P < N`): every row of the response of
    /// every head of `layers` goes into a [`HeadSummary`] built from
    /// `params` (SPEC's window, horizon and proximity), and the response's
    /// entropy and log-probabilities are computed from the logits in blocks
    /// (no `N x vocab` tensor is kept unless `extras.logits`).
    pub fn probe_response(
        &self,
        ids: &[u32],
        response_start: usize,
        layers: &[usize],
        params: &Params,
        extras: ProbeExtras,
    ) -> Result<ProbedResponse> {
        let n = ids.len();
        if response_start == 0 || response_start >= n {
            return Err(ModelError::arg(
                "response_start",
                format!(
                    "expected 1 <= response_start < {n} (the sequence length), found {response_start}"
                ),
            ));
        }
        let cfg = params.summary_config(response_start, n);
        let mut sinks: Vec<Vec<HeadSummary>> = layers
            .iter()
            .map(|&l| {
                (0..self.num_heads())
                    .map(|h| {
                        let s = HeadSummary::new(l, h, &cfg);
                        if extras.bins > 0 {
                            s.with_bins(extras.bins, extras.bins)
                        } else {
                            s
                        }
                    })
                    .collect()
            })
            .collect();
        let (stats, logits) = self.probe_with(
            ids,
            response_start,
            layers,
            &mut sinks,
            response_start,
            extras.logits,
            ProbeTuning::default(),
        )?;
        if stats.start != response_start || stats.entropies.len() != n - response_start {
            return Err(ModelError::arg(
                "response_start",
                format!(
                    "the probe returned statistics for positions {}.. ({} of them), expected {response_start}..{n}",
                    stats.start,
                    stats.entropies.len()
                ),
            ));
        }
        Ok(ProbedResponse {
            response_start,
            summaries: sinks.into_iter().flatten().collect(),
            entropy: stats.entropies,
            logprobs: stats.logprobs,
            logits,
        })
    }

    /// [`Model::probe_response`] for many responses (`(ids, response_start)`
    /// each) with the same layers and settings, returned in order. On the
    /// CPU the responses go through the packed hand-written forward in
    /// passes of at most [`PROBE_BATCH_FLOATS`] attention probabilities;
    /// the results equal [`Model::probe_response`]'s up to float rounding
    /// (the summation order of the GEMMs differs) and its log-probabilities
    /// are those the hand-written training forward computes, so the PPO ratio
    /// of an unchanged policy is exactly 1. Errors name the response.
    pub fn probe_responses(
        &self,
        items: &[(&[u32], usize)],
        layers: &[usize],
        params: &Params,
    ) -> Result<Vec<ProbedResponse>> {
        self.probe_responses_within(items, layers, params, PROBE_BATCH_FLOATS)
    }

    /// [`Model::probe_responses`] with passes of at most `budget` attention
    /// probabilities (tests use a small one to force several passes and the
    /// per-sequence fallback).
    #[doc(hidden)]
    pub fn probe_responses_within(
        &self,
        items: &[(&[u32], usize)],
        layers: &[usize],
        params: &Params,
        budget: usize,
    ) -> Result<Vec<ProbedResponse>> {
        self.check_probe_args(items, layers)?;
        let mut out: Vec<Option<ProbedResponse>> = vec![None; items.len()];
        let mut pass: Vec<usize> = Vec::new();
        let mut held = 0usize;
        let flush = |pass: &mut Vec<usize>, out: &mut Vec<Option<ProbedResponse>>| -> Result<()> {
            if pass.is_empty() {
                return Ok(());
            }
            let batch: Vec<(&[u32], usize)> = pass.iter().map(|&i| items[i]).collect();
            let (probed, _) =
                self.probe_packed(&batch, layers, params, false)
                    .map_err(|e| match e {
                        ModelError::NonFinite { what } => ModelError::NonFinite {
                            what: format!("responses {pass:?}: {what}"),
                        },
                        other => other,
                    })?;
            for (i, r) in pass.drain(..).zip(probed) {
                out[i] = Some(r);
            }
            Ok(())
        };
        for (i, &(ids, p)) in items.iter().enumerate() {
            let c = self.probe_cost(ids);
            if !self.supports_fast_train() || c > budget {
                out[i] =
                    Some(self.probe_response(ids, p, layers, params, ProbeExtras::default())?);
                continue;
            }
            if held + c > budget {
                flush(&mut pass, &mut out)?;
                held = 0;
            }
            pass.push(i);
            held += c;
        }
        flush(&mut pass, &mut out)?;
        Ok(out
            .into_iter()
            .map(|r| r.expect("every response probed"))
            .collect())
    }

    /// [`Model::probe_responses`] for one micro-batch of the GRPO update,
    /// keeping the activations: the probe's forward is then also the
    /// update's training forward (same weights, same packed batch), and the
    /// returned [`Tape`] goes to [`Model::train_backward`] once the credit
    /// computed from the probe is known (its `logprobs` cover whole
    /// sequences, position `t` predicting token `t + 1`). CPU only; the
    /// items must fit one pass ([`Model::probe_fits_one_pass`]).
    pub fn probe_for_update(
        &self,
        items: &[(&[u32], usize)],
        layers: &[usize],
        params: &Params,
    ) -> Result<(Vec<ProbedResponse>, Tape)> {
        self.check_probe_args(items, layers)?;
        if !self.probe_fits_one_pass(items) {
            return Err(ModelError::arg(
                "items",
                format!(
                    "{} sequences of up to {} tokens need more than one probe pass \
                     ({PROBE_BATCH_FLOATS} attention probabilities per layer)",
                    items.len(),
                    items.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0)
                ),
            ));
        }
        self.probe_packed(items, layers, params, true)
    }

    /// Whether `items` fit one packed probe pass on this model: the CPU, and
    /// at most [`PROBE_BATCH_FLOATS`] attention probabilities per layer.
    pub fn probe_fits_one_pass(&self, items: &[(&[u32], usize)]) -> bool {
        let total = items.iter().fold(0usize, |acc, (ids, _)| {
            acc.saturating_add(self.probe_cost(ids))
        });
        self.supports_fast_train() && total <= PROBE_BATCH_FLOATS
    }

    /// The attention probabilities a packed pass holds per layer for one
    /// sequence: `heads x len^2`.
    fn probe_cost(&self, ids: &[u32]) -> usize {
        self.num_heads()
            .saturating_mul(ids.len())
            .saturating_mul(ids.len())
    }

    /// The argument checks of the batched probes: every response start
    /// inside its sequence, layers distinct and present.
    fn check_probe_args(&self, items: &[(&[u32], usize)], layers: &[usize]) -> Result<()> {
        for (i, &(ids, p)) in items.iter().enumerate() {
            if p == 0 || p >= ids.len() {
                return Err(ModelError::arg(
                    "response_start",
                    format!(
                        "response {i}: expected 1 <= response_start < {} (the sequence length), found {p}",
                        ids.len()
                    ),
                ));
            }
        }
        let mut sorted = layers.to_vec();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(ModelError::arg(
                "layers",
                format!("layer listed twice in {layers:?}"),
            ));
        }
        self.check_layers_exist(layers)?;
        Ok(())
    }

    /// One packed forward over `items` (CPU): summaries from the attention
    /// probabilities of `layers`, entropy and log-probabilities from the
    /// logits; with `keep`, the tape of a training forward too.
    fn probe_packed(
        &self,
        items: &[(&[u32], usize)],
        layers: &[usize],
        params: &Params,
        keep: bool,
    ) -> Result<(Vec<ProbedResponse>, Tape)> {
        let heads = self.num_heads();
        // sinks[item][slot * heads + head], slot = position of the layer in `layers`.
        let mut sinks: Vec<Vec<HeadSummary>> = items
            .iter()
            .map(|&(ids, p)| {
                let cfg = params.summary_config(p, ids.len());
                layers
                    .iter()
                    .flat_map(|&l| (0..heads).map(move |h| HeadSummary::new(l, h, &cfg)))
                    .collect()
            })
            .collect();
        let seqs: Vec<&[u32]> = items.iter().map(|&(ids, _)| ids).collect();
        let tape = self.run_forward(&seqs, keep, &mut |a: AttentionProbs<'_>| {
            let Some(slot) = layers.iter().position(|&l| l == a.layer) else {
                return Ok(());
            };
            if let Some(k) = a.p.iter().position(|x| !x.is_finite()) {
                return Err(ModelError::NonFinite {
                    what: format!(
                        "layer {}: non-finite attention weight ({}) at offset {k} of the packed batch; \
                         the model's weights or activations are not finite",
                        a.layer, a.p[k]
                    ),
                });
            }
            sinks.par_iter_mut().enumerate().for_each(|(s, sink)| {
                let n = a.lens[s];
                let p0 = items[s].1;
                for h in 0..heads {
                    let block = &a.p[a.poff[s] + h * n * n..a.poff[s] + (h + 1) * n * n];
                    let summary = &mut sink[slot * heads + h];
                    for t in p0..n {
                        summary.push_row(t, &block[t * n..t * n + t + 1]);
                    }
                }
            });
            Ok(())
        })?;
        let vocab = self.vocab_size();
        let mut start = 0usize;
        let mut out = Vec::with_capacity(items.len());
        for (s, ((ids, p), summaries)) in items.iter().copied().zip(sinks).enumerate() {
            let n = ids.len();
            let pairs: Vec<(f64, f64)> = (p..n)
                .into_par_iter()
                .map(|t| {
                    let row = &tape.logits[(start + t - 1) * vocab..(start + t) * vocab];
                    kernels::entropy_and_logprob(row, ids[t] as usize)
                })
                .collect();
            if let Some((i, (h, lp))) = pairs
                .iter()
                .enumerate()
                .find(|(_, (h, lp))| !(h.is_finite() && lp.is_finite()))
            {
                return Err(ModelError::NonFinite {
                    what: format!(
                        "non-finite logits predicting position {} (entropy {h}, log-prob {lp}); \
                         the model's weights or activations are not finite",
                        p + i
                    ),
                });
            }
            // The training forward's own log-probabilities (f32), so that
            // the update sees a ratio of exactly 1 before its first step.
            let logprobs = tape.logprobs[s][p - 1..]
                .iter()
                .map(|&x| f64::from(x))
                .collect();
            out.push(ProbedResponse {
                response_start: p,
                summaries,
                entropy: pairs.into_iter().map(|(h, _)| h).collect(),
                logprobs,
                logits: None,
            });
            start += n;
        }
        Ok((out, tape))
    }
}
