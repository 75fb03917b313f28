//! `report.html` from `rhythm analyze`: self-contained, carries the analysis
//! data, has the sections the script draws into. With
//! `RHYTHM_CHECK_REPORT=1` (and Chromium installed) it also runs
//! `tools/check_report.sh`, which renders the page headless.

use std::process::Command;

use serde_json::Value;

mod common;
use common::{rhythm, root};

#[test]
fn report_is_self_contained_and_carries_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("p.jsonl");
    // A response with characters that must be escaped inside HTML / script.
    std::fs::write(
        &input,
        concat!(
            "{\"prompt\": \"what is 12+7?\\n\"}\n",
            "{\"prompt\": \"is 3<4?\", \"response\": \"<answer>yes</answer> 3 is less than 4. <!-- x\"}\n",
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let model = root().join("fixtures/models/tiny-qwen3");
    let (code, _, err) = rhythm(&[
        "analyze",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--max-new-tokens",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let analysis: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap()).unwrap();

    // No external resources of any kind.
    let lower = html.to_lowercase();
    for bad in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "src=\"//",
        "href=\"//",
        "url(http",
        "url(//",
        "@import",
        "<link",
        "<iframe",
    ] {
        assert!(!lower.contains(bad), "found {bad}");
    }
    assert!(!lower.contains("<script src"), "scripts are inline");
    assert!(lower.starts_with("<!doctype html>"));

    // The embedded data block is the analysis document.
    let start = html
        .find(r#"<script type="application/json" id="rhythm-data">"#)
        .expect("data block");
    let body = &html[start..];
    let open = body.find('>').unwrap() + 1;
    let close = body.find("</script>").unwrap();
    let data: Value = serde_json::from_str(&body[open..close]).unwrap();
    assert_eq!(data, analysis);
    assert_eq!(data["responses"].as_array().unwrap().len(), 2);
    // Two </script> closings (data block, script): nothing smuggled in by the data.
    assert_eq!(html.matches("</script>").count(), 2);

    // The sections the script fills, and the inline style and script.
    for id in [
        "id=\"head\"",
        "id=\"tabs\"",
        "id=\"text-card\"",
        "id=\"curves-card\"",
        "id=\"maps-card\"",
        "id=\"heads-card\"",
        "id=\"tip\"",
        "<style>",
        "renderCurves",
        "renderMaps",
        "renderHeads",
    ] {
        assert!(html.contains(id), "missing {id}");
    }
    // Every token carries what the page needs.
    for t in data["responses"][1]["tokens"].as_array().unwrap() {
        for k in [
            "text",
            "pos",
            "waad",
            "fai",
            "receiver_fai",
            "entropy",
            "delta",
            "preplan",
            "anchor",
            "chunk",
        ] {
            assert!(!t[k].is_null(), "token lacks {k}");
        }
    }

    if std::env::var("RHYTHM_CHECK_REPORT").as_deref() == Ok("1") {
        let shot = dir.path().join("shot.png");
        let st = Command::new(root().join("tools/check_report.sh"))
            .arg(out.join("report.html"))
            .arg(&shot)
            .status()
            .unwrap();
        assert!(st.success(), "tools/check_report.sh failed");
    }
}
