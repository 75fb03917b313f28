//! `Model::probe_responses` (the packed, hand-written forward over a batch
//! of responses) against `Model::probe_response` (candle, one response at a
//! time): the same summaries, entropies and log-probabilities up to float
//! rounding, on random tiny models of every family and on the bundled model,
//! with passes cut by a small budget and the per-sequence fallback.

mod common;

use std::path::Path;

use candle_core::Device;
use rhythm_core::{HeadSummary, Params};
use rhythm_model::{Model, Pretrained, ProbeExtras, ProbedResponse};

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs())),
        "{what}: {a} vs {b}"
    );
}

fn close_all(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        close(*x, *y, tol, &format!("{what}[{i}]"));
    }
}

fn same_summary(a: &HeadSummary, b: &HeadSummary, what: &str) {
    assert_eq!((a.layer, a.head), (b.layer, b.head), "{what}: head order");
    assert_eq!(a.rows_seen(), b.rows_seen(), "{what}: rows");
    close(a.span(), b.span(), 1e-4, &format!("{what} span"));
    close_all(a.waad(), b.waad(), 1e-4, &format!("{what} waad"));
    close_all(a.fai_sum(), b.fai_sum(), 1e-4, &format!("{what} fai_sum"));
    close_all(
        a.vert_sum(),
        b.vert_sum(),
        1e-4,
        &format!("{what} vert_sum"),
    );
}

fn check(m: &Model, items: &[(Vec<u32>, usize)], layers: &[usize], params: &Params, budget: usize) {
    let refs: Vec<(&[u32], usize)> = items.iter().map(|(ids, p)| (ids.as_slice(), *p)).collect();
    let batch = m
        .probe_responses_within(&refs, layers, params, budget)
        .unwrap();
    assert_eq!(batch.len(), items.len());
    for (i, ((ids, p), got)) in items.iter().zip(&batch).enumerate() {
        let want: ProbedResponse = m
            .probe_response(ids, *p, layers, params, ProbeExtras::default())
            .unwrap();
        assert_eq!(got.response_start, *p);
        close_all(
            &got.entropy,
            &want.entropy,
            1e-5,
            &format!("response {i} entropy"),
        );
        close_all(
            &got.logprobs,
            &want.logprobs,
            1e-4,
            &format!("response {i} logprobs"),
        );
        assert_eq!(got.summaries.len(), want.summaries.len());
        for (a, b) in got.summaries.iter().zip(&want.summaries) {
            same_summary(a, b, &format!("response {i}"));
        }
        // The rhythm built from either agrees on the scores.
        let (ra, rb) = (got.rhythm(params, None), want.rhythm(params, None));
        if let (Ok(ra), Ok(rb)) = (ra, rb) {
            close_all(
                &ra.waad,
                &rb.waad,
                1e-4,
                &format!("response {i} rhythm waad"),
            );
            close_all(&ra.fai, &rb.fai, 1e-4, &format!("response {i} rhythm fai"));
        }
    }
}

fn params() -> Params {
    Params {
        window: 3,
        horizon: (1, 4),
        ..Params::rl()
    }
}

#[test]
fn batch_equals_one_by_one_on_every_family() {
    for family in ["qwen3", "qwen2", "llama"] {
        let (m, _) = Model::random(&common::tiny(family), 5, 3.0, &Device::Cpu).unwrap();
        let items: Vec<(Vec<u32>, usize)> = [
            (13usize, 4usize, 1u64),
            (7, 2, 2),
            (21, 9, 3),
            (2, 1, 4),
            (90, 30, 5),
        ]
        .iter()
        .map(|&(n, p, s)| (common::ids(n, 40, s), p))
        .collect();
        check(&m, &items, &[0, 1], &params(), usize::MAX);
        // Reversed layer order: summaries follow the order asked.
        check(&m, &items, &[1], &params(), usize::MAX);
        // No layer: entropy and log-probabilities only.
        check(&m, &items, &[], &params(), usize::MAX);
        // A budget that splits the batch and sends the longest alone to the
        // blockwise probe (4 heads x 21^2 = 1,764 > 1,000; 90 tokens: more than
        // one causal block of the packed attention).
        check(&m, &items, &[0, 1], &params(), 1_000);
    }
}

#[test]
fn batch_equals_one_by_one_on_the_bundled_model() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/countdown-tiny");
    let pre = Pretrained::load(&root).unwrap();
    let m = &pre.model;
    let tok = pre.tokenizer.as_ref().unwrap();
    let prompt = "nums: 19 36 55 7 target: 65\n";
    let responses = [
        "<think>\n36+55=91 91-19=72 72-7=65\n</think>\n<answer>36+55-19-7</answer>",
        "<think>\n55-36=19 19+19=38 no\n</think>\n<answer>55-36+19+7</answer>",
        "<think>\n7*19=133 no\n",
    ];
    let items: Vec<(Vec<u32>, usize)> = responses
        .iter()
        .map(|r| {
            let p = tok.encode(prompt, false).unwrap().get_ids().to_vec();
            let full = tok
                .encode(format!("{prompt}{r}"), false)
                .unwrap()
                .get_ids()
                .to_vec();
            assert_eq!(&full[..p.len()], &p[..]);
            (full, p.len())
        })
        .collect();
    // SPEC's RL defaults (W = 10, horizon 10:50) on the sampled layers 1, 2.
    check(m, &items, &[1, 2], &Params::rl(), usize::MAX);
}

#[test]
fn bad_input_is_an_error() {
    let (m, _) = Model::random(&common::tiny("qwen3"), 5, 3.0, &Device::Cpu).unwrap();
    let ids = common::ids(6, 40, 1);
    let e = m
        .probe_responses(&[(&ids, 0)], &[0], &params())
        .unwrap_err();
    assert!(e.to_string().contains("response 0"), "{e}");
    let e = m
        .probe_responses(&[(&ids, 6)], &[0], &params())
        .unwrap_err();
    assert!(e.to_string().contains("response_start < 6"), "{e}");
    let e = m
        .probe_responses(&[(&ids, 2)], &[0, 0], &params())
        .unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let e = m
        .probe_responses(&[(&ids, 2)], &[2], &params())
        .unwrap_err();
    assert!(e.to_string().contains("layer 2 does not exist"), "{e}");
}
