//! Matmul throughput check (development aid).
use candle_core::{DType, Device, Tensor};
use std::time::Instant;
fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    for (m, k, n) in [
        (2048, 1024, 3072),
        (2048, 3072, 1024),
        (2048, 1024, 6144),
        (64, 1024, 151936),
    ] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let wt = w.t()?.contiguous()?;
        for (name, rhs) in [("W^T view", w.t()?), ("W^T contiguous", wt.clone())] {
            let _ = a.matmul(&rhs)?;
            let t0 = Instant::now();
            let reps = 3;
            for _ in 0..reps {
                let _ = a.matmul(&rhs)?;
            }
            let s = t0.elapsed().as_secs_f64() / reps as f64;
            println!(
                "{m}x{k}x{n} {name}: {:.1} ms, {:.1} GFLOP/s",
                s * 1e3,
                2.0 * (m * k * n) as f64 / s / 1e9
            );
        }
    }
    let _ = DType::F32;
    Ok(())
}
