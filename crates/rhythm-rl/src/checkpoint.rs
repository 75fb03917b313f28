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
//! Every write is atomic and durable: a checkpoint is assembled in a
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

/// Size and content hash of one file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Length in bytes.
    pub bytes: u64,
    /// [`content_hash`] of the bytes, as 16 hex digits.
    pub hash: String,
}

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

fn bad(path: &Path, msg: impl Into<String>) -> CheckpointError {
    CheckpointError::Bad {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// The directory name of the checkpoint after `step` steps.
pub fn checkpoint_name(step: usize) -> String {
    format!("checkpoint-{step:06}")
}

/// The step of a checkpoint directory name (`checkpoint-000010` -> 10).
pub fn checkpoint_step(name: &str) -> Option<usize> {
    let digits = name.strip_prefix("checkpoint-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Flushes the directory entry table of `dir` to disk (so that renames and
/// creations inside it survive a crash).
pub fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    let d = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(io(d))
}

/// Writes `bytes` to `path` atomically and durably: a hidden temporary
/// sibling `.{name}.tmp{pid}` is written and fsync'd, renamed over `path`,
/// and the parent directory is fsync'd.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::io::Write;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Whether `name` (an entry of a run's output directory) is a temporary
/// file or directory left by an interrupted write of this module or of
/// `save_pretrained` (all begin with a dot and carry `.tmp`), or by an
/// older version (`latest.tmp123`, `metrics.tmp123`, `config.tmp123`).
pub fn is_stale_temp(name: &str) -> bool {
    let hidden = name.starts_with('.')
        && name.contains(".tmp")
        && ["checkpoint-", "latest", "metrics.jsonl", "config.toml"]
            .iter()
            .any(|k| name.trim_start_matches('.').starts_with(k));
    let legacy = ["latest.tmp", "metrics.tmp", "config.tmp"].iter().any(|k| {
        name.strip_prefix(k)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    });
    hidden || legacy
}

/// Removes the temporary entries ([`is_stale_temp`]) that killed runs left
/// in `out`; returns their names. Two runs writing one directory at once
/// are not supported, so every such entry is stale when a run starts.
pub fn clean_stale(out: &Path) -> Result<Vec<String>, CheckpointError> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(out) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io(out)(e)),
    };
    for e in entries {
        let e = e.map_err(io(out))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_stale_temp(&name) {
            continue;
        }
        let p = e.path();
        let r = if e.file_type().map_err(io(&p))?.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
    }
    if !removed.is_empty() {
        sync_dir(out)?;
    }
    removed.sort();
    Ok(removed)
}

/// A streaming 64-bit content hash (FNV-1a-like over little-endian 8-byte
/// words, the length mixed in, then a final avalanche; not cryptographic):
/// detects truncated or altered checkpoint files.
#[derive(Clone, Debug)]
pub struct ContentHasher {
    h: u64,
    len: u64,
    tail: Vec<u8>,
}

impl Default for ContentHasher {
    fn default() -> Self {
        ContentHasher {
            h: 0xCBF2_9CE4_8422_2325,
            len: 0,
            tail: Vec::with_capacity(8),
        }
    }
}

impl ContentHasher {
    const P: u64 = 0x0000_0100_0000_01B3;

    fn word(&mut self, w: &[u8]) {
        let x = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        self.h = (self.h ^ x).wrapping_mul(Self::P).rotate_left(29);
    }

    /// Feeds more bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if !self.tail.is_empty() {
            let need = (8 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.tail.len() < 8 {
                return;
            }
            let t = std::mem::take(&mut self.tail);
            self.word(&t);
        }
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.word(w);
        }
        self.tail.extend_from_slice(words.remainder());
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> u64 {
        let mut h = self.h;
        for &b in &self.tail {
            h = (h ^ b as u64).wrapping_mul(Self::P);
        }
        h ^= self.len.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }
}

/// [`ContentHasher`] over `bytes` at once.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = ContentHasher::default();
    h.update(bytes);
    h.finish()
}

