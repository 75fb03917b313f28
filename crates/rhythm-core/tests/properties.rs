//! Property tests: counts follow `ceil_q`, gamma takes only allowed values,
//! streamed summaries equal full maps, head order changes nothing.

use proptest::prelude::{
    prop_assert, prop_assert_eq, proptest, Just, ProptestConfig, Strategy as Gen,
};
use rhythm_core::*;

/// A random causal map with rows normalised to 1 (entries in (0, 1]).
fn causal_map(n: usize, raw: &[f32]) -> Vec<f32> {
    let mut m = vec![0.0f32; n * n];
    for t in 0..n {
        let row = &mut m[t * n..(t + 1) * n];
        let mut sum = 0.0;
        for s in 0..=t {
            // Square to make some rows peaked.
            let v = raw[(t * n + s) % raw.len()];
            row[s] = v * v + 1e-3;
            sum += row[s];
        }
        row[..=t].iter_mut().for_each(|x| *x /= sum);
    }
    m
}

#[derive(Debug, Clone)]
struct Case {
    n: usize,
    p: usize,
    heads: Vec<(usize, usize, Vec<f32>)>,
}

fn case() -> impl Gen<Value = Case> {
    (3usize..20, 1usize..4, 1usize..4)
        .prop_flat_map(|(n, layers, per_layer)| {
            let count = layers * per_layer;
            (
                Just(n),
                0..n - 1,
                Just((layers, per_layer)),
                proptest::collection::vec(proptest::collection::vec(0.0f32..1.0, 7..29), count),
            )
        })
        .prop_map(|(n, p, (_layers, per_layer), raws)| {
            let heads = raws
                .iter()
                .enumerate()
                .map(|(i, raw)| (2 * (i / per_layer) + 1, i % per_layer, causal_map(n, raw)))
                .collect();
            Case { n, p, heads }
        })
}

fn params_strategy() -> impl Gen<Value = Params> {
    (
        1usize..6,
        0usize..4,
        0usize..8,
        0.05f64..1.0,
        0.05f64..1.0,
        1usize..4,
        1usize..5,
    )
        .prop_map(|(window, lo, span, q, rho, k, prox)| Params {
            window,
            horizon: (lo, lo + span),
            q,
            head_ratio: rho,
            k,
            proximity: prox,
            ..Params::rl()
        })
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
}

fn summaries(c: &Case, params: &Params) -> Vec<HeadSummary> {
    let cfg = params.summary_config(c.p, c.n);
    c.heads
        .iter()
        .map(|(l, h, m)| {
            HeadMap {
                layer: *l,
                head: *h,
                seq_len: c.n,
                data: m,
            }
            .summarize(&cfg)
        })
        .collect()
}

