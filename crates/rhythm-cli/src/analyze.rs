//! `rhythm analyze`: generate (or take) a response, probe the model's
//! attention over prompt + response, and compute SPEC sections 3-7 and 11
//! with the analysis defaults (FAI horizon `1:end`).
//!
//! Writes `OUT/analysis.json` (per token and per head) and `OUT/report.html`
//! (a self-contained page, see [`crate::report`]) and prints a short
//! summary. The pieces here (flags, generation, the probe, token texts) are
//! shared with `rhythm stats` and `rhythm perturb`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rhythm_core::{chunk_ids, HeadSummary, Horizon, Layers, MetricSettings, Params, Rhythm};
use rhythm_model::{ChatTemplate, DeviceSettings, Pretrained, ProbeExtras, SamplingParams, Tensor};
use rhythm_rl::data::DataSettings;
use serde_json::{json, Value};

use crate::common::{progress, sparkline};
use crate::jsonl::{records_from, write_atomic, Record};

/// The SPEC parameters of the analysis, with the analysis defaults
/// (`Params::analysis()`: FAI horizon `1:end`).
#[derive(Args, Clone, Debug)]
pub struct AnalysisOpts {
    #[command(flatten)]
    pub metrics: MetricSettings,
}

impl AnalysisOpts {
    /// The [`Params`] these flags describe over SPEC's analysis preset
    /// (horizon `1:end`), validated.
    pub fn params(&self) -> Result<Params> {
        Ok(self.metrics.params(&Params::analysis())?)
    }

    /// The probed layers for `model` (default `sampled`).
    pub fn layers(&self, model: &Pretrained) -> Result<Vec<usize>> {
        Ok(self
            .metrics
            .layers_or(Layers::Sampled)
            .resolve(model.model.num_layers())?)
    }
}

/// The parameters as a JSON object (for the output files).
pub fn params_json(p: &Params) -> Value {
    let hi = if p.horizon.1 == usize::MAX {
        json!("end")
    } else {
        json!(p.horizon.1)
    };
    json!({
        "window": p.window,
        "horizon": [p.horizon.0, hi],
        "q": p.q,
        "head_ratio": p.head_ratio,
        "receiver_ratio": p.receiver_ratio,
        "proximity": p.proximity,
        "k": p.k,
        "tau_waad": p.tau_waad,
        "tau_delta": p.tau_delta,
    })
}

/// How responses are generated when the input gives none.
#[derive(Args, Clone, Debug)]
pub struct GenOpts {
    /// Sampling temperature (the paper analyses responses sampled at 0.7);
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Nucleus threshold in (0, 1] (1 disables it).
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f64,
    /// Upper bound on generated tokens (prompt + response also stay within
    /// the model's max_position_embeddings).
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Seed of the sampler; prompt i of a file samples from stream i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl GenOpts {
    /// The sampling parameters for `model` (its EOS ids end a response).
    pub fn sampling(&self, model: &Pretrained) -> SamplingParams {
        SamplingParams {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            eos_token_ids: model.eos_token_ids(),
            seed: self.seed,
            ..Default::default()
        }
    }

    /// As JSON (for the output files).
    pub fn to_json(&self) -> Value {
        json!({
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        })
    }
}

/// Arguments of `rhythm analyze`.
#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// A local Hugging Face model directory (config.json, *.safetensors,
    /// tokenizer.json); default: the bundled Countdown model.
    #[arg(long, default_value = "models/countdown-tiny")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// The prompt text.
    #[arg(long, conflicts_with_all = ["input", "countdown"])]
    pub prompt: Option<String>,
    /// Use instance INDEX of the Countdown test split (data seed 0, 512
    /// instances) as the prompt, in the compact style the bundled model
    /// was trained on.
    #[arg(long, value_name = "INDEX", conflicts_with = "input")]
    pub countdown: Option<usize>,
    /// The response to analyse (default: generate one).
    #[arg(long, requires = "prompt")]
    pub response: Option<String>,
    /// A JSONL or parquet file of prompts with optional responses, in TRL's
    /// standard (`prompt`, `completion`) or conversational (`messages`)
    /// format (docs/own-model-and-data.md).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Columns, invalid rows and the chat template.
    #[command(flatten)]
    pub data: DataSettings,
    /// Output directory: `analysis.json` and `report.html` (created if needed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Size of the heatmaps: response rows and sequence columns fall into at
    /// most this many bins.
    #[arg(long, default_value_t = 96)]
    pub bins: usize,
    #[command(flatten)]
    pub gen: GenOpts,
    #[command(flatten)]
    pub opts: AnalysisOpts,
}

