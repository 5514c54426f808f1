//! The policy-gradient update: teacher-forced log-probs of the response tokens, the PPO clipped
//! surrogate with per-token advantages (TRR++), backward, global grad-norm clip and AdamW.
//!
//! How one [`Trainer::step`] runs:
//! 1. Rows are packed into micro-batches of at most `micro_batch_tokens` padded tokens; the
//!    loss is a token mean over the **whole** batch, so gradients simply add up across
//!    micro-batches (gradient accumulation).
//! 2. Per micro-batch the decoder runs layer by layer through the hand-written blocks
//!    ([`block`]: forward and backward over f32 slices, one gemm per product). Without
//!    `recompute` each layer keeps the activations its backward needs; with it (activation
//!    checkpointing) only each layer's input is kept and the layer is run again during the
//!    backward.
//! 3. The final norm's output for the response positions goes through the LM head in chunks
//!    with a hand-written backward ([`head`]): no full-vocabulary logits exist at once.
//! 4. The backward walks the layers from the top; each block adds its weights' gradients into
//!    the buffers and returns `dL/dx` for the layer below. Embedding rows get their gradient
//!    by a scatter-add.
//! 5. Gradients are clipped to `max_grad_norm` (global L2 norm) and AdamW updates every weight in
//!    place ([`adamw`]).
//!
//! With LoRA (`lora.rank > 0`, [`crate::lora`]) the base weights are frozen: the blocks read
//! them but compute no gradient for them; only the adapters are parameters, and embedding,
//! norms and LM head are frozen. Generation runs a merged copy of the weights, refreshed after
//! every update.
//!
//! candle's autograd over [`Model::block_forward`] (with the custom ops of [`ops`]) remains as
//! the reference the tests check the hand-written blocks against.

pub mod adamw;
mod block;
mod head;
mod kernels;
mod objective;
pub mod ops;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

pub use adamw::{AdamWConfig, AdamWState};
use head::{add_into, cpu_f32, head_backward, with_cpu_slice, HeadSums, HeadTokens, TokenLoss};

use crate::lora::{LoraAdapter, LoraConfig};
use crate::model::{left_pad, Model};
use crate::tokenizer::Tokenizer;

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

/// One trained sequence: the advantage goes on every sampled response token.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrainRow {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs of `response` at sampling time (the PPO ratio's denominator). Empty: take the
    /// current policy's (ratio 1, what one update on fresh rollouts gives anyway).
    pub old_logprobs: Vec<f32>,
    /// Per response token: sampled by the policy (true) or written by the environment (false).
    /// Environment tokens are context, like the prompt: no loss, no ratio, no entropy, and they
    /// do not count in the token mean. Empty: every token was sampled.
    pub sampled: Vec<bool>,
    pub advantage: f32,
}

impl TrainRow {
    /// Whether response token `j` is trained on.
    pub fn trains(&self, j: usize) -> bool {
        self.sampled.get(j).copied().unwrap_or(true)
    }

    /// Response tokens trained on.
    pub fn trained_tokens(&self) -> usize {
        (0..self.response.len()).filter(|&j| self.trains(j)).count()
    }
}

/// What one update did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// Optimizer steps made so far, this one included.
    pub step: u64,
    /// The clipped surrogate (minus the entropy bonus), token mean.
    pub loss: f64,
    /// Global gradient L2 norm before clipping.
    pub grad_norm: f64,
    /// Mean per-token entropy of the policy (nats).
    pub entropy: f64,
    /// Mean log-prob of the trained tokens.
    pub logprob: f64,
    /// Fraction of tokens whose ratio was clipped.
    pub clip_fraction: f64,
    /// Mean `(rho - 1) - log rho` (KL estimate between sampling and current policy).
    pub approx_kl: f64,
    /// Response tokens trained on.
    pub tokens: usize,
    /// Padded tokens run through the decoder (prompts included).
    pub padded_tokens: usize,
    pub micro_batches: usize,
    /// Rows skipped because their response was empty.
    pub skipped_rows: usize,
    /// Rows with advantage 0 (and no entropy bonus): counted in the token mean, not run.
    #[serde(default)]
    pub zero_advantage_rows: usize,
    pub lr: f64,
    pub forward_secs: f64,
    pub head_secs: f64,
    pub backward_secs: f64,
    pub optimizer_secs: f64,
    pub secs: f64,
}

