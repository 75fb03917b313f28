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
//! Every write is atomic and durable (the pieces are the training
//! toolkit's, [`rhythm_train::checkpoint`]): a checkpoint is assembled in a
//! temporary hidden sibling directory (`.checkpoint-000010.tmp{pid}`), each
//! of its files and then the directory itself are fsync'd, it is renamed
//! into place and the output directory is fsync'd; `latest` (like every
//! small file, [`write_atomic`]) goes through a synced temporary file and a
//! rename. So a run killed at any moment leaves the old or the new
//! checkpoint, never half of one, plus perhaps a temporary entry that
//! [`clean_stale`] removes when the run resumes.
//!
//! `trainer_state.json` lists the size and a 64-bit hash of every other
//! file of its checkpoint; [`latest`] returns the newest checkpoint whose
//! files match (and whose state is plausible), so a checkpoint corrupted
//! after the fact is skipped in favour of the previous good one
//! ([`find_latest`] says which were skipped and why). `latest` is only a
//! hint for people and tools: a complete directory newer than the one it
//! names (a run killed between the rename and the pointer's update) wins.
//!
//! Randomness needs no saved generator state: every random choice of a
//! step (prompt order, sampling streams, the `random` strategy) is drawn
//! from ChaCha8 generators seeded from `(seed, step[, index])`, so the
//! step number restores it exactly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use rhythm_core::HeadGroups;
use rhythm_model::{save_pretrained, Model};
use rhythm_train::checkpoint as files;
use rhythm_train::{bad, io_err, AdamW};
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;

pub use rhythm_train::checkpoint::{
    checkpoint_dirs, checkpoint_name, checkpoint_step, clean_stale, content_hash, is_stale_temp,
    sync_dir, write_atomic, ContentHasher, FileSum, LATEST_FILE,
};
/// Errors of checkpoint I/O (the training toolkit's error).
pub use rhythm_train::Error as CheckpointError;

/// Name of the trainer state file inside a checkpoint.
pub const STATE_FILE: &str = "trainer_state.json";
/// Name of the optimizer moments file inside a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Files every checkpoint holds besides its state.
const REQUIRED: [&str; 3] = ["model.safetensors", OPTIMIZER_FILE, "config.json"];

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
    /// Size and hash of every other file of the checkpoint, filled in by
    /// [`save`] (empty in checkpoints written before this field existed,
    /// which are then checked for presence and safetensors headers only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileSum>,
}

/// Saves a checkpoint of `model` and `opt` as `out/checkpoint-{step}` and
/// points `out/latest` at it. `source` is the model directory the run
/// started from (its tokenizer and generation files are copied). The
/// state's `files` is filled in here.
pub fn save(
    out: &Path,
    model: &Model,
    source: &Path,
    opt: &AdamW,
    state: &TrainerState,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(out).map_err(io_err(out))?;
    let name = checkpoint_name(state.step);
    let dest = out.join(&name);
    let tmp = files::temp_sibling(&dest);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    // 1. The HF directory (itself written and synced under another
    //    temporary name, then renamed to `tmp`).
    save_pretrained(model, &tmp, DType::F32, Some(source))?;
    // 2. Optimizer moments (synced).
    opt.save(&tmp.join(OPTIMIZER_FILE))?;
    // 3. The state, with the manifest of every other file, written last.
    let mut state = state.clone();
    state.files = files::manifest(&tmp, STATE_FILE)?;
    let text = serde_json::to_string_pretty(&state).expect("state serializes");
    files::write_synced(&tmp.join(STATE_FILE), text.as_bytes())?;
    // 4. Swap into place (an older directory of the same step, from a run
    //    that fell back past a corrupt checkpoint, is moved aside first),
    //    then move the pointer.
    files::commit_dir(&tmp, &dest)?;
    write_atomic(&out.join(LATEST_FILE), name.as_bytes())?;
    Ok(dest)
}

/// The newest intact checkpoint under `out` and the newer ones skipped as
/// damaged (each with the reason).
pub fn find_latest(out: &Path) -> (Option<PathBuf>, Vec<(PathBuf, String)>) {
    files::find_latest_by(out, verify)
}

/// The newest intact checkpoint under `out` (see [`find_latest`]).
pub fn latest(out: &Path) -> Option<PathBuf> {
    find_latest(out).0
}

/// Checks a checkpoint directory: a plausible state ([`load_state`]) whose
/// manifest matches every listed file (size and hash); for a checkpoint
/// without a manifest, that its weights and optimizer files exist and have
/// readable safetensors headers. Returns the state.
pub fn verify(dir: &Path) -> Result<TrainerState, CheckpointError> {
    let state = load_state(dir)?;
    let dirname = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if checkpoint_step(&dirname).is_some_and(|s| s != state.step) {
        return Err(bad(
            &dir.join(STATE_FILE),
            format!("step = {} but the directory is {dirname}", state.step),
        ));
    }
    if state.files.is_empty() {
        files::check_legacy(dir, &REQUIRED, &["model.safetensors", OPTIMIZER_FILE])?;
    } else {
        files::check_manifest(dir, &dir.join(STATE_FILE), &state.files, &REQUIRED)?;
    }
    Ok(state)
}

/// Reads a checkpoint's trainer state and checks that it is plausible:
/// `step <= config.steps` (a run never saves past its end), `adam_t <=
/// step * MAX_UPDATES_PER_STEP`, a valid configuration.
pub fn load_state(dir: &Path) -> Result<TrainerState, CheckpointError> {
    let p = dir.join(STATE_FILE);
    let len = std::fs::metadata(&p).map_err(io_err(&p))?.len();
    if len > MAX_STATE_BYTES {
        return Err(bad(
            &p,
            format!("{len} bytes, expected at most {MAX_STATE_BYTES} for a trainer state"),
        ));
    }
    let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    let st: TrainerState = serde_json::from_str(&text).map_err(|e| bad(&p, e.to_string()))?;
    if st.step > st.config.steps {
        return Err(bad(
            &p,
            format!(
                "step = {} exceeds the run's steps = {} (expected 0..={})",
                st.step, st.config.steps, st.config.steps
            ),
        ));
    }
    let max_t = (st.step as u64).saturating_mul(MAX_UPDATES_PER_STEP);
    if st.adam_t > max_t {
        return Err(bad(
            &p,
            format!(
                "adam_t = {} exceeds step x {MAX_UPDATES_PER_STEP} = {max_t} (expected 0..={max_t})",
                st.adam_t
            ),
        ));
    }
    st.config
        .validate()
        .map_err(|e| bad(&p, format!("config: {e}")))?;
    Ok(st)
}

/// Most AdamW updates one rollout step can take in a plausible state
/// (`grad_steps` may change between resumes, so the bound is loose).
pub const MAX_UPDATES_PER_STEP: u64 = 1 << 16;

/// Largest `trainer_state.json` accepted (head groups of a large model
/// take well under a megabyte).
pub const MAX_STATE_BYTES: u64 = 64 << 20;

/// Restores AdamW moments and step count from a checkpoint into `opt`
/// (whose variables must have the same names and shapes).
pub fn load_optimizer(dir: &Path, opt: &mut AdamW, device: &Device) -> Result<(), CheckpointError> {
    let st = load_state(dir)?;
    opt.load(&dir.join(OPTIMIZER_FILE), st.adam_t, device)
}
