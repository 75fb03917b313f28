//! JSONL loading for users' own data.
//!
//! One JSON object per line; blank (all-whitespace) lines are skipped. Two
//! record shapes are recognised:
//!
//! * `{"nums": [19, 36, 55, 7], "target": 65}`: a Countdown instance
//!   ([`Record::Countdown`]); `nums` is a non-empty array of integers in
//!   `0..=4294967295` and `target` one such integer;
//! * `{"prompt": "...", "answer": "..."}`: a prompt with its reference
//!   answer ([`Record::PromptAnswer`]) for the math or multiple-choice
//!   verifiers; `answer` may also be a JSON number (`"answer": 42`), which is
//!   kept as its JSON text.
//!
//! Other fields (an `id`, a `source`) are ignored. A line with `nums` is read
//! as Countdown even if it also has a `prompt`.
//!
//! These are the strict readers of rhythm's own shapes (kept for their
//! callers and the fuzz targets); `train`, `eval` and the analysis commands
//! read files through [`crate::data`], which adds TRL's standard and
//! conversational formats, settable column names and parquet.
//!
//! Any problem is a [`DatasetError`] whose one-line message names the file,
//! the 1-based line number and what was expected, e.g.
//! `data/train.jsonl:7: expected "target" to be a non-negative integer below 2^32, found -3`.
//! Loading never panics.

use std::fmt;
use std::path::{Path, PathBuf};

use rhythm_model::json_kind;
use serde_json::{Map, Value};

use crate::tasks::countdown::CountdownInstance;

/// A prompt with its reference answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PromptAnswer {
    /// The prompt, used verbatim.
    pub prompt: String,
    /// The reference answer.
    pub answer: String,
}

/// One line of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `{"nums": [...], "target": ...}`
    Countdown(CountdownInstance),
    /// `{"prompt": ..., "answer": ...}`
    PromptAnswer(PromptAnswer),
}

/// A dataset that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file that cannot be decoded (a corrupt parquet file).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A parquet row is not a record of the expected shape.
    #[error("{source_name}: row {row}: {message}")]
    Row {
        /// The file name.
        source_name: String,
        /// 1-based row number.
        row: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// The data cannot be used as asked (no dataset for a task that needs
    /// one, an empty training set, a size out of bounds).
    #[error("{0}")]
    Invalid(String),
    /// A line is not a record of the expected shape.
    #[error("{source_name}:{line}: {message}")]
    Line {
        /// The file (or other source) name.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
}

impl DatasetError {
    /// The 1-based line number of a line error.
    pub fn line(&self) -> Option<usize> {
        match self {
            DatasetError::Line { line, .. } => Some(*line),
            DatasetError::Row { row, .. } => Some(*row),
            DatasetError::Io { .. } | DatasetError::File { .. } | DatasetError::Invalid(_) => None,
        }
    }
}

struct PathDisplay<'a>(&'a Path);

impl fmt::Display for PathDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

