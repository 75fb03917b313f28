//! The decoder shared by the three families, with per-family switches
//! (q/k norm for qwen3, q/k/v biases for qwen2, RoPE scaling for llama).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::layout::{LayerNames, ProjNames, EMBED_TOKENS, FINAL_NORM, LM_HEAD};
use crate::ops::{self, Kernels, MASKED};
use crate::rope::Rope;

pub use crate::layout::{weight_specs, WeightKind, WeightSpec};

/// A linear map `y = x W^T + b` with `W: [out, in]`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub(crate) weight: Tensor,
    pub(crate) bias: Option<Tensor>,
}

impl Linear {
    /// Applies the map to `x: [..., in]` as one 2-D matmul.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inner = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let x2 = x.reshape((rows, inner))?;
        // With a few rows (batched decoding) GEMM packs all of W for little
        // work; computing (W x^T)^T lets it stream W instead (2x faster).
        let mut y = if (2..=32).contains(&rows) {
            self.weight.matmul(&x2.t()?.contiguous()?)?.t()?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        let mut out_dims = dims;
        *out_dims.last_mut().unwrap() = self.weight.dim(0)?;
        y.reshape(out_dims)
    }
}

/// Self-attention of one layer.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub(crate) q_proj: Linear,
    pub(crate) k_proj: Linear,
    pub(crate) v_proj: Linear,
    pub(crate) o_proj: Linear,
    pub(crate) q_norm: Option<Tensor>,
    pub(crate) k_norm: Option<Tensor>,
}

/// The SwiGLU MLP of one layer.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub(crate) gate_proj: Linear,
    pub(crate) up_proj: Linear,
    pub(crate) down_proj: Linear,
}

impl Mlp {
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let gate = self.gate_proj.forward(x)?.silu()?;
        let up = self.up_proj.forward(x)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

/// One pre-norm decoder layer.
#[derive(Debug, Clone)]
pub(crate) struct DecoderLayer {
    pub(crate) input_layernorm: Tensor,
    pub(crate) self_attn: Attention,
    pub(crate) post_attention_layernorm: Tensor,
    pub(crate) mlp: Mlp,
}

/// Per-layer key/value buffers for incremental decoding (one sequence, or
/// a batch decoded in lockstep).
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of positions the cache can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Geometry shared by the attention code paths.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dims {
    pub(crate) heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) head_dim: usize,
}

impl Dims {
    pub(crate) fn scale(&self) -> f64 {
        1.0 / (self.head_dim as f64).sqrt()
    }
}

/// A decoder-only transformer (Qwen3, Qwen2 or Llama) computing in `f32`.
///
/// The weights are plain tensors; when the model was built from a
/// [`VarMap`]-backed [`VarBuilder`] they are the variables themselves, so
/// optimiser updates are seen by the next forward pass and gradients of the
/// differentiable forward reach them.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) cfg: Config,
    pub(crate) embed_tokens: Tensor,
    pub(crate) layers: Vec<DecoderLayer>,
    pub(crate) norm: Tensor,
    pub(crate) lm_head: Tensor,
    pub(crate) rope: Rope,
    pub(crate) dims: Dims,
    weights: Vec<(String, Tensor)>,
    device: Device,
}

