//! The training forward and backward pass written by hand (llm.c style).
//!
//! candle's autograd records every elementwise op of the differentiable
//! forward ([`Model::token_logprobs`]) as its own tensor, pads every
//! micro-batch to its longest row, and materialises a `[B, 1, T, T]` mask;
//! its backward then walks that graph op by op. For GRPO updates and
//! pretraining only one quantity is needed, the next-token log-probability
//! of each position, and one gradient shape, `sum dlogp * logp`. This module
//! computes exactly that on packed, unpadded sequences:
//!
//! * [`Model::train_forward`] runs the decoder over a list of sequences
//!   (each at positions `0..len`, causal), keeping the activations the
//!   backward pass needs in a [`Tape`], and returns the log-probabilities;
//! * [`Model::train_backward`] takes `dL/dlogp` for every position and adds
//!   the gradient of every weight into a [`Gradients`] buffer;
//! * [`Model::fast_logprobs`] is the forward alone (a frozen reference).
//!
//! Projections are single GEMMs over all tokens of the batch (the `gemm`
//! crate, which candle's matmul also uses); attention is computed per
//! sequence and head, in parallel, with strided GEMMs straight on the
//! projection outputs (no transposes or copies); norms, RoPE, SwiGLU and the
//! log-softmax are fused loops. The math is the differentiable path's
//! (same RMSNorm, softmax, RoPE tables); gradients are held to PyTorch
//! autograd on the same weights and batch by
//! `crates/rhythm-model/tests/grad_reference.rs` and to candle autograd by
//! `crates/rhythm-model/tests/grad_fast.rs`.
//!
//! Only the CPU is supported ([`Model::supports_fast_train`]); other
//! devices keep the candle path.
//!
//! The pieces: `kernels` (GEMMs, norms, RoPE, SiLU, linear layers),
//! `attention` (causal attention forward and backward) and, here, the
//! weight index, the tape, the gradient buffer and the per-block passes.

use std::collections::HashMap;

mod attention;
mod kernels;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use self::attention::{attention_bwd, attention_fwd};
use self::kernels::*;
pub(crate) use self::kernels::{
    linear_fwd, linear_fwd_t, mm_nt, rms_fwd, rope_inplace, serial, transpose,
};

use crate::error::{ModelError, Result};
use crate::layout::{LayerNames, EMBED_TOKENS, FINAL_NORM, LM_HEAD};
use crate::model::Model;

/// Index of every weight of the model in [`Model::named_weights`] order.
#[derive(Debug, Clone)]
pub(crate) struct LayerIdx {
    pub(crate) ln1: usize,
    pub(crate) wq: usize,
    pub(crate) bq: Option<usize>,
    pub(crate) wk: usize,
    pub(crate) bk: Option<usize>,
    pub(crate) wv: usize,
    pub(crate) bv: Option<usize>,
    pub(crate) wo: usize,
    pub(crate) bo: Option<usize>,
    pub(crate) qn: Option<usize>,
    pub(crate) kn: Option<usize>,
    pub(crate) ln2: usize,
    pub(crate) wg: usize,
    pub(crate) bg: Option<usize>,
    pub(crate) wu: usize,
    pub(crate) bu: Option<usize>,
    pub(crate) wd: usize,
    pub(crate) bd: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) struct Index {
    pub(crate) embed: usize,
    pub(crate) layers: Vec<LayerIdx>,
    pub(crate) norm: usize,
    pub(crate) lm: usize,
}

