//! `rhythm probe`: run a model over prompt + response and dump (or stream)
//! its attention.
//!
//! Input is a local Hugging Face model directory and either `--text` (needs
//! `tokenizer.json`) or `--ids` (comma-separated, or `@FILE` with ids
//! separated by commas or whitespace). By default the probe writes `--out`,
//! a safetensors file in the format `rhythm score` reads: `logits`
//! `[N, vocab]` f32, one `attn.{layer}` `[heads, N, N]` f32 per probed layer,
//! and metadata `response_start` (when given), `seq_len` and `model_type`.
//! With `--stream`, no map is held: attention rows go straight into
//! per-head summaries and the rhythm is printed like `rhythm score` does
//! (`--json` for the JSON object).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use rhythm_core::Layers;
use rhythm_model::{DeviceSettings, Pretrained, ProbeExtras, Tensor};

use crate::common::{gamma_for, rhythm_json, summary_text, RhythmOpts};

/// Arguments of `rhythm probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// A local Hugging Face model directory (config.json, *.safetensors).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceSettings,
    /// Input text (prompt + response), tokenized with the model's tokenizer.json.
    #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
    pub text: Option<String>,
    /// Input token ids: `1,2,3` or `@FILE` (ids separated by commas or whitespace).
    #[arg(long)]
    pub ids: Option<String>,
    /// First response position P (stored as metadata `response_start`).
    #[arg(long)]
    pub response_start: Option<usize>,
    /// Output safetensors file (`logits`, `attn.{layer}`).
    #[arg(long, required_unless_present = "stream")]
    pub out: Option<PathBuf>,
    /// Stream attention into summaries and print the rhythm (needs --response-start).
    #[arg(long)]
    pub stream: bool,
    /// With --stream: print the JSON object of `rhythm score --json`.
    #[arg(long, requires = "stream")]
    pub json: bool,
    #[command(flatten)]
    pub opts: RhythmOpts,
}

/// Parses `--ids`: a comma list, or `@FILE` with ids separated by commas or
/// whitespace.
pub fn parse_ids(spec: &str) -> Result<Vec<u32>> {
    let (text, origin) = match spec.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("--ids: cannot read {path}"))?,
            path.to_string(),
        ),
        None => (spec.to_string(), "--ids".to_string()),
    };
    let ids = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().with_context(|| {
                format!("{origin}: '{s}' is not a token id (expected a non-negative integer)")
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    if ids.is_empty() {
        bail!("{origin}: no token ids");
    }
    Ok(ids)
}

/// Loads the model and the input ids named by `args`.
pub fn load_inputs(args: &ProbeArgs) -> Result<(Pretrained, Vec<u32>)> {
    let model = args.device.device.load(&args.model)?;
    let ids = match (&args.text, &args.ids) {
        (Some(text), None) => model.encode(text)?,
        (None, Some(spec)) => parse_ids(spec)?,
        _ => bail!("pass exactly one of --text and --ids"),
    };
    if ids.is_empty() {
        bail!("the input has no tokens");
    }
    if let Some(p) = args.response_start {
        if p >= ids.len() {
            bail!(
                "--response-start {p} is outside the sequence of {} tokens (expected P < {})",
                ids.len(),
                ids.len()
            );
        }
    }
    Ok((model, ids))
}

/// The probed layers of `args` for `model`.
pub fn probe_layers(args: &ProbeArgs, model: &Pretrained) -> Result<Vec<usize>> {
    Ok(args
        .opts
        .metrics
        .layers_or(Layers::Sampled)
        .resolve(model.model.num_layers())?)
}

/// Runs `rhythm probe`.
pub fn run(args: &ProbeArgs) -> Result<()> {
    let (model, ids) = load_inputs(args)?;
    let layers = probe_layers(args, &model)?;
    if args.stream {
        return run_stream(args, &model, &ids, &layers);
    }
    let out = args
        .out
        .as_deref()
        .context("--out FILE is required without --stream")?;
    write_maps(out, &model, &ids, args.response_start, &layers)
}

/// Captured mode: writes `logits` and `attn.{layer}` to `out` (atomically).
pub fn write_maps(
    out: &Path,
    model: &Pretrained,
    ids: &[u32],
    response_start: Option<usize>,
    layers: &[usize],
) -> Result<()> {
    let m = &model.model;
    let probe = m.probe_captured(ids, response_start.unwrap_or(ids.len()), layers, true)?;
    let mut tensors: Vec<(String, Tensor)> = Vec::with_capacity(layers.len() + 1);
    tensors.push((
        "logits".into(),
        probe.logits.context("probe returned no logits")?,
    ));
    for (l, a) in probe.layers.iter().zip(probe.attn) {
        tensors.push((format!("attn.{l}"), a));
    }
    let mut meta = BTreeMap::new();
    if let Some(p) = response_start {
        meta.insert("response_start".to_string(), p.to_string());
    }
    meta.insert("seq_len".to_string(), ids.len().to_string());
    meta.insert("model_type".to_string(), m.config().model_type.clone());
    meta.insert(
        "layers".to_string(),
        layers
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    rhythm_model::write_safetensors_atomic(out, &tensors, &meta)?;
    eprintln!(
        "{}: {} tokens, {} layers x {} heads",
        out.display(),
        ids.len(),
        layers.len(),
        m.num_heads()
    );
    Ok(())
}

/// Streamed mode: summaries straight from the forward pass, then the rhythm.
fn run_stream(args: &ProbeArgs, model: &Pretrained, ids: &[u32], layers: &[usize]) -> Result<()> {
    let strategy = args.opts.strategy();
    let params = args.opts.params()?;
    let p = match args.response_start {
        Some(p) if p >= 1 => p,
        Some(_) => {
            bail!("--response-start must be at least 1 with --stream (token 0 has no prediction)")
        }
        None => bail!("--stream needs --response-start P"),
    };
    let probed = model
        .model
        .probe_response(ids, p, layers, &params, ProbeExtras::default())?;
    let r = probed.rhythm(&params, None)?;
    let g = gamma_for(&r, strategy, Some(&probed.entropy), &params)?;
    if args.json {
        println!("{}", rhythm_json(&r, &g));
    } else {
        println!(
            "{}: {} tokens, {} layers x {} heads (streamed)",
            args.model.display(),
            ids.len(),
            layers.len(),
            model.model.num_heads()
        );
        println!("{}", summary_text(&r, strategy, &g));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_list_and_file() {
        assert_eq!(parse_ids("1,2, 3").unwrap(), vec![1, 2, 3]);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ids.txt");
        std::fs::write(&f, "4 5,6\n7\t8\n").unwrap();
        assert_eq!(
            parse_ids(&format!("@{}", f.display())).unwrap(),
            vec![4, 5, 6, 7, 8]
        );
        let e = parse_ids("1,x").unwrap_err().to_string();
        assert!(e.contains("'x'"), "{e}");
        assert!(parse_ids(" , ").is_err());
        assert!(parse_ids("@/no/such/file").is_err());
    }

    #[test]
    fn captured_file_is_what_score_reads() {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-qwen3");
        let model = Pretrained::load(&fixture).unwrap();
        let ids = vec![3, 8, 9, 17, 10, 11, 23, 11, 13, 4];
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("p.safetensors");
        write_maps(&out, &model, &ids, Some(4), &[0, 2]).unwrap();
        let file = crate::score::read_maps(&out).unwrap();
        assert_eq!(file.seq_len, ids.len());
        assert_eq!(file.response_start, Some(4));
        assert_eq!(file.layers.keys().copied().collect::<Vec<_>>(), vec![0, 2]);
        assert!(file.entropy.is_some());
    }
}
