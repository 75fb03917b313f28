//! Users' datasets in TRL's formats, from JSONL or parquet, into
//! [`Task`]s (for `train` and `eval`) and [`Example`]s (prompts with
//! optional responses, for `analyze`, `stats` and `perturb`).
//!
//! **Files.** A path ending in `.parquet` (or `.pq`) is read as parquet,
//! one row group at a time ([`parquet`]); anything else as JSONL, one JSON
//! object per line, streamed line by line, with blank lines skipped and a
//! line longer than [`MAX_LINE_BYTES`] refused before it is parsed. Either
//! way each row is a JSON object, and at most [`MAX_ROWS`] rows are read.
//!
//! **Rows.** TRL's formats, with the column names of [`DataSettings`]:
//! * *standard*: `{"prompt": "text", "completion": "text"}`;
//! * *conversational*: `{"messages": [{"role", "content"}, ...]}`, where a
//!   final assistant message is the completion, or `{"prompt": [messages],
//!   "completion": [{"role": "assistant", ...}]}`;
//! * the task's answer in `answer` (a string or a number) for the math and
//!   multiple-choice verifiers, and Countdown's `{"nums", "target"}`;
//! * today's shapes: `{"prompt", "answer"}` and `{"prompt", "response"}`
//!   (`response` is read when `completion` is absent and the completion
//!   column was not renamed).
//!
//! A message list goes through the model's chat template when the prompt is
//! built ([`rhythm_model::ChatSettings`]); plain text stays plain unless
//! `--chat-template on`.
//!
//! **Errors.** A file that cannot be read or decoded, or a row that is not a
//! row of the expected shape, is a one-line [`DatasetError`] naming the file
//! and the line (`data.jsonl:7: ...`) or row (`data.parquet: row 7: ...`).
//! With `skip_invalid_rows` a row of the wrong shape is skipped instead, and
//! the count of skipped rows is printed (and returned); a file that cannot
//! be read is never skipped.

pub mod parquet;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use rhythm_model::json_kind;
use rhythm_model::{ChatSettings, Prompt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{TaskKind, MAX_SPLIT};
use crate::dataset::{self, DatasetError};
use crate::tasks::{countdown, Task};

/// Longest JSONL line (or parquet row, as JSON) accepted, in bytes.
pub const MAX_LINE_BYTES: usize = dataset::MAX_LINE_BYTES;

/// Most rows read from one file (the largest split, [`MAX_SPLIT`]).
pub const MAX_ROWS: usize = MAX_SPLIT;

/// How dataset rows are read and prompts built: the column names, whether
/// bad rows are skipped, and the chat template. Shared by `train` (flat
/// keys of its TOML file), `eval`, `analyze`, `stats` and `perturb`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Args)]
#[serde(default)]
pub struct DataSettings {
    /// Column of a prompt: text, or a list of messages (TRL's
    /// conversational prompt). Default `prompt`.
    #[arg(long, default_value = "prompt")]
    pub prompt_field: String,
    /// Column of a conversation (a list of `{"role", "content"}` messages; a
    /// final assistant message is the completion); used when present,
    /// before the prompt column. Default `messages`.
    #[arg(long, default_value = "messages")]
    pub messages_field: String,
    /// Column of a completion (text, or a list holding the assistant's
    /// message); `analyze`, `stats` and `perturb` analyse it instead of
    /// generating one. Default `completion` (`response` is read too when
    /// this is left at its default).
    #[arg(long, default_value = "completion")]
    pub completion_field: String,
    /// Column of the reference answer for the math and choice verifiers (a
    /// string or a number). Default `answer`.
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// Skip rows of the wrong shape (missing or mistyped columns, invalid
    /// JSON lines) and print how many were skipped, instead of stopping at
    /// the first. Default false.
    #[arg(long)]
    pub skip_invalid_rows: bool,
    /// The chat template (`chat_template = "auto" | "on" | "off"`,
    /// `enable_thinking`; declared once in [`ChatSettings`]).
    #[serde(flatten)]
    #[command(flatten)]
    pub chat: ChatSettings,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            prompt_field: "prompt".into(),
            messages_field: "messages".into(),
            completion_field: "completion".into(),
            answer_field: "answer".into(),
            skip_invalid_rows: false,
            chat: ChatSettings::default(),
        }
    }
}

