//! `config.json` as Hugging Face writes it, and the few derived quantities
//! the decoder needs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};

/// The decoder families the engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `qwen3`: per-head RMSNorm on queries and keys, explicit `head_dim`.
    Qwen3,
    /// `qwen2`: biases on the query, key and value projections.
    Qwen2,
    /// `llama`: optional `attention_bias`/`mlp_bias`, optional `llama3` RoPE scaling.
    Llama,
}

impl Family {
    /// Parses a `model_type` string.
    pub fn from_model_type(s: &str) -> Option<Self> {
        match s {
            "qwen3" => Some(Family::Qwen3),
            "qwen2" => Some(Family::Qwen2),
            "llama" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// One id or a list of ids, as HF writes `eos_token_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// A single id.
    One(u32),
    /// Several ids.
    Many(Vec<u32>),
}

impl TokenIds {
    /// The ids as a vector.
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(i) => vec![*i],
            TokenIds::Many(v) => v.clone(),
        }
    }
}

/// The `rope_scaling` variants the engine implements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Llama 3.1 frequency-dependent scaling.
    Llama3 {
        /// `factor`.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`.
        original_max_position_embeddings: f64,
    },
}

/// A Hugging Face `config.json`, read as it is.
///
/// Fields the engine does not use are kept in [`Config::extra`] so that a
/// saved checkpoint carries them unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `qwen3`, `qwen2` or `llama`.
    pub model_type: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Residual stream width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// Longest sequence the model accepts.
    pub max_position_embeddings: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// RoPE scaling (`null`, `{"rope_type": "llama3", ...}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<Value>,
    /// Whether the output projection shares the embedding matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tie_word_embeddings: Option<bool>,
    /// Biases on the attention projections (llama, qwen3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Biases on the MLP projections (llama).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_bias: Option<bool>,
    /// Activation; only `silu` is implemented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_act: Option<String>,
    /// Qwen2 sliding-window attention switch (must be false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_sliding_window: Option<bool>,
    /// Beginning-of-sequence id(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<TokenIds>,
    /// Storage dtype recorded by transformers (`bfloat16`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
    /// Every other field, kept for round-tripping.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

fn default_eps() -> f64 {
    1e-6
}

