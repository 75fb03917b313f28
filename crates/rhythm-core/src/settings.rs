//! The rhythm settings, declared once: every knob of SPEC sections 2-8 as
//! a command-line flag (with the `clap` feature) and a TOML/JSON key, each
//! with its documentation and its validation.
//!
//! Two groups, so that a command takes only the flags it uses:
//!
//! * [`MetricSettings`]: what the metrics and selections read (layers,
//!   window, horizon, `q`, head and receiver ratios, proximity, `k`, the
//!   thresholds). `analyze`, `stats` and `perturb` take these.
//! * [`CreditSettings`]: the credit strategy and its two numbers
//!   (`gamma_amp`, `alpha`). `score`, `probe` and `train` take both groups.
//!
//! Settings are plain values, checked once by [`Params::validate`] (so a
//! flag, a TOML key and a Python keyword get the same message); the working
//! [`Params`] are built
//! from them by laying the values given over a *preset*: SPEC's RL defaults
//! ([`Params::rl`], horizon `10:50`) or its analysis defaults
//! ([`Params::analysis`], horizon `1:end`). Only the horizon and the layers
//! differ between commands, so only those two are optional here; every
//! other default is SPEC's and the same everywhere.
//!
//! The seed of the `random` strategy is not here: each command has one seed
//! (a training run's seed drives sampling and the strategy alike).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::credit::Strategy;
use crate::error::CoreError;
use crate::params::Params;

/// Largest accepted layer index or count in a `--layers` list.
pub const MAX_LAYER: usize = 1 << 20;

/// The FAI horizon `LO:HI` of SPEC section 4; `HI` may be `end` (`N - 1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon {
    /// `h_lo`.
    pub lo: usize,
    /// `h_hi`; `None` is "to the end of the response".
    pub hi: Option<usize>,
}

impl Horizon {
    /// SPEC's RL horizon, `10:50`.
    pub const RL: Horizon = Horizon {
        lo: 10,
        hi: Some(50),
    };
    /// SPEC's analysis horizon, `1:end`.
    pub const ANALYSIS: Horizon = Horizon { lo: 1, hi: None };

    /// `(lo, hi)` as [`Params::horizon`] holds it (`end` is `usize::MAX`).
    pub fn pair(self) -> (usize, usize) {
        (self.lo, self.hi.unwrap_or(usize::MAX))
    }

    /// The horizon of a [`Params::horizon`] pair.
    pub fn from_pair((lo, hi): (usize, usize)) -> Horizon {
        Horizon {
            lo,
            hi: (hi != usize::MAX).then_some(hi),
        }
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.hi {
            Some(hi) => write!(f, "{}:{hi}", self.lo),
            None => write!(f, "{}:end", self.lo),
        }
    }
}

impl FromStr for Horizon {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let bad = |what: &str| CoreError::Param(format!("horizon '{s}': {what}"));
        let (lo, hi) = s
            .split_once(':')
            .ok_or_else(|| bad("expected LO:HI, e.g. 10:50 or 1:end"))?;
        let lo: usize = lo
            .trim()
            .parse()
            .map_err(|_| bad("LO must be a non-negative integer"))?;
        let hi = match hi.trim() {
            "end" => None,
            h => Some(
                h.parse::<usize>()
                    .map_err(|_| bad("HI must be a non-negative integer or 'end'"))?,
            ),
        };
        if hi.is_some_and(|hi| lo > hi) {
            return Err(bad("expected LO <= HI"));
        }
        Ok(Horizon { lo, hi })
    }
}

/// Which layers are probed: SPEC section 2's sampled layers, all, or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layers {
    /// Every layer.
    All,
    /// The five sampled layers of SPEC section 2.
    Sampled,
    /// These layers (ascending, no repeats).
    List(Vec<usize>),
}

impl Layers {
    /// The layer indices for a model of `num_layers` layers; a listed layer
    /// must exist.
    pub fn resolve(&self, num_layers: usize) -> Result<Vec<usize>, CoreError> {
        let all: Vec<usize> = (0..num_layers).collect();
        self.resolve_in(&all, num_layers)
    }