/// A row-level problem: [`RowError::Field`] rows may be skipped, a
/// [`RowError::Fatal`] one ends the file.
#[derive(Debug)]
pub enum RowError {
    /// The row is not of the expected shape.
    Field(String),
    /// The file cannot be read further.
    Fatal(String),
}

/// The items read from a file, with where each came from.
#[derive(Debug)]
pub struct Loaded<T> {
    /// Each item with its origin (`FILE:LINE` or `FILE: row N`).
    pub items: Vec<(String, T)>,
    /// Rows skipped under `skip_invalid_rows`.
    pub skipped: usize,
}

/// Whether `path` is read as parquet (by its extension).
pub fn is_parquet(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("parquet" | "pq")
    )
}

/// Reads every row of `path` (JSONL or parquet) through `parse`; a row
/// that `parse` refuses is an error, or skipped and counted when `skip`.
pub fn read_rows<T>(
    path: &Path,
    skip: bool,
    mut parse: impl FnMut(&Map<String, Value>) -> Result<T, String>,
) -> Result<Loaded<T>, DatasetError> {
    let name = path.display().to_string();
    if !is_parquet(path) {
        let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return read_jsonl_rows(file, &name, skip, parse);
    }
    let mut out = Loaded {
        items: Vec::new(),
        skipped: 0,
    };
    let mut accept = |origin: String,
                      index: usize,
                      row: Result<Map<String, Value>, RowError>,
                      out: &mut Loaded<T>|
     -> Result<(), DatasetError> {
        let error = |message: String| row_error(&name, index, message);
        if out.items.len() >= MAX_ROWS {
            return Err(error(format!(
                "more than {MAX_ROWS} rows (the largest split accepted)"
            )));
        }
        let result = match row {
            Ok(object) => parse(&object),
            Err(RowError::Field(m)) => Err(m),
            Err(RowError::Fatal(m)) => return Err(error(m)),
        };
        match result {
            Ok(item) => out.items.push((origin, item)),
            Err(_) if skip => out.skipped += 1,
            Err(message) => return Err(error(message)),
        }
        Ok(())
    };
    {
        let (rows, _) = parquet::open(path).map_err(|message| DatasetError::File {
            path: path.to_path_buf(),
            message,
        })?;
        for (i, row) in rows.enumerate() {
            if let Ok(object) = &row {
                let size = serde_json::to_string(object).map_or(0, |s| s.len());
                if size > MAX_LINE_BYTES {
                    accept(
                        format!("{name}: row {}", i + 1),
                        i + 1,
                        Err(RowError::Field(format!(
                            "row of {size} bytes (as JSON) is longer than the {MAX_LINE_BYTES}-byte limit"
                        ))),
                        &mut out,
                    )?;
                    continue;
                }
            }
            accept(format!("{name}: row {}", i + 1), i + 1, row, &mut out)?;
        }
    }
    report_skipped(&name, &out);
    Ok(out)
}