/// Upper bounds on the sizes a `config.json` may declare (checked by
/// [`Config::validate`] before anything is allocated from them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `intermediate_size`.
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads` (and `num_key_value_heads`).
    pub num_attention_heads: usize,
    /// `head_dim`.
    pub head_dim: usize,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// The implied weight count ([`Config::parameter_count`]).
    pub parameters: u64,
}

/// The limits in force: generous (Llama 3.1 405B has 126 layers, hidden
/// 16384, 128 heads, intermediate 53248, vocabulary 128256, 131072
/// positions), yet small enough that nothing sized from them overflows.
pub const LIMITS: Limits = Limits {
    vocab_size: 1 << 21,
    hidden_size: 1 << 16,
    intermediate_size: 1 << 18,
    num_hidden_layers: 1024,
    num_attention_heads: 1024,
    head_dim: 1024,
    max_position_embeddings: 1 << 24,
    parameters: 1 << 40,
};

/// Largest `config.json` read, in bytes.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

impl Config {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if let Ok(md) = std::fs::metadata(path) {
            if md.len() > MAX_CONFIG_BYTES {
                return Err(ModelError::Json {
                    path: path.to_path_buf(),
                    msg: format!(
                        "{} bytes, more than the {MAX_CONFIG_BYTES}-byte limit for a config.json",
                        md.len()
                    ),
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ModelError::MissingFile {
                path: path.to_path_buf(),
                what: "a Hugging Face config.json",
            },
            _ => ModelError::io(path, e),
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates a `config.json` text; `path` is only used in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks every field the engine relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, msg: String| ModelError::InvalidConfig {
            path: path.to_path_buf(),
            field: field.to_string(),
            msg,
        };
        let family = Family::from_model_type(&self.model_type).ok_or_else(|| {
            ModelError::UnsupportedModelType {
                path: path.to_path_buf(),
                model_type: self.model_type.clone(),
            }
        })?;
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
            ("num_key_value_heads", self.num_kv_heads()),
            ("head_dim", self.head_dim()),
        ] {
            if v == 0 {
                return Err(bad(field, "expected a positive integer, found 0".into()));
            }
        }
        // Upper bounds, checked before anything is sized from them (the
        // largest public checkpoints stay well inside each).
        for (field, v, limit) in [
            ("vocab_size", self.vocab_size, LIMITS.vocab_size),
            ("hidden_size", self.hidden_size, LIMITS.hidden_size),
            (
                "intermediate_size",
                self.intermediate_size,
                LIMITS.intermediate_size,
            ),
            (
                "num_hidden_layers",
                self.num_hidden_layers,
                LIMITS.num_hidden_layers,
            ),
            (
                "num_attention_heads",
                self.num_attention_heads,
                LIMITS.num_attention_heads,
            ),
            (
                "num_key_value_heads",
                self.num_kv_heads(),
                LIMITS.num_attention_heads,
            ),
            ("head_dim", self.head_dim(), LIMITS.head_dim),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                LIMITS.max_position_embeddings,
            ),
        ] {
            if v > limit {
                return Err(bad(
                    field,
                    format!("{v} is larger than the limit {limit} (expected 1..={limit})"),
                ));
            }
        }
        let params = self.parameter_count();
        if params.is_none_or(|p| p > LIMITS.parameters) {
            return Err(bad(
                "num_hidden_layers",
                format!(
                    "the sizes imply {} parameters, more than the limit {}",
                    params.map_or("over 2^64".to_string(), |p| p.to_string()),
                    LIMITS.parameters
                ),
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "expected a divisor of num_attention_heads = {}, found {}",
                    self.num_attention_heads,
                    self.num_kv_heads()
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                format!("expected an even number, found {}", self.head_dim()),
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(
                "hidden_size",
                format!(
                    "expected a multiple of num_attention_heads = {} (or an explicit head_dim), found {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        if family == Family::Qwen2 && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(
                "hidden_size",
                "expected a multiple of num_attention_heads for qwen2".into(),
            ));
        }
        let act = self.hidden_act.as_deref().unwrap_or("silu");
        if act != "silu" {
            return Err(bad("hidden_act", format!("expected `silu`, found `{act}`")));
        }
        if self.use_sliding_window == Some(true) {
            return Err(bad(
                "use_sliding_window",
                "sliding-window attention is not implemented; expected false".into(),
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(bad("rms_norm_eps", "expected a positive number".into()));
        }
        if self.rope_theta().is_nan() || self.rope_theta() <= 0.0 {
            return Err(bad("rope_theta", "expected a positive number".into()));
        }
        self.rope_scaling_checked(path)?;
        Ok(())
    }

    /// An upper estimate of the number of weights (embeddings, output head,
    /// attention with biases, MLP, norms), in checked arithmetic; `None`
    /// on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        let (v, h, i) = (
            self.vocab_size as u64,
            self.hidden_size as u64,
            self.intermediate_size as u64,
        );
        let (q, kv) = (
            (self.num_attention_heads as u64).checked_mul(self.head_dim() as u64)?,
            (self.num_kv_heads() as u64).checked_mul(self.head_dim() as u64)?,
        );
        let attn = h
            .checked_mul(q.checked_add(kv.checked_mul(2)?)?)?
            .checked_add(q.checked_mul(h)?)?
            .checked_add(q.checked_add(kv.checked_mul(2)?)?.checked_add(h)?)?;
        let mlp = h
            .checked_mul(i)?
            .checked_mul(3)?
            .checked_add(i.checked_mul(3)?)?;
        let layer = attn
            .checked_add(mlp)?
            .checked_add(h.checked_mul(2)?)?
            .checked_add(self.head_dim() as u64 * 2)?;
        layer
            .checked_mul(self.num_hidden_layers as u64)?
            .checked_add(v.checked_mul(h)?.checked_mul(2)?)?
            .checked_add(h)
    }

    /// The decoder family.
    pub fn family(&self) -> Family {
        Family::from_model_type(&self.model_type).unwrap_or(Family::Llama)
    }

    /// Key/value heads (equal to the query heads when absent).
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        match (self.family(), self.head_dim) {
            (Family::Qwen2, _) | (_, None) => self.hidden_size / self.num_attention_heads.max(1),
            (_, Some(d)) => d,
        }
    }

    /// Whether `lm_head` shares the embedding matrix.
    pub fn tied_embeddings(&self) -> bool {
        self.tie_word_embeddings.unwrap_or(false)
    }

    /// Whether q/k/v projections carry biases.
    pub fn qkv_bias(&self) -> bool {
        match self.family() {
            Family::Qwen2 => true,
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    /// Whether the attention output projection carries a bias.
    pub fn o_bias(&self) -> bool {
        match self.family() {
            Family::Qwen2 => false,
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    /// Whether the MLP projections carry biases.
    pub fn mlp_bias(&self) -> bool {
        self.family() == Family::Llama && self.mlp_bias.unwrap_or(false)
    }

    /// Whether queries and keys get a per-head RMSNorm (qwen3).
    pub fn qk_norm(&self) -> bool {
        self.family() == Family::Qwen3
    }

    /// The RoPE base (`rope_theta`, or `rope_parameters.rope_theta` as transformers 5 writes it).
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.extra
                    .get("rope_parameters")
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10_000.0)
    }

    /// End-of-sequence ids from the config.
    pub fn eos_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// The validated RoPE scaling.
    pub fn rope_scaling(&self) -> RopeScaling {
        self.rope_scaling_checked(Path::new("config.json"))
            .unwrap_or(RopeScaling::None)
    }

    fn rope_scaling_checked(&self, path: &Path) -> Result<RopeScaling> {
        let scaling = match &self.rope_scaling {
            Some(v) if !v.is_null() => Some(("rope_scaling", v)),
            _ => self
                .extra
                .get("rope_parameters")
                .filter(|v| !v.is_null())
                .map(|v| ("rope_parameters", v)),
        };
        let Some((field, v)) = scaling else {
            return Ok(RopeScaling::None);
        };
        let path_buf: PathBuf = path.to_path_buf();
        let obj = v.as_object().ok_or_else(|| ModelError::InvalidConfig {
            path: path_buf.clone(),
            field: field.into(),
            msg: "expected an object or null".into(),
        })?;
        let ty = obj
            .get("rope_type")
            .or_else(|| obj.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        match ty {
            "default" => Ok(RopeScaling::None),
            "llama3" => {
                let num = |k: &str| {
                    obj.get(k)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| ModelError::InvalidConfig {
                            path: path_buf.clone(),
                            field: format!("{field}.{k}"),
                            msg: "expected a number for llama3 rope scaling".into(),
                        })
                };
                let s = RopeScaling::Llama3 {
                    factor: num("factor")?,
                    low_freq_factor: num("low_freq_factor")?,
                    high_freq_factor: num("high_freq_factor")?,
                    original_max_position_embeddings: num("original_max_position_embeddings")?,
                };
                if let RopeScaling::Llama3 {
                    low_freq_factor,
                    high_freq_factor,
                    ..
                } = s
                {
                    if high_freq_factor == low_freq_factor {
                        return Err(ModelError::InvalidConfig {
                            path: path_buf,
                            field: format!("{field}.high_freq_factor"),
                            msg: "expected high_freq_factor != low_freq_factor".into(),
                        });
                    }
                }
                Ok(s)
            }
            other => Err(ModelError::UnsupportedRopeScaling {
                path: path_buf,
                rope_type: other.to_string(),
            }),
        }
    }
}

/// The parts of `generation_config.json` that generation uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GenerationDefaults {
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
    /// Whether to sample (false: greedy).
    #[serde(default)]
    pub do_sample: Option<bool>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus threshold.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Top-k cutoff.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl GenerationDefaults {
    /// Reads `generation_config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| ModelError::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }
}
