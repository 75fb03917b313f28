//! Reading HF checkpoints (one or several safetensors shards) and writing
//! them back atomically.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::model::weight_specs;

/// The safetensors files of a checkpoint directory: the shards named by
/// `model.safetensors.index.json`, else `model.safetensors`, else every
/// `*.safetensors` file (sorted).
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| ModelError::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: index.clone(),
            msg: e.to_string(),
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| ModelError::InvalidConfig {
                path: index.clone(),
                field: "weight_map".into(),
                msg: "expected an object mapping weight names to shard files".into(),
            })?;
        let mut files: Vec<PathBuf> = Vec::new();
        for (name, f) in map {
            // Names and values come from the file: control characters are
            // escaped so that a message stays one line.
            let field = format!("weight_map.{}", name.escape_debug());
            let f = f.as_str().ok_or_else(|| ModelError::InvalidConfig {
                path: index.clone(),
                field: field.clone(),
                msg: "expected a file name".into(),
            })?;
            // A shard is a file of the model directory: no separators, no
            // `.`/`..`, no control characters (no path outside the directory,
            // no line break in a later "file not found").
            if f.is_empty()
                || f == "."
                || f == ".."
                || f.contains(['/', '\\'])
                || f.chars().any(char::is_control)
            {
                return Err(ModelError::InvalidConfig {
                    path: index.clone(),
                    field,
                    msg: format!(
                        "`{}` is not a file name of the model directory",
                        f.escape_debug()
                    ),
                });
            }
            let p = dir.join(f);
            if !files.contains(&p) {
                files.push(p);
            }
        }
        files.sort();
        for f in &files {
            if !f.exists() {
                return Err(ModelError::MissingFile {
                    path: f.clone(),
                    what: "a safetensors shard listed in model.safetensors.index.json",
                });
            }
        }
        return Ok(files);
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::MissingFile {
            path: single,
            what: "model weights (model.safetensors or *.safetensors shards)",
        });
    }
    Ok(files)
}

/// Opened safetensors shards with a name-to-shard routing table.
pub struct Shards {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    routing: HashMap<String, usize>,
    dir: PathBuf,
}

impl Shards {
    /// Memory-maps every file and reads its header.
    pub fn open(dir: &Path, paths: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for (i, p) in paths.iter().enumerate() {
            // Header bounds first (checked arithmetic, one-line errors).
            check_safetensors_file(p)?;
            // SAFETY: the file is mapped read-only; like every safetensors
            // reader we assume it is not truncated while we read it.
            let st = unsafe { MmapedSafetensors::new(p) }.map_err(|e| ModelError::Safetensors {
                path: p.clone(),
                msg: st_message(&e),
            })?;
            for (name, _) in st.tensors() {
                routing.insert(name, i);
            }
            files.push((p.clone(), st));
        }
        Ok(Shards {
            files,
            routing,
            dir: dir.to_path_buf(),
        })
    }

