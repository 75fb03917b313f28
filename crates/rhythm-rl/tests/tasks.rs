//! Countdown generation, splits, prompts and solver; the dataset loader.

use std::collections::HashSet;
use std::time::Instant;

use rhythm_rl::dataset::{self, DatasetError, PromptAnswer, Record};
use rhythm_rl::tasks::countdown::{
    self, generate, prompt, solve, splits, CountdownInstance, Generator, GeneratorConfig,
    PromptStyle, DEFAULT_TEST_SIZE, DEFAULT_TRAIN_SIZE,
};
use rhythm_rl::tasks::Task;
use rhythm_rl::verify::countdown::{check_expression, Outcome};

#[test]
fn generator_is_deterministic_by_seed() {
    let a = generate(7, 300);
    assert_eq!(a, generate(7, 300));
    assert_ne!(a, generate(8, 300));
    // A prefix is stable: asking for more does not change the first ones.
    assert_eq!(a[..100], generate(7, 100)[..]);
}

#[test]
fn instances_follow_the_distribution() {
    let config = GeneratorConfig::default();
    let instances = generate(1, 2_000);
    assert_eq!(instances.len(), 2_000);
    let mut counts = [0usize; 5];
    for instance in &instances {
        let n = instance.nums.len();
        assert!(n == 3 || n == 4, "{instance:?}");
        counts[n] += 1;
        assert!(instance.nums.iter().all(|&x| (1..=99).contains(&x)));
        assert!((config.min_target..=config.max_target).contains(&instance.target));
    }
    // Both sizes appear in roughly equal shares.
    assert!(counts[3] > 800 && counts[4] > 800, "{counts:?}");
}

#[test]
fn every_instance_is_solvable_and_the_solution_verifies() {
    for instance in generate(3, 1_000) {
        let expr = solve(&instance.nums, instance.target)
            .unwrap_or_else(|| panic!("unsolvable {instance:?}"));
        assert_eq!(
            check_expression(&expr, &instance.nums, instance.target),
            Outcome::Correct,
            "{instance:?}: {expr}"
        );
        let response = format!("<think>...</think> <answer>{expr}</answer>");
        assert_eq!(instance.verify(&response), Outcome::Correct);
        assert_eq!(instance.reward(&response, 0.1), 1.0);
    }
}

#[test]
fn test_split_is_solvable() {
    let splits = splits(11, 0, DEFAULT_TEST_SIZE);
    assert_eq!(splits.test.len(), DEFAULT_TEST_SIZE);
    for instance in &splits.test {
        let expr = instance.solve().expect("solvable");
        assert_eq!(
            check_expression(&expr, &instance.nums, instance.target),
            Outcome::Correct
        );
    }
}

#[test]
fn solver_edge_cases() {
    assert_eq!(solve(&[], 0), None);
    assert_eq!(solve(&[5], 5).as_deref(), Some("5"));
    assert_eq!(solve(&[5], 6), None);
    // Needs a fraction on the way: 8 / (3 - 8 / 3) = 24.
    let expr = solve(&[8, 8, 3, 3], 24).expect("classic 24 puzzle");
    assert_eq!(check_expression(&expr, &[8, 8, 3, 3], 24), Outcome::Correct);
    // 1 + 1 + 1 can never make 100.
    assert_eq!(solve(&[1, 1, 1], 100), None);
    // Five and six numbers still work.
    let expr = solve(&[25, 50, 75, 100, 3, 6], 952).expect("famous Countdown round");
    assert_eq!(
        check_expression(&expr, &[25, 50, 75, 100, 3, 6], 952),
        Outcome::Correct
    );
    // Huge numbers: overflowing branches are skipped, never a panic.
    let big = u32::MAX;
    let expr = solve(&[big, big, big, big], 1).expect("big / big * (big / big)");
    assert_eq!(check_expression(&expr, &[big; 4], 1), Outcome::Correct);
}

#[test]
fn solver_uses_minimal_parentheses() {
    let expr = solve(&[2, 3, 4], 20).unwrap();
    assert_eq!(check_expression(&expr, &[2, 3, 4], 20), Outcome::Correct);
    assert_eq!(solve(&[1, 2, 3], 6).as_deref(), Some("1 + 2 + 3"));
}

