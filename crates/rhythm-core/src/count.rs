//! Counting rules of SPEC section 1 and the layer sampling of section 2.

/// `ceil_q(q, m) = min(m, max(1, ceil(q*m - 1e-9)))`: how many of `m` items a
/// fraction `q` selects. With `m = 0` the count is 0.
///
/// The `1e-9` guards float error, so `ceil_q(0.3, 80)` is 24, not 25.
pub fn ceil_q(q: f64, m: usize) -> usize {
    if m == 0 {
        return 0;
    }
    let c = (q * m as f64 - 1e-9).ceil();
    let c = if c.is_nan() || c < 1.0 { 1.0 } else { c };
    (c.min(m as f64)) as usize
}

/// The layers SPEC section 2 samples from a model with `num_layers` layers:
/// `lo = floor(L/3)`, `hi = floor(2L/3)`, then `lo + round_half_up(i*(hi-lo)/4)`
/// for `i = 0..4`, de-duplicated and ascending.
///
/// ```
/// assert_eq!(rhythm_core::sample_layers(36), vec![12, 15, 18, 21, 24]);
/// ```
pub fn sample_layers(num_layers: usize) -> Vec<usize> {
    let lo = num_layers / 3;
    let hi = 2 * num_layers / 3;
    let mut out: Vec<usize> = (0..=4)
        // round_half_up(i*(hi-lo)/4) = floor((2*i*(hi-lo) + 4) / 8), exact in integers.
        .map(|i| lo + (2 * i * (hi - lo) + 4) / 8)
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_q_follows_spec() {
        // 0.3 * 80 = 24.000000000000004 in floats; minus 1e-9 then ceil = 24.
        assert_eq!(ceil_q(0.3, 80), 24);
        // 0.4 * 7 = 2.8 -> 3.
        assert_eq!(ceil_q(0.4, 7), 3);
        // 0.1 * 3 = 0.3 -> ceil 1.
        assert_eq!(ceil_q(0.1, 3), 1);
        // Never more than m, never less than 1 (m > 0), 0 for m = 0.
        assert_eq!(ceil_q(2.0, 5), 5);
        assert_eq!(ceil_q(0.0, 5), 1);
        assert_eq!(ceil_q(0.5, 0), 0);
        // 0.2 * 10 = 2 exactly.
        assert_eq!(ceil_q(0.2, 10), 2);
    }

    #[test]
    fn sampled_layers_match_spec() {
        // L = 36: lo = 12, hi = 24, steps 12*i/4 = 0, 3, 6, 9, 12.
        assert_eq!(sample_layers(36), vec![12, 15, 18, 21, 24]);
        // L = 28 (Qwen3-0.6B): lo = 9, hi = 18, 9*i/4 = 0, 2.25, 4.5, 6.75, 9
        // -> round half up 0, 2, 5, 7, 9.
        assert_eq!(sample_layers(28), vec![9, 11, 14, 16, 18]);
        // L = 3: lo = 1, hi = 2: 1 + round(i/4) = 1, 1, 2, 2, 2 -> {1, 2}.
        assert_eq!(sample_layers(3), vec![1, 2]);
        // L = 1: lo = hi = 0.
        assert_eq!(sample_layers(1), vec![0]);
    }
}
