//! The training step on tiny random models: loss and gradients against candle's autograd over the
//! plain forward and against finite differences, equality of the memory-saving variants,
//! overfitting a fixed batch, and checkpoints that reload exactly.

use std::collections::HashMap;
use std::path::Path;

use azr_model::lora::LoraAdapter;
use azr_model::tiny::write_tiny_model;
use azr_model::train::{response_logprobs, AdamWConfig, ADAPTER_DIR, ADAPTER_FILE, PEFT_PREFIX};
use azr_model::{load, LoraConfig, Model, ModelConfig, TrainConfig, TrainRow, Trainer};
use candle_core::{DType, Device, Tensor, Var, D};

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
            sampled: vec![],
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

/// The coordinate with the largest gradient: well above the f32 noise of a finite difference.
fn largest(grad: &[f32]) -> (usize, f32) {
    let (i, g) = grad
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
        .unwrap();
    (i, *g)
}

/// Central difference with step 1e-2 against the analytic gradient `g`.
fn assert_matches_fd(what: &str, g: f32, loss_at: impl Fn(f32) -> f64) {
    assert!(g.abs() > 0.0, "zero gradient for {what}");
    let eps = 1e-2f32;
    let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps as f64);
    let err = (fd - g as f64).abs();
    assert!(
        err <= 0.03 * (g as f64).abs() + 2e-4,
        "{what}: analytic {g}, finite difference {fd}"
    );
}

/// Tokens the environment wrote are context, not samples: a row `P | s1 inj s2` with `inj`
/// masked has exactly the loss and gradient of the two rows `P | s1` and `P s1 inj | s2`, which
/// hold only the sampled tokens as responses (same token count in the mean, same contexts).
#[test]
fn masked_environment_tokens_get_no_gradient() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "qwen2", false);
    let tc = TrainConfig {
        entropy_coef: 0.05,
        ..TrainConfig::default()
    };
    let prompt = vec![5u32, 17, 200, 3];
    let (s1, inj, s2) = (vec![42u32, 7], vec![250u32, 11, 90], vec![13u32, 14, 60]);
    let response: Vec<u32> = [s1.clone(), inj.clone(), s2.clone()].concat();
    let mask: Vec<bool> = [vec![true; 2], vec![false; 3], vec![true; 3]].concat();
    let masked = TrainRow {
        prompt: prompt.clone(),
        response: response.clone(),
        old_logprobs: vec![],
        sampled: mask.clone(),
        advantage: 0.8,
    };
    let split = vec![
        TrainRow {
            prompt: prompt.clone(),
            response: s1.clone(),
            advantage: 0.8,
            ..TrainRow::default()
        },
        TrainRow {
            prompt: [prompt.clone(), s1.clone(), inj.clone()].concat(),
            response: s2.clone(),
            advantage: 0.8,
            ..TrainRow::default()
        },
    ];
    let mut a = trainer(&cfg, &w, tc);
    let mut b = trainer(&cfg, &w, tc);
    let sa = a.backward(std::slice::from_ref(&masked)).unwrap();
    let sb = b.backward(&split).unwrap();
    assert_eq!(sa.tokens, 5);
    assert_eq!(sb.tokens, 5);
    assert!(
        (sa.loss - sb.loss).abs() <= 1e-6,
        "{} vs {}",
        sa.loss,
        sb.loss
    );
    assert!((sa.entropy - sb.entropy).abs() <= 1e-5);
    for name in [
        "model.embed_tokens.weight",
        "model.layers.0.mlp.down_proj.weight",
    ] {
        let (ga, gb) = (a.gradient(name).unwrap(), b.gradient(name).unwrap());
        let scale = gb.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(scale > 0.0, "{name}: zero gradient");
        for (x, y) in ga.iter().zip(gb) {
            assert!((x - y).abs() <= 1e-4 * scale, "{name}: {x} vs {y}");
        }
    }
    // The same row unmasked trains on the environment's tokens too: another loss.
    let unmasked = TrainRow {
        sampled: vec![],
        ..masked.clone()
    };
    let su = a.backward(std::slice::from_ref(&unmasked)).unwrap();
    assert_eq!(su.tokens, 8);
    assert!((su.loss - sa.loss).abs() > 1e-6);
    // A mask of the wrong length is an error, not a guess.
    let bad = TrainRow {
        sampled: vec![true; 3],
        ..masked
    };
    assert!(a.backward(&[bad]).is_err());
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
            let (idx, g) = largest(tr.gradient(name).unwrap());
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
            assert_matches_fd(&format!("{arch}: {name}[{idx}]"), g, loss_at);
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
        recompute: true,
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
    for i in 0..60 {
        let s = tr.step(&rows).unwrap();
        assert!(s.grad_norm.is_finite());
        if i == 0 {
            // What the format warm-up reports as its cross-entropy: minus the mean log-prob.
            assert!(
                (-s.logprob - start).abs() < 1e-4 * start,
                "{} vs {start}",
                -s.logprob
            );
        }
    }
    let end = nll(&tr);
    assert_eq!(tr.steps(), 60);
    assert!(end < 0.1 * start, "NLL {start} -> {end}");
    tr.reset_optimizer();
    assert_eq!(tr.steps(), 0);
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

