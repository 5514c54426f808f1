//! Tiny random Llama and Qwen2 models written as Hugging Face directories (safetensors +
//! config.json + tokenizer.json): our decoder against candle-transformers' own implementations,
//! our sampling log-probs against a teacher-forced forward, batched against one-at-a-time
//! generation, and shared or chunked prefills against plain ones.

use std::collections::HashMap;
use std::path::Path;

use azr_model::model::left_pad;
use azr_model::tiny::{write_tiny_model, TINY_VOCAB};
use azr_model::{
    generate, generate_with_options, load, row_seeds, FinishReason, GenerateOptions, Model,
    ModelConfig, SamplingParams,
};
use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::VarBuilder;

const VOCAB: usize = TINY_VOCAB;

fn write_model(dir: &Path, arch: &str, tie: bool, seed: u64) -> HashMap<String, Tensor> {
    write_tiny_model(dir, arch, tie, seed, 128).unwrap()
}

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 17, 200, 3, 99, 42, 7, 250, 11],
        vec![88, 1],
        vec![256, 72, 105, 10, 257, 10, 256, 97],
        vec![13],
    ]
}

fn assert_close(ours: &[f32], reference: &[f32], what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    if std::env::var("AZR_SHOW_DIFF").is_ok() {
        eprintln!("{what}: diff {diff:e} scale {scale}");
    }
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max abs diff {diff} vs max |logit| {scale} (relative {})",
        diff / scale
    );
}

/// Our teacher-forced logits for each row, `[row][pos] -> Vec<f32>`, from one padded batch.
fn our_logits(model: &Model, rows: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let (logits, padding) = model.forward_padded(rows, 0).unwrap();
    let all: Vec<Vec<Vec<f32>>> = logits.to_vec3().unwrap();
    all.into_iter()
        .zip(&padding.pad)
        .map(|(row, &pad)| row[pad..].to_vec())
        .collect()
}

#[test]
fn llama_logits_match_candle_transformers() {
    for tie in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_model(dir.path(), "llama", tie, 1);
        let lm = load(dir.path()).unwrap();
        let ours = our_logits(&lm.model, &prompts());

        let cfg: candle_transformers::models::llama::LlamaConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        let cfg = cfg.into_config(false);
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let reference = candle_transformers::models::llama::Llama::load(vb, &cfg).unwrap();
        for (r, prompt) in prompts().iter().enumerate() {
            // Token by token through the reference's own KV cache: its logits at every position.
            let mut cache = candle_transformers::models::llama::Cache::new(
                true,
                DType::F32,
                &cfg,
                &Device::Cpu,
            )
            .unwrap();
            for (pos, &tok) in prompt.iter().enumerate() {
                let x = Tensor::new(&[[tok]], &Device::Cpu).unwrap();
                let l: Vec<f32> = reference
                    .forward(&x, pos, &mut cache)
                    .unwrap()
                    .i(0)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert_close(
                    &ours[r][pos],
                    &l,
                    &format!("llama tie={tie} row {r} pos {pos}"),
                );
            }
            // And the whole prompt at once (its prefill path, with its causal mask).
            let mut cache = candle_transformers::models::llama::Cache::new(
                false,
                DType::F32,
                &cfg,
                &Device::Cpu,
            )
            .unwrap();
            let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            let l: Vec<f32> = reference
                .forward(&x, 0, &mut cache)
                .unwrap()
                .i(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_close(
                ours[r].last().unwrap(),
                &l,
                &format!("llama tie={tie} row {r} prefill"),
            );
        }
    }
}

/// Compares our logits with a candle-transformers model fed one token at a time (every position)
/// and with the whole prompt at once (last position). `forward(x, pos, fresh)` runs the reference
/// on `x` at offset `pos`, clearing its KV cache first when `fresh`.
fn compare_stepwise_and_prefill(
    ours: &[Vec<Vec<f32>>],
    name: &str,
    forward: &mut dyn FnMut(&Tensor, usize, bool) -> Tensor,
) {
    let to_vec = |t: Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    for (r, prompt) in prompts().iter().enumerate() {
        for (pos, &tok) in prompt.iter().enumerate() {
            let x = Tensor::new(&[[tok]], &Device::Cpu).unwrap();
            let l = to_vec(forward(&x, pos, pos == 0));
            assert_close(&ours[r][pos], &l, &format!("{name} row {r} pos {pos}"));
        }
        let x = Tensor::new(prompt.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = to_vec(forward(&x, 0, true));
        assert_close(
            ours[r].last().unwrap(),
            &l,
            &format!("{name} row {r} prefill"),
        );
    }
}

#[test]
fn qwen2_logits_match_candle_transformers() {
    for tie in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_model(dir.path(), "qwen2", tie, 2);
        let lm = load(dir.path()).unwrap();
        assert!(lm.config().qkv_bias);
        let ours = our_logits(&lm.model, &prompts());

        let cfg: candle_transformers::models::qwen2::Config =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let mut reference =
            candle_transformers::models::qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
        compare_stepwise_and_prefill(&ours, &format!("qwen2 tie={tie}"), &mut |x, pos, fresh| {
            if fresh {
                reference.clear_kv_cache();
            }
            reference.forward(x, pos).unwrap()
        });
    }
}

