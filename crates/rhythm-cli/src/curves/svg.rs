//! The two figures of `rhythm curves` as standalone SVG line charts.

use std::fmt::Write as _;

use super::smooth::{ema, paper_ema};
use super::{Curve, MethodSummary, METHOD_ORDER};

/// Fixed colours of the known methods (same index as [`METHOD_ORDER`]).
const KNOWN_COLOURS: [&str; 7] = [
    "#7f7f7f", "#bcbd22", "#9467bd", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e",
];
/// Colours of the other methods, in turn.
const OTHER_COLOURS: [&str; 6] = [
    "#8c564b", "#e377c2", "#17becf", "#393b79", "#637939", "#843c39",
];

/// The colour of each method, in the order given.
fn colours(methods: &[MethodSummary]) -> Vec<&'static str> {
    let mut next = 0;
    methods
        .iter()
        .map(|m| match METHOD_ORDER.iter().position(|k| *k == m.method) {
            Some(i) => KNOWN_COLOURS[i],
            None => {
                let c = OTHER_COLOURS[next % OTHER_COLOURS.len()];
                next += 1;
                c
            }
        })
        .collect()
}

/// One method's lines in a chart: values in the chart's units.
pub struct Series {
    /// Method name (legend and `data-method` attribute).
    pub method: String,
    /// Number of runs (legend).
    pub n: usize,
    /// Stroke colour.
    pub colour: String,
    /// The thin line.
    pub raw: Vec<(f64, f64)>,
    /// The thick line.
    pub smooth: Vec<(f64, f64)>,
}

/// Escapes text for SVG/XML content and attributes.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Axis ticks for `[lo, hi]`: a "nice" step (1, 2, 5 x 10^k, at least
/// `min_step`), the extended bounds and the tick values.
pub(super) fn ticks(lo: f64, hi: f64, target: usize, min_step: f64) -> (f64, f64, f64, Vec<f64>) {
    let range = (hi - lo).max(1e-12);
    let raw = range / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = (nice * mag).max(min_step);
    let a = (lo / step + 1e-9).floor() * step;
    let b = (hi / step - 1e-9).ceil() * step;
    let b = if b <= a { a + step } else { b };
    let k = ((b - a) / step).round() as usize;
    let vals = (0..=k).map(|i| a + i as f64 * step).collect();
    (a, b, step, vals)
}

/// A tick label with as many decimals as the step needs.
pub(super) fn tick_label(v: f64, step: f64) -> String {
    let d = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.d$}")
}

