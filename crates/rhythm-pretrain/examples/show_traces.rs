//! Prints sample pretraining traces and their length statistics:
//! `cargo run --release -p rhythm-pretrain --example show_traces [MAX_DEAD_ENDS]`.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhythm_pretrain::{self as pretrain, trace};
use rhythm_rl::tasks::countdown;

fn main() {
    let dead: usize = std::env::args()
        .nth(1)
        .map_or(6, |s| s.parse().expect("MAX_DEAD_ENDS: an integer"));
    let tok = pretrain::tokenizer::build();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let insts = countdown::generate(1, 2000);
    let (mut some, mut lens, mut by_n) = (0, Vec::new(), [0usize; 5]);
    for (k, inst) in insts.iter().enumerate() {
        if let Some(t) = trace::trace(inst, dead, &mut rng) {
            some += 1;
            by_n[inst.nums.len()] += 1;
            let text = format!("{}{}", t.prompt, t.response);
            lens.push(pretrain::encode(&tok, &text).expect("encodes").len());
            if k < 4 {
                println!("{text}\n");
            }
        }
    }
    lens.sort_unstable();
    println!(
        "traces {some}/2000 (3 nums {}, 4 nums {}), tokens median {} p90 {} max {}",
        by_n[3],
        by_n[4],
        lens[lens.len() / 2],
        lens[lens.len() * 9 / 10],
        lens[lens.len() - 1]
    );
}
