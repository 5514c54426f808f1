//! Checkpoint files of the trainer: the adapters (PEFT layout) and the AdamW state, beside the
//! Hugging Face files of the weights.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::Trainer;
use crate::tokenizer::Tokenizer;

impl Trainer {
    /// Saves a checkpoint directory atomically: the Hugging Face files, `optimizer.safetensors`
    /// (AdamW moments) and `trainer_state.json` (optimizer step and config).
    /// Under LoRA the Hugging Face files hold the merged weights (so any loader reads the
    /// trained model) and `adapter.safetensors` the adapters themselves ([`Self::load_adapter`]).
    pub fn save(&self, tokenizer: &Tokenizer, dir: &Path) -> Result<()> {
        crate::checkpoint::create_dir_atomically(dir, |tmp| {
            crate::checkpoint::write_hf_files(&self.inference, tokenizer, tmp)?;
            if self.config.lora.enabled() {
                self.write_adapter(tmp)?;
            }
            self.write_optimizer(tmp)
        })
    }

    /// PEFT's layout, in the subfolder [`ADAPTER_DIR`]: `adapter_model.safetensors` with PEFT's
    /// key names and an `adapter_config.json` PEFT's `LoraConfig` reads, so
    /// `PeftModel.from_pretrained(base, dir/adapter)` loads the adapters onto the base model. Not
    /// beside the merged files: transformers, when PEFT is installed, would apply an
    /// `adapter_config.json` it finds there on top of the already merged weights.
    fn write_adapter(&self, dir: &Path) -> Result<()> {
        self.write_peft(&dir.join(ADAPTER_DIR))
    }

    /// Writes the adapters alone, in PEFT's layout, as a new directory `dir` (atomically): what
    /// a serving engine loads as a LoRA adapter.
    pub fn save_adapter(&self, dir: &Path) -> Result<()> {
        if !self.config.lora.enabled() {
            bail!("save_adapter needs a LoRA trainer (lora.rank > 0)");
        }
        crate::checkpoint::create_dir_atomically(dir, |tmp| self.write_peft(tmp))
    }

    fn write_peft(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tensors: HashMap<String, Tensor> = self
            .params
            .iter()
            .map(|p| {
                (
                    format!("{PEFT_PREFIX}{}", p.name),
                    p.var.as_tensor().clone(),
                )
            })
            .collect();
        let path = dir.join(ADAPTER_FILE);
        candle_core::safetensors::save(&tensors, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        let meta = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": self.config.lora.rank,
            "lora_alpha": self.config.lora.alpha,
            "target_modules": self.config.lora.targets.names(),
            "lora_dropout": 0.0,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
        });
        let path = dir.join("adapter_config.json");
        std::fs::write(&path, serde_json::to_string_pretty(&meta)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Restores the LoRA adapters saved by [`Self::save`] into a trainer built on the same base
    /// model with the same LoRA config (a resume: the base comes from the original model, not
    /// from the checkpoint's merged weights).
    pub fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        if !self.config.lora.enabled() {
            bail!("load_adapter needs a LoRA trainer (lora.rank > 0)");
        }
        // Checkpoints written before the PEFT layout hold `adapter.safetensors`, unprefixed.
        let path = [
            dir.join(ADAPTER_DIR).join(ADAPTER_FILE),
            dir.join(LEGACY_ADAPTER_FILE),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| dir.join(ADAPTER_DIR).join(ADAPTER_FILE));
        let tensors: HashMap<String, Tensor> =
            candle_core::safetensors::load(&path, self.model.device())
                .with_context(|| format!("reading {}", path.display()))?
                .into_iter()
                .map(|(k, t)| match k.strip_prefix(PEFT_PREFIX) {
                    Some(name) => (name.to_string(), t),
                    None => (k, t),
                })
                .collect();
        if tensors.len() != self.params.len() {
            bail!(
                "{} holds {} tensors, this LoRA config makes {} (a different rank or targets?)",
                path.display(),
                tensors.len(),
                self.params.len()
            );
        }
        for p in &self.params {
            p.var.set(saved(&tensors, &path, &p.name, p.var.dims())?)?;
        }
        self.inference = self.model.merged()?;
        Ok(())
    }

    fn write_optimizer(&self, dir: &Path) -> Result<()> {
        let device = self.model.device();
        let mut tensors = HashMap::new();
        for (i, p) in self.params.iter().enumerate() {
            let shape = p.var.dims().to_vec();
            tensors.insert(
                format!("m.{}", p.name),
                Tensor::from_slice(&self.state.m[i], shape.as_slice(), device)?,
            );
            tensors.insert(
                format!("v.{}", p.name),
                Tensor::from_slice(&self.state.v[i], shape.as_slice(), device)?,
            );
        }
        let path = dir.join("optimizer.safetensors");
        candle_core::safetensors::save(&tensors, &path)
            .with_context(|| format!("writing {}", path.display()))?;
        let state = serde_json::json!({ "optimizer_step": self.state.step, "config": self.config });
        let path = dir.join("trainer_state.json");
        std::fs::write(&path, serde_json::to_string_pretty(&state)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Restores the AdamW moments and step from a checkpoint written by [`Self::save`] (the
    /// weights come from loading the directory as a model). The config is not restored: the
    /// caller's config wins.
    pub fn load_optimizer(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let step = v
            .get("optimizer_step")
            .and_then(|s| s.as_u64())
            .with_context(|| format!("{}: no optimizer_step", path.display()))?;
        let path = dir.join("optimizer.safetensors");
        let tensors = candle_core::safetensors::load(&path, self.model.device())
            .with_context(|| format!("reading {}", path.display()))?;
        for (i, p) in self.params.iter().enumerate() {
            for (kind, buf) in [("m", &mut self.state.m[i]), ("v", &mut self.state.v[i])] {
                let name = format!("{kind}.{}", p.name);
                let t = saved(&tensors, &path, &name, p.var.dims())?;
                *buf = t.flatten_all()?.to_vec1::<f32>()?;
            }
        }
        self.state.step = step;
        Ok(())
    }
}

/// The tensor `name` of a checkpoint file, checked to have the parameter's shape.
fn saved<'a>(
    tensors: &'a HashMap<String, Tensor>,
    path: &Path,
    name: &str,
    dims: &[usize],
) -> Result<&'a Tensor> {
    let t = tensors
        .get(name)
        .with_context(|| format!("{}: missing {name}", path.display()))?;
    if t.dims() != dims {
        bail!(
            "{}: {name} has shape {:?}, the trainer's parameter {dims:?}",
            path.display(),
            t.dims()
        );
    }
    Ok(t)
}

/// The subfolder of a checkpoint that holds its LoRA adapters (PEFT's layout).
pub const ADAPTER_DIR: &str = "adapter";
/// The LoRA adapters' tensors in [`ADAPTER_DIR`], PEFT's file name.
pub const ADAPTER_FILE: &str = "adapter_model.safetensors";
/// PEFT's prefix of the adapter tensors' names (`base_model.model.` + the module path).
pub const PEFT_PREFIX: &str = "base_model.model.";
const LEGACY_ADAPTER_FILE: &str = "adapter.safetensors";