    /// The layer indices among `available` (e.g. the maps a file holds) of
    /// a model of `num_layers` layers; every chosen layer must be available.
    pub fn resolve_in(
        &self,
        available: &[usize],
        num_layers: usize,
    ) -> Result<Vec<usize>, CoreError> {
        let want = match self {
            Layers::All => return Ok(available.to_vec()),
            Layers::Sampled => crate::sample_layers(num_layers),
            Layers::List(v) => v.clone(),
        };
        for l in &want {
            if !available.contains(l) {
                return Err(CoreError::Param(format!(
                    "layers '{self}': layer {l} is not available (have {})",
                    describe(available)
                )));
            }
        }
        Ok(want)
    }
}

/// `0..=27` for a contiguous list, else the list.
fn describe(v: &[usize]) -> String {
    match (v.first(), v.last()) {
        (Some(a), Some(b)) if b - a + 1 == v.len() => format!("{a}..={b}"),
        (None, _) => "none".into(),
        _ => format!("{v:?}"),
    }
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layers::All => f.write_str("all"),
            Layers::Sampled => f.write_str("sampled"),
            Layers::List(v) => {
                let parts: Vec<String> = v.iter().map(|l| l.to_string()).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl FromStr for Layers {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s.trim() {
            "all" => Ok(Layers::All),
            "sampled" => Ok(Layers::Sampled),
            list => {
                let mut out = Vec::new();
                for part in list.split(',') {
                    let l: usize = part
                        .trim()
                        .parse()
                        .ok()
                        .filter(|&l| l < MAX_LAYER)
                        .ok_or_else(|| {
                            CoreError::Param(format!(
                                "layers '{s}': '{}' is not a layer number (expected all, sampled or a comma-separated list)",
                                part.trim()
                            ))
                        })?;
                    if !out.contains(&l) {
                        out.push(l);
                    }
                }
                out.sort_unstable();
                Ok(Layers::List(out))
            }
        }
    }
}

/// Serde as the flag's text (`"10:50"`, `"sampled"`, `"coupled"`).
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Horizon);
serde_as_text!(Layers);

/// The settings of the metrics and selections (SPEC sections 2-7).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct MetricSettings {
    /// Probed layers: `sampled` (SPEC section 2), `all` or a list `3,5,7`.
    /// Default `sampled` (`rhythm score`: every layer in the file).
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<Layers>,
    /// WAAD window W. Default 10.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub window: usize,
    /// FAI horizon `LO:HI` (`HI` may be `end`). Default `10:50` (SPEC's RL
    /// default) for score, probe and train; `1:end` (analysis) for analyze,
    /// stats and perturb.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizon: Option<Horizon>,
    /// Fraction q of response tokens selected, in (0, 1]. Default 0.4.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.4))]
    pub q: f64,
    /// Head ratio rho of the local and global groups, in (0, 1]. Default 0.3.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.3))]
    pub head_ratio: f64,
    /// Fraction of candidate heads that are receiver heads, in (0, 1].
    /// Default 0.1.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub receiver_ratio: f64,
    /// Receiver-head proximity p. Default 4.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub proximity: usize,
    /// Neighbourhood k of locally dominated anchors. Default 3.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 3))]
    pub k: usize,
    /// tau_waad. Default: the median of WAAD over the response.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau_waad: Option<f64>,
    /// tau_delta. Default: the median of Delta over the response.
    #[cfg_attr(feature = "clap", arg(long))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau_delta: Option<f64>,
}

impl Default for MetricSettings {
    fn default() -> Self {
        let p = Params::rl();
        MetricSettings {
            layers: None,
            window: p.window,
            horizon: None,
            q: p.q,
            head_ratio: p.head_ratio,
            receiver_ratio: p.receiver_ratio,
            proximity: p.proximity,
            k: p.k,
            tau_waad: None,
            tau_delta: None,
        }
    }
}

/// The credit strategy of SPEC section 8 and its two numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(default)]
pub struct CreditSettings {
    /// Credit strategy: none, local, global, coupled, random, entropy,
    /// local-bottom, global-bottom, coupled-bottom. Default `coupled`.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Strategy::Coupled))]
    pub strategy: Strategy,
    /// gamma_amp: boosted tokens get up to this times the advantage (finite,
    /// >= 0). Default 1.5.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.5))]
    pub gamma_amp: f64,
    /// alpha of the coupled strategy, in [0, 1]. Default 0.5.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.5))]
    pub alpha: f64,
}

