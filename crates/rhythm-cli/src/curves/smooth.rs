//! The numbers of `rhythm curves`: mean and sample standard deviation, the
//! two smoothings of the figures, and the mean of several runs' curves.

use std::collections::BTreeMap;

use super::Curve;

/// Mean and sample standard deviation (`n - 1`; `None` when `n < 2`).
pub fn mean_std(xs: &[f64]) -> (f64, Option<f64>) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, None);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, None);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, Some(var.sqrt()))
}

/// Exponential moving average: `s_0 = x_0`, `s_t = f * x_t + (1 - f) * s_{t-1}`.
pub fn ema(x: &[f64], factor: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for (t, &v) in x.iter().enumerate() {
        let s = if t == 0 {
            v
        } else {
            factor * v + (1.0 - factor) * out[t - 1]
        };
        out.push(s);
    }
    out
}

/// The smoothing of the paper's appendix A.2, an EMA that only rises with
/// a new high: `s_0 = x_0`, `s_t = f * max(x_t, s_{t-1}) + (1 - f) * s_{t-1}`.
pub fn paper_ema(x: &[f64], factor: f64) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(x.len());
    for &v in x {
        let s = match out.last() {
            None => v,
            Some(&prev) => factor * v.max(prev) + (1.0 - factor) * prev,
        };
        out.push(s);
    }
    out
}

/// Mean of the curves at the steps that all of them have.
pub fn mean_curve(curves: &[Curve]) -> Curve {
    let mut acc: BTreeMap<u64, (usize, f64)> = BTreeMap::new();
    for c in curves {
        for &(s, v) in c {
            let e = acc.entry(s).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += v;
        }
    }
    acc.into_iter()
        .filter(|(_, (k, _))| *k == curves.len())
        .map(|(s, (k, sum))| (s, sum / k as f64))
        .collect()
}
