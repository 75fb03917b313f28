//! Coupling statistics of SPEC section 10 (the paper's table 2), and peaks.

use serde::{Deserialize, Serialize};

use crate::select::{mask, top_q};

/// The share of a series that counts as its peaks.
pub const PEAK_Q: f64 = 0.2;

/// Peaks of a series: `TopQ(x, 0.2)`, offsets ascending.
pub fn peaks(x: &[f64]) -> Vec<usize> {
    top_q(x, PEAK_Q)
}

/// One row of the coupling table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CouplingStat {
    /// What is measured.
    pub name: String,
    /// The observed value.
    pub observed: f64,
    /// The value a random position would give.
    pub random: f64,
    /// `(observed - random) / random`.
    pub lift: f64,
}

/// Micro-averaged coupling statistics: counts are summed over all sequences
/// before dividing.
#[derive(Clone, Debug, Default)]
pub struct CouplingStats {
    sequences: usize,
    positions: usize,
    entropy_sum_all: f64,
    entropy_sum_waad_peaks: f64,
    waad_peaks: usize,
    recv_peaks: usize,
    recv_peaks_in_global: usize,
    global_peaks: usize,
    fai_peaks_after_waad: usize,
    positions_after_waad: usize,
}

impl CouplingStats {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sequence: WAAD, global FAI, receiver FAI and entropy at
    /// each response offset (all of one length).
    ///
    /// # Panics
    /// If the slices differ in length (a caller bug).
    pub fn add(&mut self, waad: &[f64], fai: &[f64], receiver_fai: &[f64], entropy: &[f64]) {
        let n = waad.len();
        assert!(fai.len() == n && receiver_fai.len() == n && entropy.len() == n);
        let wp = peaks(waad);
        let gp = peaks(fai);
        let rp = peaks(receiver_fai);
        let wmask = mask(n, &wp);
        let gmask = mask(n, &gp);
        // A WAAD peak at t or t-1.
        let near_waad = |t: usize| wmask[t] || (t > 0 && wmask[t - 1]);
        self.sequences += 1;
        self.positions += n;
        self.entropy_sum_all += entropy.iter().sum::<f64>();
        self.entropy_sum_waad_peaks += wp.iter().map(|&t| entropy[t]).sum::<f64>();
        self.waad_peaks += wp.len();
        self.recv_peaks += rp.len();
        self.recv_peaks_in_global += rp.iter().filter(|&&t| gmask[t]).count();
        self.global_peaks += gp.len();
        self.fai_peaks_after_waad += gp.iter().filter(|&&t| near_waad(t)).count();
        self.positions_after_waad += (0..n).filter(|&t| near_waad(t)).count();
    }

    /// How many sequences were added.
    pub fn sequences(&self) -> usize {
        self.sequences
    }

    /// The three rows of the table: entropy at WAAD peaks, receiver/global
    /// FAI co-occurrence, FAI peak follows/coincides with a WAAD peak.
    pub fn table(&self) -> Vec<CouplingStat> {
        let div = |a: f64, b: usize| if b == 0 { f64::NAN } else { a / b as f64 };
        let row = |name: &str, observed: f64, random: f64| CouplingStat {
            name: name.to_string(),
            observed,
            random,
            lift: (observed - random) / random,
        };
        vec![
            row(
                "entropy at WAAD peaks",
                div(self.entropy_sum_waad_peaks, self.waad_peaks),
                div(self.entropy_sum_all, self.positions),
            ),
            row(
                "receiver/global FAI co-occurrence",
                div(self.recv_peaks_in_global as f64, self.recv_peaks),
                div(self.global_peaks as f64, self.positions),
            ),
            row(
                "FAI peak follows/coincides with WAAD peak",
                div(self.fai_peaks_after_waad as f64, self.global_peaks),
                div(self.positions_after_waad as f64, self.positions),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_by_hand() {
        // n = 10 -> 2 peaks per series.
        // WAAD peaks at 2, 6; global FAI peaks at 3, 9; receiver peaks at 3, 5.
        let mut waad = vec![0.0; 10];
        waad[2] = 5.0;
        waad[6] = 4.0;
        let mut fai = vec![0.0; 10];
        fai[3] = 1.0;
        fai[9] = 2.0;
        let mut rfai = vec![0.0; 10];
        rfai[3] = 1.0;
        rfai[5] = 1.0;
        let entropy: Vec<f64> = (0..10).map(|t| t as f64).collect();
        let mut c = CouplingStats::new();
        c.add(&waad, &fai, &rfai, &entropy);
        let t = c.table();
        // Entropy at WAAD peaks: (2 + 6) / 2 = 4; all: 45 / 10 = 4.5.
        assert_eq!((t[0].observed, t[0].random), (4.0, 4.5));
        // Receiver peaks {3, 5}: 3 is a global peak -> 1/2; random 2/10.
        assert_eq!((t[1].observed, t[1].random), (0.5, 0.2));
        assert!((t[1].lift - 1.5).abs() < 1e-12);
        // FAI peaks {3, 9}: 3 has a WAAD peak at 2 (t-1), 9 none -> 1/2.
        // Positions with a WAAD peak at t or t-1: {2, 3, 6, 7} -> 4/10.
        assert_eq!((t[2].observed, t[2].random), (0.5, 0.4));
    }

    #[test]
    fn micro_average_sums_counts() {
        // Two sequences of different length: the means are of pooled counts.
        let mut c = CouplingStats::new();
        c.add(
            &[1.0, 0.0, 0.0, 0.0, 0.0],
            &[0.0; 5],
            &[0.0; 5],
            &[10.0, 0.0, 0.0, 0.0, 0.0],
        );
        let w: Vec<f64> = (0..10).map(|t| t as f64).collect();
        c.add(&w, &[0.0; 10], &[0.0; 10], &[1.0; 10]);
        // WAAD peaks: seq 1 {0} (H = 10), seq 2 {8, 9} (H = 1, 1): 12 / 3 = 4.
        // All: (10 + 10) / 15.
        let t = c.table();
        assert_eq!(t[0].observed, 4.0);
        assert!((t[0].random - 20.0 / 15.0).abs() < 1e-12);
    }
}
