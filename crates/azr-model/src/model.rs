//! The decoder shared by Llama, Qwen2 and Qwen3: token embedding, `num_layers` pre-norm blocks
//! (RMSNorm -> grouped-query attention with RoPE -> residual, RMSNorm -> SwiGLU MLP -> residual),
//! a final RMSNorm and the LM head.
//!
//! [`Model::forward`] is the plain forward, composed of candle ops only, so it is differentiable
//! as it stands: built over `Var`s ([`Model::from_weights`]) it gives every weight a gradient.
//! It is the reference the trainer's hand-written blocks are tested against, and what
//! teacher-forced log-probs off the generation path use. Generation runs [`inference`]:
//! [`Model::forward_cached`] with a [`KvCache`], fused kernels and optional quantized weights.
//!
//! Batches are left-padded: row `b` has `pad[b]` padding slots before its tokens (or, while
//! generation prefills prompts that share a prefix, after that prefix: [`Padding`]). Padding is
//! excluded by an additive mask of -1e9 (finite on purpose: a fully masked row, as padding
//! query rows are, must give a uniform softmax, not NaN), and positions skip the padding, so a
//! padded row computes exactly what it would alone.

pub mod inference;
mod padding;

use anyhow::{bail, Context, Result};
use candle_core::quantized::QMatMul;
use candle_core::{DType, Device, Module, Tensor, D};

use crate::config::ModelConfig;
use crate::lora::LoraAdapter;
use crate::weights::Weights;
pub use inference::{KvCache, QUANTIZED_MAX_ROWS};
pub use padding::{left_pad, Padding};

/// The additive mask value for excluded keys.
pub const MASK_VALUE: f32 = -1e9;

/// `y = x W^T + b`, with `W` stored `(out, in)` as in Hugging Face checkpoints.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    /// A quantized copy of `weight` for generation only (see
    /// [`Model::quantize_for_inference`]); never used by the plain forward.
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
        let y = x2.matmul(&self.weight.t()?)?;
        let y = match &delta {
            Some(d) => (y + d)?,
            None => y,
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

/// RMSNorm over the last dim: `x / sqrt(mean(x^2) + eps) * weight`.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    Ok(x.broadcast_div(&(ms + eps)?.sqrt()?)?
        .broadcast_mul(weight)?)
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

    /// Rotates `x: (B, H, T, Dh)` by the positions whose tables are `cos, sin: (B, 1, T, Dh/2)`.
    /// `rotate_half` form: out = [x1 cos - x2 sin, x2 cos + x1 sin] with x = [x1, x2].
    fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
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

    /// Runs the decoder over `tokens: (B, T)` (u32), the whole sequence, and returns the
    /// final-norm hidden states `(B, T, hidden)`. `padding` describes the rows.
    pub fn forward(&self, tokens: &Tensor, padding: &Padding) -> Result<Tensor> {
        let (b, t) = tokens.dims2().context("tokens must be (batch, seq)")?;
        if padding.pad.len() != b {
            bail!("padding has {} rows, tokens have {b}", padding.pad.len());
        }
        let ctx = self.forward_ctx(padding, 0, t)?;
        let mut x = self.embed_tokens(tokens)?;
        for l in 0..self.blocks.len() {
            x = self.block_forward(l, &x, &ctx)?;
        }
        self.final_norm(&x)
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

    /// Block `l`: `x + attn(norm(x))`, then `+ mlp(norm(.))`.
    pub fn block_forward(&self, l: usize, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let block = &self.blocks[l];
        let eps = self.cfg.rms_norm_eps;
        let x = (x + self.attention(block, &rms_norm(x, &block.input_norm, eps)?, ctx)?)?;
        let h = rms_norm(&x, &block.post_norm, eps)?;
        let gate = block.gate_proj.forward(&h)?.silu()?;
        let up = block.up_proj.forward(&h)?;
        let mlp = block.down_proj.forward(&(gate * up)?)?;
        Ok((x + mlp)?)
    }

    /// The final RMSNorm.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.norm, self.cfg.rms_norm_eps)
    }

    /// The LM head's weight `(vocab, hidden)` (the embedding matrix when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.lm_head.weight
    }

    /// The final RMSNorm's weight `(hidden)`.
    pub fn norm_weight(&self) -> &Tensor {
        &self.norm
    }

    /// Causal grouped-query attention over the whole chunk (no cache).
    fn attention(&self, block: &Block, x: &Tensor, ctx: &ForwardCtx) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, dh) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let groups = nh / nkv;
        let q = block.q_proj.forward(x)?.reshape((b, t, nh, dh))?;
        let k = block.k_proj.forward(x)?.reshape((b, t, nkv, dh))?;
        let v = block.v_proj.forward(x)?.reshape((b, t, nkv, dh))?;
        let (q, k) = match (&block.q_norm, &block.k_norm) {
            (Some(qn), Some(kn)) => (
                rms_norm(&q, qn, cfg.rms_norm_eps)?,
                rms_norm(&k, kn, cfg.rms_norm_eps)?,
            ),
            _ => (q, k),
        };
        let q = self.rope.apply(&q.transpose(1, 2)?, &ctx.cos, &ctx.sin)?; // (B, H, T, Dh)
        let k = self.rope.apply(&k.transpose(1, 2)?, &ctx.cos, &ctx.sin)?; // (B, Hkv, T, Dh)
        let v = v.transpose(1, 2)?.contiguous()?;
        // Grouped-query attention without repeating k/v: the `groups` query heads that share a
        // kv head are stacked along the query axis, (B, Hkv, G*T, Dh), so one batched matmul
        // per kv head serves all of them.
        let q = q.contiguous()?.reshape((b, nkv, groups * t, dh))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let scores = scores
            .reshape((b, nkv, groups, t, t))?
            .broadcast_add(&ctx.mask)?;
        let probs =
            candle_nn::ops::softmax(&scores, D::Minus1)?.reshape((b, nkv, groups * t, t))?;
        let out = probs.matmul(&v)?; // (B, Hkv, G*T, Dh)
        let out = out
            .reshape((b, nh, t, dh))?
            .transpose(1, 2)?
            .reshape((b, t, nh * dh))?;
        Ok(block.o_proj.forward(&out)?)
    }

    /// LM head: `hidden (..., H)` -> logits `(..., V)`. Differentiable.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(self.lm_head.forward(hidden)?)
    }

    /// Teacher-forced logits `(B, T, V)` for token rows of different lengths, left-padded to the
    /// longest; row `b`'s real logits are the last `len_b` positions. Differentiable.
    pub fn forward_padded(&self, rows: &[Vec<u32>], pad_id: u32) -> Result<(Tensor, Padding)> {
        let (tokens, padding) = left_pad(rows, pad_id, &self.device)?;
        let hidden = self.forward(&tokens, &padding)?;
        Ok((self.logits(&hidden)?, padding))
    }
}
