//! Crash consistency: a small training run on the tiny Qwen3 fixture is
//! SIGKILLed at many instants (at random times, while a checkpoint is being
//! written, and while a resumed run is still loading) and resumed each time
//! until it finishes; its final weights, optimizer moments, trainer state
//! and `metrics.jsonl` (timing fields aside) must be byte-equal to those of
//! an uninterrupted run, with no temporary file or directory left.
//!
//! The process that is killed is this test binary itself, re-run with
//! `RHYTHM_KILL_OUT` set so that [`child_run`] trains (as `rhythm train`
//! does: resume when the directory holds a run, else start) with a
//! digit-share reward that gives the groups spread, so every step updates
//! the weights.
//!
//! `cargo test -p rhythm-rl --test kill` runs trials of up to 6 kills
//! until 24 kills have landed; the longer version runs 200 (see
//! docs/reliability.md): `RHYTHM_KILLS=200 cargo test --release -p
//! rhythm-rl --test kill -- --ignored kill_many`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rhythm_core::{CreditSettings, Layers, MetricSettings, Strategy};
use rhythm_rl::checkpoint;
use rhythm_rl::config::{GroupMode, OptimSettings, TrainConfig};
use rhythm_rl::trainer::Trainer;

const STEPS: usize = 6;

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/models/tiny-qwen3"
    ))
}

/// 6 steps of 2 prompts x 3 responses of up to 8 tokens, a checkpoint
/// every 2 steps, evaluation every 3, refreshed head groups.
fn config(out: &Path) -> TrainConfig {
    TrainConfig {
        model: fixture(),
        out: out.to_path_buf(),
        train_size: 20,
        test_size: 2,
        steps: STEPS,
        prompts_per_batch: 2,
        group_size: 3,
        micro_batch: 3,
        grad_steps: 2,
        max_new_tokens: 8,
        optim: OptimSettings {
            lr: 1e-3,
            warmup: 1,
            ..OptimSettings::default()
        },
        save_interval: 2,
        eval_interval: 3,
        eval_size: 2,
        metrics: MetricSettings {
            layers: Some(Layers::All),
            ..TrainConfig::default().metrics
        },
        credit: CreditSettings {
            strategy: Strategy::Coupled,
            ..CreditSettings::default()
        },
        group_mode: GroupMode::Refresh,
        refresh_every: 2,
        ..TrainConfig::default()
    }
}

/// The body of the killed process (a no-op unless `RHYTHM_KILL_OUT` is set).
#[test]
#[ignore]
fn child_run() {
    let Ok(out) = std::env::var("RHYTHM_KILL_OUT") else {
        return;
    };
    let out = PathBuf::from(out);
    let mut t = if out.join("config.toml").is_file() {
        Trainer::resume(&out, None).unwrap()
    } else {
        Trainer::new(config(&out)).unwrap()
    };
    t.set_reward_fn(Box::new(|_, text: &str| {
        let n = text.chars().count().max(1) as f64;
        text.chars().filter(|c| c.is_ascii_digit()).count() as f64 / n
    }));
    t.run(|_| {}).unwrap();
}

fn spawn(out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_run", "--test-threads", "1"])
        .env("RHYTHM_KILL_OUT", out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(mut c: Child) {
    let status = c.wait().unwrap();
    if !status.success() {
        let mut err = String::new();
        use std::io::Read;
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        panic!("training child failed: {err}");
    }
}

/// Whether the run in `out` is complete (its last checkpoint is intact).
fn done(out: &Path) -> bool {
    checkpoint::latest(out).is_some_and(|d| d.ends_with(checkpoint::checkpoint_name(STEPS)))
}

fn temps(out: &Path) -> Vec<String> {
    std::fs::read_dir(out)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| checkpoint::is_stale_temp(n))
                .collect()
        })
        .unwrap_or_default()
}

/// `metrics.jsonl` with the timing fields zeroed.
fn metrics(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["rollout_s", "probe_s", "rhythm_s", "update_s"] {
                v[k] = serde_json::json!(0);
            }
            v.to_string()
        })
        .collect()
}

