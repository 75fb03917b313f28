//! `rhythm score`: the rhythm and gamma of attention maps someone dumped.
//!
//! Input: a safetensors file with `attn.{layer}` tensors of shape
//! `[heads, N, N]` (f32, f16 or bf16), optionally `entropy` `[N]` or
//! `logits` `[N, vocab]` (entropy of token `t` comes from the logits at
//! `t - 1`), and the response start from `--response-start` or the metadata
//! key `response_start`. Other tensors are ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rhythm_core::{entropy, HeadMap, HeadSummary, Layers, Rhythm};
use safetensors::{Dtype, SafeTensors};

use crate::common::{gamma_for, rhythm_json, summary_text, RhythmOpts};

/// Arguments of `rhythm score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// A safetensors file with `attn.{layer}` maps `[heads, N, N]`.
    pub maps: PathBuf,
    /// First response position P (default: the file's `response_start` metadata).
    #[arg(long)]
    pub response_start: Option<usize>,
    /// Print the JSON object instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub opts: RhythmOpts,
}

/// The maps and side information read from a file.
pub struct MapsFile {
    /// `N`.
    pub seq_len: usize,
    /// Heads per layer.
    pub heads: usize,
    /// Layer -> `[heads * N * N]` f32.
    pub layers: BTreeMap<usize, Vec<f32>>,
    /// Entropy at every position (`[N]`), if the file has it.
    pub entropy: Option<Vec<f64>>,
    /// `response_start` from the metadata, if present.
    pub response_start: Option<usize>,
    /// The maps' storage dtype (`F32`, `F16` or `BF16`; the coarsest when
    /// layers differ), which sets the row-sum tolerance.
    pub dtype: String,
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => bail!(
            "{}: tensor '{name}' has dtype {other:?}, expected F32, F16 or BF16",
            path.display()
        ),
    })
}

/// Reads and checks a maps file.
pub fn read_maps(path: &Path) -> Result<MapsFile> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file ({e})", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: bad safetensors header ({e})", path.display()))?;
    let response_start = match meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("response_start"))
    {
        None => None,
        Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
            anyhow::anyhow!(
                "{}: metadata response_start '{v}' is not a non-negative integer",
                path.display()
            )
        })?),
    };
    let mut layers = BTreeMap::new();
    let mut shape: Option<(String, Vec<usize>)> = None;
    let mut entropy_t = None;
    let mut logits = None;
    let mut map_dtype: Option<&str> = None;
    for (name, view) in st.tensors() {
        if let Some(l) = name.strip_prefix("attn.") {
            let layer: usize = l.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}: tensor '{name}': expected attn.<layer number>",
                    path.display()
                )
            })?;
            let sh = view.shape().to_vec();
            if sh.len() != 3 || sh[1] != sh[2] || sh[1] == 0 || sh[0] == 0 {
                bail!(
                    "{}: tensor '{name}' has shape {sh:?}, expected [heads, N, N]",
                    path.display()
                );
            }
            if let Some((first, fsh)) = &shape {
                if *fsh != sh {
                    bail!("{}: tensor '{name}' has shape {sh:?} but '{first}' has {fsh:?}; every layer must have the same shape", path.display());
                }
            } else {
                shape = Some((name.clone(), sh));
            }
            let dt = format!("{:?}", view.dtype());
            if map_dtype.is_none_or(|d: &str| {
                rhythm_core::maps::row_sum_tolerance(&dt, 1)
                    > rhythm_core::maps::row_sum_tolerance(d, 1)
            }) {
                map_dtype = Some(if dt == "BF16" {
                    "BF16"
                } else if dt == "F16" {
                    "F16"
                } else {
                    "F32"
                });
            }
            layers.insert(layer, to_f32(path, &name, view.dtype(), view.data())?);
        } else if name == "entropy" {
            entropy_t = Some((
                view.shape().to_vec(),
                to_f32(path, &name, view.dtype(), view.data())?,
            ));
        } else if name == "logits" {
            logits = Some((
                view.shape().to_vec(),
                to_f32(path, &name, view.dtype(), view.data())?,
            ));
        }
    }
    let Some((_, sh)) = shape else {
        bail!("{}: no attention maps found (expected tensors named attn.<layer> of shape [heads, N, N])", path.display());
    };
    let (heads, n) = (sh[0], sh[1]);
    let entropy = match (entropy_t, logits) {
        (Some((esh, e)), _) => {
            if esh != [n] {
                bail!(
                    "{}: tensor 'entropy' has shape {esh:?}, expected [{n}]",
                    path.display()
                );
            }
            if let Some(bad) = e.iter().find(|x| !x.is_finite()) {
                bail!(
                    "{}: tensor 'entropy' holds {bad}, expected finite values",
                    path.display()
                );
            }
            Some(e.iter().map(|&x| x as f64).collect())
        }
        (None, Some((lsh, l))) => {
            if lsh.len() != 2 || lsh[0] != n || lsh[1] == 0 {
                bail!(
                    "{}: tensor 'logits' has shape {lsh:?}, expected [{n}, vocab]",
                    path.display()
                );
            }
            let v = lsh[1];
            if l.iter().any(|x| !x.is_finite()) {
                bail!(
                    "{}: tensor 'logits' holds a NaN or infinity",
                    path.display()
                );
            }
            // H[t] comes from the logits at t - 1; position 0 has none.
            let mut h = vec![0.0; n];
            for t in 1..n {
                h[t] = entropy(&l[(t - 1) * v..t * v]);
            }
            Some(h)
        }
        (None, None) => None,
    };
    Ok(MapsFile {
        seq_len: n,
        heads,
        layers,
        entropy,
        response_start,
        dtype: map_dtype.unwrap_or("F32").to_string(),
    })
}