// ---- The oracle: candle's autograd over the plain forward ------------------------------------

/// The trainer's loss written in candle ops over [`Model::forward`], for rows without sampling
/// log-probs (ratio `exp(lp - sg(lp)) = 1`, inside the clip): the token mean of
/// `-A * ratio - entropy_coef * H`.
fn autograd_loss(model: &Model, rows: &[TrainRow], entropy_coef: f64) -> Tensor {
    let tokens: usize = rows.iter().map(|r| r.trained_tokens()).sum();
    let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu).unwrap();
    for r in rows {
        assert!(r.old_logprobs.is_empty() && r.sampled.is_empty());
        let seq = [r.prompt.as_slice(), r.response.as_slice()].concat();
        let (logits, _) = model.forward_padded(&[seq], 0).unwrap();
        let logits = logits
            .squeeze(0)
            .unwrap()
            .narrow(0, r.prompt.len() - 1, r.response.len())
            .unwrap();
        let lp_all = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
        let targets = Tensor::new(r.response.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(1)
            .unwrap();
        let lp = lp_all.gather(&targets, 1).unwrap().squeeze(1).unwrap();
        let ratio = (&lp - lp.detach()).unwrap().exp().unwrap();
        let entropy = (lp_all.exp().unwrap() * &lp_all)
            .unwrap()
            .sum(D::Minus1)
            .unwrap()
            .neg()
            .unwrap();
        let per_token =
            ((ratio * -(r.advantage as f64)).unwrap() - (entropy * entropy_coef).unwrap()).unwrap();
        loss = (loss + per_token.sum_all().unwrap()).unwrap();
    }
    (loss / tokens as f64).unwrap()
}

/// Random values in [-scale, scale), reproducibly.
fn noise(shape: &[usize], seed: u64, scale: f32) -> Tensor {
    let mut s = seed;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn assert_same_gradient(what: &str, ours: &[f32], reference: &Tensor) {
    let reference = reference.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(ours.len(), reference.len(), "{what}");
    let scale = reference.iter().fold(0f32, |m, g| m.max(g.abs()));
    assert!(scale > 0.0, "{what}: no gradient");
    let diff = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{what}: differs by {diff} (largest {scale})"
    );
}

