//! Fused CPU ops with a hand-written backward for the differentiable (training) forward of
//! [`crate::model::Model`]: RMSNorm, RoPE (fused with the `(B, T, H, D) -> (B, H, T, D)`
//! transpose), the scaled causal/padding-masked softmax of attention, SwiGLU, and the matmul of
//! a frozen weight (LoRA's base), whose backward skips the weight's gradient.
//!
//! Each replaces a chain of candle's elementwise and broadcast ops, whose generic backward
//! allocates and reduces a temporary per op; here one pass forward and one backward. They are
//! candle `CustomOp`s with `bwd`, so candle's autograd still drives the backward; every op is
//! checked against the composed candle version in the tests below (values and gradients).
//! CPU only: the model falls back to the composed ops elsewhere. The trainer itself runs the
//! hand-written blocks ([`super::block`]); these ops make `Model::block_forward` differentiable
//! for the reference path its tests compare against, and share its kernels
//! ([`super::kernels`]).

use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;

use super::kernels::{self, MIN_ROWS};

fn contiguous<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        bail!("{what}: f32 only");
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: expected a contiguous input"),
    }
}

/// Runs `f` over the f32 elements of `t` (made contiguous first).
fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        bail!("fused training ops run on the CPU only");
    };
    f(contiguous(cpu, layout, "fused op")?)
}

// ---------------------------------------------------------------------------------------------
// Frozen matmul: y = x W^T with W a constant. candle's matmul backward always computes both
// operands' gradients; for a frozen weight that is a third of a linear layer's backward spent
// on a gradient nobody reads.

struct FrozenMatmul {
    /// (out, in)
    w: Tensor,
}

impl FrozenMatmul {
    fn matmul(&self, x: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let (m, k) = l.shape().dims2()?;
        let (n, wk) = self.w.dims2()?;
        if k != wk {
            bail!("frozen matmul: x ({m}, {k}) against a ({n}, {wk}) weight");
        }
        let (ws, wl) = self.w.storage_and_layout();
        let Storage::Cpu(w) = &*ws else {
            bail!("frozen matmul: CPU only");
        };
        let y = x.matmul(w, (1, m, n, k), l, &wl.transpose(0, 1)?)?;
        Ok((y, Shape::from((m, n))))
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "azr-frozen-matmul"
    }

    fn cpu_fwd(&self, x: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        self.matmul(x, l)
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(g.matmul(&self.w)?))
    }
}

/// `x W^T + d`: the sum is made in place, so the graph holds one node where a matmul and an add
/// would hold two full-size ones (each costs candle's backward a zero-fill and an add).
impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "azr-frozen-matmul-add"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        d: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, shape) = self.matmul(x, xl)?;
        let CpuStorage::F32(mut y) = y else {
            bail!("frozen matmul: f32 only");
        };
        let d = contiguous(d, dl, "frozen matmul addend")?;
        if d.len() != y.len() || dl.shape() != &shape {
            bail!(
                "frozen matmul: addend {:?} for an output {shape:?}",
                dl.shape()
            );
        }
        y.par_chunks_mut(1 << 14)
            .zip(d.par_chunks(1 << 14))
            .for_each(|(y, d)| y.iter_mut().zip(d).for_each(|(y, d)| *y += d));
        Ok((CpuStorage::F32(y), shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _d: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(g.matmul(&self.w)?), Some(g.clone())))
    }
}

