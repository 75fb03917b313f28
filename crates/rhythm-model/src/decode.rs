//! Batched KV-cached decoding written by hand for the CPU (rollouts).
//!
//! [`Model::generate_batch`] decodes a batch in lockstep. On the CPU it runs
//! here instead of through candle ops: the weights are read once into flat
//! vectors, every row has its own preallocated key/value cache (no padding:
//! a row's positions count its own tokens, as the padded path's position
//! ids do), finished rows leave the batch (the candle path keeps feeding
//! them a masked filler), and a step is a handful of GEMMs over the live rows
//! plus per-row attention loops. The live rows are split into one part per
//! thread and each part runs its whole step alone (single-threaded GEMMs on
//! weights stored transposed, which the GEMM reads without packing; the
//! attention and SiLU under `pulp`'s runtime dispatch), so that a step costs
//! one synchronisation rather than one per small GEMM; the samples do not
//! depend on the thread count. The prompts are prefilled in the same way,
//! all their tokens at once. Sampling is unchanged ([`crate::generate::pick`],
//! stream `i` of the seed for row `i`), so the outputs equal the candle
//! path's up to float rounding (which can flip near-ties).

use rayon::prelude::*;

use crate::backprop::{linear_fwd_t as linear, rms_fwd, rope_inplace, transpose, Geo, Index};
use crate::error::Result;
use crate::generate::{pick, row_streams, FinishReason, Generation, SamplingParams};
use crate::kernels;
use crate::model::Model;

/// The key and value caches of one row: per layer, keys transposed
/// `[kv_head][d][cap]` (a token's scores are then `d` contiguous
/// multiply-adds over its positions) and values `[kv_head][cap][d]`.
struct RowCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

/// Flat weights and per-row caches of one batched decode.
struct Decoder {
    net: Net,
    rows: Vec<RowCache>,
}

/// What every row's forward reads: the flat weights (the projections
/// transposed, `[in, out]`, see [`crate::backprop::linear_fwd_t`]) and the
/// RoPE tables.
struct Net {
    g: Geo,
    idx: Index,
    w: Vec<Vec<f32>>,
    /// The output head transposed, `[hidden, vocab]`.
    lm_t: Vec<f32>,
    cap: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// One feed of [`Decoder::feed`]: `tokens` appended to a row whose cache
/// holds `start` positions.
type Feed<'a> = (&'a [u32], usize);

