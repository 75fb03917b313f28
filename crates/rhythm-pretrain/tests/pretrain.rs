//! `rhythm pretrain`: traces, tokenizer, SFT loss and exact resume.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhythm_model::DType;
use rhythm_pretrain::{self as pretrain, tokenizer, trace, Event, Paths, PretrainConfig};
use rhythm_rl::tasks::countdown;
use rhythm_rl::verify::countdown::Outcome;
use rhythm_train::OptimSettings;

fn traces(seed: u64, n: usize, dead: usize) -> Vec<trace::Trace> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    countdown::generate(seed, n)
        .iter()
        .filter_map(|i| trace::trace(i, dead, &mut rng))
        .collect()
}

/// The values a think line's steps produce, checked step by step against
/// the pool: every step combines two numbers still in the pool, correctly,
/// with a positive integer result of at most `MAX_VALUE`.
fn check_line(nums: &[u32], line: &str) -> u64 {
    let mut pool: Vec<u64> = nums.iter().map(|&n| u64::from(n)).collect();
    for step in line.split(' ') {
        let (lhs, value) = step.split_once('=').expect("a = b op c");
        let value: u64 = value.parse().unwrap();
        let op_at = lhs.find(['+', '-', '*', '/']).unwrap();
        let a: u64 = lhs[..op_at].parse().unwrap();
        let b: u64 = lhs[op_at + 1..].parse().unwrap();
        let want = match &lhs[op_at..op_at + 1] {
            "+" => a + b,
            "-" => a - b,
            "*" => a * b,
            _ => {
                assert_eq!(a % b, 0, "{line}");
                a / b
            }
        };
        assert_eq!(want, value, "{line}");
        assert!(value > 0 && value <= trace::MAX_VALUE, "{line}");
        for x in [a, b] {
            let k = pool.iter().position(|&p| p == x).expect("operand in pool");
            pool.remove(k);
        }
        pool.push(value);
    }
    assert_eq!(pool.len(), 1, "{line}: every number used");
    pool[0]
}

#[test]
fn traces_are_deterministic_and_correct() {
    assert_eq!(traces(7, 100, 4), traces(7, 100, 4));
    assert_ne!(traces(7, 100, 4), traces(8, 100, 4));
    let instances = countdown::generate(3, 300);
    for dead in [0, 2, 6] {
        let mut rng = ChaCha8Rng::seed_from_u64(dead as u64);
        let mut made = 0;
        for inst in &instances {
            let Some(t) = trace::trace(inst, dead, &mut rng) else {
                continue;
            };
            made += 1;
            assert_eq!(inst.verify(&t.response), Outcome::Correct, "{t:?}");
            assert!(t.dead_ends <= dead);
            assert_eq!(t.response.matches(" no\n").count(), t.dead_ends, "{t:?}");
            assert!(t.response.starts_with("<think>\n"));
            assert!(t.response.ends_with("</answer><|endoftext|>"));
            assert_eq!(t.prompt, inst.prompt(countdown::PromptStyle::Compact));
            // Every line is a valid path; failed ones miss the target, the
            // last one reaches it; no path is tried twice.
            let think = &t.response["<think>\n".len()..t.response.find("\n</think>").unwrap()];
            let lines: Vec<&str> = think.lines().collect();
            assert_eq!(lines.len(), t.dead_ends + 1);
            for (k, l) in lines.iter().enumerate() {
                let path = l.strip_suffix(" no").unwrap_or(l);
                assert_eq!(path.len() < l.len(), k < t.dead_ends, "{t:?}");
                let v = check_line(&inst.nums, path);
                assert_eq!(v == u64::from(inst.target), k == t.dead_ends, "{t:?}");
                assert!(!lines[..k].contains(l), "{t:?}");
            }
        }
        // Random orders that succeed within the budget exist for most
        // instances (all 3-number ones have few paths).
        let floor = [80, 170, 215][[0, 2, 6].iter().position(|&d| d == dead).unwrap()];
        assert!(
            made >= floor,
            "{made} of 300 traces with at most {dead} dead ends"
        );
    }
    // The search backtracks depth first: a failed line and the next one
    // share their first step whenever the last step had untried options.
    let t = traces(5, 400, 6);
    let with_dead = t.iter().filter(|t| t.dead_ends >= 2).count();
    assert!(with_dead >= 100, "{with_dead} traces with 2+ dead ends");
    let (mut shared, mut pairs) = (0, 0);
    for t in &t {
        let lines: Vec<&str> = t.response.lines().filter(|l| l.contains('=')).collect();
        for w in lines.windows(2) {
            pairs += 1;
            shared += usize::from(w[0].split(' ').next() == w[1].split(' ').next());
        }
    }
    assert!(
        shared * 2 > pairs,
        "{shared} of {pairs} consecutive lines share a first step"
    );
}

#[test]
fn tokenizer_round_trips_every_trace() {
    let tok = tokenizer::build();
    let vocab = tokenizer::vocabulary();
    assert_eq!(tok.get_vocab_size(true), vocab.len());
    let unk = tok.token_to_id(tokenizer::UNK).unwrap();
    assert_eq!(tok.token_to_id(trace::EOS), Some(0));
    for t in traces(11, 300, 3) {
        let text = format!("{}{}", t.prompt, t.response);
        let ids = pretrain::encode(&tok, &text).unwrap();
        assert!(!ids.contains(&unk), "{text}");
        assert_eq!(*ids.last().unwrap(), 0);
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        // Tags are single tokens.
        for tag in ["<think>", "</think>", "<answer>", "</answer>"] {
            assert!(ids.contains(&tok.token_to_id(tag).unwrap()));
        }
    }
    // The file written to disk loads back to the same tokenizer.
    let dir = tempfile::tempdir().unwrap();
    tokenizer::save(dir.path()).unwrap();
    let loaded = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    let text = "nums: 1 2 3 target: 6\n<think>\n1+2=3 3+3=6\n</think>\n<answer>1+2+3</answer>";
    assert_eq!(
        loaded.encode(text, false).unwrap().get_ids(),
        tok.encode(text, false).unwrap().get_ids()
    );
}