/// A prompt and its response as token ids.
#[derive(Clone, Debug)]
pub struct Sequence {
    /// Prompt ids (with the tokenizer's special tokens).
    pub prompt: Vec<u32>,
    /// Response ids.
    pub response: Vec<u32>,
    /// Whether the response was generated here.
    pub generated: bool,
    /// Why generation stopped (`eos`, `stop`, `length`), when generated.
    pub finish: Option<String>,
}

impl Sequence {
    /// Prompt + response.
    pub fn ids(&self) -> Vec<u32> {
        let mut v = self.prompt.clone();
        v.extend_from_slice(&self.response);
        v
    }
}

/// Encodes `text` without special tokens (a response continues the prompt).
fn encode_plain(model: &Pretrained, text: &str) -> Result<Vec<u32>> {
    let tok = model
        .tokenizer
        .as_ref()
        .with_context(|| format!("{}: no tokenizer.json", model.dir.display()))?;
    let enc = tok
        .encode(text, false)
        .map_err(|e| anyhow::anyhow!("tokenizer: {}", e.to_string().replace('\n', " ")))?;
    Ok(enc.get_ids().to_vec())
}

/// How prompts become ids: the data settings and the model's chat
/// template, loaded once, when the first prompt needs it.
pub struct PromptBuilder {
    data: DataSettings,
    template: std::cell::OnceCell<Option<ChatTemplate>>,
}

impl PromptBuilder {
    /// A builder for `data`'s settings.
    pub fn new(data: &DataSettings) -> Self {
        PromptBuilder {
            data: data.clone(),
            template: std::cell::OnceCell::new(),
        }
    }

    /// The prompt's ids (through the chat template when the prompt is a
    /// list of messages, or with `--chat-template on`).
    pub fn encode(&self, model: &Pretrained, rec: &Record) -> Result<Vec<u32>> {
        let at = |e: rhythm_model::ModelError| anyhow::anyhow!("{}: {e}", rec.origin);
        let chat = &self.data.chat;
        let template = match chat.messages(&rec.prompt).map_err(at)? {
            None => None,
            Some(_) => {
                if self.template.get().is_none() {
                    let loaded = chat.load_template(&model.dir).map_err(at)?;
                    let _ = self.template.set(loaded);
                }
                self.template.get().and_then(Option::as_ref)
            }
        };
        chat.encode_with(model, template, &rec.prompt).map_err(at)
    }
}

/// Tokenizes a record's prompt and response, generating the response with
/// `sampling` (stream `stream` of its seed) when the record has none. A
/// generated response loses its final EOS token. Fails on an empty response.
pub fn prepare(
    model: &Pretrained,
    prompts: &PromptBuilder,
    rec: &Record,
    sampling: &SamplingParams,
    stream: u64,
) -> Result<Sequence> {
    let prompt = prompts.encode(model, rec)?;
    if prompt.is_empty() {
        bail!("{}: the prompt has no tokens", rec.origin);
    }
    let seq = match &rec.response {
        Some(r) => Sequence {
            prompt,
            response: encode_plain(model, r)?,
            generated: false,
            finish: None,
        },
        None => {
            let g = model.model.generate_one(&prompt, sampling, stream)?;
            let mut response = g.tokens;
            let finish = format!("{:?}", g.finish).to_lowercase();
            if finish == "eos" {
                response.pop();
            }
            Sequence {
                prompt,
                response,
                generated: true,
                finish: Some(finish),
            }
        }
    };
    if seq.response.is_empty() {
        bail!(
            "{}: the response is empty{}",
            rec.origin,
            if seq.generated {
                " (the model ended at once)"
            } else {
                ""
            }
        );
    }
    let max = model.model.config().max_position_embeddings;
    if seq.prompt.len() + seq.response.len() > max {
        bail!(
            "{}: prompt + response is {} tokens, more than the model's {max} positions",
            rec.origin,
            seq.prompt.len() + seq.response.len()
        );
    }
    Ok(seq)
}