impl Decoder {
    fn new(model: &Model, rows: usize, cap: usize) -> Result<Self> {
        let g = model.geo();
        let idx = Index::new(model)?;
        let mut w: Vec<Vec<f32>> = model
            .named_weights()
            .iter()
            .map(|(_, t)| t.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let (qw, kw) = (g.heads * g.d, g.kvh * g.d);
        for li in &idx.layers {
            for (i, out, inn) in [
                (li.wq, qw, g.hidden),
                (li.wk, kw, g.hidden),
                (li.wv, kw, g.hidden),
                (li.wo, g.hidden, qw),
                (li.wg, g.inter, g.hidden),
                (li.wu, g.inter, g.hidden),
                (li.wd, g.hidden, g.inter),
            ] {
                w[i] = transpose(&w[i], out, inn);
            }
        }
        let lm_t = transpose(&w[idx.lm], g.vocab, g.hidden);
        let per = g.kvh * cap * g.d;
        let layers = idx.layers.len();
        let (cos, sin) = model.rope.table_vecs(cap);
        Ok(Decoder {
            rows: (0..rows)
                .map(|_| RowCache {
                    k: (0..layers).map(|_| vec![0f32; per]).collect(),
                    v: (0..layers).map(|_| vec![0f32; per]).collect(),
                })
                .collect(),
            net: Net {
                g,
                idx,
                w,
                lm_t,
                cap,
                cos,
                sin,
            },
        })
    }

    /// Appends `tokens` to row `row` (whose cache holds `start` positions)
    /// for every `(row, tokens, start)` of `feeds` (rows distinct, in
    /// increasing order); returns the logits of each feed's last token.
    ///
    /// The rows are split into one contiguous part per thread, balanced by
    /// token count, and each part runs the whole forward alone
    /// ([`Net::forward`] with single-threaded GEMMs): one
    /// synchronisation a step instead of one per small GEMM, which is what
    /// a decode step of a small model is made of.
    fn feed(&mut self, feeds: &[(usize, &[u32], usize)]) -> Vec<Vec<f32>> {
        debug_assert!(feeds.windows(2).all(|f| f[0].0 < f[1].0));
        // The caches of the fed rows, in feed order.
        let mut caches: Vec<&mut RowCache> = Vec::with_capacity(feeds.len());
        let mut next = feeds.iter().map(|f| f.0).peekable();
        for (r, c) in self.rows.iter_mut().enumerate() {
            if next.peek() == Some(&r) {
                caches.push(c);
                next.next();
            }
        }
        assert_eq!(
            caches.len(),
            feeds.len(),
            "feed rows must be distinct and in order"
        );
        let feeds: Vec<Feed> = feeds.iter().map(|&(_, t, s)| (t, s)).collect();
        // Contiguous parts of about equal token counts, one per thread.
        let parts = rayon::current_num_threads().clamp(1, feeds.len().max(1));
        let total: usize = feeds.iter().map(|f| f.0.len()).sum();
        let mut bounds = vec![0];
        let mut acc = 0;
        for (i, f) in feeds.iter().enumerate() {
            acc += f.0.len();
            if bounds.len() < parts && acc * parts >= total * bounds.len() && i + 1 < feeds.len() {
                bounds.push(i + 1);
            }
        }
        bounds.push(feeds.len());
        let mut jobs: Vec<(&[Feed], &mut [&mut RowCache])> = Vec::with_capacity(parts);
        let mut rest: &mut [&mut RowCache] = &mut caches;
        for w in bounds.windows(2) {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(w[1] - w[0]);
            jobs.push((&feeds[w[0]..w[1]], head));
            rest = tail;
        }
        let this = &self.net;
        let outs: Vec<Vec<Vec<f32>>> = if jobs.len() == 1 {
            let (f, c) = jobs.pop().expect("one job");
            vec![this.forward(f, c)]
        } else {
            jobs.into_par_iter()
                .map(|(f, c)| crate::backprop::serial(|| this.forward(f, c)))
                .collect()
        };
        outs.into_iter().flatten().collect()
    }
}

impl Net {
    /// The forward of `feeds` over their rows' `caches` (same order), on
    /// the calling thread; returns each feed's last-token logits.
    fn forward(&self, feeds: &[Feed], caches: &mut [&mut RowCache]) -> Vec<Vec<f32>> {
        let g = self.g;
        let (hd, qw, kw, d) = (g.hidden, g.heads * g.d, g.kvh * g.d, g.d);
        let cap = self.cap;
        // Token i belongs to feed trow[i] at position tpos[i].
        let mut trow = Vec::new();
        let mut tpos = Vec::new();
        let mut ids = Vec::new();
        for (f, &(toks, start)) in feeds.iter().enumerate() {
            for (j, &t) in toks.iter().enumerate() {
                trow.push(f);
                tpos.push((start + j) as u32);
                ids.push(t);
            }
        }
        let n = ids.len();
        let w = &self.w;
        let emb = &w[self.idx.embed];
        let mut x = vec![0f32; n * hd];
        for (row, &id) in x.chunks_exact_mut(hd).zip(&ids) {
            row.copy_from_slice(&emb[id as usize * hd..(id as usize + 1) * hd]);
        }
        let mut h = vec![0f32; n * hd];
        let mut r = vec![0f32; n];
        let mut q = vec![0f32; n * qw];
        let mut k = vec![0f32; n * kw];
        let mut v = vec![0f32; n * kw];
        let mut o = vec![0f32; n * qw];
        let mut xm = vec![0f32; n * hd];
        let mut gate = vec![0f32; n * g.inter];
        let mut up = vec![0f32; n * g.inter];
        let mut act = vec![0f32; n * g.inter];
        let mut s = vec![0f32; cap];
        let mut pr = vec![0f32; 2 * cap];
        for (l, li) in self.idx.layers.iter().enumerate() {
            let wt = |i: usize| w[i].as_slice();
            // 1. Norm, projections, q/k norms, RoPE.
            rms_fwd(&x, wt(li.ln1), g.eps, &mut h, &mut r);
            linear(&h, wt(li.wq), li.bq.map(wt), &mut q, n, hd, qw);
            linear(&h, wt(li.wk), li.bk.map(wt), &mut k, n, hd, kw);
            linear(&h, wt(li.wv), li.bv.map(wt), &mut v, n, hd, kw);
            if let (Some(qn), Some(kn)) = (li.qn, li.kn) {
                let mut t = vec![0f32; n * qw];
                let mut rr = vec![0f32; n * g.heads];
                rms_fwd(&q, wt(qn), g.eps, &mut t, &mut rr);
                q = t;
                let mut t = vec![0f32; n * kw];
                let mut rr = vec![0f32; n * g.kvh];
                rms_fwd(&k, wt(kn), g.eps, &mut t, &mut rr);
                k = t;
            }
            rope_inplace(&mut q, g.heads, d, &tpos, &self.cos, &self.sin, false);
            rope_inplace(&mut k, g.kvh, d, &tpos, &self.cos, &self.sin, false);
            // 2. Write the new keys and values into the caches.
            for (i, (&f, &p)) in trow.iter().zip(&tpos).enumerate() {
                let (kc, vc) = (&mut caches[f].k[l], &mut caches[f].v[l]);
                let p = p as usize;
                for kh in 0..g.kvh {
                    let at = (kh * cap + p) * d;
                    let from = i * kw + kh * d;
                    vc[at..at + d].copy_from_slice(&v[from..from + d]);
                    for (c, &kv) in k[from..from + d].iter().enumerate() {
                        kc[(kh * d + c) * cap + p] = kv;
                    }
                }
            }
            // 3. Attention of every new token over its row's cache (causal).
            let rows: Vec<(&[f32], &[f32])> = caches
                .iter()
                .map(|c| (c.k[l].as_slice(), c.v[l].as_slice()))
                .collect();
            pulp::Arch::new().dispatch(Attend {
                g: &g,
                cap,
                q: &q,
                o: &mut o,
                trow: &trow,
                tpos: &tpos,
                rows: &rows,
                s: &mut s,
                pr: &mut pr,
            });
            // 4. Output projection and residual; MLP and residual.
            linear(&o, wt(li.wo), li.bo.map(wt), &mut xm, n, qw, hd);
            for (a, &b) in xm.iter_mut().zip(&x) {
                *a += b;
            }
            rms_fwd(&xm, wt(li.ln2), g.eps, &mut h, &mut r);
            linear(&h, wt(li.wg), li.bg.map(wt), &mut gate, n, hd, g.inter);
            linear(&h, wt(li.wu), li.bu.map(wt), &mut up, n, hd, g.inter);
            kernels::silu_mul(&mut act, &gate, &up);
            linear(&act, wt(li.wd), li.bd.map(wt), &mut x, n, g.inter, hd);
            for (a, &b) in x.iter_mut().zip(&xm) {
                *a += b;
            }
        }
        // 5. Final norm and logits of each feed's last token.
        let mut last = Vec::with_capacity(feeds.len() * hd);
        let mut at = 0;
        for &(toks, _) in feeds {
            at += toks.len();
            last.extend_from_slice(&x[(at - 1) * hd..at * hd]);
        }
        let nf = feeds.len();
        let mut hf = vec![0f32; nf * hd];
        let mut rf = vec![0f32; nf];
        rms_fwd(&last, &w[self.idx.norm], g.eps, &mut hf, &mut rf);
        let mut logits = vec![0f32; nf * g.vocab];
        linear(&hf, &self.lm_t, None, &mut logits, nf, hd, g.vocab);
        logits.chunks_exact(g.vocab).map(<[f32]>::to_vec).collect()
    }
}

/// The attention of every new token of a forward over its row's cache,
/// as one [`pulp::WithSimd`] operation so that its loops are compiled with
/// the CPU's vector features (AVX-512 or AVX2 + FMA; the crate itself is
/// built for baseline x86-64).
struct Attend<'a> {
    g: &'a Geo,
    cap: usize,
    /// Queries `[tokens, heads * d]` and outputs of the same shape.
    q: &'a [f32],
    o: &'a mut [f32],
    /// Token `i` belongs to row `trow[i]` (of `rows`) at position `tpos[i]`.
    trow: &'a [usize],
    tpos: &'a [u32],
    /// Each row's keys `[kv_head][d][cap]` and values `[kv_head][cap][d]`.
    rows: &'a [(&'a [f32], &'a [f32])],
    /// Scratch rows of `cap` scores and `2 * cap` probabilities (two heads).
    s: &'a mut [f32],
    pr: &'a mut [f32],
}

