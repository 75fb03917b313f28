//! End-to-end GRPO on the tiny Qwen3 fixture: a smoke run, and exact resume.

use std::path::{Path, PathBuf};

use rhythm_core::{CreditSettings, Layers, MetricSettings, Strategy};
use rhythm_model::Pretrained;
use rhythm_rl::config::{GroupMode, OptimSettings, TrainConfig};
use rhythm_rl::trainer::{StepMetrics, Trainer};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/models/tiny-qwen3"
    ))
}

/// A small run: 2 prompts x 4 responses of up to 12 tokens, lr high enough
/// that the weights move visibly.
fn config(out: &Path) -> TrainConfig {
    TrainConfig {
        model: fixture(),
        out: out.to_path_buf(),
        train_size: 40,
        test_size: 4,
        steps: 4,
        prompts_per_batch: 2,
        group_size: 4,
        micro_batch: 3,
        grad_steps: 2,
        max_new_tokens: 12,
        optim: OptimSettings {
            lr: 1e-3,
            warmup: 1,
            ..OptimSettings::default()
        },
        save_interval: 2,
        metrics: MetricSettings {
            layers: Some(Layers::All),
            ..TrainConfig::default().metrics
        },
        ..TrainConfig::default()
    }
}

/// The fixture never writes a right Countdown answer; reward responses by
/// their share of digit characters so that groups have spread.
fn reward(trainer: &mut Trainer) {
    trainer.set_reward_fn(Box::new(|_, text: &str| {
        let n = text.chars().count().max(1) as f64;
        text.chars().filter(|c| c.is_ascii_digit()).count() as f64 / n
    }));
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn smoke_run_trains_and_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    for strategy in [Strategy::Coupled, Strategy::Random, Strategy::Entropy] {
        let _ = std::fs::remove_dir_all(&out);
        let cfg = TrainConfig {
            credit: CreditSettings {
                strategy,
                ..CreditSettings::default()
            },
            eval_interval: 2,
            eval_size: 2,
            ..config(&out)
        };
        let mut t = Trainer::new(cfg).unwrap();
        reward(&mut t);
        let mut seen: Vec<StepMetrics> = Vec::new();
        t.run(|m| seen.push(m.clone())).unwrap();
        assert_eq!(seen.len(), 4);
        assert!(seen
            .iter()
            .all(|m| m.loss.is_finite() && m.grad_norm.is_finite()));
        assert!(seen.iter().any(|m| m.grad_norm > 0.0), "{seen:?}");
        assert!(seen
            .iter()
            .all(|m| m.gamma_mean >= 1.0 && m.gamma_boost_share > 0.0));
        assert!(seen[1].eval_accuracy.is_some() && seen[0].eval_accuracy.is_none());
        let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 4);
        let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
        for key in [
            "step",
            "reward",
            "accuracy",
            "response_len",
            "entropy",
            "gamma_mean",
            "gamma_boost_share",
            "loss",
            "clip_frac",
            "grad_norm",
            "kl",
            "rollout_s",
            "probe_s",
            "update_s",
        ] {
            assert!(first.get(key).is_some(), "metrics lack {key}");
        }
        // Checkpoints are loadable model directories and the weights moved.
        let last = out.join("checkpoint-000004");
        let p = Pretrained::load(&last).unwrap();
        assert!(p.tokenizer.is_some());
        assert!(last.join("trainer_state.json").is_file());
        assert_ne!(weights(&last), weights(&fixture()));
        assert_eq!(
            std::fs::read_to_string(out.join("latest")).unwrap(),
            "checkpoint-000004"
        );
    }
}

#[test]
fn kl_and_token_mean_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let cfg = TrainConfig {
        steps: 2,
        grad_steps: 1,
        kl_coef: 0.05,
        loss_agg: rhythm_rl::config::LossAgg::TokenMean,
        group_mode: GroupMode::Refresh,
        refresh_every: 1,
        ..config(&out)
    };
    let mut t = Trainer::new(cfg).unwrap();
    reward(&mut t);
    let mut seen = Vec::new();
    t.run(|m| seen.push(m.clone())).unwrap();
    // Step 1 starts at the reference: KL ~ 0; step 2 has moved away.
    assert!(seen[0].kl.abs() < 1e-4, "{}", seen[0].kl);
    assert!(seen[1].kl > 0.0, "{}", seen[1].kl);
}