/// Size and hash of a file, read in 1 MiB pieces.
fn file_sum(path: &Path) -> Result<FileSum, CheckpointError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = ContentHasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).map_err(io(path))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
    }
    Ok(FileSum {
        bytes: h.len,
        hash: format!("{:016x}", h.finish()),
    })
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
    std::fs::create_dir_all(out).map_err(io(out))?;
    let name = checkpoint_name(state.step);
    let dest = out.join(&name);
    let tmp = out.join(format!(".{name}.tmp{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    // 1. The HF directory (itself written and synced under another
    //    temporary name, then renamed to `tmp`).
    save_pretrained(model, &tmp, DType::F32, Some(source))?;
    // 2. Optimizer moments (synced by write_safetensors).
    let mut tensors = Vec::with_capacity(2 * opt.vars.len());
    for (i, (n, _)) in opt.vars.iter().enumerate() {
        tensors.push((format!("m.{n}"), opt.m[i].clone()));
        tensors.push((format!("v.{n}"), opt.v[i].clone()));
    }
    let meta = BTreeMap::from([("adam_t".to_string(), opt.t.to_string())]);
    write_safetensors(&tmp.join(OPTIMIZER_FILE), &tensors, &meta)?;
    // 3. The state, with the manifest of every other file, written last.
    let mut state = state.clone();
    state.files.clear();
    for e in std::fs::read_dir(&tmp).map_err(io(&tmp))? {
        let e = e.map_err(io(&tmp))?;
        let fname = e.file_name().to_string_lossy().into_owned();
        if fname != STATE_FILE && e.file_type().map_err(io(&tmp))?.is_file() {
            state.files.insert(fname, file_sum(&e.path())?);
        }
    }
    let text = serde_json::to_string_pretty(&state).expect("state serializes");
    write_synced(&tmp.join(STATE_FILE), text.as_bytes())?;
    sync_dir(&tmp)?;
    // 4. Swap into place (an older directory of the same step, from a run
    //    that fell back past a corrupt checkpoint, is moved aside first),
    //    then move the pointer.
    if dest.exists() {
        let old = out.join(format!(".{name}.tmp{}-old", std::process::id()));
        std::fs::rename(&dest, &old).map_err(io(&dest))?;
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(out)?;
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(out)?;
    }
    write_atomic(&out.join(LATEST_FILE), name.as_bytes())?;
    Ok(dest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io(path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io(path))
}

/// The checkpoint directories under `out`, newest (highest step) first.
pub fn checkpoint_dirs(out: &Path) -> Vec<(usize, PathBuf)> {
    let mut v: Vec<(usize, PathBuf)> = match std::fs::read_dir(out) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                checkpoint_step(&name).map(|s| (s, e.path()))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort_by(|a, b| b.cmp(a));
    v
}

/// The newest intact checkpoint under `out` and the newer ones skipped as
/// damaged (each with the reason).
pub fn find_latest(out: &Path) -> (Option<PathBuf>, Vec<(PathBuf, String)>) {
    let mut skipped = Vec::new();
    for (_, dir) in checkpoint_dirs(out) {
        match verify(&dir) {
            Ok(_) => return (Some(dir), skipped),
            Err(e) => skipped.push((dir, e.to_string())),
        }
    }
    (None, skipped)
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
        for f in ["model.safetensors", OPTIMIZER_FILE, "config.json"] {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(bad(&p, "missing"));
            }
        }
        for f in ["model.safetensors", OPTIMIZER_FILE] {
            let p = dir.join(f);
            rhythm_model::weights::check_safetensors_file(&p)?;
        }
        return Ok(state);
    }
    for need in ["model.safetensors", OPTIMIZER_FILE, "config.json"] {
        if !state.files.contains_key(need) {
            return Err(bad(&dir.join(STATE_FILE), format!("files lacks {need}")));
        }
    }
    for (name, want) in &state.files {
        if name.contains('/') || name.contains('\\') || name == ".." {
            return Err(bad(
                &dir.join(STATE_FILE),
                format!("files names `{name}`, expected a plain file name"),
            ));
        }
        let p = dir.join(name);
        let len = std::fs::metadata(&p).map_err(io(&p))?.len();
        if len != want.bytes {
            return Err(bad(
                &p,
                format!("{len} bytes, the checkpoint's state says {}", want.bytes),
            ));
        }
        let got = file_sum(&p)?;
        if got.hash != want.hash {
            return Err(bad(
                &p,
                format!(
                    "content hash {} differs from the state's {} (file damaged)",
                    got.hash, want.hash
                ),
            ));
        }
    }
    Ok(state)
}

