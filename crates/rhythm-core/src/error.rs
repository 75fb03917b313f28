//! Errors of the core: bad maps, bad parameters, empty responses.

use thiserror::Error;

/// What can go wrong in `rhythm-core`. Every message is one line that names
/// the offending value and what was expected.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// The response is empty or starts outside the sequence.
    #[error("response start {response_start} leaves no response in a sequence of {seq_len} tokens (expected 0 <= response_start < {seq_len})")]
    EmptyResponse {
        /// The offending response start.
        response_start: usize,
        /// The sequence length.
        seq_len: usize,
    },
    /// An attention map violates SPEC's definition of a causal map.
    #[error("attention map layer {layer} head {head} row {row}: {problem}")]
    BadMap {
        /// Layer of the offending head.
        layer: usize,
        /// Head index.
        head: usize,
        /// Row index.
        row: usize,
        /// What is wrong.
        problem: String,
    },
    /// A parameter outside its domain.
    #[error("{0}")]
    Param(String),
    /// Heads were given for different sequence layouts.
    #[error("head layer {layer} head {head} was summarised for a different sequence (expected response_start {expected_p}, seq_len {expected_n})")]
    Mismatch {
        /// Layer of the offending head.
        layer: usize,
        /// Head index.
        head: usize,
        /// Expected response start.
        expected_p: usize,
        /// Expected sequence length.
        expected_n: usize,
    },
}
