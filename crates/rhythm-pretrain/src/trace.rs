//! Synthetic Countdown search traces for supervised pretraining.
//!
//! A trace is the response a small model is taught to write after a
//! [`PromptStyle::Compact`](rhythm_rl::tasks::countdown::PromptStyle::Compact)
//! prompt: a `<think>` section with one line per attempted path, where a
//! path combines two numbers of the pool at a time (`a+b=c`, larger minus
//! smaller, exact division larger by smaller, every intermediate a positive
//! integer) until one value is left. Failed paths end in ` no`; the last
//! line reaches the target. Then the answer expression (minimal
//! parentheses, no spaces) and the end-of-text token:
//!
//! ```text
//! nums: 19 36 55 7 target: 65
//! <think>
//! 19+36=55 55-7=48 55+48=103 no
//! 55-19=36 36*7=252 252/36=7 no
//! 19-7=12 36+12=48 ...
//! </think>
//! <answer>55+19-7*...</answer><|endoftext|>
//! ```
//!
//! Traces are a pure function of the instance, the number of dead ends and
//! the random generator passed in, so a seeded generator makes them
//! deterministic.

use rand::seq::SliceRandom;
use rand::Rng;

use rhythm_rl::tasks::countdown::CountdownInstance;
use rhythm_rl::verify::countdown::Op;

/// The end-of-text token that closes every trace (also padding).
pub const EOS: &str = "<|endoftext|>";

/// One combination step `a op b = value` of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Left operand (the larger one for `-` and `/`).
    pub a: u64,
    /// The operator.
    pub op: Op,
    /// Right operand.
    pub b: u64,
    /// The result.
    pub value: u64,
}

impl Step {
    /// `a op b = value` without spaces, e.g. `55-7=48`.
    pub fn text(&self) -> String {
        format!("{}{}{}={}", self.a, self.op.symbol(), self.b, self.value)
    }
}

/// The integer steps allowed on two pool entries, in a fixed order:
/// sum, difference (larger minus smaller, if positive), product, exact
/// quotient (larger by smaller).
fn moves(x: u64, y: u64) -> Vec<Step> {
    let (hi, lo) = (x.max(y), x.min(y));
    let mut out = vec![Step {
        a: x,
        op: Op::Add,
        b: y,
        value: x + y,
    }];
    if hi > lo {
        out.push(Step {
            a: hi,
            op: Op::Sub,
            b: lo,
            value: hi - lo,
        });
    }
    out.push(Step {
        a: x,
        op: Op::Mul,
        b: y,
        value: x * y,
    });
    if lo > 1 && hi.is_multiple_of(lo) {
        out.push(Step {
            a: hi,
            op: Op::Div,
            b: lo,
            value: hi / lo,
        });
    }
    out
}

/// A pool entry: its value and the expression that made it (with the
/// precedence of its top operator, 3 for a literal).
#[derive(Clone, Debug)]
struct Entry {
    value: u64,
    expr: String,
    prec: u8,
}

/// `a op b` without spaces, parenthesised only where needed.
fn join(op: Op, a: &Entry, b: &Entry) -> String {
    let p = op.precedence();
    let left = if a.prec < p {
        format!("({})", a.expr)
    } else {
        a.expr.clone()
    };
    let right = if b.prec < p || (b.prec == p && matches!(op, Op::Sub | Op::Div)) {
        format!("({})", b.expr)
    } else {
        b.expr.clone()
    };
    format!("{left}{}{right}", op.symbol())
}

/// Applies `step` to the entries at `i` and `j` of `pool` (the result
/// takes the lower index's place).
fn apply(pool: &[Entry], i: usize, j: usize, step: Step) -> Vec<Entry> {
    let (ei, ej) = (&pool[i], &pool[j]);
    let (ea, eb) = if step.a == ei.value && (step.b == ej.value) {
        (ei, ej)
    } else {
        (ej, ei)
    };
    let entry = Entry {
        value: step.value,
        expr: join(step.op, ea, eb),
        prec: step.op.precedence(),
    };
    let mut next = pool.to_vec();
    next[i] = entry;
    next.remove(j);
    next
}

fn leaves(nums: &[u32]) -> Vec<Entry> {
    nums.iter()
        .map(|&n| Entry {
            value: u64::from(n),
            expr: n.to_string(),
            prec: 3,
        })
        .collect()
}

/// All `(i, j, step)` moves on a pool, pairs `i < j`.
fn all_moves(pool: &[Entry]) -> Vec<(usize, usize, Step)> {
    let mut out = Vec::new();
    for i in 0..pool.len() {
        for j in i + 1..pool.len() {
            for s in moves(pool[i].value, pool[j].value) {
                out.push((i, j, s));
            }
        }
    }
    out
}

