//! Random tiny models: gradients, caching, sampling, probe modes, saving.

mod common;

use candle_core::{DType, Device, Tensor, Var};
use rhythm_core::{HeadSummary, SummaryConfig};
use rhythm_model::{save_pretrained, FinishReason, Model, Pretrained, ProbeTuning, SamplingParams};

const SCALE: f64 = 5.0;
const FAMILIES: [&str; 3] = ["qwen3", "qwen2", "llama"];

fn random(family: &str, seed: u64) -> (Model, candle_nn::VarMap) {
    Model::random(&common::tiny(family), seed, SCALE, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A scalar loss touching every path: left padding, every position's
/// next-token log-probability, weighted.
fn loss(m: &Model) -> Tensor {
    let dev = Device::Cpu;
    let a = common::ids(9, 40, 1);
    let mut b = common::ids(9, 40, 2);
    b[0] = 0;
    b[1] = 0;
    let ids = Tensor::new(vec![a, b], &dev).unwrap();
    let mask = Tensor::new(
        vec![vec![1u32; 9], [vec![0u32; 2], vec![1u32; 7]].concat()],
        &dev,
    )
    .unwrap();
    let lp = m.token_logprobs(&ids, Some(&mask)).unwrap();
    let w: Vec<f32> = (0..16).map(|i| 0.3 + (i as f32 * 0.37).sin()).collect();
    let w = Tensor::from_vec(w, (2, 8), &dev).unwrap();
    (lp * w).unwrap().sum_all().unwrap()
}

#[test]
fn gradients_match_finite_differences() {
    for family in FAMILIES {
        let (m, vm) = random(family, 7);
        let l = loss(&m);
        let grads = l.backward().unwrap();
        let vars = vm.data().lock().unwrap().clone();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        // Every variable receives a non-zero gradient (a fused op without
        // backward would leave some without one).
        for name in &names {
            let g = grads
                .get(vars[*name].as_tensor())
                .unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
            let gmax = flat(g).iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(gmax > 0.0, "{family}: zero gradient for {name}");
        }
        // One parameter of every kind (per layer 0 and the globals), two
        // elements each, against central differences.
        for name in names.iter().filter(|n| !n.contains("layers.1.")) {
            let var: &Var = &vars[*name];
            let g = flat(grads.get(var.as_tensor()).unwrap());
            let orig = var.as_tensor().copy().unwrap();
            let n = g.len();
            let mut picks = vec![n / 3, (2 * n) / 3 + 1];
            picks.retain(|&i| i < n);
            for i in picks {
                let eps = 1e-2f32;
                let mut v = flat(&orig);
                let x0 = v[i];
                v[i] = x0 + eps;
                var.set(&Tensor::from_vec(v.clone(), orig.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let lp = loss(&m).to_scalar::<f32>().unwrap() as f64;
                v[i] = x0 - eps;
                var.set(&Tensor::from_vec(v, orig.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let lm = loss(&m).to_scalar::<f32>().unwrap() as f64;
                var.set(&orig).unwrap();
                let fd = (lp - lm) / (2.0 * eps as f64);
                let an = g[i] as f64;
                assert!(
                    (fd - an).abs() <= 2e-2 * fd.abs().max(an.abs()) + 2e-3,
                    "{family} {name}[{i}]: finite difference {fd} vs autograd {an}"
                );
            }
        }
    }
}

#[test]
fn cached_generation_matches_full_recompute() {
    for family in FAMILIES {
        let (m, _) = random(family, 3);
        let prompt = common::ids(5, 40, 11);
        let out = m
            .generate(std::slice::from_ref(&prompt), &SamplingParams::greedy(10))
            .unwrap();
        let mut seq = prompt.clone();
        for _ in 0..10 {
            let t = Tensor::new(seq.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let lg = m.forward(&t).unwrap();
            let last = flat(&lg.get(0).unwrap().get(seq.len() - 1).unwrap());
            seq.push(rhythm_model::generate::argmax(&last));
        }
        assert_eq!(out[0].tokens, seq[5..], "{family}");
        // Chunked prefill equals one-shot prefill.
        let mut c1 = m.new_cache(20).unwrap();
        let a = flat(&m.forward_step(&seq[..12], &mut c1).unwrap());
        let mut c2 = m.new_cache(20).unwrap();
        m.forward_step(&seq[..4], &mut c2).unwrap();
        m.forward_step(&seq[4..9], &mut c2).unwrap();
        let b = flat(&m.forward_step(&seq[9..12], &mut c2).unwrap());
        assert!(max_abs(&a, &b) < 1e-4, "{family}");
        assert_eq!(c2.len(), 12);
    }
}

#[test]
fn sampling_is_seeded_and_honours_limits() {
    let (m, _) = random("qwen3", 5);
    let prompts = vec![common::ids(4, 40, 1), common::ids(6, 40, 2)];
    let p = SamplingParams {
        max_new_tokens: 12,
        temperature: 1.0,
        top_p: 0.9,
        top_k: 20,
        seed: 42,
        logprobs: true,
        ..Default::default()
    };
    let a = m.generate(&prompts, &p).unwrap();
    let b = m.generate(&prompts, &p).unwrap();
    assert_eq!(a, b);
    // Per-sequence streams: the second prompt alone (stream 1) is unchanged.
    let single = m.generate_one(&prompts[1], &p, 1).unwrap();
    assert_eq!(single, a[1]);
    for g in &a {
        assert_eq!(g.logprobs.len(), g.tokens.len());
        assert!(g.logprobs.iter().all(|&x| x <= 0.0 && x.is_finite()));
    }
    let c = m
        .generate(
            &prompts,
            &SamplingParams {
                seed: 43,
                ..p.clone()
            },
        )
        .unwrap();
    assert_ne!(a, c);
    // top_k = 1 is greedy.
    let k1 = m
        .generate(
            &prompts,
            &SamplingParams {
                top_k: 1,
                ..p.clone()
            },
        )
        .unwrap();
    let gr = m.generate(&prompts, &SamplingParams::greedy(12)).unwrap();
    for (x, y) in k1.iter().zip(&gr) {
        assert_eq!(x.tokens, y.tokens);
    }
    // EOS and stop tokens end a sequence and are kept.
    let first = gr[0].tokens[2];
    let e = m
        .generate(
            &prompts[..1],
            &SamplingParams {
                eos_token_ids: vec![first],
                ..SamplingParams::greedy(12)
            },
        )
        .unwrap();
    assert_eq!(
        e[0].tokens,
        gr[0].tokens[..=gr[0].tokens.iter().position(|&t| t == first).unwrap()]
    );
    assert_eq!(e[0].finish, FinishReason::Eos);
    let s = m
        .generate(
            &prompts[..1],
            &SamplingParams {
                stop_token_ids: vec![first],
                ..SamplingParams::greedy(12)
            },
        )
        .unwrap();
    assert_eq!(s[0].finish, FinishReason::Stop);
    assert_eq!(gr[0].finish, FinishReason::Length);
    assert_eq!(gr[0].tokens.len(), 12);
}

#[test]
fn streamed_probe_matches_captured_maps() {
    for family in FAMILIES {
        let (m, _) = random(family, 9);
        let ids = common::ids(70, 40, 5);
        let p = 20;
        let cfg = SummaryConfig {
            response_start: p,
            seq_len: ids.len(),
            window: 8,
            horizon: (4, 30),
            proximity: 5,
        };
        let layers = [0, 1];
        let cap = m.probe_captured(&ids, p, &layers, true).unwrap();
        // Every captured row is a causal distribution.
        for a in &cap.attn {
            let v = flat(a);
            let n = ids.len();
            for h in 0..m.num_heads() {
                for t in 0..n {
                    let row = &v[(h * n + t) * n..(h * n + t + 1) * n];
                    let s: f32 = row[..=t].iter().sum();
                    assert!((s - 1.0).abs() < 1e-4);
                    assert!(row[t + 1..].iter().all(|&x| x == 0.0));
                }
            }
        }
        let tuning = ProbeTuning {
            attn_block_rows: 16,
            logit_block_rows: 7,
        };
        let st = m.probe_streamed_tuned(&ids, &cfg, &layers, tuning).unwrap();
        assert_eq!(st.stats.logprobs.len(), ids.len() - p);
        for (i, (a, b)) in st
            .stats
            .logprobs
            .iter()
            .zip(&cap.stats.logprobs)
            .enumerate()
        {
            assert!((a - b).abs() < 1e-4, "{family} logprob {i}");
        }
        for sum in &st.summaries {
            let map = flat(&cap.attn[sum.layer]);
            let n = ids.len();
            let mut want = HeadSummary::new(sum.layer, sum.head, &cfg);
            for t in 0..n {
                want.push_row(t, &map[(sum.head * n + t) * n..(sum.head * n + t + 1) * n]);
            }
            for (x, y) in sum
                .waad()
                .iter()
                .zip(want.waad())
                .chain(sum.fai().iter().zip(&want.fai()))
            {
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1.0),
                    "{family}: {x} vs {y}"
                );
            }
        }
        // The probe's logits equal the differentiable forward's.
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let full = m.forward(&t).unwrap().squeeze(0).unwrap();
        assert!(max_abs(&flat(&full), &flat(cap.logits.as_ref().unwrap())) < 1e-4);
    }
}

#[test]
fn save_and_reload_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let (m, _) = random(family, 13);
        let ids = common::ids(12, 40, 3);
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let want = flat(&m.forward(&t).unwrap());
        let dir = tmp.path().join(family);
        save_pretrained(&m, &dir, DType::F32, None).unwrap();
        // Saving again replaces the directory atomically (no temp left over).
        save_pretrained(&m, &dir, DType::F32, None).unwrap();
        let entries: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            entries
                .iter()
                .all(|e| !e.to_string_lossy().starts_with('.')),
            "{entries:?}"
        );
        let back = Pretrained::load(&dir).unwrap();
        assert_eq!(flat(&back.model.forward(&t).unwrap()), want);
        // Unknown config fields survive.
        assert_eq!(
            back.model.config().extra.get("some_unknown_field"),
            m.config().extra.get("some_unknown_field")
        );
        // bf16 save is close; trainable load yields one Var per weight.
        let dir16 = tmp.path().join(format!("{family}-bf16"));
        save_pretrained(&back.model, &dir16, DType::BF16, Some(&dir)).unwrap();
        let opts = rhythm_model::LoadOptions {
            trainable: true,
            ..Default::default()
        };
        let b16 = Pretrained::load_with(&dir16, &opts).unwrap();
        assert_eq!(b16.model.config().torch_dtype.as_deref(), Some("bfloat16"));
        let vm = b16.varmap.as_ref().unwrap();
        assert_eq!(
            vm.all_vars().len(),
            rhythm_model::weight_specs(m.config()).len()
        );
        let got = flat(&b16.model.forward(&t).unwrap());
        let scale = want.iter().fold(1f32, |a, x| a.max(x.abs()));
        assert!(max_abs(&got, &want) < 0.1 * scale, "{family} bf16");
        // Gradients reach the loaded variables.
        let g = b16
            .model
            .forward(&t)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(vm.all_vars().iter().all(|v| g.get(v.as_tensor()).is_some()));
    }
}

#[test]
fn varmap_backed_varbuilder_builds_a_trainable_model() {
    let cfg = common::tiny("qwen3");
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let m = Model::new(&cfg, vb).unwrap();
    assert_eq!(vm.all_vars().len(), rhythm_model::weight_specs(&cfg).len());
    let t = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let g = m
        .forward(&t)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(vm.all_vars().iter().all(|v| g.get(v.as_tensor()).is_some()));
}

/// Which layers to probe is a user setting parsed once, as
/// `rhythm_core::Layers` (tested there); the probe sorts, de-duplicates and
/// checks the list it is given.
#[test]
fn probed_layers_are_sorted_deduplicated_and_checked() {
    let (m, _) = random(FAMILIES[0], 9);
    let ids = common::ids(30, 40, 5);
    let p = 10;
    let params = rhythm_core::Params::rl();
    let cfg = params.summary_config(p, ids.len());
    let st = m.probe_streamed(&ids, &cfg, &[1, 0, 1]).unwrap();
    assert_eq!(st.layers, vec![0, 1]);
    assert_eq!(st.summaries.len(), 2 * m.num_heads());
    let e = m
        .probe_streamed(&ids, &cfg, &[0, 9])
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 9 does not exist"), "{e}");
    let r = m
        .probe_response(&ids, p, &[1, 0], &params, Default::default())
        .unwrap();
    assert_eq!(r.entropy.len(), ids.len() - p);
    assert_eq!(r.summaries.len(), 2 * m.num_heads());
}

#[test]
fn inference_forward_matches_differentiable_forward() {
    for family in FAMILIES {
        let (m, _) = random(family, 21);
        let ids = common::ids(33, 40, 8);
        let fast = m.forward_inference(&ids).unwrap();
        let t = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let slow = m.forward(&t).unwrap().squeeze(0).unwrap();
        assert!(max_abs(&flat(&fast), &flat(&slow)) < 1e-4, "{family}");
    }
}

#[test]
fn batched_generation_matches_per_sequence() {
    for family in FAMILIES {
        let (m, _) = random(family, 17);
        let prompts = vec![
            common::ids(3, 40, 1),
            common::ids(9, 40, 2),
            common::ids(6, 40, 3),
        ];
        let greedy = SamplingParams {
            logprobs: true,
            ..SamplingParams::greedy(10)
        };
        let a = m.generate(&prompts, &greedy).unwrap();
        let b = m.generate_batch(&prompts, &greedy).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.tokens, y.tokens, "{family}");
            for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                assert!((p - q).abs() < 1e-4);
            }
        }
        // A row that stops early (EOS) does not disturb the others.
        let eos = a[0].tokens[1];
        let p = SamplingParams {
            eos_token_ids: vec![eos],
            ..greedy.clone()
        };
        let a = m.generate(&prompts, &p).unwrap();
        let b = m.generate_batch(&prompts, &p).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.tokens, x.finish), (&y.tokens, y.finish), "{family}");
        }
        assert_eq!(b[0].finish, rhythm_model::FinishReason::Eos);
        // Seeded sampling is reproducible.
        let s = SamplingParams {
            temperature: 0.8,
            top_p: 0.95,
            seed: 5,
            max_new_tokens: 8,
            ..Default::default()
        };
        assert_eq!(
            m.generate_batch(&prompts, &s).unwrap(),
            m.generate_batch(&prompts, &s).unwrap()
        );
    }
}

