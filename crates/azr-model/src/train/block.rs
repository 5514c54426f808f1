//! One decoder block's forward and backward, written by hand over f32 slices.
//!
//! candle's autograd runs a layer's backward as one pass per graph node, zero-fills and adds a
//! gradient buffer for each, and always computes both operands' gradients of a matmul; on
//! SmolLM2-135M that made the layer backward two thirds of an update. Here the backward is the
//! chain rule written out: every product is one `gemm` call whose weight gradient accumulates
//! straight into the trainer's buffer, and the elementwise work is a handful of passes.
//!
//! The block (`x: (B*T, hidden)` rows, heads `H`, kv heads `Hkv`, `G = H / Hkv`):
//! ```text
//! h1 = rms(x) * w_in          q, k, v = h1 Wq^T + bq, h1 Wk^T + bk, h1 Wv^T + bv
//! (Qwen3: q, k = rms(q) * w_qn, rms(k) * w_kn per head)
//! qr, kr = rope(q), rope(k)   P = masked_softmax(qr kr^T / sqrt(Dh))   att = P v
//! x2 = x + att Wo^T           h2 = rms(x2) * w_post
//! y = x2 + (silu(h2 Wg^T) * h2 Wu^T) Wd^T
//! ```
//! [`Saved`] keeps what the backward cannot recompute cheaply: the projections after RoPE, the
//! attention output, `x2`, and the MLP's gate and up activations. The norms' outputs, SwiGLU's
//! output and the attention probabilities are recomputed (the last per tile of 64 queries, so
//! a `(64, T)` block exists per thread, never `(B, H, T, T)`).
//!
//! Tested (`tests/train.rs`) against candle's autograd over the plain forward
//! [`crate::model::Model::forward`] (loss and every gradient) on tiny Llama, Qwen2 and Qwen3 models.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

mod attention;

use super::kernels::{self, matmul, Mat};
use attention::{attention_backward, attention_forward};

/// The shapes of one block run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub b: usize,
    pub t: usize,
    pub hidden: usize,
    pub inter: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
}

impl Dims {
    fn rows(&self) -> usize {
        self.b * self.t
    }
    fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }
    fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }
    fn groups(&self) -> usize {
        self.heads / self.kv_heads
    }
}

/// Per-chunk tables shared by every layer: RoPE `cos`/`sin` `(B, T, Dh/2)` and each row's
/// left padding.
pub(crate) struct Attn<'a> {
    pub cos: &'a [f32],
    pub sin: &'a [f32],
    pub pad: &'a [usize],
}

/// A linear layer `y = x W^T + b (+ s (x A^T) B^T)`; weights `(out, in)` row-major as in
/// Hugging Face checkpoints.
#[derive(Clone, Copy)]
pub(crate) struct Lin<'a> {
    pub w: &'a [f32],
    pub bias: Option<&'a [f32]>,
    /// LoRA: `A: (r, in)`, `B: (out, r)` and the scale `s = alpha / r`.
    pub lora: Option<(&'a [f32], &'a [f32], f32)>,
}

/// Gradient buffers of a [`Lin`]; `None` is a frozen tensor (no gradient computed).
pub(crate) struct LinGrad<'a> {
    pub w: Option<&'a mut [f32]>,
    pub bias: Option<&'a mut [f32]>,
    /// `(dA, dB)`.
    pub lora: Option<(&'a mut [f32], &'a mut [f32])>,
}

/// A block's weights.
pub(crate) struct Weights<'a> {
    pub input_norm: &'a [f32],
    pub q: Lin<'a>,
    pub k: Lin<'a>,
    pub v: Lin<'a>,
    pub o: Lin<'a>,
    pub q_norm: Option<&'a [f32]>,
    pub k_norm: Option<&'a [f32]>,
    pub post_norm: &'a [f32],
    pub gate: Lin<'a>,
    pub up: Lin<'a>,
    pub down: Lin<'a>,
}

/// Gradient buffers matching [`Weights`] (`None`: frozen); the backward adds into them.
pub(crate) struct Grads<'a> {
    pub input_norm: Option<&'a mut [f32]>,
    pub q: LinGrad<'a>,
    pub k: LinGrad<'a>,
    pub v: LinGrad<'a>,
    pub o: LinGrad<'a>,
    pub q_norm: Option<&'a mut [f32]>,
    pub k_norm: Option<&'a mut [f32]>,
    pub post_norm: Option<&'a mut [f32]>,
    pub gate: LinGrad<'a>,
    pub up: LinGrad<'a>,
    pub down: LinGrad<'a>,
}

