//! Causal attention of the training pass, forward and backward, per
//! sequence and head in parallel, with strided GEMMs straight on the
//! projection outputs.

use rayon::prelude::*;

use super::kernels::*;
use super::Geo;

/// Causal attention per sequence and head; `p` receives the probabilities
/// (`n x n` per sequence and head, zero above the diagonal), `o` the output.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_fwd(
    g: &Geo,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &mut [f32],
    o: &mut [f32],
    starts: &[usize],
    lens: &[usize],
    poff: &[usize],
) {
    let (qw, kw, d) = (g.heads * g.d, g.kvh * g.d, g.d);
    let grp = g.heads / g.kvh;
    let scale = 1.0 / (d as f32).sqrt();
    let (pp, op) = (SendPtr(p.as_mut_ptr()), SendPtr(o.as_mut_ptr()));
    let tasks: Vec<(usize, usize)> = (0..lens.len())
        .flat_map(|s| (0..g.heads).map(move |h| (s, h)))
        .collect();
    tasks.par_iter().for_each(|&(s, h)| {
        let (n, st, kh) = (lens[s], starts[s], h / grp);
        // SAFETY: task (s, h) writes only its own n x n block of p and the
        // rows of sequence s, columns of head h, of o; reads are in bounds.
        unsafe {
            let pb = pp.get().add(poff[s] + h * n * n);
            gemm_raw(
                n,
                n,
                d,
                pb,
                n,
                false,
                q.as_ptr().add(st * qw + h * d),
                qw,
                1,
                k.as_ptr().add(st * kw + kh * d),
                1,
                kw,
                false,
            );
            let rows = std::slice::from_raw_parts_mut(pb, n * n);
            let mut scores = vec![0f32; n];
            for (i, row) in rows.chunks_exact_mut(n).enumerate() {
                let (live, dead) = row.split_at_mut(i + 1);
                scores[..=i].copy_from_slice(live);
                crate::kernels::softmax_scaled(&scores[..=i], live, scale);
                dead.fill(0.0);
            }
            gemm_raw(
                n,
                d,
                n,
                op.get().add(st * qw + h * d),
                qw,
                false,
                pb,
                n,
                1,
                v.as_ptr().add(st * kw + kh * d),
                kw,
                1,
                false,
            );
        }
    });
}

/// Backward of [`attention_fwd`]: `dq`, `dk`, `dv` (overwritten) from the
/// output gradient `dout`.
#[allow(clippy::too_many_arguments)]
pub(super) fn attention_bwd(
    g: &Geo,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    p: &[f32],
    dout: &[f32],
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    starts: &[usize],
    lens: &[usize],
    poff: &[usize],
) {
    let (qw, kw, d) = (g.heads * g.d, g.kvh * g.d, g.d);
    let grp = g.heads / g.kvh;
    let scale = 1.0 / (d as f32).sqrt();
    let (dqp, dkp, dvp) = (
        SendPtr(dq.as_mut_ptr()),
        SendPtr(dk.as_mut_ptr()),
        SendPtr(dv.as_mut_ptr()),
    );
    let tasks: Vec<(usize, usize)> = (0..lens.len())
        .flat_map(|s| (0..g.kvh).map(move |kh| (s, kh)))
        .collect();
    tasks.par_iter().for_each(|&(s, kh)| {
        let (n, st) = (lens[s], starts[s]);
        let mut ds = vec![0f32; n * n];
        for h in kh * grp..(kh + 1) * grp {
            let first = h == kh * grp;
            let pb = &p[poff[s] + h * n * n..poff[s] + (h + 1) * n * n];
            // SAFETY: task (s, kh) writes the rows of sequence s in the
            // columns of its query heads (dq) and of kv head kh (dk, dv).
            unsafe {
                let dob = dout.as_ptr().add(st * qw + h * d);
                // dP = dO V^T.
                gemm_raw(
                    n,
                    n,
                    d,
                    ds.as_mut_ptr(),
                    n,
                    false,
                    dob,
                    qw,
                    1,
                    v.as_ptr().add(st * kw + kh * d),
                    1,
                    kw,
                    false,
                );
                // dS = P * (dP - rowsum(dP * P)) * scale.
                for (dr, pr) in ds.chunks_exact_mut(n).zip(pb.chunks_exact(n)) {
                    let dot: f32 = dr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    for (x, &pv) in dr.iter_mut().zip(pr) {
                        *x = pv * (*x - dot) * scale;
                    }
                }
                // dQ = dS K.
                gemm_raw(
                    n,
                    d,
                    n,
                    dqp.get().add(st * qw + h * d),
                    qw,
                    false,
                    ds.as_ptr(),
                    n,
                    1,
                    k.as_ptr().add(st * kw + kh * d),
                    kw,
                    1,
                    false,
                );
                // dK (+)= dS^T Q.
                gemm_raw(
                    n,
                    d,
                    n,
                    dkp.get().add(st * kw + kh * d),
                    kw,
                    !first,
                    ds.as_ptr(),
                    1,
                    n,
                    q.as_ptr().add(st * qw + h * d),
                    qw,
                    1,
                    false,
                );
                // dV (+)= P^T dO.
                gemm_raw(
                    n,
                    d,
                    n,
                    dvp.get().add(st * kw + kh * d),
                    kw,
                    !first,
                    pb.as_ptr(),
                    1,
                    n,
                    dob,
                    qw,
                    1,
                    false,
                );
            }
        }
    });
}