/// Reads the JSONL rows of `reader` (named `name` in errors) through
/// `parse`, as [`read_rows`] does for a JSONL file.
pub fn read_jsonl_rows<T>(
    reader: impl Read,
    name: &str,
    skip: bool,
    mut parse: impl FnMut(&Map<String, Value>) -> Result<T, String>,
) -> Result<Loaded<T>, DatasetError> {
    let mut out = Loaded {
        items: Vec::new(),
        skipped: 0,
    };
    let mut lines = Lines::new(reader);
    while let Some(line) = lines.next_line().map_err(|source| DatasetError::Io {
        path: PathBuf::from(name),
        source,
    })? {
        let number = lines.number;
        let error = |message: String| DatasetError::Line {
            source_name: name.to_string(),
            line: number,
            message,
        };
        if out.items.len() >= MAX_ROWS {
            return Err(error(format!(
                "more than {MAX_ROWS} rows (the largest split accepted)"
            )));
        }
        let row = match line {
            Line::TooLong(len) => Err(format!(
                "line of {len} bytes is longer than the {MAX_LINE_BYTES}-byte limit"
            )),
            Line::NotUtf8 => Err("expected UTF-8 text, found invalid bytes".into()),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => parse_object(&text),
        };
        match row.and_then(|object| parse(&object)) {
            Ok(item) => out.items.push((format!("{name}:{number}"), item)),
            Err(_) if skip => out.skipped += 1,
            Err(message) => return Err(error(message)),
        }
    }
    report_skipped(name, &out);
    Ok(out)
}

fn report_skipped<T>(name: &str, out: &Loaded<T>) {
    if out.skipped > 0 {
        eprintln!(
            "{name}: skipped {} invalid row{} of {} (skip_invalid_rows)",
            out.skipped,
            if out.skipped == 1 { "" } else { "s" },
            out.skipped + out.items.len()
        );
    }
}

fn row_error(name: &str, row: usize, message: String) -> DatasetError {
    DatasetError::Row {
        source_name: name.to_string(),
        row,
        message,
    }
}

fn parse_object(text: &str) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let reason = e.to_string();
        let reason = reason
            .rfind(" at line ")
            .map_or(reason.as_str(), |p| &reason[..p])
            .to_string();
        format!(
            "expected one JSON object per line, found invalid JSON ({reason} at column {})",
            e.column()
        )
    })?;
    match value {
        Value::Object(object) => Ok(object),
        other => Err(format!(
            "expected a JSON object, found {}",
            json_kind(&other)
        )),
    }
}

enum Line {
    Text(String),
    TooLong(usize),
    NotUtf8,
}

/// JSONL lines, read with a bound: a line longer than [`MAX_LINE_BYTES`]
/// is measured and passed over without being held.
struct Lines<R> {
    reader: BufReader<R>,
    number: usize,
}

impl<R: Read> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            reader: BufReader::new(inner),
            number: 0,
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        let mut buf = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 2;
        let n = (&mut self.reader).take(limit).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if n as u64 == limit {
            // Longer than the limit: count the rest of the line away.
            let mut len = buf.len();
            loop {
                let chunk = self.reader.fill_buf()?;
                if chunk.is_empty() {
                    break;
                }
                match chunk.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        len += p;
                        self.reader.consume(p + 1);
                        break;
                    }
                    None => {
                        let k = chunk.len();
                        len += k;
                        self.reader.consume(k);
                    }
                }
            }
            return Ok(Some(Line::TooLong(len)));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if buf.len() > MAX_LINE_BYTES {
            return Ok(Some(Line::TooLong(buf.len())));
        }
        if self.number == 1 && buf.starts_with("\u{feff}".as_bytes()) {
            buf.drain(..3);
        }
        Ok(Some(match String::from_utf8(buf) {
            Ok(s) => Line::Text(s),
            Err(_) => Line::NotUtf8,
        }))
    }
}

/// A prompt with what the row says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// The prompt: text or messages.
    pub prompt: Prompt,
    /// The completion (response), when the row has one.
    pub completion: Option<String>,
    /// The reference answer, when the row has one.
    pub answer: Option<String>,
}

