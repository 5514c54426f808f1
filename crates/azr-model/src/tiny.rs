//! Tiny random models (2 layers, hidden 64, a byte-level tokenizer) written as Hugging Face
//! directories, for tests where a real model is too slow (compiled with the `test-util` feature
//! only). Their outputs are noise; their shapes exercise every code path of the real
//! architectures.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::ModelConfig;
use crate::weights::Weights;

/// Vocabulary of the tiny models: the 256 byte symbols, two chat specials, and spare ids.
pub const TINY_VOCAB: usize = 300;

/// The `config.json` of a tiny model (`arch`: "llama", "qwen2" or "qwen3"; 2 layers, hidden 64).
pub fn tiny_config_json(arch: &str, tie: bool, max_positions: usize) -> serde_json::Value {
    let mut v = serde_json::json!({
        "architectures": [if arch == "llama" { "LlamaForCausalLM" } else { "Qwen2ForCausalLM" }],
        "model_type": arch,
        "vocab_size": TINY_VOCAB,
        "hidden_size": 64,
        "intermediate_size": 96,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": tie,
        "hidden_act": "silu",
        "sliding_window": max_positions,
        "max_window_layers": 2,
        "use_sliding_window": false,
        "bos_token_id": 256,
        "eos_token_id": 257,
    });
    if arch == "qwen3" {
        // Qwen3 sets head_dim explicitly; make it differ from hidden / heads to test that.
        v["head_dim"] = 24.into();
        v["attention_bias"] = false.into();
    }
    v
}

/// Random weights with HF names. Scales keep activations O(1) so logits are not all equal.
pub fn random_weights(cfg: &ModelConfig, seed: u64) -> Result<Weights> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dev = Device::Cpu;
    let mut t = |shape: &[usize], center: f32, scale: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| center + scale * (rng.gen::<f32>() * 2.0 - 1.0))
            .collect();
        Tensor::from_vec(v, shape, &dev)
    };
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    let (q, kv) = (
        cfg.num_heads * cfg.head_dim,
        cfg.num_kv_heads * cfg.head_dim,
    );
    let mut w = Weights::new();
    w.insert(
        "model.embed_tokens.weight".into(),
        t(&[cfg.vocab_size, h], 0.0, 1.0)?,
    );
    for l in 0..cfg.num_layers {
        let p = format!("model.layers.{l}");
        w.insert(format!("{p}.input_layernorm.weight"), t(&[h], 1.0, 0.2)?);
        w.insert(
            format!("{p}.post_attention_layernorm.weight"),
            t(&[h], 1.0, 0.2)?,
        );
        w.insert(
            format!("{p}.self_attn.q_proj.weight"),
            t(&[q, h], 0.0, 0.3)?,
        );
        w.insert(
            format!("{p}.self_attn.k_proj.weight"),
            t(&[kv, h], 0.0, 0.3)?,
        );
        w.insert(
            format!("{p}.self_attn.v_proj.weight"),
            t(&[kv, h], 0.0, 0.3)?,
        );
        w.insert(
            format!("{p}.self_attn.o_proj.weight"),
            t(&[h, q], 0.0, 0.2)?,
        );
        if cfg.qkv_bias {
            w.insert(format!("{p}.self_attn.q_proj.bias"), t(&[q], 0.0, 0.3)?);
            w.insert(format!("{p}.self_attn.k_proj.bias"), t(&[kv], 0.0, 0.3)?);
            w.insert(format!("{p}.self_attn.v_proj.bias"), t(&[kv], 0.0, 0.3)?);
        }
        if cfg.qk_norm {
            w.insert(
                format!("{p}.self_attn.q_norm.weight"),
                t(&[cfg.head_dim], 1.0, 0.2)?,
            );
            w.insert(
                format!("{p}.self_attn.k_norm.weight"),
                t(&[cfg.head_dim], 1.0, 0.2)?,
            );
        }
        w.insert(format!("{p}.mlp.gate_proj.weight"), t(&[i, h], 0.0, 0.2)?);
        w.insert(format!("{p}.mlp.up_proj.weight"), t(&[i, h], 0.0, 0.2)?);
        w.insert(format!("{p}.mlp.down_proj.weight"), t(&[h, i], 0.0, 0.2)?);
    }
    w.insert("model.norm.weight".into(), t(&[h], 1.0, 0.2)?);
    if !cfg.tie_embeddings {
        w.insert("lm_head.weight".into(), t(&[cfg.vocab_size, h], 0.0, 0.3)?);
    }
    Ok(w)
}

/// A byte-level BPE without merges over the 256 byte symbols, plus two chat specials.
pub fn write_tiny_tokenizer(dir: &Path) -> Result<()> {
    use tokenizers::models::bpe::{Vocab, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort();
    let mut vocab: Vocab = alphabet
        .iter()
        .enumerate()
        .map(|(i, c)| (c.to_string(), i as u32))
        .collect();
    vocab.insert("<|im_start|>".into(), 256);
    vocab.insert("<|im_end|>".into(), 257);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .map_err(|e| anyhow!("building the tiny tokenizer: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(tokenizers::decoders::byte_level::ByteLevel::default()));
    tok.add_special_tokens(vec![
        tokenizers::AddedToken::from("<|im_start|>", true),
        tokenizers::AddedToken::from("<|im_end|>", true),
    ])
    .map_err(|e| anyhow!("adding the tiny tokenizer's special tokens: {e}"))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow!("writing {}: {e}", dir.join("tokenizer.json").display()))?;
    let template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let cfg = serde_json::json!({"chat_template": template, "eos_token": "<|im_end|>", "bos_token": {"content": "<|im_start|>"}});
    let path = dir.join("tokenizer_config.json");
    std::fs::write(&path, cfg.to_string()).with_context(|| format!("writing {}", path.display()))
}

/// Writes a tiny random model as a Hugging Face directory; returns its weights too.
pub fn write_tiny_model(
    dir: &Path,
    arch: &str,
    tie: bool,
    seed: u64,
    max_positions: usize,
) -> Result<Weights> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cj = tiny_config_json(arch, tie, max_positions);
    std::fs::write(dir.join("config.json"), cj.to_string())
        .with_context(|| format!("writing {}", dir.join("config.json").display()))?;
    let cfg = ModelConfig::from_hf_json(&cj.to_string())?;
    let w = random_weights(&cfg, seed)?;
    candle_core::safetensors::save(&w, dir.join("model.safetensors"))
        .with_context(|| format!("writing {}", dir.join("model.safetensors").display()))?;
    write_tiny_tokenizer(dir)?;
    Ok(w)
}
