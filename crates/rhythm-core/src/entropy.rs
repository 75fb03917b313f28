//! Entropy and log-probability from one logits row (SPEC section 5).
//!
//! Rows are reduced one at a time, so a caller never needs an `N x V` matrix.

/// The entropy `-sum_v p(v) ln p(v)` of `softmax(logits)` at temperature 1,
/// and `ln p(target)`. Uses a stable log-sum-exp in `f64`.
///
/// # Panics
/// If `logits` is empty or `target` is out of range (a caller bug).
pub fn entropy_and_logprob(logits: &[f32], target: usize) -> (f64, f64) {
    let (h, lse) = entropy_lse(logits);
    (h, logits[target] as f64 - lse)
}

/// The entropy of `softmax(logits)` (natural log).
pub fn entropy(logits: &[f32]) -> f64 {
    entropy_lse(logits).0
}

/// Entropy and log-sum-exp. `H = lse - sum_v p(v) x(v)`.
fn entropy_lse(logits: &[f32]) -> (f64, f64) {
    assert!(!logits.is_empty(), "empty logits row");
    let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let mut z = 0.0f64;
    let mut zx = 0.0f64;
    for &x in logits {
        let x = x as f64 - m;
        let e = x.exp();
        z += e;
        zx += e * x;
    }
    let lse_shifted = z.ln();
    // H = ln Z - E[x - m]
    let h = lse_shifted - zx / z;
    (h.max(0.0), m + lse_shifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_peaked_rows() {
        // Uniform over 4: H = ln 4, ln p = -ln 4.
        let (h, lp) = entropy_and_logprob(&[0.0, 0.0, 0.0, 0.0], 2);
        assert!((h - 4f64.ln()).abs() < 1e-12);
        assert!((lp + 4f64.ln()).abs() < 1e-12);
        // Logits ln 1, ln 3 -> p = 1/4, 3/4.
        // H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351446188083.
        let (h, lp) = entropy_and_logprob(&[0.0, 3f32.ln()], 1);
        assert!((h - 0.562_335_144_618_808_3).abs() < 1e-7);
        assert!((lp - 0.75f64.ln()).abs() < 1e-7);
    }

    #[test]
    fn huge_logits_are_stable() {
        let (h, lp) = entropy_and_logprob(&[1e30, 0.0, -1e30], 0);
        assert!(h.abs() < 1e-12 && lp.abs() < 1e-12);
    }
}
