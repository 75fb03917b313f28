//! A model directory as a whole: config, weights, tokenizer and generation
//! defaults, loaded from and saved to the Hugging Face layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Var};
use candle_nn::{VarBuilder, VarMap};
use tokenizers::Tokenizer;

use crate::config::{Config, GenerationDefaults};
use crate::error::{ModelError, Result};
use crate::model::Model;
use crate::weights::{self, Shards};

/// How to load a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the weights go (CPU by default).
    pub device: Device,
    /// Make every weight a [`Var`] of a [`VarMap`] (for training).
    pub trainable: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: Device::Cpu,
            trainable: false,
        }
    }
}

/// A loaded Hugging Face model directory.
pub struct Pretrained {
    /// The directory it was loaded from.
    pub dir: PathBuf,
    /// The network.
    pub model: Model,
    /// `tokenizer.json`, when the directory has one.
    pub tokenizer: Option<Tokenizer>,
    /// `generation_config.json`, when the directory has one.
    pub generation: Option<GenerationDefaults>,
    /// The variables, when loaded with `trainable: true`.
    pub varmap: Option<VarMap>,
}

impl std::fmt::Debug for Pretrained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pretrained")
            .field("dir", &self.dir)
            .field("model_type", &self.model.config().model_type)
            .field("tokenizer", &self.tokenizer.is_some())
            .finish()
    }
}

/// Reads `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    if !path.exists() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
            what: "a Hugging Face tokenizer.json",
        });
    }
    Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
        path: path.to_path_buf(),
        msg: e.to_string().replace('\n', " "),
    })
}