/// A line chart as a standalone SVG document: one colour per series, a
/// thin polyline for `raw` and a thick one for `smooth`, axes with ticks,
/// labels, a legend and the title.
pub fn svg_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    note: &str,
    series: &[Series],
) -> String {
    const W: f64 = 900.0;
    const H: f64 = 520.0;
    const LEFT: f64 = 72.0;
    const RIGHT: f64 = 240.0;
    const TOP: f64 = 48.0;
    const BOTTOM: f64 = 58.0;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let pts = series.iter().flat_map(|s| s.raw.iter().chain(&s.smooth));
    let (mut xmax, mut ymin, mut ymax) = (0f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if !ymin.is_finite() {
        (ymin, ymax) = (0.0, 1.0);
    }
    if ymax - ymin < 1e-9 {
        ymin = if ymin >= 0.0 {
            (ymin - 1.0).max(0.0)
        } else {
            ymin - 1.0
        };
        ymax += 1.0;
    }
    let (x0, x1, xstep, xt) = ticks(0.0, xmax.max(1.0), 8, 1.0);
    let (y0, y1, ystep, yt) = ticks(ymin, ymax, 6, 0.0);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| TOP + ph - (y - y0) / (y1 - y0) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="26" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
        LEFT + pw / 2.0,
        xml_escape(title)
    );
    // Grid and y ticks.
    let _ = writeln!(s, r##"<g class="y-axis" stroke="#000">"##);
    for &v in &yt {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.2}" x2="{:.2}" y2="{y:.2}" stroke="#e4e4e4"/><line x1="{:.2}" y1="{y:.2}" x2="{LEFT}" y2="{y:.2}"/><text x="{:.2}" y="{:.2}" text-anchor="end" stroke="none">{}</text>"##,
            LEFT + pw,
            LEFT - 5.0,
            LEFT - 8.0,
            y + 4.0,
            tick_label(v, ystep)
        );
    }
    let _ = writeln!(s, "</g>");
    // x ticks.
    let _ = writeln!(s, r##"<g class="x-axis" stroke="#000">"##);
    for &v in &xt {
        let x = px(v);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{:.2}" x2="{x:.2}" y2="{:.2}"/><text x="{x:.2}" y="{:.2}" text-anchor="middle" stroke="none">{}</text>"#,
            TOP + ph,
            TOP + ph + 5.0,
            TOP + ph + 19.0,
            tick_label(v, xstep)
        );
    }
    let _ = writeln!(s, "</g>");
    // Frame and axis labels.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#000"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.2}" y="{:.2}" text-anchor="middle" font-size="13">{}</text>"#,
        LEFT + pw / 2.0,
        H - 14.0,
        xml_escape(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.2}) rotate(-90)" text-anchor="middle" font-size="13">{}</text>"#,
        TOP + ph / 2.0,
        xml_escape(y_label)
    );
    // Lines.
    let poly = |p: &[(f64, f64)]| {
        p.iter()
            .map(|&(x, y)| format!("{:.2},{:.2}", px(x), py(y)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for se in series {
        let m = xml_escape(&se.method);
        let c = xml_escape(&se.colour);
        let _ = writeln!(s, r#"<g class="series" data-method="{m}">"#);
        let _ = writeln!(
            s,
            r#"<polyline class="raw" data-method="{m}" fill="none" stroke="{c}" stroke-width="1" stroke-opacity="0.55" points="{}"/>"#,
            poly(&se.raw)
        );
        let _ = writeln!(
            s,
            r#"<polyline class="smooth" data-method="{m}" fill="none" stroke="{c}" stroke-width="2.75" stroke-linejoin="round" points="{}"/>"#,
            poly(&se.smooth)
        );
        if se.smooth.len() == 1 {
            let (x, y) = se.smooth[0];
            let _ = writeln!(
                s,
                r#"<circle cx="{:.2}" cy="{:.2}" r="3" fill="{c}"/>"#,
                px(x),
                py(y)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    // Legend.
    let lx = LEFT + pw + 16.0;
    let _ = writeln!(s, r#"<g class="legend">"#);
    for (i, se) in series.iter().enumerate() {
        let y = TOP + 10.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2.75"/><text x="{}" y="{}">{} (n={})</text>"#,
            lx + 24.0,
            xml_escape(&se.colour),
            lx + 30.0,
            y + 4.0,
            xml_escape(&se.method),
            se.n
        );
    }
    let ny = TOP + 10.0 + 20.0 * series.len() as f64 + 8.0;
    for (j, part) in note.split('\n').enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{lx}" y="{}" font-size="10" fill="#555">{}</text>"##,
            ny + 13.0 * j as f64,
            xml_escape(part)
        );
    }
    let _ = writeln!(s, "</g>");
    s.push_str("</svg>\n");
    s
}

/// The two figures: eval accuracy and training accuracy (percent).
pub(super) fn figures(
    methods: &[MethodSummary],
    ema_factor: f64,
    title: Option<&str>,
) -> (String, String) {
    let cols = colours(methods);
    let pct = |c: &Curve| -> (Vec<f64>, Vec<f64>) {
        c.iter().map(|&(s, v)| (s as f64, 100.0 * v)).unzip()
    };
    let zip = |a: &[f64], b: Vec<f64>| -> Vec<(f64, f64)> { a.iter().copied().zip(b).collect() };
    let mut eval = Vec::new();
    let mut train = Vec::new();
    for (m, c) in methods.iter().zip(&cols) {
        let (xs, ys) = pct(&m.eval_curve);
        eval.push(Series {
            method: m.method.clone(),
            n: m.runs.len(),
            colour: c.to_string(),
            raw: zip(&xs, ys.clone()),
            smooth: zip(&xs, paper_ema(&ys, ema_factor)),
        });
        let (xs, ys) = pct(&m.train_curve);
        train.push(Series {
            method: m.method.clone(),
            n: m.runs.len(),
            colour: c.to_string(),
            raw: zip(&xs, ys.clone()),
            smooth: zip(&xs, ema(&ys, ema_factor)),
        });
    }
    let head = |what: &str| match title {
        Some(t) => format!("{t}: {what}"),
        None => what[..1].to_uppercase() + &what[1..],
    };
    let eval_svg = svg_chart(
        &head("eval accuracy"),
        "step",
        "eval accuracy (%)",
        &format!("mean over seeds\nthin: raw mean\nthick: paper EMA ({ema_factor}), rises with new highs"),
        &eval,
    );
    let train_svg = svg_chart(
        &head("training rollout accuracy"),
        "step",
        "training accuracy (%)",
        &format!("mean over seeds\nthin: raw mean\nthick: EMA ({ema_factor})"),
        &train,
    );
    (eval_svg, train_svg)
}