impl Model {
    /// Builds the model from a [`VarBuilder`] (safetensors, a tensor map or a
    /// [`VarMap`]). Names are the checkpoint's (see [`weight_specs`]); with a
    /// `VarMap` missing weights are created (small random matrices, unit
    /// norms, zero biases).
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let mut map = HashMap::new();
        let mut weights = Vec::new();
        for spec in weight_specs(cfg) {
            let init = match spec.kind {
                WeightKind::Embedding | WeightKind::Matrix => Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
                WeightKind::Bias => Init::Const(0.0),
                WeightKind::Norm => Init::Const(1.0),
            };
            let t = vb
                .get_with_hints(spec.shape.clone(), &spec.name, init)?
                .to_dtype(DType::F32)?;
            map.insert(spec.name.clone(), t.clone());
            weights.push((spec.name, t));
        }
        Self::assemble(cfg, map, weights, vb.device().clone())
    }

    /// A randomly initialised trainable model: every weight is a variable
    /// of the returned [`VarMap`], drawn from a ChaCha8 stream seeded by
    /// `seed` (matrices uniform with std 0.02 * `scale`, norms near 1, biases small).
    pub fn random(cfg: &Config, seed: u64, scale: f64, device: &Device) -> Result<(Self, VarMap)> {
        cfg.validate(std::path::Path::new("<config>"))?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("fresh VarMap");
            for spec in weight_specs(cfg) {
                let n: usize = spec.shape.iter().product();
                let a = (0.02 * scale * 3f64.sqrt()) as f32;
                let vals: Vec<f32> = (0..n)
                    .map(|_| {
                        let u: f32 = rng.random_range(-1.0..1.0);
                        match spec.kind {
                            WeightKind::Embedding | WeightKind::Matrix => u * a,
                            WeightKind::Bias => u * 0.02,
                            WeightKind::Norm => 1.0 + 0.2 * u,
                        }
                    })
                    .collect();
                let t = Tensor::from_vec(vals, spec.shape.clone(), device)?;
                data.insert(spec.name, candle_core::Var::from_tensor(&t)?);
            }
        }
        let model = Self::new(cfg, VarBuilder::from_varmap(&varmap, DType::F32, device))?;
        Ok((model, varmap))
    }

    fn assemble(
        cfg: &Config,
        mut map: HashMap<String, Tensor>,
        weights: Vec<(String, Tensor)>,
        device: Device,
    ) -> Result<Self> {
        let mut take = |name: &str| -> Result<Tensor> {
            map.remove(name).ok_or_else(|| ModelError::MissingWeight {
                path: "<varbuilder>".into(),
                name: name.to_string(),
            })
        };
        let mut linear = |p: &ProjNames, bias: bool| -> Result<Linear> {
            Ok(Linear {
                weight: take(&p.weight)?,
                bias: if bias { Some(take(&p.bias)?) } else { None },
            })
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let n = LayerNames::of(l);
            let self_attn = Attention {
                q_proj: linear(&n.q_proj, cfg.qkv_bias())?,
                k_proj: linear(&n.k_proj, cfg.qkv_bias())?,
                v_proj: linear(&n.v_proj, cfg.qkv_bias())?,
                o_proj: linear(&n.o_proj, cfg.o_bias())?,
                q_norm: None,
                k_norm: None,
            };
            let mlp = Mlp {
                gate_proj: linear(&n.gate_proj, cfg.mlp_bias())?,
                up_proj: linear(&n.up_proj, cfg.mlp_bias())?,
                down_proj: linear(&n.down_proj, cfg.mlp_bias())?,
            };
            layers.push((n, self_attn, mlp));
        }
        let mut built = Vec::with_capacity(layers.len());
        for (n, mut self_attn, mlp) in layers {
            if cfg.qk_norm() {
                self_attn.q_norm = Some(take(&n.q_norm)?);
                self_attn.k_norm = Some(take(&n.k_norm)?);
            }
            built.push(DecoderLayer {
                input_layernorm: take(&n.input_norm)?,
                self_attn,
                post_attention_layernorm: take(&n.post_norm)?,
                mlp,
            });
        }
        let embed_tokens = take(EMBED_TOKENS)?;
        let norm = take(FINAL_NORM)?;
        let lm_head = if cfg.tied_embeddings() {
            embed_tokens.clone()
        } else {
            take(LM_HEAD)?
        };
        Ok(Model {
            cfg: cfg.clone(),
            embed_tokens,
            layers: built,
            norm,
            lm_head,
            rope: Rope::new(cfg),
            dims: Dims {
                heads: cfg.num_attention_heads,
                kv_heads: cfg.num_kv_heads(),
                head_dim: cfg.head_dim(),
            },
            weights,
            device,
        })
    }

    /// A copy whose weights are detached from autograd (sharing storage, so
    /// later optimiser updates are still seen). Inference paths use it:
    /// ops on variables record their inputs, which would otherwise keep
    /// every intermediate tensor (attention maps included) alive until the
    /// output is dropped.
    pub fn detached(&self) -> std::borrow::Cow<'_, Model> {
        if !self.weights.iter().any(|(_, t)| t.is_variable()) {
            return std::borrow::Cow::Borrowed(self);
        }
        let d = |t: &Tensor| t.detach();
        let lin = |l: &Linear| Linear {
            weight: d(&l.weight),
            bias: l.bias.as_ref().map(d),
        };
        let layers = self
            .layers
            .iter()
            .map(|l| DecoderLayer {
                input_layernorm: d(&l.input_layernorm),
                self_attn: Attention {
                    q_proj: lin(&l.self_attn.q_proj),
                    k_proj: lin(&l.self_attn.k_proj),
                    v_proj: lin(&l.self_attn.v_proj),
                    o_proj: lin(&l.self_attn.o_proj),
                    q_norm: l.self_attn.q_norm.as_ref().map(d),
                    k_norm: l.self_attn.k_norm.as_ref().map(d),
                },
                post_attention_layernorm: d(&l.post_attention_layernorm),
                mlp: Mlp {
                    gate_proj: lin(&l.mlp.gate_proj),
                    up_proj: lin(&l.mlp.up_proj),
                    down_proj: lin(&l.mlp.down_proj),
                },
            })
            .collect();
        std::borrow::Cow::Owned(Model {
            cfg: self.cfg.clone(),
            embed_tokens: d(&self.embed_tokens),
            layers,
            norm: d(&self.norm),
            lm_head: d(&self.lm_head),
            rope: self.rope.clone(),
            dims: self.dims,
            weights: self
                .weights
                .iter()
                .map(|(n, t)| (n.clone(), d(t)))
                .collect(),
            device: self.device.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of decoder layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of query heads per layer.
    pub fn num_heads(&self) -> usize {
        self.dims.heads
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    /// Every weight with its checkpoint name (the tied `lm_head` is not listed).
    pub fn named_weights(&self) -> &[(String, Tensor)] {
        &self.weights
    }

    /// Checks ids against the vocabulary and the length against
    /// `max_position_embeddings`.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if ids.len() > self.cfg.max_position_embeddings {
            return Err(ModelError::SequenceTooLong {
                len: ids.len(),
                max: self.cfg.max_position_embeddings,
            });
        }
        if let Some((index, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.cfg.vocab_size)
        {
            return Err(ModelError::TokenOutOfRange {
                index,
                id: id as i64,
                vocab_size: self.cfg.vocab_size,
            });
        }
        Ok(())
    }

    /// Converts a `[B, T]` id tensor (any integer dtype) to rows of `u32`,
    /// checking every id.
    fn ids_rows(&self, input_ids: &Tensor) -> Result<Vec<Vec<u32>>> {
        let rows = input_ids.to_dtype(DType::I64)?.to_vec2::<i64>()?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some((index, &id)) = row
                .iter()
                .enumerate()
                .find(|(_, &id)| id < 0 || id as usize >= self.cfg.vocab_size)
            {
                return Err(ModelError::TokenOutOfRange {
                    index,
                    id,
                    vocab_size: self.cfg.vocab_size,
                });
            }
            let row: Vec<u32> = row.into_iter().map(|x| x as u32).collect();
            self.check_ids(&row)?;
            out.push(row);
        }
        Ok(out)
    }

    /// Differentiable forward of a batch without padding: `[B, T]` ids to
    /// `[B, T, vocab]` logits. Built only from ops with a backward pass.
    pub fn forward(&self, input_ids: &Tensor) -> Result<Tensor> {
        self.forward_masked(input_ids, None)
    }

    /// Differentiable forward with an optional `[B, T]` 0/1 attention mask
    /// (left or right padding). Position ids are `cumsum(mask) - 1`
    /// (clamped at 0), as transformers derives them; padded keys are masked.
    pub fn forward_masked(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.hidden_states(input_ids, attention_mask)?;
        self.lm_logits(&h)
    }

    /// Logits `[..., vocab]` from final hidden states `[..., hidden]`.
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let lin = Linear {
            weight: self.lm_head.clone(),
            bias: None,
        };
        Ok(lin.forward(hidden)?)
    }

    /// Differentiable log-probabilities of each next token: for `[B, T]` ids
    /// returns `[B, T - 1]` with entry `t` = `ln p(ids[t + 1] | ids[..=t])`.
    pub fn token_logprobs(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if t < 2 {
            return Err(ModelError::arg(
                "input_ids",
                "expected at least 2 tokens per row",
            ));
        }
        // Only the first T - 1 positions predict a token: skip the last row
        // before the (large) vocabulary projection.
        let h = self.hidden_states(input_ids, attention_mask)?;
        let logits = self.lm_logits(&h.narrow(1, 0, t - 1)?)?;
        let targets = input_ids
            .narrow(1, 1, t - 1)?
            .to_dtype(DType::U32)?
            .reshape((b, t - 1, 1))?;
        // ln p = x[target] - logsumexp(x): no [B, T, V] log-softmax output.
        let picked = logits.gather(&targets, D::Minus1)?.squeeze(D::Minus1)?;
        let m = logits.max_keepdim(D::Minus1)?.detach();
        let lse = (logits
            .broadcast_sub(&m)?
            .exp()?
            .sum_keepdim(D::Minus1)?
            .log()?
            + &m)?;
        Ok((picked - lse.squeeze(D::Minus1)?)?)
    }

    /// Differentiable final hidden states `[B, T, hidden]` (after the final norm).
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let k = Kernels::Differentiable;
        // 1. Validate the ids and derive position ids.
        let rows = self.ids_rows(input_ids)?;
        let (b, t) = input_ids.dims2()?;
        let mask_rows: Option<Vec<Vec<f32>>> = match attention_mask {
            Some(m) => Some(ops::mask_to_f32(m)?.to_vec2::<f32>()?),
            None => None,
        };
        if let Some(m) = &mask_rows {
            if m.len() != b || m.iter().any(|r| r.len() != t) {
                return Err(ModelError::arg(
                    "attention_mask",
                    format!("expected shape [{b}, {t}] like input_ids"),
                ));
            }
        }
        let positions: Vec<u32> = match &mask_rows {
            None => (0..b).flat_map(|_| 0..t as u32).collect(),
            Some(m) => m
                .iter()
                .flat_map(|row| {
                    let mut c = 0u32;
                    row.iter()
                        .map(move |&v| {
                            if v > 0.5 {
                                c += 1;
                            }
                            c.saturating_sub(1)
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
        };
        let (cos, sin) = self.rope.tables(&positions, &self.device)?;
        let half = self.dims.head_dim / 2;
        let (cos, sin) = (cos.reshape((b, t, half))?, sin.reshape((b, t, half))?);
        // 2. Additive mask: causal, plus padded keys (finite, never -inf).
        let mask = match &mask_rows {
            None => ops::causal_mask(t, 0, &self.device)?.clamp(MASKED, 0f32)?,
            Some(m) => {
                let valid: Vec<Vec<bool>> = m
                    .iter()
                    .map(|row| row.iter().map(|&v| v >= 0.5).collect())
                    .collect();
                padded_causal_mask(&valid, t, 0, t, &self.device)?
            }
        };
        // 3. Embed.
        let flat: Vec<u32> = rows.into_iter().flatten().collect();
        let ids = Tensor::from_vec(flat, b * t, &self.device)?;
        let mut x =
            self.embed_tokens
                .index_select(&ids, 0)?
                .reshape((b, t, self.cfg.hidden_size))?;
        // 4. Decoder layers.
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &cos, &sin, Some(&mask), k, None)?;
        }
        // 5. Final norm.
        Ok(ops::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps, k)?)
    }

    /// One decoder layer on `x: [B, T, hidden]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer_forward(
        &self,
        layer: &DecoderLayer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        k: Kernels,
        cache: Option<(&mut KvCache, usize)>,
    ) -> candle_core::Result<Tensor> {
        let eps = self.cfg.rms_norm_eps;
        // 1. Pre-attention norm.
        let h = ops::rms_norm(x, &layer.input_layernorm, eps, k)?;
        // 2. Queries, keys and values (normed per head for qwen3, rotated).
        let (q, key, val) = self.qkv(&layer.self_attn, &h, cos, sin, k)?;
        // 3. Extend the cache, if any.
        let (key, val) = match cache {
            Some((c, l)) => {
                let t = key.dim(2)?;
                let (kb, vb) = &c.layers[l];
                kb.slice_set(&key, 2, c.len)?;
                vb.slice_set(&val, 2, c.len)?;
                (kb.narrow(2, 0, c.len + t)?, vb.narrow(2, 0, c.len + t)?)
            }
            None => (key, val),
        };
        // 4. Scaled dot-product attention.
        let o = self.attend(&q, &key, &val, mask, k)?;
        // 5. Output projection and residual.
        let x = (x + self.attn_out(&layer.self_attn, &o)?)?;
        // 6. MLP block with residual.
        let h = ops::rms_norm(&x, &layer.post_attention_layernorm, eps, k)?;
        x + layer.mlp.forward(&h)?
    }

    /// `h: [B, T, hidden]` to `q: [B, heads, T, d]` and `k, v: [B, kv_heads, T, d]`.
    pub(crate) fn qkv(
        &self,
        attn: &Attention,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        k: Kernels,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (b, t, _) = h.dims3()?;
        let Dims {
            heads,
            kv_heads,
            head_dim: d,
        } = self.dims;
        let eps = self.cfg.rms_norm_eps;
        let split = |x: Tensor, n: usize| -> candle_core::Result<Tensor> {
            x.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous()
        };
        let mut q = split(attn.q_proj.forward(h)?, heads)?;
        let mut key = split(attn.k_proj.forward(h)?, kv_heads)?;
        let val = split(attn.v_proj.forward(h)?, kv_heads)?;
        if let (Some(qn), Some(kn)) = (&attn.q_norm, &attn.k_norm) {
            q = ops::rms_norm(&q, qn, eps, k)?;
            key = ops::rms_norm(&key, kn, eps, k)?;
        }
        let q = ops::rope(&q, cos, sin, k)?;
        let key = ops::rope(&key, cos, sin, k)?;
        Ok((q, key, val))
    }

    /// Attention probabilities `[B, heads, T, S]` for `q: [B, heads, T, d]`
    /// against `k: [B, kv_heads, S, d]` (grouped heads share a key head).
    pub(crate) fn attn_probs(
        &self,
        q: &Tensor,
        key: &Tensor,
        mask: Option<&Tensor>,
        k: Kernels,
    ) -> candle_core::Result<Tensor> {
        let (b, heads, t, d) = q.dims4()?;
        let kvh = self.dims.kv_heads;
        let s = key.dim(2)?;
        let g = heads / kvh;
        let qg = q.reshape((b, kvh, g * t, d))?;
        let scores = (qg.matmul(&key.t()?)? * self.dims.scale())?.reshape((b, heads, t, s))?;
        let scores = match mask {
            Some(m) => scores.broadcast_add(m)?,
            None => scores,
        };
        ops::softmax_last_dim(&scores, k)
    }

    /// Probabilities `[B, heads, T, S]` times values `[B, kv_heads, S, d]`.
    pub(crate) fn attn_apply(&self, p: &Tensor, val: &Tensor) -> candle_core::Result<Tensor> {
        let (b, heads, t, s) = p.dims4()?;
        let kvh = self.dims.kv_heads;
        let g = heads / kvh;
        let o = p.reshape((b, kvh, g * t, s))?.matmul(val)?;
        o.reshape((b, heads, t, self.dims.head_dim))
    }

    fn attend(
        &self,
        q: &Tensor,
        key: &Tensor,
        val: &Tensor,
        mask: Option<&Tensor>,
        k: Kernels,
    ) -> candle_core::Result<Tensor> {
        let p = self.attn_probs(q, key, mask, k)?;
        self.attn_apply(&p, val)
    }

    /// `o: [B, heads, T, d]` to `[B, T, hidden]` through `o_proj`.
    pub(crate) fn attn_out(&self, attn: &Attention, o: &Tensor) -> candle_core::Result<Tensor> {
        let (b, heads, t, d) = o.dims4()?;
        let o = o.transpose(1, 2)?.reshape((b, t, heads * d))?;
        attn.o_proj.forward(&o)
    }

    /// A cache able to hold `capacity` positions of one sequence.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        self.new_batch_cache(1, capacity)
    }

    /// A cache for `batch` sequences decoded in lockstep (see
    /// [`Model::forward_step_batch`]), `capacity` columns each.
    pub fn new_batch_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let Dims {
            kv_heads, head_dim, ..
        } = self.dims;
        let mut layers = Vec::with_capacity(self.layers.len());
        for _ in 0..self.layers.len() {
            let z = || {
                Tensor::zeros(
                    (batch, kv_heads, capacity, head_dim),
                    DType::F32,
                    &self.device,
                )
            };
            layers.push((z()?, z()?));
        }
        Ok(KvCache {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Inference step for a batch decoded in lockstep: row `b` appends the
    /// tokens `ids[b]` (all rows the same count `t`) at rotary positions
    /// `positions[b]`; `key_valid[b][j]` says whether cache column `j` (for
    /// `j < cache.len() + t`) holds a real token of row `b` (false for
    /// padding). Padded keys are masked; a padded query attends to itself
    /// only. Returns the last position's logits, `[batch, vocab]`.
    pub fn forward_step_batch(
        &self,
        ids: &[Vec<u32>],
        positions: &[Vec<u32>],
        key_valid: &[Vec<bool>],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let m = self.detached();
        let m: &Model = &m;
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        let total = cache.len + t;
        if t == 0 || ids.iter().any(|r| r.len() != t) || positions.len() != b {
            return Err(ModelError::arg(
                "ids",
                "expected the same positive number of tokens in every row",
            ));
        }
        if key_valid.len() != b || key_valid.iter().any(|r| r.len() < total) {
            return Err(ModelError::arg(
                "key_valid",
                format!("expected {b} rows of at least {total} flags"),
            ));
        }
        if total > cache.capacity || cache.layers[0].0.dim(0)? != b {
            return Err(ModelError::arg(
                "cache",
                format!("expected a cache for {b} rows and {total} columns"),
            ));
        }
        for (row, pos) in ids.iter().zip(positions) {
            m.check_ids(row)?;
            if pos.len() != t {
                return Err(ModelError::arg(
                    "positions",
                    "expected one position per token",
                ));
            }
            if let Some(&p) = pos.iter().max() {
                if p as usize >= m.cfg.max_position_embeddings {
                    return Err(ModelError::SequenceTooLong {
                        len: p as usize + 1,
                        max: m.cfg.max_position_embeddings,
                    });
                }
            }
        }
        let k = Kernels::Fused;
        let offset = cache.len;
        // 1. Embed; rotary tables per row.
        let flat: Vec<u32> = ids.iter().flatten().copied().collect();
        let idt = Tensor::from_vec(flat, b * t, &m.device)?;
        let mut x = m
            .embed_tokens
            .index_select(&idt, 0)?
            .reshape((b, t, m.cfg.hidden_size))?;
        let pos: Vec<u32> = positions.iter().flatten().copied().collect();
        let (cos, sin) = m.rope.tables(&pos, &m.device)?;
        let half = m.dims.head_dim / 2;
        let (cos, sin) = (cos.reshape((b, t, half))?, sin.reshape((b, t, half))?);
        // 2. Additive mask [B, 1, t, total]: causal and padded keys.
        let mask = padded_causal_mask(key_valid, t, offset, total, &m.device)?;
        // 3. Decoder layers, extending the cache.
        for (l, layer) in m.layers.iter().enumerate() {
            x = m.layer_forward(layer, &x, &cos, &sin, Some(&mask), k, Some((cache, l)))?;
        }
        cache.len = total;
        // 4. Final norm and logits of the last position of every row.
        let last = x.narrow(1, t - 1, 1)?.reshape((b, m.cfg.hidden_size))?;
        let h = ops::rms_norm(&last, &m.norm, m.cfg.rms_norm_eps, k)?;
        m.lm_logits(&h)
    }

    /// Inference step for one sequence: runs `ids` (appended after the
    /// cached positions) through the model with fused kernels and returns
    /// the logits of the last position, `[vocab]`.
    pub fn forward_step(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        match self.detached() {
            std::borrow::Cow::Borrowed(m) => m.forward_step_detached(ids, cache),
            std::borrow::Cow::Owned(m) => m.forward_step_detached(ids, cache),
        }
    }

    fn forward_step_detached(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let t = ids.len();
        if t == 0 {
            return Err(ModelError::arg("ids", "expected at least one token"));
        }
        if let Some((index, &id)) = ids
            .iter()
            .enumerate()
            .find(|(_, &id)| id as usize >= self.cfg.vocab_size)
        {
            return Err(ModelError::TokenOutOfRange {
                index: cache.len + index,
                id: id as i64,
                vocab_size: self.cfg.vocab_size,
            });
        }
        let total = cache.len + t;
        if total > self.cfg.max_position_embeddings {
            return Err(ModelError::SequenceTooLong {
                len: total,
                max: self.cfg.max_position_embeddings,
            });
        }
        if total > cache.capacity {
            return Err(ModelError::arg(
                "cache",
                format!("holds {} positions, {total} needed", cache.capacity),
            ));
        }
        let k = Kernels::Fused;
        let offset = cache.len;
        // 1. Embed and build the rotary tables for the new positions.
        let idt = Tensor::from_slice(ids, t, &self.device)?;
        let mut x = self.embed_tokens.index_select(&idt, 0)?.unsqueeze(0)?;
        let (cos, sin) = self.rope.range(offset, t, &self.device)?;
        // 2. Causal mask over cached + new keys (not needed for one token).
        let mask = if t > 1 {
            Some(ops::causal_mask(t, offset, &self.device)?)
        } else {
            None
        };
        // 3. Decoder layers, extending the cache.
        for (l, layer) in self.layers.iter().enumerate() {
            x = self.layer_forward(layer, &x, &cos, &sin, mask.as_ref(), k, Some((cache, l)))?;
        }
        cache.len = total;
        // 4. Final norm and logits of the last position.
        let last = x.narrow(1, t - 1, 1)?.reshape((1, self.cfg.hidden_size))?;
        let h = ops::rms_norm(&last, &self.norm, self.cfg.rms_norm_eps, k)?;
        Ok(self.lm_logits(&h)?.reshape(self.cfg.vocab_size)?)
    }
}

/// The additive attention mask `[B, 1, t, total]` of `t` queries at
/// positions `offset..offset + t` over the keys `0..total` of each row:
/// `MASKED` (finite, never -inf) on future keys and on padded keys
/// (`key_valid[row][j]` false), 0 elsewhere. A padded query attends to
/// itself only, so no row is fully masked (its output is unused).
fn padded_causal_mask(
    key_valid: &[Vec<bool>],
    t: usize,
    offset: usize,
    total: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let b = key_valid.len();
    let mut mask = vec![0f32; b * t * total];
    for (r, valid) in key_valid.iter().enumerate() {
        for i in 0..t {
            let q = offset + i;
            for (j, v) in mask[(r * t + i) * total..(r * t + i + 1) * total]
                .iter_mut()
                .enumerate()
            {
                if j > q || (!valid[j] && j != q) {
                    *v = MASKED;
                }
            }
        }
    }
    Tensor::from_vec(mask, (b, 1, t, total), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: future keys and padded keys are masked, a padded query
    /// keeps itself, and the queries may start after cached columns.
    #[test]
    fn padded_causal_mask_by_hand() {
        let m = |valid: Vec<Vec<bool>>, t, offset, total| {
            padded_causal_mask(&valid, t, offset, total, &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .into_iter()
                .map(|v| u8::from(v == 0.0))
                .collect::<Vec<_>>()
        };
        // Left padding, 3 keys, 3 queries from position 0: 1 = attended.
        assert_eq!(
            m(vec![vec![false, true, true]], 3, 0, 3),
            [1, 0, 0, 0, 1, 0, 0, 1, 1]
        );
        // Two queries after one cached column; a padded key in row 1.
        assert_eq!(
            m(
                vec![vec![true, true, true], vec![true, false, true]],
                2,
                1,
                3
            ),
            [1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]
        );
    }
}