struct Param {
    name: String,
    var: Var,
    grad: Vec<f32>,
}

/// The trainable model: every weight a `Var` with a gradient buffer, the AdamW state.
pub struct Trainer {
    /// The decoder over the `Var`s (tracked: used for the differentiable forward).
    model: Model,
    /// The same weights, untracked (for generation; shares storage, so it sees every update).
    inference: Model,
    params: Vec<Param>,
    /// For each layer, the indices of its parameters.
    layer_params: Vec<Vec<usize>>,
    /// Each layer's tensors for the hand-written block forward/backward ([`block`]); `None`:
    /// candle's autograd over `Model::block_forward` instead (the reference the tests check
    /// the hand-written path against).
    blocks: Option<Vec<block::Index>>,
    /// Under LoRA, the frozen base weights, after the parameters in the blocks' tensor table.
    frozen: Vec<Tensor>,
    /// The embedding, LM head and final norm parameters (`None`: frozen, under LoRA).
    embed: Option<usize>,
    head: Option<usize>,
    norm: Option<usize>,
    state: AdamWState,
    pub config: TrainConfig,
}

impl Trainer {
    /// Takes over `model`'s weights: every weight becomes a `Var`, or with LoRA the weights
    /// stay frozen and each target linear layer gets a fresh adapter.
    pub fn new(model: Model, config: TrainConfig) -> Result<Self> {
        if !model.device().is_cpu() {
            bail!("training runs on the CPU only for now");
        }
        check_config(&config)?;
        let (model, inference, params) = if config.lora.enabled() {
            lora_params(model, &config.lora)?
        } else {
            full_params(model)?
        };
        let index: HashMap<&str, usize> = params
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        let find = |n: &str| index.get(n).copied();
        let cfg = model.config();
        let embed = find("model.embed_tokens.weight");
        let head = if cfg.tie_embeddings {
            embed
        } else {
            find("lm_head.weight")
        };
        let norm = find("model.norm.weight");
        if !config.lora.enabled() && (embed.is_none() || head.is_none() || norm.is_none()) {
            bail!("the model lists no embedding, LM head or final norm weight");
        }
        let layer_params = (0..cfg.num_layers)
            .map(|l| {
                let prefix = format!("model.layers.{l}.");
                (0..params.len())
                    .filter(|&i| params[i].name.starts_with(&prefix))
                    .collect()
            })
            .collect();
        // The hand-written blocks read the parameters and, under LoRA, the frozen base weights.
        let frozen: Vec<(String, Tensor)> = if config.lora.enabled() {
            model.named_weights()
        } else {
            Vec::new()
        };
        let table: HashMap<&str, usize> = params
            .iter()
            .map(|p| p.name.as_str())
            .chain(frozen.iter().map(|(n, _)| n.as_str()))
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        let lora_scale = config.lora.scale() as f32;
        let blocks = (0..cfg.num_layers)
            .map(|l| block::Index::find(l, lora_scale, |n| table.get(n).copied()))
            .collect::<Result<Vec<_>>>()?;
        let frozen = frozen.into_iter().map(|(_, t)| t).collect();
        let sizes: Vec<usize> = params.iter().map(|p| p.grad.len()).collect();
        Ok(Self {
            model,
            inference,
            params,
            layer_params,
            blocks: Some(blocks),
            frozen,
            embed,
            head,
            norm,
            state: AdamWState::new(&sizes),
            config,
        })
    }

    /// The current weights as an untracked model, for generation (cheap: shares storage, and
    /// sees every later update; under LoRA, a merged copy refreshed after every update).
    #[allow(clippy::misnamed_getters)]
    pub fn model(&self) -> &Model {
        &self.inference
    }

    /// Optimizer steps made so far.
    pub fn steps(&self) -> u64 {
        self.state.step
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        self.params.iter().map(|p| p.grad.len()).sum()
    }

    /// Zeroes AdamW's moments and step count: the next update starts as the first one did
    /// (after a phase with another objective, e.g. a cross-entropy warm-up).
    pub fn reset_optimizer(&mut self) {
        for m in self.state.m.iter_mut().chain(self.state.v.iter_mut()) {
            m.fill(0.0);
        }
        self.state.step = 0;
    }