/// The update reuses the probe's training forwards of its first mini-batch
/// (the tapes of `Model::probe_for_update`): with them and with every
/// forward run again by the update, the weights after each step are
/// bitwise equal (the tapes land on their own micro-batches), for one and
/// for several mini-batches per step.
#[test]
fn held_probe_tapes_are_the_updates_forwards() {
    let tmp = tempfile::tempdir().unwrap();
    for grad_steps in [1, 2] {
        let run = |held: usize, name: &str| -> Vec<u8> {
            let out = tmp.path().join(format!("{name}-{grad_steps}"));
            let mut t = Trainer::new(TrainConfig {
                out,
                steps: 2,
                grad_steps,
                micro_batch: 3,
                ..config(tmp.path())
            })
            .unwrap();
            t.set_held_tape_bytes(held);
            reward(&mut t);
            let mut norms = Vec::new();
            for _ in 0..2 {
                norms.push(t.step().unwrap().grad_norm);
            }
            assert!(norms.iter().all(|&n| n > 0.0), "{norms:?}");
            let dir = t.save().unwrap();
            weights(&dir)
        };
        let held = run(rhythm_rl::trainer::HELD_TAPE_BYTES, "held");
        let rerun = run(0, "rerun");
        assert_eq!(
            held, rerun,
            "grad_steps {grad_steps}: held tapes change the update"
        );
        assert_ne!(held, weights(&fixture()));
    }
}

/// A run of 4 steps, against one killed after step 3 (its last checkpoint
/// at step 2) and resumed: the final weights and optimizer moments are
/// bitwise equal.
#[test]
fn resume_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let base = TrainConfig {
        credit: CreditSettings::default(), // coupled
        group_mode: GroupMode::Static,
        ..config(tmp.path())
    };
    // Straight.
    let a = tmp.path().join("a");
    let mut t = Trainer::new(TrainConfig {
        out: a.clone(),
        ..base.clone()
    })
    .unwrap();
    reward(&mut t);
    t.run(|_| {}).unwrap();
    // Killed: steps 1-3, a checkpoint after step 2 only, then dropped.
    let b = tmp.path().join("b");
    let mut t = Trainer::new(TrainConfig {
        out: b.clone(),
        ..base.clone()
    })
    .unwrap();
    reward(&mut t);
    t.step().unwrap();
    t.step().unwrap();
    t.save().unwrap();
    t.step().unwrap();
    drop(t);
    // Resumed.
    let mut t = Trainer::resume(&b, None).unwrap();
    assert_eq!(t.step, 2);
    reward(&mut t);
    t.run(|_| {}).unwrap();
    let (ca, cb) = (a.join("checkpoint-000004"), b.join("checkpoint-000004"));
    assert_eq!(weights(&ca), weights(&cb), "weights differ after resume");
    assert_eq!(
        std::fs::read(ca.join("optimizer.safetensors")).unwrap(),
        std::fs::read(cb.join("optimizer.safetensors")).unwrap(),
        "optimizer state differs after resume"
    );
    let sa: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ca.join("trainer_state.json")).unwrap())
            .unwrap();
    let sb: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cb.join("trainer_state.json")).unwrap())
            .unwrap();
    assert_eq!(sa["groups"], sb["groups"]);
    assert_eq!(sa["adam_t"], sb["adam_t"]);
}