fn line(steps: &[Step]) -> String {
    steps.iter().map(Step::text).collect::<Vec<_>>().join(" ")
}

/// One supervised example: prompt and response text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// The compact prompt, `nums: ... target: T\n`.
    pub prompt: String,
    /// `<think>\n` lines `</think>\n<answer>EXPR</answer><|endoftext|>`.
    pub response: String,
    /// The answer expression.
    pub answer: String,
    /// How many failed lines precede the successful one.
    pub dead_ends: usize,
}

/// Largest intermediate value a path may produce: moves whose result has
/// more than four digits are not tried (the generator's targets have at most
/// three).
pub const MAX_VALUE: u64 = 9_999;

/// Search orders tried per instance by [`trace`] before it gives up.
pub const ORDERS: usize = 8;

/// Depth-first search over integer moves, each node's moves in an order
/// shuffled by `rng`, writing one line per complete path (leaf) visited.
/// Stops at the first path reaching `target` (returns its lines, the last
/// one successful, and its expression) or after `max_dead_ends + 1` failed
/// paths (returns `None`).
fn search<R: Rng>(
    nums: &[u32],
    target: u32,
    max_dead_ends: usize,
    rng: &mut R,
) -> Option<(Vec<Vec<Step>>, String)> {
    struct State<'a, R> {
        target: u64,
        budget: usize,
        steps: Vec<Step>,
        lines: Vec<Vec<Step>>,
        rng: &'a mut R,
    }
    /// `Some(Some(expr))`: found; `Some(None)`: budget spent; `None`: go on.
    fn dfs<R: Rng>(pool: Vec<Entry>, st: &mut State<'_, R>) -> Option<Option<String>> {
        if pool.len() == 1 {
            st.lines.push(st.steps.clone());
            if pool[0].value == st.target {
                return Some(Some(pool[0].expr.clone()));
            }
            if st.lines.len() > st.budget {
                return Some(None);
            }
            return None;
        }
        let mut options: Vec<_> = all_moves(&pool)
            .into_iter()
            .filter(|(_, _, s)| s.value <= MAX_VALUE)
            .collect();
        options.shuffle(st.rng);
        for (i, j, s) in options {
            st.steps.push(s);
            let r = dfs(apply(&pool, i, j, s), st);
            st.steps.pop();
            if r.is_some() {
                return r;
            }
        }
        None
    }
    let mut st = State {
        target: u64::from(target),
        budget: max_dead_ends,
        steps: Vec::new(),
        lines: Vec::new(),
        rng,
    };
    let expr = dfs(leaves(nums), &mut st)??;
    Some((st.lines, expr))
}

/// A random successful path (depth-first search over integer moves in an
/// order shuffled by `rng`, intermediates at most [`MAX_VALUE`]): its steps
/// and its answer expression.
pub fn solve_path<R: Rng>(nums: &[u32], target: u32, rng: &mut R) -> Option<(Vec<Step>, String)> {
    let (mut lines, expr) = search(nums, target, usize::MAX, rng)?;
    Some((lines.pop()?, expr))
}

/// Builds the search trace of `inst`: the lines of a depth-first search in a
/// random order (consecutive lines share the steps they have in common, as
/// the search backtracks), each failed path ending in ` no`, the last line
/// reaching the target, then the answer. Only orders that succeed within
/// `max_dead_ends` failed paths are kept: up to [`ORDERS`] random orders are
/// tried, and `None` is returned if none does (or if no path of
/// positive-integer steps reaches the target). So the traces teach a search
/// that checks each path against the target and backtracks, with a proposal
/// order slanted towards paths that work.
pub fn trace<R: Rng>(inst: &CountdownInstance, max_dead_ends: usize, rng: &mut R) -> Option<Trace> {
    let (lines, answer) =
        (0..ORDERS).find_map(|_| search(&inst.nums, inst.target, max_dead_ends, rng))?;
    let n_dead = lines.len() - 1;
    let text: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(k, l)| {
            if k < n_dead {
                format!("{} no", line(l))
            } else {
                line(l)
            }
        })
        .collect();
    let prompt = inst.prompt(rhythm_rl::tasks::countdown::PromptStyle::Compact);
    let response = format!(
        "<think>\n{}\n</think>\n<answer>{answer}</answer>{EOS}",
        text.join("\n")
    );
    Some(Trace {
        prompt,
        response,
        answer,
        dead_ends: n_dead,
    })
}
