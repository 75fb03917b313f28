//! Prompt files for `analyze`, `stats` and `perturb`, and atomic output.
//!
//! An input file is JSONL or parquet in TRL's standard or conversational
//! format (read by [`rhythm_rl::data`], with the column names of
//! [`DataSettings`]): `{"prompt": ..., "completion": ...}` (or today's
//! `"response"`), with the completion optional, or `{"messages": [...]}`
//! whose final assistant message, if any, is the response to analyse. A
//! prompt that is a list of messages goes through the model's chat
//! template. The whole file is read and checked before any model work, and
//! a malformed row is reported as `FILE:LINE: what is wrong` (`FILE: row
//! N: ...` for parquet).
//!
//! Output files are written to a temporary file in the destination directory
//! and renamed into place, so a reader never sees a half-written file.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use rhythm_model::Prompt;
use rhythm_rl::data::{DataSettings, Example, Loaded};

/// One prompt (and optionally its response) from an input file.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The prompt: text, or messages for the chat template.
    pub prompt: Prompt,
    /// The response text to analyse; `None` = generate one.
    pub response: Option<String>,
    /// Where it came from: `FILE:LINE`, or `--prompt` for the command line.
    pub origin: String,
}

/// Reads and checks a JSONL or parquet prompt file.
pub fn read_records(path: &Path, data: &DataSettings) -> Result<Vec<Record>> {
    records(data.load_examples(path)?, &path.display().to_string())
}

/// Parses the text of a JSONL prompt file with the default columns (`name`
/// is used in messages); the fuzz target's entry point.
#[allow(dead_code)]
pub fn parse_records(name: &str, text: &str) -> Result<Vec<Record>> {
    let data = DataSettings::default();
    let loaded =
        rhythm_rl::data::read_jsonl_rows(text.as_bytes(), name, false, |row| data.example(row))?;
    records(loaded, name)
}

fn records(loaded: Loaded<Example>, name: &str) -> Result<Vec<Record>> {
    let out: Vec<Record> = loaded
        .items
        .into_iter()
        .map(|(origin, e)| Record {
            prompt: e.prompt,
            response: e.completion,
            origin,
        })
        .collect();
    if out.is_empty() {
        bail!("{name}: no prompts (expected one JSON object per line, or parquet rows)");
    }
    Ok(out)
}

/// The records named by `--input FILE` or by `--prompt` (and `--response`).
pub fn records_from(
    input: Option<&Path>,
    prompt: Option<&str>,
    response: Option<&str>,
    data: &DataSettings,
) -> Result<Vec<Record>> {
    match (input, prompt) {
        (Some(path), None) => {
            if response.is_some() {
                bail!("--response goes with --prompt, not with --input");
            }
            read_records(path, data)
        }
        (None, Some(p)) => {
            if p.is_empty() {
                bail!("--prompt is empty");
            }
            Ok(vec![Record {
                prompt: Prompt::Text(p.to_string()),
                response: response.map(str::to_string),
                origin: "--prompt".into(),
            }])
        }
        (Some(_), Some(_)) => bail!("pass either --prompt or --input, not both"),
        (None, None) => bail!("pass --prompt TEXT or --input FILE (.jsonl or .parquet)"),
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
    fn reads_lines_and_reports_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.jsonl");
        let data = DataSettings::default();
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            let from_file = read_records(&path, &data);
            let from_text = parse_records(&path.display().to_string(), text);
            assert_eq!(
                from_file.as_ref().map_err(|e| e.to_string()),
                from_text.as_ref().map_err(|e| e.to_string())
            );
            from_file
        };
        let text = "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b\", \"response\": \"c\", \"id\": 3}\n\
                    {\"messages\": [{\"role\": \"user\", \"content\": \"d\"}, {\"role\": \"assistant\", \"content\": \"e\"}]}\n";
        let r = read(text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].response, None);
        assert_eq!(r[1].response.as_deref(), Some("c"));
        assert!(r[1].origin.ends_with("f.jsonl:3"), "{}", r[1].origin);
        assert!(matches!(&r[2].prompt, Prompt::Messages(m) if m.len() == 1));
        assert_eq!(r[2].response.as_deref(), Some("e"));
        let long = format!(
            "\n{{\"prompt\": \"{}\"}}",
            "x".repeat(rhythm_rl::data::MAX_LINE_BYTES)
        );
        for (bad, want) in [
            (
                "{\"prompt\": \"a\"}\n{oops",
                "f.jsonl:2: expected one JSON object per line, found invalid JSON",
            ),
            (
                "{\"prompt\": 3}",
                "f.jsonl:1: expected \"prompt\" to be text",
            ),
            ("\n\n[1]", "f.jsonl:3: expected a JSON object"),
            (
                "{\"response\": \"x\"}",
                "f.jsonl:1: expected a \"prompt\" or \"messages\" field",
            ),
            (
                "{\"prompt\": \"a\", \"response\": 1}",
                "f.jsonl:1: expected \"response\"",
            ),
            ("\n", "no prompts"),
            (long.as_str(), "f.jsonl:2: line of 1048590 bytes is longer"),
        ] {
            let e = read(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
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