/// The probe's results for one sequence.
pub struct Probed {
    /// SPEC sections 3-7.
    pub rhythm: Rhythm,
    /// Entropy of each response token's predictive distribution.
    pub entropy: Vec<f64>,
    /// Log-probability of each response token.
    pub logprob: Vec<f64>,
    /// Per-head summaries (with binned maps when asked for).
    pub summaries: Vec<HeadSummary>,
    /// `[N, vocab]` logits when asked for.
    pub logits: Option<Tensor>,
}

/// One streamed probe over `seq`: summaries of `layers` (binned `bins x
/// bins` when `bins > 0`), entropy and log-probs, the rhythm, and the
/// logits when `with_logits`.
pub fn probe(
    model: &Pretrained,
    seq: &Sequence,
    layers: &[usize],
    params: &Params,
    bins: usize,
    with_logits: bool,
) -> Result<Probed> {
    let ids = seq.ids();
    let p = seq.prompt.len();
    let probed = model.model.probe_response(
        &ids,
        p,
        layers,
        params,
        ProbeExtras {
            bins,
            logits: with_logits,
        },
    )?;
    Ok(Probed {
        rhythm: probed.rhythm(params, None)?,
        entropy: probed.entropy,
        logprob: probed.logprobs,
        summaries: probed.summaries,
        logits: probed.logits,
    })
}

/// The text of each token of `ids`, such that their concatenation is the
/// decoded text wherever the tokenizer allows (a token is decoded in the
/// context of the four before it, so byte-level pieces and leading spaces
/// come out right).
pub fn token_texts(model: &Pretrained, ids: &[u32]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(ids.len());
    for i in 0..ids.len() {
        let ctx = &ids[i.saturating_sub(4)..i];
        let before = model.decode(ctx)?;
        let with = model.decode(&ids[i.saturating_sub(4)..=i])?;
        match with.strip_prefix(&before) {
            Some(s) => out.push(s.to_string()),
            None => out.push(model.decode(&ids[i..=i])?),
        }
    }
    Ok(out)
}

/// Mean of the binned maps of `heads` (rows, cols, row-major cells).
fn mean_binned(summaries: &[HeadSummary], heads: &[(usize, usize)]) -> Option<Value> {
    let mut acc: Option<(usize, usize, Vec<f64>)> = None;
    let mut count = 0usize;
    for s in summaries {
        if !heads.contains(&(s.layer, s.head)) {
            continue;
        }
        let (r, c, cells) = s.binned()?;
        match acc.as_mut() {
            None => acc = Some((r, c, cells)),
            Some((_, _, a)) => a.iter_mut().zip(&cells).for_each(|(x, y)| *x += y),
        }
        count += 1;
    }
    let (r, c, mut cells) = acc?;
    cells.iter_mut().for_each(|x| *x /= count as f64);
    // Six significant digits are plenty for a heatmap and keep the file small.
    let cells: Vec<f64> = cells.iter().map(|&x| round_sig(x)).collect();
    Some(json!({"rows": r, "cols": c, "cells": cells}))
}

fn round_sig(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let mag = 10f64.powi(5 - x.abs().log10().floor() as i32);
    (x * mag).round() / mag
}

