//! Credit strategies (SPEC section 8) and GRPO advantages (SPEC section 9).

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::count::ceil_q;
use crate::error::CoreError;
use crate::params::Params;
use crate::rhythm::{dominated_and_intro, Rhythm};
use crate::select::{bottom_q, mask, top_q};

/// How per-token credit `gamma[t]` is assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Plain GRPO: `gamma = 1`.
    None,
    /// Local-chunk credit (eq. 14): boost the preplan tokens `TopQ(Delta)`.
    Local,
    /// Global-anchor credit (eq. 16): boost the anchors `TopQ(FAI)`.
    Global,
    /// Coupled rhythm credit (eq. 18).
    Coupled,
    /// Baseline: boost `ceil_q(q, n)` seeded random positions.
    Random,
    /// Baseline: boost the high-entropy tokens `TopQ(H)`.
    Entropy,
    /// Ablation: `local` with `BottomQ` over the positions whose `Delta` is
    /// defined (all but the last; SPEC section 8).
    LocalBottom,
    /// Ablation: `global` with `BottomQ` over the positions whose FAI window
    /// `T(s)` is not empty (SPEC section 8).
    GlobalBottom,
    /// Ablation: `coupled` with the bottom anchors of `global-bottom`.
    CoupledBottom,
}

impl Strategy {
    /// Every strategy, in SPEC's table order.
    pub const ALL: [Strategy; 9] = [
        Strategy::None,
        Strategy::Local,
        Strategy::Global,
        Strategy::Coupled,
        Strategy::Random,
        Strategy::Entropy,
        Strategy::LocalBottom,
        Strategy::GlobalBottom,
        Strategy::CoupledBottom,
    ];

