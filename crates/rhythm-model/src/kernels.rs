//! Vectorised row kernels of the probe: the scaled causal softmax of one
//! attention row and the entropy / log-probability of one logits row.
//!
//! Both are dominated by `exp`, which the standard library computes one
//! value at a time (glibc's `expf`/`exp`, a few nanoseconds each). Here
//! `exp` is a short polynomial after a Cody-Waite range reduction, written
//! with the vector operations of [`pulp::Simd`] and run under
//! [`pulp::Arch::dispatch`], which picks AVX-512 or AVX2 + FMA when the CPU
//! has them (the runtime dispatch of the `gemm` crate behind candle's
//! matmul) and scalar code otherwise. The relative error of [`exp`] is below `2.5e-7`
//! (about two units in the last place) on the range the probe uses
//! (`x <= 0`), far below the tolerances that matter here: attention
//! matches transformers to `1e-5` absolute.

/// `exp(x)` for `f32`, to about 2 ulp; `0` below `-87.3` (where the true
/// value is subnormal) and the value at `88.3` above it.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let underflow = x < LO;
    let x = x.clamp(LO, HI);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = POLY[1..].iter().fold(POLY[0], |p, &c| p * r + c);
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND_BITS - 127) << 23);
    if underflow {
        0.0
    } else {
        y * scale
    }
}

/// Constants of [`exp`] and [`exp_simd`].
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part with few mantissa bits (so `n * LN2_HI` is exact)
/// and the rest (Cody-Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer, and
/// the sum's low mantissa bits hold that integer.
const ROUND: f32 = 12_582_912.0;
const ROUND_BITS: u32 = 0x4B40_0000;
const LO: f32 = -87.3;
const HI: f32 = 88.3;
/// Minimax polynomial of `(exp(r) - 1 - r) / r^2` on `[-ln2/2, ln2/2]`
/// (Cephes' `expf` coefficients), highest degree first.
const POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// [`exp`] on a vector of lanes (fused multiply-adds where the CPU has them).
#[inline(always)]
fn exp_simd<S: pulp::Simd>(simd: S, x: S::f32s) -> S::f32s {
    let underflow = simd.less_than_f32s(x, simd.splat_f32s(LO));
    let x = simd.min_f32s(simd.max_f32s(x, simd.splat_f32s(LO)), simd.splat_f32s(HI));
    let shifted = simd.mul_add_e_f32s(x, simd.splat_f32s(LOG2E), simd.splat_f32s(ROUND));
    let n = simd.sub_f32s(shifted, simd.splat_f32s(ROUND));
    let r = simd.sub_f32s(x, simd.mul_f32s(n, simd.splat_f32s(LN2_HI)));
    let r = simd.sub_f32s(r, simd.mul_f32s(n, simd.splat_f32s(LN2_LO)));
    let mut p = simd.splat_f32s(POLY[0]);
    for &c in &POLY[1..] {
        p = simd.mul_add_e_f32s(p, r, simd.splat_f32s(c));
    }
    let y = simd.add_f32s(
        simd.mul_add_e_f32s(simd.mul_f32s(p, r), r, r),
        simd.splat_f32s(1.0),
    );
    let bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(shifted),
        simd.splat_u32s(ROUND_BITS - 127),
    );
    let scale = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(bits, simd.splat_u32s(23)));
    simd.select_f32s(underflow, simd.splat_f32s(0.0), simd.mul_f32s(y, scale))
}

/// `max` of a slice (`-inf` when empty).
#[inline(always)]
fn max_of<S: pulp::Simd>(simd: S, s: &[f32]) -> f32 {
    let (head, tail) = S::as_simd_f32s(s);
    let mut acc = simd.splat_f32s(f32::NEG_INFINITY);
    for &v in head {
        acc = simd.max_f32s(acc, v);
    }
    tail.iter()
        .fold(simd.reduce_max_f32s(acc), |m, &x| m.max(x))
}

