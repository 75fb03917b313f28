//! Typed errors of the model engine.
//!
//! Every variant renders as a single line that names the file, field or
//! argument at fault and says what was expected, so that the CLI can print
//! it as is.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Everything that can go wrong while loading, running or saving a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A required file is absent.
    #[error("{}: file not found (expected {what})", path.display())]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
        /// What the file should have contained.
        what: &'static str,
    },
    /// An I/O operation on a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed.
    #[error("{}: invalid JSON: {msg}", path.display())]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parser's message (with line and column).
        msg: String,
    },
    /// A configuration field has a value the engine cannot use.
    #[error("{}: field `{field}`: {msg}", path.display())]
    InvalidConfig {
        /// The configuration file.
        path: PathBuf,
        /// The offending field.
        field: String,
        /// What was expected.
        msg: String,
    },
    /// `model_type` names a family the engine does not implement.
    #[error("{}: unsupported model_type `{model_type}` (expected one of qwen3, qwen2, llama)", path.display())]
    UnsupportedModelType {
        /// The configuration file.
        path: PathBuf,
        /// The value found.
        model_type: String,
    },
    /// `rope_scaling` has a type other than `default` or `llama3`.
    #[error("{}: unsupported rope_scaling type `{rope_type}` (expected null, `default` or `llama3`)", path.display())]
    UnsupportedRopeScaling {
        /// The configuration file.
        path: PathBuf,
        /// The value found.
        rope_type: String,
    },
    /// A safetensors file is malformed or truncated.
    #[error("{}: not a valid safetensors file: {msg}", path.display())]
    Safetensors {
        /// The weights file.
        path: PathBuf,
        /// The decoder's message.
        msg: String,
    },
    /// A weight the configuration requires is absent from the checkpoint.
    #[error("{}: missing weight `{name}`", path.display())]
    MissingWeight {
        /// The checkpoint directory.
        path: PathBuf,
        /// The weight name.
        name: String,
    },
    /// A weight's shape disagrees with the configuration.
    #[error("{}: weight `{name}` has shape {found:?} but config.json implies {expected:?}", path.display())]
    ShapeMismatch {
        /// The weights file.
        path: PathBuf,
        /// The weight name.
        name: String,
        /// The shape implied by the configuration.
        expected: Vec<usize>,
        /// The shape stored in the file.
        found: Vec<usize>,
    },
    /// A weight is stored in a dtype the engine does not read.
    #[error("{}: weight `{name}` has dtype {dtype} (expected F32, BF16 or F16)", path.display())]
    UnsupportedDtype {
        /// The weights file.
        path: PathBuf,
        /// The weight name.
        name: String,
        /// The dtype found.
        dtype: String,
    },
    /// A token id is not below `vocab_size`.
    #[error("token id {id} at position {index} is outside the vocabulary (expected < vocab_size = {vocab_size})")]
    TokenOutOfRange {
        /// Position of the token in its sequence.
        index: usize,
        /// The offending id.
        id: i64,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A sequence is longer than the model's position range.
    #[error("sequence of {len} tokens is longer than max_position_embeddings = {max}")]
    SequenceTooLong {
        /// Length requested.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// The tokenizer could not be loaded or failed to encode.
    #[error("{}: tokenizer error: {msg}", path.display())]
    Tokenizer {
        /// `tokenizer.json`.
        path: PathBuf,
        /// The tokenizer's message.
        msg: String,
    },
    /// A caller-supplied argument is out of range.
    #[error("invalid argument `{name}`: {msg}")]
    InvalidArgument {
        /// The argument.
        name: &'static str,
        /// What was expected.
        msg: String,
    },
    /// A weight, logit, attention or log-probability that is NaN or
    /// infinite (the message names the tensor, layer or position).
    #[error("{what}")]
    NonFinite {
        /// Where, and what was found.
        what: String,
    },
    /// A tensor operation failed (a bug or an out-of-memory condition).
    #[error("tensor computation failed: {}", one_line(&.0.to_string()))]
    Candle(#[from] candle_core::Error),
}

fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            ModelError::MissingFile {
                path,
                what: "an existing file",
            }
        } else {
            ModelError::Io { path, source }
        }
    }

    pub(crate) fn arg(name: &'static str, msg: impl Into<String>) -> Self {
        ModelError::InvalidArgument {
            name,
            msg: msg.into(),
        }
    }
}

/// What kind of JSON value `value` is, for messages ("a string", "an
/// array", ...): the one wording every reader of JSON input uses.
pub fn json_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
