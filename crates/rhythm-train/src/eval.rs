//! The pieces of periodic evaluation that every training loop shares:
//! greedy decoding of many prompts in fixed-size batches, and the response
//! without its end-of-sequence token. Scoring is the caller's (a verifier
//! of its task).

use rhythm_model::{Generation, Model, SamplingParams};

/// Greedy responses to `prompts`, decoded `batch_size` at a time (at least
/// 1), stopping at any of `eos`; `budget` gives the most new tokens of a
/// batch from its prompts (e.g. a fixed number, or the context left after
/// the longest prompt). Responses come back in prompt order.
pub fn greedy_in_batches(
    model: &Model,
    prompts: &[Vec<u32>],
    batch_size: usize,
    eos: &[u32],
    budget: impl Fn(&[Vec<u32>]) -> usize,
) -> rhythm_model::Result<Vec<Generation>> {
    let mut out = Vec::with_capacity(prompts.len());
    for chunk in prompts.chunks(batch_size.max(1)) {
        let params = SamplingParams {
            eos_token_ids: eos.to_vec(),
            ..SamplingParams::greedy(budget(chunk))
        };
        out.extend(model.generate_batch(chunk, &params)?);
    }
    Ok(out)
}

/// `tokens` without a final end-of-sequence token (one of `eos`).
///
/// ```
/// use rhythm_train::eval::strip_eos;
/// assert_eq!(strip_eos(&[5, 6, 0], &[0]), &[5, 6]);
/// assert_eq!(strip_eos(&[5, 0, 6], &[0]), &[5, 0, 6]);
/// ```
pub fn strip_eos<'a>(tokens: &'a [u32], eos: &[u32]) -> &'a [u32] {
    match tokens.split_last() {
        Some((last, rest)) if eos.contains(last) => rest,
        _ => tokens,
    }
}
