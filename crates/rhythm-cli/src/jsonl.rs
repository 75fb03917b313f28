//! Prompt files for `analyze`, `stats` and `perturb`, and atomic output.
//!
//! An input file holds one JSON object per line, `{"prompt": ..., "response":
//! ...}`, with `response` optional (other fields are ignored). Blank lines are
//! skipped. The whole file is read and checked before any model work, and a
//! malformed line is reported as `FILE:LINE: what is wrong`.
//!
//! Output files are written to a temporary file in the destination directory
//! and renamed into place, so a reader never sees a half-written file.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// One prompt (and optionally its response) from an input file.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The prompt text.
    pub prompt: String,
    /// The response text to analyse; `None` = generate one.
    pub response: Option<String>,
    /// Where it came from: `FILE:LINE`, or `--prompt` for the command line.
    pub origin: String,
}

/// Longest input line accepted, in bytes (1 MiB, some 250k tokens of
/// English, more than any supported model's context). Checked before a
/// line is parsed or tokenized: tokenizing takes a few hundred times the
/// text's size in memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Parses the text of a JSONL prompt file (`name` is used in messages).
pub fn parse_records(name: &str, text: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        if line.len() > MAX_LINE_BYTES {
            bail!(
                "{origin}: line of {} bytes is longer than the {MAX_LINE_BYTES}-byte limit",
                line.len()
            );
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{origin}: not valid JSON ({e})"))?;
        let obj = match v.as_object() {
            Some(o) => o,
            None => {
                bail!("{origin}: expected a JSON object {{\"prompt\": ..., \"response\": ...}}")
            }
        };
        let prompt = match obj.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => bail!("{origin}: \"prompt\" must be a string"),
            None => bail!("{origin}: missing \"prompt\""),
        };
        if prompt.is_empty() {
            bail!("{origin}: \"prompt\" is empty");
        }
        let response = match obj.get("response") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => bail!("{origin}: \"response\" must be a string or null"),
        };
        out.push(Record {
            prompt,
            response,
            origin,
        });
    }
    if out.is_empty() {
        bail!("{name}: no prompts (expected one JSON object per line)");
    }
    Ok(out)
}

/// Reads and parses a JSONL prompt file.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_records(&path.display().to_string(), &text)
}

/// The records named by `--input FILE` or by `--prompt` (and `--response`).
pub fn records_from(
    input: Option<&Path>,
    prompt: Option<&str>,
    response: Option<&str>,
) -> Result<Vec<Record>> {
    match (input, prompt) {
        (Some(path), None) => {
            if response.is_some() {
                bail!("--response goes with --prompt, not with --input");
            }
            read_records(path)
        }
        (None, Some(p)) => {
            if p.is_empty() {
                bail!("--prompt is empty");
            }
            Ok(vec![Record {
                prompt: p.to_string(),
                response: response.map(str::to_string),
                origin: "--prompt".into(),
            }])
        }
        (Some(_), Some(_)) => bail!("pass either --prompt or --input, not both"),
        (None, None) => bail!("pass --prompt TEXT or --input FILE.jsonl"),
    }
}

/// Checks before any work that `path` can receive an output file: its
/// directory exists and `path` is not itself a directory.
pub fn check_destination(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "--out {}: directory {} does not exist (create it first)",
            path.display(),
            dir.display()
        );
    }
    if path.is_dir() {
        bail!(
            "--out {}: is a directory, expected a file path",
            path.display()
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, flushed, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.sync_all().ok();
        drop(f);
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            d.sync_all().ok();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_reports_line_numbers() {
        let long = format!("\n{{\"prompt\": \"{}\"}}", "x".repeat(MAX_LINE_BYTES));
        let text = "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\", \"response\": \"c\", \"id\": 3}\n";
        let r = parse_records("f.jsonl", text).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].response, None);
        assert_eq!(r[1].response.as_deref(), Some("c"));
        assert_eq!(r[1].origin, "f.jsonl:3");
        for (bad, want) in [
            ("{\"prompt\": \"a\"}\n{oops", "f.jsonl:2: not valid JSON"),
            ("{\"prompt\": 3}", "f.jsonl:1: \"prompt\" must be a string"),
            ("\n\n[1]", "f.jsonl:3: expected a JSON object"),
            ("{\"response\": \"x\"}", "f.jsonl:1: missing \"prompt\""),
            (
                "{\"prompt\": \"a\", \"response\": 1}",
                "f.jsonl:1: \"response\"",
            ),
            ("\n", "no prompts"),
            (long.as_str(), "f.jsonl:2: line of 1048590 bytes is longer"),
        ] {
            let e = parse_records("f.jsonl", bad).unwrap_err().to_string();
            assert!(e.starts_with(want) || e.contains(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