#[test]
fn qwen3_logits_match_candle_transformers() {
    for tie in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_model(dir.path(), "qwen3", tie, 2);
        let lm = load(dir.path()).unwrap();
        assert!(lm.config().qk_norm && !lm.config().qkv_bias);
        assert_eq!(lm.config().head_dim, 24);
        let ours = our_logits(&lm.model, &prompts());

        let cfg: candle_transformers::models::qwen3::Config =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
                .unwrap();
        let vb = VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu);
        let mut reference =
            candle_transformers::models::qwen3::ModelForCausalLM::new(&cfg, vb).unwrap();
        compare_stepwise_and_prefill(&ours, &format!("qwen3 tie={tie}"), &mut |x, pos, fresh| {
            if fresh {
                reference.clear_kv_cache();
            }
            reference.forward(x, pos).unwrap()
        });
    }
}

/// log p(token) under a teacher-forced forward of prompt + generation, for each generated token.
fn teacher_forced_logprobs(model: &Model, prompt: &[u32], generated: &[u32]) -> Vec<f32> {
    let full: Vec<u32> = prompt.iter().chain(generated).copied().collect();
    let (tokens, padding) = left_pad(std::slice::from_ref(&full), 0, &Device::Cpu).unwrap();
    let hidden = model.forward(&tokens, &padding).unwrap();
    let logp = candle_nn::ops::log_softmax(&model.logits(&hidden).unwrap(), D::Minus1).unwrap();
    let logp: Vec<Vec<f32>> = logp.i(0).unwrap().to_vec2().unwrap();
    (0..generated.len())
        .map(|j| logp[prompt.len() - 1 + j][generated[j] as usize])
        .collect()
}

fn sampled_params() -> SamplingParams {
    SamplingParams {
        temperature: 0.9,
        top_p: 0.95,
        top_k: 200,
        max_new_tokens: 12,
        stop_strings: vec![],
        stop_token_ids: vec![],
    }
}

#[test]
fn sampled_logprobs_equal_teacher_forced() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "qwen2", false, 3);
    let lm = load(dir.path()).unwrap();
    let prompts = prompts();
    for params in [sampled_params(), SamplingParams::greedy(12)] {
        let out = generate(
            &lm.model,
            None,
            &prompts,
            &params,
            &row_seeds(7, prompts.len()),
        )
        .unwrap();
        for (prompt, g) in prompts.iter().zip(&out) {
            assert_eq!(g.tokens.len(), 12);
            assert_eq!(g.finish, FinishReason::Length);
            let tf = teacher_forced_logprobs(&lm.model, prompt, &g.tokens);
            for (a, b) in g.logprobs.iter().zip(&tf) {
                assert!((a - b).abs() < 1e-4, "sampled {a} vs teacher-forced {b}");
            }
        }
    }
}

#[test]
fn batched_generation_equals_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "llama", true, 4);
    let lm = load(dir.path()).unwrap();
    let prompts = prompts();
    let seeds = row_seeds(11, prompts.len());
    for params in [SamplingParams::greedy(10), sampled_params()] {
        let batched = generate(&lm.model, None, &prompts, &params, &seeds).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let single = generate(
                &lm.model,
                None,
                std::slice::from_ref(p),
                &params,
                &[seeds[i]],
            )
            .unwrap();
            assert_eq!(
                batched[i].tokens, single[0].tokens,
                "row {i}, temperature {}",
                params.temperature
            );
            for (a, b) in batched[i].logprobs.iter().zip(&single[0].logprobs) {
                assert!((a - b).abs() < 1e-4);
            }
        }
    }
    // Different seeds give different samples (the seed is really used).
    let a = generate(&lm.model, None, &prompts[..1], &sampled_params(), &[1]).unwrap();
    let b = generate(&lm.model, None, &prompts[..1], &sampled_params(), &[2]).unwrap();
    assert_ne!(a[0].tokens, b[0].tokens);
}

