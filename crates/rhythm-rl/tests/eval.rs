//! Evaluation report shape and re-scoring.

use rhythm_model::Pretrained;
use rhythm_rl::eval::{evaluate, EvalConfig};
use rhythm_rl::tasks::{countdown, PromptStyle, Task};

#[test]
fn report_lists_every_instance_and_rescores() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/models/tiny-qwen3"
    );
    let p = Pretrained::load(dir).unwrap();
    let tasks: Vec<Task> = countdown::splits(0, 0, 3)
        .test
        .into_iter()
        .map(Task::Countdown)
        .collect();
    let cfg = EvalConfig {
        k: 2,
        temperature: 1.0,
        max_new_tokens: 8,
        seed: 1,
        batch_size: 4,
        format_score: 0.0,
        style: PromptStyle::Compact,
        chat: Default::default(),
    };
    let r = evaluate(&p, &tasks, &cfg).unwrap();
    assert_eq!(r.n, 3);
    assert!(r.avg_at_k.is_some());
    let v = serde_json::to_value(&r).unwrap();
    for key in [
        "n",
        "pass_at_1",
        "k",
        "avg_at_k",
        "temperature",
        "instances",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    for (i, inst) in v["instances"].as_array().unwrap().iter().enumerate() {
        let Task::Countdown(c) = &tasks[i] else {
            unreachable!()
        };
        assert_eq!(inst["task"]["nums"], serde_json::json!(c.nums));
        assert_eq!(inst["task"]["target"], serde_json::json!(c.target));
        assert_eq!(inst["samples"].as_array().unwrap().len(), 2);
        // Anyone can re-score a response from the JSON alone.
        let resp = inst["greedy"]["response"].as_str().unwrap();
        assert_eq!(
            inst["greedy"]["reward"].as_f64().unwrap() as f32,
            c.reward(resp, 0.0)
        );
    }
    // Same seed, same report.
    assert_eq!(evaluate(&p, &tasks, &cfg).unwrap(), r);
}