/// Validates the chosen layers' maps and streams them into summaries.
pub fn summarize_maps(
    path: &Path,
    file: &MapsFile,
    layers: &[usize],
    cfg: &rhythm_core::SummaryConfig,
) -> Result<Vec<HeadSummary>> {
    let n = file.seq_len;
    let mut out = Vec::new();
    for &l in layers {
        let data = &file.layers[&l];
        for h in 0..file.heads {
            let map = HeadMap {
                layer: l,
                head: h,
                seq_len: n,
                data: &data[h * n * n..(h + 1) * n * n],
            };
            map.validate_with_tol(rhythm_core::maps::row_sum_tolerance(&file.dtype, n))
                .with_context(|| path.display().to_string())?;
            out.push(map.summarize(cfg));
        }
    }
    Ok(out)
}

/// Runs `rhythm score`.
pub fn run(args: &ScoreArgs) -> Result<()> {
    let strategy = args.opts.strategy();
    let params = args.opts.params()?;
    let file = read_maps(&args.maps)?;
    let p = match (args.response_start, file.response_start) {
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => bail!(
            "{}: no response start: pass --response-start P or store metadata key response_start",
            args.maps.display()
        ),
    };
    let n = file.seq_len;
    if p >= n {
        bail!("--response-start {p} is outside the sequence of {n} tokens (expected 0 <= P < {n}, leaving a non-empty response)");
    }
    let available: Vec<usize> = file.layers.keys().copied().collect();
    let num_layers = available.last().map_or(0, |l| l + 1);
    let layers = args
        .opts
        .metrics
        .layers_or(Layers::All)
        .resolve_in(&available, num_layers)?;
    let cfg = params.summary_config(p, n);
    let summaries = summarize_maps(&args.maps, &file, &layers, &cfg)?;
    let r = Rhythm::from_summaries(&summaries, &params, None)?;
    let ent: Option<Vec<f64>> = file.entropy.as_ref().map(|e| e[p..].to_vec());
    let g = gamma_for(&r, strategy, ent.as_deref(), &params)?;
    if args.json {
        println!("{}", rhythm_json(&r, &g));
    } else {
        println!(
            "{}: {} layers x {} heads",
            args.maps.display(),
            layers.len(),
            file.heads
        );
        println!("{}", summary_text(&r, strategy, &g));
    }
    Ok(())
}
