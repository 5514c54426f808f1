//! Causal attention of one block over f32 slices, tile by tile: the forward `P v` and its
//! backward, with the probabilities recomputed per tile of queries instead of stored.

use anyhow::Result;
use rayon::prelude::*;

use super::{Attn, Dims};
use crate::train::kernels::{self, matmul, Mat};

/// Query rows per attention tile: the queries `q0..q1` see keys `..q1` only (causal), so tiles
/// skip most of the masked upper triangle (at T = 1024, 47% of the attention products).
const TILE: usize = 64;

/// The query tiles of one (row, kv head) task, as (first stacked row, `q0`, `q1`): the group's
/// query heads are stacked `(G*T, Dh)`, head `gi`'s query `q` at row `gi * T + q`.
fn tiles(d: &Dims) -> impl Iterator<Item = (usize, usize, usize)> {
    let t = d.t;
    (0..d.groups()).flat_map(move |gi| {
        (0..t)
            .step_by(TILE)
            .map(move |q0| (gi * t + q0, q0, (q0 + TILE).min(t)))
    })
}

/// The masked attention probabilities `(q1 - q0, q1)` of the queries `q0..q1` (`q`: their rows)
/// over the keys `..q1` of `k: (T, Dh)`. A padding query (no visible key) gets a zero row: its
/// output is never read, since no real query sees a padding key.
fn tile_probs(
    d: &Dims,
    q: &[f32],
    k: &[f32],
    (q0, q1): (usize, usize),
    pad: usize,
) -> Result<Vec<f32>> {
    let dh = d.head_dim;
    let m = q1 - q0;
    let mut p = vec![0f32; m * q1];
    matmul(&mut p, false, Mat::new(q, m, dh), Mat::t(k, q1, dh), false)?;
    let scale = 1.0 / (dh as f32).sqrt();
    for (i, row) in p.chunks_mut(q1).enumerate() {
        match kernels::visible_keys(pad, q0 + i, q1) {
            (0, 0) => row.fill(0.0),
            keys => kernels::masked_softmax_row(row, keys, scale),
        }
    }
    Ok(p)
}

/// `P v` per (row, kv head), tile by tile: returns `(B, H, T, Dh)`.
pub(super) fn attention_forward(
    d: &Dims,
    ctx: &Attn<'_>,
    qr: &[f32],
    kr: &[f32],
    vh: &[f32],
) -> Result<Vec<f32>> {
    let (t, dh) = (d.t, d.head_dim);
    let r = d.groups() * t;
    let mut out = vec![0f32; qr.len()];
    out.par_chunks_mut(r * dh)
        .enumerate()
        .try_for_each(|(i, o)| -> Result<()> {
            let q = &qr[i * r * dh..][..r * dh];
            let k = &kr[i * t * dh..][..t * dh];
            let v = &vh[i * t * dh..][..t * dh];
            let pad = ctx.pad[i / d.kv_heads];
            for (r0, q0, q1) in tiles(d) {
                let m = q1 - q0;
                let p = tile_probs(d, &q[r0 * dh..][..m * dh], k, (q0, q1), pad)?;
                let o = &mut o[r0 * dh..][..m * dh];
                matmul(o, false, Mat::new(&p, m, q1), Mat::new(v, q1, dh), false)?;
            }
            Ok(())
        })?;
    Ok(out)
}

/// The gradients of `qr`, `kr` and `vh` for the gradient `dout: (B, H, T, Dh)` of the
/// attention output (the probabilities recomputed tile by tile).
pub(super) fn attention_backward(
    d: &Dims,
    ctx: &Attn<'_>,
    (qr, kr, vh): (&[f32], &[f32], &[f32]),
    dout: &[f32],
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let (t, dh) = (d.t, d.head_dim);
    let r = d.groups() * t;
    let scale = 1.0 / (dh as f32).sqrt();
    let mut dq = vec![0f32; qr.len()];
    let mut dk = vec![0f32; kr.len()];
    let mut dv = vec![0f32; vh.len()];
    dq.par_chunks_mut(r * dh)
        .zip(dk.par_chunks_mut(t * dh).zip(dv.par_chunks_mut(t * dh)))
        .enumerate()
        .try_for_each(|(i, (dq, (dk, dv)))| -> Result<()> {
            let q = &qr[i * r * dh..][..r * dh];
            let k = &kr[i * t * dh..][..t * dh];
            let v = &vh[i * t * dh..][..t * dh];
            let go = &dout[i * r * dh..][..r * dh];
            let pad = ctx.pad[i / d.kv_heads];
            for (r0, q0, q1) in tiles(d) {
                let m = q1 - q0;
                let q_t = &q[r0 * dh..][..m * dh];
                let go_t = &go[r0 * dh..][..m * dh];
                let p = tile_probs(d, q_t, k, (q0, q1), pad)?;
                // dv += P^T dO; dP = dO v^T, turned into dS in place by the softmax backward.
                let dv = &mut dv[..q1 * dh];
                matmul(dv, true, Mat::t(&p, m, q1), Mat::new(go_t, m, dh), false)?;
                let mut ds = vec![0f32; m * q1];
                matmul(
                    &mut ds,
                    false,
                    Mat::new(go_t, m, dh),
                    Mat::t(v, q1, dh),
                    false,
                )?;
                for (ds, p) in ds.chunks_mut(q1).zip(p.chunks(q1)) {
                    kernels::masked_softmax_row_backward(p, ds, scale);
                }
                // dq = dS k; dk += dS^T q.
                let dq_t = &mut dq[r0 * dh..][..m * dh];
                matmul(
                    dq_t,
                    false,
                    Mat::new(&ds, m, q1),
                    Mat::new(k, q1, dh),
                    false,
                )?;
                let dk = &mut dk[..q1 * dh];
                matmul(dk, true, Mat::t(&ds, m, q1), Mat::new(q_t, m, dh), false)?;
            }
            Ok(())
        })?;
    Ok((dq, dk, dv))
}