    /// Checks that every weight `cfg` needs is present with the right shape
    /// and a supported dtype, then loads them all as `f32`.
    pub fn load_f32(&self, cfg: &Config, device: &Device) -> Result<HashMap<String, Tensor>> {
        let specs = weight_specs(cfg);
        // 1. Validate names, shapes and dtypes before reading any data.
        for spec in &specs {
            let (path, st) = self.file_of(&spec.name)?;
            let view = st.get(&spec.name).map_err(|e| ModelError::Safetensors {
                path: path.clone(),
                msg: st_message(&e),
            })?;
            if view.shape() != spec.shape.as_slice() {
                return Err(ModelError::ShapeMismatch {
                    path: path.clone(),
                    name: spec.name.clone(),
                    expected: spec.shape.clone(),
                    found: view.shape().to_vec(),
                });
            }
            let dt = format!("{:?}", view.dtype());
            if !matches!(dt.as_str(), "F32" | "BF16" | "F16") {
                return Err(ModelError::UnsupportedDtype {
                    path: path.clone(),
                    name: spec.name.clone(),
                    dtype: dt,
                });
            }
        }
        // 2. Read (refusing NaN / infinite values, one pass over the
        //    stored bytes) and convert to f32 once.
        let mut out = HashMap::with_capacity(specs.len());
        for spec in specs {
            let (path, st) = self.file_of(&spec.name)?;
            if let Ok(view) = st.get(&spec.name) {
                let dt = format!("{:?}", view.dtype());
                if let Some((i, v)) = first_non_finite(&dt, view.data()) {
                    return Err(ModelError::NonFinite {
                        what: format!(
                            "{}: weight `{}` holds a non-finite value ({v}) at flat index {i} \
                             (expected finite weights)",
                            path.display(),
                            spec.name
                        ),
                    });
                }
            }
            let t = st
                .load(&spec.name, device)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|e| ModelError::Safetensors {
                    path: path.clone(),
                    msg: format!("cannot read `{}`: {}", spec.name, st_message(&e)),
                })?;
            out.insert(spec.name, t);
        }
        Ok(out)
    }

    fn file_of(&self, name: &str) -> Result<&(PathBuf, MmapedSafetensors)> {
        let i = *self
            .routing
            .get(name)
            .ok_or_else(|| ModelError::MissingWeight {
                path: self.dir.clone(),
                name: name.to_string(),
            })?;
        Ok(&self.files[i])
    }
}

/// Largest safetensors header accepted (the safetensors crate's limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// The first value of raw little-endian `data` of safetensors dtype
/// `dtype` (`F32`, `BF16`, `F16`; other dtypes are not scanned) that is NaN
/// or infinite: its element index and value.
pub fn first_non_finite(dtype: &str, data: &[u8]) -> Option<(usize, f32)> {
    match dtype {
        "F32" => data.chunks_exact(4).enumerate().find_map(|(i, c)| {
            let b = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            (b & 0x7f80_0000 == 0x7f80_0000).then(|| (i, f32::from_bits(b)))
        }),
        "BF16" => data.chunks_exact(2).enumerate().find_map(|(i, c)| {
            let b = u16::from_le_bytes([c[0], c[1]]);
            (b & 0x7f80 == 0x7f80).then(|| (i, half::bf16::from_bits(b).to_f32()))
        }),
        "F16" => data.chunks_exact(2).enumerate().find_map(|(i, c)| {
            let b = u16::from_le_bytes([c[0], c[1]]);
            (b & 0x7c00 == 0x7c00).then(|| (i, half::f16::from_bits(b).to_f32()))
        }),
        _ => None,
    }
}

/// Bits per element of a safetensors dtype name.
fn st_dtype_bits(name: &str) -> Option<u64> {
    Some(match name {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "U16" | "I16" | "F16" | "BF16" => 16,
        "U32" | "I32" | "F32" => 32,
        "U64" | "I64" | "F64" => 64,
        _ => return None,
    })
}

/// Validates a safetensors header (the JSON after the 8-byte length) for a
/// data section of `data_len` bytes: every tensor has a known dtype, a
/// shape whose byte size (checked arithmetic) equals its offsets' span,
/// offsets inside the data section, and no two tensors overlap. Returns
/// the number of tensors, or a one-line description of the first problem
/// (control characters of names and values from the file are escaped).
pub fn check_header(header: &[u8], data_len: u64) -> std::result::Result<usize, String> {
    header_problem(header, data_len).map_err(|e| {
        e.chars()
            .map(|c| match c {
                c if c.is_control() => c.escape_default().to_string(),
                c => c.to_string(),
            })
            .collect()
    })
}

