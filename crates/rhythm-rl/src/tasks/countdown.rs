//! Countdown (TinyZero protocol, SPEC section 13): reach a target from 3 or
//! 4 numbers with `+ - * /`, each number used exactly once.
//!
//! # Generation
//!
//! [`Generator`] is deterministic by seed (a [`ChaCha8Rng`] seeded with a
//! `u64`). With the default [`GeneratorConfig`] every instance has 3 or 4
//! numbers (equally likely: the count is drawn first and kept while the draw
//! is retried), each drawn uniformly from `1..=99`, and a target in
//! `1..=999`. The target is *built* from the numbers, so every instance is
//! solvable: the generator repeatedly combines two random entries of the pool
//! with a random operator, keeping every intermediate value a positive
//! integer (`a - b` is taken as larger minus smaller and must not be zero;
//! `a / b` must divide exactly, larger by smaller), until one value remains;
//! if it falls outside the target range the draw starts over with fresh
//! numbers. The numbers are shown in the order drawn, which says nothing
//! about the construction.
//!
//! [`splits`] makes disjoint train and test sets (default 20,000 and 512, as
//! in the paper): the test set is drawn from a separate ChaCha stream of the
//! same seed, and an instance equal to an earlier one, train or test, is
//! skipped. Two instances are equal when their numbers agree as a multiset
//! and their targets agree (the order of the numbers is presentation only).
//!
//! # Prompts
//!
//! [`prompt`] renders an instance in a [`PromptStyle`]: TinyZero's question
//! (for a chat template), TinyZero's full base-model template, or a compact
//! form for small models. In every style the response is scored by
//! [`crate::verify::countdown`]: the expression in its last
//! `<answer>...</answer>`.
//!
//! # Solving
//!
//! [`solve`] searches every expression tree over the numbers in exact
//! rational arithmetic and returns one reaching the target, printed with
//! minimal parentheses; useful to build training traces and in tests.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::verify::countdown::{self as verifier, join, Op, Outcome};
use crate::verify::Rational;

/// Training-set size used by the paper.
pub const DEFAULT_TRAIN_SIZE: usize = 20_000;
/// Test-set size used by the paper.
pub const DEFAULT_TEST_SIZE: usize = 512;

/// Consecutive failed draws after which [`Generator`] gives up (returns
/// `None`); only reachable with a configuration whose target range cannot be
/// reached.
pub const MAX_ATTEMPTS: usize = 100_000;

/// One Countdown problem: use each of `nums` once to make `target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CountdownInstance {
    /// The numbers, in presentation order.
    pub nums: Vec<u32>,
    /// The target value.
    pub target: u32,
}

impl CountdownInstance {
    /// The prompt for this instance in `style`.
    pub fn prompt(&self, style: PromptStyle) -> String {
        prompt(&self.nums, self.target, style)
    }

    /// Judges a response to this instance.
    pub fn verify(&self, response: &str) -> Outcome {
        verifier::verify(response, &self.nums, self.target)
    }

    /// The reward for a response: 1 if right, `format_score` if well-formed
    /// but wrong, 0 otherwise.
    pub fn reward(&self, response: &str, format_score: f32) -> f32 {
        verifier::reward(self.verify(response), format_score)
    }

    /// An expression reaching the target, if one exists (see [`solve`]).
    pub fn solve(&self) -> Option<String> {
        solve(&self.nums, self.target)
    }

    /// The identity used for de-duplication: sorted numbers and target.
    pub fn key(&self) -> (Vec<u32>, u32) {
        let mut nums = self.nums.clone();
        nums.sort_unstable();
        (nums, self.target)
    }
}

