//! Crash-consistent files and checkpoint directories.
//!
//! Every write is atomic and durable: a file goes to a hidden temporary
//! sibling (`.{name}.tmp{pid}`), is fsync'd and renamed over its target,
//! and the parent directory is fsync'd ([`write_atomic`]); a checkpoint
//! directory is assembled under a temporary sibling name, each of its files
//! written synced, the directory fsync'd and then renamed into place, the
//! parent fsync'd ([`commit_dir`]). So a process killed at any moment
//! leaves the old or the new version, never half of one, plus perhaps a
//! temporary entry that [`clean_stale`] removes on the next start.
//!
//! A checkpoint's state file lists the size and a 64-bit content hash
//! ([`ContentHasher`]) of every other file ([`manifest`]); [`check_manifest`]
//! finds a checkpoint damaged after the fact, and [`find_latest_by`] falls
//! back past damaged ones to the newest intact checkpoint of a run
//! directory laid out as
//!
//! ```text
//! OUT/checkpoint-000010/   (one directory per saved step)
//! OUT/latest               the name of the newest complete checkpoint (a hint)
//! ```
//!
//! What a checkpoint holds (its state file, its weights) is the training
//! loop's business: `rhythm_rl::checkpoint` (GRPO runs) and
//! `rhythm_pretrain` (a single rolling checkpoint directory) build theirs
//! from these pieces.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{bad, io_err, Result};

/// Name of the pointer file in a run directory.
pub const LATEST_FILE: &str = "latest";

/// Size and content hash of one file of a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    /// Length in bytes.
    pub bytes: u64,
    /// [`content_hash`] of the bytes, as 16 hex digits.
    pub hash: String,
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

/// The hidden temporary sibling of `path` that this process writes:
/// `.{name}.tmp{pid}`.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp{}", std::process::id()))
}

/// Flushes the directory entry table of `dir` to disk (so that renames and
/// creations inside it survive a crash).
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(io_err(d))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically and durably: the temporary sibling
/// ([`temp_sibling`]) is written and fsync'd, renamed over `path`, and the
/// parent directory is fsync'd.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path);
    write_synced(&tmp, bytes)?;
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    sync_dir(parent_of(path))
}

/// Writes `bytes` to a new file `path` and fsyncs it (for files inside a
/// temporary directory that [`commit_dir`] renames into place).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::File::create(path).map_err(io_err(path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io_err(path))
}

/// A fresh, empty temporary directory for the future `dest`
/// ([`temp_sibling`]; a leftover of this process is removed first).
pub fn begin_dir(dest: &Path) -> Result<PathBuf> {
    let parent = parent_of(dest);
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = temp_sibling(dest);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    Ok(tmp)
}

/// Moves the finished temporary directory `tmp` (every file in it already
/// synced) to `dest`: `tmp` is fsync'd, an existing `dest` is first moved
/// aside (to `.{name}.tmp{pid}-old`, removed afterwards), and the parent is
/// fsync'd after the rename.
pub fn commit_dir(tmp: &Path, dest: &Path) -> Result<()> {
    sync_dir(tmp)?;
    let parent = parent_of(dest);
    if dest.exists() {
        let mut old = temp_sibling(dest).into_os_string();
        old.push("-old");
        let old = PathBuf::from(old);
        std::fs::rename(dest, &old).map_err(io_err(dest))?;
        std::fs::rename(tmp, dest).map_err(io_err(dest))?;
        sync_dir(parent)?;
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    } else {
        std::fs::rename(tmp, dest).map_err(io_err(dest))?;
        sync_dir(parent)?;
    }
    Ok(())
}

/// Whether `name` is a temporary entry that an interrupted write of the
/// file or directory `base` left: `.{base}.tmp...` (this module, and
/// `rhythm_model::save_pretrained`'s `.{base}.tmp-...`).
pub fn is_temp_of(name: &str, base: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_prefix(base))
        .is_some_and(|rest| rest.starts_with(".tmp"))
}

/// Whether `name` (an entry of a run's output directory) is a temporary
/// file or directory left by an interrupted write of a run directory
/// (all begin with a dot and carry `.tmp`), or by an older version
/// (`latest.tmp123`, `metrics.tmp123`, `config.tmp123`).
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

/// Removes the entries of `dir` that `is_stale` picks (temporaries that
/// killed runs left); returns their names, sorted. Two runs writing one
/// directory at once are not supported, so every such entry is stale when
/// a run starts.
pub fn clean_stale_by(dir: &Path, is_stale: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_stale(&name) {
            continue;
        }
        let p = e.path();
        let r = if e.file_type().map_err(io_err(&p))?.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        match r {
            Ok(()) => removed.push(name),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&p)(e)),
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    removed.sort();
    Ok(removed)
}

