//! `rhythm pretrain`: traces, tokenizer, SFT loss and exact resume.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhythm_model::DType;
use rhythm_rl::pretrain::{self, tokenizer, trace, Event, Paths, PretrainConfig};
use rhythm_rl::tasks::countdown;
use rhythm_rl::verify::countdown::Outcome;

fn traces(seed: u64, n: usize, dead: usize) -> Vec<trace::Trace> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    countdown::generate(seed, n)
        .iter()
        .map(|i| trace::trace(i, dead, &mut rng).expect("generated instances are solvable"))
        .collect()
}

#[test]
fn traces_are_deterministic_and_correct() {
    assert_eq!(traces(7, 100, 2), traces(7, 100, 2));
    assert_ne!(traces(7, 100, 2), traces(8, 100, 2));
    let instances = countdown::generate(3, 300);
    for dead in 0..=3 {
        let mut rng = ChaCha8Rng::seed_from_u64(dead as u64);
        for inst in &instances {
            let t = trace::trace(inst, dead, &mut rng).unwrap();
            assert_eq!(inst.verify(&t.response), Outcome::Correct, "{t:?}");
            assert!(
                countdown::solve(&inst.nums, inst.target).is_some(),
                "solver agrees"
            );
            assert!(t.dead_ends <= dead);
            assert_eq!(t.response.matches(" no\n").count(), t.dead_ends, "{t:?}");
            assert!(t.response.starts_with("<think>\n"));
            assert!(t.response.ends_with("</answer><|endoftext|>"));
            assert_eq!(t.prompt, inst.prompt(countdown::PromptStyle::Compact));
        }
    }
    // Dead ends are produced when asked (only a handful of tiny instances
    // have too few failing paths).
    let t = traces(5, 200, 3);
    let full = t.iter().filter(|t| t.dead_ends == 3).count();
    assert!(full >= 190, "{full} of 200 traces have 3 dead ends");
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
        lr: 1e-2,
        warmup_steps: 5,
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
    let other = PretrainConfig { lr: 0.5, ..cfg };
    assert!(pretrain::train(&other, &resumed, |_| {}).is_err());
}