/// How a Countdown instance is rendered as a prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PromptStyle {
    /// TinyZero's question, for use as the user turn of a chat template:
    ///
    /// ```text
    /// Using the numbers [19, 36, 55, 7], create an equation that equals 65. You can use basic
    /// arithmetic operations (+, -, *, /) and each number can only be used once. Show your work
    /// in <think> </think> tags. And return the final answer in <answer> </answer> tags, for
    /// example <answer> (1 + 2) / 3 </answer>.
    /// ```
    ///
    /// (one line; wrapped here for reading).
    #[default]
    TinyZero,
    /// TinyZero's complete template for base models: a system sentence,
    /// `User: ` and the [`PromptStyle::TinyZero`] question, then
    /// `Assistant: Let me solve this step by step.\n<think>`, so the
    /// completion continues the thinking.
    TinyZeroBase,
    /// A minimal form for small models trained from scratch:
    /// `nums: 19 36 55 7 target: 65\n` (numbers separated by single spaces,
    /// one trailing newline). The completion is expected to hold
    /// `<answer>EXPR</answer>`, optionally after free-form work.
    Compact,
}

/// Renders the prompt for `nums` and `target` in `style`.
pub fn prompt(nums: &[u32], target: u32, style: PromptStyle) -> String {
    match style {
        PromptStyle::TinyZero => question(nums, target),
        PromptStyle::TinyZeroBase => format!(
            "A conversation between User and Assistant. The user asks a question, and the \
             Assistant solves it. The assistant first thinks about the reasoning process in \
             the mind and then provides the user with the answer.\nUser: {}\nAssistant: Let \
             me solve this step by step.\n<think>",
            question(nums, target)
        ),
        PromptStyle::Compact => {
            let nums: Vec<String> = nums.iter().map(u32::to_string).collect();
            format!("nums: {} target: {target}\n", nums.join(" "))
        }
    }
}

fn question(nums: &[u32], target: u32) -> String {
    let list: Vec<String> = nums.iter().map(u32::to_string).collect();
    format!(
        "Using the numbers [{}], create an equation that equals {target}. You can use basic \
         arithmetic operations (+, -, *, /) and each number can only be used once. Show your \
         work in <think> </think> tags. And return the final answer in <answer> </answer> \
         tags, for example <answer> (1 + 2) / 3 </answer>.",
        list.join(", ")
    )
}

/// Parameters of the instance distribution; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// Fewest numbers per instance (default 3).
    pub min_count: usize,
    /// Most numbers per instance (default 4).
    pub max_count: usize,
    /// Smallest number (default 1).
    pub min_num: u32,
    /// Largest number (default 99).
    pub max_num: u32,
    /// Smallest target (default 1).
    pub min_target: u32,
    /// Largest target (default 999).
    pub max_target: u32,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            min_count: 3,
            max_count: 4,
            min_num: 1,
            max_num: 99,
            min_target: 1,
            max_target: 999,
        }
    }
}

/// Why a [`GeneratorConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A range whose lower end exceeds its upper end, or a zero minimum.
    #[error("invalid generator config: {0}")]
    Invalid(&'static str),
}

impl GeneratorConfig {
    /// Checks that the ranges are non-empty and the counts and numbers are
    /// positive.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.min_count == 0 || self.min_count > self.max_count {
            return Err(ConfigError::Invalid("need 1 <= min_count <= max_count"));
        }
        if self.min_num == 0 || self.min_num > self.max_num {
            return Err(ConfigError::Invalid("need 1 <= min_num <= max_num"));
        }
        if self.min_target > self.max_target {
            return Err(ConfigError::Invalid("need min_target <= max_target"));
        }
        Ok(())
    }
}

/// A deterministic stream of solvable Countdown instances.
///
/// As an [`Iterator`] it never ends with a valid configuration whose target
/// range is reachable; it ends (`None`) after [`MAX_ATTEMPTS`] consecutive
/// failed draws otherwise.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: ChaCha8Rng,
    config: GeneratorConfig,
}

