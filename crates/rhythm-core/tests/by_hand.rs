//! Hand-computed cases for every definition, with the arithmetic written out.

use rhythm_core::*;

/// N = 4, P = 1 (R = {1, 2, 3}), one head:
/// ```text
/// row 0: 1.0
/// row 1: 0.5 0.5
/// row 2: 0.2 0.3 0.5
/// row 3: 0.1 0.2 0.3 0.4
/// ```
const MAP: [f32; 16] = [
    1.0, 0.0, 0.0, 0.0, //
    0.5, 0.5, 0.0, 0.0, //
    0.2, 0.3, 0.5, 0.0, //
    0.1, 0.2, 0.3, 0.4,
];

fn cfg(window: usize, horizon: (usize, usize), proximity: usize) -> SummaryConfig {
    SummaryConfig {
        response_start: 1,
        seq_len: 4,
        window,
        horizon,
        proximity,
    }
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
    }
}

fn summary(c: &SummaryConfig) -> HeadSummary {
    HeadMap {
        layer: 0,
        head: 0,
        seq_len: 4,
        data: &MAP,
    }
    .summarize(c)
}

#[test]
fn span_by_hand() {
    // t=1: 0.5*1 + 0.5*0                 = 0.5
    // t=2: 0.2*2 + 0.3*1 + 0.5*0         = 0.7
    // t=3: 0.1*3 + 0.2*2 + 0.3*1 + 0     = 1.0
    // d = (0.5 + 0.7 + 1.0) / 3           = 0.7333...
    let s = summary(&cfg(10, (1, usize::MAX), 4));
    assert!((s.span() - 2.2 / 3.0).abs() < 1e-6);
}

#[test]
fn waad_by_hand() {
    // W = 2: distances clip at 2.
    // t=1: 0.5*1                          = 0.5
    // t=2: 0.2*2 + 0.3*1                  = 0.7
    // t=3: 0.1*min(3,2) + 0.2*2 + 0.3*1   = 0.9
    close(summary(&cfg(2, (1, 9), 4)).waad(), &[0.5, 0.7, 0.9]);
}

#[test]
fn fai_by_hand() {
    // Horizon [1, N-1]: T(1) = {2, 3}: (A[2,1] + A[3,1]) / 2 = (0.3 + 0.2) / 2 = 0.25
    //                   T(2) = {3}:    A[3,2] = 0.3
    //                   T(3) = {}:     0
    close(
        &summary(&cfg(10, (1, usize::MAX), 4)).fai(),
        &[0.25, 0.3, 0.0],
    );
    // Horizon [0, 1]: T(1) = {1, 2}: (0.5 + 0.3) / 2 = 0.4
    //                 T(2) = {2, 3}: (0.5 + 0.3) / 2 = 0.4
    //                 T(3) = {3}:    0.4
    close(&summary(&cfg(10, (0, 1), 4)).fai(), &[0.4, 0.4, 0.4]);
}

