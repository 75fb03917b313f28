//! One sequence's rhythm: WAAD, FAI, Delta and the token selections of SPEC
//! sections 4, 6 and 7, from streamed summaries or from full maps.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::heads::{receiver_heads, HeadGroups, HeadId, HeadSpan};
use crate::maps::{self, HeadMap};
use crate::params::Params;
use crate::select::{median, top_q};
use crate::summary::{kurtosis, HeadSummary};

/// Everything SPEC computes for one sequence from its attention.
///
/// Per-token vectors are indexed by offset `t - P` into the response;
/// position lists hold absolute positions `t`, ascending.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rhythm {
    /// `P`.
    pub response_start: usize,
    /// `n = N - P`.
    pub n: usize,
    /// Span of every candidate head, ordered by `(layer, head)`.
    pub spans: Vec<HeadSpan>,
    /// The head groups used.
    pub groups: HeadGroups,
    /// Receiver kurtosis of every candidate head, ordered by `(layer, head)`.
    pub kurtosis: Vec<(HeadId, f64)>,
    /// The receiver heads, best first.
    pub receivers: Vec<HeadId>,
    /// WAAD of the local aggregate.
    pub waad: Vec<f64>,
    /// FAI of the global aggregate.
    pub fai: Vec<f64>,
    /// FAI of the receiver heads' mean map.
    pub receiver_fai: Vec<f64>,
    /// The selections derived from WAAD and FAI.
    pub sel: Selections,
}

/// Delta, thresholds and the selected positions of SPEC section 7.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Selections {
    /// `Delta[t] = |WAAD[t] - WAAD[t+1]|`, 0 at the last position.
    pub delta: Vec<f64>,
    /// `tau_waad` in force.
    pub tau_waad: f64,
    /// `tau_delta` in force.
    pub tau_delta: f64,
    /// Preplan tokens `T_loc = TopQ(Delta, q)`.
    pub preplan: Vec<usize>,
    /// Anchor tokens `T_glob = TopQ(FAI, q)`.
    pub anchors: Vec<usize>,
    /// Locally dominated anchors `D`.
    pub dominated: Vec<usize>,
    /// Their intro tokens `I(D)`.
    pub intro: Vec<usize>,
}

/// `Delta[t] = |WAAD[t] - WAAD[t+1]|`, with 0 at the last response position.
pub fn delta(waad: &[f64]) -> Vec<f64> {
    let n = waad.len();
    (0..n)
        .map(|i| {
            if i + 1 < n {
                (waad[i] - waad[i + 1]).abs()
            } else {
                0.0
            }
        })
        .collect()
}

/// The locally dominated anchors among `anchors` (offsets) and their intro
/// tokens (SPEC eq. 17), as offsets: `(D, I(D))`, both ascending.
pub fn dominated_and_intro(
    anchors: &[usize],
    waad: &[f64],
    delta: &[f64],
    k: usize,
    tau_waad: f64,
    tau_delta: f64,
) -> (Vec<usize>, Vec<usize>) {
    let mut dom = Vec::new();
    let mut intro = BTreeSet::new();
    for &t in anchors {
        // N_k(t) = {t-k, ..., t-1} ∩ R, as offsets: max(0, t-k) .. t.
        let lo = t.saturating_sub(k);
        if lo == t {
            continue;
        }
        // intro(t): the largest Delta in N_k(t), ties toward the largest u.
        let mut best = lo;
        for u in lo..t {
            if delta[u] >= delta[best] {
                best = u;
            }
        }
        if waad[t] <= tau_waad && delta[best] >= tau_delta {
            dom.push(t);
            intro.insert(best);
        }
    }
    (dom, intro.into_iter().collect())
}