impl Generator {
    /// A generator with the default configuration on stream 0 of `seed`.
    pub fn new(seed: u64) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            config: GeneratorConfig::default(),
        }
    }

    /// A generator with `config` on ChaCha stream `stream` of `seed`.
    pub fn with_config(
        seed: u64,
        stream: u64,
        config: GeneratorConfig,
    ) -> Result<Generator, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Ok(Generator { rng, config })
    }

    /// The configuration in use.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// One draw of `count` fresh numbers combined at random; `None` if the
    /// result misses the target range or a step is invalid.
    fn attempt(&mut self, count: usize) -> Option<CountdownInstance> {
        let c = &self.config;
        let nums: Vec<u32> = (0..count)
            .map(|_| self.rng.random_range(c.min_num..=c.max_num))
            .collect();
        let mut pool: Vec<u64> = nums.iter().map(|&n| u64::from(n)).collect();
        while pool.len() > 1 {
            let i = self.rng.random_range(0..pool.len());
            let a = pool.swap_remove(i);
            let j = self.rng.random_range(0..pool.len());
            let b = pool.swap_remove(j);
            let (hi, lo) = (a.max(b), a.min(b));
            let value = match Op::ALL[self.rng.random_range(0..4)] {
                Op::Add => hi.checked_add(lo)?,
                Op::Sub => Some(hi - lo).filter(|&v| v > 0)?,
                Op::Mul => hi.checked_mul(lo)?,
                Op::Div => Some(hi / lo).filter(|_| hi % lo == 0)?,
            };
            pool.push(value);
        }
        let target = u32::try_from(pool[0]).ok()?;
        (c.min_target..=c.max_target)
            .contains(&target)
            .then_some(CountdownInstance { nums, target })
    }
}

impl Iterator for Generator {
    type Item = CountdownInstance;

    fn next(&mut self) -> Option<CountdownInstance> {
        // The count is drawn once per instance, so it stays uniform even
        // though larger counts miss the target range more often.
        let count = self
            .rng
            .random_range(self.config.min_count..=self.config.max_count);
        (0..MAX_ATTEMPTS).find_map(|_| self.attempt(count))
    }
}

/// The first `n` instances of the default generator for `seed` (duplicates
/// included).
pub fn generate(seed: u64, n: usize) -> Vec<CountdownInstance> {
    Generator::new(seed).take(n).collect()
}

/// Disjoint train and test sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits {
    /// Training instances (no two equal).
    pub train: Vec<CountdownInstance>,
    /// Test instances (no two equal, none equal to a training instance).
    pub test: Vec<CountdownInstance>,
}

/// Default-configuration splits of the paper's sizes (20,000 and 512).
pub fn default_splits(seed: u64) -> Splits {
    splits(seed, DEFAULT_TRAIN_SIZE, DEFAULT_TEST_SIZE)
}

/// Default-configuration splits of the given sizes: train from stream 0 and
/// test from stream 1 of `seed`, skipping any instance equal to an earlier
/// one (see the module docs).
pub fn splits(seed: u64, train_size: usize, test_size: usize) -> Splits {
    splits_with_config(seed, train_size, test_size, GeneratorConfig::default())
        .expect("the default config is valid")
}

/// [`splits`] with a custom configuration. The sets may come out smaller
/// than asked if the configuration's instance space runs out (the generator
/// gives up after [`MAX_ATTEMPTS`] consecutive draws without a new
/// instance).
pub fn splits_with_config(
    seed: u64,
    train_size: usize,
    test_size: usize,
    config: GeneratorConfig,
) -> Result<Splits, ConfigError> {
    let mut seen = HashSet::new();
    let mut take_unique = |stream: u64, size: usize| -> Result<_, ConfigError> {
        let mut generator = Generator::with_config(seed, stream, config.clone())?;
        let mut out = Vec::with_capacity(size);
        let mut misses = 0;
        while out.len() < size && misses < MAX_ATTEMPTS {
            let Some(instance) = generator.next() else {
                break;
            };
            if seen.insert(instance.key()) {
                out.push(instance);
                misses = 0;
            } else {
                misses += 1;
            }
        }
        Ok(out)
    };
    let train = take_unique(0, train_size)?;
    let test = take_unique(1, test_size)?;
    Ok(Splits { train, test })
}

