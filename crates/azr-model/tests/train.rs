//! The training step on tiny random models: gradients against finite differences, equality of
//! the memory-saving variants, overfitting a fixed batch, and checkpoints that reload exactly.

use std::collections::HashMap;
use std::path::Path;

use azr_model::tiny::write_tiny_model;
use azr_model::train::{response_logprobs, AdamWConfig};
use azr_model::{load, Model, ModelConfig, TrainConfig, TrainRow, Trainer};
use candle_core::{Device, Tensor};

fn tiny(dir: &Path, arch: &str, tie: bool) -> (ModelConfig, HashMap<String, Tensor>) {
    let w = write_tiny_model(dir, arch, tie, 11, 256).unwrap();
    let cfg = ModelConfig::from_hf_config_file(&dir.join("config.json")).unwrap();
    (cfg, w)
}

fn trainer(cfg: &ModelConfig, w: &HashMap<String, Tensor>, tc: TrainConfig) -> Trainer {
    Trainer::new(Model::from_weights(cfg, w, &Device::Cpu).unwrap(), tc).unwrap()
}

/// Rows of different prompt and response lengths, with sampling log-probs a little off the
/// current policy (ratios within the clip range) and mixed-sign advantages.
fn rows(cfg: &ModelConfig, w: &HashMap<String, Tensor>) -> Vec<TrainRow> {
    let model = Model::from_weights(cfg, w, &Device::Cpu).unwrap();
    let pairs = vec![
        (vec![5u32, 17, 200, 3, 99], vec![42u32, 7, 250, 11]),
        (vec![88, 1], vec![9, 9, 120, 64, 3, 2, 1]),
        (vec![256, 72, 105, 10, 257, 10, 256, 97], vec![13, 14]),
    ];
    let lps = response_logprobs(&model, &pairs).unwrap();
    let advs = [1.0f32, -0.7, 0.4];
    pairs
        .into_iter()
        .zip(lps)
        .zip(advs)
        .enumerate()
        .map(|(i, (((prompt, response), lp), advantage))| TrainRow {
            prompt,
            response,
            old_logprobs: lp
                .iter()
                .enumerate()
                .map(|(j, x)| x + 0.03 * ((i + j) as f32 % 3.0 - 1.0))
                .collect(),
            advantage,
        })
        .collect()
}

fn fd_config() -> TrainConfig {
    TrainConfig {
        entropy_coef: 0.05,
        ..TrainConfig::default()
    }
}

#[test]
fn gradients_match_finite_differences() {
    for (arch, tie) in [("llama", true), ("qwen2", false), ("qwen3", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, w) = tiny(dir.path(), arch, tie);
        let rows = rows(&cfg, &w);
        let mut tr = trainer(&cfg, &w, fd_config());
        tr.backward(&rows).unwrap();
        let mut names: Vec<&String> = w.keys().collect();
        names.sort();
        let mut checked = 0;
        for name in names {
            let grad = tr.gradient(name).unwrap().to_vec();
            // The coordinate with the largest gradient: well above the f32 noise of the FD.
            let (idx, &g) = grad
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                .unwrap();
            assert!(g.abs() > 0.0, "{arch}: zero gradient for {name}");
            let loss_at = |delta: f32| {
                let mut w2 = w.clone();
                let t = &w[name];
                let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                v[idx] += delta;
                w2.insert(
                    name.clone(),
                    Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap(),
                );
                let mut t2 = trainer(&cfg, &w2, fd_config());
                t2.backward(&rows).unwrap().loss
            };
            let eps = 1e-2f32;
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
            let err = (fd - g as f64).abs();
            assert!(
                err <= 0.03 * (g as f64).abs() + 2e-4,
                "{arch}: {name}[{idx}]: analytic {g}, finite difference {fd}"
            );
            checked += 1;
        }
        assert_eq!(checked, w.len());
    }
}

#[test]
fn micro_batches_and_recompute_give_the_same_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "qwen2", false);
    let rows = rows(&cfg, &w);
    let grads = |tc: TrainConfig| {
        let mut tr = trainer(&cfg, &w, tc);
        let stats = tr.backward(&rows).unwrap();
        let mut names: Vec<&String> = w.keys().collect();
        names.sort();
        let g: Vec<f32> = names
            .iter()
            .flat_map(|n| tr.gradient(n).unwrap().to_vec())
            .collect();
        (stats, g)
    };
    let (one, g1) = grads(TrainConfig {
        micro_batch_tokens: 1 << 20,
        ..fd_config()
    });
    let (split, g2) = grads(TrainConfig {
        micro_batch_tokens: 12,
        recompute: false,
        head_chunk: 3,
        ..fd_config()
    });
    assert_eq!(one.micro_batches, 1);
    assert_eq!(split.micro_batches, 3);
    assert_eq!(one.tokens, 13);
    assert!(
        (one.loss - split.loss).abs() < 1e-6,
        "{} vs {}",
        one.loss,
        split.loss
    );
    let max_diff = g1
        .iter()
        .zip(&g2)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let max_abs = g1.iter().map(|a| a.abs()).fold(0f32, f32::max);
    assert!(
        max_diff <= 1e-4 * max_abs,
        "max diff {max_diff} of {max_abs}"
    );
}

