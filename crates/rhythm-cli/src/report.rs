//! `report.html`: one self-contained page for an `analysis.json` document.
//!
//! The page has no external resource: the CSS and the script are inlined
//! (`assets/report.css`, `assets/report.js`), the charts are drawn as inline
//! SVG and canvas, and the data is the analysis document itself, embedded as
//! a `<script type="application/json" id="rhythm-data">` block. It shows the
//! response with tokens tinted by WAAD / FAI / receiver FAI / entropy (a
//! toggle), preplan and anchor tokens marked and chunk onsets drawn; the
//! aligned WAAD, FAI and entropy curves; heatmaps of the local and global
//! aggregate maps; and the head spans by layer with the groups and the
//! receiver heads.

use serde_json::Value;

const CSS: &str = include_str!("../assets/report.css");
const JS: &str = include_str!("../assets/report.js");

/// Serialises `v` for a `<script>` block: `<`, `>` and `&` become `\u003c`,
/// `\u003e` and `\u0026` (still valid JSON), so no `</script>` or `<!--` can
/// end the block early.
pub fn script_json(v: &Value) -> String {
    let s = serde_json::to_string(v).expect("a JSON value serialises");
    let mut out = String::with_capacity(s.len() + 64);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for an analysis document (the object `rhythm analyze` writes
/// to `analysis.json`).
pub fn render(doc: &Value) -> String {
    let model = doc["model"].as_str().unwrap_or("model");
    let n = doc["responses"].as_array().map_or(0, |a| a.len());
    // A plain-text fallback of the first response, for readers without script.
    let fallback = doc["responses"][0]["response"].as_str().unwrap_or("");
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rhythm analysis: {title}</title>
<style>
{CSS}
</style>
</head>
<body>
<header class="top" id="head"><h1>rhythm analysis</h1><div class="sub">{title} &middot; {n} response(s)</div></header>
<main>
<nav class="tabs" id="tabs"></nav>
<section class="card" id="text-card"><h2>Response</h2><noscript><pre>{fallback}</pre><p>This report draws its charts with JavaScript.</p></noscript></section>
<section class="card" id="curves-card"></section>
<section class="card" id="maps-card"></section>
<section class="card" id="heads-card"></section>
</main>
<footer>made by rhythm {version} &middot; Li et al. (2025), &ldquo;Attention Illuminates LLM Reasoning: The Preplan-and-Anchor Rhythm&rdquo;</footer>
<div class="tip" id="tip"></div>
<script type="application/json" id="rhythm-data">{data}</script>
<script>
{JS}
</script>
</body>
</html>
"#,
        title = escape_html(model),
        n = n,
        fallback = escape_html(fallback),
        version = env!("CARGO_PKG_VERSION"),
        data = script_json(doc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_json_cannot_close_the_script() {
        let v = json!({"text": "</script><!-- & \u{2028}"});
        let s = script_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn page_is_self_contained() {
        let doc = json!({"model": "m<1>", "responses": [{"response": "a</pre>b"}]});
        let html = render(&doc);
        for bad in ["src=\"http", "href=\"http", "url(http", "@import", "<link"] {
            assert!(!html.contains(bad), "{bad}");
        }
        assert!(html.contains("m&lt;1&gt;"));
        assert!(html.contains("a&lt;/pre&gt;b"));
    }
}
