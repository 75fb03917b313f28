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
            let f = f.as_str().ok_or_else(|| ModelError::InvalidConfig {
                path: index.clone(),
                field: format!("weight_map.{name}"),
                msg: "expected a file name".into(),
            })?;
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
        // 2. Read and convert to f32 once.
        let mut out = HashMap::with_capacity(specs.len());
        for spec in specs {
            let (path, st) = self.file_of(&spec.name)?;
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
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
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
