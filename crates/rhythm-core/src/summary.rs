//! Per-head summaries filled row by row: the streamed form of a head.
//!
//! Every metric of SPEC sections 3, 4 and 6 is linear in a head's attention
//! map, so a head can be reduced to `O(N)` numbers while its rows stream past:
//!
//! * the span numerator `sum_{t in R} sum_{s <= t} A[t,s] (t - s)`;
//! * the head's own WAAD row values `sum_s A[t,s] min(t - s, W)` for `t in R`;
//! * FAI column sums `sum_{t in T(s)} A[t,s]` for `s in R`;
//! * vertical-score column sums `sum_{t in R, t >= s + p} A[t,s]` for `s in R`.
//!
//! A group's WAAD or FAI is then the mean of its heads' values, equal (to float
//! rounding) to the metric of the group's mean map.

use crate::error::CoreError;

/// What a summary needs to know before rows arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SummaryConfig {
    /// `P`: the first response position.
    pub response_start: usize,
    /// `N`: the sequence length (prompt + response).
    pub seq_len: usize,
    /// WAAD window `W`.
    pub window: usize,
    /// FAI horizon `(h_lo, h_hi)`; `h_hi` is clipped to `N - 1` (pass
    /// `usize::MAX` for "to the end").
    pub horizon: (usize, usize),
    /// Receiver-head proximity `p`.
    pub proximity: usize,
}

impl SummaryConfig {
    /// Checks that the response is non-empty and inside the sequence.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.response_start >= self.seq_len {
            return Err(CoreError::EmptyResponse {
                response_start: self.response_start,
                seq_len: self.seq_len,
            });
        }
        if self.horizon.0 > self.horizon.1 {
            return Err(CoreError::Param(format!(
                "horizon {}:{} has lo > hi",
                self.horizon.0, self.horizon.1
            )));
        }
        Ok(())
    }

    /// `n = N - P`, the number of response positions.
    pub fn n(&self) -> usize {
        self.seq_len.saturating_sub(self.response_start)
    }

    /// `|T(s)|` for a response position `s`: the rows FAI averages over.
    pub fn fai_count(&self, s: usize) -> usize {
        let (lo, hi) = self.horizon;
        let first = s.saturating_add(lo);
        let last = s.saturating_add(hi).min(self.seq_len - 1);
        if first > last {
            0
        } else {
            last - first + 1
        }
    }

    /// The number of rows `t in R` with `t >= s + p`: the rows a vertical score
    /// averages over.
    pub fn vertical_count(&self, s: usize) -> usize {
        let first = s.saturating_add(self.proximity);
        self.seq_len.saturating_sub(first)
    }
}

/// The streamed summary of one head (see the module docs).
#[derive(Clone, Debug)]
pub struct HeadSummary {
    /// Layer index in the model.
    pub layer: usize,
    /// Head index within the layer.
    pub head: usize,
    cfg: SummaryConfig,
    span_num: f64,
    waad: Vec<f64>,
    fai_sum: Vec<f64>,
    vert_sum: Vec<f64>,
    rows: usize,
    bins: Option<Bins>,
}

/// A downsampled copy of a head's response rows, for heatmaps.
#[derive(Clone, Debug)]
struct Bins {
    rows: usize,
    cols: usize,
    sum: Vec<f64>,
}

impl HeadSummary {
    /// An empty summary for head `(layer, head)`.
    pub fn new(layer: usize, head: usize, cfg: &SummaryConfig) -> Self {
        let n = cfg.n();
        HeadSummary {
            layer,
            head,
            cfg: *cfg,
            span_num: 0.0,
            waad: vec![0.0; n],
            fai_sum: vec![0.0; n],
            vert_sum: vec![0.0; n],
            rows: 0,
            bins: None,
        }
    }

