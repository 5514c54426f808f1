//! Generation's forward: the decoder over a [`KvCache`], computing what [`Model::forward`]
//! computes (up to rounding) with faster kernels that have no backward and are never trained.
//!
//! - candle's fused `rms_norm`, `rope` and `softmax_last_dim`;
//! - one fused CPU kernel for one-token decode attention (`decode_attention.rs`) and a decode
//!   matmul for a few f32 rows (`decode_matmul.rs`);
//! - the optional quantized weight copies of [`Model::quantize_for_inference`].

use anyhow::{bail, Context, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use super::{Block, ForwardCtx, Linear, Model, Padding};
use crate::config::ModelConfig;
use crate::decode_attention::DecodeAttention;

/// Up to this many rows (batch x new tokens) a matmul uses the quantized inference weights when
/// the model has them; above it, f32. Measured on 2 Zen 5 cores with SmolLM2-135M (`azr bench
/// generate`): Q8_0 decodes 120-134 tok/s at batch 1 and 135-144 at batch 2 against f32's 61
/// and 91-102 with the decode kernel (`decode_matmul.rs`); they tie at 4, f32 wins from there
/// up (candle's Q8_0 matmul does not scale with rows) and in every prefill.
pub const QUANTIZED_MAX_ROWS: usize = 3;

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
    /// so far, including them. `len` advances once per forward, in [`Model::forward_cached`].
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

impl Linear {
    /// The inference path (no gradient): the quantized weight when there is one and the input
    /// has at most [`QUANTIZED_MAX_ROWS`] rows, the decode kernel for a few f32 rows
    /// (`decode_matmul.rs`), else `forward`.
    pub(super) fn forward_inference(&self, x: &Tensor) -> Result<Tensor> {
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

/// candle's fused RMSNorm.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(
        &x.contiguous()?,
        weight,
        eps as f32,
    )?)
}

/// candle's fused RoPE of `x: (B, H, T, Dh)` with the tables `cos, sin: (B, 1, T, Dh/2)`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, _, t, half) = cos.dims4()?;
    Ok(candle_nn::rotary_emb::rope(
        &x.contiguous()?,
        &cos.reshape((b, t, half))?,
        &sin.reshape((b, t, half))?,
    )?)
}

impl Model {
    /// Runs the decoder over the chunk `tokens: (B, T)` (u32), appended after the `cache.len()`
    /// slots the cache already holds, and returns the final-norm hidden states `(B, T, hidden)`.
    pub fn forward_cached(
        &self,
        tokens: &Tensor,
        padding: &Padding,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2().context("tokens must be (batch, seq)")?;
        if padding.pad.len() != b {
            bail!("padding has {} rows, tokens have {b}", padding.pad.len());
        }
        let past = cache.len();
        if cache.batch() != b {
            bail!("the cache holds {} rows, tokens have {b}", cache.batch());
        }
        if past + t > cache.capacity() {
            bail!(
                "the cache holds {} positions, {} are needed",
                cache.capacity(),
                past + t
            );
        }
        let ctx = self.forward_ctx(padding, past, t)?;
        let mut x = self.embed_tokens(tokens)?;
        let eps = self.cfg.rms_norm_eps;
        for (l, block) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, &block.input_norm, eps)?;
            x = (x + self.attention_cached(block, l, &h, &ctx, cache)?)?;
            let h = rms_norm(&x, &block.post_norm, eps)?;
            let gate = block.gate_proj.forward_inference(&h)?.silu()?;
            let up = block.up_proj.forward_inference(&h)?;
            x = (x + block.down_proj.forward_inference(&(gate * up)?)?)?;
        }
        cache.len += t;
        rms_norm(&x, &self.norm, eps)
    }

    fn attention_cached(
        &self,
        block: &Block,
        layer: usize,
        x: &Tensor,
        ctx: &ForwardCtx,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = x.dims3()?;
        let (nh, nkv, dh) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let groups = nh / nkv;
        let q = block.q_proj.forward_inference(x)?.reshape((b, t, nh, dh))?;
        let k = block
            .k_proj
            .forward_inference(x)?
            .reshape((b, t, nkv, dh))?;
        let v = block
            .v_proj
            .forward_inference(x)?
            .reshape((b, t, nkv, dh))?;
        let (q, k) = match (&block.q_norm, &block.k_norm) {
            (Some(qn), Some(kn)) => (
                rms_norm(&q, qn, cfg.rms_norm_eps)?,
                rms_norm(&k, kn, cfg.rms_norm_eps)?,
            ),
            _ => (q, k),
        };
        let q = rope(&q.transpose(1, 2)?, &ctx.cos, &ctx.sin)?; // (B, H, T, Dh)
        let k = rope(&k.transpose(1, 2)?, &ctx.cos, &ctx.sin)?; // (B, Hkv, T, Dh)
        let (k, v) = cache.append(layer, &k, &v.transpose(1, 2)?)?;
        // The decode kernel knows left padding only.
        if t == 1 && self.device.is_cpu() && ctx.at == 0 {
            // Decoding one token per row: one fused CPU kernel instead of B x Hkv tiny gemms.
            let q = q.contiguous()?.reshape((b, nkv, groups, dh))?;
            let op = DecodeAttention {
                pad: ctx.pad.clone(),
                scale: 1.0 / (dh as f32).sqrt(),
            };
            let out = q.apply_op3_no_bwd(&k, &v, &op)?; // (B, Hkv, G, Dh) = (B, H, 1, Dh)
            return block
                .o_proj
                .forward_inference(&out.reshape((b, t, nh * dh))?);
        }
        let s = k.dim(2)?;
        // Grouped-query attention, the query heads of a kv head stacked as in `Model::forward`.
        let q = q.contiguous()?.reshape((b, nkv, groups * t, dh))?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        let scores = scores
            .reshape((b, nkv, groups, t, s))?
            .broadcast_add(&ctx.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?.reshape((
            b,
            nkv,
            groups * t,
            s,
        ))?;
        let out = probs.matmul(&v)?; // (B, Hkv, G*T, Dh)
        let out = out
            .reshape((b, nh, t, dh))?
            .transpose(1, 2)?
            .reshape((b, t, nh * dh))?;
        block.o_proj.forward_inference(&out)
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
}
