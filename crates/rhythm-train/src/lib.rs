//! The training toolkit: the pieces that every training loop of the
//! project needs, written once and shared by GRPO (`rhythm-rl`) and
//! supervised pretraining (`rhythm-pretrain`).
//!
//! - [`settings`]: the optimizer and schedule knobs ([`OptimSettings`]),
//!   declared once with their documentation, defaults (GRPO's; pretraining
//!   lays its own preset, [`OptimSettings::pretrain`], under its flags) and
//!   validation, flattened into both run configurations;
//! - [`optim`]: AdamW with checkpointable moments and one weight-decay rule
//!   (matrices and embeddings decay, norm gains never do), global-norm
//!   clipping, and the collection of a model's trainable weights
//!   ([`optim::trainable_vars`]);
//! - [`schedule`]: the learning rate per step (linear warmup, then
//!   constant, linear or cosine decay to a floor);
//! - [`checkpoint`]: crash-consistent files and directories (temporary
//!   sibling, fsync, rename, fsync of the parent), content manifests that
//!   detect damaged checkpoints, the `checkpoint-NNNNNN` run-directory
//!   layout with fallback to the newest intact checkpoint, and the removal
//!   of temporaries that killed runs leave;
//! - [`metrics`]: the append-only, fsync'd `metrics.jsonl` and its cut back
//!   to a checkpoint's step on resume;
//! - [`eval`]: the greedy decoding loop of periodic evaluations;
//! - [`seed`]: the one seed-derivation helper, so that every random choice
//!   of a step is a function of `(seed, step[, index])` and a resumed run
//!   repeats exactly what an uninterrupted one does.
//!
//! The toolkit knows nothing of tasks, rewards or rhythm credit: it sits
//! between the model engine ([`rhythm_model`]) and the training loops.

pub mod checkpoint;
pub mod eval;
pub mod metrics;
pub mod optim;
pub mod schedule;
pub mod seed;
pub mod settings;

use std::path::{Path, PathBuf};

pub use optim::{clip_grad_norm, global_norm, trainable_vars, AdamW};
pub use schedule::Schedule;
pub use seed::mix;
pub use settings::OptimSettings;

/// Why a toolkit operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system error on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An error from the model engine.
    #[error(transparent)]
    Model(#[from] rhythm_model::ModelError),
    /// A tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file whose content is unusable (damaged, inconsistent, foreign).
    #[error("{path}: {msg}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// Result alias of the toolkit.
pub type Result<T> = std::result::Result<T, Error>;

/// A closure mapping an I/O error on `path` to [`Error::Io`].
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// [`Error::Bad`] of `path`.
pub fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::Bad {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}
