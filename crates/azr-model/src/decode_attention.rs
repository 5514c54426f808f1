//! Attention for one new token per row against the KV cache, as one CPU kernel.
//!
//! Why: with batched matmuls, a decode step's attention is `batch x kv_heads` tiny gemm calls per
//! layer (plus mask and softmax passes), and their fixed costs made attention about half of a
//! batch-32 step on SmolLM2 although it is a small share of the FLOPs. This kernel reads the
//! cache views in place (any strides), skips the left padding of each row, and parallelizes over
//! (row, kv head). Inference only: it has no backward, and the KV-cache path is never trained.
//! On other devices the caller keeps the generic path.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape};
use rayon::prelude::*;

pub struct DecodeAttention {
    /// Left-padding slots of each row: keys before `pad[b]` are excluded.
    pub pad: Vec<usize>,
    pub scale: f32,
}

/// `q: (B, Hkv, G, D)`, `k, v: (B, Hkv, S, D)` -> `(B, Hkv, G, D)`.
impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) = (qs, ks, vs) else {
            candle_core::bail!("decode-attention: f32 only");
        };
        let (b, h, g, d) = ql.shape().dims4()?;
        let (kb, kh, s, kd) = kl.shape().dims4()?;
        if (kb, kh, kd) != (b, h, d) || vl.shape() != kl.shape() || self.pad.len() != b {
            candle_core::bail!(
                "decode-attention: shapes q {:?} k {:?} v {:?}, {} pads",
                ql.shape(),
                kl.shape(),
                vl.shape(),
                self.pad.len()
            );
        }
        let qc = ql.contiguous_offsets().map(|(o, _)| o);
        let Some(q0) = qc else {
            candle_core::bail!("decode-attention: q must be contiguous");
        };
        let (kst, vst) = (kl.stride(), vl.stride());
        if kst[3] != 1 || vst[3] != 1 {
            candle_core::bail!("decode-attention: k/v rows must be contiguous");
        }
        let (k0, v0) = (kl.start_offset(), vl.start_offset());
        // The AVX-512 path reads raw pointers: check the last row of the views once.
        let last = |st: &[usize], o: usize| {
            o + (b - 1) * st[0] + (h - 1) * st[1] + (s.max(1) - 1) * st[2] + d
        };
        if b > 0 && h > 0 && (last(kst, k0) > k.len() || last(vst, v0) > v.len()) {
            candle_core::bail!("decode-attention: the cache views reach past their storage");
        }
        let mut out = vec![0f32; b * h * g * d];
        let avx512 = crate::decode_matmul::enabled() && matches!(d, 64 | 128);
        out.par_chunks_mut(g * d).enumerate().for_each(|(bh, out)| {
            let (bi, hi) = (bh / h, bh % h);
            let first = self.pad[bi].min(s);
            let kbase = k0 + bi * kst[0] + hi * kst[1] + first * kst[2];
            let vbase = v0 + bi * vst[0] + hi * vst[1] + first * vst[2];
            let q = &q[q0 + bh * g * d..][..g * d];
            let (k, v) = (&k[kbase..], &v[vbase..]);
            let cache = HeadCache {
                k,
                kstride: kst[2],
                v,
                vstride: vst[2],
                keys: s - first,
            };
            #[cfg(target_arch = "x86_64")]
            if avx512 {
                // SAFETY: AVX-512F was detected; the bounds were checked above.
                unsafe {
                    if d == 64 {
                        attend_avx512::<4>(q, &cache, self.scale, out);
                    } else {
                        attend_avx512::<8>(q, &cache, self.scale, out);
                    }
                }
                return;
            }
            let _ = avx512;
            attend(q, &cache, d, self.scale, out);
        });
        Ok((CpuStorage::F32(out), Shape::from((b, h, g, d))))
    }
}

/// The cached keys and values of one (row, kv head): `keys` rows at their strides.
#[derive(Clone, Copy)]
struct HeadCache<'a> {
    k: &'a [f32],
    kstride: usize,
    v: &'a [f32],
    vstride: usize,
    keys: usize,
}