/// Reads a checkpoint's trainer state and checks that it is plausible:
/// `step <= config.steps` (a run never saves past its end), `adam_t <=
/// step * MAX_UPDATES_PER_STEP`, a valid configuration.
pub fn load_state(dir: &Path) -> Result<TrainerState, CheckpointError> {
    let p = dir.join(STATE_FILE);
    let len = std::fs::metadata(&p).map_err(io(&p))?.len();
    if len > MAX_STATE_BYTES {
        return Err(bad(
            &p,
            format!("{len} bytes, expected at most {MAX_STATE_BYTES} for a trainer state"),
        ));
    }
    let text = std::fs::read_to_string(&p).map_err(io(&p))?;
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
    let p = dir.join(OPTIMIZER_FILE);
    let map = candle_core::safetensors::load(&p, device)?;
    for (i, (n, var)) in opt.vars.iter().enumerate() {
        for (kind, slot) in [("m", &mut opt.m[i]), ("v", &mut opt.v[i])] {
            let t: &Tensor = map
                .get(&format!("{kind}.{n}"))
                .ok_or_else(|| bad(&p, format!("missing {kind}.{n}")))?;
            if t.dims() != var.as_tensor().dims() {
                return Err(bad(
                    &p,
                    format!(
                        "{kind}.{n} has shape {:?}, expected {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    ),
                ));
            }
            if t.dtype() != DType::F32 {
                return Err(bad(
                    &p,
                    format!("{kind}.{n} has dtype {:?}, expected F32", t.dtype()),
                ));
            }
            *slot = t.clone();
        }
    }
    let st = load_state(dir)?;
    opt.t = st.adam_t;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_hash_equals_one_shot_and_sees_every_byte() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let whole = content_hash(&data);
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let mut h = ContentHasher::default();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(h.finish(), whole, "split at {split}");
        }
        let mut bytewise = ContentHasher::default();
        data.iter().for_each(|b| bytewise.update(&[*b]));
        assert_eq!(bytewise.finish(), whole);
        for i in [0, 3, 8, 999] {
            let mut d = data.clone();
            d[i] ^= 1;
            assert_ne!(content_hash(&d), whole, "flip at {i}");
        }
        assert_ne!(content_hash(&data[..999]), whole);
        assert_ne!(content_hash(&[0u8; 8]), content_hash(&[0u8; 16]));
    }

    #[test]
    fn temp_names_and_checkpoint_names() {
        for n in [
            ".checkpoint-000010.tmp123",
            "..checkpoint-000010.tmp123.tmp-123-456",
            ".checkpoint-000010.tmp123-old",
            ".latest.tmp5",
            ".metrics.jsonl.tmp5",
            ".config.toml.tmp5",
            "latest.tmp77",
            "metrics.tmp77",
        ] {
            assert!(is_stale_temp(n), "{n}");
        }
        for n in [
            "checkpoint-000010",
            "latest",
            "metrics.jsonl",
            ".hidden",
            "notes.tmp",
            "latest.tmp",
            ".git",
        ] {
            assert!(!is_stale_temp(n), "{n}");
        }
        assert_eq!(checkpoint_step("checkpoint-000010"), Some(10));
        assert_eq!(checkpoint_step(&checkpoint_name(1234567)), Some(1234567));
        for n in ["checkpoint-", "checkpoint-1x", "checkpoint--1", "ckpt-1"] {
            assert_eq!(checkpoint_step(n), None, "{n}");
        }
    }

    #[test]
    fn clean_stale_removes_only_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(".checkpoint-000002.tmp9/x")).unwrap();
        std::fs::write(d.join(".latest.tmp9"), "x").unwrap();
        std::fs::create_dir_all(d.join("checkpoint-000002")).unwrap();
        std::fs::write(d.join("metrics.jsonl"), "").unwrap();
        let removed = clean_stale(d).unwrap();
        assert_eq!(removed, [".checkpoint-000002.tmp9", ".latest.tmp9"]);
        let mut left: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["checkpoint-000002", "metrics.jsonl"]);
        assert!(clean_stale(&d.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn write_atomic_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latest");
        write_atomic(&p, b"a").unwrap();
        write_atomic(&p, b"checkpoint-000002").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "checkpoint-000002");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
