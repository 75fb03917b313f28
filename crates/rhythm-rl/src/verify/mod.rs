//! Verifiers: turn a model's response into a reward (SPEC section 13).
//!
//! Each verifier is a pure function of the response text and the task's
//! reference, runs in time linear in the response, and never panics, whatever
//! the model writes:
//!
//! * [`countdown`]: the expression in the last `<answer>...</answer>`,
//!   parsed by the project's own recursive-descent parser and evaluated in
//!   exact rational arithmetic; a structured [`countdown::Outcome`] and
//!   [`countdown::reward`] with a configurable format score;
//! * [`math`]: the last balanced `\boxed{...}` against a reference (GSM8K's
//!   `#### x` accepted), compared numerically where both sides are numbers
//!   and as normalised LaTeX otherwise;
//! * [`choice`]: the chosen letter of a multiple-choice question against the
//!   key.
//!
//! [`Rational`] is the exact arithmetic they share with the Countdown solver.

pub mod choice;
pub mod countdown;
pub mod math;
pub mod rational;

pub use rational::Rational;
