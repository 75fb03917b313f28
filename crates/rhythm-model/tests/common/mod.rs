//! Tiny random configurations shared by the tests.
#![allow(dead_code)]

use std::path::Path;

use rhythm_model::Config;

/// A tiny config of `family` ("qwen3", "qwen2", "llama") exercising the
/// family's switches: GQA, explicit head_dim, biases, llama3 rope, ties.
pub fn tiny(family: &str) -> Config {
    let json = match family {
        "qwen3" => {
            r#"{"model_type":"qwen3","vocab_size":40,"hidden_size":16,"intermediate_size":24,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":6,
            "max_position_embeddings":96,"rms_norm_eps":1e-6,"rope_theta":10000.0,
            "tie_word_embeddings":true,"attention_bias":true,"hidden_act":"silu","eos_token_id":0}"#
        }
        "qwen2" => {
            r#"{"model_type":"qwen2","vocab_size":40,"hidden_size":16,"intermediate_size":24,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":1,
            "max_position_embeddings":96,"rms_norm_eps":1e-6,"rope_theta":10000.0,
            "tie_word_embeddings":false,"hidden_act":"silu","use_sliding_window":false}"#
        }
        "llama" => {
            r#"{"model_type":"llama","vocab_size":40,"hidden_size":16,"intermediate_size":24,
            "num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":2,
            "max_position_embeddings":96,"rms_norm_eps":1e-5,"rope_theta":500000.0,
            "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":32},
            "tie_word_embeddings":false,"attention_bias":true,"mlp_bias":true,"hidden_act":"silu",
            "some_unknown_field":[1,2,3]}"#
        }
        _ => panic!("unknown family"),
    };
    Config::from_json_str(json, Path::new("config.json")).unwrap()
}

/// Deterministic pseudo-random ids in `1..vocab`.
pub fn ids(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + ((x >> 33) as usize % (vocab - 1)) as u32
        })
        .collect()
}