/// The hand-written update gives the loss and every coordinate of every gradient that candle's
/// autograd gives over the plain forward, on Llama (tied), Qwen2 and Qwen3, for full
/// fine-tuning and for LoRA with non-zero B, with and without recompute, on rows of different
/// lengths (the longest spans three attention tiles) with mixed-sign advantages.
#[test]
fn gradients_match_autograd_over_the_plain_forward() {
    let coef = 0.05;
    for (arch, tie) in [("llama", true), ("qwen2", false), ("qwen3", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, w) = tiny(dir.path(), arch, tie);
        let rows: Vec<TrainRow> = [(6usize, 9usize, 1.0f32), (2, 13, -0.6), (30, 110, 0.3)]
            .iter()
            .enumerate()
            .map(|(i, &(p, r, advantage))| TrainRow {
                prompt: (0..p).map(|j| ((i * 31 + j * 7) % 256) as u32).collect(),
                response: (0..r)
                    .map(|j| ((i * 17 + j * 13 + 5) % 256) as u32)
                    .collect(),
                old_logprobs: vec![],
                sampled: vec![],
                advantage,
            })
            .collect();
        for lora_rank in [0, 3] {
            let lora = LoraConfig {
                rank: lora_rank,
                ..LoraConfig::default()
            };
            let mut tr = trainer(
                &cfg,
                &w,
                TrainConfig {
                    entropy_coef: coef as f32,
                    lora,
                    ..TrainConfig::default()
                },
            );
            // The reference model over `Var`s: every weight, or the adapters on the base.
            let mut trained: Vec<(String, Var)> = Vec::new();
            let reference = if lora_rank == 0 {
                let vars: HashMap<String, Tensor> = w
                    .iter()
                    .map(|(n, t)| {
                        let v = Var::from_tensor(t).unwrap();
                        trained.push((n.clone(), v.clone()));
                        (n.clone(), v.as_tensor().clone())
                    })
                    .collect();
                Model::from_weights(&cfg, &vars, &Device::Cpu).unwrap()
            } else {
                // Non-zero A and B, given to the trainer through an adapter file.
                let mut model = Model::from_weights(&cfg, &w, &Device::Cpu).unwrap();
                let mut saved = HashMap::new();
                let shapes: Vec<(String, usize, usize)> = model
                    .linears()
                    .into_iter()
                    .filter(|(n, _)| lora.targets.contains(n))
                    .map(|(n, l)| {
                        let (out, inp) = l.weight.dims2().unwrap();
                        (n, out, inp)
                    })
                    .collect();
                for (k, (name, out, inp)) in shapes.into_iter().enumerate() {
                    let a = Var::from_tensor(&noise(&[lora_rank, inp], 2 * k as u64, 0.3)).unwrap();
                    let b =
                        Var::from_tensor(&noise(&[out, lora_rank], 2 * k as u64 + 1, 0.1)).unwrap();
                    let adapter = LoraAdapter {
                        a: a.as_tensor().clone(),
                        b: b.as_tensor().clone(),
                        scale: lora.scale(),
                    };
                    model.set_lora(&name, adapter).unwrap();
                    for (suffix, v) in [("lora_A", a), ("lora_B", b)] {
                        let n = format!("{name}.{suffix}.weight");
                        saved.insert(format!("{PEFT_PREFIX}{n}"), v.as_tensor().copy().unwrap());
                        trained.push((n, v));
                    }
                }
                let adapter_dir = dir.path().join("ckpt").join(ADAPTER_DIR);
                std::fs::create_dir_all(&adapter_dir).unwrap();
                candle_core::safetensors::save(&saved, adapter_dir.join(ADAPTER_FILE)).unwrap();
                tr.load_adapter(&dir.path().join("ckpt")).unwrap();
                model
            };
            let loss = autograd_loss(&reference, &rows, coef);
            let grads = loss.backward().unwrap();
            let loss = loss.to_scalar::<f32>().unwrap() as f64;
            assert_eq!(
                tr.num_params(),
                trained.iter().map(|(_, v)| v.elem_count()).sum::<usize>()
            );
            for recompute in [true, false] {
                let what = format!("{arch}, LoRA rank {lora_rank}, recompute {recompute}");
                tr.config.recompute = recompute;
                let stats = tr.backward(&rows).unwrap();
                assert!(
                    (stats.loss - loss).abs() <= 1e-5 * loss.abs().max(1.0),
                    "{what}: loss {} vs {loss}",
                    stats.loss
                );
                for (name, var) in &trained {
                    let ours = tr.gradient(name).unwrap();
                    let reference = grads.get(var.as_tensor()).unwrap();
                    assert_same_gradient(&format!("{what}: {name}"), ours, reference);
                }
            }
        }
    }
}