/// The decoder splits its rows between threads: the samples do not depend
/// on how many there are (the log-probabilities only in their last bits:
/// a GEMM's rounding depends on its row count).
#[test]
fn batched_generation_is_the_same_on_any_thread_count() {
    let (m, _) = random("qwen3", 23);
    let prompts: Vec<Vec<u32>> = (0..7).map(|i| common::ids(2 + i, 40, i as u64)).collect();
    let s = SamplingParams {
        temperature: 1.0,
        seed: 9,
        max_new_tokens: 12,
        logprobs: true,
        ..Default::default()
    };
    let on = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| m.generate_batch(&prompts, &s).unwrap())
    };
    let one = on(1);
    for t in [2, 3, 8] {
        for (a, b) in on(t).iter().zip(&one) {
            assert_eq!((&a.tokens, a.finish), (&b.tokens, b.finish), "{t} threads");
            for (p, q) in a.logprobs.iter().zip(&b.logprobs) {
                assert!((p - q).abs() < 1e-5, "{t} threads: {p} {q}");
            }
        }
    }
}

#[test]
fn config_spellings() {
    use rhythm_model::{Config, RopeScaling};
    // transformers 5 writes rope_parameters (and dtype) instead of
    // rope_theta / rope_scaling / torch_dtype.
    let json = r#"{"model_type":"llama","vocab_size":40,"hidden_size":16,"intermediate_size":24,
        "num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":64,
        "rope_parameters":{"rope_type":"llama3","rope_theta":5000.0,"factor":4.0,
        "low_freq_factor":1.0,"high_freq_factor":2.0,"original_max_position_embeddings":16},
        "dtype":"bfloat16","eos_token_id":[1,2]}"#;
    let c = Config::from_json_str(json, std::path::Path::new("config.json")).unwrap();
    assert_eq!(c.rope_theta(), 5000.0);
    assert!(matches!(c.rope_scaling(), RopeScaling::Llama3 { factor, .. } if factor == 4.0));
    assert_eq!(c.eos_ids(), vec![1, 2]);
    assert_eq!(c.num_kv_heads(), 2);
    assert_eq!(c.head_dim(), 8);
    // Fixture generation defaults.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/tiny-qwen2");
    let p = Pretrained::load(dir).unwrap();
    assert_eq!(p.eos_token_ids(), vec![0]);
    assert!(p.tokenizer.is_some());
}