fn header_problem(header: &[u8], data_len: u64) -> std::result::Result<usize, String> {
    let v: serde_json::Value =
        serde_json::from_slice(header).map_err(|e| format!("header is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("header is not a JSON object of tensors")?;
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(obj.len());
    for (name, t) in obj {
        if name == "__metadata__" {
            let ok = t
                .as_object()
                .is_some_and(|m| m.values().all(|x| x.is_string()));
            if !ok {
                return Err("`__metadata__` is not an object of strings".into());
            }
            continue;
        }
        let dtype = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| format!("tensor `{name}`: no dtype string"))?;
        let bits = st_dtype_bits(dtype)
            .ok_or_else(|| format!("tensor `{name}`: unknown dtype `{dtype}`"))?;
        let shape = t
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| format!("tensor `{name}`: no shape array"))?;
        let mut elems: u64 = 1;
        for d in shape {
            let d = d.as_u64().ok_or_else(|| {
                format!("tensor `{name}`: shape entry {d} is not a non-negative integer")
            })?;
            elems = elems.checked_mul(d).ok_or_else(|| {
                format!("tensor `{name}`: shape {shape:?} overflows 64-bit element counts")
            })?;
        }
        let bits_total = elems
            .checked_mul(bits)
            .ok_or_else(|| format!("tensor `{name}`: shape {shape:?} overflows 64-bit sizes"))?;
        if !bits_total.is_multiple_of(8) {
            return Err(format!(
                "tensor `{name}`: {dtype} shape {shape:?} is not a whole number of bytes"
            ));
        }
        let bytes = bits_total / 8;
        let offs = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .filter(|o| o.len() == 2)
            .ok_or_else(|| format!("tensor `{name}`: data_offsets is not [begin, end]"))?;
        let (Some(begin), Some(end)) = (offs[0].as_u64(), offs[1].as_u64()) else {
            return Err(format!(
                "tensor `{name}`: data_offsets {offs:?} are not non-negative integers"
            ));
        };
        if begin > end || end > data_len {
            return Err(format!(
                "tensor `{name}`: data_offsets [{begin}, {end}] outside the {data_len}-byte data section"
            ));
        }
        if end - begin != bytes {
            return Err(format!(
                "tensor `{name}`: data_offsets span {} bytes but {dtype} shape {shape:?} needs {bytes}",
                end - begin
            ));
        }
        spans.push((begin, end, name));
    }
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(format!(
                "tensors `{}` and `{}` overlap in the data section",
                w[0].2, w[1].2
            ));
        }
    }
    Ok(spans.len())
}

/// Validates a whole safetensors file held in memory (8-byte header
/// length, header, data) with [`check_header`].
pub fn check_safetensors_bytes(bytes: &[u8]) -> std::result::Result<usize, String> {
    let Some(len) = bytes.get(..8) else {
        return Err(format!(
            "{} bytes, shorter than the 8-byte header length",
            bytes.len()
        ));
    };
    let n = u64::from_le_bytes(len.try_into().expect("8 bytes"));
    let avail = bytes.len() as u64 - 8;
    if n > MAX_HEADER_BYTES || n > avail {
        return Err(format!(
            "header length {n} exceeds the file's remaining {avail} bytes or the {MAX_HEADER_BYTES}-byte limit"
        ));
    }
    let n = n as usize;
    check_header(&bytes[8..8 + n], (bytes.len() - 8 - n) as u64)
}

/// Validates the header of the safetensors file at `path` against its
/// length ([`check_header`]) without reading the data.
pub fn check_safetensors_file(path: &Path) -> Result<usize> {
    use std::io::Read;
    let bad = |msg: String| ModelError::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    let total = f.metadata().map_err(|e| ModelError::io(path, e))?.len();
    if total < 8 {
        return Err(bad(format!(
            "{total} bytes, shorter than the 8-byte header length"
        )));
    }
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|e| ModelError::io(path, e))?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > total - 8 {
        return Err(bad(format!(
            "header length {n} exceeds the file's remaining {} bytes or the {MAX_HEADER_BYTES}-byte limit",
            total - 8
        )));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|e| ModelError::io(path, e))?;
    check_header(&header, total - 8 - n).map_err(bad)
}