/// `out[j] = softmax(scale * s)[j]` for one row (`out.len() == s.len()`).
pub fn softmax_scaled(s: &[f32], out: &mut [f32], scale: f32) {
    assert_eq!(s.len(), out.len(), "softmax_scaled: row lengths differ");
    pulp::Arch::new().dispatch(Softmax { s, out, scale })
}

/// [`softmax_scaled`] inside an operation already dispatched with `simd`.
#[inline(always)]
pub(crate) fn softmax_scaled_with<S: pulp::Simd>(simd: S, s: &[f32], out: &mut [f32], scale: f32) {
    Softmax { s, out, scale }.with_simd(simd)
}

/// `act[i] = silu(gate[i]) * up[i]` with the vector [`exp`] (the MLP's
/// activation; `silu(g) = g / (1 + exp(-g))`).
pub(crate) fn silu_mul(act: &mut [f32], gate: &[f32], up: &[f32]) {
    assert!(
        act.len() == gate.len() && gate.len() == up.len(),
        "silu_mul: lengths differ"
    );
    pulp::Arch::new().dispatch(SiluMul { act, gate, up })
}

/// [`silu_mul`] as a [`pulp::WithSimd`] operation.
struct SiluMul<'a> {
    act: &'a mut [f32],
    gate: &'a [f32],
    up: &'a [f32],
}

impl pulp::WithSimd for SiluMul<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let (os, otail) = S::as_mut_simd_f32s(self.act);
        let (gs, gtail) = S::as_simd_f32s(self.gate);
        let (us, utail) = S::as_simd_f32s(self.up);
        let one = simd.splat_f32s(1.0);
        let zero = simd.splat_f32s(0.0);
        for ((o, &g), &u) in os.iter_mut().zip(gs).zip(us) {
            let e = exp_simd(simd, simd.sub_f32s(zero, g));
            *o = simd.mul_f32s(simd.div_f32s(g, simd.add_f32s(one, e)), u);
        }
        for ((o, &g), &u) in otail.iter_mut().zip(gtail).zip(utail) {
            *o = g / (1.0 + exp(-g)) * u;
        }
    }
}

/// Backward of [`silu_mul`] in place: from `dact`, `gate` becomes
/// `dgate = dact * up * s * (1 + g * (1 - s))` and `up` becomes
/// `dup = dact * silu(g)`, with `s = sigmoid(g)`.
pub(crate) fn silu_mul_bwd(gate: &mut [f32], up: &mut [f32], dact: &[f32]) {
    assert!(
        gate.len() == up.len() && up.len() == dact.len(),
        "silu_mul_bwd: lengths differ"
    );
    pulp::Arch::new().dispatch(SiluMulBwd { gate, up, dact })
}

/// [`silu_mul_bwd`] as a [`pulp::WithSimd`] operation.
struct SiluMulBwd<'a> {
    gate: &'a mut [f32],
    up: &'a mut [f32],
    dact: &'a [f32],
}

impl pulp::WithSimd for SiluMulBwd<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let (gs, gtail) = S::as_mut_simd_f32s(self.gate);
        let (us, utail) = S::as_mut_simd_f32s(self.up);
        let (ds, dtail) = S::as_simd_f32s(self.dact);
        let one = simd.splat_f32s(1.0);
        let zero = simd.splat_f32s(0.0);
        for ((g, u), &d) in gs.iter_mut().zip(us.iter_mut()).zip(ds) {
            let sg = simd.div_f32s(
                one,
                simd.add_f32s(one, exp_simd(simd, simd.sub_f32s(zero, *g))),
            );
            let si = simd.mul_f32s(*g, sg);
            let inner = simd.add_f32s(one, simd.mul_f32s(*g, simd.sub_f32s(one, sg)));
            let dg = simd.mul_f32s(simd.mul_f32s(simd.mul_f32s(d, *u), sg), inner);
            *u = simd.mul_f32s(d, si);
            *g = dg;
        }
        for ((g, u), &d) in gtail.iter_mut().zip(utail.iter_mut()).zip(dtail) {
            let sg = 1.0 / (1.0 + exp(-*g));
            let si = *g * sg;
            let dg = d * *u * sg * (1.0 + *g * (1.0 - sg));
            *u = d * si;
            *g = dg;
        }
    }
}

