//! The model engine: our own Llama/Qwen2/Qwen3 decoder on candle, loaded from a GGUF file or a
//! Hugging Face directory, with its tokenizer and chat template, and batched generation.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use azr_model::{generate, load, resolve_model, row_seeds, SamplingParams};
//! let path = resolve_model("smollm2-135m", &mut |msg| eprintln!("{msg}"))?;
//! let lm = load(&path)?;
//! let hi = serde_json::json!({"role": "user", "content": "Hi!"});
//! let text = lm.tokenizer.apply_chat_template(&[hi], true)?;
//! let prompt = lm.tokenizer.encode(&text, false)?;
//! let params = SamplingParams { stop_token_ids: lm.config().eos_token_ids.clone(), ..Default::default() };
//! let out = generate(&lm.model, Some(&lm.tokenizer), &[prompt], &params, &row_seeds(0, 1))?;
//! println!("{}", lm.tokenizer.decode(&out[0].tokens, true)?);
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod config;
mod decode_attention;
pub mod decode_matmul;
pub mod fetch;
pub mod generate;
pub mod gguf;
pub mod lora;
pub mod model;
#[cfg(any(test, feature = "test-util"))]
pub mod tiny;
pub mod tokenizer;
pub mod train;
mod vexp;
pub mod weights;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::Device;

pub use config::{Arch, ModelConfig};
pub use fetch::{
    cache_dir, fetch, known_model, resolve_model, FetchError, DEFAULT_MODEL, KNOWN_MODELS,
};
pub use generate::{
    generate, generate_steered, generate_with_options, generate_with_stats, row_seeds,
    FinishReason, GenerateOptions, GenerateStats, Generation, Phase, SamplingParams, Steer,
};
pub use gguf::{write_gguf, GgufType};
pub use lora::{LoraConfig, LoraTargets};
pub use model::{ForwardCtx, KvCache, Model, Padding};
pub use tokenizer::Tokenizer;
pub use train::{TrainConfig, TrainRow, TrainStats, Trainer};

/// Where a model was loaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    Gguf(PathBuf),
    HfDir(PathBuf),
}

/// A model with its tokenizer, ready to generate.
#[derive(Clone, Debug)]
pub struct LoadedModel {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub source: ModelSource,
}

impl LoadedModel {
    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }
}

/// Loads a GGUF file or a Hugging Face directory on the CPU (f32 weights).
pub fn load(path: &Path) -> Result<LoadedModel> {
    load_on(path, &Device::Cpu)
}

pub fn load_on(path: &Path, device: &Device) -> Result<LoadedModel> {
    if path.is_dir() {
        load_hf_dir(path, device)
    } else if path.is_file() {
        load_gguf(path, device)
    } else {
        bail!("{}: no such file or directory", path.display())
    }
}

/// Loads a GGUF file: config from its metadata, tokenizer from its vocabulary and merges,
/// weights dequantized to f32.
pub fn load_gguf(path: &Path, device: &Device) -> Result<LoadedModel> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let content = gguf_file::Content::read(&mut BufReader::new(file))
        .with_context(|| format!("{} is not a readable GGUF file", path.display()))?;
    let cfg = ModelConfig::from_gguf(&content)
        .with_context(|| format!("{}: reading the model config", path.display()))?;
    let tokenizer = Tokenizer::from_gguf(&content)
        .with_context(|| format!("{}: building the tokenizer", path.display()))?;
    let weights = weights::load_gguf_weights(path, &content, &cfg, device)?;
    let model = Model::from_weights(&cfg, &weights, device)
        .with_context(|| format!("{}: building the model", path.display()))?;
    Ok(LoadedModel {
        model,
        tokenizer,
        source: ModelSource::Gguf(path.to_path_buf()),
    })
}

/// Loads a Hugging Face directory: `config.json`, `model.safetensors` (or a sharded index),
/// `tokenizer.json`, and `tokenizer_config.json` for the chat template.
pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<LoadedModel> {
    let mut cfg = ModelConfig::from_hf_config_file(&dir.join("config.json"))?;
    let tokenizer = Tokenizer::from_hf_dir(dir)?;
    // The EOS of the chat template's turns may differ from config.json's eos_token_id.
    if let Some(id) = tokenizer.eos_token().and_then(|t| tokenizer.token_to_id(t)) {
        if !cfg.eos_token_ids.contains(&id) {
            cfg.eos_token_ids.push(id);
        }
    }
    let gen_cfg = dir.join("generation_config.json");
    if let Ok(text) = std::fs::read_to_string(&gen_cfg) {
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", gen_cfg.display()))?;
        let ids: Vec<u32> = match v.get("eos_token_id") {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().map(|x| x as u32).into_iter().collect()
            }
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_u64().map(|x| x as u32))
                .collect(),
            _ => vec![],
        };
        for id in ids {
            if !cfg.eos_token_ids.contains(&id) {
                cfg.eos_token_ids.push(id);
            }
        }
    }
    let weights = weights::load_safetensors_dir(dir, device)?;
    let model = Model::from_weights(&cfg, &weights, device)
        .with_context(|| format!("{}: building the model", dir.display()))?;
    Ok(LoadedModel {
        model,
        tokenizer,
        source: ModelSource::HfDir(dir.to_path_buf()),
    })
}