#[test]
fn config_toml_round_trip_and_merge() {
    let c = TrainConfig {
        optim: OptimSettings {
            lr: 3e-4,
            ..OptimSettings::default()
        },
        credit: CreditSettings {
            strategy: Strategy::Entropy,
            ..CreditSettings::default()
        },
        ..TrainConfig::default()
    };
    let back = TrainConfig::from_toml_str(&c.to_toml()).unwrap();
    assert_eq!(back, c);
    let file = TrainConfig::from_toml_str("steps = 5\nlr = 0.01\nstrategy = \"local\"").unwrap();
    assert_eq!(
        (file.steps, file.credit.strategy, file.group_size),
        (5, Strategy::Local, 8)
    );
    let flags = TrainConfig {
        steps: 2,
        ..TrainConfig::default()
    };
    let m = flags.merge_explicit(&file, &["steps".to_string()]);
    assert_eq!(
        (m.steps, m.optim.lr, m.credit.strategy),
        (2, 0.01, Strategy::Local)
    );
    let e = TrainConfig::from_toml_str("stepz = 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("stepz"), "{e}");
    let bad = TrainConfig {
        group_size: 0,
        ..TrainConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("group_size"));
}

/// Writes a small random Qwen3 (hidden 256, 6 layers, 8 heads / 4 kv heads,
/// head_dim 32, the fixture's 96-token tokenizer) to `$RHYTHM_RANDOM_MODEL`,
/// for the cost measurements of docs/training.md:
/// `RHYTHM_RANDOM_MODEL=/tmp/qwen3-small cargo test --release -p rhythm-rl --test train -- --ignored make_random_model`
#[test]
#[ignore]
fn make_random_model() {
    let Ok(out) = std::env::var("RHYTHM_RANDOM_MODEL") else {
        return;
    };
    let mut cfg: rhythm_model::Config =
        rhythm_model::Config::from_file(&fixture().join("config.json")).unwrap();
    cfg.hidden_size = 256;
    cfg.intermediate_size = 768;
    cfg.num_hidden_layers = 6;
    cfg.num_attention_heads = 8;
    cfg.num_key_value_heads = Some(4);
    cfg.head_dim = Some(32);
    cfg.max_position_embeddings = 512;
    cfg.extra.remove("layer_types");
    let (m, _) = rhythm_model::Model::random(&cfg, 7, 1.0, &candle_core::Device::Cpu).unwrap();
    rhythm_model::save_pretrained(
        &m,
        Path::new(&out),
        candle_core::DType::F32,
        Some(&fixture()),
    )
    .unwrap();
}

/// Cost of the rhythm probe and throughput (docs/training.md): runs 3 steps
/// of `coupled` and of `none` (same seed, so the same first rollout) on
/// `$RHYTHM_RANDOM_MODEL` with the digit-share reward, and prints each
/// step's phase times.
/// `RHYTHM_RANDOM_MODEL=/tmp/qwen3-small cargo test --release -p rhythm-rl --test train -- --ignored measure_cost --nocapture`
#[test]
#[ignore]
fn measure_cost() {
    let Ok(model) = std::env::var("RHYTHM_RANDOM_MODEL") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for strategy in [
        Strategy::Coupled,
        Strategy::None,
        Strategy::Coupled,
        Strategy::None,
    ] {
        let out = tmp.path().join(strategy.name());
        let _ = std::fs::remove_dir_all(&out);
        let cfg = TrainConfig {
            model: PathBuf::from(&model),
            out,
            credit: CreditSettings {
                strategy,
                ..CreditSettings::default()
            },
            steps: 3,
            prompts_per_batch: 4,
            group_size: 8,
            micro_batch: 8,
            max_new_tokens: 128,
            train_size: 200,
            test_size: 4,
            save_interval: 100,
            optim: OptimSettings {
                lr: 1e-4,
                ..OptimSettings::default()
            },
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(cfg).unwrap();
        reward(&mut t);
        t.run(|m| {
            let total = m.rollout_s + m.probe_s + m.update_s;
            println!(
                "{strategy:8} step {} total {total:.2}s rollout {:.2}s ({:.0} tok/s) probe {:.2}s \
                 (rhythm {:.3}s, {:.1}% of step) update {:.2}s ({:.0} tok/s, {} tokens)",
                m.step,
                m.rollout_s,
                m.gen_tokens as f64 / m.rollout_s,
                m.probe_s,
                m.rhythm_s,
                100.0 * m.probe_s / total,
                m.update_s,
                m.update_tokens as f64 / m.update_s.max(1e-9),
                m.update_tokens
            );
        })
        .unwrap();
    }
}

/// Every key of `TrainConfig` is documented in docs/training.md's tables,
/// and examples/train.toml parses (unknown keys would be refused).
#[test]
fn every_setting_is_documented_and_the_example_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/training.md")).unwrap();
    for key in TrainConfig::keys() {
        let row = format!("| `{key}` / `--{}` |", key.replace('_', "-"));
        assert!(doc.contains(&row), "docs/training.md lacks the row {row}");
    }
    let example = root.join("examples/train.toml");
    let c = TrainConfig::from_toml_file(&example).unwrap();
    assert_eq!(c.credit.strategy, Strategy::Coupled);
    assert_eq!(c.params().unwrap(), rhythm_core::Params::rl());
}
