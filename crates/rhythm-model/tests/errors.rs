//! Bad input gives typed, one-line errors naming the file or field.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use rhythm_core::SummaryConfig;
use rhythm_model::{save_pretrained, Model, ModelError, Pretrained, SamplingParams};

fn saved(tmp: &Path, family: &str) -> PathBuf {
    let (m, _) = Model::random(&common::tiny(family), 1, 1.0, &Device::Cpu).unwrap();
    let dir = tmp.join(family);
    save_pretrained(&m, &dir, DType::F32, None).unwrap();
    dir
}

fn err(dir: &Path) -> ModelError {
    let e = Pretrained::load(dir).expect_err("load should fail");
    let s = e.to_string();
    assert!(!s.contains('\n'), "multi-line error: {s}");
    e
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let e = err(&tmp.path().join("nope"));
    assert!(matches!(e, ModelError::MissingFile { .. }), "{e}");
    let dir = saved(tmp.path(), "qwen3");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::MissingFile { .. }) && e.to_string().contains("model.safetensors"),
        "{e}"
    );
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let e = err(&dir);
    assert!(e.to_string().contains("config.json"), "{e}");
}

#[test]
fn bad_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path(), "llama");
    std::fs::write(dir.join("config.json"), "{ not json").unwrap();
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::Json { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );

    let dir = saved(tmp.path(), "llama");
    edit_config(&dir, |v| {
        v.as_object_mut().unwrap().remove("vocab_size");
    });
    let e = err(&dir);
    assert!(e.to_string().contains("vocab_size"), "{e}");

    edit_config(&dir, |v| {
        v["vocab_size"] = 40.into();
        v["model_type"] = "gpt2".into();
    });
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::UnsupportedModelType { .. }) && e.to_string().contains("gpt2"),
        "{e}"
    );

    edit_config(&dir, |v| {
        v["model_type"] = "llama".into();
        v["rope_scaling"] = serde_json::json!({"rope_type": "yarn", "factor": 4.0});
    });
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::UnsupportedRopeScaling { .. }) && e.to_string().contains("yarn"),
        "{e}"
    );

    edit_config(&dir, |v| {
        v["rope_scaling"] = serde_json::Value::Null;
        v["num_key_value_heads"] = 3.into();
    });
    let e = err(&dir);
    assert!(e.to_string().contains("num_key_value_heads"), "{e}");

    edit_config(&dir, |v| {
        v["num_key_value_heads"] = 2.into();
        v["hidden_act"] = "gelu".into();
    });
    let e = err(&dir);
    assert!(e.to_string().contains("hidden_act"), "{e}");
}

#[test]
fn weights_disagreeing_with_config() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path(), "qwen2");
    edit_config(&dir, |v| v["intermediate_size"] = 20.into());
    let e = err(&dir);
    match &e {
        ModelError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert!(name.contains("mlp"), "{e}");
            assert_ne!(expected, found);
        }
        _ => panic!("expected ShapeMismatch, got {e}"),
    }
    assert!(e.to_string().contains("model.safetensors"), "{e}");

    // Untied config but no lm_head in the file.
    let dir = saved(tmp.path(), "qwen3");
    edit_config(&dir, |v| v["tie_word_embeddings"] = false.into());
    let e = err(&dir);
    assert!(
        matches!(&e, ModelError::MissingWeight { name, .. } if name == "lm_head.weight"),
        "{e}"
    );

    // A truncated file.
    let dir = saved(tmp.path(), "llama");
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::Safetensors { .. }) && e.to_string().contains("model.safetensors"),
        "{e}"
    );
    std::fs::write(&p, &bytes[..4]).unwrap();
    assert!(matches!(err(&dir), ModelError::Safetensors { .. }));

    // An integer weight.
    let dir = saved(tmp.path(), "qwen2");
    let st = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut v: Vec<(String, Tensor)> = st.into_iter().collect();
    for (n, t) in &mut v {
        if n == "model.norm.weight" {
            *t = t.to_dtype(DType::U32).unwrap();
        }
    }
    rhythm_model::write_safetensors(&dir.join("model.safetensors"), &v, &BTreeMap::new()).unwrap();
    let e = err(&dir);
    assert!(matches!(e, ModelError::UnsupportedDtype { .. }), "{e}");
}