#[test]
fn eos_and_stop_strings_end_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "llama", false, 5);
    let lm = load(dir.path()).unwrap();
    let prompts = prompts();
    let greedy = generate(
        &lm.model,
        None,
        &prompts,
        &SamplingParams::greedy(8),
        &row_seeds(0, 4),
    )
    .unwrap();
    // Make row 0's third greedy token a stop token: the row must stop there, others go on.
    let stop = greedy[0].tokens[2];
    let params = SamplingParams {
        stop_token_ids: vec![stop],
        ..SamplingParams::greedy(8)
    };
    let out = generate(&lm.model, None, &prompts, &params, &row_seeds(0, 4)).unwrap();
    let first = greedy[0].tokens.iter().position(|&t| t == stop).unwrap();
    assert_eq!(out[0].tokens, greedy[0].tokens[..=first]);
    assert_eq!(out[0].finish, FinishReason::Eos);
    for i in 1..4 {
        match greedy[i].tokens.iter().position(|&t| t == stop) {
            Some(p) => assert_eq!(out[i].tokens, greedy[i].tokens[..=p]),
            None => assert_eq!(out[i].tokens, greedy[i].tokens),
        }
    }
    // A stop string: the decoded text of row 1's first three tokens.
    let text = lm.tokenizer.decode(&greedy[1].tokens[..3], false).unwrap();
    let params = SamplingParams {
        stop_strings: vec![text.clone()],
        ..SamplingParams::greedy(8)
    };
    let out = generate(
        &lm.model,
        Some(&lm.tokenizer),
        &prompts[1..2],
        &params,
        &[0],
    )
    .unwrap();
    assert!(out[0].tokens.len() <= 3, "{:?}", out[0].tokens);
    assert_eq!(out[0].finish, FinishReason::Stop(text));
}

#[test]
fn hf_directory_tokenizer_and_chat_template() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "llama", true, 6);
    let lm = load(dir.path()).unwrap();
    assert_eq!(lm.config().eos_token_ids, vec![257]);
    let text = lm
        .tokenizer
        .apply_chat_template(
            &[serde_json::json!({"role": "user", "content": "Hi"})],
            true,
        )
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = lm.tokenizer.encode(&text, false).unwrap();
    assert_eq!(ids[0], 256);
    assert_eq!(lm.tokenizer.decode(&ids, false).unwrap(), text);
}

#[test]
fn broken_files_give_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let weights = write_model(dir.path(), "llama", false, 7);
    // Wrong shape for one tensor.
    let mut bad = weights.clone();
    bad.insert(
        "model.norm.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&bad, dir.path().join("model.safetensors")).unwrap();
    let err = format!("{:#}", load(dir.path()).unwrap_err());
    assert!(
        err.contains("model.norm.weight") && err.contains("shape"),
        "{err}"
    );
    // A missing tensor.
    let mut bad = weights.clone();
    bad.remove("lm_head.weight");
    candle_core::safetensors::save(&bad, dir.path().join("model.safetensors")).unwrap();
    let err = format!("{:#}", load(dir.path()).unwrap_err());
    assert!(err.contains("lm_head.weight"), "{err}");
    // Garbage safetensors, garbage config, garbage GGUF.
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").unwrap();
    let err = format!("{:#}", load(dir.path()).unwrap_err());
    assert!(err.contains("model.safetensors"), "{err}");
    std::fs::write(
        dir.path().join("config.json"),
        b"{\"model_type\": \"gpt-neox\"}",
    )
    .unwrap();
    let err = format!("{:#}", load(dir.path()).unwrap_err());
    assert!(err.contains("config.json"), "{err}");
    let gguf = dir.path().join("x.gguf");
    std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let err = format!("{:#}", load(&gguf).unwrap_err());
    assert!(err.contains("x.gguf"), "{err}");
    // Out-of-vocabulary prompt tokens.
    write_model(dir.path(), "llama", false, 7);
    let lm = load(dir.path()).unwrap();
    let err = generate(
        &lm.model,
        None,
        &[vec![VOCAB as u32]],
        &SamplingParams::greedy(2),
        &[0],
    )
    .unwrap_err();
    assert!(err.to_string().contains("vocabulary"), "{err}");
}

