//! Position selections of SPEC section 7: `TopQ`, `BottomQ` and the median.

use crate::count::ceil_q;

/// `TopQ(x, q)`: the offsets (indices into `x`) of the `ceil_q(q, n)` largest
/// values, ties broken toward the smaller offset. Returned ascending.
pub fn top_q(x: &[f64], q: f64) -> Vec<usize> {
    select(x, q, true)
}

/// `BottomQ(x, q)`: the offsets of the `ceil_q(q, n)` smallest values, ties
/// broken toward the smaller offset. Returned ascending.
pub fn bottom_q(x: &[f64], q: f64) -> Vec<usize> {
    select(x, q, false)
}

fn select(x: &[f64], q: f64, largest: bool) -> Vec<usize> {
    let k = ceil_q(q, x.len());
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| {
        let ord = if largest {
            x[b].total_cmp(&x[a])
        } else {
            x[a].total_cmp(&x[b])
        };
        ord.then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_unstable();
    idx
}

/// The median of `x` (the mean of the two middle values for an even count);
/// 0 for an empty slice.
pub fn median(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    let mut v = x.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// A membership mask of length `n` from a list of offsets.
pub(crate) fn mask(n: usize, offsets: &[usize]) -> Vec<bool> {
    let mut m = vec![false; n];
    for &o in offsets {
        m[o] = true;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_and_bottom_break_ties_toward_smaller_position() {
        // n = 5, q = 0.4 -> ceil(2.0 - 1e-9) = 2 positions.
        let x = [1.0, 3.0, 3.0, 3.0, 0.0];
        // Three 3.0s tie; the two smallest offsets win.
        assert_eq!(top_q(&x, 0.4), vec![1, 2]);
        let y = [2.0, 0.0, 5.0, 0.0, 0.0];
        // Three 0.0s tie for smallest; offsets 1 and 3 win.
        assert_eq!(bottom_q(&y, 0.4), vec![1, 3]);
    }

    #[test]
    fn median_of_even_count_is_mean_of_middles() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[]), 0.0);
    }
}
