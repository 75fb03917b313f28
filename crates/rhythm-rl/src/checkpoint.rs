//! Checkpoints: a Hugging Face model directory (`config.json`,
//! `model.safetensors` in f32, `tokenizer.json`, ...) that transformers can
//! load, plus `trainer_state.json` (step, configuration, head groups,
//! random-state description, AdamW step count) and `optimizer.safetensors`
//! (AdamW moments `m.{name}` and `v.{name}`).
//!
//! Layout under the output directory `OUT`:
//!
//! ```text
//! OUT/checkpoint-000010/   config.json model.safetensors tokenizer.json ...
//!                          trainer_state.json optimizer.safetensors
//! OUT/latest               the name of the newest complete checkpoint
//! ```
//!
//! Every write is atomic: a checkpoint is assembled in a temporary sibling
//! directory and renamed into place, and `latest` is written to a temporary
//! file and renamed, so a run killed at any moment leaves either the old or
//! the new checkpoint, never half of one.
//!
//! Randomness needs no saved generator state: every random choice of a
//! step (prompt order, sampling streams, the `random` strategy) is drawn
//! from ChaCha8 generators seeded from `(seed, step[, index])`, so the
//! step number restores it exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rhythm_core::HeadGroups;
use rhythm_model::{save_pretrained, write_safetensors, Model};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::grpo::AdamW;

/// Name of the trainer state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Name of the optimizer moments file inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Name of the pointer file in the output directory.
pub const LATEST_FILE: &str = "latest";

/// Everything besides weights and moments that a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Rollout steps completed.
    pub step: usize,
    /// AdamW updates taken (`t`).
    pub adam_t: u64,
    /// The run's configuration.
    pub config: TrainConfig,
    /// Head groups in force (static / refresh modes).
    pub groups: Option<HeadGroups>,
    /// How the random state is derived (informational): every generator is
    /// ChaCha8 seeded from `(seed, step[, index])`.
    pub rng: String,
}

/// Errors of checkpoint I/O.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Model save/load error.
    #[error(transparent)]
    Model(#[from] rhythm_model::ModelError),
    /// Tensor error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Bad state file.
    #[error("{path}: {msg}")]
    Bad {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory name of the checkpoint after `step` steps.
pub fn checkpoint_name(step: usize) -> String {
    format!("checkpoint-{step:06}")
}

/// Writes `bytes` to `path` atomically (temporary sibling, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Saves a checkpoint of `model` and `opt` as `out/checkpoint-{step}` and
/// points `out/latest` at it. `source` is the model directory the run
/// started from (its tokenizer and generation files are copied).
pub fn save(
    out: &Path,
    model: &Model,
    source: &Path,
    opt: &AdamW,
    state: &TrainerState,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let name = checkpoint_name(state.step);
    let dest = out.join(&name);
    let tmp = out.join(format!(".{name}.tmp{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    // 1. The HF directory (itself written atomically to `tmp`).
    save_pretrained(model, &tmp, DType::F32, Some(source))?;
    // 2. Optimizer moments and trainer state.
    let mut tensors = Vec::with_capacity(2 * opt.vars.len());
    for (i, (n, _)) in opt.vars.iter().enumerate() {
        tensors.push((format!("m.{n}"), opt.m[i].clone()));
        tensors.push((format!("v.{n}"), opt.v[i].clone()));
    }
    let meta = BTreeMap::from([("adam_t".to_string(), opt.t.to_string())]);
    write_safetensors(&tmp.join(OPTIMIZER_FILE), &tensors, &meta)?;
    let text = serde_json::to_string_pretty(state).expect("state serializes");
    std::fs::write(tmp.join(STATE_FILE), text).map_err(io(&tmp))?;
    // 3. Swap into place, then move the pointer.
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(io(&dest))?;
    }
    std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    write_atomic(&out.join(LATEST_FILE), name.as_bytes())?;
    Ok(dest)
}

/// The newest complete checkpoint under `out`: the one `latest` names, or
/// else the highest-numbered directory holding a state file.
pub fn latest(out: &Path) -> Option<PathBuf> {
    if let Ok(name) = std::fs::read_to_string(out.join(LATEST_FILE)) {
        let p = out.join(name.trim());
        if p.join(STATE_FILE).is_file() {
            return Some(p);
        }
    }
    let mut best: Option<PathBuf> = None;
    for e in std::fs::read_dir(out).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("checkpoint-")
            && e.path().join(STATE_FILE).is_file()
            && best.as_ref().is_none_or(|b| e.path() > *b)
        {
            best = Some(e.path());
        }
    }
    best
}

/// Reads a checkpoint's trainer state.
pub fn load_state(dir: &Path) -> Result<TrainerState, CheckpointError> {
    let p = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::Bad {
        path: p,
        msg: e.to_string(),
    })
}

/// Restores AdamW moments and step count from a checkpoint into `opt`
/// (whose variables must have the same names and shapes).
pub fn load_optimizer(dir: &Path, opt: &mut AdamW, device: &Device) -> Result<(), CheckpointError> {
    let p = dir.join(OPTIMIZER_FILE);
    let map = candle_core::safetensors::load(&p, device)?;
    for (i, (n, var)) in opt.vars.iter().enumerate() {
        for (kind, slot) in [("m", &mut opt.m[i]), ("v", &mut opt.v[i])] {
            let t: &Tensor =
                map.get(&format!("{kind}.{n}"))
                    .ok_or_else(|| CheckpointError::Bad {
                        path: p.clone(),
                        msg: format!("missing {kind}.{n}"),
                    })?;
            if t.dims() != var.as_tensor().dims() {
                return Err(CheckpointError::Bad {
                    path: p.clone(),
                    msg: format!("{kind}.{n} has shape {:?}", t.dims()),
                });
            }
            *slot = t.clone();
        }
    }
    let st = load_state(dir)?;
    opt.t = st.adam_t;
    Ok(())
}