impl pulp::WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Attend {
            g,
            cap,
            q,
            o,
            trow,
            tpos,
            rows,
            s,
            pr,
        } = self;
        let (d, qw) = (g.d, g.heads * g.d);
        let grp = g.heads / g.kvh;
        let scale = 1.0 / (d as f32).sqrt();
        for (i, (orow, qrow)) in o.chunks_exact_mut(qw).zip(q.chunks_exact(qw)).enumerate() {
            let len = tpos[i] as usize + 1;
            let (kc, vc) = rows[trow[i]];
            let s = &mut s[..len];
            let (pa, pb) = pr.split_at_mut(cap);
            let (pa, pb) = (&mut pa[..len], &mut pb[..len]);
            // The query heads of one key/value head, two at a time: their
            // weighted sums over the same values run together (independent
            // accumulators, each value row read once for both).
            let mut hh = 0;
            while hh < g.heads {
                let base = (hh / grp) * cap * d;
                let kt = &kc[base..base + d * cap];
                let vs = &vc[base..base + len * d];
                let pair = hh % grp + 1 < grp;
                scores(simd, &qrow[hh * d..hh * d + d], kt, cap, s);
                kernels::softmax_scaled_with(simd, s, pa, scale);
                if pair {
                    scores(simd, &qrow[(hh + 1) * d..(hh + 2) * d], kt, cap, s);
                    kernels::softmax_scaled_with(simd, s, pb, scale);
                    let (oa, ob) = orow[hh * d..(hh + 2) * d].split_at_mut(d);
                    weighted_sum(simd, pa, Some(pb), vs, oa, Some(ob));
                    hh += 2;
                } else {
                    weighted_sum(simd, pa, None, vs, &mut orow[hh * d..hh * d + d], None);
                    hh += 1;
                }
            }
        }
    }
}

