//! The one step from a model to the rhythm: prompt + response ids, the
//! response start, the probed layers and the [`Params`] in; per-head
//! summaries, the response's entropy and log-probabilities (and, when
//! asked, binned maps and logits) out, and from them the [`Rhythm`].
//!
//! `rhythm analyze`, `stats`, `perturb`, `probe --stream` and the GRPO
//! trainer all go through [`Model::probe_response`]; nothing else builds
//! summary sinks by hand.

use candle_core::Tensor;
use rhythm_core::{CoreError, HeadGroups, HeadSummary, Params, Rhythm};

use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::probe::ProbeTuning;

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
}