    /// One policy-gradient update over `rows` (see the module documentation).
    pub fn step(&mut self, rows: &[TrainRow]) -> Result<TrainStats> {
        let started = Instant::now();
        let mut stats = self.backward(rows)?;
        let t = Instant::now();
        if !stats.grad_norm.is_finite() {
            bail!(
                "the gradient norm is {}; the update was skipped",
                stats.grad_norm
            );
        }
        let max = self.config.max_grad_norm;
        let scale = if max > 0.0 && stats.grad_norm > max {
            (max / (stats.grad_norm + 1e-6)) as f32
        } else {
            1.0
        };
        if stats.tokens > 0 {
            self.state.step += 1;
            for (i, p) in self.params.iter().enumerate() {
                adamw::update(
                    p.var.as_tensor(),
                    &p.grad,
                    &mut self.state.m[i],
                    &mut self.state.v[i],
                    &self.config.optimizer,
                    self.state.step,
                    scale,
                )
                .with_context(|| format!("updating {}", p.name))?;
            }
            if self.config.lora.enabled() {
                self.inference = self.model.merged()?;
            }
        }
        stats.step = self.state.step;
        stats.optimizer_secs = t.elapsed().as_secs_f64();
        stats.secs = started.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// The loss and its gradient over `rows`, without updating: the gradient buffers are
    /// overwritten ([`Self::gradient`] reads them). `step` calls this first.
    pub fn backward(&mut self, rows: &[TrainRow]) -> Result<TrainStats> {
        let started = Instant::now();
        let cfg = self.model.config().clone();
        let mut stats = TrainStats::default();
        let mut kept = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if r.response.is_empty() {
                stats.skipped_rows += 1;
                continue;
            }
            if !r.old_logprobs.is_empty() && r.old_logprobs.len() != r.response.len() {
                bail!(
                    "row {i}: {} old log-probs for {} response tokens",
                    r.old_logprobs.len(),
                    r.response.len()
                );
            }
            if !r.sampled.is_empty() && r.sampled.len() != r.response.len() {
                bail!(
                    "row {i}: a sampled-token mask of {} for {} response tokens",
                    r.sampled.len(),
                    r.response.len()
                );
            }
            if !r.advantage.is_finite() {
                bail!("row {i}: advantage {} is not finite", r.advantage);
            }
            if r.prompt.is_empty() {
                bail!("row {i}: the prompt is empty (a response token needs a token before it)");
            }
            let len = r.prompt.len() + r.response.len();
            if len > cfg.max_position_embeddings {
                bail!(
                    "row {i}: {len} tokens exceed the model's context of {}",
                    cfg.max_position_embeddings
                );
            }
            if let Some(t) = r
                .prompt
                .iter()
                .chain(&r.response)
                .find(|&&t| t as usize >= cfg.vocab_size)
            {
                bail!(
                    "row {i}: token id {t} is outside the vocabulary of {}",
                    cfg.vocab_size
                );
            }
            kept.push(r);
        }
        let total: usize = kept.iter().map(|r| r.trained_tokens()).sum();
        for p in &mut self.params {
            p.grad.fill(0.0);
        }
        let mut sums = HeadSums::default();
        if total > 0 {
            let loss = TokenLoss {
                clip_low: self.config.clip_low,
                clip_high: self.config.clip_high,
                entropy_coef: self.config.entropy_coef,
                scale: 1.0 / total as f32,
            };
            // A row with advantage 0 adds nothing to the loss or the gradient unless there is
            // an entropy bonus: it only counts in the token mean. Early self-play is full of
            // them (a group whose responses all break the format), so skip their forward.
            let active: Vec<&TrainRow> = kept
                .iter()
                .copied()
                .filter(|r| r.advantage != 0.0 || self.config.entropy_coef != 0.0)
                .filter(|r| r.trained_tokens() > 0)
                .collect();
            stats.zero_advantage_rows = kept.len() - active.len();
            for mb in plan_micro_batches(&active, self.config.micro_batch_tokens) {
                let batch: Vec<&TrainRow> = mb.iter().map(|&i| active[i]).collect();
                self.accumulate(&batch, &loss, &mut sums, &mut stats)?;
                stats.micro_batches += 1;
            }
        }
        // Means over the tokens that went through the model (NaN, written as null, if none).
        let n = sums.tokens as f64;
        stats.step = self.state.step;
        stats.loss = sums.loss;
        stats.grad_norm = self.grad_norm();
        stats.entropy = sums.entropy / n;
        stats.logprob = sums.logprob / n;
        stats.clip_fraction = sums.clipped as f64 / n;
        stats.approx_kl = sums.kl / n;
        stats.tokens = total;
        stats.lr = self.config.optimizer.lr;
        stats.secs = started.elapsed().as_secs_f64();
        Ok(stats)
    }

