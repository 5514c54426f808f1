//! The decoder shared by Llama, Qwen2 and Qwen3: token embedding, `num_layers` pre-norm blocks
//! (RMSNorm -> grouped-query attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual),
//! a final RMSNorm and the LM head.
//!
//! Two paths run the same math:
//! - [`Model::forward`] without a cache is built only from differentiable candle ops, so the
//!   trainer can run it over `Var`s and get gradients for every weight (candle's fused
//!   `rms_norm`/`softmax_last_dim`/`rope` have no backward and would drop them silently).
//! - with a [`KvCache`] (generation, never trained) it uses the fused kernels where they are
//!   faster, a fused CPU kernel for one-token decode attention (`decode_attention.rs`), and the
//!   optional quantized weight copies of [`Model::quantize_for_inference`].
//!
//! Batches are left-padded: row `b` has `pad[b]` padding slots before its tokens (or, while
//! generation prefills prompts that share a prefix, after that prefix: [`Padding`]). Padding is
//! excluded by an additive mask of -1e9 (finite on purpose: a fully masked row, as padding
//! query rows are, must give a uniform softmax, not NaN), and positions skip the padding, so a
//! padded row computes exactly what it would alone.

use anyhow::{bail, Context, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use crate::config::ModelConfig;
use crate::decode_attention::DecodeAttention;
use crate::lora::LoraAdapter;
use crate::weights::Weights;

/// The additive mask value for excluded keys.
pub const MASK_VALUE: f32 = -1e9;

/// Up to this many rows (batch x new tokens) a matmul uses the quantized inference weights when
/// the model has them; above it, f32. Measured on 2 Zen 5 cores with SmolLM2-135M (`azr bench
/// generate`): Q8_0 decodes 120-134 tok/s at batch 1 and 135-144 at batch 2 against f32's 61
/// and 91-102 with the decode kernel (`decode_matmul.rs`); they tie at 4, f32 wins from there
/// up (candle's Q8_0 matmul does not scale with rows) and in every prefill.
pub const QUANTIZED_MAX_ROWS: usize = 3;

/// `y = x W^T + b`, with `W` stored `(out, in)` as in Hugging Face checkpoints.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A quantized copy of `weight` for the inference path only (see
    /// [`Model::quantize_for_inference`]); never used by the differentiable forward.
    pub quantized: Option<QMatMul>,
    /// A LoRA update added to the output (see [`crate::lora`]).
    pub lora: Option<LoraAdapter>,
}

impl Linear {
    fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            quantized: None,
            lora: None,
        }
    }

    /// The inference path (no gradient): the quantized weight when there is one and the input
    /// has at most [`QUANTIZED_MAX_ROWS`] rows, the decode kernel for a few f32 rows
    /// (`decode_matmul.rs`), else `forward`.
    fn forward_inference(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.elem_count() / x.dim(D::Minus1)?.max(1);
        let y = match &self.quantized {
            Some(q) if rows <= QUANTIZED_MAX_ROWS => q.forward(x)?,
            _ => match crate::decode_matmul::matmul_xwt(x, &self.weight)? {
                Some(y) => y,
                None => return Ok(self.forward(x)?),
            },
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        Ok(match &self.lora {
            Some(l) => {
                let in_dim = x.dim(D::Minus1)?;
                (&y + l.delta(&x.reshape((rows, in_dim))?)?.reshape(y.shape())?)?
            }
            None => y,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // Flatten the leading dims so the matmul is one 2-D gemm against the transposed weight.
        let dims = x.dims().to_vec();
        let in_dim = *dims.last().unwrap_or(&0);
        let rows: usize = dims[..dims.len().saturating_sub(1)].iter().product();
        let x2 = x.reshape((rows, in_dim))?;
        let delta = match &self.lora {
            Some(l) => Some(l.delta(&x2)?),
            None => None,
        };
        // A frozen weight (LoRA's base) under an input that needs a gradient: skip the weight's
        // gradient in the backward. Generation (nothing tracked) takes the plain matmul.
        let y = if x2.track_op() && !self.weight.track_op() {
            crate::train::ops::frozen_matmul(&x2, &self.weight, delta.as_ref())?
        } else {
            let y = x2.matmul(&self.weight.t()?)?;
            match &delta {
                Some(d) => (y + d)?,
                None => y,
            }
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(out_dims)
    }
}

/// RMSNorm; `fast` selects candle's fused kernel (no backward).
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64, fast: bool) -> Result<Tensor> {
    if fast {
        return Ok(candle_nn::ops::rms_norm(
            &x.contiguous()?,
            weight,
            eps as f32,
        )?);
    }
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return Ok(crate::train::ops::rms_norm(x, weight, eps)?);
    }
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?
        .broadcast_mul(weight)?)
}