impl Index {
    pub(crate) fn new(model: &Model) -> Result<Self> {
        let by: HashMap<&str, usize> = model
            .named_weights()
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_str(), i))
            .collect();
        let get = |name: &str| -> Result<usize> {
            by.get(name)
                .copied()
                .ok_or_else(|| ModelError::MissingWeight {
                    path: "<model>".into(),
                    name: name.to_string(),
                })
        };
        let opt = |name: &str| by.get(name).copied();
        let mut layers = Vec::new();
        for l in 0..model.num_layers() {
            let n = LayerNames::of(l);
            layers.push(LayerIdx {
                ln1: get(&n.input_norm)?,
                wq: get(&n.q_proj.weight)?,
                bq: opt(&n.q_proj.bias),
                wk: get(&n.k_proj.weight)?,
                bk: opt(&n.k_proj.bias),
                wv: get(&n.v_proj.weight)?,
                bv: opt(&n.v_proj.bias),
                wo: get(&n.o_proj.weight)?,
                bo: opt(&n.o_proj.bias),
                qn: opt(&n.q_norm),
                kn: opt(&n.k_norm),
                ln2: get(&n.post_norm)?,
                wg: get(&n.gate_proj.weight)?,
                bg: opt(&n.gate_proj.bias),
                wu: get(&n.up_proj.weight)?,
                bu: opt(&n.up_proj.bias),
                wd: get(&n.down_proj.weight)?,
                bd: opt(&n.down_proj.bias),
            });
        }
        let embed = get(EMBED_TOKENS)?;
        Ok(Index {
            embed,
            layers,
            norm: get(FINAL_NORM)?,
            lm: if model.config().tied_embeddings() {
                embed
            } else {
                get(LM_HEAD)?
            },
        })
    }
}

/// Gradients of every weight, in the order and with the names of
/// [`Model::named_weights`] (a tied `lm_head` adds into the embedding).
#[derive(Debug, Clone)]
pub struct Gradients {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    data: Vec<Vec<f32>>,
}

impl Gradients {
    /// Zero gradients for every weight of `model`.
    pub fn zeros(model: &Model) -> Self {
        let w = model.named_weights();
        Gradients {
            names: w.iter().map(|(n, _)| n.clone()).collect(),
            shapes: w.iter().map(|(_, t)| t.dims().to_vec()).collect(),
            data: w.iter().map(|(_, t)| vec![0f32; t.elem_count()]).collect(),
        }
    }

    /// The gradient of the weight `name`, flattened (row-major).
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| self.data[i].as_slice())
    }

    /// `(name, gradient)` pairs as tensors of the weights' shapes.
    pub fn to_tensors(&self, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.names
            .iter()
            .zip(&self.shapes)
            .zip(&self.data)
            .map(|((n, s), d)| Ok((n.clone(), Tensor::from_slice(d, s.as_slice(), device)?)))
            .collect()
    }

    /// Sets every gradient to zero.
    pub fn clear(&mut self) {
        for d in &mut self.data {
            d.fill(0.0);
        }
    }
}

/// Activations of one layer kept for the backward pass.
#[derive(Debug, Default)]
struct LayerAct {
    /// Layer input `[N, H]`.
    x: Vec<f32>,
    r1: Vec<f32>,
    h1: Vec<f32>,
    /// Projections before the q/k norm (only kept with a q/k norm).
    qpre: Vec<f32>,
    kpre: Vec<f32>,
    rq: Vec<f32>,
    rk: Vec<f32>,
    /// Rotated queries and keys, values.
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// Attention probabilities, per sequence and head `n x n`.
    p: Vec<f32>,
    /// Attention output before `o_proj`, `[N, heads * d]`.
    o: Vec<f32>,
    /// After the attention residual.
    xm: Vec<f32>,
    r2: Vec<f32>,
    h2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
}

/// One layer's attention probabilities in [`Model::run_forward`]: for
/// sequence `s` and head `h`, the causal `n x n` block (`n = lens[s]`, row
/// `t` holds columns `0..=t`, zeros beyond) starts at `poff[s] + h * n * n`.
pub(crate) struct AttentionProbs<'a> {
    pub(crate) layer: usize,
    pub(crate) p: &'a [f32],
    pub(crate) lens: &'a [usize],
    pub(crate) poff: &'a [usize],
}

/// What [`Model::train_forward`] keeps for [`Model::train_backward`].
#[derive(Debug)]
pub struct Tape {
    /// `logprobs[i][t] = ln p(seq_i[t + 1] | seq_i[..=t])`.
    pub logprobs: Vec<Vec<f32>>,
    weights: Vec<Vec<f32>>,
    idx: Index,
    ids: Vec<u32>,
    pos: Vec<u32>,
    starts: Vec<usize>,
    lens: Vec<usize>,
    poff: Vec<usize>,
    layers: Vec<LayerAct>,
    xf: Vec<f32>,
    rf: Vec<f32>,
    hf: Vec<f32>,
    /// `[N, vocab]` logits of the packed batch.
    pub(crate) logits: Vec<f32>,
}