impl Selections {
    /// Selections from a sequence's WAAD and FAI (offsets into the response).
    pub fn new(response_start: usize, waad: &[f64], fai: &[f64], params: &Params) -> Self {
        let delta = delta(waad);
        let tau_waad = params.tau_waad.unwrap_or_else(|| median(waad));
        let tau_delta = params.tau_delta.unwrap_or_else(|| median(&delta));
        let preplan = top_q(&delta, params.q);
        let anchors = top_q(fai, params.q);
        let (dominated, intro) =
            dominated_and_intro(&anchors, waad, &delta, params.k, tau_waad, tau_delta);
        let abs = |v: Vec<usize>| v.into_iter().map(|o| o + response_start).collect();
        Selections {
            delta,
            tau_waad,
            tau_delta,
            preplan: abs(preplan),
            anchors: abs(anchors),
            dominated: abs(dominated),
            intro: abs(intro),
        }
    }
}

fn mean_of(vectors: &[&[f64]]) -> Vec<f64> {
    let n = vectors.first().map_or(0, |v| v.len());
    let mut out = vec![0.0; n];
    for v in vectors {
        for (o, x) in out.iter_mut().zip(v.iter()) {
            *o += x;
        }
    }
    let k = vectors.len().max(1) as f64;
    out.iter_mut().for_each(|o| *o /= k);
    out
}

fn check_groups(groups: &HeadGroups, ids: &[HeadId]) -> Result<(), CoreError> {
    for id in groups.local.iter().chain(groups.global.iter()) {
        if ids.binary_search(id).is_err() {
            return Err(CoreError::Param(format!(
                "head group names layer {} head {}, which is not among the candidate heads",
                id.0, id.1
            )));
        }
    }
    if groups.local.is_empty() || groups.global.is_empty() {
        return Err(CoreError::Param("head groups must not be empty".into()));
    }
    Ok(())
}

impl Rhythm {
    /// Computes the rhythm from streamed per-head summaries (the candidate
    /// heads of one sequence, in any order).
    ///
    /// `groups` fixes the head groups (the *static* and *refresh* modes);
    /// `None` computes them from this sequence's spans (the default).
    pub fn from_summaries(
        summaries: &[HeadSummary],
        params: &Params,
        groups: Option<&HeadGroups>,
    ) -> Result<Rhythm, CoreError> {
        params.validate()?;
        let first = summaries
            .first()
            .ok_or_else(|| CoreError::Param("no candidate heads".into()))?;
        let cfg = *first.config();
        cfg.validate()?;
        let expect = params.summary_config(cfg.response_start, cfg.seq_len);
        let mut heads: Vec<&HeadSummary> = summaries.iter().collect();
        for h in &heads {
            if *h.config() != expect {
                return Err(CoreError::Mismatch {
                    layer: h.layer,
                    head: h.head,
                    expected_p: expect.response_start,
                    expected_n: expect.seq_len,
                });
            }
        }
        // 1. Candidate heads in (layer, head) order; duplicates are an error.
        heads.sort_by_key(|h| (h.layer, h.head));
        let ids: Vec<HeadId> = heads.iter().map(|h| (h.layer, h.head)).collect();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(CoreError::Param(format!(
                "layer {} head {} is given twice",
                w[0].0, w[0].1
            )));
        }
        // 2. Spans and groups.
        let spans: Vec<HeadSpan> = heads
            .iter()
            .map(|h| HeadSpan {
                layer: h.layer,
                head: h.head,
                span: h.span(),
            })
            .collect();
        let groups = match groups {
            Some(g) => {
                check_groups(g, &ids)?;
                g.clone()
            }
            None => HeadGroups::from_spans(&spans, params.head_ratio),
        };
        let by_id = |id: &HeadId| heads[ids.binary_search(id).expect("checked")];
        // 3. WAAD of the local aggregate, FAI of the global aggregate: the
        //    mean of the per-head metrics (they are linear in the map).
        let waad = mean_of(
            &groups
                .local
                .iter()
                .map(|id| by_id(id).waad())
                .collect::<Vec<_>>(),
        );
        let fais: Vec<Vec<f64>> = groups.global.iter().map(|id| by_id(id).fai()).collect();
        let fai = mean_of(&fais.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
        // 4. Receiver heads and their FAI.
        let kurt: Vec<(HeadId, f64)> = heads
            .iter()
            .map(|h| ((h.layer, h.head), h.kurtosis()))
            .collect();
        let receivers = receiver_heads(&kurt, params.receiver_ratio);
        let rfais: Vec<Vec<f64>> = receivers.iter().map(|id| by_id(id).fai()).collect();
        let receiver_fai = mean_of(&rfais.iter().map(|v| v.as_slice()).collect::<Vec<_>>());
        // 5. Selections.
        let sel = Selections::new(cfg.response_start, &waad, &fai, params);
        Ok(Rhythm {
            response_start: cfg.response_start,
            n: cfg.n(),
            spans,
            groups,
            kurtosis: kurt,
            receivers,
            waad,
            fai,
            receiver_fai,
            sel,
        })
    }