/// [`softmax_scaled`] as a [`pulp::WithSimd`] operation: `pulp` calls it
/// from a function compiled with the CPU's vector features, and everything
/// below is `#[inline(always)]` so that it is compiled with them too.
struct Softmax<'a> {
    s: &'a [f32],
    out: &'a mut [f32],
    scale: f32,
}

use pulp::WithSimd as _;

impl pulp::WithSimd for Softmax<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Softmax { s, out, scale } = self;
        if s.is_empty() {
            return;
        }
        let m = max_of(simd, s) * scale;
        let (xs, xtail) = S::as_simd_f32s(s);
        let (os, otail) = S::as_mut_simd_f32s(out);
        let (vscale, vneg_m) = (simd.splat_f32s(scale), simd.splat_f32s(-m));
        let mut acc = simd.splat_f32s(0.0);
        for (o, &x) in os.iter_mut().zip(xs) {
            let e = exp_simd(simd, simd.mul_add_e_f32s(x, vscale, vneg_m));
            *o = e;
            acc = simd.add_f32s(acc, e);
        }
        let mut sum = simd.reduce_sum_f32s(acc);
        for (o, &x) in otail.iter_mut().zip(xtail) {
            *o = exp(x * scale - m);
            sum += *o;
        }
        let inv = 1.0 / sum;
        let vinv = simd.splat_f32s(inv);
        for o in os.iter_mut() {
            *o = simd.mul_f32s(*o, vinv);
        }
        for o in otail.iter_mut() {
            *o *= inv;
        }
    }
}

/// Entropy (nats) of `softmax(logits)` and `ln softmax(logits)[target]`,
/// as [`rhythm_core::entropy_and_logprob`] computes them, with `f32`
/// exponentials summed in `f32` over blocks of 512 and in `f64` across
/// blocks (relative agreement with the `f64` reference about `1e-6`).
pub fn entropy_and_logprob(logits: &[f32], target: usize) -> (f64, f64) {
    assert!(
        target < logits.len(),
        "entropy_and_logprob: target {target} outside a row of {}",
        logits.len()
    );
    pulp::Arch::new().dispatch(Entropy { logits, target })
}

/// [`entropy_and_logprob`] as a [`pulp::WithSimd`] operation.
struct Entropy<'a> {
    logits: &'a [f32],
    target: usize,
}

