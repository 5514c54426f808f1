//! The decoder layers of one micro-batch, forward and backward: the hand-written blocks, and
//! candle's autograd over `Model::block_forward` (the reference the tests check them against).

use anyhow::{bail, Context, Result};
use candle_core::{Tensor, Var};

use super::block;
use super::head::{add_into, cpu_f32};
use super::params::Param;
use crate::model::{ForwardCtx, Model};
/// What the layer backward needs from the layer forward.
pub(super) enum Stash {
    /// The hand-written block backward: every layer's input (recompute) or saved activations.
    Hand(HandCtx, HandStash),
    /// candle's autograd: every layer's input (recompute) or its graph (input leaf, output).
    Autograd(Vec<Tensor>, Vec<(Var, Tensor)>),
}

pub(super) enum HandStash {
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

/// The decoder layers through the hand-written blocks: returns the last hidden state
/// `(B, T, hidden)` and what the backward needs.
pub(super) fn hand_forward(
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
pub(super) fn hand_backward(
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
pub(super) fn autograd_forward(
    model: &Model,
    ctx: &ForwardCtx,
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
pub(super) fn autograd_backward(
    model: &Model,
    params: &mut [Param],
    layer_params: &[Vec<usize>],
    ctx: &ForwardCtx,
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