    /// The gradient buffer of weight `name` (Hugging Face name) after [`Self::backward`] or
    /// [`Self::step`] (before clipping).
    pub fn gradient(&self, name: &str) -> Option<&[f32]> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.grad.as_slice())
    }

    fn grad_norm(&self) -> f64 {
        use rayon::prelude::*;
        // Fixed blocks summed in order: rayon's own `sum` splits work differently run to run,
        // and the last bits of the norm move the clip factor, which would break exact resume.
        self.params
            .iter()
            .map(|p| {
                p.grad
                    .par_chunks(1 << 14)
                    .map(|c| c.iter().map(|&g| (g as f64) * (g as f64)).sum::<f64>())
                    .collect::<Vec<f64>>()
                    .iter()
                    .sum::<f64>()
            })
            .sum::<f64>()
            .sqrt()
    }

    /// Forward + backward of one micro-batch; gradients are added to the buffers.
    fn accumulate(
        &mut self,
        rows: &[&TrainRow],
        loss: &TokenLoss,
        sums: &mut HeadSums,
        stats: &mut TrainStats,
    ) -> Result<()> {
        let model = &self.model;
        let device = model.device().clone();
        let hidden = model.config().hidden_size;
        let seqs: Vec<Vec<u32>> = rows
            .iter()
            .map(|r| [r.prompt.as_slice(), r.response.as_slice()].concat())
            .collect();
        let (tokens, padding) = left_pad(&seqs, 0, &device)?;
        let (b, t) = tokens.dims2()?;
        stats.padded_tokens += b * t;

        // Response positions: the hidden state at slot s predicts the token at slot s + 1.
        let (mut sel, mut targets, mut old, mut adv) = (vec![], vec![], vec![], vec![]);
        for (row, r) in rows.iter().enumerate() {
            let start = padding.pad[row] + r.prompt.len();
            for (j, &tok) in r.response.iter().enumerate() {
                if !r.trains(j) {
                    continue;
                }
                let slot = start + j;
                sel.push((row * t + slot - 1) as u32);
                targets.push(tok);
                old.push(r.old_logprobs.get(j).copied().unwrap_or(f32::NAN));
                adv.push(r.advantage);
            }
        }

        let t0 = Instant::now();
        let ctx = model.forward_ctx(&padding, 0, t)?;
        let x = model.embed_tokens(&tokens)?.detach();
        let (x, stash) = match &self.blocks {
            Some(index) => {
                let hand = HandCtx::new(model, &ctx, b, t)?;
                let (x, stash) = hand_forward(
                    index,
                    &self.params,
                    &self.frozen,
                    &hand,
                    x,
                    self.config.recompute,
                )?;
                (x, Stash::Hand(hand, stash))
            }
            None => autograd_forward(model, &ctx, x, self.config.recompute)?,
        };
        stats.forward_secs += t0.elapsed().as_secs_f64();

        // Final norm + head.
        let t1 = Instant::now();
        let top = Var::from_tensor(&x)?;
        let normed = model.final_norm(top.as_tensor(), false)?;
        let idx = Tensor::from_vec(sel, targets.len(), &device)?;
        let h_sel = normed.reshape((b * t, hidden))?.index_select(&idx, 0)?;
        let head_w = model.lm_head_weight().detach();
        let grad_h = head_backward(
            &h_sel.detach(),
            &head_w,
            &HeadTokens {
                targets: &targets,
                old_logprobs: &old,
                advantages: &adv,
            },
            loss,
            self.config.head_chunk,
            self.head.map(|i| self.params[i].grad.as_mut_slice()),
            sums,
        )?;
        let grads = (h_sel * grad_h)?.sum_all()?.backward()?;
        if let Some(i) = self.norm {
            let norm = &mut self.params[i];
            add_into(
                &mut norm.grad,
                grads
                    .get(norm.var.as_tensor())
                    .context("no gradient for the final norm")?,
            )?;
        }
        let g = grads
            .get(top.as_tensor())
            .context("no gradient for the last hidden state")?
            .clone();
        drop(grads);
        stats.head_secs += t1.elapsed().as_secs_f64();

        // Layers, top down.
        let t2 = Instant::now();
        let g = match stash {
            Stash::Hand(hand, stash) => {
                let index = self
                    .blocks
                    .as_deref()
                    .context("no block index for the hand-written backward")?;
                hand_backward(index, &mut self.params, &self.frozen, &hand, stash, &g)?
            }
            Stash::Autograd(inputs, graphs) => autograd_backward(
                model,
                &mut self.params,
                &self.layer_params,
                &ctx,
                inputs,
                graphs,
                g,
            )?,
        };

        // Embedding rows: scatter-add the input gradient (padding slots carry none).
        let Some(embed) = self.embed else {
            stats.backward_secs += t2.elapsed().as_secs_f64();
            return Ok(());
        };
        let g = g.contiguous()?;
        let embed = &mut self.params[embed].grad;
        with_cpu_slice(&g, |gs| {
            for (row, seq) in seqs.iter().enumerate() {
                let pad = padding.pad[row];
                for (j, &tok) in seq.iter().enumerate() {
                    let src = &gs[(row * t + pad + j) * hidden..][..hidden];
                    let dst = &mut embed[tok as usize * hidden..][..hidden];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
            Ok(())
        })?;
        stats.backward_secs += t2.elapsed().as_secs_f64();
        Ok(())
    }

    /// Teacher-forced log-probs of each row's response tokens under the current weights
    /// (no gradient), chunked like the training head.
    pub fn logprobs(&self, rows: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>> {
        response_logprobs(&self.inference, rows)
    }

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
        let dir = &dir.join(ADAPTER_DIR);
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

/// Full fine-tuning: every weight a `Var`. Returns the tracked model, the untracked one (same
/// storage) and the parameters.
fn full_params(model: Model) -> Result<(Model, Model, Vec<Param>)> {
    let cfg = model.config().clone();
    let device = model.device().clone();
    let mut params = Vec::new();
    for (name, t) in model.named_weights() {
        let var = Var::from_tensor(&t.contiguous()?)?;
        let n = var.elem_count();
        params.push(Param {
            name,
            var,
            grad: vec![0.0; n],
        });
    }
    drop(model);
    let tracked: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    let untracked: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().detach()))
        .collect();
    let model = Model::from_weights(&cfg, &tracked, &device)?;
    let inference = Model::from_weights(&cfg, &untracked, &device)?;
    Ok((model, inference, params))
}

/// LoRA: frozen base weights (plain tensors), and per target linear layer `A` (r, in) uniform
/// in +-1/sqrt(in) (as PyTorch initialises a linear layer) and `B` (out, r) zero, so the model
/// starts exactly at the base. Parameters are named `<linear>.lora_A.weight` / `.lora_B.weight`.
fn lora_params(model: Model, lora: &LoraConfig) -> Result<(Model, Model, Vec<Param>)> {
    use rand::{Rng, SeedableRng};
    let cfg = model.config().clone();
    let device = model.device().clone();
    let base: HashMap<String, Tensor> = model
        .named_weights()
        .into_iter()
        .map(|(n, t)| Ok((n, t.contiguous()?.detach())))
        .collect::<Result<_>>()?;
    drop(model);
    let mut tracked = Model::from_weights(&cfg, &base, &device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(lora.seed);
    let r = lora.rank;
    let shapes: Vec<(String, usize, usize)> = tracked
        .linears()
        .into_iter()
        .filter(|(n, _)| lora.targets.contains(n))
        .map(|(n, l)| {
            let (out, inp) = l.weight.dims2()?;
            Ok((n, out, inp))
        })
        .collect::<Result<_>>()?;
    let mut params = Vec::new();
    for (name, out, inp) in shapes {
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = (0..r * inp).map(|_| rng.gen_range(-bound..bound)).collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), &device)?)?;
        let b = Var::zeros((out, r), candle_core::DType::F32, &device)?;
        tracked.set_lora(
            &name,
            LoraAdapter {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale: lora.scale(),
            },
        )?;
        for (suffix, var) in [("lora_A", a), ("lora_B", b)] {
            let n = var.elem_count();
            params.push(Param {
                name: format!("{name}.{suffix}.weight"),
                var,
                grad: vec![0.0; n],
            });
        }
    }
    let inference = tracked.merged()?;
    Ok((tracked, inference, params))
}

