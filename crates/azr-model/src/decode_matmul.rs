//! `y = x W^T` for the few rows of a decode step, reading `W` in its stored `(out, in)` layout.
//!
//! Why: a decode step multiplies a handful of rows (the batch) by every weight matrix. A general
//! gemm packs the weight operand into panels on every call; at 32 rows that packing cost more
//! than the multiplication itself (perf on SmolLM2-135M, batch 32: 28% of the step in
//! `pack_operands`, 27% in the microkernel). Here each output is a dot product of an `x` row
//! and a `W` row, both contiguous along `in`: a 4 x 4 tile of rows keeps 16 AVX-512
//! accumulators and reads each weight row once per 4 `x` rows, straight from memory.
//!
//! Every output element sums its products in the same order whatever the number of rows or
//! their tiling, so a row's result does not depend on which other rows share the batch.
//!
//! Inference only (no backward); CPUs without AVX-512F keep candle's matmul.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Up to this many rows a matmul takes this kernel; above, candle's gemm (prefill) is faster.
pub const MAX_ROWS: usize = 64;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turns the kernel off (or back on) for the whole process: the bench measures candle's own
/// matmul as the baseline in the same run.
pub fn set_enabled(on: bool) {
    DISABLED.store(!on, Ordering::Relaxed);
}

/// Whether this CPU and this process use the kernel.
pub fn enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed) && has_avx512()
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

/// `x: (..., K)` times `w: (N, K)` transposed -> `(..., N)`, when the kernel applies (CPU, f32,
/// at most [`MAX_ROWS`] rows, contiguous `w`); `None` means "use the generic matmul".
pub fn matmul_xwt(x: &Tensor, w: &Tensor) -> Result<Option<Tensor>> {
    let k = x.dim(candle_core::D::Minus1)?;
    let rows = x.elem_count() / k.max(1);
    let applies = enabled()
        && rows <= MAX_ROWS
        && x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && w.dtype() == candle_core::DType::F32
        && w.rank() == 2
        && w.dim(1)? == k
        && w.is_contiguous();
    if !applies {
        return Ok(None);
    }
    let x2 = x.reshape((rows, k))?.contiguous()?;
    let y = x2.apply_op2_no_bwd(w, &XWt)?;
    let mut dims = x.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last = w.dim(0)?;
    }
    Ok(Some(y.reshape(dims)?))
}

struct XWt;

impl CustomOp2 for XWt {
    fn name(&self) -> &'static str {
        "decode-matmul"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(x), CpuStorage::F32(w)) = (xs, ws) else {
            candle_core::bail!("decode-matmul: f32 only");
        };
        let (m, k) = xl.shape().dims2()?;
        let (n, wk) = wl.shape().dims2()?;
        let (Some((x0, x1)), Some((w0, w1))) = (xl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("decode-matmul: operands must be contiguous");
        };
        if wk != k {
            candle_core::bail!("decode-matmul: x has {k} columns, w has {wk}");
        }
        let out = run(&x[x0..x1], &w[w0..w1], m, n, k);
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// A raw output pointer shared by the tasks; each writes disjoint columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// A method, so closures capture the `Sync` wrapper and not its raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}

fn run(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return out;
    }
    // About 8 tasks per thread for balance, whole tiles of 4 weight rows, at most 256 rows
    // (the LM head has 49k) so late tasks stay short.
    let threads = rayon::current_num_threads().max(1);
    let per_task = n.div_ceil(threads * 8).next_multiple_of(4).clamp(4, 256);
    let ptr = OutPtr(out.as_mut_ptr());
    (0..n.div_ceil(per_task)).into_par_iter().for_each(|task| {
        let n0 = task * per_task;
        let n1 = (n0 + per_task).min(n);
        for j in (n0..n1).step_by(4) {
            let nr = (n1 - j).min(4);
            for i in (0..m).step_by(4) {
                let mr = (m - i).min(4);
                // SAFETY: rows i..i+mr of x and j..j+nr of w are in bounds (k floats each);
                // the task owns output columns n0..n1, so no two tasks write one element.
                unsafe {
                    tile_dispatch(
                        mr,
                        nr,
                        x.as_ptr().add(i * k),
                        w.as_ptr().add(j * k),
                        k,
                        ptr.get().add(i * n + j),
                        n,
                    )
                };
            }
        }
    });
    out
}