fn state(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("trainer_state.json")).unwrap())
            .unwrap();
    v["config"]["out"] = serde_json::json!("");
    v
}

/// Compares the finished run in `b` with the reference in `a`.
fn assert_same(a: &Path, b: &Path) {
    let name = checkpoint::checkpoint_name(STEPS);
    let (ca, cb) = (a.join(&name), b.join(&name));
    for f in ["model.safetensors", "optimizer.safetensors", "config.json"] {
        assert!(
            std::fs::read(ca.join(f)).unwrap() == std::fs::read(cb.join(f)).unwrap(),
            "{f} differs after kills and resumes"
        );
    }
    assert_eq!(state(&ca), state(&cb), "trainer_state.json differs");
    assert_eq!(metrics(a), metrics(b), "metrics.jsonl differs");
    assert_eq!(metrics(b).len(), STEPS);
    assert!(
        temps(b).is_empty(),
        "temporary entries left: {:?}",
        temps(b)
    );
}

/// How one kill is aimed.
#[derive(Clone, Copy, Debug)]
enum Aim {
    /// After a uniform random delay within the run's length.
    Random,
    /// As soon as a temporary checkpoint directory appears.
    DuringSave,
    /// Within the first fifth of the run's length (a resume still loading).
    Early,
}

#[derive(Default, Debug)]
struct Tally {
    kills: usize,
    in_save: usize,
    before_first_checkpoint: usize,
    finished_first: usize,
}