fn read(path: &Path) -> Result<String, DatasetError> {
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads every record of a JSONL file, either shape.
pub fn load_jsonl(path: impl AsRef<Path>) -> Result<Vec<Record>, DatasetError> {
    let path = path.as_ref();
    parse_jsonl(&read(path)?, &PathDisplay(path).to_string())
}

/// Loads a JSONL file of Countdown records; a prompt/answer line is an error.
pub fn load_countdown(path: impl AsRef<Path>) -> Result<Vec<CountdownInstance>, DatasetError> {
    let path = path.as_ref();
    parse_countdown(&read(path)?, &PathDisplay(path).to_string())
}

/// Loads a JSONL file of prompt/answer records; a Countdown line is an error.
pub fn load_prompt_answer(path: impl AsRef<Path>) -> Result<Vec<PromptAnswer>, DatasetError> {
    let path = path.as_ref();
    parse_prompt_answer(&read(path)?, &PathDisplay(path).to_string())
}

/// Parses JSONL text; `source_name` names it in errors.
pub fn parse_jsonl(text: &str, source_name: &str) -> Result<Vec<Record>, DatasetError> {
    parse_lines(text, source_name, parse_record)
}

/// Parses JSONL text of Countdown records.
pub fn parse_countdown(
    text: &str,
    source_name: &str,
) -> Result<Vec<CountdownInstance>, DatasetError> {
    parse_lines(text, source_name, |object| {
        if !object.contains_key("nums") {
            return Err(format!(
                "expected a Countdown record {{\"nums\": [...], \"target\": ...}}, found {}",
                describe_keys(object)
            ));
        }
        parse_countdown_record(object)
    })
}

/// Parses JSONL text of prompt/answer records.
pub fn parse_prompt_answer(
    text: &str,
    source_name: &str,
) -> Result<Vec<PromptAnswer>, DatasetError> {
    parse_lines(text, source_name, |object| {
        if object.contains_key("nums") {
            return Err(
                "expected a record {\"prompt\": ..., \"answer\": ...}, found a Countdown record"
                    .to_string(),
            );
        }
        parse_prompt_answer_record(object)
    })
}

/// Serialises Countdown instances as JSONL (`{"nums":[...],"target":...}`
/// per line), readable by [`parse_countdown`].
pub fn countdown_to_jsonl(instances: &[CountdownInstance]) -> String {
    let mut out = String::new();
    for instance in instances {
        // Serialising plain integers cannot fail.
        if let Ok(line) = serde_json::to_string(instance) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Longest dataset line accepted, in bytes (1 MiB), checked before the
/// line is parsed (and long before anything is tokenized).
pub const MAX_LINE_BYTES: usize = 1 << 20;

fn parse_lines<T>(
    text: &str,
    source_name: &str,
    mut parse: impl FnMut(&Map<String, Value>) -> Result<T, String>,
) -> Result<Vec<T>, DatasetError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| DatasetError::Line {
            source_name: source_name.to_string(),
            line: index + 1,
            message,
        };
        if line.len() > MAX_LINE_BYTES {
            return Err(error(format!(
                "line of {} bytes is longer than the {MAX_LINE_BYTES}-byte limit",
                line.len()
            )));
        }
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            error(format!(
                "expected one JSON object per line, found invalid JSON ({} at column {})",
                json_reason(&e),
                e.column()
            ))
        })?;
        let Value::Object(object) = value else {
            return Err(error(format!(
                "expected a JSON object, found {}",
                json_kind(&value)
            )));
        };
        out.push(parse(&object).map_err(error)?);
    }
    Ok(out)
}

fn parse_record(object: &Map<String, Value>) -> Result<Record, String> {
    if object.contains_key("nums") {
        return parse_countdown_record(object).map(Record::Countdown);
    }
    if object.contains_key("prompt") {
        return parse_prompt_answer_record(object).map(Record::PromptAnswer);
    }
    Err(format!(
        "expected {{\"prompt\": ..., \"answer\": ...}} or {{\"nums\": [...], \"target\": ...}}, found {}",
        describe_keys(object)
    ))
}

/// A Countdown instance from a row's `nums` and `target`.
pub(crate) fn countdown_record(object: &Map<String, Value>) -> Result<CountdownInstance, String> {
    parse_countdown_record(object)
}

fn parse_countdown_record(object: &Map<String, Value>) -> Result<CountdownInstance, String> {
    let nums = match object.get("nums") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|item| {
                as_u32(item).ok_or_else(|| {
                    format!(
                        "expected \"nums\" to hold non-negative integers below 2^32, found {}",
                        short(item)
                    )
                })
            })
            .collect::<Result<Vec<u32>, String>>()?,
        Some(other) => {
            return Err(format!(
                "expected \"nums\" to be a non-empty array of integers, found {}",
                short(other)
            ))
        }
        None => return Err("expected a \"nums\" field".to_string()),
    };
    let target = match object.get("target") {
        Some(value) => as_u32(value).ok_or_else(|| {
            format!(
                "expected \"target\" to be a non-negative integer below 2^32, found {}",
                short(value)
            )
        })?,
        None => return Err("expected a \"target\" field next to \"nums\"".to_string()),
    };
    Ok(CountdownInstance { nums, target })
}

fn parse_prompt_answer_record(object: &Map<String, Value>) -> Result<PromptAnswer, String> {
    let prompt = match object.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "expected \"prompt\" to be a string, found {}",
                short(other)
            ))
        }
        None => return Err("expected a \"prompt\" field".to_string()),
    };
    let answer = match object.get("answer") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(format!(
                "expected \"answer\" to be a string or a number, found {}",
                short(other)
            ))
        }
        None => return Err("expected an \"answer\" field next to \"prompt\"".to_string()),
    };
    Ok(PromptAnswer { prompt, answer })
}

/// serde_json's message without its " at line L column C" suffix (each
/// JSONL line is parsed alone, so its line is always 1).
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

fn as_u32(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// A value for an error message: short ones verbatim, long ones by kind.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= 40 {
        text
    } else {
        json_kind(value).to_string()
    }
}

fn describe_keys(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "an empty object".to_string();
    }
    let keys: Vec<String> = object
        .keys()
        .take(5)
        .map(|k| short(&Value::String(k.clone())))
        .collect();
    let more = if object.len() > 5 { ", ..." } else { "" };
    format!("an object with keys {}{more}", keys.join(", "))
}
