//! Rough timing of the inference paths on a random model with Qwen3-0.6B's
//! shape (or a checkpoint directory):
//!
//! ```text
//! cargo run --release -p rhythm-model --example speed -- N [MODE] [DIR]
//! ```
//! MODE: `forward` (all logits), `stream` (sampled layers), `stream-all`,
//! `generate` / `generate-batch` (4 x 32 tokens after an N-token prompt),
//! `matmul` (an `[N, 1024] x [1024, 3072]` f32 product, the shape of an MLP
//! projection: the best of 5, in GFLOP/s).

use std::time::Instant;

use candle_core::Device;
use rhythm_core::SummaryConfig;
use rhythm_model::{Config, Model, Pretrained};

const QWEN3_0P6B: &str = r#"{"model_type":"qwen3","vocab_size":151936,"hidden_size":1024,
"intermediate_size":3072,"num_hidden_layers":28,"num_attention_heads":16,"num_key_value_heads":8,
"head_dim":128,"max_position_embeddings":40960,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
"tie_word_embeddings":true,"hidden_act":"silu"}"#;

fn main() -> rhythm_model::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let mode = args.get(2).map(String::as_str).unwrap_or("stream");
    if mode == "matmul" {
        let dev = Device::Cpu;
        let x = candle_core::Tensor::randn(0f32, 1.0, (n, 1024), &dev)?;
        let w = candle_core::Tensor::randn(0f32, 1.0, (3072, 1024), &dev)?;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            let y = x.matmul(&w.t()?)?;
            best = best.min(t.elapsed().as_secs_f64());
            drop(y);
        }
        let gflops = 2.0 * (n * 1024 * 3072) as f64 / best / 1e9;
        eprintln!("matmul N={n}: {best:.4}s, {gflops:.1} GFLOP/s");
        return Ok(());
    }
    let t0 = Instant::now();
    let model = match args.get(3) {
        Some(dir) => Pretrained::load(dir)?.model,
        None => {
            let cfg = Config::from_json_str(QWEN3_0P6B, std::path::Path::new("<qwen3-0.6b>"))?;
            Model::random(&cfg, 0, 1.0, &Device::Cpu)?.0
        }
    };
    eprintln!("load: {:.1}s", t0.elapsed().as_secs_f64());
    let ids: Vec<u32> = (0..n).map(|i| ((i * 7919) % 150000) as u32 + 1).collect();
    let t0 = Instant::now();
    match mode {
        "generate" | "generate-batch" => {
            let params = rhythm_model::SamplingParams {
                max_new_tokens: 32,
                temperature: 1.0,
                seed: 1,
                ..Default::default()
            };
            let prompts = vec![ids.clone(); 4];
            let out = if mode == "generate" {
                model.generate(&prompts, &params)?
            } else {
                model.generate_batch(&prompts, &params)?
            };
            let toks: usize = out.iter().map(|g| g.tokens.len()).sum();
            eprintln!(
                "{toks} tokens, {:.2} tokens/s",
                toks as f64 / t0.elapsed().as_secs_f64()
            );
        }
        "forward" => {
            let logits = model.forward_inference(&ids)?;
            eprintln!("logits {:?}", logits.dims());
        }
        _ => {
            let layers: Vec<usize> = if mode == "stream-all" {
                (0..model.num_layers()).collect()
            } else {
                rhythm_core::sample_layers(model.num_layers())
            };
            let cfg = SummaryConfig {
                response_start: n / 4,
                seq_len: n,
                window: 10,
                horizon: (10, 50),
                proximity: 4,
            };
            let out = model.probe_streamed(&ids, &cfg, &layers)?;
            eprintln!(
                "summaries {} stats {}",
                out.summaries.len(),
                out.stats.logprobs.len()
            );
        }
    }
    eprintln!("{mode} N={n}: {:.2}s", t0.elapsed().as_secs_f64());
    Ok(())
}