impl DataSettings {
    /// The example in one row (see the module docs for the shapes).
    pub fn example(&self, row: &Map<String, Value>) -> Result<Example, String> {
        let mut completion = None;
        let prompt = if let Some(messages) = row.get(&self.messages_field).filter(|v| !v.is_null())
        {
            let field = &self.messages_field;
            let Value::Array(list) = messages else {
                return Err(format!(
                    "expected \"{field}\" to be a list of {{\"role\", \"content\"}} messages, found {}",
                    json_kind(messages)
                ));
            };
            let mut list = list.clone();
            if list
                .last()
                .and_then(|m| m.get("role"))
                .and_then(Value::as_str)
                == Some("assistant")
            {
                let last = list.pop().expect("non-empty");
                completion = Some(
                    message_text(&last)
                        .map_err(|m| format!("\"{field}\": the final assistant message: {m}"))?,
                );
            }
            if list.is_empty() {
                return Err(format!(
                    "expected \"{field}\" to hold a prompt before the final assistant message, found none"
                ));
            }
            Prompt::from_json(&Value::Array(list)).map_err(|m| format!("\"{field}\": {m}"))?
        } else if let Some(value) = row.get(&self.prompt_field) {
            let field = &self.prompt_field;
            match value {
                Value::String(s) if s.is_empty() => return Err(format!("\"{field}\" is empty")),
                Value::String(_) | Value::Array(_) => {
                    Prompt::from_json(value).map_err(|m| format!("\"{field}\": {m}"))?
                }
                other => {
                    return Err(format!(
                        "expected \"{field}\" to be text or a list of messages, found {}",
                        json_kind(other)
                    ))
                }
            }
        } else {
            return Err(format!(
                "expected a \"{}\" or \"{}\" field, found {}",
                self.prompt_field,
                self.messages_field,
                describe_keys(row)
            ));
        };
        if completion.is_none() {
            let mut field = self.completion_field.as_str();
            if !row.contains_key(field) && field == "completion" && row.contains_key("response") {
                field = "response";
            }
            completion = match row.get(field) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(list)) => {
                    let last = list.last().ok_or_else(|| {
                        format!("expected \"{field}\" to hold the assistant's message, found []")
                    })?;
                    Some(message_text(last).map_err(|m| format!("\"{field}\": {m}"))?)
                }
                Some(other) => {
                    return Err(format!(
                        "expected \"{field}\" to be text or a list of messages, found {}",
                        json_kind(other)
                    ))
                }
            };
        }
        let answer = match row.get(&self.answer_field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(format!(
                    "expected \"{}\" to be a string or a number, found {}",
                    self.answer_field,
                    json_kind(other)
                ))
            }
        };
        Ok(Example {
            prompt,
            completion,
            answer,
        })
    }

    /// The task in one row: Countdown's `{"nums", "target"}`, or a prompt
    /// with its answer for math and choice.
    pub fn task(&self, row: &Map<String, Value>, kind: TaskKind) -> Result<Task, String> {
        if kind == TaskKind::Countdown {
            if !row.contains_key("nums") {
                return Err(format!(
                    "expected a Countdown record {{\"nums\": [...], \"target\": ...}}, found {}",
                    describe_keys(row)
                ));
            }
            return dataset::countdown_record(row).map(Task::Countdown);
        }
        let example = self.example(row)?;
        let answer = example.answer.ok_or_else(|| {
            format!(
                "expected an \"{}\" field (the reference answer) next to the prompt",
                self.answer_field
            )
        })?;
        Ok(match kind {
            TaskKind::Math => Task::Math {
                prompt: example.prompt,
                answer,
            },
            _ => Task::Choice {
                prompt: example.prompt,
                key: answer,
            },
        })
    }

    /// The tasks of one file.
    pub fn load_tasks_file(&self, path: &Path, kind: TaskKind) -> Result<Vec<Task>, DatasetError> {
        let loaded = read_rows(path, self.skip_invalid_rows, |row| self.task(row, kind))?;
        Ok(loaded.items.into_iter().map(|(_, t)| t).collect())
    }

    /// The examples of one file (for `analyze`, `stats`, `perturb`).
    pub fn load_examples(&self, path: &Path) -> Result<Loaded<Example>, DatasetError> {
        read_rows(path, self.skip_invalid_rows, |row| self.example(row))
    }
}