/// One (row, kv head): `out[g] = softmax(q[g] . k^T * scale) v` for each of its query heads.
fn attend(q: &[f32], head: &HeadCache, d: usize, scale: f32, out: &mut [f32]) {
    let HeadCache {
        k,
        kstride,
        v,
        vstride,
        keys,
    } = *head;
    let mut scores = vec![0f32; keys];
    for (qrow, orow) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mut max = f32::NEG_INFINITY;
        for (j, sc) in scores.iter_mut().enumerate() {
            *sc = dot(qrow, &k[j * kstride..][..d]) * scale;
            max = max.max(*sc);
        }
        let sum = exp_and_sum(&mut scores, max);
        for (j, &p) in scores.iter().enumerate() {
            let w = p / sum;
            for (o, &x) in orow.iter_mut().zip(&v[j * vstride..][..d]) {
                *o += w * x;
            }
        }
    }
}

fn exp_and_sum(scores: &mut [f32], max: f32) -> f32 {
    let mut sum = 0f32;
    for sc in scores.iter_mut() {
        *sc = (*sc - max).exp();
        sum += *sc;
    }
    sum
}

/// [`attend`] with `d = 16 * C`, the query (scores pass) and the output (values pass) of one
/// head held in `C` AVX-512 registers. The baseline x86-64 target only vectorizes 4 lanes wide.
///
/// # Safety
/// AVX-512F must be available; `k` and `v` hold `keys` rows at their strides, `d` floats each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attend_avx512<const C: usize>(q: &[f32], head: &HeadCache, scale: f32, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let HeadCache {
        k,
        kstride,
        v,
        vstride,
        keys,
    } = *head;
    let d = 16 * C;
    let mut scores = vec![0f32; keys];
    for (qrow, orow) in q.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        let mut qv = [_mm512_setzero_ps(); C];
        for (c, x) in qv.iter_mut().enumerate() {
            *x = _mm512_loadu_ps(qrow.as_ptr().add(16 * c));
        }
        let mut max = f32::NEG_INFINITY;
        for (j, sc) in scores.iter_mut().enumerate() {
            let kr = k.as_ptr().add(j * kstride);
            let mut acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kr));
            for (c, x) in qv.iter().enumerate().skip(1) {
                acc = _mm512_fmadd_ps(*x, _mm512_loadu_ps(kr.add(16 * c)), acc);
            }
            *sc = _mm512_reduce_add_ps(acc) * scale;
            max = max.max(*sc);
        }
        let inv = 1.0 / crate::vexp::exp_in_place(&mut scores, max, 1.0);
        let mut ov = [_mm512_setzero_ps(); C];
        for (j, &p) in scores.iter().enumerate() {
            let vr = v.as_ptr().add(j * vstride);
            let w = _mm512_set1_ps(p * inv);
            for (c, o) in ov.iter_mut().enumerate() {
                *o = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr.add(16 * c)), *o);
            }
        }
        for (c, o) in ov.iter().enumerate() {
            _mm512_storeu_ps(orow.as_mut_ptr().add(16 * c), *o);
        }
    }
}

/// A dot product with 8 independent accumulators, so it vectorizes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for i in 0..8 {
            acc[i] += a[c * 8 + i] * b[c * 8 + i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avx512_kernel_matches_the_portable_one() {
        if !crate::decode_matmul::enabled() {
            eprintln!("no AVX-512F here: only the portable kernel runs");
            return;
        }
        for (d, g, keys, stride) in [(64, 3, 1, 64), (64, 7, 37, 192), (128, 2, 200, 128)] {
            let val = |i: usize, m: usize| ((i * m % 89) as f32 - 44.0) / 20.0;
            let q: Vec<f32> = (0..g * d).map(|i| val(i, 13)).collect();
            let k: Vec<f32> = (0..keys * stride).map(|i| val(i, 29)).collect();
            let v: Vec<f32> = (0..keys * stride).map(|i| val(i, 41)).collect();
            let head = HeadCache {
                k: &k,
                kstride: stride,
                v: &v,
                vstride: stride,
                keys,
            };
            let mut want = vec![0f32; g * d];
            attend(&q, &head, d, 0.125, &mut want);
            let mut got = vec![0f32; g * d];
            // SAFETY: AVX-512F was detected; k and v hold `keys` rows of `stride >= d` floats.
            unsafe {
                if d == 64 {
                    attend_avx512::<4>(&q, &head, 0.125, &mut got);
                } else {
                    attend_avx512::<8>(&q, &head, 0.125, &mut got);
                }
            }
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "d {d}: {a} vs {b}");
            }
        }
    }
}