/// What the layer backward needs from the layer forward.
enum Stash {
    /// The hand-written block backward: every layer's input (recompute) or saved activations.
    Hand(HandCtx, HandStash),
    /// candle's autograd: every layer's input (recompute) or its graph (input leaf, output).
    Autograd(Vec<Tensor>, Vec<(Var, Tensor)>),
}

enum HandStash {
    Inputs(Vec<Vec<f32>>),
    Saved(Vec<block::Saved>),
}

/// The shapes and tables every block of one micro-batch shares, as plain slices.
struct HandCtx {
    dims: block::Dims,
    cos: Vec<f32>,
    sin: Vec<f32>,
    pad: Vec<usize>,
}

impl HandCtx {
    fn new(model: &Model, ctx: &crate::model::ForwardCtx, b: usize, t: usize) -> Result<Self> {
        let cfg = model.config();
        if ctx.pad_at() != 0 {
            bail!("the trainer's blocks take left-padded batches only");
        }
        let (cos, sin) = ctx.rope_tables();
        Ok(Self {
            dims: block::Dims {
                b,
                t,
                hidden: cfg.hidden_size,
                inter: cfg.intermediate_size,
                heads: cfg.num_heads,
                kv_heads: cfg.num_kv_heads,
                head_dim: cfg.head_dim,
                eps: cfg.rms_norm_eps as f32,
            },
            cos: cos.flatten_all()?.to_vec1::<f32>()?,
            sin: sin.flatten_all()?.to_vec1::<f32>()?,
            pad: ctx.pad().to_vec(),
        })
    }