/// What the backward needs from the forward (see the module documentation).
pub(crate) struct Saved {
    /// The block input `(B*T, hidden)`.
    pub x: Vec<f32>,
    /// Qwen3: q and k before their norms.
    q_pre: Option<Vec<f32>>,
    k_pre: Option<Vec<f32>>,
    /// After RoPE, `(B, H, T, Dh)` and `(B, Hkv, T, Dh)`; v as `(B, Hkv, T, Dh)`.
    qr: Vec<f32>,
    kr: Vec<f32>,
    vh: Vec<f32>,
    /// Attention output `(B*T, H*Dh)`.
    att: Vec<f32>,
    x2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
}

fn scale_in_place(x: &mut [f32], s: f32) {
    x.par_chunks_mut(1 << 14)
        .for_each(|c| c.iter_mut().for_each(|v| *v *= s));
}

impl Lin<'_> {
    /// `y` for `x: (rows, inp)`.
    fn forward(&self, x: &[f32], rows: usize, inp: usize) -> Result<Vec<f32>> {
        let out = self.w.len() / inp;
        let mut y = vec![0f32; rows * out];
        let (xm, wt) = (Mat::new(x, rows, inp), Mat::t(self.w, out, inp));
        matmul(&mut y, false, xm, wt, true)?;
        if let Some(b) = self.bias {
            y.par_chunks_mut(out).for_each(|r| {
                for (y, b) in r.iter_mut().zip(b) {
                    *y += b;
                }
            });
        }
        if let Some((a, b, s)) = self.lora {
            let r = a.len() / inp;
            let xa = lora_down(x, rows, inp, a, s)?;
            matmul(
                &mut y,
                true,
                Mat::new(&xa, rows, r),
                Mat::t(b, out, r),
                true,
            )?;
        }
        Ok(y)
    }

    /// The backward for the output gradient `dy: (rows, out)` and the input `x`: adds the
    /// gradients of the unfrozen tensors into `g`, and writes `dL/dx` into `dx` (`accumulate`:
    /// adds to it).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        g: &mut LinGrad<'_>,
        dy: &[f32],
        x: &[f32],
        rows: usize,
        inp: usize,
        dx: &mut [f32],
        accumulate: bool,
    ) -> Result<()> {
        let out = self.w.len() / inp;
        let (dym, dyt, xm) = (
            Mat::new(dy, rows, out),
            Mat::t(dy, rows, out),
            Mat::new(x, rows, inp),
        );
        if let Some(gw) = g.w.as_deref_mut() {
            matmul(gw, true, dyt, xm, true)?;
        }
        if let Some(gb) = g.bias.as_deref_mut() {
            kernels::add_column_sums(dy, out, gb);
        }
        matmul(dx, accumulate, dym, Mat::new(self.w, out, inp), true)?;
        let Some((a, b, s)) = self.lora else {
            return Ok(());
        };
        // y += (s x A^T) B^T: dB += dy^T (s x A^T); with u = s dy B: dA += u^T x, dx += u A.
        let r = a.len() / inp;
        let xa = lora_down(x, rows, inp, a, s)?;
        let mut u = vec![0f32; rows * r];
        matmul(&mut u, false, dym, Mat::new(b, out, r), true)?;
        scale_in_place(&mut u, s);
        if let Some((ga, gb)) = g.lora.as_mut() {
            matmul(gb, true, dyt, Mat::new(&xa, rows, r), true)?;
            matmul(ga, true, Mat::t(&u, rows, r), xm, true)?;
        }
        matmul(dx, true, Mat::new(&u, rows, r), Mat::new(a, r, inp), true)
    }
}

/// The LoRA down-projection `s x A^T: (rows, r)` of `x: (rows, inp)`.
fn lora_down(x: &[f32], rows: usize, inp: usize, a: &[f32], s: f32) -> Result<Vec<f32>> {
    let r = a.len() / inp;
    let mut xa = vec![0f32; rows * r];
    matmul(
        &mut xa,
        false,
        Mat::new(x, rows, inp),
        Mat::t(a, r, inp),
        true,
    )?;
    scale_in_place(&mut xa, s);
    Ok(xa)
}

fn add_in_place(acc: &mut [f32], x: &[f32]) {
    acc.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(a, x)| a.iter_mut().zip(x).for_each(|(a, x)| *a += x));
}