#[test]
fn right_and_left_padding_match_unpadded_rows() {
    for family in FAMILIES {
        let (m, _) = random(family, 31);
        let a = common::ids(7, 40, 4);
        let b = common::ids(4, 40, 5);
        let single = |ids: &[u32]| {
            let t = Tensor::new(ids, &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            flat(&m.token_logprobs(&t, None).unwrap())
        };
        let (la, lb) = (single(&a), single(&b));
        // Right padding: b occupies columns 0..4.
        let ids = Tensor::new(
            vec![a.clone(), [b.clone(), vec![0; 3]].concat()],
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::new(
            vec![vec![1u8; 7], [vec![1u8; 4], vec![0; 3]].concat()],
            &Device::Cpu,
        )
        .unwrap();
        let lp = m
            .token_logprobs(&ids, Some(&mask))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(max_abs(&lp[0], &la) < 1e-4, "{family}");
        assert!(max_abs(&lp[1][..3], &lb) < 1e-4, "{family} right");
        // Left padding: b occupies columns 3..7.
        let ids = Tensor::new(
            vec![a.clone(), [vec![0; 3], b.clone()].concat()],
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::new(
            vec![vec![1u8; 7], [vec![0u8; 3], vec![1; 4]].concat()],
            &Device::Cpu,
        )
        .unwrap();
        let lp = m
            .token_logprobs(&ids, Some(&mask))
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(max_abs(&lp[1][3..], &lb) < 1e-4, "{family} left");
    }
}

/// With `logprobs`, every decoder (one sequence at a time, batched) also
/// returns each generated token's entropy, equal to the probe's `H[t]` and
/// log-probabilities at the same positions (the trainer's entropy column
/// reads the rollout's).
#[test]
fn generated_entropy_is_the_probes() {
    for family in FAMILIES {
        let (m, _) = random(family, 29);
        let prompts = vec![common::ids(4, 40, 1), common::ids(7, 40, 2)];
        let s = SamplingParams {
            temperature: 1.0,
            seed: 3,
            max_new_tokens: 9,
            logprobs: true,
            ..Default::default()
        };
        for gens in [
            m.generate(&prompts, &s).unwrap(),
            m.generate_batch(&prompts, &s).unwrap(),
        ] {
            for (p, g) in prompts.iter().zip(&gens) {
                assert_eq!(g.entropy.len(), g.tokens.len(), "{family}");
                let ids = [p.as_slice(), g.tokens.as_slice()].concat();
                let probed = m
                    .probe_response(
                        &ids,
                        p.len(),
                        &[],
                        &rhythm_core::Params::rl(),
                        Default::default(),
                    )
                    .unwrap();
                for t in 0..g.tokens.len() {
                    let (h, lp) = (probed.entropy[t], probed.logprobs[t]);
                    assert!(h > 0.0, "{family}: entropy {h}");
                    assert!((f64::from(g.entropy[t]) - h).abs() < 1e-4, "{family} t {t}");
                    assert!(
                        (f64::from(g.logprobs[t]) - lp).abs() < 1e-4,
                        "{family} t {t}"
                    );
                }
            }
        }
        // Without `logprobs`, neither is returned.
        let plain = SamplingParams {
            logprobs: false,
            ..s.clone()
        };
        assert!(m.generate_batch(&prompts, &plain).unwrap()[0]
            .entropy
            .is_empty());
    }
}

/// The decoder's vector attention (register-blocked scores and weighted
/// sums, query heads of a key/value head in pairs) on head sizes that fill
/// whole vectors (48, 64: three and four AVX-512 vectors, six and eight
/// AVX2 ones), an odd group (3 query heads a key/value head: a pair and a
/// single) and rows longer than one block of positions (64): the batched
/// decoder against the one-sequence candle path.
#[test]
fn vector_attention_of_the_decoder_matches_the_candle_path() {
    for (head_dim, heads, kv) in [(48, 6, 2), (64, 4, 2), (32, 3, 3)] {
        let json = format!(
            r#"{{"model_type":"qwen3","vocab_size":40,"hidden_size":32,"intermediate_size":48,
            "num_hidden_layers":2,"num_attention_heads":{heads},"num_key_value_heads":{kv},
            "head_dim":{head_dim},"max_position_embeddings":128,"rms_norm_eps":1e-6,
            "rope_theta":10000.0,"tie_word_embeddings":true,"hidden_act":"silu"}}"#
        );
        let cfg = rhythm_model::Config::from_json_str(&json, std::path::Path::new("config.json"))
            .unwrap();
        let (m, _) = Model::random(&cfg, 41, SCALE, &Device::Cpu).unwrap();
        let prompts = vec![common::ids(5, 40, 1), common::ids(11, 40, 2)];
        let greedy = SamplingParams {
            logprobs: true,
            ..SamplingParams::greedy(90)
        };
        let a = m.generate(&prompts, &greedy).unwrap();
        let b = m.generate_batch(&prompts, &greedy).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!(y.tokens.len() > 70, "{head_dim}: {}", y.tokens.len());
            assert_eq!(x.tokens, y.tokens, "head_dim {head_dim}");
            for (p, q) in x.logprobs.iter().zip(&y.logprobs) {
                assert!((p - q).abs() < 1e-4, "head_dim {head_dim}: {p} vs {q}");
            }
        }
    }
}

