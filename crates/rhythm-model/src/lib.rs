//! rhythm-model: the transformer engine behind rhythm.
//!
//! This crate loads a local Hugging Face checkpoint of a Qwen3, Qwen2 or
//! Llama model (one `model_type` each, see [`config::Family`]), runs it in
//! `f32` on candle, generates from it, reads its attention for the rhythm
//! metrics, and writes it back in the same layout. The three families
//! differ only in small details (q/k RMSNorm and an explicit `head_dim` for
//! Qwen3, q/k/v biases for Qwen2, `llama3` RoPE scaling and optional biases
//! for Llama), so they share one decoder ([`Model`]) with per-family
//! switches read from [`Config`], which deserializes `config.json` as
//! transformers writes it. Weight names mirror the checkpoint
//! ([`layout::weight_specs`]) and are validated (presence, shape, dtype)
//! before any data is read, so that a bad checkpoint yields a one-line
//! [`ModelError`] naming the file and the weight.
//!
//! There are two forward paths over the same weights. The *differentiable*
//! path ([`Model::forward`], [`Model::forward_masked`],
//! [`Model::token_logprobs`]) is made only of basic candle ops that have a
//! backward pass: RMSNorm as `x * rsqrt(mean(x^2) + eps) * w`, softmax as
//! `exp(x - max) / sum`, RoPE through `narrow`/`mul`/`cat`. candle-nn's
//! fused kernels (`rms_norm`, `softmax_last_dim`, `rotary_emb::rope`) have no
//! backward and would silently cut gradients, so they are used only by the
//! *inference* paths: KV-cached generation ([`Model::generate`]) and the
//! probe. A model built from a [`candle_nn::VarMap`]-backed `VarBuilder`
//! ([`Model::random`], or [`Pretrained::load_with`] with `trainable`) holds
//! the variables themselves, so a GRPO trainer can optimise it directly and
//! checkpoint it with [`save_pretrained`] (atomic, transformers-loadable).
//!
//! The probe ([`Model::probe_streamed`], [`Model::probe_captured`]) does
//! one forward pass over prompt + response and computes attention in blocks
//! of query rows, so no `N x N` matrix is ever held: each row of a probed
//! layer is fed to a [`rhythm_core::HeadSummary`] (or, for short inputs,
//! stored into a `[heads, N, N]` map), and logits are computed for blocks of
//! rows and reduced at once to log-probabilities and entropies. The same
//! engine, with no probed layer, is the fast inference forward
//! ([`Model::forward_inference`]). Its per-row work (the causal softmax and
//! the logits' entropy) runs in vectorised [`kernels`], and candle's matmul
//! uses the AVX-512 kernels of the `gemm` crate where the CPU has them.
//! Inference paths run on weights detached from autograd
//! ([`Model::detached`]), so a trainable model does not record a graph (and
//! keep every attention map alive) while it generates or probes.
//!
//! "SPEC section N" in these docs is section N of the project's specification,
//! `docs/spec.md` in the repository: the binding definitions this code follows.

pub mod alloc;
pub mod backprop;
pub mod chat;
pub mod config;
pub mod decode;
pub mod device;
pub mod error;
pub mod generate;
pub mod kernels;
pub mod layout;
pub mod model;
pub mod ops;
pub mod pretrained;
pub mod probe;
pub mod rhythm_probe;
pub mod rope;
pub mod weights;

pub use alloc::tune_allocator;
pub use backprop::{Gradients, Tape};
pub use chat::{ChatMode, ChatSettings, ChatTemplate, Prompt, RenderOptions};
pub use config::{Config, Family, GenerationDefaults, RopeScaling, TokenIds};
pub use device::{DeviceSettings, DeviceSpec};
pub use error::{json_kind, ModelError, Result};
pub use generate::{FinishReason, Generation, SamplingParams};
pub use layout::{weight_specs, WeightKind, WeightSpec};
pub use model::{KvCache, Model};
pub use ops::Kernels;
pub use pretrained::{load_tokenizer, save_pretrained, LoadOptions, Pretrained};
pub use probe::{CapturedProbe, MapSink, ProbeTuning, RowSink, StreamedProbe, TokenStats};
pub use rhythm_probe::{ProbeExtras, ProbedResponse};
pub use weights::{write_safetensors, write_safetensors_atomic};

pub use candle_core::{DType, Device, Tensor};
