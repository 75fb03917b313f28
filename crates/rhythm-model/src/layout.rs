//! The checkpoint layout: the Hugging Face name, shape and kind of every
//! tensor of a decoder, written once. [`weight_specs`] lists them for
//! validation and random initialisation; the model's assembly
//! (`Model::new`) and the hand-written training pass (`crate::backprop`)
//! look tensors up through the same [`LayerNames`] and constants, so a name
//! cannot drift between them.

use crate::config::Config;

/// The token embedding.
pub const EMBED_TOKENS: &str = "model.embed_tokens.weight";
/// The final RMSNorm gain.
pub const FINAL_NORM: &str = "model.norm.weight";
/// The output projection (absent with tied embeddings).
pub const LM_HEAD: &str = "lm_head.weight";

/// What a weight is, which decides its random initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// The token embedding `[vocab, hidden]`.
    Embedding,
    /// A projection matrix `[out, in]`.
    Matrix,
    /// A projection bias `[out]`.
    Bias,
    /// An RMSNorm gain.
    Norm,
}

/// Name, shape and kind of one checkpoint tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightSpec {
    /// The name used in HF checkpoints, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// The shape implied by the configuration.
    pub shape: Vec<usize>,
    /// The kind of tensor.
    pub kind: WeightKind,
}

/// The names of one projection's weight and (optional) bias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjNames {
    /// `{prefix}.weight`.
    pub weight: String,
    /// `{prefix}.bias`.
    pub bias: String,
}

impl ProjNames {
    fn new(prefix: String) -> Self {
        ProjNames {
            weight: format!("{prefix}.weight"),
            bias: format!("{prefix}.bias"),
        }
    }
}

/// The tensor names of decoder layer `l` (`model.layers.{l}.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNames {
    /// `input_layernorm.weight`.
    pub input_norm: String,
    /// `self_attn.q_proj`.
    pub q_proj: ProjNames,
    /// `self_attn.k_proj`.
    pub k_proj: ProjNames,
    /// `self_attn.v_proj`.
    pub v_proj: ProjNames,
    /// `self_attn.o_proj`.
    pub o_proj: ProjNames,
    /// `self_attn.q_norm.weight` (qwen3).
    pub q_norm: String,
    /// `self_attn.k_norm.weight` (qwen3).
    pub k_norm: String,
    /// `post_attention_layernorm.weight`.
    pub post_norm: String,
    /// `mlp.gate_proj`.
    pub gate_proj: ProjNames,
    /// `mlp.up_proj`.
    pub up_proj: ProjNames,
    /// `mlp.down_proj`.
    pub down_proj: ProjNames,
}

impl LayerNames {
    /// The names of layer `l`.
    pub fn of(l: usize) -> Self {
        let p = format!("model.layers.{l}");
        let attn = |proj: &str| ProjNames::new(format!("{p}.self_attn.{proj}"));
        let mlp = |proj: &str| ProjNames::new(format!("{p}.mlp.{proj}"));
        LayerNames {
            input_norm: format!("{p}.input_layernorm.weight"),
            q_proj: attn("q_proj"),
            k_proj: attn("k_proj"),
            v_proj: attn("v_proj"),
            o_proj: attn("o_proj"),
            q_norm: format!("{p}.self_attn.q_norm.weight"),
            k_norm: format!("{p}.self_attn.k_norm.weight"),
            post_norm: format!("{p}.post_attention_layernorm.weight"),
            gate_proj: mlp("gate_proj"),
            up_proj: mlp("up_proj"),
            down_proj: mlp("down_proj"),
        }
    }
}

fn push(out: &mut Vec<WeightSpec>, name: &str, shape: Vec<usize>, kind: WeightKind) {
    out.push(WeightSpec {
        name: name.to_string(),
        shape,
        kind,
    });
}

/// A projection `[out_dim, in_dim]` and, with `bias`, its bias `[out_dim]`.
fn proj(out: &mut Vec<WeightSpec>, names: &ProjNames, out_dim: usize, in_dim: usize, bias: bool) {
    push(
        out,
        &names.weight,
        vec![out_dim, in_dim],
        WeightKind::Matrix,
    );
    if bias {
        push(out, &names.bias, vec![out_dim], WeightKind::Bias);
    }
}

/// Every tensor a checkpoint for `cfg` must provide, in a stable order.
pub fn weight_specs(cfg: &Config) -> Vec<WeightSpec> {
    let (h, i, v) = (cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size);
    let (nq, nkv, d) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_dim());
    let o = &mut Vec::new();
    push(o, EMBED_TOKENS, vec![v, h], WeightKind::Embedding);
    for l in 0..cfg.num_hidden_layers {
        let n = LayerNames::of(l);
        push(o, &n.input_norm, vec![h], WeightKind::Norm);
        proj(o, &n.q_proj, nq * d, h, cfg.qkv_bias());
        proj(o, &n.k_proj, nkv * d, h, cfg.qkv_bias());
        proj(o, &n.v_proj, nkv * d, h, cfg.qkv_bias());
        proj(o, &n.o_proj, h, nq * d, cfg.o_bias());
        if cfg.qk_norm() {
            push(o, &n.q_norm, vec![d], WeightKind::Norm);
            push(o, &n.k_norm, vec![d], WeightKind::Norm);
        }
        push(o, &n.post_norm, vec![h], WeightKind::Norm);
        proj(o, &n.gate_proj, i, h, cfg.mlp_bias());
        proj(o, &n.up_proj, i, h, cfg.mlp_bias());
        proj(o, &n.down_proj, h, i, cfg.mlp_bias());
    }
    push(o, FINAL_NORM, vec![h], WeightKind::Norm);
    if !cfg.tied_embeddings() {
        push(o, LM_HEAD, vec![v, h], WeightKind::Matrix);
    }
    std::mem::take(o)
}