#[test]
fn splits_are_disjoint_and_unique() {
    let s = splits(42, 5_000, DEFAULT_TEST_SIZE);
    assert_eq!(s.train.len(), 5_000);
    assert_eq!(s.test.len(), DEFAULT_TEST_SIZE);
    let train: HashSet<_> = s.train.iter().map(CountdownInstance::key).collect();
    let test: HashSet<_> = s.test.iter().map(CountdownInstance::key).collect();
    assert_eq!(train.len(), s.train.len(), "duplicates within train");
    assert_eq!(test.len(), s.test.len(), "duplicates within test");
    assert!(train.is_disjoint(&test));
    // Deterministic.
    assert_eq!(s, splits(42, 5_000, DEFAULT_TEST_SIZE));
    // Test instances come from another stream, not the train stream's tail.
    let more = generate(42, 5_600);
    let tail: HashSet<_> = more[5_000..].iter().map(CountdownInstance::key).collect();
    assert!(test.intersection(&tail).count() < 10);
}

#[test]
fn default_splits_have_the_papers_sizes_and_are_fast() {
    assert_eq!((DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE), (20_000, 512));
    let start = Instant::now();
    let s = countdown::default_splits(0);
    let elapsed = start.elapsed();
    assert_eq!((s.train.len(), s.test.len()), (20_000, 512));
    // Generous for unoptimised builds; well under a second in release.
    assert!(elapsed.as_secs_f64() < 5.0, "took {elapsed:?}");
}

#[test]
fn generator_rejects_bad_configs_and_gives_up_on_impossible_ones() {
    let bad = GeneratorConfig {
        min_count: 5,
        max_count: 4,
        ..GeneratorConfig::default()
    };
    assert!(Generator::with_config(0, 0, bad).is_err());
    let zero = GeneratorConfig {
        min_num: 0,
        ..GeneratorConfig::default()
    };
    assert!(Generator::with_config(0, 0, zero).is_err());
    // 3 numbers of at most 2 can never reach 1000.
    let impossible = GeneratorConfig {
        min_count: 3,
        max_count: 3,
        min_num: 1,
        max_num: 2,
        min_target: 1_000,
        max_target: 2_000,
    };
    let mut generator = Generator::with_config(0, 0, impossible).unwrap();
    assert_eq!(generator.next(), None);
    // A tiny instance space runs out instead of looping forever.
    let tiny = GeneratorConfig {
        min_count: 1,
        max_count: 1,
        min_num: 1,
        max_num: 3,
        min_target: 1,
        max_target: 3,
    };
    let s = countdown::splits_with_config(0, 10, 10, tiny).unwrap();
    assert_eq!(s.train.len() + s.test.len(), 3);
}

#[test]
fn prompts() {
    let nums = [19, 36, 55, 7];
    assert_eq!(
        prompt(&nums, 65, PromptStyle::TinyZero),
        "Using the numbers [19, 36, 55, 7], create an equation that equals 65. You can use \
         basic arithmetic operations (+, -, *, /) and each number can only be used once. Show \
         your work in <think> </think> tags. And return the final answer in <answer> </answer> \
         tags, for example <answer> (1 + 2) / 3 </answer>."
    );
    let base = prompt(&nums, 65, PromptStyle::TinyZeroBase);
    assert!(base.starts_with("A conversation between User and Assistant."));
    assert!(base.contains("\nUser: Using the numbers [19, 36, 55, 7], create"));
    assert!(base.ends_with("\nAssistant: Let me solve this step by step.\n<think>"));
    assert_eq!(
        prompt(&nums, 65, PromptStyle::Compact),
        "nums: 19 36 55 7 target: 65\n"
    );
    let instance = CountdownInstance {
        nums: nums.to_vec(),
        target: 65,
    };
    assert_eq!(
        instance.prompt(PromptStyle::default()),
        prompt(&nums, 65, PromptStyle::TinyZero)
    );
}

#[test]
fn task_enum_dispatches() {
    let countdown = Task::Countdown(CountdownInstance {
        nums: vec![1, 2, 3],
        target: 6,
    });
    assert_eq!(countdown.reward("<answer>1 + 2 + 3</answer>", 0.0), 1.0);
    assert_eq!(countdown.reward("<answer>1 + 2 * 3</answer>", 0.1), 0.1);
    assert_eq!(
        countdown.prompt(PromptStyle::Compact),
        "nums: 1 2 3 target: 6\n"
    );
    let math = Task::Math {
        prompt: "2+2?".into(),
        answer: "#### 4".into(),
    };
    assert_eq!(math.reward(r"\boxed{4}", 0.5), 1.0);
    assert_eq!(math.reward(r"\boxed{5}", 0.5), 0.0);
    assert_eq!(math.prompt(PromptStyle::Compact), "2+2?");
    let choice = Task::Choice {
        prompt: "Pick".into(),
        key: "C".into(),
    };
    assert_eq!(choice.reward("The answer is (C).", 0.0), 1.0);
}