fn check(w: &Weights<'_>, d: &Dims, ctx: &Attn<'_>, x: &[f32]) -> Result<()> {
    let (h, i) = (d.hidden, d.inter);
    let (qw, kw) = (d.q_width(), d.kv_width());
    let lin_ok = |l: &Lin<'_>, out: usize, inp: usize| {
        l.w.len() == out * inp
            && l.bias.is_none_or(|b| b.len() == out)
            && l.lora.is_none_or(|(a, b, _)| {
                let r = a.len() / inp.max(1);
                r > 0 && a.len() == r * inp && b.len() == out * r
            })
    };
    let ok = d.kv_heads > 0
        && d.heads.is_multiple_of(d.kv_heads)
        && d.head_dim.is_multiple_of(2)
        && x.len() == d.rows() * h
        && w.input_norm.len() == h
        && w.post_norm.len() == h
        && lin_ok(&w.q, qw, h)
        && lin_ok(&w.k, kw, h)
        && lin_ok(&w.v, kw, h)
        && lin_ok(&w.o, h, qw)
        && lin_ok(&w.gate, i, h)
        && lin_ok(&w.up, i, h)
        && lin_ok(&w.down, h, i)
        && w.q_norm.is_none_or(|n| n.len() == d.head_dim)
        && w.k_norm.is_none_or(|n| n.len() == d.head_dim)
        && w.q_norm.is_some() == w.k_norm.is_some()
        && ctx.pad.len() == d.b
        && ctx.cos.len() == d.rows() * d.head_dim / 2
        && ctx.sin.len() == ctx.cos.len();
    if !ok {
        bail!("decoder block: weights, tables or input do not match the shapes {d:?}");
    }
    Ok(())
}

/// The block's output for input `x`, and what its backward needs. With `output = false` (a
/// recompute inside the backward) the MLP's down projection, which the backward does not
/// need, is skipped and the returned output is empty.
pub(crate) fn forward(
    w: &Weights<'_>,
    d: &Dims,
    ctx: &Attn<'_>,
    x: Vec<f32>,
    output: bool,
) -> Result<(Vec<f32>, Saved)> {
    check(w, d, ctx, &x)?;
    let (n, h, dh) = (d.rows(), d.hidden, d.head_dim);
    let mut h1 = vec![0f32; n * h];
    kernels::rms_norm(&x, w.input_norm, d.eps, &mut h1);
    let q = w.q.forward(&h1, n, h)?;
    let k = w.k.forward(&h1, n, h)?;
    let v = w.v.forward(&h1, n, h)?;
    drop(h1);
    let head_norm = |t: Vec<f32>, norm: Option<&[f32]>| match norm {
        Some(nw) => {
            let mut out = vec![0f32; t.len()];
            kernels::rms_norm(&t, nw, d.eps, &mut out);
            (Some(t), out)
        }
        None => (None, t),
    };
    let (q_pre, q) = head_norm(q, w.q_norm);
    let (k_pre, k) = head_norm(k, w.k_norm);
    let qr = kernels::rope(&q, (d.b, d.t, d.heads, dh), ctx.cos, ctx.sin, true, false);
    let kr = kernels::rope(
        &k,
        (d.b, d.t, d.kv_heads, dh),
        ctx.cos,
        ctx.sin,
        true,
        false,
    );
    drop((q, k));
    let vh = kernels::transpose_heads(&v, (d.b, d.t, d.kv_heads, dh), true);
    drop(v);
    let heads = attention_forward(d, ctx, &qr, &kr, &vh)?;
    let att = kernels::transpose_heads(&heads, (d.b, d.t, d.heads, dh), false);
    drop(heads);

    let mut x2 = w.o.forward(&att, n, d.q_width())?;
    add_in_place(&mut x2, &x);
    let mut h2 = vec![0f32; n * h];
    kernels::rms_norm(&x2, w.post_norm, d.eps, &mut h2);
    let gate = w.gate.forward(&h2, n, h)?;
    let up = w.up.forward(&h2, n, h)?;
    drop(h2);
    let y = if output {
        let mut a = vec![0f32; gate.len()];
        kernels::swiglu(&gate, &up, &mut a);
        let mut y = w.down.forward(&a, n, d.inter)?;
        add_in_place(&mut y, &x2);
        y
    } else {
        Vec::new()
    };
    let saved = Saved {
        x,
        q_pre,
        k_pre,
        qr,
        kr,
        vh,
        att,
        x2,
        gate,
        up,
    };
    Ok((y, saved))
}

