//! The `[rollout]` section of a run's config.

use std::path::PathBuf;

use azr_model::GgufType;
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
    /// llama.cpp's `llama-server` in router mode (`--models-dir` = `rollout.dir`); full weights
    /// only, written as GGUF.
    LlamaServer,
}

impl Engine {
    /// The name the config takes (`rollout.engine`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Local => "local",
            Engine::Sglang => "sglang",
            Engine::Vllm => "vllm",
            Engine::LlamaServer => "llama-server",
        }
    }
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
    /// llama-server only: the type of the pushed GGUF's matrices, "f32" (exact, the default),
    /// "f16" or "q8_0".
    #[serde(default)]
    pub gguf: GgufType,
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
            gguf: GgufType::default(),
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
        if self.engine == Engine::LlamaServer && self.weights == WeightsMode::Lora {
            anyhow::bail!(
                "rollout.engine = \"llama-server\" takes weights = \"full\" only: llama-server \
                 loads LoRA adapters only at start-up (--lora), it cannot load new ones over HTTP; \
                 the merged weights are sent instead"
            );
        }
        if self.engine == Engine::LlamaServer && self.dir.as_os_str().is_empty() {
            anyhow::bail!(
                "rollout.engine = \"llama-server\" needs rollout.dir: the directory the server \
                 was started with as --models-dir, where each update's GGUF is written"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(engine: Engine, weights: WeightsMode, dir: &str) -> RolloutConfig {
        RolloutConfig {
            engine,
            url: "http://127.0.0.1:8080".into(),
            weights,
            dir: dir.into(),
            ..RolloutConfig::default()
        }
    }

    #[test]
    fn each_engine_takes_the_weights_it_can_load() {
        let refused = |c: RolloutConfig, lora: bool, why: &str| {
            let err = c.check(lora).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        };
        refused(cfg(Engine::Vllm, WeightsMode::Full, ""), true, "LoRA");
        refused(
            cfg(Engine::LlamaServer, WeightsMode::Lora, "/w"),
            true,
            "start-up",
        );
        refused(
            cfg(Engine::LlamaServer, WeightsMode::Full, ""),
            false,
            "--models-dir",
        );
        refused(
            cfg(Engine::Sglang, WeightsMode::Lora, ""),
            false,
            "optim.lora.rank",
        );
        let bad_url = RolloutConfig {
            url: "gpu-node:30000".into(),
            ..cfg(Engine::Sglang, WeightsMode::Full, "")
        };
        refused(bad_url, false, "http://");
        for (c, lora) in [
            (cfg(Engine::Sglang, WeightsMode::Full, ""), false),
            (cfg(Engine::Sglang, WeightsMode::Lora, ""), true),
            (cfg(Engine::Vllm, WeightsMode::Lora, ""), true),
            (cfg(Engine::LlamaServer, WeightsMode::Full, "/w"), true),
            (RolloutConfig::default(), false),
        ] {
            c.check(lora).unwrap();
        }
    }
}