    fn attn(&self) -> block::Attn<'_> {
        block::Attn {
            cos: &self.cos,
            sin: &self.sin,
            pad: &self.pad,
        }
    }
}

/// Runs `f` with the tensors' values as f32 slices (their read locks held meanwhile).
fn with_values<R>(tensors: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
    let slices = guards
        .iter()
        .map(|(storage, layout)| cpu_f32(storage, layout))
        .collect::<Result<Vec<_>>>()?;
    f(&slices)
}

/// The decoder layers through the hand-written blocks: returns the last hidden state
/// `(B, T, hidden)` and what the backward needs.
fn hand_forward(
    index: &[block::Index],
    params: &[Param],
    frozen: &[Tensor],
    hand: &HandCtx,
    x: Tensor,
    recompute: bool,
) -> Result<(Tensor, HandStash)> {
    let shape = x.shape().clone();
    let device = x.device().clone();
    let x = x.flatten_all()?.to_vec1::<f32>()?;
    let tensors: Vec<&Tensor> = params
        .iter()
        .map(|p| p.var.as_tensor())
        .chain(frozen)
        .collect();
    let mut inputs = Vec::new();
    let mut saved = Vec::new();
    let x = with_values(&tensors, |all| {
        let mut x = x;
        for layer in index {
            let (y, s) = block::forward(&layer.weights(all), &hand.dims, &hand.attn(), x, true)?;
            if recompute {
                inputs.push(s.x);
            } else {
                saved.push(s);
            }
            x = y;
        }
        Ok(x)
    })?;
    let stash = if recompute {
        HandStash::Inputs(inputs)
    } else {
        HandStash::Saved(saved)
    };
    Ok((Tensor::from_vec(x, shape, &device)?, stash))
}

