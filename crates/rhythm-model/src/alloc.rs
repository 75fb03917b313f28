//! Allocator tuning for the large, short-lived activation buffers of the
//! inference paths.
//!
//! glibc serves allocations above its mmap threshold with fresh `mmap`s
//! and returns them on free, so every block of scores or logits costs page
//! faults and page zeroing (about 10% of a long probe). Raising the mmap and
//! trim thresholds lets freed buffers be reused instead.

use std::sync::Once;

static TUNE: Once = Once::new();

/// Raises glibc's mmap and trim thresholds (once per process; a no-op on
/// other platforms). Called by the probe, [`crate::Model::forward_inference`]
/// and the hand-written training forward (so the update's backward too);
/// binaries may call it at start-up to cover generation too. Freed memory up
/// to the trim threshold (1 GiB) stays mapped for reuse.
pub fn tune_allocator() {
    TUNE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only adjusts allocator parameters; it is
            // thread-safe in glibc and takes no pointers.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 1 << 30);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        }
    });
}