impl pulp::WithSimd for Entropy<'_> {
    type Output = (f64, f64);

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) -> (f64, f64) {
        const BLOCK: usize = 512;
        let Entropy { logits, target } = self;
        let m = max_of(simd, logits);
        let (xs, tail) = S::as_simd_f32s(logits);
        let per_block = (BLOCK * 4 / std::mem::size_of::<S::f32s>()).max(1);
        let vneg_m = simd.splat_f32s(-m);
        let (mut z, mut zx) = (0f64, 0f64);
        for block in xs.chunks(per_block) {
            let mut ez = simd.splat_f32s(0.0);
            let mut ezx = simd.splat_f32s(0.0);
            for &x in block {
                let d = simd.add_f32s(x, vneg_m);
                let e = exp_simd(simd, d);
                ez = simd.add_f32s(ez, e);
                ezx = simd.mul_add_e_f32s(e, d, ezx);
            }
            z += simd.reduce_sum_f32s(ez) as f64;
            zx += simd.reduce_sum_f32s(ezx) as f64;
        }
        for &x in tail {
            let d = x - m;
            let e = exp(d);
            z += e as f64;
            zx += (e * d) as f64;
        }
        let lse_shifted = z.ln();
        let h = lse_shifted - zx / z;
        (h.max(0.0), logits[target] as f64 - (m as f64 + lse_shifted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_two_ulp_on_the_probe_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 10.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.000_37;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(200.0).is_finite());
    }

    /// Applies [`exp_simd`] to every full vector of `xs` (the tail is left).
    struct ExpAll<'a>(&'a mut [f32]);

    impl pulp::WithSimd for ExpAll<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: pulp::Simd>(self, simd: S) {
            let (head, _) = S::as_mut_simd_f32s(self.0);
            for v in head {
                *v = exp_simd(simd, *v);
            }
        }
    }

    /// Runs `check` with every instruction set this CPU has (scalar, and on
    /// x86-64 AVX2 and AVX-512), not only the one `dispatch` would pick.
    fn on_every_instruction_set(check: impl Fn(&str, &dyn Fn(&mut [f32]))) {
        use pulp::Simd;
        check("scalar", &|xs| {
            Simd::vectorize(pulp::Scalar::new(), ExpAll(xs))
        });
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V3::try_new() {
                check("avx2", &|xs| Simd::vectorize(simd, ExpAll(xs)));
            }
            if let Some(simd) = pulp::x86::V4::try_new() {
                check("avx512", &|xs| Simd::vectorize(simd, ExpAll(xs)));
            }
        }
    }

    #[test]
    fn vector_exp_matches_std_to_two_ulp_on_every_instruction_set() {
        let mut xs: Vec<f32> = (0..262_144).map(|i| -87.0 + i as f32 * 0.000_37).collect();
        xs.extend([
            0.0,
            -87.2,
            -87.4,
            -90.0,
            -100.0,
            f32::NEG_INFINITY,
            50.0,
            88.0,
            200.0,
            -1e-8,
            1e-8,
        ]);
        xs.resize(xs.len().next_multiple_of(64), 0.0);
        on_every_instruction_set(|name, exp_all| {
            let mut got = xs.clone();
            exp_all(&mut got);
            for (&x, &g) in xs.iter().zip(&got) {
                let w = (x as f64).exp();
                if x < -87.3 {
                    assert_eq!(g, 0.0, "{name}: exp({x})");
                } else if x > 88.3 {
                    assert!(g.is_finite() && g > 1e38, "{name}: exp({x}) = {g}");
                } else {
                    let rel = ((g as f64 - w) / w).abs();
                    assert!(
                        rel < 2.5e-7,
                        "{name}: exp({x}) = {g}, want {w} (relative error {rel})"
                    );
                }
            }
        });
    }

    #[test]
    fn softmax_matches_the_plain_formula() {
        for n in [1usize, 3, 8, 9, 31, 300, 4099] {
            let s: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 1.7).collect();
            let mut out = vec![0f32; n];
            softmax_scaled(&s, &mut out, 0.3);
            let m = s.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
            let z: f64 = s.iter().map(|&x| ((x as f64 - m) * 0.3).exp()).sum();
            for (o, &x) in out.iter().zip(&s) {
                let want = ((x as f64 - m) * 0.3).exp() / z;
                assert!((*o as f64 - want).abs() < 1e-7, "n={n}: {o} vs {want}");
            }
        }
    }

    #[test]
    fn entropy_matches_the_f64_reference() {
        for (n, spread) in [(1usize, 1.0f32), (7, 3.0), (1000, 0.01), (151_936, 8.0)] {
            let row: Vec<f32> = (0..n)
                .map(|i| {
                    ((i.wrapping_mul(2_654_435_761) % 10_007) as f32 / 10_007.0 - 0.5) * spread
                })
                .collect();
            let t = n / 2;
            let (h, lp) = entropy_and_logprob(&row, t);
            let (hr, lpr) = rhythm_core::entropy_and_logprob(&row, t);
            assert!(
                (h - hr).abs() <= 2e-6 * hr.abs().max(1.0),
                "n={n}: H {h} vs {hr}"
            );
            assert!(
                (lp - lpr).abs() <= 2e-6 * lpr.abs().max(1.0),
                "n={n}: lp {lp} vs {lpr}"
            );
        }
    }
}
