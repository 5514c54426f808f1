//! The `[rollout]` section of a run's config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which engine samples the rollouts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// The candle engine in this process (the default).
    #[default]
    Local,
    /// An SGLang server (`python -m sglang.launch_server`), over HTTP.
    Sglang,
    /// A vLLM server (`vllm serve`), over its OpenAI routes; LoRA weights only.
    Vllm,
}

/// How the trainer's weights reach a remote engine after each update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightsMode {
    /// A whole Hugging Face directory per update (`/update_weights_from_disk`).
    #[default]
    Full,
    /// The LoRA adapters alone, in PEFT's layout (`/load_lora_adapter`); needs `optim.lora`.
    Lora,
}

/// Where rollouts are generated. `engine = "local"` ignores the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    #[serde(default)]
    pub engine: Engine,
    /// The engine's base URL, e.g. `http://10.0.0.5:30000` (plain http).
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub weights: WeightsMode,
    /// A directory both this process and the engine can read (shared storage), where each
    /// update's weights are written. Empty: `engine-weights` in the run directory, which suits
    /// an engine on this machine.
    #[serde(default)]
    pub dir: PathBuf,
    /// Seconds one request may take before the run stops with an error.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: u64,
}

fn default_timeout_s() -> u64 {
    600
}

impl Default for RolloutConfig {
    fn default() -> Self {
        RolloutConfig {
            engine: Engine::Local,
            url: String::new(),
            weights: WeightsMode::Full,
            dir: PathBuf::new(),
            timeout_s: default_timeout_s(),
        }
    }
}

impl RolloutConfig {
    /// Checks what a remote engine needs; `lora` says whether the trainer trains adapters.
    pub fn check(&self, lora: bool) -> anyhow::Result<()> {
        if self.engine == Engine::Local {
            return Ok(());
        }
        if !self.url.starts_with("http://") {
            anyhow::bail!(
                "rollout.url must be a plain http:// URL of the engine (got {:?})",
                self.url
            );
        }
        if self.timeout_s == 0 {
            anyhow::bail!("rollout.timeout_s must be at least 1");
        }
        if self.engine == Engine::Vllm && self.weights == WeightsMode::Full {
            anyhow::bail!(
                "rollout.engine = \"vllm\" takes weights = \"lora\" only: stock vLLM loads new full \
                 weights only from a torch process (NCCL or CUDA IPC), not from a directory over \
                 HTTP; train LoRA adapters (optim.lora.rank > 0), or use engine = \"sglang\""
            );
        }
        if self.weights == WeightsMode::Lora && !lora {
            anyhow::bail!(
                "rollout.weights = \"lora\" needs LoRA training (optim.lora.rank > 0); \
                 use weights = \"full\" otherwise"
            );
        }
        Ok(())
    }
}