/// `s[j] = sum_c q[c] * K^T[c][j]` for the `s.len()` positions of one
/// head (`kt`: `[d][cap]`), summed over `c` in order from zero (the same
/// rounding as `d` passes of `s += q[c] * K^T[c]`), with blocks of four
/// vectors of positions (then one) accumulated in registers.
#[inline(always)]
fn scores<S: pulp::Simd>(simd: S, q: &[f32], kt: &[f32], cap: usize, s: &mut [f32]) {
    let len = s.len();
    let lanes = std::mem::size_of::<S::f32s>() / 4;
    let block = 4 * lanes;
    let mut j0 = 0;
    while j0 + block <= len {
        let mut acc = [simd.splat_f32s(0.0); 4];
        for (c, &qc) in q.iter().enumerate() {
            let qv = simd.splat_f32s(qc);
            let (kv, _) = S::as_simd_f32s(&kt[c * cap + j0..c * cap + j0 + block]);
            for (a, &k) in acc.iter_mut().zip(kv) {
                *a = simd.add_f32s(*a, simd.mul_f32s(qv, k));
            }
        }
        let (out, _) = S::as_mut_simd_f32s(&mut s[j0..j0 + block]);
        out.copy_from_slice(&acc);
        j0 += block;
    }
    while j0 + lanes <= len {
        let mut acc = simd.splat_f32s(0.0);
        for (c, &qc) in q.iter().enumerate() {
            let (kv, _) = S::as_simd_f32s(&kt[c * cap + j0..c * cap + j0 + lanes]);
            acc = simd.add_f32s(acc, simd.mul_f32s(simd.splat_f32s(qc), kv[0]));
        }
        let (out, _) = S::as_mut_simd_f32s(&mut s[j0..j0 + lanes]);
        out[0] = acc;
        j0 += lanes;
    }
    if j0 < len {
        let tail = &mut s[j0..];
        tail.fill(0.0);
        for (c, &qc) in q.iter().enumerate() {
            for (sj, &kv) in tail.iter_mut().zip(&kt[c * cap + j0..c * cap + len]) {
                *sj += qc * kv;
            }
        }
    }
}

/// `o = sum_j p[j] * V[j]` over the positions of one head (`v`: `[len][d]`),
/// and with `pb`/`ob` the same for a second head over the same values;
/// each sum runs over `j` in order from zero (the rounding of `o += p[j] *
/// V[j]`), with the outputs held in registers (up to four vectors a head
/// at a time) rather than stored and reloaded for every position.
#[inline(always)]
fn weighted_sum<S: pulp::Simd>(
    simd: S,
    pa: &[f32],
    pb: Option<&[f32]>,
    v: &[f32],
    oa: &mut [f32],
    mut ob: Option<&mut [f32]>,
) {
    let d = oa.len();
    let lanes = std::mem::size_of::<S::f32s>() / 4;
    if !d.is_multiple_of(lanes) {
        for (p, o) in std::iter::once((pa, oa)).chain(pb.zip(ob)) {
            o.fill(0.0);
            for (j, &pj) in p.iter().enumerate() {
                for (ov, &vv) in o.iter_mut().zip(&v[j * d..j * d + d]) {
                    *ov += pj * vv;
                }
            }
        }
        return;
    }
    let mut c0 = 0;
    while c0 < d {
        let w = (d - c0).min(4 * lanes);
        let oa = &mut oa[c0..c0 + w];
        match (pb, ob.as_deref_mut()) {
            (Some(pb), Some(ob)) => {
                let ob = &mut ob[c0..c0 + w];
                match w / lanes {
                    4 => sum_block::<S, 4, 2>(simd, [pa, pb], v, d, c0, [oa, ob]),
                    3 => sum_block::<S, 3, 2>(simd, [pa, pb], v, d, c0, [oa, ob]),
                    2 => sum_block::<S, 2, 2>(simd, [pa, pb], v, d, c0, [oa, ob]),
                    _ => sum_block::<S, 1, 2>(simd, [pa, pb], v, d, c0, [oa, ob]),
                }
            }
            _ => match w / lanes {
                4 => sum_block::<S, 4, 1>(simd, [pa], v, d, c0, [oa]),
                3 => sum_block::<S, 3, 1>(simd, [pa], v, d, c0, [oa]),
                2 => sum_block::<S, 2, 1>(simd, [pa], v, d, c0, [oa]),
                _ => sum_block::<S, 1, 1>(simd, [pa], v, d, c0, [oa]),
            },
        }
        c0 += w;
    }
}