#[test]
fn vertical_scores_and_kurtosis_by_hand() {
    // p = 1: v[1] = mean(A[2,1], A[3,1]) = 0.25; v[2] = A[3,2] = 0.3; v[3] has no row.
    let s = summary(&cfg(10, (1, 9), 1));
    close(&s.vertical_scores(), &[0.25, 0.3]);
    // Two values: m2 = 0.025^2, m4 = 0.025^4 -> m4/m2^2 - 3 = -2.
    assert!((s.kurtosis() + 2.0).abs() < 1e-6);
    // [0, 0, 0, 1]: mean 0.25, m2 = (3*0.0625 + 0.5625)/4 = 0.1875,
    // m4 = (3*0.00390625 + 0.31640625)/4 = 0.08203125, 0.08203125/0.03515625 - 3 = -2/3.
    assert!((kurtosis(&[0.0, 0.0, 0.0, 1.0]) + 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(kurtosis(&[1.0, 1.0]), f64::NEG_INFINITY);
}

#[test]
fn map_path_agrees_on_the_hand_case() {
    let m = HeadMap {
        layer: 0,
        head: 0,
        seq_len: 4,
        data: &MAP,
    };
    let p = Params {
        window: 2,
        horizon: (1, usize::MAX),
        proximity: 1,
        ..Params::analysis()
    };
    let r = Rhythm::from_maps(&[m], 1, &p, None).unwrap();
    close(&r.waad, &[0.5, 0.7, 0.9]);
    close(&r.fai, &[0.25, 0.3, 0.0]);
    assert!((r.spans[0].span - 2.2 / 3.0).abs() < 1e-6);
}

/// n = 6, P = 10.
/// ```text
/// offset   0    1    2    3    4    5
/// WAAD    2.0  5.0  1.0  1.5  1.0  0.0
/// Delta   3.0  4.0  0.5  0.5  1.0  0.0   (|WAAD[t] - WAAD[t+1]|, last 0)
/// FAI     0.1  0.0  0.3  0.2  0.3  0.05
/// ```
fn hand_rhythm(params: &Params) -> Rhythm {
    let waad = vec![2.0, 5.0, 1.0, 1.5, 1.0, 0.0];
    let fai = vec![0.1, 0.0, 0.3, 0.2, 0.3, 0.05];
    let sel = Selections::new(10, &waad, &fai, params);
    Rhythm {
        response_start: 10,
        n: 6,
        spans: vec![],
        groups: HeadGroups::default(),
        kurtosis: vec![],
        receivers: vec![],
        receiver_fai: fai.clone(),
        waad,
        fai,
        sel,
    }
}

#[test]
fn selections_by_hand() {
    let r = hand_rhythm(&Params::rl());
    close(&r.sel.delta, &[3.0, 4.0, 0.5, 0.5, 1.0, 0.0]);
    // q = 0.4, n = 6 -> ceil(2.4) = 3 tokens.
    // TopQ(Delta): 4.0 (o1), 3.0 (o0), 1.0 (o4) -> positions 10, 11, 14.
    assert_eq!(r.sel.preplan, vec![10, 11, 14]);
    // TopQ(FAI): 0.3 (o2), 0.3 (o4), 0.2 (o3) -> 12, 13, 14.
    assert_eq!(r.sel.anchors, vec![12, 13, 14]);
    // tau_waad = median(0, 1, 1, 1.5, 2, 5) = (1 + 1.5)/2 = 1.25.
    // tau_delta = median(0, 0.5, 0.5, 1, 3, 4) = (0.5 + 1)/2 = 0.75.
    assert_eq!((r.sel.tau_waad, r.sel.tau_delta), (1.25, 0.75));
    // k = 3.
    // o2: N = {0, 1}, WAAD 1.0 <= 1.25, max Delta 4.0 (o1) >= 0.75 -> dominated, intro o1.
    // o3: WAAD 1.5 > 1.25 -> not dominated.
    // o4: N = {1, 2, 3}, WAAD 1.0 <= 1.25, max Delta 4.0 (o1) -> dominated, intro o1.
    assert_eq!(r.sel.dominated, vec![12, 14]);
    assert_eq!(r.sel.intro, vec![11]);
}

#[test]
fn intro_ties_go_to_the_largest_position() {
    // Delta over N_3(3) = {0, 1, 2} is 2, 2, 1: the tie goes to offset 1.
    let waad = [0.0, 0.0, 0.0, 0.0];
    let delta = [2.0, 2.0, 1.0, 0.0];
    let (d, i) = dominated_and_intro(&[3], &waad, &delta, 3, 0.0, 0.5);
    assert_eq!((d, i), (vec![3], vec![1]));
    // An anchor at the first response position has an empty N_k: never dominated.
    let (d, _) = dominated_and_intro(&[0], &waad, &delta, 3, 0.0, 0.0);
    assert!(d.is_empty());
}

#[test]
fn gammas_by_hand() {
    let p = Params::rl();
    let r = hand_rhythm(&p);
    let inp = CreditInputs {
        n: 6,
        rhythm: Some(&r),
        entropy: None,
    };
    let g = |s: Strategy| gamma(s, &inp, &p).unwrap();
    // a = 0.5.
    assert_eq!(g(Strategy::None), vec![1.0; 6]);
    // Preplan offsets {0, 1, 4}.
    assert_eq!(g(Strategy::Local), vec![1.5, 1.5, 1.0, 1.0, 1.5, 1.0]);
    // Anchor offsets {2, 3, 4}.
    assert_eq!(g(Strategy::Global), vec![1.0, 1.0, 1.5, 1.5, 1.5, 1.0]);
    // Coupled, alpha = 0.5: D = {2, 4} get 1 + 0.5*0.5 = 1.25; anchor 3 outside D
    // gets 1.5; intro 1 gets 1 + 0.5*0.5 = 1.25.
    assert_eq!(g(Strategy::Coupled), vec![1.0, 1.25, 1.25, 1.5, 1.25, 1.0]);
    // Bottom ablations (SPEC section 8) range over the positions where the
    // score is defined. Delta: every offset but the last (whose Delta is 0 by
    // definition), m = 5, ceil_q(0.4, 5) = 2: 0.5 (o2), 0.5 (o3).
    assert_eq!(g(Strategy::LocalBottom), vec![1.0, 1.0, 1.5, 1.5, 1.0, 1.0]);
    // FAI at the RL horizon [10, 50]: T(s) needs s + 10 <= N - 1, and n = 6,
    // so no offset has a defined FAI: m = 0, nothing is boosted (the old rule
    // boosted the FAI-0 tail, the answer).
    assert_eq!(g(Strategy::GlobalBottom), vec![1.0; 6]);
    assert_eq!(g(Strategy::CoupledBottom), vec![1.0; 6]);
    // Horizon [1, end]: FAI is defined on offsets 0..=4 (m = 5, 2 tokens):
    // 0.0 (o1), 0.1 (o0); the last offset (FAI 0.05 < 0.1) is not a candidate.
    let p1 = Params {
        horizon: (1, usize::MAX),
        ..Params::rl()
    };
    let g1 = |s: Strategy, p: &Params| gamma(s, &inp, p).unwrap();
    assert_eq!(
        g1(Strategy::GlobalBottom, &p1),
        vec![1.5, 1.5, 1.0, 1.0, 1.0, 1.0]
    );
    // Coupled-bottom, same horizon: anchors {0, 1}; o0 has an empty N_k, o1
    // has WAAD 5 > 1.25: D is empty, so it equals global-bottom.
    assert_eq!(
        g1(Strategy::CoupledBottom, &p1),
        vec![1.5, 1.5, 1.0, 1.0, 1.0, 1.0]
    );
    // q = 0.8: ceil_q(0.8, 5) = 4 bottom anchors: 0.0 (o1), 0.1 (o0),
    // 0.2 (o3), then 0.3 ties between o2 and o4 -> o2. The dominated rule of
    // section 7, unchanged: o2 has N_3 = {0, 1}, WAAD 1.0 <= tau_waad 1.25 and
    // max Delta 4.0 (o1) >= tau_delta 0.75 -> D = {2}, intro o1; o3 has WAAD
    // 1.5 > 1.25. gamma: o0 anchor 1.5; o1 anchor + intro 1 + 0.5 + 0.25;
    // o2 in D 1 + 0.5*0.5; o3 anchor 1.5.
    let p8 = Params { q: 0.8, ..p1 };
    assert_eq!(
        g1(Strategy::CoupledBottom, &p8),
        vec![1.5, 1.75, 1.25, 1.5, 1.0, 1.0]
    );
    // Entropy: TopQ(H) with H = 0, 5, 1, 5, 2, 0 -> o1, o3 (tie 5), o4.
    let h = [0.0, 5.0, 1.0, 5.0, 2.0, 0.0];
    let inp_h = CreditInputs {
        entropy: Some(&h),
        ..inp
    };
    assert_eq!(
        gamma(Strategy::Entropy, &inp_h, &p).unwrap(),
        vec![1.0, 1.5, 1.0, 1.5, 1.5, 1.0]
    );
    // Strategies that need inputs say so.
    let none = CreditInputs {
        n: 6,
        rhythm: None,
        entropy: None,
    };
    assert!(gamma(Strategy::Local, &none, &p)
        .unwrap_err()
        .to_string()
        .contains("needs attention"));
    assert!(gamma(Strategy::Entropy, &none, &p)
        .unwrap_err()
        .to_string()
        .contains("entropy"));
}

#[test]
fn bad_maps_are_named() {
    let mut m = MAP;
    m[1] = 0.1; // row 0, column 1: above the diagonal
    let e = HeadMap {
        layer: 3,
        head: 2,
        seq_len: 4,
        data: &m,
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("layer 3 head 2 row 0"), "{e}");
    let mut m = MAP;
    m[5] = 0.6; // row 1 sums to 1.1
    let e = HeadMap {
        layer: 0,
        head: 0,
        seq_len: 4,
        data: &m,
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("row 1: sums to 1.1"), "{e}");
    let mut m = MAP;
    m[10] = f32::NAN;
    let e = HeadMap {
        layer: 0,
        head: 0,
        seq_len: 4,
        data: &m,
    }
    .validate()
    .unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
    let ok = HeadMap {
        layer: 0,
        head: 0,
        seq_len: 4,
        data: &MAP,
    };
    let e = Rhythm::from_maps(&[ok], 4, &Params::rl(), None).unwrap_err();
    assert!(e.to_string().contains("response start 4"), "{e}");
}

#[test]
fn binned_map_by_hand() {
    // The 4x4 map, P = 1: rows 1..4 (n = 3) into 3 row bins, columns 0..4 into 2 bins
    // (columns {0,1} and {2,3}).
    // row 1: 0.5+0.5 = 1.0 | 0       row 2: 0.2+0.3 = 0.5 | 0.5     row 3: 0.3 | 0.7
    let s = HeadSummary::new(0, 0, &cfg(10, (1, 9), 4)).with_bins(3, 2);
    let mut s = s;
    for t in 1..4 {
        s.push_row(t, &MAP[t * 4..(t + 1) * 4]);
    }
    let (r, c, v) = s.binned().unwrap();
    assert_eq!((r, c), (3, 2));
    close(&v, &[1.0, 0.0, 0.5, 0.5, 0.3, 0.7]);
    // One row bin: the mean of the three rows, (1.0+0.5+0.3)/3 = 0.6, (0+0.5+0.7)/3 = 0.4.
    let mut s = HeadSummary::new(0, 0, &cfg(10, (1, 9), 4)).with_bins(1, 2);
    for t in 1..4 {
        s.push_row(t, &MAP[t * 4..(t + 1) * 4]);
    }
    close(&s.binned().unwrap().2, &[0.6, 0.4]);
}

/// Six heads in two layers at SPEC's RL defaults (`W = 10`, horizon
/// `[10, 50]`, `q = 0.4`, `rho = 0.3`, `k = 3`). `N = 24`, `P = 4`
/// (`R = 4..=23`, `n = 20`). Each head puts all of a row's mass on one
/// column, `c(t)`; rows where the rule gives no column attend to themselves.
///
/// ```text
/// head   rule c(t)                        span over R (mean of t - c(t))
/// (1,0)  self: t                          0
/// (1,1)  t - 2                            2
/// (1,2)  t - 11 for t >= 11, else self    rows 11..=23 give 11: 13*11/20 = 7.15
/// (3,0)  t - 3                            3
/// (3,1)  chunk start 4 + 4*floor((t-4)/4) (t-4) mod 4 = 0,1,2,3 five times: 30/20 = 1.5
/// (3,2)  6 for t >= 6, else self          rows 6..=23 give 0..=17: 153/20 = 7.65
/// ```
/// Sorted by span: (1,0) 0, (3,1) 1.5, (1,1) 2, (3,0) 3, (1,2) 7.15,
/// (3,2) 7.65. `ceil_q(0.3, 6) = 2`: local {(1,0), (3,1)}, global
/// {(1,2), (3,2)}: both groups mix the two layers.
fn six_head_maps() -> Vec<(usize, usize, Vec<f32>)> {
    const N: usize = 24;
    let rule = |f: &dyn Fn(usize) -> Option<usize>| {
        let mut m = vec![0.0f32; N * N];
        for t in 0..N {
            m[t * N + f(t).unwrap_or(t)] = 1.0;
        }
        m
    };
    vec![
        (1, 0, rule(&|_| None)),
        (1, 1, rule(&|t| t.checked_sub(2))),
        (1, 2, rule(&|t| t.checked_sub(11))),
        (3, 0, rule(&|t| t.checked_sub(3))),
        (3, 1, rule(&|t| (t >= 4).then(|| 4 + 4 * ((t - 4) / 4)))),
        (3, 2, rule(&|t| (t >= 6).then_some(6))),
    ]
}

#[test]
fn six_heads_two_layers_at_rl_defaults_by_hand() {
    let heads = six_head_maps();
    let maps: Vec<HeadMap<'_>> = heads
        .iter()
        .map(|(l, h, m)| HeadMap {
            layer: *l,
            head: *h,
            seq_len: 24,
            data: m,
        })
        .collect();
    let p = Params::rl();
    let cfg = p.summary_config(4, 24);
    let sums: Vec<HeadSummary> = maps.iter().map(|m| m.summarize(&cfg)).collect();
    let streamed = Rhythm::from_summaries(&sums, &p, None).unwrap();
    let full = Rhythm::from_maps(&maps, 4, &p, None).unwrap();
    for r in [&streamed, &full] {
        let spans: Vec<f64> = r.spans.iter().map(|h| h.span).collect();
        close(&spans, &[0.0, 2.0, 7.15, 3.0, 1.5, 7.65]);
        assert_eq!(r.groups.local, vec![(1, 0), (3, 1)]);
        assert_eq!(r.groups.global, vec![(1, 2), (3, 2)]);
        // WAAD: mean of self (0) and the chunk head (min((t-4) mod 4, 10)).
        let waad: Vec<f64> = (0..20).map(|o| (o % 4) as f64 / 2.0).collect();
        close(&r.waad, &waad);
        // FAI: T(s) = s+10..=23 (|T(s)| = 14 - s) for s <= 13, empty after.
        // Head (3,2): column 6 is 1 on all of T(6) = 16..=23 -> FAI[6] = 1.
        // Head (1,2): column s holds row s + 11, in T(s) iff s <= 12 ->
        // FAI[s] = 1/(14 - s) for s = 4..=12. Global FAI = mean of the two.
        let mut fai = vec![0.0; 20];
        for s in 4..=12usize {
            fai[s - 4] = 0.5 / (14 - s) as f64;
        }
        fai[2] += 0.5;
        close(&r.fai, &fai);
        // Delta: 0.5 within a chunk, 1.5 at its end (o = 3 mod 4), 0 last.
        let delta: Vec<f64> = (0..20)
            .map(|o| match (o, o % 4) {
                (19, _) => 0.0,
                (_, 3) => 1.5,
                _ => 0.5,
            })
            .collect();
        close(&r.sel.delta, &delta);
        // tau_waad: five each of 0, 0.5, 1, 1.5 -> (0.5 + 1)/2 = 0.75.
        // tau_delta: 0, fifteen 0.5, four 1.5 -> 0.5.
        assert_eq!((r.sel.tau_waad, r.sel.tau_delta), (0.75, 0.5));
        // ceil_q(0.4, 20) = 8. Preplan: the four 1.5s (o3, 7, 11, 15), then
        // 0.5s toward smaller offsets (o0, 1, 2, 4); positions = o + 4.
        assert_eq!(r.sel.preplan, vec![4, 5, 6, 7, 8, 11, 15, 19]);
        // FAI = 0.5/(14 - s): o2 1/2 + 1/16, o8 1/4, o7 1/6, o6 1/8, o5 1/10,
        // o4 1/12, o3 1/14, o1 1/18 (o0, 1/20, is ninth).
        assert_eq!(r.sel.anchors, (5..=12).collect::<Vec<_>>());
        // Dominated: WAAD <= 0.75 means o mod 4 in {0, 1}: o1 (N = {0}),
        // o4 and o5 (max Delta 1.5 at o3), o8 (max Delta at o7).
        assert_eq!(r.sel.dominated, vec![5, 8, 9, 12]);
        assert_eq!(r.sel.intro, vec![4, 7, 11]);
        assert_eq!(r.receivers.len(), 1); // ceil_q(0.1, 6)
    }
    let inp = CreditInputs {
        n: 20,
        rhythm: Some(&streamed),
        entropy: None,
    };
    let g = |s: Strategy| gamma(s, &inp, &p).unwrap();
    let boosted = |offsets: &[usize], v: f64| -> Vec<f64> {
        (0..20)
            .map(|o| if offsets.contains(&o) { v } else { 1.0 })
            .collect()
    };
    // Coupled: anchors outside D (o2, 3, 6, 7) 1.5; D (o1, 4, 5, 8) 1.25;
    // intro (o0, 3, 7) + 0.25.
    let mut coupled = vec![1.0; 20];
    for (o, v) in [
        (0, 1.25),
        (1, 1.25),
        (2, 1.5),
        (3, 1.75),
        (4, 1.25),
        (5, 1.25),
        (6, 1.5),
        (7, 1.75),
        (8, 1.25),
    ] {
        coupled[o] = v;
    }
    assert_eq!(g(Strategy::Coupled), coupled);
    assert_eq!(
        g(Strategy::Local),
        boosted(&[0, 1, 2, 3, 4, 7, 11, 15], 1.5)
    );
    assert_eq!(g(Strategy::Global), boosted(&[1, 2, 3, 4, 5, 6, 7, 8], 1.5));
    // Bottom: FAI is defined on o0..=o9 (s <= 13), ceil_q(0.4, 10) = 4:
    // o9 (0), o0 (1/20), o1 (1/18), o3 (1/14). The FAI-0 tail o10..=19 (the
    // answer) is never a candidate.
    assert_eq!(g(Strategy::GlobalBottom), boosted(&[0, 1, 3, 9], 1.5));
    // Delta is defined on o0..=o18, ceil_q(0.4, 19) = 8: the smallest 0.5s.
    assert_eq!(
        g(Strategy::LocalBottom),
        boosted(&[0, 1, 2, 4, 5, 6, 8, 9], 1.5)
    );
}
