//! Every knob of SPEC sections 3-8 in one struct, with SPEC's defaults.

use crate::error::CoreError;
use crate::summary::SummaryConfig;

/// Parameters of the rhythm metrics, selections and credit strategies.
///
/// [`Params::rl`] holds SPEC's RL defaults, [`Params::analysis`] the analysis
/// defaults (FAI to the end of the response).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// WAAD window `W` (default 10).
    pub window: usize,
    /// FAI horizon `(h_lo, h_hi)`; `h_hi = usize::MAX` means "to the end"
    /// (RL default `(10, 50)`, analysis default `(1, N-1)`).
    pub horizon: (usize, usize),
    /// Fraction `q` of response tokens selected (default 0.4).
    pub q: f64,
    /// Head ratio `rho` of the local and global groups (default 0.3).
    pub head_ratio: f64,
    /// Fraction of candidate heads that are receiver heads (default 0.1).
    pub receiver_ratio: f64,
    /// Receiver-head proximity `p` (default 4).
    pub proximity: usize,
    /// Neighbourhood `k` of locally dominated anchors (default 3).
    pub k: usize,
    /// `gamma_amp` (default 1.5); the boost is `a = gamma_amp - 1`.
    pub gamma_amp: f64,
    /// `alpha` of the coupled strategy (default 0.5).
    pub alpha: f64,
    /// `tau_waad`; `None` = median of WAAD over the response.
    pub tau_waad: Option<f64>,
    /// `tau_delta`; `None` = median of Delta over the response.
    pub tau_delta: Option<f64>,
    /// Seed of the `random` strategy.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self::rl()
    }
}

impl Params {
    /// SPEC's RL defaults: `W = 10`, horizon `[10, 50]`, `q = 0.4`,
    /// `rho = 0.3`, `k = 3`, `gamma_amp = 1.5`, `alpha = 0.5`.
    pub fn rl() -> Self {
        Params {
            window: 10,
            horizon: (10, 50),
            q: 0.4,
            head_ratio: 0.3,
            receiver_ratio: 0.1,
            proximity: 4,
            k: 3,
            gamma_amp: 1.5,
            alpha: 0.5,
            tau_waad: None,
            tau_delta: None,
            seed: 0,
        }
    }

    /// SPEC's analysis defaults: as [`Params::rl`] with FAI horizon `[1, N-1]`.
    pub fn analysis() -> Self {
        Params {
            horizon: (1, usize::MAX),
            ..Self::rl()
        }
    }

    /// Checks every parameter's domain; the error names the parameter.
    pub fn validate(&self) -> Result<(), CoreError> {
        let frac = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= 1.0 {
                Ok(())
            } else {
                Err(CoreError::Param(format!(
                    "{name} = {v}, expected a number in (0, 1]"
                )))
            }
        };
        frac("q", self.q)?;
        frac("head_ratio", self.head_ratio)?;
        frac("receiver_ratio", self.receiver_ratio)?;
        if !(self.alpha.is_finite() && (0.0..=1.0).contains(&self.alpha)) {
            return Err(CoreError::Param(format!(
                "alpha = {}, expected a number in [0, 1]",
                self.alpha
            )));
        }
        if !(self.gamma_amp.is_finite() && self.gamma_amp >= 0.0) {
            return Err(CoreError::Param(format!(
                "gamma_amp = {}, expected a finite number >= 0",
                self.gamma_amp
            )));
        }
        let max = crate::settings::MAX_DISTANCE;
        for (name, v, min) in [
            ("window", self.window, 1),
            ("k", self.k, 1),
            ("proximity", self.proximity, 0),
        ] {
            if v < min {
                return Err(CoreError::Param(format!(
                    "{name} = {v}, expected at least {min}"
                )));
            }
            if v > max {
                return Err(CoreError::Param(format!(
                    "{name} = {v}, expected at most {max}"
                )));
            }
        }
        if self.horizon.0 > self.horizon.1 {
            return Err(CoreError::Param(format!(
                "horizon {}:{}, expected lo <= hi",
                self.horizon.0, self.horizon.1
            )));
        }
        for (name, v) in [("tau_waad", self.tau_waad), ("tau_delta", self.tau_delta)] {
            if let Some(v) = v {
                if !v.is_finite() {
                    return Err(CoreError::Param(format!(
                        "{name} = {v}, expected a finite number"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The [`SummaryConfig`] for a sequence of `seq_len` tokens whose response
    /// starts at `response_start`.
    pub fn summary_config(&self, response_start: usize, seq_len: usize) -> SummaryConfig {
        SummaryConfig {
            response_start,
            seq_len,
            window: self.window,
            horizon: self.horizon,
            proximity: self.proximity,
        }
    }
}
