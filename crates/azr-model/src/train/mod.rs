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
//! The tests (`tests/train.rs`) check loss and every gradient against candle's autograd over
//! the plain forward, [`Model::forward`], which shares no code with the blocks.

pub mod adamw;
mod block;
mod config;
mod head;
mod kernels;
mod layers;
mod objective;
mod params;
mod rows;
mod state;

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

pub use adamw::{AdamWConfig, AdamWState};
use config::check_config;
pub use config::TrainConfig;
use head::{head_backward, with_cpu_slice, HeadSums, HeadTokens, TokenLoss};
use layers::HandCtx;
use params::{full_params, lora_params, Param};
pub use rows::{plan_micro_batches, TrainRow};
pub use state::{ADAPTER_DIR, ADAPTER_FILE, PEFT_PREFIX};

use crate::model::{left_pad, Model};

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

/// The trainable model: every weight a `Var` with a gradient buffer, the AdamW state.
pub struct Trainer {
    /// The decoder over the parameters' storage (under LoRA: the frozen weights with the
    /// adapters attached): embeddings, tables and the merged copy come from it.
    model: Model,
    /// The same weights, untracked (for generation; shares storage, so it sees every update).
    inference: Model,
    params: Vec<Param>,
    /// Each layer's tensors for the hand-written block forward/backward ([`block`]).
    blocks: Vec<block::Index>,
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
            blocks,
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
            r.check(&cfg).map_err(|e| anyhow::anyhow!("row {i}: {e}"))?;
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
                sel.push(row * t + slot - 1);
                targets.push(tok);
                old.push(r.old_logprobs.get(j).copied().unwrap_or(f32::NAN));
                adv.push(r.advantage);
            }
        }

        let t0 = Instant::now();
        let hand = HandCtx::new(model, &model.forward_ctx(&padding, 0, t)?, b, t)?;
        let x = model
            .embed_tokens(&tokens)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (x, stash) = layers::forward(
            &self.blocks,
            &self.params,
            &self.frozen,
            &hand,
            x,
            self.config.recompute,
        )?;
        stats.forward_secs += t0.elapsed().as_secs_f64();

        // Final norm + head, for the response positions only.
        let t1 = Instant::now();
        let eps = model.config().rms_norm_eps as f32;
        let norm_w = model.norm_weight();
        let mut normed = vec![0f32; x.len()];
        with_cpu_slice(norm_w, |w| {
            kernels::rms_norm(&x, w, eps, &mut normed);
            Ok(())
        })?;
        let h_sel: Vec<f32> = sel
            .iter()
            .flat_map(|&s| &normed[s * hidden..][..hidden])
            .copied()
            .collect();
        let h_sel = Tensor::from_vec(h_sel, (sel.len(), hidden), &device)?;
        let grad_h = head_backward(
            &h_sel,
            &model.lm_head_weight().detach(),
            &HeadTokens {
                targets: &targets,
                old_logprobs: &old,
                advantages: &adv,
            },
            loss,
            self.config.head_chunk,
            self.head.map(|i| self.params[i].grad.as_mut_slice()),
            sums,
        )?
        .flatten_all()?
        .to_vec1::<f32>()?;
        // dL/d(normed): the head's gradient at the response positions, 0 elsewhere. Gradients
        // are sums that start at 0 (as in candle's autograd, which this path replaced: 0 + -0.0
        // is 0.0, so the same seeds still give the same bytes).
        let mut g_normed = vec![0f32; x.len()];
        for (k, &s) in sel.iter().enumerate() {
            let dst = &mut g_normed[s * hidden..][..hidden];
            for (d, g) in dst.iter_mut().zip(&grad_h[k * hidden..][..hidden]) {
                *d += g;
            }
        }
        let mut g = vec![0f32; x.len()];
        let mut g_norm_w = vec![0f32; hidden];
        with_cpu_slice(norm_w, |w| {
            kernels::rms_norm_backward(&x, w, eps, &g_normed, &mut g, &mut g_norm_w);
            Ok(())
        })?;
        g.iter_mut().for_each(|v| *v += 0.0);
        if let Some(i) = self.norm {
            for (a, &d) in self.params[i].grad.iter_mut().zip(&g_norm_w) {
                *a += 0.0 + d;
            }
        }
        stats.head_secs += t1.elapsed().as_secs_f64();

        // Layers, top down.
        let t2 = Instant::now();
        let g = layers::backward(
            &self.blocks,
            &mut self.params,
            &self.frozen,
            &hand,
            stash,
            g,
        )?;

        // Embedding rows: scatter-add the input gradient (padding slots carry none).
        if let Some(embed) = self.embed {
            let embed = &mut self.params[embed].grad;
            for (row, seq) in seqs.iter().enumerate() {
                let pad = padding.pad[row];
                for (j, &tok) in seq.iter().enumerate() {
                    let src = &g[(row * t + pad + j) * hidden..][..hidden];
                    let dst = &mut embed[tok as usize * hidden..][..hidden];
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += s;
                    }
                }
            }
        }
        stats.backward_secs += t2.elapsed().as_secs_f64();
        Ok(())
    }

    /// Teacher-forced log-probs of each row's response tokens under the current weights
    /// (no gradient), chunked like the training head.
    pub fn logprobs(&self, rows: &[(Vec<u32>, Vec<u32>)]) -> Result<Vec<Vec<f32>>> {
        response_logprobs(&self.inference, rows)
    }
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
