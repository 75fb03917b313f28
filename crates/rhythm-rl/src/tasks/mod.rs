//! Tasks: the problems a policy is trained and evaluated on.
//!
//! [`countdown`] generates TinyZero-style Countdown instances, their splits
//! and prompts, and solves them exhaustively. Math and multiple-choice
//! problems come from users' own data ([`crate::dataset`]); [`Task`] gathers
//! the three kinds behind one prompt-and-reward interface.

pub mod countdown;

pub use countdown::{CountdownInstance, PromptStyle};

use rhythm_model::{ChatSettings, Pretrained, Prompt};

use crate::verify;

/// One problem of any supported kind, with what is needed to score a
/// response to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Task {
    /// A Countdown instance; its prompt is generated in a [`PromptStyle`].
    Countdown(CountdownInstance),
    /// A math problem scored by [`verify::math`].
    Math {
        /// The prompt: text used verbatim, or messages for the chat
        /// template.
        prompt: Prompt,
        /// The reference answer (a bare answer, GSM8K's `... #### x` or a
        /// solution with a `\boxed{}` answer).
        answer: String,
    },
    /// A multiple-choice question scored by [`verify::choice`].
    Choice {
        /// The prompt (question and options): text used verbatim, or
        /// messages for the chat template.
        prompt: Prompt,
        /// The key's letter, e.g. `"B"`.
        key: String,
    },
}

impl Task {
    /// The prompt text. `style` applies to Countdown only; the other kinds
    /// return their stored prompt (a conversation's message contents, one
    /// per line).
    pub fn prompt(&self, style: PromptStyle) -> String {
        match self {
            Task::Countdown(instance) => instance.prompt(style),
            Task::Math { prompt, .. } | Task::Choice { prompt, .. } => prompt.display_text(),
        }
    }

    /// The prompt as given to the model: text, or messages for the chat
    /// template.
    pub fn input(&self, style: PromptStyle) -> Prompt {
        match self {
            Task::Countdown(instance) => Prompt::Text(instance.prompt(style)),
            Task::Math { prompt, .. } | Task::Choice { prompt, .. } => prompt.clone(),
        }
    }

    /// The prompt's token ids for `model`, through its chat template as
    /// `chat` says (see [`ChatSettings::encode`]).
    pub fn encode(
        &self,
        model: &Pretrained,
        style: PromptStyle,
        chat: &ChatSettings,
    ) -> rhythm_model::Result<Vec<u32>> {
        chat.encode(model, &self.input(style))
    }

    /// The reward for `response`: 1 if right; for Countdown, `format_score`
    /// for a well-formed wrong answer; 0 otherwise.
    pub fn reward(&self, response: &str, format_score: f32) -> f32 {
        match self {
            Task::Countdown(instance) => instance.reward(response, format_score),
            Task::Math { answer, .. } => verify::math::reward(response, answer),
            Task::Choice { key, .. } => verify::choice::reward(response, key),
        }
    }
}