/// # Safety
/// `x` holds `mr` rows and `w` `nr` rows of `k` floats; `out` is writable at `i * ldo + j`.
#[cfg(target_arch = "x86_64")]
unsafe fn tile_dispatch(
    mr: usize,
    nr: usize,
    x: *const f32,
    w: *const f32,
    k: usize,
    out: *mut f32,
    ldo: usize,
) {
    macro_rules! go {
        ($($m:literal $n:literal),*) => {
            match (mr, nr) {
                $(($m, $n) => tile::<$m, $n>(x, w, k, out, ldo),)*
                _ => unreachable!("tiles are at most 4 x 4"),
            }
        };
    }
    go!(1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_dispatch(
    _: usize,
    _: usize,
    _: *const f32,
    _: *const f32,
    _: usize,
    _: *mut f32,
    _: usize,
) {
    unreachable!("decode-matmul runs only where AVX-512F was detected")
}

/// `out[i][j] = dot(x[i], w[j])` for an `MR x NR` tile, 16 lanes at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const MR: usize, const NR: usize>(
    x: *const f32,
    w: *const f32,
    k: usize,
    out: *mut f32,
    ldo: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); NR]; MR];
    let mut kk = 0;
    while kk + 16 <= k {
        let mut wv = [_mm512_setzero_ps(); NR];
        for (j, wj) in wv.iter_mut().enumerate() {
            *wj = _mm512_loadu_ps(w.add(j * k + kk));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = _mm512_loadu_ps(x.add(i * k + kk));
            for (a, wj) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xv, *wj, *a);
            }
        }
        kk += 16;
    }
    if kk < k {
        let mask: __mmask16 = ((1u32 << (k - kk)) - 1) as u16;
        let mut wv = [_mm512_setzero_ps(); NR];
        for (j, wj) in wv.iter_mut().enumerate() {
            *wj = _mm512_maskz_loadu_ps(mask, w.add(j * k + kk));
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let xv = _mm512_maskz_loadu_ps(mask, x.add(i * k + kk));
            for (a, wj) in acc_i.iter_mut().zip(&wv) {
                *a = _mm512_fmadd_ps(xv, *wj, *a);
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        for (j, a) in acc_i.iter().enumerate() {
            *out.add(i * ldo + j) = _mm512_reduce_add_ps(*a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn naive(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for t in 0..k {
                    s += x[i * k + t] as f64 * w[j * k + t] as f64;
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    #[test]
    fn matches_a_naive_matmul_on_every_tile_shape() {
        if !enabled() {
            eprintln!("no AVX-512F here: the kernel is not used, nothing to test");
            return;
        }
        // Odd sizes: every (mr, nr) remainder and a k tail that is not a multiple of 16.
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 7, 17),
            (5, 10, 64),
            (33, 37, 100),
            (64, 260, 576),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 30.0)
                .collect();
            let got = run(&x, &w, m, n, k);
            let want = naive(&x, &w, m, n, k);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "{m}x{n}x{k}: {g} vs {e}"
                );
            }
        }
    }

    #[test]
    fn a_row_does_not_depend_on_its_batch() {
        if !enabled() {
            return;
        }
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (9, 200), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (70, 200), &dev).unwrap();
        let all = matmul_xwt(&x, &w).unwrap().unwrap();
        for r in 0..9 {
            let one = matmul_xwt(&x.narrow(0, r, 1).unwrap(), &w)
                .unwrap()
                .unwrap();
            let a: Vec<f32> = all.get(r).unwrap().to_vec1().unwrap();
            let b: Vec<f32> = one.get(0).unwrap().to_vec1().unwrap();
            assert_eq!(a, b, "row {r}");
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((MAX_ROWS + 1, 8), candle_core::DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 8), candle_core::DType::F32, &dev).unwrap();
        assert!(matmul_xwt(&x, &w).unwrap().is_none(), "too many rows");
        let wt = Tensor::zeros((8, 4), candle_core::DType::F32, &dev)
            .unwrap()
            .t()
            .unwrap();
        let x = Tensor::zeros((2, 8), candle_core::DType::F32, &dev).unwrap();
        assert!(matmul_xwt(&x, &wt).unwrap().is_none(), "a transposed view");
    }
}
