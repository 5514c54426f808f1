//! The decoder layers of one micro-batch through the hand-written blocks ([`block`]), forward
//! and backward, over the parameters' values as f32 slices.

use anyhow::{bail, Context, Result};
use candle_core::Tensor;

use super::block;
use super::head::cpu_f32;
use super::params::Param;
use crate::model::{ForwardCtx, Model};

/// What the layer backward needs from the layer forward: every layer's input (recompute) or
/// its saved activations.
pub(super) enum Stash {
    Inputs(Vec<Vec<f32>>),
    Saved(Vec<block::Saved>),
}

/// The shapes and tables every block of one micro-batch shares, as plain slices.
pub(super) struct HandCtx {
    dims: block::Dims,
    cos: Vec<f32>,
    sin: Vec<f32>,
    pad: Vec<usize>,
}

impl HandCtx {
    pub(super) fn new(model: &Model, ctx: &ForwardCtx, b: usize, t: usize) -> Result<Self> {
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

    pub(super) fn attn(&self) -> block::Attn<'_> {
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

/// The decoder layers over the embeddings `x: (B, T, hidden)`, row-major: returns the last
/// hidden state and what the backward needs.
pub(super) fn forward(
    index: &[block::Index],
    params: &[Param],
    frozen: &[Tensor],
    hand: &HandCtx,
    x: Vec<f32>,
    recompute: bool,
) -> Result<(Vec<f32>, Stash)> {
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
        Stash::Inputs(inputs)
    } else {
        Stash::Saved(saved)
    };
    Ok((x, stash))
}

/// The backward of [`forward`] for `g = dL/d(last hidden state)`: adds every layer's weight
/// gradients into the parameters' buffers and returns `dL/d(embeddings)`.
pub(super) fn backward(
    index: &[block::Index],
    params: &mut [Param],
    frozen: &[Tensor],
    hand: &HandCtx,
    mut stash: Stash,
    g: Vec<f32>,
) -> Result<Vec<f32>> {
    let (mut tensors, mut grads): (Vec<&Tensor>, Vec<Option<&mut [f32]>>) = params
        .iter_mut()
        .map(|p| (p.var.as_tensor(), Some(p.grad.as_mut_slice())))
        .unzip();
    for t in frozen {
        tensors.push(t);
        grads.push(None);
    }
    with_values(&tensors, |all| {
        let mut g = g;
        for (l, layer) in index.iter().enumerate().rev() {
            let w = layer.weights(all);
            let saved = match &mut stash {
                Stash::Inputs(inputs) => {
                    let x = inputs.pop().context("no stored input for a layer")?;
                    block::forward(&w, &hand.dims, &hand.attn(), x, false)?.1
                }
                Stash::Saved(saved) => saved.pop().context("no saved layer")?,
            };
            let mut grads = layer.grads(&mut grads);
            g = block::backward(&w, &mut grads, &hand.dims, &hand.attn(), saved, &g)
                .with_context(|| format!("backward of layer {l}"))?;
        }
        Ok(g)
    })
}