fn tiny() -> PretrainConfig {
    PretrainConfig {
        train_size: 200,
        test_size: 8,
        max_dead_ends: 1,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 1,
        num_heads: 2,
        num_kv_heads: 1,
        max_len: 128,
        steps: 40,
        batch_size: 4,
        optim: OptimSettings {
            lr: 1e-2,
            warmup: 5,
            ..OptimSettings::pretrain()
        },
        eval_every: 0,
        checkpoint_every: 0,
        ..PretrainConfig::default()
    }
}

fn paths(dir: &std::path::Path) -> Paths {
    Paths {
        out: dir.join("model"),
        checkpoint: dir.join("ckpt"),
        dtype: DType::F32,
        resume: false,
        final_eval: false,
        stop_at: None,
        device: Default::default(),
    }
}

#[test]
fn a_few_steps_reduce_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny();
    let mut losses = Vec::new();
    let summary = pretrain::train(&cfg, &paths(dir.path()), |e| {
        if let Event::Step { loss, .. } = e {
            losses.push(*loss);
        }
    })
    .unwrap();
    assert_eq!(losses.len(), 40);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.7 * first, "loss {first} -> {last}");
    assert!(summary.final_loss.is_finite());
    // The result is a loadable Hugging Face directory.
    let p = rhythm_model::Pretrained::load(dir.path().join("model")).unwrap();
    assert_eq!(p.model.config().model_type, "qwen3");
    assert_eq!(p.eos_token_ids(), vec![0]);
    assert!(p.tokenizer.is_some());
    let ids = p.encode("nums: 1 2 3 target: 6\n").unwrap();
    assert!(!ids.is_empty());
}

#[test]
fn resume_gives_the_same_weights() {
    let cfg = PretrainConfig {
        steps: 6,
        checkpoint_every: 2,
        ..tiny()
    };
    let load = |p: &std::path::Path| {
        candle_core::safetensors::load(p.join("ckpt/model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    // Uninterrupted.
    let a = tempfile::tempdir().unwrap();
    pretrain::train(&cfg, &paths(a.path()), |_| {}).unwrap();
    // Interrupted after step 3 (between checkpoints), then resumed.
    let b = tempfile::tempdir().unwrap();
    let mut first = paths(b.path());
    first.stop_at = Some(3);
    let s = pretrain::train(&cfg, &first, |_| {}).unwrap();
    assert_eq!(s.steps, 3);
    assert!(!b.path().join("model").exists());
    let mut resumed = paths(b.path());
    resumed.resume = true;
    let mut start = None;
    pretrain::train(&cfg, &resumed, |e| {
        if let Event::Start { step, .. } = e {
            start = Some(*step);
        }
    })
    .unwrap();
    assert_eq!(start, Some(3));
    let (wa, wb) = (load(a.path()), load(b.path()));
    assert_eq!(wa.len(), wb.len());
    for (name, ta) in &wa {
        let va = ta.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let vb = wb[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(va, vb, "{name}");
    }
    // A checkpoint made with other settings is refused.
    let other = PretrainConfig {
        optim: OptimSettings {
            lr: 0.5,
            ..cfg.optim.clone()
        },
        ..cfg
    };
    assert!(pretrain::train(&other, &resumed, |_| {}).is_err());
}

/// A checkpoint in the format written before the shared toolkit (older key
/// names, no `schedule`, no manifest) resumes; a temporary left by a killed
/// run is removed; a checkpoint damaged after the fact is refused with a
/// one-line error naming the file.
#[test]
fn legacy_stale_and_damaged_checkpoints() {
    let cfg = PretrainConfig {
        steps: 4,
        checkpoint_every: 2,
        ..tiny()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut first = paths(dir.path());
    first.stop_at = Some(2);
    pretrain::train(&cfg, &first, |_| {}).unwrap();
    let ck = dir.path().join("ckpt");
    let state_path = ck.join("state.json");
    // 1. Rewrite the state as the older code wrote it.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).unwrap()).unwrap();
    assert!(v["files"]["model.safetensors"]["bytes"].as_u64().unwrap() > 0);
    let c = v["config"].as_object_mut().unwrap();
    assert_eq!(c.remove("schedule").unwrap(), "cosine");
    for (new, old) in [
        ("warmup", "warmup_steps"),
        ("adam_eps", "eps"),
        ("max_grad_norm", "grad_clip"),
    ] {
        let x = c.remove(new).unwrap();
        c.insert(old.into(), x);
    }
    v.as_object_mut().unwrap().remove("files");
    std::fs::write(&state_path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    // 2. A temporary of a killed checkpoint write.
    let stale = dir.path().join(format!(".ckpt.tmp{}", u32::MAX));
    std::fs::create_dir_all(stale.join("x")).unwrap();
    let mut resumed = paths(dir.path());
    resumed.resume = true;
    resumed.stop_at = Some(3);
    let mut start = None;
    pretrain::train(&cfg, &resumed, |e| {
        if let Event::Start { step, .. } = e {
            start = Some(*step);
        }
    })
    .unwrap();
    assert_eq!(start, Some(2));
    assert!(!stale.exists());
    // 3. Damage the weights of the step-3 checkpoint.
    let w = ck.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let e = pretrain::train(&cfg, &resumed, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("file damaged"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}