/// One trial: up to `kills` kills, then resumes until a process completes.
fn trial(out: &Path, kills: usize, full: Duration, rng: &mut ChaCha8Rng, tally: &mut Tally) {
    let mut left = kills;
    let mut attempts = 0;
    // Until a process exits by itself (a run killed after its last
    // checkpoint is resumed too: that resume only cleans up).
    loop {
        attempts += 1;
        assert!(attempts < 20 * kills + 50, "the run never finishes");
        let mut c = spawn(out);
        if left == 0 {
            finish(c);
            break;
        }
        let aim = match rng.random_range(0..3) {
            0 => Aim::Random,
            1 => Aim::DuringSave,
            _ => Aim::Early,
        };
        let t0 = Instant::now();
        let limit = full.mul_f64(1.5);
        let killed = match aim {
            Aim::Random | Aim::Early => {
                let span = if matches!(aim, Aim::Early) {
                    full.mul_f64(0.2)
                } else {
                    full.mul_f64(0.8)
                };
                let at = span.mul_f64(rng.random::<f64>());
                loop {
                    if c.try_wait().unwrap().is_some() {
                        break false;
                    }
                    if t0.elapsed() >= at {
                        break true;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Aim::DuringSave => loop {
                if c.try_wait().unwrap().is_some() {
                    break false;
                }
                if t0.elapsed() > limit {
                    break true;
                }
                let saving = std::fs::read_dir(out).is_ok_and(|rd| {
                    rd.flatten().any(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.starts_with(".checkpoint-") || n.starts_with("..checkpoint-")
                    })
                });
                if saving {
                    break true;
                }
            },
        };
        if killed {
            c.kill().unwrap();
            c.wait().unwrap();
            left -= 1;
            tally.kills += 1;
            if temps(out)
                .iter()
                .any(|n| n.trim_start_matches('.').starts_with("checkpoint-"))
            {
                tally.in_save += 1;
            }
            if checkpoint::latest(out).is_none() {
                tally.before_first_checkpoint += 1;
            }
        } else {
            tally.finished_first += 1;
            finish(c);
            break;
        }
    }
    assert!(done(out));
}

/// Trials of up to `per_trial` kills each until at least `min_kills`
/// kills have landed; each trial must end equal to the reference.
fn run_kills(min_kills: usize, per_trial: usize, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    // The uninterrupted reference, timed.
    let a = tmp.path().join("a");
    let t0 = Instant::now();
    finish(spawn(&a));
    let full = t0.elapsed();
    assert!(done(&a) && temps(&a).is_empty());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    let mut trials = 0;
    while tally.kills < min_kills {
        trials += 1;
        assert!(trials <= 4 * min_kills.div_ceil(per_trial) + 4, "{tally:?}");
        let b = tmp.path().join(format!("b{trials}"));
        trial(&b, per_trial, full, &mut rng, &mut tally);
        assert_same(&a, &b);
    }
    eprintln!("uninterrupted run {full:?}; {trials} trials; {tally:?}");
    assert!(
        tally.in_save > 0,
        "no kill landed in a checkpoint write: {tally:?}"
    );
    assert!(
        tally.before_first_checkpoint > 0,
        "no kill landed before the first checkpoint: {tally:?}"
    );
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    run_kills(24, 6, 13);
}

/// The long version: at least `RHYTHM_KILLS` kills (default 200).
#[test]
#[ignore]
fn kill_many() {
    let kills: usize = std::env::var("RHYTHM_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    run_kills(kills, 10, 29);
}

/// A damaged newest checkpoint is skipped: resuming falls back to the
/// previous intact one, redoes the steps, and ends equal to the reference.
#[test]
fn corrupt_newest_checkpoint_falls_back() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    finish(spawn(&a));
    let b = tmp.path().join("b");
    finish(spawn(&b));
    // Damage the last checkpoint's weights (one flipped byte) and truncate
    // the one before: both are skipped, checkpoint-000002 is used.
    let last = b.join(checkpoint::checkpoint_name(STEPS));
    let w = last.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let k = bytes.len() - 100;
    bytes[k] ^= 0x40;
    std::fs::write(&w, &bytes).unwrap();
    let prev = b
        .join(checkpoint::checkpoint_name(STEPS - 2))
        .join("optimizer.safetensors");
    let len = std::fs::metadata(&prev).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&prev)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (found, skipped) = checkpoint::find_latest(&b);
    assert_eq!(
        found.unwrap(),
        b.join(checkpoint::checkpoint_name(STEPS - 4))
    );
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].1.contains("hash"), "{}", skipped[0].1);
    assert!(skipped[1].1.contains("bytes"), "{}", skipped[1].1);
    // `done` is false now; resuming redoes steps 3-6.
    assert!(!done(&b));
    finish(spawn(&b));
    assert_same(&a, &b);
}

/// `metrics.jsonl` is cut back to the steps a state holds: later steps,
/// repeats, gaps and a partial last line end what is kept.
#[test]
fn metrics_are_cut_back_to_the_checkpoint() {
    use rhythm_rl::trainer::truncate_metrics;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("metrics.jsonl");
    let line = |s: usize| format!("{{\"step\":{s},\"reward\":0.5}}\n");
    let cases: Vec<(String, usize, String)> = vec![
        ((1..=5).map(line).collect(), 3, (1..=3).map(line).collect()),
        ((1..=3).map(line).collect(), 3, (1..=3).map(line).collect()),
        ((1..=3).map(line).collect(), 0, String::new()),
        (
            format!("{}{}{}", line(1), line(2), "{\"step\":3,\"rew"),
            4,
            format!("{}{}", line(1), line(2)),
        ),
        (
            format!("{}{}{}{}", line(1), line(2), line(1), line(2)),
            4,
            format!("{}{}", line(1), line(2)),
        ),
        (format!("{}{}", line(1), line(3)), 3, line(1)),
        (format!("{}\n{}", line(1), line(2)), 2, line(1)),
    ];
    for (i, (text, step, want)) in cases.into_iter().enumerate() {
        std::fs::write(&p, &text).unwrap();
        truncate_metrics(&p, step).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), want, "case {i}");
    }
    // No file: nothing to do, nothing created.
    std::fs::remove_file(&p).unwrap();
    truncate_metrics(&p, 2).unwrap();
    assert!(!p.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