fn message_text(message: &Value) -> Result<String, String> {
    match message.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "expected \"content\" to be text, found {}",
            json_kind(other)
        )),
        None => Err("expected a \"content\" field".into()),
    }
}

/// Where the training and evaluation tasks come from.
#[derive(Clone, Debug)]
pub struct TaskSource {
    /// The task family.
    pub task: TaskKind,
    /// Training file; none = the generated Countdown train split.
    pub dataset: Option<PathBuf>,
    /// Evaluation file; none = the generated Countdown test split (or no
    /// evaluation for math and choice).
    pub eval_dataset: Option<PathBuf>,
    /// Seed of the generated Countdown splits.
    pub data_seed: u64,
    /// Size of the generated Countdown train split.
    pub train_size: usize,
    /// Size of the generated Countdown test split.
    pub test_size: usize,
    /// How files are read and prompts built.
    pub data: DataSettings,
}

/// Training and evaluation tasks named by `src`.
pub fn load_tasks(src: &TaskSource) -> Result<(Vec<Task>, Vec<Task>), DatasetError> {
    for (name, v) in [("train_size", src.train_size), ("test_size", src.test_size)] {
        if v > MAX_SPLIT {
            return Err(DatasetError::Invalid(format!(
                "{name} = {v}, expected at most {MAX_SPLIT}"
            )));
        }
    }
    let file = |path: &Path, kind: TaskKind| src.data.load_tasks_file(path, kind);
    let generated = || countdown::splits(src.data_seed, src.train_size, src.test_size);
    let tasks_of = |v: Vec<countdown::CountdownInstance>| -> Vec<Task> {
        v.into_iter().map(Task::Countdown).collect()
    };
    let (train, eval) = match (&src.dataset, &src.eval_dataset, src.task) {
        (Some(d), Some(e), k) => (file(d, k)?, file(e, k)?),
        (Some(d), None, TaskKind::Countdown) => {
            (file(d, TaskKind::Countdown)?, tasks_of(generated().test))
        }
        (Some(d), None, k) => (file(d, k)?, Vec::new()),
        (None, e, TaskKind::Countdown) => {
            let s = generated();
            let ev = match e {
                Some(e) => file(e, TaskKind::Countdown)?,
                None => tasks_of(s.test),
            };
            (tasks_of(s.train), ev)
        }
        (None, _, k) => {
            return Err(DatasetError::Invalid(format!(
                "task {k:?} needs a dataset (JSONL or parquet of prompt/answer rows)"
            )))
        }
    };
    if train.is_empty() {
        return Err(DatasetError::Invalid("the training set is empty".into()));
    }
    Ok((train, eval))
}