#[test]
fn dataset_reads_both_shapes() {
    let text = "{\"nums\": [19, 36, 55, 7], \"target\": 65}\n\
                \n   \n\
                {\"prompt\": \"2+2?\", \"answer\": \"4\", \"id\": 3}\r\n\
                {\"prompt\": \"3*3?\", \"answer\": 9}\n";
    let records = dataset::parse_jsonl(text, "mem.jsonl").unwrap();
    assert_eq!(
        records,
        vec![
            Record::Countdown(CountdownInstance {
                nums: vec![19, 36, 55, 7],
                target: 65
            }),
            Record::PromptAnswer(PromptAnswer {
                prompt: "2+2?".into(),
                answer: "4".into()
            }),
            Record::PromptAnswer(PromptAnswer {
                prompt: "3*3?".into(),
                answer: "9".into()
            }),
        ]
    );
}

#[test]
fn dataset_errors_name_file_and_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "{\"nums\": [1, 2], \"target\": 3}\n{oops\n",
            2,
            "invalid JSON",
        ),
        ("\n\n[1, 2]\n", 3, "expected a JSON object, found an array"),
        (
            "{\"nums\": [1, -2], \"target\": 3}",
            1,
            "\"nums\" to hold non-negative integers",
        ),
        ("{\"nums\": [], \"target\": 3}", 1, "non-empty array"),
        ("{\"nums\": [1, 2.5], \"target\": 3}", 1, "found 2.5"),
        (
            "{\"nums\": [1, 4294967296], \"target\": 3}",
            1,
            "below 2^32",
        ),
        ("{\"nums\": [1, 2]}", 1, "expected a \"target\" field"),
        (
            "{\"nums\": [1, 2], \"target\": \"3\"}",
            1,
            "\"target\" to be a non-negative integer",
        ),
        ("{\"prompt\": \"q\"}", 1, "expected an \"answer\" field"),
        (
            "{\"prompt\": 5, \"answer\": \"a\"}",
            1,
            "\"prompt\" to be a string",
        ),
        (
            "{\"prompt\": \"q\", \"answer\": [1]}",
            1,
            "\"answer\" to be a string or a number",
        ),
        (
            "{\"question\": \"q\"}",
            1,
            "expected {\"prompt\": ..., \"answer\": ...} or",
        ),
        ("{}", 1, "an empty object"),
    ];
    for (text, line, fragment) in cases {
        let err = dataset::parse_jsonl(text, "data/x.jsonl").unwrap_err();
        let message = err.to_string();
        assert_eq!(err.line(), Some(*line), "{message}");
        assert!(
            message.starts_with(&format!("data/x.jsonl:{line}: ")),
            "{message}"
        );
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        assert!(!message.contains('\n'), "{message:?}");
    }
}

#[test]
fn dataset_typed_loaders_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("countdown.jsonl");
    let instances = generate(5, 20);
    std::fs::write(&path, dataset::countdown_to_jsonl(&instances)).unwrap();
    assert_eq!(dataset::load_countdown(&path).unwrap(), instances);
    let err = dataset::load_prompt_answer(&path).unwrap_err();
    assert!(
        err.to_string()
            .contains("countdown.jsonl:1: expected a record"),
        "{err}"
    );

    let qa = dir.path().join("qa.jsonl");
    std::fs::write(&qa, "{\"prompt\": \"p\", \"answer\": \"a\"}\n").unwrap();
    assert_eq!(dataset::load_prompt_answer(&qa).unwrap().len(), 1);
    let err = dataset::load_countdown(&qa).unwrap_err();
    assert!(
        err.to_string()
            .contains("qa.jsonl:1: expected a Countdown record"),
        "{err}"
    );

    let missing = dir.path().join("missing.jsonl");
    let err = dataset::load_jsonl(&missing).unwrap_err();
    assert!(matches!(err, DatasetError::Io { .. }));
    assert!(
        err.to_string().contains("missing.jsonl: cannot read"),
        "{err}"
    );
}
