//! Evaluation: greedy pass@1 and sampled avg@k on a task set, with every
//! instance's task fields, responses and rewards kept so that anyone can
//! re-score them.
//!
//! An answer counts as right when its reward is at least 1 (a Countdown
//! format score below 1 does not count). pass@1 is the share of instances
//! whose greedy response is right; avg@k the mean, over instances and their
//! `k` samples at `temperature`, of the share that is right. Sampling row
//! `j` of instance `i` uses stream `i * k + j` of `seed`.

use rhythm_model::{ChatSettings, Pretrained, SamplingParams};
use rhythm_train::eval::{greedy_in_batches, strip_eos};
use rhythm_train::mix;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::tasks::{PromptStyle, Task};

/// Settings of an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    /// Samples per instance for avg@k (0: greedy only).
    pub k: usize,
    /// Sampling temperature of avg@k.
    pub temperature: f64,
    /// Maximum response tokens.
    pub max_new_tokens: usize,
    /// Seed of the samples.
    pub seed: u64,
    /// Sequences decoded together.
    pub batch_size: usize,
    /// Countdown reward of a well-formed wrong answer.
    pub format_score: f32,
    /// Countdown prompt style.
    pub style: PromptStyle,
    /// Whether prompts go through the model's chat template.
    pub chat: ChatSettings,
}

/// One response and its reward.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The decoded response (end-of-sequence token removed).
    pub response: String,
    /// Its reward.
    pub reward: f32,
}

/// One evaluated instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// Position in the evaluated set.
    pub index: usize,
    /// The task's fields (`nums` and `target`; or `prompt` and `answer`/`key`).
    pub task: Value,
    /// The prompt given to the model.
    pub prompt: String,
    /// The greedy response.
    pub greedy: Sample,
    /// The `k` sampled responses.
    pub samples: Vec<Sample>,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Instances evaluated.
    pub n: usize,
    /// Greedy pass@1.
    pub pass_at_1: f64,
    /// Samples per instance.
    pub k: usize,
    /// avg@k (absent when `k = 0`).
    pub avg_at_k: Option<f64>,
    /// Sampling temperature of avg@k.
    pub temperature: f64,
    /// Every instance.
    pub instances: Vec<InstanceResult>,
}

/// The fields of a task as JSON.
pub fn task_json(t: &Task) -> Value {
    match t {
        Task::Countdown(c) => json!({"kind": "countdown", "nums": c.nums, "target": c.target}),
        Task::Math { prompt, answer } => {
            json!({"kind": "math", "prompt": prompt, "answer": answer})
        }
        Task::Choice { prompt, key } => json!({"kind": "choice", "prompt": prompt, "key": key}),
    }
}

fn decode(p: &Pretrained, tokens: &[u32], eos: &[u32]) -> rhythm_model::Result<String> {
    p.decode(strip_eos(tokens, eos))
}

/// Evaluates `model` on `tasks` (see the module docs).
pub fn evaluate(
    model: &Pretrained,
    tasks: &[Task],
    cfg: &EvalConfig,
) -> rhythm_model::Result<EvalReport> {
    let eos = model.eos_token_ids();
    let prompts: Vec<String> = tasks.iter().map(|t| t.prompt(cfg.style)).collect();
    let inputs: Vec<_> = tasks.iter().map(|t| t.input(cfg.style)).collect();
    let ids = cfg.chat.encode_all(model, &inputs)?;
    let bs = cfg.batch_size.max(1);
    // 1. Greedy.
    let greedy = greedy_in_batches(&model.model, &ids, bs, &eos, |_| cfg.max_new_tokens)?;
    // 2. Samples: instance i, sample j is row i*k + j of one long list,
    //    decoded in chunks with a seed per chunk derived from the row.
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); tasks.len()];
    if cfg.k > 0 {
        let rows: Vec<(usize, &Vec<u32>)> = ids
            .iter()
            .enumerate()
            .flat_map(|(i, p)| std::iter::repeat_n((i, p), cfg.k))
            .collect();
        for (c, chunk) in rows.chunks(bs).enumerate() {
            let sp = SamplingParams {
                eos_token_ids: eos.clone(),
                max_new_tokens: cfg.max_new_tokens,
                temperature: cfg.temperature,
                seed: mix(cfg.seed, c as u64),
                ..Default::default()
            };
            let ps: Vec<Vec<u32>> = chunk.iter().map(|(_, p)| (*p).clone()).collect();
            for ((i, _), g) in chunk.iter().zip(model.model.generate_batch(&ps, &sp)?) {
                let response = decode(model, &g.tokens, &eos)?;
                let reward = tasks[*i].reward(&response, cfg.format_score);
                samples[*i].push(Sample { response, reward });
            }
        }
    }
    // 3. Score.
    let mut instances = Vec::with_capacity(tasks.len());
    for (i, (t, g)) in tasks.iter().zip(greedy).enumerate() {
        let response = decode(model, &g.tokens, &eos)?;
        let reward = t.reward(&response, cfg.format_score);
        instances.push(InstanceResult {
            index: i,
            task: task_json(t),
            prompt: prompts[i].clone(),
            greedy: Sample { response, reward },
            samples: std::mem::take(&mut samples[i]),
        });
    }
    let n = instances.len();
    let right = |r: f32| if r >= 1.0 { 1.0 } else { 0.0 };
    let pass_at_1 = if n == 0 {
        0.0
    } else {
        instances
            .iter()
            .map(|x| right(x.greedy.reward))
            .sum::<f64>()
            / n as f64
    };
    let avg_at_k = (cfg.k > 0 && n > 0).then(|| {
        instances
            .iter()
            .flat_map(|x| x.samples.iter().map(|s| right(s.reward)))
            .sum::<f64>()
            / (n * cfg.k) as f64
    });
    Ok(EvalReport {
        n,
        pass_at_1,
        k: cfg.k,
        avg_at_k,
        temperature: cfg.temperature,
        instances,
    })
}