impl Default for CreditSettings {
    fn default() -> Self {
        let p = Params::rl();
        CreditSettings {
            strategy: Strategy::Coupled,
            gamma_amp: p.gamma_amp,
            alpha: p.alpha,
        }
    }
}

impl MetricSettings {
    /// These settings laid over `preset` ([`Params::rl`] or
    /// [`Params::analysis`]); validated, the error names the setting.
    pub fn params(&self, preset: &Params) -> Result<Params, CoreError> {
        let p = Params {
            window: self.window,
            horizon: self.horizon.map_or(preset.horizon, Horizon::pair),
            q: self.q,
            head_ratio: self.head_ratio,
            receiver_ratio: self.receiver_ratio,
            proximity: self.proximity,
            k: self.k,
            tau_waad: self.tau_waad,
            tau_delta: self.tau_delta,
            ..preset.clone()
        };
        p.validate()?;
        Ok(p)
    }

    /// The layers in force: the ones given, else `default`.
    pub fn layers_or(&self, default: Layers) -> Layers {
        self.layers.clone().unwrap_or(default)
    }
}

impl CreditSettings {
    /// `params` with this strategy's numbers and the `random` seed `seed`;
    /// validated.
    pub fn apply(&self, params: &Params, seed: u64) -> Result<Params, CoreError> {
        let p = Params {
            gamma_amp: self.gamma_amp,
            alpha: self.alpha,
            seed,
            ..params.clone()
        };
        p.validate()?;
        Ok(p)
    }
}

/// Largest accepted window, proximity or neighbourhood (any sequence is
/// shorter; the bound keeps position arithmetic far from overflow). Checked
/// by [`Params::validate`], the one place every setting's range is checked,
/// so a flag, a TOML key and a Python keyword get the same message.
pub const MAX_DISTANCE: usize = 1_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_text_round_trips_and_rejects_nonsense() {
        for s in ["10:50", "1:end", "0:0"] {
            assert_eq!(s.parse::<Horizon>().unwrap().to_string(), s);
        }
        assert_eq!("1:end".parse::<Horizon>().unwrap().pair(), (1, usize::MAX));
        assert_eq!(Horizon::from_pair((1, usize::MAX)), Horizon::ANALYSIS);
        for (s, why) in [
            ("10", "expected LO:HI"),
            ("x:5", "LO must be"),
            ("5:y", "HI must be"),
            ("9:3", "LO <= HI"),
            ("-1:3", "LO must be"),
        ] {
            let e = s.parse::<Horizon>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(s), "{s}: {e}");
        }
    }

    #[test]
    fn layers_parse_resolve_and_name_what_is_missing() {
        assert_eq!(
            "5, 3,5".parse::<Layers>().unwrap(),
            Layers::List(vec![3, 5])
        );
        assert_eq!(
            Layers::Sampled.resolve(36).unwrap(),
            vec![12, 15, 18, 21, 24]
        );
        assert_eq!(Layers::All.resolve(3).unwrap(), vec![0, 1, 2]);
        let e = Layers::List(vec![7]).resolve(4).unwrap_err().to_string();
        assert!(e.contains("layer 7 is not available (have 0..=3)"), "{e}");
        let e = Layers::Sampled
            .resolve_in(&[0, 2], 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 1 is not available (have [0, 2])"), "{e}");
        let e = "1,x".parse::<Layers>().unwrap_err().to_string();
        assert!(e.contains("'x' is not a layer number"), "{e}");
        assert!("99999999999".parse::<Layers>().is_err());
    }

    #[test]
    fn presets_differ_only_where_spec_says() {
        let m = MetricSettings::default();
        assert_eq!(m.params(&Params::rl()).unwrap(), Params::rl());
        assert_eq!(m.params(&Params::analysis()).unwrap(), Params::analysis());
        let given = MetricSettings {
            horizon: Some(Horizon::RL),
            ..MetricSettings::default()
        };
        assert_eq!(given.params(&Params::analysis()).unwrap().horizon, (10, 50));
        let c = CreditSettings::default();
        assert_eq!(c.apply(&Params::rl(), 0).unwrap(), Params::rl());
        let bad = MetricSettings {
            q: 0.0,
            ..MetricSettings::default()
        };
        assert!(bad
            .params(&Params::rl())
            .unwrap_err()
            .to_string()
            .contains("q = 0"));
    }
}
