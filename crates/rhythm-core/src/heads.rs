//! Head spans, the local and global head groups (SPEC section 3) and the
//! receiver heads (SPEC section 6).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::count::ceil_q;
use crate::summary::HeadSummary;

/// A head identified by `(layer, head)`.
pub type HeadId = (usize, usize);

/// The span of one candidate head.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadSpan {
    /// Layer index.
    pub layer: usize,
    /// Head index within the layer.
    pub head: usize,
    /// Mean attention distance `d` (SPEC eq. 7).
    pub span: f64,
}

/// The local and global head groups.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeadGroups {
    /// `H_loc`: the `ceil_q(rho, M)` heads of smallest span, in span order.
    pub local: Vec<HeadId>,
    /// `H_glob`: the `ceil_q(rho, M)` heads of largest span, in span order.
    pub global: Vec<HeadId>,
}

impl HeadGroups {
    /// Groups from spans: sort by span ascending, ties by `(layer, head)`
    /// ascending; the first `ceil_q(rho, M)` are local, the last global.
    pub fn from_spans(spans: &[HeadSpan], rho: f64) -> Self {
        let mut sorted: Vec<HeadSpan> = spans.to_vec();
        sorted.sort_by(|a, b| {
            a.span
                .total_cmp(&b.span)
                .then((a.layer, a.head).cmp(&(b.layer, b.head)))
        });
        let k = ceil_q(rho, sorted.len());
        let ids: Vec<HeadId> = sorted.iter().map(|h| (h.layer, h.head)).collect();
        HeadGroups {
            local: ids[..k].to_vec(),
            global: ids[ids.len() - k..].to_vec(),
        }
    }
}

/// Receiver heads: the top `ceil_q(ratio, M)` heads by kurtosis, ties by
/// `(layer, head)` ascending. `scores` holds `(head, kurtosis)`.
pub fn receiver_heads(scores: &[(HeadId, f64)], ratio: f64) -> Vec<HeadId> {
    let mut sorted = scores.to_vec();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let k = ceil_q(ratio, sorted.len());
    sorted.into_iter().take(k).map(|(id, _)| id).collect()
}

/// Pools head spans over a batch of sequences: `d` is the token-weighted mean,
/// the sum of span numerators over the sum of response lengths (SPEC section 3).
/// Used for the *static* and *refresh every K steps* group modes.
#[derive(Clone, Debug, Default)]
pub struct SpanPool {
    acc: BTreeMap<HeadId, (f64, usize)>,
}

impl SpanPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sequence's head summaries.
    pub fn add(&mut self, summaries: &[HeadSummary]) {
        for s in summaries {
            let e = self.acc.entry((s.layer, s.head)).or_insert((0.0, 0));
            e.0 += s.span_numerator();
            e.1 += s.config().n();
        }
    }

    /// Adds a span numerator and response length for one head directly.
    pub fn add_head(&mut self, id: HeadId, numerator: f64, n: usize) {
        let e = self.acc.entry(id).or_insert((0.0, 0));
        e.0 += numerator;
        e.1 += n;
    }

    /// The pooled spans, ordered by `(layer, head)`.
    pub fn spans(&self) -> Vec<HeadSpan> {
        self.acc
            .iter()
            .filter(|(_, &(_, n))| n > 0)
            .map(|(&(layer, head), &(num, n))| HeadSpan {
                layer,
                head,
                span: num / n as f64,
            })
            .collect()
    }

    /// Head groups from the pooled spans.
    pub fn groups(&self, rho: f64) -> HeadGroups {
        HeadGroups::from_spans(&self.spans(), rho)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(layer: usize, head: usize, span: f64) -> HeadSpan {
        HeadSpan { layer, head, span }
    }

    #[test]
    fn groups_sort_by_span_then_id() {
        // M = 4 heads, rho = 0.3 -> ceil(1.2) = 2 per group.
        // Spans: (0,0)=2, (0,1)=1, (1,0)=1, (1,1)=3.
        // Ascending with ties by id: (0,1)=1, (1,0)=1, (0,0)=2, (1,1)=3.
        let spans = [hs(1, 1, 3.0), hs(0, 0, 2.0), hs(1, 0, 1.0), hs(0, 1, 1.0)];
        let g = HeadGroups::from_spans(&spans, 0.3);
        assert_eq!(g.local, vec![(0, 1), (1, 0)]);
        assert_eq!(g.global, vec![(0, 0), (1, 1)]);
    }

    #[test]
    fn receivers_by_kurtosis_then_id() {
        // M = 11 -> ceil(1.1 - 1e-9) = 2 receivers.
        let mut scores: Vec<(HeadId, f64)> = (0..11).map(|h| ((0, h), 0.0)).collect();
        scores[7].1 = 5.0;
        scores[3].1 = 2.0;
        scores[9].1 = 2.0;
        // 5.0 first, then the tie 2.0 between heads 3 and 9 goes to 3.
        assert_eq!(receiver_heads(&scores, 0.1), vec![(0, 7), (0, 3)]);
    }

    #[test]
    fn pool_weights_by_tokens() {
        let mut p = SpanPool::new();
        // Sequence 1: numerator 10 over n = 2; sequence 2: numerator 2 over n = 8.
        p.add_head((0, 0), 10.0, 2);
        p.add_head((0, 0), 2.0, 8);
        // (10 + 2) / (2 + 8) = 1.2, not the mean of 5 and 0.25.
        assert!((p.spans()[0].span - 1.2).abs() < 1e-12);
    }
}
