//! Loads a checkpoint and saves it again (development aid for checking that
//! transformers reads what `save_pretrained` writes):
//!
//! ```text
//! cargo run -p rhythm-model --example resave -- SRC DST [f32|bf16|f16]
//! ```

use rhythm_model::{DType, Pretrained};

fn main() -> rhythm_model::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = (&args[1], &args[2]);
    let dtype = match args.get(3).map(String::as_str) {
        Some("bf16") => DType::BF16,
        Some("f16") => DType::F16,
        _ => DType::F32,
    };
    Pretrained::load(src)?.save(dst, dtype)
}
