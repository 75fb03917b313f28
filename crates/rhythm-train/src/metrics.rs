//! `metrics.jsonl`: one JSON object per finished step, each line fsync'd
//! when it is appended ([`append_jsonl`]), and cut back to the steps a
//! checkpoint holds when a run resumes ([`truncate_metrics`]), so that a run
//! killed at any instant and resumed writes exactly the lines of an
//! uninterrupted run.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::checkpoint::write_atomic;
use crate::{io_err, Result};

/// Appends `record` as one JSON line to `path` (created if missing) and
/// fsyncs the file.
pub fn append_jsonl(path: &Path, record: &impl Serialize) -> Result<()> {
    let mut line = serde_json::to_string(record).map_err(|e| crate::bad(path, e.to_string()))?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(io_err(path))
}

/// Cuts `metrics.jsonl` back to its lines of steps `1..=step`, in order
/// (a line of a later step, a repeated or out-of-order step, or a partial
/// last line written by a killed run ends what is kept). Rewrites the file
/// (atomically) only when something is dropped; a missing file is left
/// missing.
pub fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut keep = 0usize;
    for (expect, line) in (1usize..).zip(text.split_inclusive(|&b| b == b'\n')) {
        if expect > step || !line.ends_with(b"\n") {
            break;
        }
        let s = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()));
        if s != Some(expect as u64) {
            break;
        }
        keep += line.len();
    }
    if keep < text.len() {
        write_atomic(path, &text[..keep])?;
    }
    Ok(())
}