/// The backward of [`hand_forward`] for `g = dL/d(last hidden state)`: adds every layer's
/// weight gradients into the parameters' buffers and returns `dL/d(embeddings)`.
fn hand_backward(
    index: &[block::Index],
    params: &mut [Param],
    frozen: &[Tensor],
    hand: &HandCtx,
    mut stash: HandStash,
    g: &Tensor,
) -> Result<Tensor> {
    let shape = g.shape().clone();
    let device = g.device().clone();
    let g = g.flatten_all()?.to_vec1::<f32>()?;
    let (mut tensors, mut grads): (Vec<&Tensor>, Vec<Option<&mut [f32]>>) = params
        .iter_mut()
        .map(|p| (p.var.as_tensor(), Some(p.grad.as_mut_slice())))
        .unzip();
    for t in frozen {
        tensors.push(t);
        grads.push(None);
    }
    let g = with_values(&tensors, |all| {
        let mut g = g;
        for (l, layer) in index.iter().enumerate().rev() {
            let w = layer.weights(all);
            let saved = match &mut stash {
                HandStash::Inputs(inputs) => {
                    let x = inputs.pop().context("no stored input for a layer")?;
                    block::forward(&w, &hand.dims, &hand.attn(), x, false)?.1
                }
                HandStash::Saved(saved) => saved.pop().context("no saved layer")?,
            };
            let mut grads = layer.grads(&mut grads);
            g = block::backward(&w, &mut grads, &hand.dims, &hand.attn(), saved, &g)
                .with_context(|| format!("backward of layer {l}"))?;
        }
        Ok(g)
    })?;
    Ok(Tensor::from_vec(g, shape, &device)?)
}

/// The decoder layers through candle's autograd (the tests' reference for the hand-written
/// blocks): returns the last hidden state and, per layer, its input (recompute) or its graph.
fn autograd_forward(
    model: &Model,
    ctx: &crate::model::ForwardCtx,
    mut x: Tensor,
    recompute: bool,
) -> Result<(Tensor, Stash)> {
    let layers = model.config().num_layers;
    let mut inputs = Vec::with_capacity(layers);
    let mut graphs: Vec<(Var, Tensor)> = Vec::new();
    for l in 0..layers {
        if recompute {
            let y = model.block_forward(l, &x, ctx, None, false)?;
            inputs.push(x);
            x = y.detach();
        } else {
            let xv = Var::from_tensor(&x)?;
            let y = model.block_forward(l, xv.as_tensor(), ctx, None, false)?;
            x = y.detach();
            graphs.push((xv, y));
        }
    }
    Ok((x, Stash::Autograd(inputs, graphs)))
}

/// The backward of [`autograd_forward`]: each layer's gradient from candle's autograd over
/// that layer alone (`sum(y * dL/dy)` with the layer input as a leaf).
fn autograd_backward(
    model: &Model,
    params: &mut [Param],
    layer_params: &[Vec<usize>],
    ctx: &crate::model::ForwardCtx,
    inputs: Vec<Tensor>,
    mut graphs: Vec<(Var, Tensor)>,
    mut g: Tensor,
) -> Result<Tensor> {
    for l in (0..model.config().num_layers).rev() {
        let (xv, y) = match graphs.pop() {
            Some(pair) => pair,
            None => {
                let xv = Var::from_tensor(&inputs[l])?;
                let y = model.block_forward(l, xv.as_tensor(), ctx, None, false)?;
                (xv, y)
            }
        };
        let grads = (y * &g)?.sum_all()?.backward()?;
        for &i in &layer_params[l] {
            let p = &mut params[i];
            let gp = grads
                .get(p.var.as_tensor())
                .with_context(|| format!("no gradient for {}", p.name))?;
            add_into(&mut p.grad, gp)?;
        }
        g = grads
            .get(xv.as_tensor())
            .with_context(|| format!("no gradient for the input of layer {l}"))?
            .clone();
    }
    Ok(g)
}

#[allow(clippy::neg_cmp_op_on_partial_ord)] // NaN must fail these checks too
fn check_config(c: &TrainConfig) -> Result<()> {
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

/// Groups row indices into micro-batches of at most `budget` padded tokens (rows x longest row),
/// longest rows first so rows of similar length share a batch. A row longer than the budget
/// goes alone.
pub fn plan_micro_batches(rows: &[&TrainRow], budget: usize) -> Vec<Vec<usize>> {
    let len = |i: usize| rows[i].prompt.len() + rows[i].response.len();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(len(i)));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut longest = 0;
    for i in order {
        match out.last_mut() {
            Some(mb) if (mb.len() + 1) * longest <= budget => mb.push(i),
            _ => {
                longest = len(i);
                out.push(vec![i]);
            }
        }
    }
    out
}