/// The sampler without top-k or top-p (no sort, no allocation) draws each
/// token with its tempered softmax probability and never a masked one
/// (`-inf` or NaN logits); top-k 2 keeps the two largest.
#[test]
fn sampler_frequencies_follow_the_tempered_softmax() {
    use rand::SeedableRng;
    let logits = [0.5f32, 2.0, f32::NEG_INFINITY, 1.0, f32::NAN, -1.0];
    let t = 0.7;
    let w: Vec<f64> = logits
        .iter()
        .map(|&x| {
            if x.is_finite() {
                (f64::from(x) / t).exp()
            } else {
                0.0
            }
        })
        .collect();
    let z: f64 = w.iter().sum();
    let draws = 200_000;
    for (top_k, expect) in [
        (0usize, w.iter().map(|x| x / z).collect::<Vec<f64>>()),
        (2, {
            let z2 = w[1] + w[3];
            vec![0.0, w[1] / z2, 0.0, w[3] / z2, 0.0, 0.0]
        }),
    ] {
        let p = SamplingParams {
            temperature: t,
            top_k,
            ..Default::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut count = [0usize; 6];
        for _ in 0..draws {
            count[rhythm_model::generate::pick(&logits, &p, &mut rng) as usize] += 1;
        }
        for (i, (&c, &e)) in count.iter().zip(&expect).enumerate() {
            let f = c as f64 / draws as f64;
            assert!((f - e).abs() < 0.005, "top_k {top_k}, id {i}: {f} vs {e}");
            if e == 0.0 {
                assert_eq!(c, 0, "top_k {top_k}: drew masked id {i}");
            }
        }
    }
}