    /// A complete summary from its parts, as a probe outside this crate
    /// (e.g. a PyTorch hook) computes them: the span numerator and, for each
    /// response position (offset `t - P`), the head's WAAD row value, FAI
    /// column sum and vertical-score column sum (the module docs define all
    /// four). The summary counts as having seen every response row.
    ///
    /// Errors (one line, naming the head and the field) when `cfg` leaves no
    /// response, when a vector does not hold exactly `n = N - P` values, or
    /// when a value is NaN or infinite.
    pub fn from_parts(
        layer: usize,
        head: usize,
        cfg: &SummaryConfig,
        span_num: f64,
        waad: Vec<f64>,
        fai_sum: Vec<f64>,
        vert_sum: Vec<f64>,
    ) -> Result<Self, CoreError> {
        cfg.validate()?;
        let n = cfg.n();
        let bad = |what: String| {
            CoreError::Param(format!("summary of layer {layer} head {head}: {what}"))
        };
        if !span_num.is_finite() {
            return Err(bad(format!(
                "span_num is {span_num}, expected a finite number"
            )));
        }
        for (name, v) in [
            ("waad", &waad),
            ("fai_sum", &fai_sum),
            ("vert_sum", &vert_sum),
        ] {
            if v.len() != n {
                return Err(bad(format!(
                    "{name} has {} values, expected {n} (one per response token, N - P = {} - {})",
                    v.len(),
                    cfg.seq_len,
                    cfg.response_start
                )));
            }
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                return Err(bad(format!("{name}[{i}] is {x}, expected a finite number")));
            }
        }
        Ok(HeadSummary {
            layer,
            head,
            cfg: *cfg,
            span_num,
            waad,
            fai_sum,
            vert_sum,
            rows: n,
            bins: None,
        })
    }

    /// Also keeps a downsampled map for heatmaps: the response rows `P..N`
    /// fall into `rows` equal bins, the columns `0..N` into `cols` equal
    /// bins (both capped at their extent), and each cell sums the attention
    /// of its rows and columns divided by the rows in its row bin (so a cell
    /// is the mean row's mass in that column bin). Costs one more pass over
    /// each row; call before feeding rows.
    pub fn with_bins(mut self, rows: usize, cols: usize) -> Self {
        let rows = rows.clamp(1, self.cfg.n().max(1));
        let cols = cols.clamp(1, self.cfg.seq_len.max(1));
        self.bins = Some(Bins {
            rows,
            cols,
            sum: vec![0.0; rows * cols],
        });
        self
    }

    /// The downsampled map (`rows x cols`, row-major) if [`Self::with_bins`]
    /// was called: cell `(i, j)` is the mean, over the response rows of bin
    /// `i`, of the mass in column bin `j`. Row bin `i` holds response offsets
    /// `i*n/rows .. (i+1)*n/rows`, column bin `j` positions `j*N/cols ..`.
    pub fn binned(&self) -> Option<(usize, usize, Vec<f64>)> {
        let b = self.bins.as_ref()?;
        let n = self.cfg.n();
        let mut out = b.sum.clone();
        for i in 0..b.rows {
            let count = (i + 1) * n / b.rows - i * n / b.rows;
            if count > 0 {
                out[i * b.cols..(i + 1) * b.cols]
                    .iter_mut()
                    .for_each(|x| *x /= count as f64);
            }
        }
        Some((b.rows, b.cols, out))
    }

    /// Feeds attention row `t`: the probabilities for columns `0..=t` (entries
    /// past `t` are ignored). Rows before the response are ignored; each
    /// response row must be fed exactly once, in any order.
    ///
    /// # Panics
    /// If `t >= N` or `row.len() <= t` (a caller bug, not bad user input).
    pub fn push_row(&mut self, t: usize, row: &[f32]) {
        let p0 = self.cfg.response_start;
        assert!(t < self.cfg.seq_len, "row {t} outside sequence");
        if t < p0 {
            return;
        }
        let row = &row[..=t];
        // 1. Span numerator and this head's WAAD. Columns at distance >= W
        //    (s < far) all weigh W in WAAD, so they need only their mass
        //    and first moment.
        let w = self.cfg.window;
        let far = (t + 1).saturating_sub(w);
        let (far_mass, far_moment) = mass_and_moment(&row[..far]);
        let mut span = t as f64 * far_mass - far_moment;
        let mut waad = w as f64 * far_mass;
        for (s, &a) in row.iter().enumerate().skip(far) {
            let d = (t - s) as f64;
            span += a as f64 * d;
            waad += a as f64 * d;
        }
        self.span_num += span;
        self.waad[t - p0] = waad;
        // 2. FAI column sums: s in R with s + h_lo <= t <= s + h_hi.
        let (lo, hi) = self.cfg.horizon;
        if t >= lo {
            let s_max = t - lo;
            let s_min = t.saturating_sub(hi).max(p0);
            // An empty range (s_min > s_max) touches nothing.
            if s_min <= s_max {
                let dst = &mut self.fai_sum[s_min - p0..=s_max - p0];
                for (acc, &a) in dst.iter_mut().zip(&row[s_min..=s_max]) {
                    *acc += a as f64;
                }
            }
        }
        // 3. Vertical-score column sums: s in R with t >= s + p.
        let p = self.cfg.proximity;
        if p.checked_add(p0).is_some_and(|first| t >= first) {
            let dst = &mut self.vert_sum[..=t - p - p0];
            for (acc, &a) in dst.iter_mut().zip(&row[p0..=t - p]) {
                *acc += a as f64;
            }
        }
        // 4. The downsampled map, when asked for.
        if let Some(b) = self.bins.as_mut() {
            let (n, big_n) = (self.cfg.n(), self.cfg.seq_len);
            // Row bin of offset o: the i with i*n/rows <= o < (i+1)*n/rows.
            let o = t - p0;
            let mut i = (o * b.rows / n).min(b.rows - 1);
            while i > 0 && i * n / b.rows > o {
                i -= 1;
            }
            while i + 1 < b.rows && (i + 1) * n / b.rows <= o {
                i += 1;
            }
            let dst = &mut b.sum[i * b.cols..(i + 1) * b.cols];
            let cols = b.cols;
            for (j, cell) in dst.iter_mut().enumerate() {
                let (lo, hi) = (j * big_n / cols, ((j + 1) * big_n / cols).min(t + 1));
                if lo < hi {
                    *cell += row[lo..hi].iter().map(|&a| a as f64).sum::<f64>();
                }
            }
        }
        self.rows += 1;
    }

    /// The configuration this summary was built with.
    pub fn config(&self) -> &SummaryConfig {
        &self.cfg
    }

    /// How many response rows were fed.
    pub fn rows_seen(&self) -> usize {
        self.rows
    }

    /// `sum_{t in R} sum_s A[t,s] (t - s)`, the numerator of the head's span.
    pub fn span_numerator(&self) -> f64 {
        self.span_num
    }

    /// The span `d` of SPEC section 3: the numerator divided by `n`.
    pub fn span(&self) -> f64 {
        self.span_num / self.cfg.n() as f64
    }

    /// This head's WAAD at each response position (offset `t - P`).
    pub fn waad(&self) -> &[f64] {
        &self.waad
    }

    /// This head's FAI column sums `sum_{t in T(s)} A[t,s]` at each response
    /// position (offset `s - P`), before dividing by `|T(s)|`.
    pub fn fai_sum(&self) -> &[f64] {
        &self.fai_sum
    }

    /// This head's vertical-score column sums `sum_{t in R, t >= s + p} A[t,s]`
    /// at each response position (offset `s - P`), before dividing by the
    /// row count.
    pub fn vert_sum(&self) -> &[f64] {
        &self.vert_sum
    }

    /// This head's FAI at each response position: column sum over `|T(s)|`,
    /// or 0 when `T(s)` is empty.
    pub fn fai(&self) -> Vec<f64> {
        let p0 = self.cfg.response_start;
        self.fai_sum
            .iter()
            .enumerate()
            .map(|(i, &sum)| match self.cfg.fai_count(p0 + i) {
                0 => 0.0,
                c => sum / c as f64,
            })
            .collect()
    }

    /// The vertical scores `v[s]` of SPEC section 6 for the positions that
    /// have at least one row; positions without rows are left out.
    pub fn vertical_scores(&self) -> Vec<f64> {
        let p0 = self.cfg.response_start;
        self.vert_sum
            .iter()
            .enumerate()
            .filter_map(|(i, &sum)| match self.cfg.vertical_count(p0 + i) {
                0 => None,
                c => Some(sum / c as f64),
            })
            .collect()
    }

    /// The head's receiver score: the population excess kurtosis
    /// `m4 / m2^2 - 3` of its vertical scores. A head whose scores are all
    /// equal (or that has none) scores negative infinity, ranking last.
    pub fn kurtosis(&self) -> f64 {
        kurtosis(&self.vertical_scores())
    }
}