/// An expression over exactly `nums` (each once) whose exact value is
/// `target`, or `None` if there is none.
///
/// Searches every expression tree: it repeatedly replaces two entries of the
/// pool by `a + b`, `a * b`, `a - b`, `b - a`, `a / b` or `b / a` in exact
/// rational arithmetic (skipping division by zero and overflow). The cost
/// grows super-exponentially with the count (about 3,900 leaves for 4
/// numbers, 1.1 million for 6); fine up to 6 numbers. The result is printed
/// with minimal parentheses and always verifies as
/// [`Outcome::Correct`] with [`crate::verify::countdown::check_expression`].
pub fn solve(nums: &[u32], target: u32) -> Option<String> {
    if nums.is_empty() {
        return None;
    }
    let goal = Rational::from(target);
    let mut nodes: Vec<Node> = nums.iter().map(|&n| Node::Leaf(n)).collect();
    let pool: Vec<(Rational, usize)> = nums
        .iter()
        .enumerate()
        .map(|(i, &n)| (Rational::from(n), i))
        .collect();
    let root = search(pool, goal, &mut nodes)?;
    let minimal = render(&nodes, root, true);
    if verifier::check_expression(&minimal, nums, target) == Outcome::Correct {
        return Some(minimal);
    }
    // Re-association can overflow where the found tree did not; fall back to
    // the tree exactly as found.
    Some(render(&nodes, root, false))
}

#[derive(Clone, Copy, Debug)]
enum Node {
    Leaf(u32),
    Bin(Op, usize, usize),
}

fn search(pool: Vec<(Rational, usize)>, goal: Rational, nodes: &mut Vec<Node>) -> Option<usize> {
    if pool.len() == 1 {
        return (pool[0].0 == goal).then_some(pool[0].1);
    }
    for i in 0..pool.len() {
        for j in i + 1..pool.len() {
            let (a, ia) = pool[i];
            let (b, ib) = pool[j];
            let candidates = [
                (Op::Add, a, b, ia, ib),
                (Op::Mul, a, b, ia, ib),
                (Op::Sub, a, b, ia, ib),
                (Op::Sub, b, a, ib, ia),
                (Op::Div, a, b, ia, ib),
                (Op::Div, b, a, ib, ia),
            ];
            for (op, x, y, ix, iy) in candidates {
                let Some(value) = op.apply(x, y) else {
                    continue;
                };
                let mark = nodes.len();
                nodes.push(Node::Bin(op, ix, iy));
                // The result takes the first operand's place, so solutions
                // read in the order the numbers were given where possible.
                let mut next = pool.clone();
                next[i] = (value, mark);
                next.remove(j);
                if let Some(root) = search(next, goal, nodes) {
                    return Some(root);
                }
                nodes.truncate(mark);
            }
        }
    }
    None
}

/// Prints the tree at `root`, with minimal parentheses or fully
/// parenthesised.
fn render(nodes: &[Node], root: usize, minimal: bool) -> String {
    fn go(nodes: &[Node], at: usize, minimal: bool) -> (String, u8) {
        match nodes[at] {
            Node::Leaf(n) => (n.to_string(), 3),
            Node::Bin(op, l, r) => {
                let (a, b) = (go(nodes, l, minimal), go(nodes, r, minimal));
                if minimal {
                    (join(op, a, b), op.precedence())
                } else {
                    (format!("({} {} {})", a.0, op.symbol(), b.0), 3)
                }
            }
        }
    }
    let (text, _) = go(nodes, root, minimal);
    match (
        minimal,
        text.strip_prefix('(').and_then(|t| t.strip_suffix(')')),
    ) {
        // Drop only the outermost pair added by the full form.
        (false, Some(inner)) if matches!(nodes[root], Node::Bin(..)) => inner.to_string(),
        _ => text,
    }
}
