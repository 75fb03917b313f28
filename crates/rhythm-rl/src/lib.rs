//! Tasks, verifiers and GRPO training with rhythm credit shaping.
//!
//! This crate holds everything between a policy model ([`rhythm_model`]) and
//! the attention-based credit math ([`rhythm_core`]) that reinforcement
//! learning needs: the problems to train on, the rules that score a
//! response, and the loop that turns scores into updates, following Li et
//! al. (2025), "Attention Illuminates LLM Reasoning".
//!
//! **Tasks** ([`tasks`]) are the problems. [`tasks::countdown`] generates
//! TinyZero-style Countdown instances (3 or 4 numbers and a target that is
//! always reachable) deterministically from a seed, splits them into
//! disjoint train and test sets of the paper's sizes (20,000 and 512),
//! renders them as prompts in a few styles, and solves them exhaustively.
//! Math and multiple-choice problems come from users' own JSONL or parquet
//! files in TRL's standard or conversational formats ([`data`]), which are
//! read strictly: a bad row is reported with its file and line (or row)
//! number. [`tasks::Task`] puts the three kinds behind one
//! prompt-and-reward interface.
//!
//! **Verifiers** ([`verify`]) are pure, panic-free functions from a response
//! and a reference to a reward. They never hand model output to a
//! general-purpose evaluator: Countdown answers are parsed by a small
//! recursive-descent parser over exactly the allowed grammar and evaluated in
//! exact, overflow-checked rational arithmetic ([`verify::Rational`]); math
//! answers are compared numerically or as normalised LaTeX; multiple-choice
//! answers by their letter. Each is linear in the response and guarded
//! against hostile input (megabyte strings, deep nesting, huge numbers).
//!
//! **GRPO** lives in [`grpo`] (the clipped loss with shaped advantages and
//! its token weights), [`trainer`] (rollout, the one probe pass per
//! response that yields `logp_old`, entropy and the streamed rhythm,
//! `gamma`, the update), [`config`] (the run's [`config::TrainConfig`],
//! TOML and flags), [`metrics`] (`metrics.jsonl`: the step record and its
//! one reader), [`checkpoint`] (Hugging Face checkpoints with optimizer
//! state and a trainer state, exact resume) and [`eval`] (greedy pass@1 and
//! sampled avg@k with every instance kept). The training pieces that are not
//! RL (AdamW, the learning-rate schedule, crash-consistent files and run
//! directories, `metrics.jsonl`, seeds) come from the toolkit
//! [`rhythm_train`], which supervised pretraining (`rhythm-pretrain`)
//! shares.
//!
//! "SPEC section N" in these docs is section N of the project's specification,
//! `docs/spec.md` in the repository: the binding definitions this code follows.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset;
pub mod eval;
pub mod grpo;
pub mod metrics;
pub mod tasks;
pub mod trainer;
pub mod verify;
