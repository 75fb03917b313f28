//! The numeric kernels of the hand-written training pass: strided GEMMs
//! (the `gemm` crate), RMSNorm forward and backward, RoPE in place, SiLU and
//! linear layers, on flat row-major `f32` buffers. The inference decoder
//! (`crate::decode`) uses the forward ones too.

use rayon::prelude::*;

/// A raw pointer that parallel tasks may share: every task writes a
/// disjoint region of the buffer behind it.
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: used only to write disjoint regions from rayon tasks, while the
// owning buffer outlives the parallel loop.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

thread_local! {
    /// Set while [`serial`] runs: GEMMs on this thread use one thread.
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with this thread's GEMMs single-threaded: for callers that are
/// already parallel at a coarser grain (the decoder splits its rows between
/// threads), so that each small GEMM does not synchronise the whole pool.
pub(crate) fn serial<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|c| c.replace(true));
    let out = f();
    SERIAL.with(|c| c.set(before));
    out
}

/// `C (m x n, row stride c_rs) (+)= A (m x k) . B (k x n)`, with A and B
/// given by row and column strides.
///
/// # Safety
/// The pointers must cover every element the strides address.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    c_rs: usize,
    acc: bool,
    a: *const f32,
    a_rs: usize,
    a_cs: usize,
    b: *const f32,
    b_rs: usize,
    b_cs: usize,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            for i in 0..m {
                for j in 0..n {
                    *c.add(i * c_rs + j) = 0.0;
                }
            }
        }
        return;
    }
    let par = if parallel
        && m * n * k >= 1 << 15
        && rayon::current_num_threads() > 1
        && !SERIAL.with(|c| c.get())
    {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        1.0f32,
        1.0f32,
        false,
        false,
        false,
        par,
    );
}

/// `y[rows, out] (+)= x[rows, inn] . w[out, inn]^T`.
pub(crate) fn mm_nt(
    x: &[f32],
    w: &[f32],
    y: &mut [f32],
    rows: usize,
    inn: usize,
    out: usize,
    acc: bool,
) {
    assert!(x.len() >= rows * inn && w.len() >= out * inn && y.len() >= rows * out);
    // SAFETY: the asserts bound every addressed element.
    unsafe {
        gemm_raw(
            rows,
            out,
            inn,
            y.as_mut_ptr(),
            out,
            acc,
            x.as_ptr(),
            inn,
            1,
            w.as_ptr(),
            1,
            inn,
            true,
        )
    }
}

/// `dx[rows, inn] (+)= dy[rows, out] . w[out, inn]`.
pub(super) fn mm_nn(
    dy: &[f32],
    w: &[f32],
    dx: &mut [f32],
    rows: usize,
    out: usize,
    inn: usize,
    acc: bool,
) {
    assert!(dy.len() >= rows * out && w.len() >= out * inn && dx.len() >= rows * inn);
    // SAFETY: the asserts bound every addressed element.
    unsafe {
        gemm_raw(
            rows,
            inn,
            out,
            dx.as_mut_ptr(),
            inn,
            acc,
            dy.as_ptr(),
            out,
            1,
            w.as_ptr(),
            inn,
            1,
            true,
        )
    }
}

/// `dw[out, inn] += dy[rows, out]^T . x[rows, inn]`.
pub(super) fn mm_tn_acc(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    rows: usize,
    out: usize,
    inn: usize,
) {
    assert!(dy.len() >= rows * out && x.len() >= rows * inn && dw.len() >= out * inn);
    // SAFETY: the asserts bound every addressed element.
    unsafe {
        gemm_raw(
            out,
            inn,
            rows,
            dw.as_mut_ptr(),
            inn,
            true,
            dy.as_ptr(),
            1,
            out,
            x.as_ptr(),
            inn,
            1,
            true,
        )
    }
}

/// Adds the column sums of `dy[rows, out]` to `db[out]`.
pub(super) fn colsum_acc(dy: &[f32], db: &mut [f32]) {
    let out = db.len();
    for row in dy.chunks_exact(out) {
        for (b, &g) in db.iter_mut().zip(row) {
            *b += g;
        }
    }
}