fn softmax_last(x: &Tensor, fast: bool) -> Result<Tensor> {
    if fast {
        Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
    } else {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    }
}

/// cos/sin tables for the half-split RoPE, `(max_positions, head_dim / 2)`.
#[derive(Clone, Debug)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let half = cfg.head_dim / 2;
        // The table covers the model's context; positions beyond it are rejected in `forward`.
        let n = cfg.max_position_embeddings.clamp(1, 1 << 17);
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| 1.0 / cfg.rope_theta.powf(2.0 * i as f64 / cfg.head_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for f in &inv_freq {
                let a = p as f64 * f;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (n, half), device)?,
            sin: Tensor::from_vec(sin, (n, half), device)?,
        })
    }

    /// Rotates `x: (B, H, T, Dh)` by the per-row positions `positions: (B, T)`.
    /// `rotate_half` form: out = [x1 cos - x2 sin, x2 cos + x1 sin] with x = [x1, x2].
    /// `fast` uses candle's fused kernel (no backward).
    fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, fast: bool) -> Result<Tensor> {
        if fast {
            let (b, _, t, half) = cos.dims4()?;
            return Ok(candle_nn::rotary_emb::rope(
                &x.contiguous()?,
                &cos.reshape((b, t, half))?,
                &sin.reshape((b, t, half))?,
            )?);
        }
        let half = x.dim(D::Minus1)? / 2;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
        let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
        Ok(Tensor::cat(&[a, b], D::Minus1)?)
    }

    /// Looks up cos/sin for `positions: (B, T)` as `(B, 1, T, Dh/2)`, ready to broadcast over heads.
    fn tables(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(&flat, 0)?.reshape((b, 1, t, half))?;
        let sin = self.sin.index_select(&flat, 0)?.reshape((b, 1, t, half))?;
        Ok((cos, sin))
    }
}

/// A preallocated key/value cache for every layer: `(B, n_kv_heads, capacity, head_dim)` each,
/// filled in place, so decoding does not re-concatenate the whole history at every step.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
    batch: usize,
}

impl KvCache {
    pub fn new(cfg: &ModelConfig, batch: usize, capacity: usize, device: &Device) -> Result<Self> {
        let shape = (batch, cfg.num_kv_heads, capacity, cfg.head_dim);
        let layers = (0..cfg.num_layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(shape, DType::F32, device)?,
                    Tensor::zeros(shape, DType::F32, device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: 0,
            capacity,
            batch,
        })
    }

