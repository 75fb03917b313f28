//! Options and output shared by the subcommands that compute a rhythm
//! (`score`, `probe --stream`, `analyze`): the SPEC parameters as flags, and
//! the `--json` object.

use anyhow::{bail, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rhythm_core::{gamma, CreditInputs, CreditSettings, MetricSettings, Params, Rhythm, Strategy};
use serde_json::{json, Value};

/// The rhythm flags of `score` and `probe`: the credit and metric settings
/// (declared once in [`rhythm_core::settings`]) over SPEC's RL preset, and
/// the seed of the `random` strategy.
#[derive(Args, Clone, Debug)]
pub struct RhythmOpts {
    #[command(flatten)]
    pub credit: CreditSettings,
    #[command(flatten)]
    pub metrics: MetricSettings,
    /// Seed of the random strategy.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl RhythmOpts {
    /// The strategy named by `--strategy`.
    pub fn strategy(&self) -> Strategy {
        self.credit.strategy
    }

    /// The [`Params`] these flags describe (validated).
    pub fn params(&self) -> Result<Params> {
        let p = self.metrics.params(&Params::rl())?;
        Ok(self.credit.apply(&p, self.seed)?)
    }
}

/// The `--json` object of `rhythm score`: see the README for its fields.
pub fn rhythm_json(r: &Rhythm, gamma: &[f64]) -> Value {
    let spans: Vec<Value> = r
        .spans
        .iter()
        .map(|h| json!({"layer": h.layer, "head": h.head, "span": h.span}))
        .collect();
    let ids =
        |v: &[(usize, usize)]| -> Vec<Value> { v.iter().map(|(l, h)| json!([l, h])).collect() };
    json!({
        "response_start": r.response_start,
        "n": r.n,
        "heads": {"span": spans, "local": ids(&r.groups.local), "global": ids(&r.groups.global)},
        "positions": r.positions().collect::<Vec<_>>(),
        "waad": r.waad,
        "fai": r.fai,
        "delta": r.sel.delta,
        "gamma": gamma,
        "preplan": r.sel.preplan,
        "anchors": r.sel.anchors,
        "dominated": r.sel.dominated,
        "intro": r.sel.intro,
    })
}

/// Computes gamma for the strategy, with entropy when it is available.
pub fn gamma_for(
    r: &Rhythm,
    strategy: Strategy,
    entropy: Option<&[f64]>,
    params: &Params,
) -> Result<Vec<f64>> {
    if strategy.needs_entropy() && entropy.is_none() {
        bail!("strategy 'entropy' needs per-token entropy: the input has neither an 'entropy' nor a 'logits' tensor");
    }
    let inputs = CreditInputs {
        n: r.n,
        rhythm: Some(r),
        entropy,
    };
    Ok(gamma(strategy, &inputs, params)?)
}

/// A one-line sparkline of `x`, downsampled (by the mean of each bucket) to
/// at most `width` characters.
pub fn sparkline(x: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    if x.is_empty() {
        return String::new();
    }
    let w = width.min(x.len()).max(1);
    let buckets: Vec<f64> = (0..w)
        .map(|i| {
            let (a, b) = (
                i * x.len() / w,
                ((i + 1) * x.len() / w).max(i * x.len() / w + 1),
            );
            x[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect();
    let lo = buckets.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = buckets.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    buckets
        .iter()
        .map(|&v| {
            let f = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
            BARS[((f * 7.0).round() as usize).min(7)]
        })
        .collect()
}

/// A readable multi-line summary of a rhythm and its gamma.
pub fn summary_text(r: &Rhythm, strategy: Strategy, gamma: &[f64]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let p = r.response_start;
    let _ = writeln!(
        s,
        "response: positions {}..{} ({} tokens), {} candidate heads",
        p,
        p + r.n,
        r.n,
        r.spans.len()
    );
    let fmt_ids = |v: &[(usize, usize)]| {
        v.iter()
            .map(|(l, h)| format!("L{l}H{h}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        s,
        "local heads  ({}): {}",
        r.groups.local.len(),
        fmt_ids(&r.groups.local)
    );
    let _ = writeln!(
        s,
        "global heads ({}): {}",
        r.groups.global.len(),
        fmt_ids(&r.groups.global)
    );
    let _ = writeln!(s, "WAAD  {}", sparkline(&r.waad, 72));
    let _ = writeln!(s, "FAI   {}", sparkline(&r.fai, 72));
    let _ = writeln!(
        s,
        "tau_waad = {:.4}, tau_delta = {:.4}",
        r.sel.tau_waad, r.sel.tau_delta
    );
    let list = |v: &[usize]| {
        let mut t: String = v
            .iter()
            .take(20)
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        if v.len() > 20 {
            let _ = write!(t, " ... (+{})", v.len() - 20);
        }
        t
    };
    let _ = writeln!(
        s,
        "preplan   ({:>4}): {}",
        r.sel.preplan.len(),
        list(&r.sel.preplan)
    );
    let _ = writeln!(
        s,
        "anchors   ({:>4}): {}",
        r.sel.anchors.len(),
        list(&r.sel.anchors)
    );
    let _ = writeln!(
        s,
        "dominated ({:>4}): {}",
        r.sel.dominated.len(),
        list(&r.sel.dominated)
    );
    let _ = writeln!(
        s,
        "intro     ({:>4}): {}",
        r.sel.intro.len(),
        list(&r.sel.intro)
    );
    let boosted = gamma.iter().filter(|&&g| g > 1.0).count();
    let mean = gamma.iter().sum::<f64>() / gamma.len().max(1) as f64;
    let _ = write!(
        s,
        "gamma [{strategy}]: mean {mean:.4}, {boosted} of {} tokens above 1 ({:.1}%)",
        gamma.len(),
        100.0 * boosted as f64 / gamma.len().max(1) as f64
    );
    s
}

/// The progress bar of every long command: `len` steps on stderr, labelled
/// `what` (may be empty), with a message field for running figures; hidden
/// when stderr is not a terminal.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix}{elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if !what.is_empty() {
        bar.set_prefix(format!("{what} "));
    }
    bar
}