fn describe_keys(object: &Map<String, Value>) -> String {
    if object.is_empty() {
        return "an empty object".to_string();
    }
    let keys: Vec<String> = object
        .keys()
        .take(5)
        .map(|k| Value::String(k.chars().take(40).collect()).to_string())
        .collect();
    let more = if object.len() > 5 { ", ..." } else { "" };
    format!("an object with keys {}{more}", keys.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn standard_and_conversational_rows() {
        let s = DataSettings::default();
        let e = s
            .example(&obj(
                json!({"prompt": "2+2?", "completion": "4", "answer": 4}),
            ))
            .unwrap();
        assert_eq!(e.prompt, Prompt::Text("2+2?".into()));
        assert_eq!(e.completion.as_deref(), Some("4"));
        assert_eq!(e.answer.as_deref(), Some("4"));
        let e = s
            .example(&obj(json!({"messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"}
            ]})))
            .unwrap();
        assert!(matches!(&e.prompt, Prompt::Messages(m) if m.len() == 2));
        assert_eq!(e.completion.as_deref(), Some("4"));
        let e = s
            .example(&obj(json!({
                "prompt": [{"role": "user", "content": "hi"}],
                "completion": [{"role": "assistant", "content": "yo"}]
            })))
            .unwrap();
        assert!(matches!(&e.prompt, Prompt::Messages(m) if m.len() == 1));
        assert_eq!(e.completion.as_deref(), Some("yo"));
        // The legacy `response` column.
        let e = s
            .example(&obj(json!({"prompt": "a", "response": "b"})))
            .unwrap();
        assert_eq!(e.completion.as_deref(), Some("b"));
        // Renamed columns.
        let r = DataSettings {
            prompt_field: "question".into(),
            answer_field: "label".into(),
            ..DataSettings::default()
        };
        let t = r
            .task(
                &obj(json!({"question": "q", "label": "B"})),
                TaskKind::Choice,
            )
            .unwrap();
        assert_eq!(
            t,
            Task::Choice {
                prompt: "q".into(),
                key: "B".into()
            }
        );
    }

    #[test]
    fn bad_rows_are_named() {
        let s = DataSettings::default();
        for (row, want) in [
            (
                json!({"x": 1}),
                "expected a \"prompt\" or \"messages\" field, found an object with keys \"x\"",
            ),
            (
                json!({"prompt": 3}),
                "expected \"prompt\" to be text or a list of messages, found a number",
            ),
            (json!({"prompt": ""}), "\"prompt\" is empty"),
            (
                json!({"messages": "hi"}),
                "expected \"messages\" to be a list",
            ),
            (
                json!({"messages": [{"role": "assistant", "content": "x"}]}),
                "to hold a prompt before",
            ),
            (
                json!({"messages": [{"content": "x"}]}),
                "\"messages\": message 0: expected a \"role\" field",
            ),
            (
                json!({"prompt": "a", "answer": [1]}),
                "expected \"answer\" to be a string or a number, found an array",
            ),
            (
                json!({"prompt": "a", "completion": 2}),
                "expected \"completion\" to be text",
            ),
        ] {
            let e = s.example(&obj(row)).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
        let e = s
            .task(&obj(json!({"prompt": "a"})), TaskKind::Math)
            .unwrap_err();
        assert!(e.contains("expected an \"answer\" field"), "{e}");
        let e = s
            .task(&obj(json!({"prompt": "a"})), TaskKind::Countdown)
            .unwrap_err();
        assert!(e.contains("expected a Countdown record"), "{e}");
    }

    #[test]
    fn jsonl_rows_stream_skip_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        std::fs::write(
            &path,
            format!(
                "\u{feff}{{\"prompt\": \"a\", \"answer\": 1}}\r\n\n{{\"prompt\": 3}}\n{long}\n[1]\n{{oops\n{{\"prompt\": \"b\", \"answer\": \"2\"}}"
            ),
        )
        .unwrap();
        let strict = DataSettings::default();
        let e = strict
            .load_tasks_file(&path, TaskKind::Math)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.jsonl:3: expected \"prompt\" to be text"),
            "{e}"
        );
        let lenient = DataSettings {
            skip_invalid_rows: true,
            ..DataSettings::default()
        };
        let loaded = read_rows(&path, true, |row| lenient.task(row, TaskKind::Math)).unwrap();
        assert_eq!(loaded.skipped, 4);
        assert_eq!(loaded.items.len(), 2);
        assert_eq!(loaded.items[1].0, format!("{}:7", path.display()));
        // The long line is reported with its length, not held.
        let only_long = dir.path().join("l.jsonl");
        std::fs::write(&only_long, format!("{long}\n")).unwrap();
        let e = strict
            .load_tasks_file(&only_long, TaskKind::Math)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "l.jsonl:1: line of {} bytes is longer",
                MAX_LINE_BYTES + 10
            )),
            "{e}"
        );
    }
}
