//! `exp` over slices, 16 lanes at a time where AVX-512F is available.
//!
//! Why: a decode step takes `exp` of every vocabulary entry of every row twice (the log-softmax
//! for the returned log-prob, the sampling weights) and of every attention score; libm's scalar
//! `expf` was 5-6% of a batch-32 step. The vector version is a degree-6 polynomial on a range
//! reduced argument, within ~2 ulp of `expf` for the arguments used here (`x <= 0`, softmax
//! after subtracting the max); below -87 it returns ~1e-38 instead of a smaller denormal.

/// `xs[i] = exp((xs[i] - shift) * scale)`; returns the sum of the new values.
pub fn exp_in_place(xs: &mut [f32], shift: f32, scale: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::decode_matmul::enabled() {
        // SAFETY: AVX-512F was detected.
        return unsafe { avx512::exp_in_place(xs, shift, scale) };
    }
    let mut sum = 0f32;
    for x in xs.iter_mut() {
        *x = ((*x - shift) * scale).exp();
        sum += *x;
    }
    sum
}

/// `sum_i exp((xs[i] - shift) * scale)`, leaving `xs` as it is.
pub fn exp_sum(xs: &[f32], shift: f32, scale: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if crate::decode_matmul::enabled() {
        // SAFETY: AVX-512F was detected.
        return unsafe { avx512::exp_sum(xs, shift, scale) };
    }
    xs.iter().map(|&x| ((x - shift) * scale).exp()).sum()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `exp` of 16 lanes: `x = n ln2 + r` with `|r| <= ln2 / 2`, `exp(r)` by its Taylor
    /// polynomial to degree 6 (error < 2e-7 relative), scaled by `2^n`.
    #[target_feature(enable = "avx512f")]
    fn exp16(x: __m512) -> __m512 {
        let x = _mm512_max_ps(x, _mm512_set1_ps(-87.0));
        let x = _mm512_min_ps(x, _mm512_set1_ps(88.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        // ln 2 split in two so that n * LN2_HI is exact.
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 720.0);
        for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_in_place(xs: &mut [f32], shift: f32, scale: f32) -> f32 {
        let (s, k) = (_mm512_set1_ps(shift), _mm512_set1_ps(scale));
        let mut acc = _mm512_setzero_ps();
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            let e = exp16(_mm512_mul_ps(
                _mm512_sub_ps(_mm512_loadu_ps(c.as_ptr()), s),
                k,
            ));
            _mm512_storeu_ps(c.as_mut_ptr(), e);
            acc = _mm512_add_ps(acc, e);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mask: __mmask16 = ((1u32 << rest.len()) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
            let e = exp16(_mm512_mul_ps(_mm512_sub_ps(x, s), k));
            _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, e);
            acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mask, e));
        }
        _mm512_reduce_add_ps(acc)
    }

    /// # Safety
    /// AVX-512F must be available.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_sum(xs: &[f32], shift: f32, scale: f32) -> f32 {
        let (s, k) = (_mm512_set1_ps(shift), _mm512_set1_ps(scale));
        let mut acc = _mm512_setzero_ps();
        let mut chunks = xs.chunks_exact(16);
        for c in &mut chunks {
            let x = _mm512_loadu_ps(c.as_ptr());
            acc = _mm512_add_ps(acc, exp16(_mm512_mul_ps(_mm512_sub_ps(x, s), k)));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mask: __mmask16 = ((1u32 << rest.len()) - 1) as u16;
            let x = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
            let e = exp16(_mm512_mul_ps(_mm512_sub_ps(x, s), k));
            acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(mask, e));
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_libm_exp() {
        // Softmax-style arguments (<= 0 after the shift), a tail that is not a multiple of 16.
        let xs: Vec<f32> = (0..1000).map(|i| -(i as f32) * 0.09 + 3.0).collect();
        let mut got = xs.clone();
        let sum = exp_in_place(&mut got, 3.0, 1.0);
        let mut want_sum = 0f64;
        for (g, &x) in got.iter().zip(&xs) {
            let want = ((x - 3.0) as f64).exp();
            want_sum += want;
            if want > 1e-37 {
                assert!(
                    ((*g as f64) - want).abs() <= 4e-7 * want,
                    "exp({x}-3): {g} vs {want}"
                );
            }
        }
        assert!((sum as f64 - want_sum).abs() <= 1e-5 * want_sum);
        let s2 = exp_sum(&xs, 3.0, 1.0);
        assert!((s2 as f64 - want_sum).abs() <= 1e-5 * want_sum);
        // A temperature scale.
        let mut t = vec![-1.0f32, 0.0, -2.5];
        exp_in_place(&mut t, 0.0, 0.5);
        for (g, x) in t.iter().zip([-1.0f64, 0.0, -2.5]) {
            assert!(((*g as f64) - (x * 0.5).exp()).abs() <= 4e-7);
        }
    }
}