/// `(sum_s a[s], sum_s a[s] * s)` in f64, with eight independent lanes so
/// the reductions vectorise.
fn mass_and_moment(row: &[f32]) -> (f64, f64) {
    let mut mass = [0.0f64; 8];
    let mut moment = [0.0f64; 8];
    for (c, chunk) in row.chunks(8).enumerate() {
        let base = (c * 8) as f64;
        for (j, &a) in chunk.iter().enumerate() {
            let a = a as f64;
            mass[j] += a;
            moment[j] += a * (base + j as f64);
        }
    }
    (mass.iter().sum(), moment.iter().sum())
}

/// Population excess kurtosis (Fisher) `m4 / m2^2 - 3`; negative infinity when
/// the values have no spread.
pub fn kurtosis(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NEG_INFINITY;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let (mut m2, mut m4) = (0.0, 0.0);
    for &x in v {
        let d = x - mean;
        let d2 = d * d;
        m2 += d2;
        m4 += d2 * d2;
    }
    m2 /= n;
    m4 /= n;
    if m2 <= 0.0 {
        f64::NEG_INFINITY
    } else {
        m4 / (m2 * m2) - 3.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::HeadMap;
    use crate::params::Params;
    use crate::rhythm::Rhythm;

    /// A causal `N x N` map whose row `t` puts weight `(s + h + 1)` on each
    /// `s <= t`, normalised, so heads differ.
    fn map(n: usize, h: usize) -> Vec<f32> {
        let mut m = vec![0.0f32; n * n];
        for t in 0..n {
            let z: f32 = (0..=t).map(|s| ((s * (h + 1)) % 7 + 1) as f32).sum();
            for s in 0..=t {
                m[t * n + s] = ((s * (h + 1)) % 7 + 1) as f32 / z;
            }
        }
        m
    }

    fn parts(s: &HeadSummary) -> HeadSummary {
        HeadSummary::from_parts(
            s.layer,
            s.head,
            s.config(),
            s.span_numerator(),
            s.waad().to_vec(),
            s.fai_sum().to_vec(),
            s.vert_sum().to_vec(),
        )
        .unwrap()
    }

    #[test]
    fn from_parts_of_pushed_summaries_gives_the_same_rhythm() {
        let (n, p) = (24, 5);
        let params = Params::rl();
        let cfg = params.summary_config(p, n);
        let maps: Vec<Vec<f32>> = (0..6).map(|h| map(n, h)).collect();
        let pushed: Vec<HeadSummary> = maps
            .iter()
            .enumerate()
            .map(|(h, d)| {
                HeadMap {
                    layer: h / 3,
                    head: h % 3,
                    seq_len: n,
                    data: d,
                }
                .summarize(&cfg)
            })
            .collect();
        let rebuilt: Vec<HeadSummary> = pushed.iter().map(parts).collect();
        for (a, b) in pushed.iter().zip(&rebuilt) {
            assert_eq!(a.fai(), b.fai());
            assert_eq!(a.vertical_scores(), b.vertical_scores());
            assert_eq!(a.rows_seen(), b.rows_seen());
        }
        let ra = Rhythm::from_summaries(&pushed, &params, None).unwrap();
        let rb = Rhythm::from_summaries(&rebuilt, &params, None).unwrap();
        assert_eq!(ra, rb);
        // The sums really are sums: FAI = fai_sum / |T(s)|.
        let s = &pushed[0];
        let i = 3;
        assert_eq!(s.fai()[i], s.fai_sum()[i] / cfg.fai_count(p + i) as f64);
    }

    #[test]
    fn from_parts_rejects_bad_parts_with_one_line() {
        let cfg = Params::rl().summary_config(2, 6);
        let ok = || vec![0.5; 4];
        let err = |r: Result<HeadSummary, CoreError>| r.unwrap_err().to_string();
        let e = err(HeadSummary::from_parts(
            1,
            2,
            &cfg,
            1.0,
            vec![0.5; 3],
            ok(),
            ok(),
        ));
        assert_eq!(
            e,
            "summary of layer 1 head 2: waad has 3 values, expected 4 (one per response token, N - P = 6 - 2)"
        );
        let mut v = ok();
        v[2] = f64::NAN;
        let e = err(HeadSummary::from_parts(0, 0, &cfg, 1.0, ok(), ok(), v));
        assert_eq!(
            e,
            "summary of layer 0 head 0: vert_sum[2] is NaN, expected a finite number"
        );
        let e = err(HeadSummary::from_parts(
            0,
            0,
            &cfg,
            f64::INFINITY,
            ok(),
            ok(),
            ok(),
        ));
        assert!(e.contains("span_num is inf"), "{e}");
        let empty = Params::rl().summary_config(6, 6);
        let e = err(HeadSummary::from_parts(
            0,
            0,
            &empty,
            0.0,
            vec![],
            vec![],
            vec![],
        ));
        assert!(e.starts_with("response start 6 leaves no response"), "{e}");
        assert!(!e.contains('\n'));
    }
}