impl LayerAct {
    fn floats(&self) -> usize {
        [
            &self.x, &self.r1, &self.h1, &self.qpre, &self.kpre, &self.rq, &self.rk, &self.q,
            &self.k, &self.v, &self.p, &self.o, &self.xm, &self.r2, &self.h2, &self.gate, &self.up,
            &self.act,
        ]
        .iter()
        .map(|v| v.len())
        .sum()
    }
}

impl Tape {
    /// Bytes of memory the tape's buffers hold (activations, weights copy,
    /// logits, log-probabilities).
    pub fn bytes(&self) -> usize {
        let floats = self.layers.iter().map(LayerAct::floats).sum::<usize>()
            + self.weights.iter().map(Vec::len).sum::<usize>()
            + self.logprobs.iter().map(Vec::len).sum::<usize>()
            + self.xf.len()
            + self.rf.len()
            + self.hf.len()
            + self.logits.len()
            + self.ids.len()
            + self.pos.len();
        floats * 4
    }
}

/// Shapes used throughout.
#[derive(Clone, Copy)]
pub(crate) struct Geo {
    pub(crate) hidden: usize,
    pub(crate) inter: usize,
    pub(crate) vocab: usize,
    pub(crate) heads: usize,
    pub(crate) kvh: usize,
    pub(crate) d: usize,
    pub(crate) eps: f32,
}

impl Model {
    /// Whether [`Model::train_forward`] / [`Model::train_backward`] can run
    /// on this model's device (the CPU).
    pub fn supports_fast_train(&self) -> bool {
        matches!(self.device(), Device::Cpu)
    }

    pub(crate) fn geo(&self) -> Geo {
        Geo {
            hidden: self.cfg.hidden_size,
            inter: self.cfg.intermediate_size,
            vocab: self.cfg.vocab_size,
            heads: self.dims.heads,
            kvh: self.dims.kv_heads,
            d: self.dims.head_dim,
            eps: self.cfg.rms_norm_eps as f32,
        }
    }

    /// Next-token log-probabilities of each sequence (no tape): entry `t`
    /// of row `i` is `ln p(seqs[i][t + 1] | seqs[i][..=t])`.
    pub fn fast_logprobs(&self, seqs: &[&[u32]]) -> Result<Vec<Vec<f32>>> {
        Ok(self.run_forward(seqs, false, &mut |_| Ok(()))?.logprobs)
    }

    /// The training forward over `seqs` (each at positions `0..len`,
    /// causal, at least 2 tokens): returns the [`Tape`] holding the
    /// log-probabilities and the activations for [`Model::train_backward`].
    pub fn train_forward(&self, seqs: &[&[u32]]) -> Result<Tape> {
        self.run_forward(seqs, true, &mut |_| Ok(()))
    }

