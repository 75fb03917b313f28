//! The toolkit's optimizer, schedule and settings, checked by hand.

use candle_core::{Device, Tensor, Var};
use rhythm_train::schedule::{lr_at, Schedule};
use rhythm_train::{clip_grad_norm, AdamW, OptimSettings};

fn settings(wd: f64) -> OptimSettings {
    OptimSettings {
        weight_decay: wd,
        ..OptimSettings::default()
    }
}

/// One AdamW step from zero moments moves every parameter by
/// lr * g / (|g| + eps) ~ lr * sign(g): with lr 0.1 and g = [2, -3],
/// theta = [1, 1] -> [0.9, 1.1]. With weight decay 0.5 a matrix is first
/// scaled by 1 - 0.1 * 0.5 = 0.95, then moved: [0.85, 1.05]; a vector (a
/// norm gain) is not decayed.
#[test]
fn adamw_by_hand_decays_matrices_only() {
    let dev = Device::Cpu;
    for (wd, matrix, vector) in [
        (0.0, [0.9f32, 1.1], [0.9f32, 1.1]),
        (0.5, [0.85, 1.05], [0.9, 1.1]),
    ] {
        let w = Var::from_tensor(&Tensor::ones((1, 2), candle_core::DType::F32, &dev).unwrap())
            .unwrap();
        let g = Var::from_slice(&[1f32, 1.0], 2, &dev).unwrap();
        let mut opt = AdamW::new(
            vec![("g".into(), g.clone()), ("w".into(), w.clone())],
            &settings(wd),
        )
        .unwrap();
        assert!(AdamW::decays(&w) && !AdamW::decays(&g));
        let grad_w = Tensor::from_slice(&[2f32, -3.0], (1, 2), &dev).unwrap();
        let grad_g = Tensor::from_slice(&[2f32, -3.0], 2, &dev).unwrap();
        opt.step(&[Some(grad_g), Some(grad_w)], 0.1).unwrap();
        let got_w = w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got_g = g.as_tensor().to_vec1::<f32>().unwrap();
        for (got, want) in [(got_w, matrix), (got_g, vector)] {
            assert!(
                (got[0] - want[0]).abs() < 1e-6 && (got[1] - want[1]).abs() < 1e-6,
                "wd {wd}: {got:?} vs {want:?}"
            );
        }
        assert_eq!(opt.t, 1);
    }
}

/// A missing gradient leaves its parameter and moments alone.
#[test]
fn adamw_skips_parameters_without_gradient() {
    let dev = Device::Cpu;
    let a = Var::from_slice(&[1f32, 2.0], 2, &dev).unwrap();
    let mut opt = AdamW::new(vec![("a".into(), a.clone())], &settings(0.1)).unwrap();
    opt.step(&[None], 0.1).unwrap();
    assert_eq!(a.as_tensor().to_vec1::<f32>().unwrap(), [1.0, 2.0]);
    assert_eq!(opt.moments().0[0].to_vec1::<f32>().unwrap(), [0.0, 0.0]);
}

/// Saving and loading the moments, then taking the same step, gives
/// bit-identical weights to an optimizer that never stopped.
#[test]
fn adamw_state_round_trips_exactly() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    let init = Tensor::from_slice(&[0.3f32, -1.7, 2.2, 0.01], (2, 2), &dev).unwrap();
    let grads = |k: usize| {
        let v: Vec<f32> = (0..4).map(|i| ((i * 7 + k * 3) % 5) as f32 - 2.1).collect();
        Tensor::from_vec(v, (2, 2), &dev).unwrap()
    };
    let s = settings(0.1);
    let a = Var::from_tensor(&init).unwrap();
    let mut oa = AdamW::new(vec![("x".into(), a.clone())], &s).unwrap();
    for k in 0..3 {
        oa.step(&[Some(grads(k))], 0.01).unwrap();
    }
    // The second run stops after 2 steps and restarts from the saved state.
    let b = Var::from_tensor(&init).unwrap();
    let mut ob = AdamW::new(vec![("x".into(), b.clone())], &s).unwrap();
    for k in 0..2 {
        ob.step(&[Some(grads(k))], 0.01).unwrap();
    }
    let path = dir.path().join("optimizer.safetensors");
    ob.save(&path).unwrap();
    let c = Var::from_tensor(&b.as_tensor().copy().unwrap()).unwrap();
    let mut oc = AdamW::new(vec![("x".into(), c.clone())], &s).unwrap();
    oc.load(&path, ob.t, &dev).unwrap();
    oc.step(&[Some(grads(2))], 0.01).unwrap();
    let flat = |v: &Var| {
        v.as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_eq!(flat(&a), flat(&c));
    assert_eq!(oc.t, 3);
    // A state of another shape is refused with a message naming it.
    let d = Var::from_slice(&[1f32, 2.0], 2, &dev).unwrap();
    let mut od = AdamW::new(vec![("x".into(), d)], &s).unwrap();
    let e = od.load(&path, 2, &dev).unwrap_err().to_string();
    assert!(e.contains("m.x has shape [2, 2], expected [2]"), "{e}");
    let mut oe = AdamW::new(vec![("y".into(), c)], &s).unwrap();
    let e = oe.load(&path, 2, &dev).unwrap_err().to_string();
    assert!(e.contains("missing m.y"), "{e}");
}