/// The backward of [`forward`]: given `dy = dL/dy`, adds every weight's gradient into `g` and
/// returns `dL/dx`.
pub(crate) fn backward(
    w: &Weights<'_>,
    g: &mut Grads<'_>,
    d: &Dims,
    ctx: &Attn<'_>,
    saved: Saved,
    dy: &[f32],
) -> Result<Vec<f32>> {
    let Saved {
        x,
        q_pre,
        k_pre,
        qr,
        kr,
        vh,
        att,
        x2,
        mut gate,
        mut up,
    } = saved;
    check(w, d, ctx, &x)?;
    if dy.len() != x.len() {
        bail!(
            "decoder block backward: {} gradient values for {}",
            dy.len(),
            x.len()
        );
    }
    let (n, h, i, dh) = (d.rows(), d.hidden, d.inter, d.head_dim);
    let qw = d.q_width();

    // MLP: y = x2 + a Wd^T with a = silu(gate) * up.
    let mut a = vec![0f32; n * i];
    kernels::swiglu(&gate, &up, &mut a);
    let mut da = vec![0f32; n * i];
    w.down.backward(&mut g.down, dy, &a, n, i, &mut da, false)?;
    drop(a);
    kernels::swiglu_backward(&mut gate, &mut up, &da);
    drop(da);
    let (dgate, dup) = (gate, up);
    let mut h2 = vec![0f32; n * h];
    kernels::rms_norm(&x2, w.post_norm, d.eps, &mut h2);
    let mut dh2 = vec![0f32; n * h];
    w.gate
        .backward(&mut g.gate, &dgate, &h2, n, h, &mut dh2, false)?;
    w.up.backward(&mut g.up, &dup, &h2, n, h, &mut dh2, true)?;
    drop((dgate, dup, h2));
    let mut dx2 = vec![0f32; n * h];
    norm_backward(
        &x2,
        w.post_norm,
        d.eps,
        &dh2,
        &mut dx2,
        g.post_norm.as_deref_mut(),
    );
    drop((x2, dh2));
    add_in_place(&mut dx2, dy);

    // Attention: x2 = x + att Wo^T.
    let mut datt = vec![0f32; n * qw];
    w.o.backward(&mut g.o, &dx2, &att, n, qw, &mut datt, false)?;
    drop(att);
    let dheads = kernels::transpose_heads(&datt, (d.b, d.t, d.heads, dh), true);
    drop(datt);
    let (dqr, dkr, dvh) = attention_backward(d, ctx, (&qr, &kr, &vh), &dheads)?;
    drop((qr, kr, vh, dheads));
    let dq = kernels::rope(&dqr, (d.b, d.t, d.heads, dh), ctx.cos, ctx.sin, false, true);
    let dk = kernels::rope(
        &dkr,
        (d.b, d.t, d.kv_heads, dh),
        ctx.cos,
        ctx.sin,
        false,
        true,
    );
    let dv = kernels::transpose_heads(&dvh, (d.b, d.t, d.kv_heads, dh), false);
    drop((dqr, dkr, dvh));
    let head_norm_backward = |dt: Vec<f32>,
                              pre: Option<Vec<f32>>,
                              nw: Option<&[f32]>,
                              gn: Option<&mut [f32]>| match (pre, nw) {
        (Some(pre), Some(nw)) => {
            let mut out = vec![0f32; dt.len()];
            norm_backward(&pre, nw, d.eps, &dt, &mut out, gn);
            Ok(out)
        }
        (None, None) => Ok(dt),
        _ => bail!("decoder block: a q/k norm without its saved input"),
    };
    let dq = head_norm_backward(dq, q_pre, w.q_norm, g.q_norm.as_deref_mut())?;
    let dk = head_norm_backward(dk, k_pre, w.k_norm, g.k_norm.as_deref_mut())?;

    // q, k, v = h1 W^T + b with h1 = rms(x) * w_in.
    let mut h1 = vec![0f32; n * h];
    kernels::rms_norm(&x, w.input_norm, d.eps, &mut h1);
    let mut dh1 = vec![0f32; n * h];
    w.q.backward(&mut g.q, &dq, &h1, n, h, &mut dh1, false)?;
    w.k.backward(&mut g.k, &dk, &h1, n, h, &mut dh1, true)?;
    w.v.backward(&mut g.v, &dv, &h1, n, h, &mut dh1, true)?;
    drop((dq, dk, dv, h1));
    let mut dx = vec![0f32; n * h];
    norm_backward(
        &x,
        w.input_norm,
        d.eps,
        &dh1,
        &mut dx,
        g.input_norm.as_deref_mut(),
    );
    add_in_place(&mut dx, &dx2);
    Ok(dx)
}

/// [`kernels::rms_norm_backward`], with the weight's gradient dropped when it is frozen.
fn norm_backward(
    x: &[f32],
    w: &[f32],
    eps: f32,
    g: &[f32],
    dx: &mut [f32],
    dw: Option<&mut [f32]>,
) {
    match dw {
        Some(dw) => kernels::rms_norm_backward(x, w, eps, g, dx, dw),
        None => kernels::rms_norm_backward(x, w, eps, g, dx, &mut vec![0f32; w.len()]),
    }
}