impl Pretrained {
    /// Loads `dir` for inference on the CPU.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Loads `dir` with explicit options.
    pub fn load_with(dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(ModelError::MissingFile {
                path: dir,
                what: "a model directory",
            });
        }
        // 1. Configuration.
        let cfg = Config::from_file(&dir.join("config.json"))?;
        // 2. Weights, validated against the configuration, as f32.
        let files = weights::weight_files(&dir)?;
        let tensors = Shards::open(&dir, &files)?.load_f32(&cfg, &opts.device)?;
        // 3. The network, on plain tensors or on variables.
        let (model, varmap) = if opts.trainable {
            let varmap = VarMap::new();
            {
                let mut data = varmap.data().lock().expect("fresh VarMap");
                for (name, t) in tensors {
                    data.insert(name, Var::from_tensor(&t)?);
                }
            }
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &opts.device);
            (Model::new(&cfg, vb)?, Some(varmap))
        } else {
            let vb = VarBuilder::from_tensors(tensors, DType::F32, &opts.device);
            (Model::new(&cfg, vb)?, None)
        };
        // 4. Tokenizer and generation defaults, when present.
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.exists() {
            Some(load_tokenizer(&tok_path)?)
        } else {
            None
        };
        let gen_path = dir.join("generation_config.json");
        let generation = if gen_path.exists() {
            Some(GenerationDefaults::from_file(&gen_path)?)
        } else {
            None
        };
        Ok(Pretrained {
            dir,
            model,
            tokenizer,
            generation,
            varmap,
        })
    }

    /// Tokenizes `text` (with the tokenizer's special tokens, as
    /// transformers' `tokenizer(text)` does).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Tokenizes `text`, adding the tokenizer's special tokens (its
    /// post-processor's BOS, ...) or not: a rendered chat template already
    /// holds them (transformers passes `add_special_tokens=False` there).
    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let path = self.dir.join("tokenizer.json");
        let tok = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::MissingFile {
                path: path.clone(),
                what: "a Hugging Face tokenizer.json (needed for text input)",
            })?;
        let tok_err = |e: tokenizers::Error| ModelError::Tokenizer {
            path: path.clone(),
            msg: e.to_string().replace('\n', " "),
        };
        // A text far longer than the model's context is refused before it
        // is tokenized whole (tokenizing takes a few hundred times the
        // text's size in memory): prefixes of doubling length are encoded
        // until one alone exceeds the context or the whole text is reached.
        let max = self.model.config().max_position_embeddings;
        let mut cut = max.saturating_mul(8).max(4096);
        while cut < text.len() {
            let mut c = cut;
            while !text.is_char_boundary(c) {
                c -= 1;
            }
            let n = tok
                .encode(&text[..c], add_special_tokens)
                .map_err(tok_err)?
                .len();
            if n > max.saturating_add(16) {
                return Err(ModelError::InvalidArgument {
                    name: "text",
                    msg: format!(
                        "{} bytes of text: its first {c} bytes alone encode to {n} tokens, more than \
                         max_position_embeddings = {max}",
                        text.len()
                    ),
                });
            }
            cut = cut.saturating_mul(2);
        }
        let enc = tok.encode(text, add_special_tokens).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Detokenizes `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let path = self.dir.join("tokenizer.json");
        let tok = self
            .tokenizer
            .as_ref()
            .ok_or_else(|| ModelError::MissingFile {
                path: path.clone(),
                what: "a Hugging Face tokenizer.json (needed to decode)",
            })?;
        tok.decode(ids, false).map_err(|e| ModelError::Tokenizer {
            path,
            msg: e.to_string().replace('\n', " "),
        })
    }

    /// End-of-sequence ids: `generation_config.json`'s, else `config.json`'s.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.generation
            .as_ref()
            .and_then(|g| g.eos_token_id.as_ref())
            .map(|e| e.to_vec())
            .unwrap_or_else(|| self.model.config().eos_ids())
    }

    /// Saves the current weights as a HF directory at `out` (see
    /// [`save_pretrained`]), copying tokenizer and generation files from
    /// the directory this model was loaded from.
    pub fn save(&self, out: impl AsRef<Path>, dtype: DType) -> Result<()> {
        save_pretrained(&self.model, out.as_ref(), dtype, Some(&self.dir))
    }
}

/// Files copied verbatim from the source directory when saving.
const SIDE_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
    "chat_template.jinja",
];

/// Writes `model` as a Hugging Face directory `out`: `config.json`
/// (`torch_dtype` set to `dtype`), `model.safetensors` with the checkpoint
/// names (format `pt`, loadable by transformers) and the tokenizer /
/// generation files of `copy_from`. The directory is assembled under a
/// temporary name next to `out`, every file and the directory are fsync'd,
/// and it is renamed into place (the parent is fsync'd after); an existing
/// `out` is replaced only once the new one is complete.
pub fn save_pretrained(
    model: &Model,
    out: &Path,
    dtype: DType,
    copy_from: Option<&Path>,
) -> Result<()> {
    if !matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
        return Err(ModelError::arg("dtype", "expected F32, BF16 or F16"));
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    }
    let tmp = weights::temp_sibling(out);
    let result = (|| -> Result<()> {
        std::fs::create_dir_all(&tmp).map_err(|e| ModelError::io(&tmp, e))?;
        // 1. config.json.
        let mut cfg = model.config().clone();
        cfg.torch_dtype = Some(weights::torch_dtype_name(dtype).to_string());
        if cfg.extra.contains_key("dtype") {
            cfg.extra
                .insert("dtype".into(), weights::torch_dtype_name(dtype).into());
        }
        let text = serde_json::to_string_pretty(&cfg).expect("config serializes");
        let cpath = tmp.join("config.json");
        std::fs::write(&cpath, text).map_err(|e| ModelError::io(&cpath, e))?;
        weights::sync_path(&cpath)?;
        // 2. model.safetensors.
        let mut tensors = Vec::with_capacity(model.named_weights().len());
        for (name, t) in model.named_weights() {
            tensors.push((name.clone(), t.detach().to_dtype(dtype)?));
        }
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        weights::write_safetensors(&tmp.join("model.safetensors"), &tensors, &meta)?;
        // 3. Side files.
        if let Some(src) = copy_from {
            for f in SIDE_FILES {
                let from = src.join(f);
                if from.is_file() {
                    std::fs::copy(&from, tmp.join(f)).map_err(|e| ModelError::io(&from, e))?;
                    weights::sync_path(&tmp.join(f))?;
                }
            }
        }
        // Every file is on disk; so is the directory's table.
        weights::sync_path(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    // 4. Swap into place.
    if out.exists() {
        let old = weights::temp_sibling(out);
        std::fs::rename(out, &old).map_err(|e| ModelError::io(out, e))?;
        std::fs::rename(&tmp, out).map_err(|e| ModelError::io(out, e))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, out).map_err(|e| ModelError::io(out, e))?;
    }
    match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => weights::sync_path(parent),
        None => weights::sync_path(Path::new(".")),
    }
}