    /// The strategy's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Local => "local",
            Strategy::Global => "global",
            Strategy::Coupled => "coupled",
            Strategy::Random => "random",
            Strategy::Entropy => "entropy",
            Strategy::LocalBottom => "local-bottom",
            Strategy::GlobalBottom => "global-bottom",
            Strategy::CoupledBottom => "coupled-bottom",
        }
    }

    /// Whether `gamma` needs the attention rhythm.
    pub fn needs_attention(self) -> bool {
        !matches!(self, Strategy::None | Strategy::Random | Strategy::Entropy)
    }

    /// Whether `gamma` needs per-token entropy.
    pub fn needs_entropy(self) -> bool {
        self == Strategy::Entropy
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        Strategy::ALL
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|x| x.name()).collect();
                CoreError::Param(format!(
                    "unknown strategy '{s}', expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// What a strategy may read: the response length, the rhythm (for the
/// attention strategies) and per-token entropy (for `entropy`).
#[derive(Clone, Copy, Debug)]
pub struct CreditInputs<'a> {
    /// `n`, the response length.
    pub n: usize,
    /// The sequence's rhythm, for `local`, `global`, `coupled` and ablations.
    pub rhythm: Option<&'a Rhythm>,
    /// `H[t]` at each response offset, for `entropy`.
    pub entropy: Option<&'a [f64]>,
}

/// The per-token scale `gamma[t]` (offsets into the response) for `strategy`.
///
/// ```
/// use rhythm_core::{gamma, CreditInputs, Params, Strategy};
/// let g = gamma(Strategy::None, &CreditInputs { n: 3, rhythm: None, entropy: None }, &Params::rl()).unwrap();
/// assert_eq!(g, vec![1.0, 1.0, 1.0]);
/// ```
pub fn gamma(
    strategy: Strategy,
    inputs: &CreditInputs<'_>,
    params: &Params,
) -> Result<Vec<f64>, CoreError> {
    params.validate()?;
    let n = inputs.n;
    let a = params.gamma_amp - 1.0;
    let boost = |set: &[usize]| -> Vec<f64> {
        let m = mask(n, set);
        m.iter().map(|&b| if b { 1.0 + a } else { 1.0 }).collect()
    };
    let rhythm = || -> Result<&Rhythm, CoreError> {
        let r = inputs.rhythm.ok_or_else(|| {
            CoreError::Param(format!("strategy '{strategy}' needs attention summaries"))
        })?;
        if r.n != n {
            return Err(CoreError::Param(format!(
                "rhythm covers {} response tokens, expected {n}",
                r.n
            )));
        }
        Ok(r)
    };
    let offsets = |r: &Rhythm, v: &[usize]| -> Vec<usize> {
        v.iter().map(|&t| t - r.response_start).collect()
    };
    Ok(match strategy {
        Strategy::None => vec![1.0; n],
        Strategy::Local => {
            let r = rhythm()?;
            boost(&offsets(r, &r.sel.preplan))
        }
        Strategy::Global => {
            let r = rhythm()?;
            boost(&offsets(r, &r.sel.anchors))
        }
        Strategy::LocalBottom => {
            let r = rhythm()?;
            boost(&bottom_q(&r.sel.delta[..delta_defined(n)], params.q))
        }
        Strategy::GlobalBottom => {
            let r = rhythm()?;
            boost(&bottom_q(&r.fai[..fai_defined(n, params)], params.q))
        }
        Strategy::Coupled => {
            let r = rhythm()?;
            coupled(
                n,
                &offsets(r, &r.sel.anchors),
                &offsets(r, &r.sel.dominated),
                &offsets(r, &r.sel.intro),
                a,
                params.alpha,
            )
        }
        Strategy::CoupledBottom => {
            let r = rhythm()?;
            let anchors = bottom_q(&r.fai[..fai_defined(n, params)], params.q);
            let (dom, intro) = dominated_and_intro(
                &anchors,
                &r.waad,
                &r.sel.delta,
                params.k,
                r.sel.tau_waad,
                r.sel.tau_delta,
            );
            coupled(n, &anchors, &dom, &intro, a, params.alpha)
        }
        Strategy::Random => {
            let k = ceil_q(params.q, n);
            let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
            let set = rand::seq::index::sample(&mut rng, n, k).into_vec();
            boost(&set)
        }
        Strategy::Entropy => {
            let h = inputs.entropy.ok_or_else(|| {
                CoreError::Param("strategy 'entropy' needs per-token entropy".into())
            })?;
            if h.len() != n {
                return Err(CoreError::Param(format!(
                    "entropy has {} values, expected {n} (one per response token)",
                    h.len()
                )));
            }
            boost(&top_q(h, params.q))
        }
    })
}

/// How many leading response offsets have a defined `Delta` (SPEC section 8,
/// bottom ablations): every position but the last, whose `Delta` is 0 by
/// definition.
fn delta_defined(n: usize) -> usize {
    n.saturating_sub(1)
}

/// How many leading response offsets have a defined FAI (SPEC section 8,
/// bottom ablations): `T(s)` is not empty iff `s + h_lo <= N - 1`, that is
/// for the offsets `0 ..= n - 1 - h_lo` (the horizon's `lo <= hi` is checked
/// by [`Params::validate`]).
fn fai_defined(n: usize, params: &Params) -> usize {
    n.saturating_sub(params.horizon.0)
}

/// `gamma = 1 + a[t in T \ D] + (1 - alpha) a [t in D] + alpha a [t in I(D)]`.
fn coupled(
    n: usize,
    anchors: &[usize],
    dom: &[usize],
    intro: &[usize],
    a: f64,
    alpha: f64,
) -> Vec<f64> {
    let (anc, d, i) = (mask(n, anchors), mask(n, dom), mask(n, intro));
    (0..n)
        .map(|t| {
            let mut g = 1.0;
            if anc[t] && !d[t] {
                g += a;
            }
            if d[t] {
                g += (1.0 - alpha) * a;
            }
            if i[t] {
                g += alpha * a;
            }
            g
        })
        .collect()
}

/// Group-relative advantages: `A[i] = (r_i - mean) / (std + 1e-6)` with the
/// population std; a group whose rewards are all equal gets 0.
pub fn group_advantages(rewards: &[f64]) -> Vec<f64> {
    if rewards.is_empty() {
        return Vec::new();
    }
    let g = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / g;
    if rewards.iter().all(|&r| r == rewards[0]) {
        return vec![0.0; rewards.len()];
    }
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / g;
    let std = var.sqrt();
    rewards.iter().map(|r| (r - mean) / (std + 1e-6)).collect()
}

/// The shaped advantage `Atilde[t] = gamma[t] * A` when `A >= 0`, else `A`
/// (SPEC section 8: only nonnegative advantages are shaped).
pub fn shaped_advantages(advantage: f64, gamma: &[f64]) -> Vec<f64> {
    if advantage >= 0.0 {
        gamma.iter().map(|g| g * advantage).collect()
    } else {
        vec![advantage; gamma.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_by_hand() {
        // r = [1, 0, 0, 1]: mean 0.5, population std 0.5.
        // A = ±0.5 / 0.500001 = ±0.999998...
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0]);
        let e = 0.5 / 0.500_001;
        assert!((a[0] - e).abs() < 1e-12 && (a[1] + e).abs() < 1e-12);
        assert_eq!(group_advantages(&[0.3, 0.3]), vec![0.0, 0.0]);
    }

    #[test]
    fn shaping_only_nonnegative() {
        assert_eq!(shaped_advantages(2.0, &[1.0, 1.5]), vec![2.0, 3.0]);
        assert_eq!(shaped_advantages(-2.0, &[1.0, 1.5]), vec![-2.0, -2.0]);
        assert_eq!(shaped_advantages(0.0, &[1.5]), vec![0.0]);
    }

    #[test]
    fn coupled_terms_add() {
        // a = 0.5, alpha = 0.5; anchors {0, 1, 3}, D = {1}, I(D) = {0, 2}.
        // t=0: anchor outside D (+0.5) and intro (+0.25) -> 1.75
        // t=1: in D -> 1 + 0.5*0.5 = 1.25
        // t=2: intro only -> 1.25
        // t=3: anchor outside D -> 1.5 ; t=4: 1
        let g = coupled(5, &[0, 1, 3], &[1], &[0, 2], 0.5, 0.5);
        assert_eq!(g, vec![1.75, 1.25, 1.25, 1.5, 1.0]);
    }

    #[test]
    fn strategy_names_are_specs_table() {
        // The first column of SPEC section 8's table (docs/spec.md) names the
        // strategies; ours must be exactly those, in that order, and parse.
        let spec = include_str!("../../../docs/spec.md");
        let section = spec
            .split("\n## ")
            .find(|s| s.starts_with("8."))
            .expect("docs/spec.md has a section 8");
        let names: Vec<&str> = section
            .lines()
            .filter(|l| l.starts_with("| `"))
            .flat_map(|l| {
                let first = l.split('|').nth(1).unwrap_or("");
                first.split('`').skip(1).step_by(2).collect::<Vec<_>>()
            })
            .collect();
        let ours: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ours);
        for s in Strategy::ALL {
            assert_eq!(s.name().parse::<Strategy>().unwrap(), s);
        }
        let e = "best".parse::<Strategy>().unwrap_err().to_string();
        assert!(e.contains("unknown strategy 'best'"), "{e}");
    }

    #[test]
    fn random_is_seeded() {
        let p = Params {
            seed: 7,
            ..Params::rl()
        };
        let inp = CreditInputs {
            n: 20,
            rhythm: None,
            entropy: None,
        };
        let g1 = gamma(Strategy::Random, &inp, &p).unwrap();
        let g2 = gamma(Strategy::Random, &inp, &p).unwrap();
        assert_eq!(g1, g2);
        // ceil_q(0.4, 20) = 8 boosted.
        assert_eq!(g1.iter().filter(|&&g| g > 1.0).count(), 8);
        let g3 = gamma(Strategy::Random, &inp, &Params { seed: 8, ..p }).unwrap();
        assert_ne!(g1, g3);
    }
}
