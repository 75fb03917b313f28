//! Seed derivation: every random choice of a training step is drawn from a
//! ChaCha8 generator seeded by [`mix`] of the run's seed and the step (and
//! an index within the step), so the step number alone restores the random
//! state of a resumed run.

/// splitmix64 of `a` and `b`: a well-mixed seed for the pair `(a, b)`.
///
/// ```
/// use rhythm_train::mix;
/// assert_ne!(mix(0, 1), mix(1, 0));
/// assert_eq!(mix(7, 3), mix(7, 3));
/// ```
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
