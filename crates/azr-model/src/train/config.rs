//! The update's settings, checked before a trainer is built.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::AdamWConfig;
use crate::lora::LoraConfig;

/// Settings of the update.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub optimizer: AdamWConfig,
    /// Clip the global gradient L2 norm to this (0 disables clipping).
    pub max_grad_norm: f64,
    /// PPO ratio clip: `[1 - clip_low, 1 + clip_high]`.
    pub clip_low: f32,
    pub clip_high: f32,
    /// Entropy bonus coefficient (the paper: 0.001 or 0).
    pub entropy_coef: f32,
    /// Padded tokens (rows x longest row) per micro-batch: bounds the activation memory (a
    /// row longer than this goes alone).
    pub micro_batch_tokens: usize,
    /// Activation checkpointing: keep only each layer's input and recompute the layer in the
    /// backward. Without it a layer keeps ~10 values per hidden unit and token (SmolLM2-135M:
    /// 23 KB per token and layer), with it 1, for ~20% more time.
    pub recompute: bool,
    /// Response tokens per chunk of the LM head (full-vocabulary logits exist for this many
    /// tokens at a time).
    pub head_chunk: usize,
    /// Train low-rank adapters on a frozen base instead of every weight (rank 0: off).
    pub lora: LoraConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: AdamWConfig::default(),
            max_grad_norm: 1.0,
            clip_low: 0.2,
            clip_high: 0.28,
            entropy_coef: 0.0,
            // Measured on SmolLM2-135M at 8 x 256 (`azr bench train`): 512 without recompute
            // is within 3% of the fastest setting and keeps the update under 3 GB.
            micro_batch_tokens: 512,
            recompute: false,
            head_chunk: 256,
            lora: LoraConfig::default(),
        }
    }
}

#[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must fail these checks too
pub(super) fn check_config(c: &TrainConfig) -> Result<()> {
    c.lora.check()?;
    let o = &c.optimizer;
    if !(o.lr.is_finite() && o.lr >= 0.0) {
        bail!("learning rate must be a non-negative number, got {}", o.lr);
    }
    if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
        bail!(
            "AdamW betas must be in [0, 1), got ({}, {})",
            o.beta1,
            o.beta2
        );
    }
    if !(o.eps > 0.0) || !(o.weight_decay >= 0.0) {
        bail!("AdamW eps must be > 0 and weight decay >= 0");
    }
    if !(c.clip_low >= 0.0 && c.clip_low < 1.0 && c.clip_high >= 0.0) {
        bail!("PPO clip range must satisfy 0 <= clip_low < 1 and clip_high >= 0");
    }
    if c.micro_batch_tokens == 0 || c.head_chunk == 0 {
        bail!("micro_batch_tokens and head_chunk must be positive");
    }
    Ok(())
}