#[test]
fn clipping_scales_to_the_norm() {
    let dev = Device::Cpu;
    let mut g = vec![
        Some(Tensor::from_slice(&[3f32], 1, &dev).unwrap()),
        None,
        Some(Tensor::from_slice(&[4f32], 1, &dev).unwrap()),
    ];
    assert_eq!(clip_grad_norm(&mut g, 0.0).unwrap(), 5.0);
    assert_eq!(clip_grad_norm(&mut g, 10.0).unwrap(), 5.0);
    assert_eq!(clip_grad_norm(&mut g, 1.0).unwrap(), 5.0);
    let a = g[0].as_ref().unwrap().to_vec1::<f32>().unwrap()[0];
    let b = g[2].as_ref().unwrap().to_vec1::<f32>().unwrap()[0];
    assert!((a - 0.6).abs() < 1e-5 && (b - 0.8).abs() < 1e-5, "{a} {b}");
}

#[test]
fn schedule_by_hand() {
    // Warmup 2 of 10: 0.5, 1.0 x lr; then constant / linear / cosine.
    assert_eq!(lr_at(1.0, 0.0, 0, 2, 10, Schedule::Constant), 0.5);
    assert_eq!(lr_at(1.0, 0.0, 1, 2, 10, Schedule::Constant), 1.0);
    assert_eq!(lr_at(1.0, 0.0, 9, 2, 10, Schedule::Constant), 1.0);
    assert_eq!(lr_at(1.0, 0.0, 6, 2, 10, Schedule::Linear), 0.5); // (6-2)/8 = 0.5 done
    assert!((lr_at(1.0, 0.0, 6, 2, 10, Schedule::Cosine) - 0.5).abs() < 1e-12);
    assert!(lr_at(1.0, 0.0, 10, 2, 10, Schedule::Cosine).abs() < 1e-12);
    // With a floor of 0.1: half way is 0.55, the end 0.1, for both decays.
    for s in [Schedule::Linear, Schedule::Cosine] {
        assert!((lr_at(1.0, 0.1, 6, 2, 10, s) - 0.55).abs() < 1e-12, "{s:?}");
        assert!((lr_at(1.0, 0.1, 10, 2, 10, s) - 0.1).abs() < 1e-12, "{s:?}");
        assert!((lr_at(1.0, 0.1, 50, 2, 10, s) - 0.1).abs() < 1e-12, "{s:?}");
    }
    let p = OptimSettings::pretrain();
    assert_eq!(p.lr_at(49, 3000), p.lr);
    assert!((p.lr_at(3000, 3000) - p.lr * 0.1).abs() < 1e-15);
}

/// Keys of the older pretraining checkpoints (`warmup_steps`, `eps`,
/// `grad_clip`) read as their new names; unset keys take the defaults.
#[test]
fn settings_read_legacy_keys_and_validate() {
    let s: OptimSettings =
        serde_json::from_str(r#"{"warmup_steps": 7, "eps": 1e-6, "grad_clip": 0.5}"#).unwrap();
    assert_eq!((s.warmup, s.adam_eps, s.max_grad_norm), (7, 1e-6, 0.5));
    assert_eq!(s.lr, OptimSettings::default().lr);
    assert!(OptimSettings::default().validate().is_ok());
    assert!(OptimSettings::pretrain().validate().is_ok());
    for (bad, key) in [
        (
            OptimSettings {
                beta2: 1.0,
                ..Default::default()
            },
            "beta2 = 1",
        ),
        (
            OptimSettings {
                lr: f64::NAN,
                ..Default::default()
            },
            "lr = NaN",
        ),
        (
            OptimSettings {
                min_lr_ratio: 1.5,
                ..Default::default()
            },
            "min_lr_ratio = 1.5",
        ),
    ] {
        let e = bad.validate().unwrap_err();
        assert!(e.starts_with(key), "{e}");
    }
}