/// The teacher-forced forward is differentiable end to end: built over `Var`s, every weight gets
/// a non-zero gradient (candle's fused ops would silently drop most of them).
#[test]
fn every_weight_gets_a_gradient() {
    for arch in ["llama", "qwen2", "qwen3"] {
        let dir = tempfile::tempdir().unwrap();
        let weights = write_model(dir.path(), arch, arch == "llama", 8);
        let cfg = ModelConfig::from_hf_config_file(&dir.path().join("config.json")).unwrap();
        let vars: HashMap<String, candle_core::Var> = weights
            .iter()
            .map(|(k, t)| (k.clone(), candle_core::Var::from_tensor(t).unwrap()))
            .collect();
        let as_tensors = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let model = Model::from_weights(&cfg, &as_tensors, &Device::Cpu).unwrap();
        let (logits, _) = model.forward_padded(&prompts(), 0).unwrap();
        let loss = candle_nn::ops::log_softmax(&logits, D::Minus1)
            .unwrap()
            .narrow(2, 0, 7)
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in &vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{arch}: no gradient for {name}"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "{arch}: zero gradient for {name}");
        }
        assert_eq!(model.named_weights().len(), vars.len());
    }
}

/// A steering that appends `text` when a row first stops (for the `reason` it expects), then
/// lets it sample `budget` more tokens with `stops` (which the appended text itself contains).
struct AppendOnce {
    text: String,
    budget: usize,
}

impl azr_model::Steer for AppendOnce {
    fn start(&self, _row: usize) -> azr_model::Phase {
        azr_model::Phase {
            budget: 3,
            stop_strings: vec![],
        }
    }
    fn on_stop(
        &self,
        _row: usize,
        text: &str,
        _reason: &FinishReason,
    ) -> Option<(String, azr_model::Phase)> {
        (!text.contains(&self.text)).then(|| {
            (
                self.text.clone(),
                azr_model::Phase {
                    budget: self.budget,
                    stop_strings: vec![self.text.clone()],
                },
            )
        })
    }
}

#[test]
fn steering_appends_feeds_and_masks_text() {
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), "qwen2", false, 7);
    let lm = load(dir.path()).unwrap();
    let prompt = prompts()[1].clone();
    let greedy = |p: &[u32], n: usize| {
        generate(
            &lm.model,
            None,
            &[p.to_vec()],
            &SamplingParams::greedy(n),
            &[0],
        )
        .unwrap()[0]
            .tokens
            .clone()
    };
    let steer = AppendOnce {
        text: "ab".into(),
        budget: 2,
    };
    let appended = lm.tokenizer.encode("ab", false).unwrap();
    let steered = |params: &SamplingParams| {
        azr_model::generate_steered(
            &lm.model,
            &lm.tokenizer,
            std::slice::from_ref(&prompt),
            params,
            &[0],
            &steer,
        )
        .unwrap()
        .0
        .remove(0)
    };
    let g = &steered(&SamplingParams::greedy(16));
    // three sampled tokens (the first phase's budget), the appended ones, two more sampled
    let first = greedy(&prompt, 3);
    assert_eq!(g.tokens[..3], first[..]);
    assert_eq!(g.tokens[3..3 + appended.len()], appended[..]);
    assert_eq!(g.tokens.len(), 3 + appended.len() + 2);
    let mask: Vec<bool> = [vec![true; 3], vec![false; appended.len()], vec![true; 2]].concat();
    assert_eq!(g.sampled, mask);
    assert!(g.logprobs[3..3 + appended.len()].iter().all(|&l| l == 0.0));
    // the appended tokens were fed: the continuation is what the model says after them, and the
    // appended text (which is a stop string of the new phase) did not stop the row
    let context = [prompt.clone(), first.clone(), appended.clone()].concat();
    assert_eq!(g.tokens[3 + appended.len()..], greedy(&context, 2)[..]);
    assert_eq!(g.finish, FinishReason::Length);

    // An end of turn the steering continues from is dropped: the appended text takes its place.
    let eos = first[1];
    let params = SamplingParams {
        stop_token_ids: vec![eos],
        ..SamplingParams::greedy(16)
    };
    let g = &steered(&params);
    let upto = first.iter().position(|&t| t == eos).unwrap();
    assert_eq!(g.tokens[..upto], first[..upto]);
    assert_eq!(g.tokens[upto..upto + appended.len()], appended[..]);
    assert!(!g.sampled[upto]);
    let context = [prompt.clone(), first[..upto].to_vec(), appended.clone()].concat();
    let after = &g.tokens[upto + appended.len()..];
    let expect = greedy(&context, 2);
    // the continuation may itself end at the end-of-turn token
    let n = after.len();
    assert!(
        n >= 1 && after[..] == expect[..n],
        "{after:?} vs {expect:?}"
    );
}