#[test]
fn sharded_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path(), "llama");
    let reference = Pretrained::load(&dir).unwrap();
    // Split the weights over two shards with an index.
    let st = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<String> = st.keys().cloned().collect();
    names.sort();
    let (a, b) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let v: Vec<(String, Tensor)> = part.iter().map(|n| (n.clone(), st[n].clone())).collect();
        rhythm_model::write_safetensors(&dir.join(file), &v, &BTreeMap::new()).unwrap();
        for n in part {
            map.insert(n.clone(), file.into());
        }
    }
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let sharded = Pretrained::load(&dir).unwrap();
    let t = Tensor::new(&[[3u32, 4, 5, 6]], &Device::Cpu).unwrap();
    let x = sharded
        .model
        .forward(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let y = reference
        .model
        .forward(&t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(x, y);
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::MissingFile { .. }) && e.to_string().contains("00002"),
        "{e}"
    );
}

#[test]
fn bad_ids_and_lengths() {
    let (m, _) = Model::random(&common::tiny("qwen3"), 1, 1.0, &Device::Cpu).unwrap();
    let one_line = |e: ModelError| {
        let s = e.to_string();
        assert!(!s.contains('\n'));
        e
    };
    let e = one_line(
        m.generate(&[vec![1, 2, 40]], &SamplingParams::greedy(3))
            .unwrap_err(),
    );
    assert!(
        matches!(
            e,
            ModelError::TokenOutOfRange {
                id: 40,
                index: 2,
                ..
            }
        ),
        "{e}"
    );
    let e = one_line(m.probe_captured(&[1, 99, 2], 1, &[0], false).unwrap_err());
    assert!(
        matches!(e, ModelError::TokenOutOfRange { id: 99, .. }),
        "{e}"
    );
    let t = Tensor::new(&[[1i64, -3, 2]], &Device::Cpu).unwrap();
    let e = one_line(m.forward(&t).unwrap_err());
    assert!(
        matches!(e, ModelError::TokenOutOfRange { id: -3, .. }),
        "{e}"
    );
    // max_position_embeddings = 96.
    let long = common::ids(97, 40, 1);
    let e = one_line(m.probe_captured(&long, 1, &[0], false).unwrap_err());
    assert!(
        matches!(e, ModelError::SequenceTooLong { len: 97, max: 96 }),
        "{e}"
    );
    let t = Tensor::new(long.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    assert!(matches!(
        m.forward(&t).unwrap_err(),
        ModelError::SequenceTooLong { .. }
    ));
    // Generation stops at max_position_embeddings rather than failing.
    let g = m
        .generate(&[common::ids(90, 40, 2)], &SamplingParams::greedy(50))
        .unwrap();
    assert_eq!(g[0].tokens.len(), 6);
    let e = one_line(m.generate(&[long], &SamplingParams::greedy(1)).unwrap_err());
    assert!(matches!(e, ModelError::SequenceTooLong { .. }), "{e}");
    // Probe arguments.
    let ids = common::ids(10, 40, 3);
    let cfg = SummaryConfig {
        response_start: 0,
        seq_len: 10,
        window: 2,
        horizon: (1, 3),
        proximity: 1,
    };
    assert!(matches!(
        m.probe_streamed(&ids, &cfg, &[0]).unwrap_err(),
        ModelError::InvalidArgument { .. }
    ));
    let cfg = SummaryConfig {
        response_start: 3,
        seq_len: 11,
        ..cfg
    };
    assert!(matches!(
        m.probe_streamed(&ids, &cfg, &[0]).unwrap_err(),
        ModelError::InvalidArgument { .. }
    ));
    let cfg = SummaryConfig { seq_len: 10, ..cfg };
    let e = one_line(m.probe_streamed(&ids, &cfg, &[5]).unwrap_err());
    assert!(e.to_string().contains("layer 5"), "{e}");
    assert!(m.generate(&[vec![]], &SamplingParams::greedy(1)).is_err());
    let p = SamplingParams {
        top_p: 0.0,
        ..Default::default()
    };
    assert!(matches!(
        m.generate(&[vec![1]], &p).unwrap_err(),
        ModelError::InvalidArgument { .. }
    ));
}

#[test]
fn tokenizer_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = saved(tmp.path(), "qwen3");
    let p = Pretrained::load(&dir).unwrap();
    let e = p.encode("hello").unwrap_err();
    assert!(
        matches!(e, ModelError::MissingFile { .. }) && e.to_string().contains("tokenizer.json"),
        "{e}"
    );
    std::fs::write(dir.join("tokenizer.json"), "{\"broken\": true}").unwrap();
    let e = err(&dir);
    assert!(
        matches!(e, ModelError::Tokenizer { .. }) && e.to_string().contains("tokenizer.json"),
        "{e}"
    );
}