/// Where one linear layer's tensors sit in the trainer's tensor table.
#[derive(Clone, Debug)]
struct LinIndex {
    w: usize,
    bias: Option<usize>,
    /// LoRA `A` and `B`.
    lora: Option<(usize, usize)>,
}

/// Where one block's tensors sit in the trainer's tensor table (its parameters, then the
/// frozen base weights under LoRA).
#[derive(Clone, Debug)]
pub(crate) struct Index {
    input_norm: usize,
    q: LinIndex,
    k: LinIndex,
    v: LinIndex,
    o: LinIndex,
    q_norm: Option<usize>,
    k_norm: Option<usize>,
    post_norm: usize,
    gate: LinIndex,
    up: LinIndex,
    down: LinIndex,
    lora_scale: f32,
}

impl Index {
    /// Finds layer `l`'s tensors by their Hugging Face names (LoRA adapters as
    /// `<linear>.lora_A.weight` / `.lora_B.weight`).
    pub fn find(l: usize, lora_scale: f32, find: impl Fn(&str) -> Option<usize>) -> Result<Self> {
        let opt = |n: &str| find(&format!("model.layers.{l}.{n}"));
        let req = |n: &str| opt(n).with_context(|| format!("layer {l} has no {n}"));
        let lin = |n: &str| -> Result<LinIndex> {
            let a = opt(&format!("{n}.lora_A.weight"));
            let b = opt(&format!("{n}.lora_B.weight"));
            let lora = match (a, b) {
                (Some(a), Some(b)) => Some((a, b)),
                (None, None) => None,
                _ => bail!("layer {l}: {n} has only one of its LoRA matrices"),
            };
            Ok(LinIndex {
                w: req(&format!("{n}.weight"))?,
                bias: opt(&format!("{n}.bias")),
                lora,
            })
        };
        Ok(Self {
            input_norm: req("input_layernorm.weight")?,
            q: lin("self_attn.q_proj")?,
            k: lin("self_attn.k_proj")?,
            v: lin("self_attn.v_proj")?,
            o: lin("self_attn.o_proj")?,
            q_norm: opt("self_attn.q_norm.weight"),
            k_norm: opt("self_attn.k_norm.weight"),
            post_norm: req("post_attention_layernorm.weight")?,
            gate: lin("mlp.gate_proj")?,
            up: lin("mlp.up_proj")?,
            down: lin("mlp.down_proj")?,
            lora_scale,
        })
    }

    /// The block's weights, taken from `all` (one slice per tensor of the table).
    pub fn weights<'a>(&self, all: &[&'a [f32]]) -> Weights<'a> {
        let lin = |l: &LinIndex| Lin {
            w: all[l.w],
            bias: l.bias.map(|i| all[i]),
            lora: l.lora.map(|(a, b)| (all[a], all[b], self.lora_scale)),
        };
        Weights {
            input_norm: all[self.input_norm],
            q: lin(&self.q),
            k: lin(&self.k),
            v: lin(&self.v),
            o: lin(&self.o),
            q_norm: self.q_norm.map(|i| all[i]),
            k_norm: self.k_norm.map(|i| all[i]),
            post_norm: all[self.post_norm],
            gate: lin(&self.gate),
            up: lin(&self.up),
            down: lin(&self.down),
        }
    }

    /// The block's gradient buffers, taken out of `all` (one entry per tensor of the table;
    /// `None` for a frozen one).
    pub fn grads<'a>(&self, all: &mut [Option<&'a mut [f32]>]) -> Grads<'a> {
        let mut take = |i: usize| all[i].take();
        let mut lin = |l: &LinIndex| LinGrad {
            w: take(l.w),
            bias: l.bias.and_then(&mut take),
            lora: l.lora.and_then(|(a, b)| Some((take(a)?, take(b)?))),
        };
        let (q, k, v, o) = (lin(&self.q), lin(&self.k), lin(&self.v), lin(&self.o));
        let (gate, up, down) = (lin(&self.gate), lin(&self.up), lin(&self.down));
        Grads {
            input_norm: all[self.input_norm].take(),
            q,
            k,
            v,
            o,
            q_norm: self.q_norm.and_then(|i| all[i].take()),
            k_norm: self.k_norm.and_then(|i| all[i].take()),
            post_norm: all[self.post_norm].take(),
            gate,
            up,
            down,
        }
    }
}