    /// The forward pass; `on_attention` sees every layer's attention
    /// probabilities as they are computed (the batched probe's hook).
    pub(crate) fn run_forward(
        &self,
        seqs: &[&[u32]],
        keep: bool,
        on_attention: &mut dyn FnMut(AttentionProbs<'_>) -> Result<()>,
    ) -> Result<Tape> {
        if !self.supports_fast_train() {
            return Err(ModelError::arg(
                "device",
                "the hand-written training pass runs on the CPU only",
            ));
        }
        if seqs.is_empty() {
            return Err(ModelError::arg("seqs", "expected at least one sequence"));
        }
        // The activations are large and short-lived: reuse freed pages.
        crate::alloc::tune_allocator();
        for s in seqs {
            if s.len() < 2 {
                return Err(ModelError::arg(
                    "seqs",
                    "expected at least 2 tokens per sequence",
                ));
            }
            self.check_ids(s)?;
        }
        let g = self.geo();
        let idx = Index::new(self)?;
        let weights: Vec<Vec<f32>> = self
            .named_weights()
            .iter()
            .map(|(_, t)| t.flatten_all()?.to_vec1::<f32>())
            .collect::<candle_core::Result<_>>()?;
        let lens: Vec<usize> = seqs.iter().map(|s| s.len()).collect();
        let mut starts = Vec::with_capacity(seqs.len());
        let mut poff = Vec::with_capacity(seqs.len());
        let (mut n, mut pt) = (0usize, 0usize);
        for &l in &lens {
            starts.push(n);
            poff.push(pt);
            n += l;
            pt += g.heads * l * l;
        }
        let ids: Vec<u32> = seqs.iter().flat_map(|s| s.iter().copied()).collect();
        let pos: Vec<u32> = lens.iter().flat_map(|&l| 0..l as u32).collect();
        let maxlen = *lens.iter().max().expect("non-empty");
        let (cos, sin) = self.rope.table_vecs(maxlen);
        let (hd, qw, kw) = (g.hidden, g.heads * g.d, g.kvh * g.d);
        // Embed.
        let emb = &weights[idx.embed];
        let mut x = vec![0f32; n * hd];
        for (row, &id) in x.chunks_exact_mut(hd).zip(&ids) {
            row.copy_from_slice(&emb[id as usize * hd..(id as usize + 1) * hd]);
        }
        let mut acts = Vec::with_capacity(idx.layers.len());
        for (layer_no, li) in idx.layers.iter().enumerate() {
            let w = |i: usize| weights[i].as_slice();
            let mut a = LayerAct {
                r1: vec![0f32; n],
                h1: vec![0f32; n * hd],
                ..Default::default()
            };
            rms_fwd(&x, w(li.ln1), g.eps, &mut a.h1, &mut a.r1);
            let mut q = vec![0f32; n * qw];
            let mut k = vec![0f32; n * kw];
            let mut v = vec![0f32; n * kw];
            linear_fwd(&a.h1, w(li.wq), li.bq.map(w), &mut q, n, hd, qw);
            linear_fwd(&a.h1, w(li.wk), li.bk.map(w), &mut k, n, hd, kw);
            linear_fwd(&a.h1, w(li.wv), li.bv.map(w), &mut v, n, hd, kw);
            if let (Some(qn), Some(kn)) = (li.qn, li.kn) {
                let mut qo = vec![0f32; n * qw];
                let mut ko = vec![0f32; n * kw];
                a.rq = vec![0f32; n * g.heads];
                a.rk = vec![0f32; n * g.kvh];
                rms_fwd(&q, w(qn), g.eps, &mut qo, &mut a.rq);
                rms_fwd(&k, w(kn), g.eps, &mut ko, &mut a.rk);
                a.qpre = std::mem::replace(&mut q, qo);
                a.kpre = std::mem::replace(&mut k, ko);
            }
            rope_inplace(&mut q, g.heads, g.d, &pos, &cos, &sin, false);
            rope_inplace(&mut k, g.kvh, g.d, &pos, &cos, &sin, false);
            let mut p = vec![0f32; pt];
            let mut o = vec![0f32; n * qw];
            attention_fwd(&g, &q, &k, &v, &mut p, &mut o, &starts, &lens, &poff);
            on_attention(AttentionProbs {
                layer: layer_no,
                p: &p,
                lens: &lens,
                poff: &poff,
            })?;
            let mut xm = vec![0f32; n * hd];
            linear_fwd(&o, w(li.wo), li.bo.map(w), &mut xm, n, qw, hd);
            for (m, &xv) in xm.iter_mut().zip(&x) {
                *m += xv;
            }
            a.r2 = vec![0f32; n];
            a.h2 = vec![0f32; n * hd];
            rms_fwd(&xm, w(li.ln2), g.eps, &mut a.h2, &mut a.r2);
            let mut gate = vec![0f32; n * g.inter];
            let mut up = vec![0f32; n * g.inter];
            linear_fwd(&a.h2, w(li.wg), li.bg.map(w), &mut gate, n, hd, g.inter);
            linear_fwd(&a.h2, w(li.wu), li.bu.map(w), &mut up, n, hd, g.inter);
            let mut act = vec![0f32; n * g.inter];
            act.par_chunks_mut(4096)
                .zip(gate.par_chunks(4096).zip(up.par_chunks(4096)))
                .for_each(|(ab, (gb, ub))| crate::kernels::silu_mul(ab, gb, ub));
            let mut xo = vec![0f32; n * hd];
            linear_fwd(&act, w(li.wd), li.bd.map(w), &mut xo, n, g.inter, hd);
            for (o, &m) in xo.iter_mut().zip(&xm) {
                *o += m;
            }
            let xin = std::mem::replace(&mut x, xo);
            if keep {
                a.x = xin;
                a.q = q;
                a.k = k;
                a.v = v;
                a.p = p;
                a.o = o;
                a.xm = xm;
                a.gate = gate;
                a.up = up;
                a.act = act;
                acts.push(a);
            }
        }
        // Final norm, logits, log-probabilities.
        let mut rf = vec![0f32; n];
        let mut hf = vec![0f32; n * hd];
        rms_fwd(&x, &weights[idx.norm], g.eps, &mut hf, &mut rf);
        let mut logits = vec![0f32; n * g.vocab];
        mm_nt(&hf, &weights[idx.lm], &mut logits, n, hd, g.vocab, false);
        let mut logprobs = Vec::with_capacity(seqs.len());
        for (s, &st) in starts.iter().enumerate() {
            let l = lens[s];
            let row: Vec<f32> = (0..l - 1)
                .map(|t| {
                    let r = &logits[(st + t) * g.vocab..(st + t + 1) * g.vocab];
                    let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let lse = r.iter().map(|&z| (z - m).exp()).sum::<f32>().ln() + m;
                    r[ids[st + t + 1] as usize] - lse
                })
                .collect();
            logprobs.push(row);
        }
        Ok(Tape {
            logprobs,
            weights: if keep { weights } else { Vec::new() },
            idx,
            ids,
            pos,
            starts,
            lens,
            poff,
            layers: acts,
            xf: if keep { x } else { Vec::new() },
            rf,
            hf,
            logits,
        })
    }

    /// Adds to `grads` the gradient of `sum_i sum_t dlogp[i][t] *
    /// tape.logprobs[i][t]` with respect to every weight (`dlogp` shaped
    /// like `tape.logprobs`). Consumes the tape.
    pub fn train_backward(
        &self,
        tape: Tape,
        dlogp: &[Vec<f32>],
        grads: &mut Gradients,
    ) -> Result<()> {
        let g = self.geo();
        if tape.weights.is_empty() {
            return Err(ModelError::arg("tape", "made without activations"));
        }
        if dlogp.len() != tape.logprobs.len()
            || dlogp
                .iter()
                .zip(&tape.logprobs)
                .any(|(a, b)| a.len() != b.len())
        {
            return Err(ModelError::arg(
                "dlogp",
                "expected one value per log-probability of the tape",
            ));
        }
        if grads.data.len() != tape.weights.len()
            || grads
                .data
                .iter()
                .zip(&tape.weights)
                .any(|(a, b)| a.len() != b.len())
        {
            return Err(ModelError::arg("grads", "made for another model"));
        }
        let Tape {
            weights,
            idx,
            ids,
            pos,
            starts,
            lens,
            poff,
            mut layers,
            xf,
            rf,
            hf,
            mut logits,
            ..
        } = tape;
        let n = ids.len();
        let (hd, qw, kw, vocab) = (g.hidden, g.heads * g.d, g.kvh * g.d, g.vocab);
        let gd = &mut grads.data;
        // dlogits = dlogp * (onehot(target) - softmax), in place of logits.
        for (s, &st) in starts.iter().enumerate() {
            let l = lens[s];
            for (t, r) in logits[st * vocab..(st + l) * vocab]
                .chunks_exact_mut(vocab)
                .enumerate()
            {
                if t + 1 == l {
                    r.fill(0.0);
                    continue;
                }
                let dl = dlogp[s][t];
                let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for z in r.iter_mut() {
                    *z = (*z - m).exp();
                    sum += *z;
                }
                for z in r.iter_mut() {
                    *z = -dl * (*z / sum);
                }
                r[ids[st + t + 1] as usize] += dl;
            }
        }
        let dlogits = logits;
        let mut dh = vec![0f32; n * hd];
        mm_nn(&dlogits, &weights[idx.lm], &mut dh, n, vocab, hd, false);
        mm_tn_acc(&dlogits, &hf, &mut gd[idx.lm], n, vocab, hd);
        let mut dx = vec![0f32; n * hd];
        rms_bwd(
            &xf,
            &rf,
            &weights[idx.norm],
            &dh,
            &mut dx,
            &mut gd[idx.norm],
            false,
        );
        let maxlen = *lens.iter().max().expect("non-empty");
        let (cos, sin) = self.rope.table_vecs(maxlen);
        for (li, a) in idx.layers.iter().zip(layers.iter_mut()).rev() {
            let w = |i: usize| weights[i].as_slice();
            // MLP: x_out = xm + down(silu(gate) * up).
            let mut dact = vec![0f32; n * g.inter];
            mm_nn(&dx, w(li.wd), &mut dact, n, hd, g.inter, false);
            mm_tn_acc(&dx, &a.act, &mut gd[li.wd], n, hd, g.inter);
            if let Some(b) = li.bd {
                colsum_acc(&dx, &mut gd[b]);
            }
            // dact -> dgate (in a.gate), dup (in a.up).
            a.gate
                .par_chunks_mut(4096)
                .zip(a.up.par_chunks_mut(4096))
                .zip(dact.par_chunks(4096))
                .for_each(|((gb, ub), db)| crate::kernels::silu_mul_bwd(gb, ub, db));
            let (dgate, dup) = (&a.gate, &a.up);
            let mut dh2 = vec![0f32; n * hd];
            mm_nn(dgate, w(li.wg), &mut dh2, n, g.inter, hd, false);
            mm_nn(dup, w(li.wu), &mut dh2, n, g.inter, hd, true);
            mm_tn_acc(dgate, &a.h2, &mut gd[li.wg], n, g.inter, hd);
            mm_tn_acc(dup, &a.h2, &mut gd[li.wu], n, g.inter, hd);
            if let Some(b) = li.bg {
                colsum_acc(dgate, &mut gd[b]);
            }
            if let Some(b) = li.bu {
                colsum_acc(dup, &mut gd[b]);
            }
            // dxm = dx + norm2 backward.
            rms_bwd(
                &a.xm,
                &a.r2,
                w(li.ln2),
                &dh2,
                &mut dx,
                &mut gd[li.ln2],
                true,
            );
            // Attention: xm = x + o_proj(o).
            let mut dob = vec![0f32; n * qw];
            mm_nn(&dx, w(li.wo), &mut dob, n, hd, qw, false);
            mm_tn_acc(&dx, &a.o, &mut gd[li.wo], n, hd, qw);
            if let Some(b) = li.bo {
                colsum_acc(&dx, &mut gd[b]);
            }
            let mut dq = vec![0f32; n * qw];
            let mut dk = vec![0f32; n * kw];
            let mut dv = vec![0f32; n * kw];
            attention_bwd(
                &g, &a.q, &a.k, &a.v, &a.p, &dob, &mut dq, &mut dk, &mut dv, &starts, &lens, &poff,
            );
            rope_inplace(&mut dq, g.heads, g.d, &pos, &cos, &sin, true);
            rope_inplace(&mut dk, g.kvh, g.d, &pos, &cos, &sin, true);
            if let (Some(qn), Some(kn)) = (li.qn, li.kn) {
                let mut t = vec![0f32; n * qw];
                rms_bwd(&a.qpre, &a.rq, w(qn), &dq, &mut t, &mut gd[qn], false);
                dq = t;
                let mut t = vec![0f32; n * kw];
                rms_bwd(&a.kpre, &a.rk, w(kn), &dk, &mut t, &mut gd[kn], false);
                dk = t;
            }
            let mut dh1 = vec![0f32; n * hd];
            mm_nn(&dq, w(li.wq), &mut dh1, n, qw, hd, false);
            mm_nn(&dk, w(li.wk), &mut dh1, n, kw, hd, true);
            mm_nn(&dv, w(li.wv), &mut dh1, n, kw, hd, true);
            mm_tn_acc(&dq, &a.h1, &mut gd[li.wq], n, qw, hd);
            mm_tn_acc(&dk, &a.h1, &mut gd[li.wk], n, kw, hd);
            mm_tn_acc(&dv, &a.h1, &mut gd[li.wv], n, kw, hd);
            for (b, d) in [(li.bq, &dq), (li.bk, &dk), (li.bv, &dv)] {
                if let Some(b) = b {
                    colsum_acc(d, &mut gd[b]);
                }
            }
            rms_bwd(&a.x, &a.r1, w(li.ln1), &dh1, &mut dx, &mut gd[li.ln1], true);
            // Free this layer's activations early.
            *a = LayerAct::default();
        }
        let de = &mut gd[idx.embed];
        for (row, &id) in dx.chunks_exact(hd).zip(&ids) {
            for (e, &v) in de[id as usize * hd..(id as usize + 1) * hd]
                .iter_mut()
                .zip(row)
            {
                *e += v;
            }
        }
        Ok(())
    }
}