/// A row with advantage 0 only counts in the token mean: the gradient is the one without it,
/// scaled by (tokens without) / (tokens with), and its forward is skipped.
#[test]
fn zero_advantage_rows_only_count_in_the_token_mean() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "llama", true);
    let rows = rows(&cfg, &w);
    let tc = TrainConfig::default();
    let mut tr = trainer(&cfg, &w, tc);
    let base = tr.backward(&rows).unwrap();
    let g_base = tr.gradient("model.norm.weight").unwrap().to_vec();
    let mut zero = rows[1].clone();
    zero.advantage = 0.0;
    let mut with = rows.clone();
    with.push(zero.clone());
    let s = tr.backward(&with).unwrap();
    assert_eq!(s.zero_advantage_rows, 1);
    assert_eq!(s.tokens, base.tokens + zero.response.len());
    let scale = base.tokens as f32 / s.tokens as f32;
    for (a, b) in tr
        .gradient("model.norm.weight")
        .unwrap()
        .iter()
        .zip(&g_base)
    {
        assert!(
            (a - b * scale).abs() <= 1e-6 + 1e-4 * b.abs(),
            "{a} vs {}",
            b * scale
        );
    }
    let only = tr.backward(&[zero]).unwrap();
    assert_eq!((only.micro_batches, only.grad_norm), (0, 0.0));
    assert!(only.entropy.is_nan());
}

#[test]
fn a_fixed_batch_is_overfit() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "llama", true);
    let tc = TrainConfig {
        optimizer: AdamWConfig {
            lr: 1e-2,
            ..AdamWConfig::default()
        },
        ..TrainConfig::default()
    };
    let mut tr = trainer(&cfg, &w, tc);
    // Positive advantage and no sampling log-probs (ratio 1): the surrogate's gradient is the
    // log-likelihood's, so the update maximises the batch's likelihood.
    let mut rows = rows(&cfg, &w);
    for r in &mut rows {
        r.old_logprobs.clear();
        r.advantage = 1.0;
    }
    let nll = |tr: &Trainer| {
        let pairs: Vec<_> = rows
            .iter()
            .map(|r| (r.prompt.clone(), r.response.clone()))
            .collect();
        let lps = tr.logprobs(&pairs).unwrap();
        let n: usize = lps.iter().map(Vec::len).sum();
        -lps.iter().flatten().map(|&x| x as f64).sum::<f64>() / n as f64
    };
    let start = nll(&tr);
    for _ in 0..60 {
        let s = tr.step(&rows).unwrap();
        assert!(s.grad_norm.is_finite());
    }
    let end = nll(&tr);
    assert_eq!(tr.steps(), 60);
    assert!(end < 0.1 * start, "NLL {start} -> {end}");
}

#[test]
fn checkpoints_reload_exactly_and_resume_the_optimizer() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "qwen2", true);
    let rows = rows(&cfg, &w);
    let tc = TrainConfig {
        optimizer: AdamWConfig {
            lr: 1e-3,
            ..AdamWConfig::default()
        },
        ..TrainConfig::default()
    };
    let lm = load(dir.path()).unwrap();
    let mut tr = Trainer::new(lm.model, tc).unwrap();
    tr.step(&rows).unwrap();
    let ckpt = dir.path().join("ckpt-1");
    tr.save(&lm.tokenizer, &ckpt).unwrap();
    // Saving again onto the same directory is refused, not a silent overwrite.
    assert!(tr.save(&lm.tokenizer, &ckpt).is_err());
    let pairs: Vec<_> = rows
        .iter()
        .map(|r| (r.prompt.clone(), r.response.clone()))
        .collect();

    let back = load(&ckpt).unwrap();
    assert_eq!(back.config(), tr.model().config());
    assert_eq!(
        response_logprobs(&back.model, &pairs).unwrap(),
        tr.logprobs(&pairs).unwrap()
    );
    assert_eq!(
        back.tokenizer.encode("<|im_start|>hi", false).unwrap(),
        lm.tokenizer.encode("<|im_start|>hi", false).unwrap()
    );

    // Resume: a trainer from the checkpoint with its optimizer state takes the same next step.
    let mut resumed = Trainer::new(back.model, tc).unwrap();
    resumed.load_optimizer(&ckpt).unwrap();
    assert_eq!(resumed.steps(), 1);
    tr.step(&rows).unwrap();
    resumed.step(&rows).unwrap();
    assert_eq!(
        resumed.logprobs(&pairs).unwrap(),
        tr.logprobs(&pairs).unwrap()
    );
    // Without the optimizer state the next step differs (the test can fail).
    let fresh_model = load(&ckpt).unwrap().model;
    let mut fresh = Trainer::new(fresh_model, tc).unwrap();
    fresh.step(&rows).unwrap();
    assert_ne!(
        fresh.logprobs(&pairs).unwrap(),
        tr.logprobs(&pairs).unwrap()
    );
}

#[test]
fn bad_rows_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "llama", true);
    let mut tr = trainer(&cfg, &w, TrainConfig::default());
    let good = rows(&cfg, &w).remove(0);
    let mut bad = good.clone();
    bad.response.push(100_000);
    bad.old_logprobs.push(-1.0);
    assert!(tr
        .step(&[bad])
        .unwrap_err()
        .to_string()
        .contains("vocabulary"));
    let mut bad = good.clone();
    bad.old_logprobs.pop();
    assert!(tr
        .step(&[bad])
        .unwrap_err()
        .to_string()
        .contains("log-probs"));
    let mut bad = good.clone();
    bad.prompt = vec![1; 300];
    assert!(tr.step(&[bad]).unwrap_err().to_string().contains("context"));
    let mut empty = good.clone();
    empty.response.clear();
    empty.old_logprobs.clear();
    let s = tr.step(&[empty]).unwrap();
    assert_eq!((s.tokens, s.skipped_rows, s.step), (0, 1, 0));
}

#[test]
fn atomic_directories_leave_nothing_behind_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ckpt");
    let err = azr_model::checkpoint::create_dir_atomically(&target, |tmp| {
        std::fs::write(tmp.join("half"), b"x").unwrap();
        anyhow::bail!("disk full")
    })
    .unwrap_err();
    assert!(err.to_string().contains("disk full"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