/// The analysis of one response as a JSON object (the elements of
/// `analysis.json`'s `responses`).
pub fn response_json(
    model: &Pretrained,
    rec: &Record,
    seq: &Sequence,
    pr: &Probed,
) -> Result<Value> {
    let r = &pr.rhythm;
    let p = r.response_start;
    let ids = seq.ids();
    let texts = token_texts(model, &ids)?;
    let chunks = chunk_ids(&r.waad, r.sel.tau_delta);
    let member = |v: &[usize], t: usize| v.binary_search(&t).is_ok();
    let tokens: Vec<Value> = (0..r.n)
        .map(|o| {
            let t = p + o;
            json!({
                "pos": t,
                "id": ids[t],
                "text": texts[t],
                "waad": r.waad[o],
                "fai": r.fai[o],
                "receiver_fai": r.receiver_fai[o],
                "entropy": pr.entropy[o],
                "logprob": pr.logprob[o],
                "delta": r.sel.delta[o],
                "preplan": member(&r.sel.preplan, t),
                "anchor": member(&r.sel.anchors, t),
                "dominated": member(&r.sel.dominated, t),
                "intro": member(&r.sel.intro, t),
                "chunk": chunks[o],
            })
        })
        .collect();
    let group_of = |id: (usize, usize)| {
        if r.groups.local.contains(&id) {
            "local"
        } else if r.groups.global.contains(&id) {
            "global"
        } else {
            "other"
        }
    };
    let heads: Vec<Value> = r
        .spans
        .iter()
        .zip(&r.kurtosis)
        .map(|(h, (_, k))| {
            let id = (h.layer, h.head);
            json!({
                "layer": h.layer,
                "head": h.head,
                "span": h.span,
                "group": group_of(id),
                "receiver": r.receivers.contains(&id),
                "kurtosis": k,
            })
        })
        .collect();
    let ids_json =
        |v: &[(usize, usize)]| -> Vec<Value> { v.iter().map(|(l, h)| json!([l, h])).collect() };
    let response_text = model.decode(&seq.response)?;
    Ok(json!({
        "origin": rec.origin,
        "prompt": rec.prompt,
        "response": response_text,
        "generated": seq.generated,
        "finish": seq.finish,
        "response_start": p,
        "seq_len": ids.len(),
        "n": r.n,
        "ids": ids,
        "prompt_tokens": texts[..p],
        "tau_waad": r.sel.tau_waad,
        "tau_delta": r.sel.tau_delta,
        "chunks": chunks.last().map_or(0, |c| c + 1),
        "counts": {
            "preplan": r.sel.preplan.len(),
            "anchors": r.sel.anchors.len(),
            "dominated": r.sel.dominated.len(),
            "intro": r.sel.intro.len(),
        },
        "groups": {
            "local": ids_json(&r.groups.local),
            "global": ids_json(&r.groups.global),
            "receivers": ids_json(&r.receivers),
        },
        "tokens": tokens,
        "heads": heads,
        "maps": {
            "local": mean_binned(&pr.summaries, &r.groups.local),
            "global": mean_binned(&pr.summaries, &r.groups.global),
        },
    }))
}

