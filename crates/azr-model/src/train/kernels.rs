//! The CPU kernels of the training forward and backward, on plain f32 slices: RMSNorm, RoPE
//! with the head transpose, the masked softmax of attention, SwiGLU, and a checked front end to
//! `gemm`. Used by the hand-written decoder block ([`super::block`]) and the trainer's final
//! norm; the tests check them against candle's composed ops (`tests/train.rs`), which share
//! nothing with them.
//!
//! Every reduction that crosses rows (a norm weight's or a bias' gradient) sums fixed blocks of
//! rows in order: the result does not depend on how rayon splits the work, so a resumed run
//! reproduces the uninterrupted one bit for bit.

use anyhow::{bail, Result};
use rayon::prelude::*;

/// Rows per rayon task for row-wise kernels (keeps tasks ~tens of microseconds).
pub(crate) const MIN_ROWS: usize = 16;

// ---------------------------------------------------------------------------------------------
// Matrix products.

/// A read-only `rows x cols` matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix (`data` may hold more rows than are used).
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `rows x cols` matrix: a `cols x rows` view.
    pub fn t(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows: cols,
            cols: rows,
            rs: 1,
            cs: cols,
        }
    }

    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a b` (row-major `a.rows x b.cols`), or `dst += a b` with `accumulate`.
/// `parallel`: split the product over rayon's threads (else run on the calling thread, for
/// callers that already run many small products in parallel).
pub(crate) fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    a: Mat<'_>,
    b: Mat<'_>,
    parallel: bool,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() < m * n || !a.in_bounds() || !b.in_bounds() {
        bail!(
            "matmul {m}x{k} by {}x{n}: operands of {}, {} and {} elements",
            b.rows,
            a.data.len(),
            b.data.len(),
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return Ok(());
    }
    let threads = rayon::current_num_threads();
    let par = if parallel && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the bounds were checked above: every index gemm touches, `i * rs + j * cs` for
    // `i < rows, j < cols`, is inside its slice; `dst` is exclusively borrowed.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

/// `acc[j] += sum_i x[i * cols + j]` (a bias gradient), in fixed blocks of rows.
pub(crate) fn add_column_sums(x: &[f32], cols: usize, acc: &mut [f32]) {
    let partials: Vec<Vec<f32>> = x
        .par_chunks(MIN_ROWS * 8 * cols)
        .map(|block| {
            let mut s = vec![0f32; cols];
            for row in block.chunks(cols) {
                for (s, v) in s.iter_mut().zip(row) {
                    *s += v;
                }
            }
            s
        })
        .collect();
    for p in &partials {
        for (a, b) in acc.iter_mut().zip(p) {
            *a += b;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = x / sqrt(mean(x^2) + eps) * w over rows of `w.len()`.

pub(crate) fn rms_norm(x: &[f32], w: &[f32], eps: f32, y: &mut [f32]) {
    let d = w.len();
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .with_min_len(MIN_ROWS)
        .for_each(|(y, x)| {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let den = (ms + eps).sqrt();
            for ((y, x), w) in y.iter_mut().zip(x).zip(w) {
                *y = x / den * w;
            }
        });
}

/// The backward of [`rms_norm`] for the output gradient `g`: writes `dx`, adds into `dw`.
pub(crate) fn rms_norm_backward(
    x: &[f32],
    w: &[f32],
    eps: f32,
    g: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
) {
    let d = w.len();
    let block = MIN_ROWS * d;
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .map(|(dx, (x, g))| {
            let mut acc = vec![0f32; d];
            for (dx, (x, g)) in dx.chunks_mut(d).zip(x.chunks(d).zip(g.chunks(d))) {
                let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32;
                let r = 1.0 / (ms + eps).sqrt();
                // dot = mean(g * w * x)
                let mut dot = 0f32;
                for i in 0..d {
                    dot += g[i] * w[i] * x[i];
                    acc[i] += g[i] * x[i] * r;
                }
                let c = dot / d as f32 * r * r;
                for i in 0..d {
                    dx[i] = r * (g[i] * w[i] - x[i] * c);
                }
            }
            acc
        })
        .collect();
    for p in &partials {
        for (a, b) in dw.iter_mut().zip(p) {
            *a += b;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE, half-split ("rotate_half") form, fused with the head transpose.

/// Rotates `x` by the positions' angles (`cos`, `sin`: `(B, T, D/2)`) and transposes it.
/// `to_heads`: `x` is `(B, T, H, D)` and the result `(B, H, T, D)`; else the reverse.
/// `inverse` rotates by minus the angle (the backward of a rotation is its inverse).
pub(crate) fn rope(
    x: &[f32],
    (b, t, h, d): (usize, usize, usize, usize),
    cos: &[f32],
    sin: &[f32],
    to_heads: bool,
    inverse: bool,
) -> Vec<f32> {
    let half = d / 2;
    let mut out = vec![0f32; x.len()];
    debug_assert_eq!(x.len(), b * t * h * d);
    let sign = if inverse { -1f32 } else { 1f32 };
    if to_heads {
        // One task per (b, h): writes a (T, D) block of the (B, H, T, D) layout.
        out.par_chunks_mut(t * d).enumerate().for_each(|(i, o)| {
            let (bi, hi) = (i / h, i % h);
            for ti in 0..t {
                let src = &x[((bi * t + ti) * h + hi) * d..][..d];
                let c = &cos[(bi * t + ti) * half..][..half];
                let s = &sin[(bi * t + ti) * half..][..half];
                rotate(src, &mut o[ti * d..][..d], c, s, sign);
            }
        });
    } else {
        // One task per (b, t): writes an (H, D) block of the (B, T, H, D) layout.
        out.par_chunks_mut(h * d).enumerate().for_each(|(i, o)| {
            let (bi, ti) = (i / t, i % t);
            let c = &cos[i * half..][..half];
            let s = &sin[i * half..][..half];
            for hi in 0..h {
                let src = &x[((bi * h + hi) * t + ti) * d..][..d];
                rotate(src, &mut o[hi * d..][..d], c, s, sign);
            }
        });
    }
    out
}

#[inline]
fn rotate(src: &[f32], dst: &mut [f32], c: &[f32], s: &[f32], sign: f32) {
    let half = c.len();
    let (x1, x2) = src.split_at(half);
    let (d1, d2) = dst.split_at_mut(half);
    for j in 0..half {
        let (cj, sj) = (c[j], sign * s[j]);
        d1[j] = x1[j] * cj - x2[j] * sj;
        d2[j] = x2[j] * cj + x1[j] * sj;
    }
}

/// `(B, T, H, D)` <-> `(B, H, T, D)` without rotation (`to_heads` as in [`rope`]).
pub(crate) fn transpose_heads(
    x: &[f32],
    (b, t, h, d): (usize, usize, usize, usize),
    to_heads: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    debug_assert_eq!(x.len(), b * t * h * d);
    if to_heads {
        out.par_chunks_mut(t * d).enumerate().for_each(|(i, o)| {
            let (bi, hi) = (i / h, i % h);
            for ti in 0..t {
                o[ti * d..][..d].copy_from_slice(&x[((bi * t + ti) * h + hi) * d..][..d]);
            }
        });
    } else {
        out.par_chunks_mut(h * d).enumerate().for_each(|(i, o)| {
            let (bi, ti) = (i / t, i % t);
            for hi in 0..h {
                o[hi * d..][..d].copy_from_slice(&x[((bi * h + hi) * t + ti) * d..][..d]);
            }
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Attention softmax with the causal + left-padding mask.

/// The visible keys `lo..hi` of query slot `q` in a row with `pad` padding slots and `s` keys;
/// `(0, 0)` when it sees none (a padding query).
#[inline]
pub(crate) fn visible_keys(pad: usize, q: usize, s: usize) -> (usize, usize) {
    let hi = (q + 1).min(s);
    if pad >= hi {
        (0, 0)
    } else {
        (pad, hi)
    }
}

/// `softmax(scale * row)` in place over the visible keys `lo..hi`, 0 elsewhere; a row that sees
/// no key is uniform (what the model's finite additive mask gives).
#[inline]
pub(crate) fn masked_softmax_row(row: &mut [f32], (lo, hi): (usize, usize), scale: f32) {
    if lo == hi {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
        return;
    }
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
    let xs = &mut row[lo..hi];
    let m = xs.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) * scale;
    let mut sum = 0f32;
    for x in xs.iter_mut() {
        let e = (*x * scale - m).exp();
        *x = e;
        sum += e;
    }
    let inv = 1.0 / sum;
    for x in xs {
        *x *= inv;
    }
}

/// The backward of [`masked_softmax_row`] with probabilities `p`, in place on the output
/// gradient: `g <- scale * p * (g - <p, g>)`.
#[inline]
pub(crate) fn masked_softmax_row_backward(p: &[f32], g: &mut [f32], scale: f32) {
    let dot: f32 = p.iter().zip(g.iter()).map(|(p, g)| p * g).sum();
    for (g, p) in g.iter_mut().zip(p) {
        *g = scale * p * (*g - dot);
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: silu(g) * u.

pub(crate) fn swiglu(g: &[f32], u: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(4096)
        .zip(g.par_chunks(4096).zip(u.par_chunks(4096)))
        .for_each(|(y, (g, u))| {
            for i in 0..y.len() {
                y[i] = g[i] / (1.0 + (-g[i]).exp()) * u[i];
            }
        });
}

/// The backward of [`swiglu`] for the output gradient `dy`, in place: `g` becomes `dL/dg` and
/// `u` becomes `dL/du`.
pub(crate) fn swiglu_backward(g: &mut [f32], u: &mut [f32], dy: &[f32]) {
    g.par_chunks_mut(4096)
        .zip(u.par_chunks_mut(4096).zip(dy.par_chunks(4096)))
        .for_each(|(g, (u, dy))| {
            for i in 0..g.len() {
                let (gi, ui, di) = (g[i], u[i], dy[i]);
                let sig = 1.0 / (1.0 + (-gi).exp());
                let silu = gi * sig;
                u[i] = di * silu;
                g[i] = di * ui * sig * (1.0 + gi * (1.0 - sig));
            }
        });
}