/// Columns `c0..c0 + W * lanes` of [`weighted_sum`] for `H` heads, in
/// `W * H` registers.
#[inline(always)]
fn sum_block<S: pulp::Simd, const W: usize, const H: usize>(
    simd: S,
    p: [&[f32]; H],
    v: &[f32],
    d: usize,
    c0: usize,
    o: [&mut [f32]; H],
) {
    let lanes = std::mem::size_of::<S::f32s>() / 4;
    let mut acc = [[simd.splat_f32s(0.0); W]; H];
    for j in 0..p[0].len() {
        let at = j * d + c0;
        let (vv, _) = S::as_simd_f32s(&v[at..at + W * lanes]);
        for (ah, ph) in acc.iter_mut().zip(&p) {
            let pv = simd.splat_f32s(ph[j]);
            for (a, &x) in ah.iter_mut().zip(vv) {
                *a = simd.add_f32s(*a, simd.mul_f32s(pv, x));
            }
        }
    }
    for (ah, oh) in acc.iter().zip(o) {
        let (out, _) = S::as_mut_simd_f32s(oh);
        out.copy_from_slice(ah);
    }
}

impl Model {
    /// [`Model::generate_batch`] on the hand-written CPU decoder (see the
    /// module docs); prompts are non-empty and checked by the caller.
    pub(crate) fn generate_batch_fast(
        &self,
        prompts: &[Vec<u32>],
        params: &SamplingParams,
    ) -> Result<Vec<Generation>> {
        let b = prompts.len();
        let max_pos = self.config().max_position_embeddings;
        let mut out: Vec<Generation> = (0..b)
            .map(|_| Generation {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                entropy: Vec::new(),
                finish: FinishReason::Length,
            })
            .collect();
        let mut live: Vec<usize> = (0..b)
            .filter(|&i| params.max_new_tokens > 0 && prompts[i].len() < max_pos)
            .collect();
        if live.is_empty() {
            return Ok(out);
        }
        let mut rngs = row_streams(params.seed, b);
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let cap = width.saturating_add(params.max_new_tokens).min(max_pos);
        let mut dec = Decoder::new(self, b, cap)?;
        // 1. Prefill every live prompt at once.
        let feeds: Vec<(usize, &[u32], usize)> = live
            .iter()
            .map(|&i| (i, prompts[i].as_slice(), 0))
            .collect();
        let mut logits = dec.feed(&feeds);
        loop {
            // 2. Pick a token for every live row; drop rows that end.
            let mut next = Vec::with_capacity(live.len());
            let mut still = Vec::with_capacity(live.len());
            for (slot, &r) in live.iter().enumerate() {
                let lg = &logits[slot];
                let tok = pick(lg, params, &mut rngs[r]);
                let gen = &mut out[r];
                gen.tokens.push(tok);
                if params.logprobs {
                    gen.record(lg, tok);
                }
                let full = gen.tokens.len() >= params.max_new_tokens
                    || prompts[r].len() + gen.tokens.len() >= max_pos;
                if params.eos_token_ids.contains(&tok) {
                    gen.finish = FinishReason::Eos;
                } else if params.stop_token_ids.contains(&tok) {
                    gen.finish = FinishReason::Stop;
                } else if !full {
                    still.push(r);
                    next.push(tok);
                }
            }
            if still.is_empty() {
                break;
            }
            // 3. Feed each live row its new token at its next position.
            let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
            let feeds: Vec<(usize, &[u32], usize)> = still
                .iter()
                .zip(&toks)
                .map(|(&r, t)| (r, &t[..], prompts[r].len() + out[r].tokens.len() - 1))
                .collect();
            logits = dec.feed(&feeds);
            live = still;
        }
        Ok(out)
    }
}