/// RMSNorm over rows of `w.len()`: `y = x * r * w`, `r = 1/sqrt(mean(x^2) + eps)`.
pub(crate) fn rms_fwd(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], r: &mut [f32]) {
    let n = w.len();
    y.par_chunks_mut(n * 64)
        .zip(x.par_chunks(n * 64))
        .zip(r.par_chunks_mut(64))
        .for_each(|((yb, xb), rb)| {
            for ((yr, xr), ri) in yb.chunks_exact_mut(n).zip(xb.chunks_exact(n)).zip(rb) {
                let ms = xr.iter().map(|v| v * v).sum::<f32>() / n as f32;
                let inv = 1.0 / (ms + eps).sqrt();
                *ri = inv;
                for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
                    *o = v * inv * g;
                }
            }
        });
}

/// Backward of [`rms_fwd`]: `dx (+)= r * dy * w - x * r^3 * mean(dy * w * x)`
/// and `dw += sum dy * x * r`.
pub(super) fn rms_bwd(
    x: &[f32],
    r: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
    acc: bool,
) {
    let n = w.len();
    for (((xr, &ri), dyr), dxr) in x
        .chunks_exact(n)
        .zip(r)
        .zip(dy.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let mut dot = 0f32;
        for ((&xv, &g), &wv) in xr.iter().zip(dyr).zip(w) {
            dot += g * wv * xv;
        }
        let c = ri * ri * ri * dot / n as f32;
        for (j, dxv) in dxr.iter_mut().enumerate() {
            let v = ri * dyr[j] * w[j] - xr[j] * c;
            if acc {
                *dxv += v;
            } else {
                *dxv = v;
            }
            dw[j] += dyr[j] * xr[j] * ri;
        }
    }
}

/// Half-split RoPE of rows `[tokens, heads * d]` in place; `pos[i]` is
/// token `i`'s position, `cos/sin` rows of `d / 2` per position. With
/// `inverse`, rotates back (the backward pass).
pub(crate) fn rope_inplace(
    x: &mut [f32],
    heads: usize,
    d: usize,
    pos: &[u32],
    cos: &[f32],
    sin: &[f32],
    inverse: bool,
) {
    let half = d / 2;
    let width = heads * d;
    x.par_chunks_mut(width * 32)
        .zip(pos.par_chunks(32))
        .for_each(|(xb, pb)| {
            for (row, &p) in xb.chunks_exact_mut(width).zip(pb) {
                let c = &cos[p as usize * half..(p as usize + 1) * half];
                let s = &sin[p as usize * half..(p as usize + 1) * half];
                for hv in row.chunks_exact_mut(d) {
                    let (a, b) = hv.split_at_mut(half);
                    for (((x1, x2), &ci), &si) in a.iter_mut().zip(b.iter_mut()).zip(c).zip(s) {
                        let (u, v) = (*x1, *x2);
                        if inverse {
                            *x1 = u * ci + v * si;
                            *x2 = v * ci - u * si;
                        } else {
                            *x1 = u * ci - v * si;
                            *x2 = v * ci + u * si;
                        }
                    }
                }
            }
        });
}

/// `y[rows, out] = x . wt + b` with the weight stored transposed,
/// `wt[inn, out]` (row-major): the layout the GEMM reads without packing,
/// 1.6-3.4x faster than [`linear_fwd`] at the few rows of a decode step
/// (the inference decoder keeps its weights this way). The product is
/// [`mm_nn`]'s.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_fwd_t(
    x: &[f32],
    wt: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    rows: usize,
    inn: usize,
    out: usize,
) {
    mm_nn(x, wt, y, rows, inn, out, false);
    add_bias(y, b, out);
}

/// Adds the bias `b` (if any) to every row of `out` values of `y`.
fn add_bias(y: &mut [f32], b: Option<&[f32]>, out: usize) {
    if let Some(b) = b {
        for row in y.chunks_exact_mut(out) {
            for (v, &bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub(crate) fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for (r, row) in w.chunks_exact(cols).enumerate().take(rows) {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

/// `y[rows, out] = x . w^T + b`.
pub(crate) fn linear_fwd(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    y: &mut [f32],
    rows: usize,
    inn: usize,
    out: usize,
) {
    mm_nt(x, w, y, rows, inn, out, false);
    add_bias(y, b, out);
}