/// A few readable lines about one analysed response.
pub fn summary_lines(resp: &Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let toks = resp["tokens"].as_array().cloned().unwrap_or_default();
    let series =
        |k: &str| -> Vec<f64> { toks.iter().map(|t| t[k].as_f64().unwrap_or(0.0)).collect() };
    let _ = writeln!(
        s,
        "{}: {} prompt + {} response tokens{}, {} chunks",
        resp["origin"].as_str().unwrap_or("?"),
        resp["response_start"],
        resp["n"],
        match resp["finish"].as_str() {
            Some(f) => format!(" (generated, stopped by {f})"),
            None => String::new(),
        },
        resp["chunks"]
    );
    let resp_text: String = resp["response"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(160)
        .collect();
    let _ = writeln!(
        s,
        "  response  {:?}{}",
        resp_text,
        if resp["response"].as_str().map_or(0, |r| r.chars().count()) > 160 {
            "..."
        } else {
            ""
        }
    );
    let _ = writeln!(s, "  WAAD      {}", sparkline(&series("waad"), 64));
    let _ = writeln!(s, "  FAI       {}", sparkline(&series("fai"), 64));
    let _ = writeln!(s, "  entropy   {}", sparkline(&series("entropy"), 64));
    let c = &resp["counts"];
    let _ = writeln!(
        s,
        "  preplan {}, anchors {}, dominated {}, intro {}; tau_waad {:.4}, tau_delta {:.4}",
        c["preplan"],
        c["anchors"],
        c["dominated"],
        c["intro"],
        resp["tau_waad"].as_f64().unwrap_or(f64::NAN),
        resp["tau_delta"].as_f64().unwrap_or(f64::NAN)
    );
    let mut by_fai: Vec<&Value> = toks.iter().collect();
    by_fai.sort_by(|a, b| {
        b["fai"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&a["fai"].as_f64().unwrap_or(0.0))
            .then(a["pos"].as_u64().cmp(&b["pos"].as_u64()))
    });
    let top: Vec<String> = by_fai
        .iter()
        .take(5)
        .map(|t| {
            format!(
                "{:?}@{} ({:.3})",
                t["text"].as_str().unwrap_or(""),
                t["pos"],
                t["fai"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    let _ = write!(s, "  top FAI   {}", top.join("  "));
    s
}

/// The compact prompt of instance `index` of the default Countdown test
/// split (data seed 0).
fn countdown_prompt(index: usize) -> Result<String> {
    use rhythm_rl::tasks::countdown::{self, PromptStyle};
    let split = countdown::default_splits(0);
    let Some(inst) = split.test.get(index) else {
        bail!(
            "--countdown {index}: expected an index below {} (the test split's size)",
            split.test.len()
        );
    };
    Ok(inst.prompt(PromptStyle::Compact))
}

/// Runs `rhythm analyze`.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let params = args.opts.params()?;
    let countdown_prompt = args.countdown.map(countdown_prompt).transpose()?;
    let mut records = records_from(
        args.input.as_deref(),
        args.prompt.as_deref().or(countdown_prompt.as_deref()),
        args.response.as_deref(),
        &args.data,
    )?;
    if let (Some(i), Some(rec)) = (args.countdown, records.first_mut()) {
        rec.origin = format!("--countdown {i}");
    }
    let model = args.device.device.load(&args.model)?;
    if model.tokenizer.is_none() {
        bail!(
            "{}: no tokenizer.json (analyze works on text)",
            args.model.display()
        );
    }
    let layers = args.opts.layers(&model)?;
    let sampling = args.gen.sampling(&model);
    let prompts = PromptBuilder::new(&args.data);
    let bar = progress(records.len() as u64, "analyze");
    let mut responses = Vec::with_capacity(records.len());
    for (i, rec) in records.iter().enumerate() {
        let seq = prepare(&model, &prompts, rec, &sampling, i as u64)?;
        let pr = probe(&model, &seq, &layers, &params, args.bins, false)?;
        responses.push(response_json(&model, rec, &seq, &pr)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let doc = json!({
        "rhythm_version": env!("CARGO_PKG_VERSION"),
        "model": args.model.display().to_string(),
        "model_type": model.model.config().model_type,
        "num_layers": model.model.num_layers(),
        "num_heads": model.model.num_heads(),
        "layers": layers,
        "params": params_json(&params),
        "generation": args.gen.to_json(),
        "responses": responses,
    });
    println!(
        "{}: {} layers probed ({:?}) x {} heads, FAI horizon {}",
        args.model.display(),
        layers.len(),
        layers,
        model.model.num_heads(),
        Horizon::from_pair(params.horizon)
    );
    for r in doc["responses"].as_array().expect("array") {
        println!("{}", summary_lines(r));
    }
    if let Some(out) = &args.out {
        write_outputs(out, &doc)?;
        println!(
            "wrote {} and {}",
            out.join("analysis.json").display(),
            out.join("report.html").display()
        );
    }
    Ok(())
}

/// Writes `OUT/analysis.json` and `OUT/report.html`, each atomically.
pub fn write_outputs(out: &Path, doc: &Value) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = serde_json::to_string(doc)?;
    write_atomic(&out.join("analysis.json"), json.as_bytes())?;
    let html = crate::report::render(doc);
    write_atomic(&out.join("report.html"), html.as_bytes())
}