// ---- LoRA ------------------------------------------------------------------------------------

fn lora_config(rank: usize, lr: f64) -> TrainConfig {
    TrainConfig {
        lora: LoraConfig {
            rank,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        optimizer: AdamWConfig {
            lr,
            ..AdamWConfig::default()
        },
        ..fd_config()
    }
}

fn pairs(rows: &[TrainRow]) -> Vec<(Vec<u32>, Vec<u32>)> {
    rows.iter()
        .map(|r| (r.prompt.clone(), r.response.clone()))
        .collect()
}

/// B starts at zero, so a LoRA trainer is the base model: the same log-probs, the same loss; only
/// B gets a gradient at first (dL/dA is B^T times something); rank 0 is full fine-tuning.
#[test]
fn lora_with_zero_b_equals_the_base() {
    for (arch, tie) in [("llama", true), ("qwen2", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, w) = tiny(dir.path(), arch, tie);
        let rows = rows(&cfg, &w);
        let mut full = trainer(&cfg, &w, fd_config());
        let mut lora = trainer(&cfg, &w, lora_config(4, 1e-3));
        assert_eq!(
            lora.logprobs(&pairs(&rows)).unwrap(),
            full.logprobs(&pairs(&rows)).unwrap()
        );
        let (sf, sl) = (full.backward(&rows).unwrap(), lora.backward(&rows).unwrap());
        assert!(
            (sf.loss - sl.loss).abs() <= 1e-7 * sf.loss.abs(),
            "{sf:?} vs {sl:?}"
        );
        assert_eq!(sf.tokens, sl.tokens);

        let m = Model::from_weights(&cfg, &w, &Device::Cpu).unwrap();
        let linears = m.linears();
        let want: usize = linears
            .iter()
            .map(|(_, l)| {
                let (out, inp) = l.weight.dims2().unwrap();
                4 * (out + inp)
            })
            .sum();
        assert_eq!(lora.num_params(), want, "{arch}");
        assert_eq!(
            trainer(&cfg, &w, lora_config(0, 1e-3)).num_params(),
            full.num_params()
        );
        for (name, _) in &linears {
            let ga = lora.gradient(&format!("{name}.lora_A.weight")).unwrap();
            let gb = lora.gradient(&format!("{name}.lora_B.weight")).unwrap();
            assert!(ga.iter().all(|&g| g == 0.0), "{arch} {name}: dA at B = 0");
            assert!(
                gb.iter().any(|&g| g != 0.0),
                "{arch} {name}: no gradient for B"
            );
        }
        assert!(lora.gradient("model.norm.weight").is_none());
    }
}

/// After a step (B no longer zero), the adapters' gradients match finite differences; each
/// perturbed adapter goes through a checkpoint's adapter file and `load_adapter`.
#[test]
fn lora_gradients_match_finite_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "qwen2", false);
    let rows = rows(&cfg, &w);
    let lm = load(dir.path()).unwrap();
    let mut tr = trainer(&cfg, &w, lora_config(2, 3e-2));
    tr.step(&rows).unwrap();
    tr.step(&rows).unwrap();
    let ckpt = dir.path().join("ckpt");
    tr.save(&lm.tokenizer, &ckpt).unwrap();
    let adapter = ckpt
        .join(azr_model::train::ADAPTER_DIR)
        .join(azr_model::train::ADAPTER_FILE);
    let tensors = candle_core::safetensors::load(&adapter, &Device::Cpu).unwrap();
    tr.backward(&rows).unwrap();
    let mut names: Vec<&String> = tensors
        .keys()
        .filter(|n| n.contains("layers.0.") || n.contains("layers.1.mlp.down"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 16);
    for (k, name) in names.into_iter().enumerate() {
        let param = name.strip_prefix(azr_model::train::PEFT_PREFIX).unwrap();
        let (idx, g) = largest(tr.gradient(param).unwrap());
        let loss_at = |delta: f32| {
            let mut t2 = tensors.clone();
            let t = &tensors[name];
            let mut v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            v[idx] += delta;
            t2.insert(
                name.clone(),
                Tensor::from_vec(v, t.dims(), &Device::Cpu).unwrap(),
            );
            let d = dir.path().join(format!("fd-{k}-{delta}"));
            let adapter = d.join(azr_model::train::ADAPTER_DIR);
            std::fs::create_dir_all(&adapter).unwrap();
            candle_core::safetensors::save(&t2, adapter.join(azr_model::train::ADAPTER_FILE))
                .unwrap();
            let mut t = trainer(&cfg, &w, lora_config(2, 3e-2));
            t.load_adapter(&d).unwrap();
            t.backward(&rows).unwrap().loss
        };
        assert_matches_fd(&format!("{name}[{idx}]"), g, loss_at);
    }
}