fn st_message(e: &candle_core::Error) -> String {
    e.to_string()
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn st_dtype(dt: DType) -> Result<&'static str> {
    Ok(match dt {
        DType::F32 => "F32",
        DType::BF16 => "BF16",
        DType::F16 => "F16",
        DType::F64 => "F64",
        DType::I64 => "I64",
        DType::U32 => "U32",
        DType::U8 => "U8",
        other => {
            return Err(ModelError::arg(
                "dtype",
                format!("cannot write {other:?} tensors to safetensors"),
            ))
        }
    })
}

/// Writes `tensors` as a safetensors file (header with `metadata`, tensors
/// in the given order). Writes `path` directly; see [`write_safetensors_atomic`].
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    // 1. Header: offsets of every tensor in the data section.
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata).expect("strings"),
        );
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let n = t.elem_count() * t.dtype().size_in_bytes();
        header.insert(
            name.clone(),
            serde_json::json!({
                "dtype": st_dtype(t.dtype())?,
                "shape": t.dims(),
                "data_offsets": [offset, offset + n],
            }),
        );
        offset += n;
    }
    let mut hbytes = serde_json::to_vec(&header).expect("json");
    while !hbytes.len().is_multiple_of(8) {
        hbytes.push(b' ');
    }
    // 2. Header length, header, then each tensor's little-endian bytes.
    let file = std::fs::File::create(path).map_err(|e| ModelError::io(path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e| ModelError::io(path, e);
    w.write_all(&(hbytes.len() as u64).to_le_bytes())
        .map_err(io)?;
    w.write_all(&hbytes).map_err(io)?;
    for (_, t) in tensors {
        let t = t.flatten_all()?;
        match t.dtype() {
            DType::F32 => write_le(&mut w, &t.to_vec1::<f32>()?, path)?,
            DType::BF16 => write_le(&mut w, &t.to_vec1::<half::bf16>()?, path)?,
            DType::F16 => write_le(&mut w, &t.to_vec1::<half::f16>()?, path)?,
            DType::F64 => write_le(&mut w, &t.to_vec1::<f64>()?, path)?,
            DType::I64 => write_le(&mut w, &t.to_vec1::<i64>()?, path)?,
            DType::U32 => write_le(&mut w, &t.to_vec1::<u32>()?, path)?,
            DType::U8 => w.write_all(&t.to_vec1::<u8>()?).map_err(io)?,
            other => return Err(ModelError::arg("dtype", format!("{other:?}"))),
        }
    }
    let file = w
        .into_inner()
        .map_err(|e| ModelError::io(path, e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(())
}

trait LeBytes: Copy {
    fn put(self, out: &mut Vec<u8>);
}
macro_rules! le_bytes {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_bytes!(f32, f64, i64, u32, half::bf16, half::f16);

fn write_le<T: LeBytes, W: Write>(w: &mut W, v: &[T], path: &Path) -> Result<()> {
    let mut buf = Vec::with_capacity(1 << 20);
    for chunk in v.chunks(1 << 18) {
        buf.clear();
        for &x in chunk {
            x.put(&mut buf);
        }
        w.write_all(&buf).map_err(|e| ModelError::io(path, e))?;
    }
    Ok(())
}

/// Writes a safetensors file through a temporary sibling and a rename, so
/// readers never see a partial file.
pub fn write_safetensors_atomic(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let tmp = temp_sibling(path);
    write_safetensors(&tmp, tensors, metadata).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))?;
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_path(parent),
        None => sync_path(Path::new(".")),
    }
}

/// Flushes a file or directory (its entry table) to disk.
pub fn sync_path(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| ModelError::io(path, e))
}

pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.tmp-{}-{nanos}", std::process::id()))
}

/// Name of a dtype as transformers writes `torch_dtype`.
pub fn torch_dtype_name(dt: DType) -> &'static str {
    match dt {
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        _ => "float32",
    }
}