    /// Computes the rhythm from full maps with the literal formulas of SPEC
    /// (explicit group mean maps). Validates every map first. Slow
    /// (`O(heads x N^2)` memory); the reference the streamed path is tested
    /// against, and the path for short inputs.
    pub fn from_maps(
        maps: &[HeadMap<'_>],
        response_start: usize,
        params: &Params,
        groups: Option<&HeadGroups>,
    ) -> Result<Rhythm, CoreError> {
        params.validate()?;
        let first = maps
            .first()
            .ok_or_else(|| CoreError::Param("no candidate heads".into()))?;
        let seq_len = first.seq_len;
        let cfg = params.summary_config(response_start, seq_len);
        cfg.validate()?;
        let mut maps: Vec<&HeadMap<'_>> = maps.iter().collect();
        for m in &maps {
            if m.seq_len != seq_len {
                return Err(CoreError::Mismatch {
                    layer: m.layer,
                    head: m.head,
                    expected_p: response_start,
                    expected_n: seq_len,
                });
            }
            m.validate()?;
        }
        maps.sort_by_key(|m| (m.layer, m.head));
        let ids: Vec<HeadId> = maps.iter().map(|m| (m.layer, m.head)).collect();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(CoreError::Param(format!(
                "layer {} head {} is given twice",
                w[0].0, w[0].1
            )));
        }
        let p = response_start;
        let spans: Vec<HeadSpan> = maps
            .iter()
            .map(|m| HeadSpan {
                layer: m.layer,
                head: m.head,
                span: maps::span_of_map(&maps::mean_map(&[m.data], seq_len), seq_len, p),
            })
            .collect();
        let groups = match groups {
            Some(g) => {
                check_groups(g, &ids)?;
                g.clone()
            }
            None => HeadGroups::from_spans(&spans, params.head_ratio),
        };
        let data_of = |id: &HeadId| maps[ids.binary_search(id).expect("checked")].data;
        let aggregate = |group: &[HeadId]| {
            maps::mean_map(&group.iter().map(data_of).collect::<Vec<_>>(), seq_len)
        };
        let waad = maps::waad_of_map(&aggregate(&groups.local), seq_len, p, params.window);
        let fai = maps::fai_of_map(&aggregate(&groups.global), seq_len, p, params.horizon);
        let kurt: Vec<(HeadId, f64)> = maps
            .iter()
            .map(|m| {
                let v = maps::vertical_of_map(
                    &maps::mean_map(&[m.data], seq_len),
                    seq_len,
                    p,
                    params.proximity,
                );
                ((m.layer, m.head), kurtosis(&v))
            })
            .collect();
        let receivers = receiver_heads(&kurt, params.receiver_ratio);
        let receiver_fai = maps::fai_of_map(&aggregate(&receivers), seq_len, p, params.horizon);
        let sel = Selections::new(p, &waad, &fai, params);
        Ok(Rhythm {
            response_start: p,
            n: cfg.n(),
            spans,
            groups,
            kurtosis: kurt,
            receivers,
            waad,
            fai,
            receiver_fai,
            sel,
        })
    }

    /// The response positions `P..N`.
    pub fn positions(&self) -> std::ops::Range<usize> {
        self.response_start..self.response_start + self.n
    }
}