#[test]
fn a_chunked_prefill_generates_what_a_whole_one_does() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), "qwen2", false, 5, 256).unwrap();
    let lm = load(dir.path()).unwrap();
    // 150 and 20 tokens: with the smallest budget the prefill runs in chunks of 64 (a unit test
    // in generate.rs checks the chunk size).
    let prompts = vec![
        (0..150u32).map(|i| (i * 37 + 5) % 250).collect::<Vec<_>>(),
        (0..20u32).map(|i| (i * 11 + 3) % 250).collect(),
    ];
    let params = SamplingParams::greedy(16);
    let seeds = row_seeds(3, 2);
    let run = |prefill_bytes| {
        let options = GenerateOptions {
            prefill_bytes,
            ..GenerateOptions::default()
        };
        generate_with_options(&lm.model, None, &prompts, &params, &seeds, None, &options)
    };
    let (whole, _) = run(usize::MAX).unwrap();
    let (chunked, _) = run(0).unwrap();
    for (w, c) in whole.iter().zip(&chunked) {
        assert_eq!(w.tokens, c.tokens);
        for (a, b) in w.logprobs.iter().zip(&c.logprobs) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn shared_prompts_and_prefixes_generate_what_unshared_rows_do() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_model(dir.path(), "qwen2", false, 6, 256).unwrap();
    let lm = load(dir.path()).unwrap();
    // A 70-token common prefix (two prefill chunks at the smallest budget), then suffixes:
    // one row twice, one padded past the prefix, one not padded.
    let prefix: Vec<u32> = (0..70u32).map(|i| (i * 13 + 1) % 250).collect();
    let with = |tail: &[u32]| [prefix.as_slice(), tail].concat();
    let prompts = vec![
        with(&[7, 8, 9]),
        with(&[200]),
        with(&[7, 8, 9]),
        with(&(0..90u32).map(|i| (i * 7 + 2) % 250).collect::<Vec<_>>()),
        with(&(0..40u32).map(|i| (i * 5 + 4) % 250).collect::<Vec<_>>()),
    ];
    let seeds = row_seeds(5, prompts.len());
    let sampled = SamplingParams {
        temperature: 0.9,
        top_k: 100,
        ..SamplingParams::greedy(12)
    };
    for params in [SamplingParams::greedy(12), sampled] {
        for budget in [0, usize::MAX] {
            let options = GenerateOptions {
                prefill_bytes: budget,
                ..GenerateOptions::default()
            };
            let run = |p: &[Vec<u32>], s: &[u64]| {
                generate_with_options(&lm.model, None, p, &params, s, None, &options).unwrap()
            };
            let (shared, stats) = run(&prompts, &seeds);
            let all: usize = prompts.iter().map(Vec::len).sum();
            assert_eq!(stats.prefill_tokens, all);
            // The duplicate runs not at all, the prefix once: 70 + 3 + 1 + 90 + 40.
            assert_eq!(stats.prefill_computed, 70 + 3 + 1 + 90 + 40);
            for (i, p) in prompts.iter().enumerate() {
                let (alone, alone_stats) = run(std::slice::from_ref(p), &seeds[i..=i]);
                assert_eq!(alone_stats.prefill_computed, p.len());
                let what = format!("row {i}, t {}, budget {budget}", params.temperature);
                assert_eq!(shared[i].tokens, alone[0].tokens, "{what}");
                for (a, b) in shared[i].logprobs.iter().zip(&alone[0].logprobs) {
                    assert!((a - b).abs() < 1e-4, "{what}: {a} vs {b}");
                }
            }
            if params.temperature > 0.0 {
                // Two samples of one prompt share its prefill, not their seeds.
                assert_ne!(shared[0].tokens, shared[2].tokens);
            }
        }
    }
    // One prompt for every row: prefilled once.
    let same = vec![prompts[1].clone(); 3];
    let run = |share_prefill| {
        let options = GenerateOptions {
            share_prefill,
            ..GenerateOptions::default()
        };
        let greedy = SamplingParams::greedy(4);
        generate_with_options(
            &lm.model,
            None,
            &same,
            &greedy,
            &row_seeds(1, 3),
            None,
            &options,
        )
        .unwrap()
    };
    let ((shared, stats), (unshared, unshared_stats)) = (run(true), run(false));
    assert_eq!(stats.prefill_computed, prompts[1].len());
    assert_eq!(unshared_stats.prefill_computed, 3 * prompts[1].len());
    for (a, b) in shared.iter().zip(&unshared) {
        assert_eq!(a.tokens, b.tokens);
    }
}
