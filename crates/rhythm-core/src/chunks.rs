//! The sawtooth: chunk segmentation of SPEC section 11.

/// Chunk onsets (offsets into the response, ascending).
///
/// An onset is a local WAAD maximum (`WAAD[t] >= WAAD[t-1]` where `t-1` is in
/// the response, and `WAAD[t] > WAAD[t+1]`) whose drop `WAAD[t] - WAAD[t+1]`
/// is at least `tau_delta`. The first response position always opens a chunk.
pub fn chunk_onsets(waad: &[f64], tau_delta: f64) -> Vec<usize> {
    let n = waad.len();
    let mut onsets = Vec::new();
    if n == 0 {
        return onsets;
    }
    onsets.push(0);
    for t in 1..n.saturating_sub(1) {
        let rising = waad[t] >= waad[t - 1];
        let drop = waad[t] - waad[t + 1];
        if rising && drop > 0.0 && drop >= tau_delta {
            onsets.push(t);
        }
    }
    // Position 0 can itself be a local maximum; it already opens a chunk.
    onsets
}

/// The chunk number of every response offset: a chunk runs from its onset to
/// the position before the next onset.
pub fn chunk_ids(waad: &[f64], tau_delta: f64) -> Vec<usize> {
    let onsets = chunk_onsets(waad, tau_delta);
    let mut ids = vec![0; waad.len()];
    let mut c = 0;
    for (t, id) in ids.iter_mut().enumerate() {
        if c + 1 < onsets.len() && onsets[c + 1] == t {
            c += 1;
        }
        *id = c;
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sawtooth_by_hand() {
        // WAAD:  1  3  2  2  5  1  1
        // t=1: 3 >= 1 and 3 > 2, drop 1;  t=4: 5 >= 2 and 5 > 1, drop 4.
        // t=3: 2 >= 2 but 2 > 5 fails. t=6 is last (no t+1).
        let w = [1.0, 3.0, 2.0, 2.0, 5.0, 1.0, 1.0];
        assert_eq!(chunk_onsets(&w, 1.0), vec![0, 1, 4]);
        // tau = 2: only the drop of 4 qualifies.
        assert_eq!(chunk_onsets(&w, 2.0), vec![0, 4]);
        assert_eq!(chunk_ids(&w, 2.0), vec![0, 0, 0, 0, 1, 1, 1]);
        assert_eq!(chunk_ids(&w, 1.0), vec![0, 1, 1, 1, 2, 2, 2]);
    }
}