/// Removes the temporary entries of a run directory ([`is_stale_temp`]).
pub fn clean_stale(out: &Path) -> Result<Vec<String>> {
    clean_stale_by(out, is_stale_temp)
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
pub fn file_sum(path: &Path) -> Result<FileSum> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = ContentHasher::default();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
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

/// Size and hash of every plain file of `dir` except `state_file` (the file
/// that will hold this manifest).
pub fn manifest(dir: &Path, state_file: &str) -> Result<BTreeMap<String, FileSum>> {
    let mut files = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let fname = e.file_name().to_string_lossy().into_owned();
        if fname != state_file && e.file_type().map_err(io_err(dir))?.is_file() {
            files.insert(fname, file_sum(&e.path())?);
        }
    }
    Ok(files)
}

/// Checks the files of checkpoint `dir` against the manifest `files` read
/// from its state file `state`: every name in `required` is listed, every
/// listed name is a plain file name whose size and hash match. The error
/// names the file and what differs.
pub fn check_manifest(
    dir: &Path,
    state: &Path,
    files: &BTreeMap<String, FileSum>,
    required: &[&str],
) -> Result<()> {
    for need in required {
        if !files.contains_key(*need) {
            return Err(bad(state, format!("files lacks {need}")));
        }
    }
    for (name, want) in files {
        if name.contains('/') || name.contains('\\') || name == ".." || name == "." {
            return Err(bad(
                state,
                format!("files names `{name}`, expected a plain file name"),
            ));
        }
        let p = dir.join(name);
        let len = std::fs::metadata(&p).map_err(io_err(&p))?.len();
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
    Ok(())
}

/// Checks a checkpoint written before manifests existed: each of
/// `required` is a file, and each of `safetensors` has a readable
/// safetensors header.
pub fn check_legacy(dir: &Path, required: &[&str], safetensors: &[&str]) -> Result<()> {
    for f in required {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(bad(&p, "missing"));
        }
    }
    for f in safetensors {
        rhythm_model::weights::check_safetensors_file(&dir.join(f))?;
    }
    Ok(())
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

/// The newest checkpoint under `out` that `verify` accepts, and the newer
/// ones skipped as damaged (each with the reason).
pub fn find_latest_by<T>(
    out: &Path,
    verify: impl Fn(&Path) -> Result<T>,
) -> (Option<PathBuf>, Vec<(PathBuf, String)>) {
    let mut skipped = Vec::new();
    for (_, dir) in checkpoint_dirs(out) {
        match verify(&dir) {
            Ok(_) => return (Some(dir), skipped),
            Err(e) => skipped.push((dir, e.to_string())),
        }
    }
    (None, skipped)
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
        assert!(is_temp_of(".m.ckpt.tmp12", "m.ckpt"));
        assert!(is_temp_of(".m.ckpt.tmp12-old", "m.ckpt"));
        assert!(is_temp_of(".m.tmp-3-4", "m"));
        assert!(!is_temp_of("m.ckpt", "m.ckpt"));
        assert!(!is_temp_of(".m.ckpt2.tmp1", "m.ckpt"));
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

    #[test]
    fn committed_directory_replaces_the_old_and_its_manifest_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ck");
        for round in 0..2u8 {
            let tmp = begin_dir(&dest).unwrap();
            write_synced(&tmp.join("a.bin"), &[round; 20]).unwrap();
            write_synced(&tmp.join("state.json"), b"{}").unwrap();
            commit_dir(&tmp, &dest).unwrap();
        }
        assert_eq!(std::fs::read(dest.join("a.bin")).unwrap(), [1u8; 20]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let files = manifest(&dest, "state.json").unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a.bin"]);
        let state = dest.join("state.json");
        check_manifest(&dest, &state, &files, &["a.bin"]).unwrap();
        assert!(check_manifest(&dest, &state, &files, &["b.bin"]).is_err());
        std::fs::write(dest.join("a.bin"), [2u8; 20]).unwrap();
        let e = check_manifest(&dest, &state, &files, &[]).unwrap_err();
        assert!(e.to_string().contains("file damaged"), "{e}");
        std::fs::write(dest.join("a.bin"), [1u8; 19]).unwrap();
        let e = check_manifest(&dest, &state, &files, &[]).unwrap_err();
        assert!(e.to_string().contains("19 bytes"), "{e}");
    }
}