/// `x W^T (+ add)` for a 2-D `x` (rows, in), a frozen `w` (out, in) and an optional `add`
/// (rows, out): gradients flow to `x` and `add`, never to `w`.
pub fn frozen_matmul(x: &Tensor, w: &Tensor, add: Option<&Tensor>) -> Result<Tensor> {
    if !x.device().is_cpu() {
        let y = x.matmul(&w.t()?)?;
        return match add {
            Some(a) => y + a,
            None => Ok(y),
        };
    }
    let op = FrozenMatmul { w: w.detach() };
    match add {
        Some(a) => x.apply_op2(&a.contiguous()?, op),
        None => x.apply_op1(op),
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over the last dim.

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "azr-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, "rms_norm")?;
        let w = contiguous(s2, l2, "rms_norm")?;
        let mut y = vec![0f32; x.len()];
        kernels::rms_norm(x, w, self.eps, &mut y);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = w.elem_count();
        let (dx, dw) = with_f32(x, |x| {
            with_f32(w, |w| {
                with_f32(grad, |g| {
                    let mut dx = vec![0f32; x.len()];
                    let mut dw = vec![0f32; d];
                    kernels::rms_norm_backward(x, w, self.eps, g, &mut dx, &mut dw);
                    Ok((dx, dw))
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }
}

/// RMSNorm over the last dim of `x` with weight `w` (its size), differentiable in both.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    if x.dim(candle_core::D::Minus1)? != w.elem_count() {
        bail!("rms_norm: x {:?}, weight {:?}", x.dims(), w.dims());
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 })
}

// ---------------------------------------------------------------------------------------------
// RoPE, half-split ("rotate_half") form, fused with the head transpose.

struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// true: input (B, T, H, D) -> output (B, H, T, D); false (backward): the reverse.
    forward: bool,
    /// Rotate by -angle (the backward of a rotation is its inverse).
    inverse: bool,
}

impl Rope {
    fn run(&self, x: &[f32], dims: (usize, usize, usize, usize)) -> Result<Vec<f32>> {
        // dims are always (B, T, H, D) of the *rotated positions* layout.
        with_f32(&self.cos, |cos| {
            with_f32(&self.sin, |sin| {
                Ok(kernels::rope(x, dims, cos, sin, self.forward, self.inverse))
            })
        })
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "azr-rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "rope")?;
        let (d0, d1, d2, d3) = l.shape().dims4()?;
        let (dims, out_shape) = if self.forward {
            ((d0, d1, d2, d3), Shape::from((d0, d2, d1, d3)))
        } else {
            // input (B, H, T, D)
            ((d0, d2, d1, d3), Shape::from((d0, d2, d1, d3)))
        };
        Ok((CpuStorage::F32(self.run(x, dims)?), out_shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            forward: !self.forward,
            inverse: !self.inverse,
        };
        Ok(Some(grad.contiguous()?.apply_op1(op)?))
    }
}

/// Rotates `x: (B, T, H, D)` by the positions' angles (`cos`, `sin`: `(B, 1, T, D/2)`, as
/// the model's tables) and returns `(B, H, T, D)`, contiguous. Differentiable in `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, _, d) = x.dims4()?;
    if d % 2 != 0 || cos.elem_count() != b * t * d / 2 || sin.elem_count() != cos.elem_count() {
        bail!("rope: x {:?}, cos {:?}", x.dims(), cos.dims());
    }
    x.contiguous()?.apply_op1(Rope {
        cos: cos.contiguous()?,
        sin: sin.contiguous()?,
        forward: true,
        inverse: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Scaled, masked softmax of attention scores.

/// `softmax(scale * x + mask)` over the last dim of `x: (B, N, R, S)` where row `r` is query
/// `past + r % t` and key `s` is visible when `pad[b] <= s <= past + r % t` (the model's causal
/// and left-padding mask). A row with no visible key (a padding query) is uniform, as the
/// model's finite additive mask gives.
struct MaskedSoftmax {
    pad: Vec<usize>,
    past: usize,
    t: usize,
    scale: f32,
}

impl MaskedSoftmax {
    fn visible(&self, row: usize, rows_per_batch: usize, s: usize) -> (usize, usize) {
        let b = row / rows_per_batch;
        kernels::visible_keys(self.pad[b], self.past + row % self.t, s)
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "azr-masked-softmax"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(st, l, "masked_softmax")?;
        let (b, n, r, s) = l.shape().dims4()?;
        if b != self.pad.len() {
            bail!("masked_softmax: {b} rows, {} pads", self.pad.len());
        }
        let per_batch = n * r;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .with_min_len(MIN_ROWS)
            .for_each(|(row, (y, x))| {
                y.copy_from_slice(x);
                kernels::masked_softmax_row(y, self.visible(row, per_batch, s), self.scale);
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let s = res.dim(3)?;
        let dx = with_f32(res, |p| {
            with_f32(grad, |g| {
                let mut dx = vec![0f32; p.len()];
                dx.par_chunks_mut(s)
                    .zip(p.par_chunks(s).zip(g.par_chunks(s)))
                    .with_min_len(MIN_ROWS)
                    .for_each(|(dx, (p, g))| {
                        dx.copy_from_slice(g);
                        kernels::masked_softmax_row_backward(p, dx, self.scale)
                    });
                Ok(dx)
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// Attention probabilities from raw scores `x: (B, N, R, S)` (`R = groups * t` query rows per
/// kv head, query `r` at slot `past + r % t`): `softmax(scale * x + mask)` with the model's
/// causal + left-padding mask, computed without materializing the mask. Differentiable.
pub fn masked_softmax(
    x: &Tensor,
    pad: &[usize],
    past: usize,
    t: usize,
    scale: f64,
) -> Result<Tensor> {
    let r = x.dim(2)?;
    if t == 0 || r % t != 0 {
        bail!("masked_softmax: {r} rows is not a multiple of t = {t}");
    }
    x.contiguous()?.apply_op1(MaskedSoftmax {
        pad: pad.to_vec(),
        past,
        t,
        scale: scale as f32,
    })
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(g) * u.

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "azr-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous(s1, l1, "swiglu")?;
        let u = contiguous(s2, l2, "swiglu")?;
        let mut y = vec![0f32; g.len()];
        kernels::swiglu(g, u, &mut y);
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = with_f32(g, |g| {
            with_f32(u, |u| {
                with_f32(grad, |dy| {
                    let (mut dg, mut du) = (g.to_vec(), u.to_vec());
                    kernels::swiglu_backward(&mut dg, &mut du, dy);
                    Ok((dg, du))
                })
            })
        })?;
        Ok((
            Some(Tensor::from_vec(dg, g.shape(), g.device())?),
            Some(Tensor::from_vec(du, u.shape(), u.device())?),
        ))
    }
}

/// `silu(g) * u`, differentiable in both.
pub fn swiglu(g: &Tensor, u: &Tensor) -> Result<Tensor> {
    if g.dims() != u.dims() {
        bail!("swiglu: {:?} vs {:?}", g.dims(), u.dims());
    }
    g.contiguous()?.apply_op2(&u.contiguous()?, SwiGlu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var, D};

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Compares `fused(vars)` with `composed(vars)`: values and the gradients of
    /// `sum(out * probe)` with respect to every var.
    fn check(
        inputs: &[Tensor],
        fused: impl Fn(&[Tensor]) -> Result<Tensor>,
        composed: impl Fn(&[Tensor]) -> Result<Tensor>,
        tol: f32,
    ) {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let a = fused(&ts).unwrap();
        let b = composed(&ts).unwrap();
        assert_eq!(a.dims(), b.dims());
        assert!(
            max_diff(&a, &b) < tol,
            "values differ by {}",
            max_diff(&a, &b)
        );
        let probe = rand(a.dims(), 99);
        let ga = (a * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, t) in ts.iter().enumerate() {
            let (x, y) = (ga.get(t).unwrap(), gb.get(t).unwrap());
            let d = max_diff(x, y);
            assert!(d < tol, "gradient of input {i} differs by {d}");
        }
    }

    #[test]
    fn frozen_matmul_matches_matmul_and_skips_the_weight() {
        let x = Var::from_tensor(&rand(&[5, 7], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[3, 7], 2)).unwrap();
        let d = Var::from_tensor(&rand(&[5, 3], 4)).unwrap();
        let g = rand(&[5, 3], 3);
        let plain = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
        for add in [None, Some(d.as_tensor())] {
            let fused = frozen_matmul(x.as_tensor(), w.as_tensor(), add).unwrap();
            let plain = match add {
                Some(d) => (&plain + d).unwrap(),
                None => plain.clone(),
            };
            assert!(max_diff(&fused, &plain) < 1e-6);
            let gf = (fused * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let gp = (plain * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let grad =
                |gs: &candle_core::backprop::GradStore, v: &Var| gs.get(v.as_tensor()).cloned();
            assert!(max_diff(&grad(&gf, &x).unwrap(), &grad(&gp, &x).unwrap()) < 1e-6);
            if add.is_some() {
                assert!(max_diff(&grad(&gf, &d).unwrap(), &g) < 1e-6);
            }
            assert!(grad(&gf, &w).is_none(), "a frozen weight got a gradient");
            assert!(grad(&gp, &w).is_some());
        }
    }

    #[test]
    fn rms_norm_matches_composed() {
        let eps = 1e-5;
        check(
            &[rand(&[3, 5, 16], 1), rand(&[16], 2)],
            |t| rms_norm(&t[0], &t[1], eps),
            |t| {
                let ms = t[0].sqr()?.mean_keepdim(D::Minus1)?;
                t[0].broadcast_div(&(ms + eps)?.sqrt()?)?
                    .broadcast_mul(&t[1])
            },
            1e-4,
        );
    }

    #[test]
    fn rope_matches_composed() {
        let (b, t, h, d) = (2, 5, 3, 8);
        let cos = rand(&[b, 1, t, d / 2], 3);
        let sin = rand(&[b, 1, t, d / 2], 4);
        check(
            &[rand(&[b, t, h, d], 5)],
            |x| rope(&x[0], &cos, &sin),
            |x| {
                let x = x[0].transpose(1, 2)?;
                let x1 = x.narrow(D::Minus1, 0, d / 2)?;
                let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
                let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
                let c = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
                Tensor::cat(&[a, c], D::Minus1)
            },
            1e-5,
        );
    }

    #[test]
    fn masked_softmax_matches_composed() {
        // 2 kv heads x 2 groups, t = 4 queries after 1 cached slot; row 1 has 3 pad slots
        // (its first queries see no key at all).
        let (b, n, g, t, past) = (2, 2, 2, 4, 1);
        let s = past + t;
        let pad = vec![0usize, 3];
        let scale = 0.3;
        let mut m = vec![crate::model::MASK_VALUE; b * t * s];
        for (row, &p) in pad.iter().enumerate() {
            for i in 0..t {
                for key in p..=(past + i).min(s - 1) {
                    m[(row * t + i) * s + key] = 0.0;
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, 1, t, s), &Device::Cpu).unwrap();
        check(
            &[rand(&[b, n, g * t, s], 6)],
            |x| masked_softmax(&x[0], &pad, past, t, scale),
            |x| {
                let sc = ((&x[0] * scale)?
                    .reshape((b, n, g, t, s))?
                    .broadcast_add(&mask))?;
                candle_nn::ops::softmax(&sc, D::Minus1)?.reshape((b, n, g * t, s))
            },
            1e-5,
        );
    }

    #[test]
    fn swiglu_matches_composed() {
        check(
            &[
                (rand(&[3, 7, 9000], 7) * 4.0).unwrap(),
                rand(&[3, 7, 9000], 8),
            ],
            |t| swiglu(&t[0], &t[1]),
            |t| t[0].silu()? * &t[1],
            1e-5,
        );
    }
}