fn maps(c: &Case) -> Vec<HeadMap<'_>> {
    c.heads
        .iter()
        .map(|(l, h, m)| HeadMap {
            layer: *l,
            head: *h,
            seq_len: c.n,
            data: m,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn streamed_equals_full_maps(c in case(), params in params_strategy()) {
        let a = Rhythm::from_summaries(&summaries(&c, &params), &params, None).unwrap();
        let b = Rhythm::from_maps(&maps(&c), c.p, &params, None).unwrap();
        prop_assert!(close(&a.waad, &b.waad));
        prop_assert!(close(&a.fai, &b.fai));
        prop_assert!(close(&a.receiver_fai, &b.receiver_fai));
        let sa: Vec<f64> = a.spans.iter().map(|h| h.span).collect();
        let sb: Vec<f64> = b.spans.iter().map(|h| h.span).collect();
        prop_assert!(close(&sa, &sb));
        prop_assert_eq!(&a.groups, &b.groups);
        prop_assert_eq!(&a.receivers, &b.receivers);
        prop_assert_eq!(&a.sel.preplan, &b.sel.preplan);
        prop_assert_eq!(&a.sel.anchors, &b.sel.anchors);
        prop_assert_eq!(&a.sel.dominated, &b.sel.dominated);
        prop_assert_eq!(&a.sel.intro, &b.sel.intro);
    }

    #[test]
    fn head_order_changes_nothing(c in case(), params in params_strategy(), seed in 0u64..1000) {
        let s = summaries(&c, &params);
        let mut shuffled = s.clone();
        // A deterministic shuffle from the seed.
        let len = shuffled.len();
        for i in (1..len).rev() {
            let j = ((seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64)) >> 33) as usize % (i + 1);
            shuffled.swap(i, j);
        }
        let a = Rhythm::from_summaries(&s, &params, None).unwrap();
        let b = Rhythm::from_summaries(&shuffled, &params, None).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn counts_follow_ceil_q_and_dominated_follows_its_definition(c in case(), params in params_strategy()) {
        let r = Rhythm::from_summaries(&summaries(&c, &params), &params, None).unwrap();
        let n = c.n - c.p;
        let m = c.heads.len();
        prop_assert_eq!(r.sel.preplan.len(), ceil_q(params.q, n));
        prop_assert_eq!(r.sel.anchors.len(), ceil_q(params.q, n));
        prop_assert_eq!(r.groups.local.len(), ceil_q(params.head_ratio, m));
        prop_assert_eq!(r.groups.global.len(), ceil_q(params.head_ratio, m));
        prop_assert_eq!(r.receivers.len(), ceil_q(params.receiver_ratio, m));
        // SPEC eq. 17, written out independently over absolute positions:
        // t in D iff t is an anchor, N_k(t) = {t-k..t-1} ∩ R is not empty,
        // WAAD[t] <= tau_waad and max Delta over N_k(t) >= tau_delta; intro(t)
        // is the u in N_k(t) with the largest Delta, ties toward the largest u.
        let (p, k) = (c.p, params.k);
        let delta = |u: usize| r.sel.delta[u - p];
        let mut dom = Vec::new();
        let mut intro = std::collections::BTreeSet::new();
        for &t in &r.sel.anchors {
            let nk: Vec<usize> = (t.saturating_sub(k)..t).filter(|&u| u >= p).collect();
            let Some(&first) = nk.first() else { continue };
            let best = nk.iter().copied().fold(first, |b, u| if delta(u) >= delta(b) { u } else { b });
            if r.waad[t - p] <= r.sel.tau_waad && delta(best) >= r.sel.tau_delta {
                dom.push(t);
                intro.insert(best);
            }
        }
        prop_assert_eq!(&r.sel.dominated, &dom);
        prop_assert_eq!(r.sel.intro.clone(), intro.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn gamma_takes_only_allowed_values(c in case(), params in params_strategy(), amp in 1.0f64..3.0, alpha in 0.0f64..1.0) {
        let params = Params { gamma_amp: amp, alpha, ..params };
        let r = Rhythm::from_summaries(&summaries(&c, &params), &params, None).unwrap();
        let n = c.n - c.p;
        let h: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64).collect();
        let inp = CreditInputs { n, rhythm: Some(&r), entropy: Some(&h) };
        let a = amp - 1.0;
        for s in Strategy::ALL {
            let g = gamma(s, &inp, &params).unwrap();
            prop_assert_eq!(g.len(), n);
            let allowed: Vec<f64> = match s {
                Strategy::None => vec![1.0],
                Strategy::Coupled | Strategy::CoupledBottom => vec![
                    1.0, 1.0 + a, 1.0 + (1.0 - alpha) * a, 1.0 + alpha * a,
                    1.0 + a + alpha * a, 1.0 + (1.0 - alpha) * a + alpha * a,
                ],
                _ => vec![1.0, 1.0 + a],
            };
            for x in &g {
                prop_assert!(allowed.iter().any(|y| (x - y).abs() < 1e-12), "{} gave {}", s, x);
            }
            // How many tokens a one-set strategy boosts: ceil_q over the
            // positions it ranges over (SPEC section 8: the bottom ablations
            // range over the positions whose score is defined).
            let range = match s {
                Strategy::LocalBottom => Some(n - 1),
                Strategy::GlobalBottom => Some(n.saturating_sub(params.horizon.0)),
                Strategy::Local | Strategy::Global | Strategy::Random | Strategy::Entropy => Some(n),
                _ => None,
            };
            if let (Some(m), true) = (range, a > 0.0) {
                prop_assert_eq!(g.iter().filter(|&&x| x > 1.0).count(), ceil_q(params.q, m), "{}", s);
            }
            // Bottom ablations never boost a position whose score is undefined.
            if a > 0.0 && matches!(s, Strategy::GlobalBottom | Strategy::CoupledBottom) {
                let first = n.saturating_sub(params.horizon.0);
                for (o, &x) in g.iter().enumerate().skip(first) {
                    prop_assert_eq!(x, 1.0, "{} boosted offset {} with no FAI window", s, o);
                }
            }
            if a > 0.0 && s == Strategy::LocalBottom {
                prop_assert_eq!(g[n - 1], 1.0);
            }
        }
    }

    #[test]
    fn pooled_spans_are_token_weighted_means(c in case(), params in params_strategy(), p2 in 0usize..18) {
        // Two sequences over the same heads: the full case and the same maps
        // with another response start. SPEC section 3: the pooled span is the
        // sum of the numerators over the sum of n, computed here from the maps.
        let p2 = p2 % (c.n - 1);
        let other = Case { p: p2, ..c.clone() };
        let mut pool = SpanPool::new();
        pool.add(&summaries(&c, &params));
        pool.add(&summaries(&other, &params));
        let numerator = |map: &[f32], p: usize| -> f64 {
            (p..c.n)
                .flat_map(|t| (0..=t).map(move |s| (t, s)))
                .map(|(t, s)| map[t * c.n + s] as f64 * (t - s) as f64)
                .sum()
        };
        let total_n = (c.n - c.p + c.n - p2) as f64;
        let mut expect: Vec<(f64, usize, usize)> = c
            .heads
            .iter()
            .map(|(l, h, m)| ((numerator(m, c.p) + numerator(m, p2)) / total_n, *l, *h))
            .collect();
        let got = pool.spans();
        prop_assert_eq!(got.len(), expect.len());
        for (g, e) in got.iter().zip(expect.iter()) {
            prop_assert_eq!((g.layer, g.head), (e.1, e.2));
            prop_assert!((g.span - e.0).abs() < 1e-9, "{} vs {}", g.span, e.0);
        }
        // Groups: ascending span, ties by (layer, head); first and last ceil_q(rho, M).
        expect.sort_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let k = ceil_q(params.head_ratio, expect.len());
        let mut local: Vec<(usize, usize)> = expect[..k].iter().map(|e| (e.1, e.2)).collect();
        let mut global: Vec<(usize, usize)> = expect[expect.len() - k..].iter().map(|e| (e.1, e.2)).collect();
        let groups = pool.groups(params.head_ratio);
        let (mut gl, mut gg) = (groups.local.clone(), groups.global.clone());
        for v in [&mut local, &mut global, &mut gl, &mut gg] {
            v.sort_unstable();
        }
        prop_assert_eq!(gl, local);
        prop_assert_eq!(gg, global);
    }
}