/// Teacher-forced log-probs of each `(prompt, response)`'s response tokens under `model`
/// (no gradient), one row at a time so memory stays at one sequence's logits.
pub fn response_logprobs(model: &Model, rows: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(rows.len());
    for (prompt, response) in rows {
        if response.is_empty() {
            out.push(vec![]);
            continue;
        }
        if prompt.is_empty() {
            bail!("a response needs a non-empty prompt before it");
        }
        let seq = [prompt.as_slice(), response.as_slice()].concat();
        let (logits, _) = model.forward_padded(&[seq], 0)?;
        let logits = logits
            .squeeze(0)?
            .narrow(0, prompt.len() - 1, response.len())?;
        let lp = candle_nn::ops::log_softmax(&logits, candle_core::D::Minus1)?;
        let idx = Tensor::new(response.as_slice(), model.device())?.unsqueeze(1)?;
        out.push(lp.gather(&idx, 1)?.squeeze(1)?.to_vec1::<f32>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::{random_weights, tiny_config_json};
    use crate::ModelConfig;
    use candle_core::Device;

    /// The hand-written block backward gives candle autograd's loss and gradients, every
    /// coordinate of every trained tensor, with and without recompute, for full fine-tuning and
    /// for LoRA (with non-zero B, so every adapter matrix has a gradient).
    #[test]
    fn hand_written_blocks_match_autograd() {
        for arch in ["llama", "qwen2", "qwen3"] {
            for lora_rank in [0, 3] {
                compare_with_autograd(arch, lora_rank);
            }
        }
    }

    fn compare_with_autograd(arch: &str, lora_rank: usize) {
        let json = tiny_config_json(arch, false, 256).to_string();
        let cfg = ModelConfig::from_hf_json(&json).unwrap();
        let w = random_weights(&cfg, 3).unwrap();
        let model = Model::from_weights(&cfg, &w, &Device::Cpu).unwrap();
        let config = TrainConfig {
            entropy_coef: 0.05,
            lora: LoraConfig {
                rank: lora_rank,
                ..LoraConfig::default()
            },
            ..TrainConfig::default()
        };
        let mut tr = Trainer::new(model, config).unwrap();
        assert!(tr.blocks.is_some());
        let mut seed = 12345u64;
        for p in tr.params.iter().filter(|p| p.name.contains("lora_B")) {
            let v: Vec<f32> = (0..p.var.elem_count())
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
                })
                .collect();
            let t = Tensor::from_vec(v, p.var.dims(), &Device::Cpu).unwrap();
            p.var.set(&t).unwrap();
        }
        // Different lengths (left padding; the longest spans three attention tiles),
        // mixed-sign advantages.
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
        for recompute in [true, false] {
            let what = format!("{arch}, LoRA rank {lora_rank}, recompute {recompute}");
            tr.config.recompute = recompute;
            let hand = tr.backward(&rows).unwrap();
            let hand_grads: Vec<Vec<f32>> = tr.params.iter().map(|p| p.grad.clone()).collect();
            let blocks = tr.blocks.take();
            let auto = tr.backward(&rows).unwrap();
            tr.blocks = blocks;
            assert!(
                (hand.loss - auto.loss).abs() <= 1e-6 * auto.loss.abs().max(1.0),
                "{what}: loss {} vs {}",
                hand.loss,
                auto.loss
            );
            for (p, h) in tr.params.iter().zip(&hand_grads) {
                let scale = p.grad.iter().fold(0f32, |m, g| m.max(g.abs()));
                assert!(scale > 0.0, "{what}: {} has no gradient", p.name);
                let diff = p
                    .grad
                    .iter()
                    .zip(h)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    diff <= 1e-4 * scale,
                    "{what}: {} differs by {diff} (largest {scale})",
                    p.name
                );
            }
        }
    }
}