/// LoRA overfits a fixed batch; its checkpoint's Hugging Face files are the merged model, and a
/// trainer rebuilt on the base with the checkpoint's adapters and optimizer takes the same step.
#[test]
fn lora_trains_merges_on_export_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, w) = tiny(dir.path(), "llama", true);
    let lm = load(dir.path()).unwrap();
    let mut rows = rows(&cfg, &w);
    for r in &mut rows {
        r.old_logprobs.clear();
        r.advantage = 1.0;
    }
    let nll = |tr: &Trainer| {
        let lps = tr.logprobs(&pairs(&rows)).unwrap();
        let n: usize = lps.iter().map(Vec::len).sum();
        -lps.iter().flatten().map(|&x| x as f64).sum::<f64>() / n as f64
    };
    let tc = TrainConfig {
        entropy_coef: 0.0,
        ..lora_config(8, 2e-2)
    };
    let mut tr = trainer(&cfg, &w, tc);
    let start = nll(&tr);
    for _ in 0..40 {
        tr.step(&rows).unwrap();
    }
    let end = nll(&tr);
    assert!(end < 0.5 * start, "NLL {start} -> {end}");
    // The trained forward (base + adapters) and generation's merged weights agree.
    let stats = tr.backward(&rows).unwrap();
    assert!(
        (stats.logprob + end).abs() < 1e-4,
        "{} vs {}",
        stats.logprob,
        -end
    );

    let ckpt = dir.path().join("ckpt");
    tr.save(&lm.tokenizer, &ckpt).unwrap();
    let merged = load(&ckpt).unwrap();
    assert_eq!(
        response_logprobs(&merged.model, &pairs(&rows)).unwrap(),
        tr.logprobs(&pairs(&rows)).unwrap()
    );

    let mut resumed = trainer(&cfg, &w, tc);
    resumed.load_adapter(&ckpt).unwrap();
    resumed.load_optimizer(&ckpt).unwrap();
    assert_eq!(resumed.steps(), 40);
    tr.step(&rows).unwrap();
    resumed.step(&rows).unwrap();
    assert_eq!(
        resumed.logprobs(&pairs(&rows)).unwrap(),
        tr.logprobs(&pairs(&rows)).unwrap()
    );
    // A different rank cannot take these adapters.
    let mut other = trainer(&cfg, &w, lora_config(4, 2e-2));
    let err = other.load_adapter(&ckpt).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
    // And a full trainer has no adapters to load.
    assert!(trainer(&cfg, &w, TrainConfig::default())
        .load_adapter(&ckpt)
        .is_err());
}