    /// Number of positions already stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// A cache of `rows` rows that all start with the positions `prefix` (one row) holds: a
    /// prompt prefix the rows share, computed once.
    pub fn broadcast_prefix(prefix: &KvCache, rows: usize, capacity: usize) -> Result<Self> {
        let shared = prefix.len;
        if prefix.batch != 1 {
            bail!(
                "a shared prefix must be cached for one row, not {}",
                prefix.batch
            );
        }
        if shared > capacity {
            bail!("a prefix of {shared} positions does not fit a cache of {capacity}");
        }
        let widen = |t: &Tensor| -> Result<Tensor> {
            let (_, h, _, d) = t.dims4()?;
            let mut row = t.narrow(2, 0, shared)?;
            if capacity > shared {
                let rest = Tensor::zeros((1, h, capacity - shared, d), t.dtype(), t.device())?;
                row = Tensor::cat(&[row, rest], 2)?;
            }
            Ok(Tensor::cat(&vec![row; rows], 0)?)
        };
        let layers = prefix
            .layers
            .iter()
            .map(|(k, v)| Ok((widen(k)?, widen(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            len: shared,
            capacity,
            batch: rows,
        })
    }

    /// Moves row `b`'s `pad[b]` padding slots from slot `at` to the front, so that a batch
    /// prefilled with its padding after a shared prefix decodes as a left-padded one.
    pub fn move_padding_to_front(&mut self, at: usize, pad: &[usize]) -> Result<()> {
        if pad.len() != self.batch {
            bail!("{} paddings for {} cached rows", pad.len(), self.batch);
        }
        if pad.iter().all(|&p| p == 0) {
            return Ok(());
        }
        if pad.iter().any(|&p| at + p > self.len) {
            bail!("padding beyond the {} cached positions", self.len);
        }
        let cap = self.capacity;
        let shift = |t: &Tensor| -> Result<Tensor> {
            let (_, h, _, d) = t.dims4()?;
            let rows = pad
                .iter()
                .enumerate()
                .map(|(b, &p)| {
                    let row = t.narrow(0, b, 1)?;
                    if p == 0 {
                        return Ok(row);
                    }
                    let mut parts = vec![Tensor::zeros((1, h, p, d), t.dtype(), t.device())?];
                    if at > 0 {
                        parts.push(row.narrow(2, 0, at)?);
                    }
                    parts.push(row.narrow(2, at + p, cap - at - p)?);
                    Ok(Tensor::cat(&parts, 2)?)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Tensor::cat(&rows, 0)?)
        };
        for (k, v) in &mut self.layers {
            *k = shift(k)?;
            *v = shift(v)?;
        }
        Ok(())
    }

    /// Keeps the batch rows `rows`, in this order; a row may be listed more than once. Finished
    /// rows leave the batch (so the decode steps after them cost what the live rows cost), and
    /// the samples of one prompt start as copies of its one prefilled row.
    pub fn select_rows(&mut self, rows: &[u32]) -> Result<()> {
        if rows.iter().any(|&r| r as usize >= self.batch) {
            bail!(
                "select_rows: a row index is outside the {} cached rows",
                self.batch
            );
        }
        let Some((k0, _)) = self.layers.first() else {
            self.batch = rows.len();
            return Ok(());
        };
        let idx = Tensor::new(rows, k0.device())?;
        for (k, v) in &mut self.layers {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.batch = rows.len();
        Ok(())
    }

    /// Writes `k, v: (B, Hkv, T, Dh)` at the current end and returns views of everything stored
    /// so far, including them. `len` advances once per forward, in [`Model::forward`].
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let (kc, vc) = &self.layers[layer];
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        Ok((
            kc.narrow(2, 0, self.len + t)?,
            vc.narrow(2, 0, self.len + t)?,
        ))
    }
}

#[derive(Clone, Debug)]
struct Block {
    input_norm: Tensor,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    post_norm: Tensor,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl Block {
    /// The linear layers by their Hugging Face names within a block, in checkpoint order.
    fn linears(&self) -> [(&'static str, &Linear); 7] {
        [
            ("self_attn.q_proj", &self.q_proj),
            ("self_attn.k_proj", &self.k_proj),
            ("self_attn.v_proj", &self.v_proj),
            ("self_attn.o_proj", &self.o_proj),
            ("mlp.gate_proj", &self.gate_proj),
            ("mlp.up_proj", &self.up_proj),
            ("mlp.down_proj", &self.down_proj),
        ]
    }

    fn linear_mut(&mut self, name: &str) -> Option<&mut Linear> {
        Some(match name {
            "self_attn.q_proj" => &mut self.q_proj,
            "self_attn.k_proj" => &mut self.k_proj,
            "self_attn.v_proj" => &mut self.v_proj,
            "self_attn.o_proj" => &mut self.o_proj,
            "mlp.gate_proj" => &mut self.gate_proj,
            "mlp.up_proj" => &mut self.up_proj,
            "mlp.down_proj" => &mut self.down_proj,
            _ => return None,
        })
    }
}

/// The decoder. Holds its weights as plain tensors; a trainer can build one from `Var`s
/// (`Var` derefs to `Tensor` and shares its storage) with [`Model::from_weights`].
#[derive(Clone, Debug)]
pub struct Model {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// The LM head; its weight is `embed` itself when tied.
    lm_head: Linear,
    rope: Rope,
    device: Device,
}

/// Per-row layout of a padded batch, used to build positions and masks: row `b`'s padding is
/// the `pad[b]` slots from slot `at` on. `at = 0` is left padding; generation prefills prompts
/// that share their first `at` tokens with the padding after that shared prefix.
#[derive(Clone, Debug)]
pub struct Padding {
    /// Padding slots of each row.
    pub pad: Vec<usize>,
    /// The slot where every row's padding starts.
    pub at: usize,
}

impl Padding {
    /// Left padding: `pad[b]` slots before the first token of row `b`.
    pub fn left(pad: Vec<usize>) -> Self {
        Self { pad, at: 0 }
    }

    /// Whether slot `s` of row `b` is padding.
    fn is_pad(&self, b: usize, s: usize) -> bool {
        (self.at..self.at + self.pad[b]).contains(&s)
    }

    /// The position (RoPE index) of row `b`'s token at slot `s` (not padding).
    fn position(&self, b: usize, s: usize) -> usize {
        if s < self.at {
            s
        } else {
            s.saturating_sub(self.pad[b])
        }
    }
}

/// What every layer of one forward chunk shares (see [`Model::forward_ctx`]).
#[derive(Clone, Debug)]
pub struct ForwardCtx {
    cos: Tensor,
    sin: Tensor,
    mask: Tensor,
    pad: Vec<usize>,
    at: usize,
}

impl ForwardCtx {
    /// RoPE cos/sin for the chunk's positions, `(B, 1, T, head_dim / 2)`, contiguous.
    pub fn rope_tables(&self) -> (&Tensor, &Tensor) {
        (&self.cos, &self.sin)
    }

    /// Each row's padding.
    pub fn pad(&self) -> &[usize] {
        &self.pad
    }

    /// The slot where the padding starts (0: left padding).
    pub fn pad_at(&self) -> usize {
        self.at
    }
}

impl Model {
    /// Builds the model from Hugging Face-named f32 tensors, checking every shape.
    pub fn from_weights(cfg: &ModelConfig, weights: &Weights, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let t = weights
                .get(name)
                .with_context(|| format!("missing tensor {name}"))?;
            if t.dims() != shape {
                bail!(
                    "tensor {name} has shape {:?}, the config expects {shape:?}",
                    t.dims()
                );
            }
            if t.dtype() != DType::F32 {
                bail!("tensor {name} is {:?}, expected f32", t.dtype());
            }
            Ok(t.clone())
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (q_out, kv_out) = (
            cfg.num_heads * cfg.head_dim,
            cfg.num_kv_heads * cfg.head_dim,
        );
        let linear = |name: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
            Ok(Linear::new(
                get(&format!("{name}.weight"), &[out, inp])?,
                if bias {
                    Some(get(&format!("{name}.bias"), &[out])?)
                } else {
                    None
                },
            ))
        };
        let mut blocks = Vec::with_capacity(cfg.num_layers);
        for l in 0..cfg.num_layers {
            let p = format!("model.layers.{l}");
            blocks.push(Block {
                input_norm: get(&format!("{p}.input_layernorm.weight"), &[h])?,
                q_proj: linear(&format!("{p}.self_attn.q_proj"), q_out, h, cfg.qkv_bias)?,
                k_proj: linear(&format!("{p}.self_attn.k_proj"), kv_out, h, cfg.qkv_bias)?,
                v_proj: linear(&format!("{p}.self_attn.v_proj"), kv_out, h, cfg.qkv_bias)?,
                o_proj: linear(&format!("{p}.self_attn.o_proj"), h, q_out, false)?,
                q_norm: if cfg.qk_norm {
                    Some(get(
                        &format!("{p}.self_attn.q_norm.weight"),
                        &[cfg.head_dim],
                    )?)
                } else {
                    None
                },
                k_norm: if cfg.qk_norm {
                    Some(get(
                        &format!("{p}.self_attn.k_norm.weight"),
                        &[cfg.head_dim],
                    )?)
                } else {
                    None
                },
                post_norm: get(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate_proj: linear(&format!("{p}.mlp.gate_proj"), i, h, false)?,
                up_proj: linear(&format!("{p}.mlp.up_proj"), i, h, false)?,
                down_proj: linear(&format!("{p}.mlp.down_proj"), h, i, false)?,
            });
        }
        let embed = get("model.embed_tokens.weight", &[cfg.vocab_size, h])?;
        let lm_head = Linear::new(
            if cfg.tie_embeddings {
                embed.clone()
            } else {
                get("lm_head.weight", &[cfg.vocab_size, h])?
            },
            None,
        );
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm: get("model.norm.weight", &[h])?,
            lm_head,
            rope: Rope::new(cfg, device)?,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every weight by its Hugging Face name (the tied head is not listed twice).
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (l, b) in self.blocks.iter().enumerate() {
            let p = format!("model.layers.{l}");
            let mut push = |n: &str, t: &Tensor| out.push((format!("{p}.{n}"), t.clone()));
            push("input_layernorm.weight", &b.input_norm);
            for (n, lin) in b.linears() {
                push(&format!("{n}.weight"), &lin.weight);
                if let Some(bias) = &lin.bias {
                    push(&format!("{n}.bias"), bias);
                }
            }
            if let Some(t) = &b.q_norm {
                push("self_attn.q_norm.weight", t);
            }
            if let Some(t) = &b.k_norm {
                push("self_attn.k_norm.weight", t);
            }
            push("post_attention_layernorm.weight", &b.post_norm);
        }
        out.push(("model.norm.weight".to_string(), self.norm.clone()));
        if !self.cfg.tie_embeddings {
            out.push(("lm_head.weight".to_string(), self.lm_head.weight.clone()));
        }
        out
    }

    /// The linear layers of every block: Hugging Face name (`model.layers.0.self_attn.q_proj`)
    /// and the layer itself, in `named_weights` order.
    pub fn linears(&self) -> Vec<(String, &Linear)> {
        self.blocks
            .iter()
            .enumerate()
            .flat_map(|(l, b)| {
                b.linears()
                    .map(|(n, lin)| (format!("model.layers.{l}.{n}"), lin))
            })
            .collect()
    }

    /// The linear layer with this Hugging Face name.
    fn linear_mut(&mut self, name: &str) -> Option<&mut Linear> {
        let rest = name.strip_prefix("model.layers.")?;
        let (l, n) = rest.split_once('.')?;
        self.blocks.get_mut(l.parse::<usize>().ok()?)?.linear_mut(n)
    }

    /// Attaches a LoRA update to the linear layer `name` (see [`Self::linears`]).
    pub fn set_lora(&mut self, name: &str, adapter: LoraAdapter) -> Result<()> {
        let Some(lin) = self.linear_mut(name) else {
            bail!("no linear layer {name}");
        };
        let (out, inp) = lin.weight.dims2()?;
        let (ar, ain) = adapter.a.dims2()?;
        let (bout, br) = adapter.b.dims2()?;
        if ain != inp || bout != out || ar != br {
            bail!(
                "LoRA for {name}: A {:?} and B {:?} do not fit a ({out}, {inp}) weight",
                adapter.a.dims(),
                adapter.b.dims()
            );
        }
        lin.lora = Some(adapter);
        lin.quantized = None;
        Ok(())
    }

    /// A copy with every LoRA update folded into its weight (`W + scale B A`) and none left:
    /// what generation runs and what a checkpoint exports. Layers without one share storage.
    pub fn merged(&self) -> Result<Model> {
        let mut m = self.clone();
        for b in &mut m.blocks {
            for name in b.linears().map(|(n, _)| n) {
                let lin = b
                    .linear_mut(name)
                    .context("a block lacks a linear it lists")?;
                if let Some(l) = lin.lora.take() {
                    lin.weight = l.merge(&lin.weight)?;
                }
            }
        }
        Ok(m)
    }

    /// Positions `(B, T)` (u32) for a padded chunk of `t` tokens starting at slot `past`.
    pub fn positions(&self, padding: &Padding, past: usize, t: usize) -> Result<Tensor> {
        let b = padding.pad.len();
        let mut pos = Vec::with_capacity(b * t);
        for row in 0..b {
            for i in 0..t {
                pos.push(padding.position(row, past + i) as u32);
            }
        }
        let max = pos.iter().copied().max().unwrap_or(0) as usize;
        if max >= self.rope.cos.dim(0)? {
            bail!(
                "position {max} is beyond the model's context of {} tokens",
                self.rope.cos.dim(0)?
            );
        }
        Ok(Tensor::from_vec(pos, (b, t), &self.device)?)
    }

    /// The additive mask `(B, T, past + T)` for a chunk of `t` queries at slots `past..past+t`:
    /// key `s` is visible to query `past + i` when `s <= past + i` and `s` is not padding.
    pub fn mask(&self, padding: &Padding, past: usize, t: usize) -> Result<Tensor> {
        let b = padding.pad.len();
        let s = past + t;
        let mut m = vec![MASK_VALUE; b * t * s];
        for row in 0..b {
            for i in 0..t {
                let base = (row * t + i) * s;
                for key in 0..=(past + i).min(s - 1) {
                    if !padding.is_pad(row, key) {
                        m[base + key] = 0.0;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (b, t, s), &self.device)?)
    }

    /// Runs the decoder over `tokens: (B, T)` (u32) and returns the final-norm hidden states
    /// `(B, T, hidden)`. Without `cache` the chunk is the whole sequence; with one, the chunk is
    /// appended after the `cache.len()` slots already stored. `padding` describes the rows.
    pub fn forward(
        &self,
        tokens: &Tensor,
        padding: &Padding,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2().context("tokens must be (batch, seq)")?;
        if padding.pad.len() != b {
            bail!("padding has {} rows, tokens have {b}", padding.pad.len());
        }
        let past = cache.as_ref().map_or(0, |c| c.len());
        if let Some(c) = cache.as_ref() {
            if c.batch() != b {
                bail!("the cache holds {} rows, tokens have {b}", c.batch());
            }
            if past + t > c.capacity() {
                bail!(
                    "the cache holds {} positions, {} are needed",
                    c.capacity(),
                    past + t
                );
            }
        }
        let fast = cache.is_some();
        let ctx = self.forward_ctx(padding, past, t)?;
        let mut x = self.embed_tokens(tokens)?;
        for l in 0..self.blocks.len() {
            x = self.block_forward(l, &x, &ctx, cache.as_deref_mut(), fast)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        self.final_norm(&x, fast)
    }

    /// The per-chunk tables every layer uses: RoPE cos/sin for the positions and the mask.
    pub fn forward_ctx(&self, padding: &Padding, past: usize, t: usize) -> Result<ForwardCtx> {
        let positions = self.positions(padding, past, t)?;
        let (cos, sin) = self.rope.tables(&positions)?;
        // (B, 1, 1, T, S): broadcast over kv heads and over the query heads of each group.
        let mask = self.mask(padding, past, t)?.unsqueeze(1)?.unsqueeze(1)?;
        Ok(ForwardCtx {
            cos,
            sin,
            mask,
            pad: padding.pad.clone(),
            at: padding.at,
        })
    }

    /// Token embeddings `(B, T, hidden)` of `tokens: (B, T)`.
    pub fn embed_tokens(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2().context("tokens must be (batch, seq)")?;
        Ok(self
            .embed
            .index_select(&tokens.flatten_all()?, 0)
            .context("token id out of the vocabulary")?
            .reshape((b, t, self.cfg.hidden_size))?)
    }

    /// Block `l`: `x + attn(norm(x))`, then `+ mlp(norm(.))`. `fast` (generation only) uses the
    /// fused kernels without backward; the trainer calls it with `fast = false` and no cache.
    pub fn block_forward(
        &self,
        l: usize,
        x: &Tensor,
        ctx: &ForwardCtx,
        cache: Option<&mut KvCache>,
        fast: bool,
    ) -> Result<Tensor> {
        let block = &self.blocks[l];
        let h = rms_norm(x, &block.input_norm, self.cfg.rms_norm_eps, fast)?;
        let a = self.attention(
            block,
            l,
            &h,
            (&ctx.cos, &ctx.sin),
            &ctx.mask,
            (&ctx.pad, ctx.at),
            cache,
            fast,
        )?;
        let x = (x + a)?;
        let h = rms_norm(&x, &block.post_norm, self.cfg.rms_norm_eps, fast)?;
        let mlp = if fast {
            let gate = block.gate_proj.forward_inference(&h)?.silu()?;
            let up = block.up_proj.forward_inference(&h)?;
            block.down_proj.forward_inference(&(gate * up)?)?
        } else if self.device.is_cpu() {
            let gate = block.gate_proj.forward(&h)?;
            let up = block.up_proj.forward(&h)?;
            block
                .down_proj
                .forward(&crate::train::ops::swiglu(&gate, &up)?)?
        } else {
            let gate = block.gate_proj.forward(&h)?.silu()?;
            let up = block.up_proj.forward(&h)?;
            block.down_proj.forward(&(gate * up)?)?
        };
        Ok((x + mlp)?)
    }

    /// The final RMSNorm.
    pub fn final_norm(&self, x: &Tensor, fast: bool) -> Result<Tensor> {
        rms_norm(x, &self.norm, self.cfg.rms_norm_eps, fast)
    }

    /// The LM head's weight `(vocab, hidden)` (the embedding matrix when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.lm_head.weight
    }

    /// The token embedding matrix `(vocab, hidden)`.
    pub fn embed_weight(&self) -> &Tensor {
        &self.embed
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        block: &Block,
        layer: usize,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        mask: &Tensor,
        (pad, pad_at): (&[usize], usize),
        cache: Option<&mut KvCache>,
        fast: bool,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, dh) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let groups = nh / nkv;
        let proj = |lin: &Linear| -> Result<Tensor> {
            if fast {
                lin.forward_inference(x)
            } else {
                Ok(lin.forward(x)?)
            }
        };
        let q = proj(&block.q_proj)?.reshape((b, t, nh, dh))?;
        let k = proj(&block.k_proj)?.reshape((b, t, nkv, dh))?;
        let v = proj(&block.v_proj)?.reshape((b, t, nkv, dh))?;
        let (q, k) = match (&block.q_norm, &block.k_norm) {
            (Some(qn), Some(kn)) => (
                rms_norm(&q, qn, cfg.rms_norm_eps, fast)?,
                rms_norm(&k, kn, cfg.rms_norm_eps, fast)?,
            ),
            _ => (q, k),
        };
        // The training path (CPU, no cache) uses fused ops with a hand-written backward.
        // Its softmax and the decode kernel below know left padding only.
        let left_padded = pad_at == 0;
        let fused = !fast && cache.is_none() && self.device.is_cpu() && left_padded;
        let (q, k) = if fused {
            (
                crate::train::ops::rope(&q, cos, sin)?,
                crate::train::ops::rope(&k, cos, sin)?,
            )
        } else {
            (
                self.rope.apply(&q.transpose(1, 2)?, cos, sin, fast)?, // (B, H, T, Dh)
                self.rope.apply(&k.transpose(1, 2)?, cos, sin, fast)?, // (B, Hkv, T, Dh)
            )
        };
        let v = v.transpose(1, 2)?;
        let (k, v) = match cache {
            Some(c) => c.append(layer, &k, &v)?,
            None => (k, v.contiguous()?),
        };
        if fast && t == 1 && self.device.is_cpu() && left_padded {
            // Decoding one token per row: one fused CPU kernel instead of B x Hkv tiny gemms.
            let q = q.contiguous()?.reshape((b, nkv, groups, dh))?;
            let op = DecodeAttention {
                pad: pad.to_vec(),
                scale: 1.0 / (dh as f32).sqrt(),
            };
            let out = q.apply_op3_no_bwd(&k, &v, &op)?; // (B, Hkv, G, Dh) = (B, H, 1, Dh)
            return block
                .o_proj
                .forward_inference(&out.reshape((b, t, nh * dh))?);
        }
        let s = k.dim(2)?;
        // Grouped-query attention without repeating k/v: the `groups` query heads that share a
        // kv head are stacked along the query axis, (B, Hkv, G*T, Dh), so one batched matmul
        // per kv head serves all of them.
        let q = q.contiguous()?.reshape((b, nkv, groups * t, dh))?;
        if fused {
            let scores = q.matmul(&k.t()?)?;
            let probs =
                crate::train::ops::masked_softmax(&scores, pad, 0, t, 1.0 / (dh as f64).sqrt())?;
            let out = probs.matmul(&v)?; // (B, Hkv, G*T, Dh)
            let out = out
                .reshape((b, nh, t, dh))?
                .transpose(1, 2)?
                .reshape((b, t, nh * dh))?;
            return Ok(block.o_proj.forward(&out)?);
        }
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let scores = scores
            .reshape((b, nkv, groups, t, s))?
            .broadcast_add(mask)?;
        let probs = softmax_last(&scores, fast)?.reshape((b, nkv, groups * t, s))?;
        let out = probs.matmul(&v)?; // (B, Hkv, G*T, Dh)
        let out = out
            .reshape((b, nh, t, dh))?
            .transpose(1, 2)?
            .reshape((b, t, nh * dh))?;
        if fast {
            block.o_proj.forward_inference(&out)
        } else {
            Ok(block.o_proj.forward(&out)?)
        }
    }

    /// LM head: `hidden (..., H)` -> logits `(..., V)`. Differentiable.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }

    /// LM head for generation: uses the quantized head when the model has one.
    pub fn logits_inference(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward_inference(hidden)
    }

    /// Adds quantized copies (e.g. `GgmlDType::Q8_0`) of every projection and of the LM head,
    /// used by the KV-cache (generation) path for matmuls of at most [`QUANTIZED_MAX_ROWS`] rows.
    /// At small batches decoding is bound by reading the weights, so a 4x smaller Q8_0 copy is
    /// much faster; at large batches and in prefill f32 is faster. The f32 weights stay for
    /// training and teacher forcing. The price: with quantized copies, generation log-probs
    /// differ slightly from the f32 forward's, and a row's output depends on the batch size.
    /// Off by default for that reason. Pass `None` to drop the copies.
    pub fn quantize_for_inference(&mut self, dtype: Option<GgmlDType>) -> Result<()> {
        let quantize = |lin: &mut Linear| -> Result<()> {
            lin.quantized = match dtype {
                Some(d) => Some(QMatMul::from_qtensor(QTensor::quantize(&lin.weight, d)?)?),
                None => None,
            };
            Ok(())
        };
        for b in &mut self.blocks {
            for lin in [
                &mut b.q_proj,
                &mut b.k_proj,
                &mut b.v_proj,
                &mut b.o_proj,
                &mut b.gate_proj,
                &mut b.up_proj,
                &mut b.down_proj,
            ] {
                quantize(lin).context("quantizing the weights for inference")?;
            }
        }
        quantize(&mut self.lm_head).context("quantizing the LM head for inference")
    }

    /// Teacher-forced logits `(B, T, V)` for token rows of different lengths, left-padded to the
    /// longest; row `b`'s real logits are the last `len_b` positions. Differentiable.
    pub fn forward_padded(&self, rows: &[Vec<u32>], pad_id: u32) -> Result<(Tensor, Padding)> {
        let (tokens, padding) = left_pad(rows, pad_id, &self.device)?;
        let hidden = self.forward(&tokens, &padding, None)?;
        Ok((self.logits(&hidden)?, padding))
    }
}

/// Left-pads token rows into a `(B, T)` u32 tensor.
pub fn left_pad(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<(Tensor, Padding)> {
    if rows.is_empty() {
        bail!("empty batch");
    }
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    if t == 0 {
        bail!("every row is empty");
    }
    let mut flat = Vec::with_capacity(rows.len() * t);
    let mut pad = Vec::with_capacity(rows.len());
    for r in rows {
        pad.push(t - r.len());
        flat.extend(std::iter::repeat_n(pad_id, t - r.len()));
        flat.extend_from_slice(r);
    }
    Ok((
        Tensor::from_vec(flat, (rows.len(), t), device)?,
        Padding::left(pad),
    ))
}
