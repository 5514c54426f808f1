//! The LM head, log-softmax and entropy around the per-token objective (`objective.rs`), with
//! their backward written by hand and chunked over tokens: full-vocabulary logits exist for at most `chunk` tokens at a
//! time and never enter candle's graph (at 8 x 256 tokens and a 49k vocabulary one f32 copy of
//! all logits is 400 MB, and autograd would keep several).
//!
//! For a token with logits `z`, `p = softmax(z)`, target `t`, advantage `A`, and
//! `rho = exp(logp_t - old_logp_t)`:
//! - loss `objective(log p_t) - c H(p)`, scaled by `1 / total`, where the objective is PPO's
//!   clipped surrogate (`objective.rs`, which also gives `d objective / d log p_t`);
//! - `d/dz_i log p_t = [i == t] - p_i`, and `d/dz_i H = -p_i (log p_i + H)`.

use anyhow::{bail, Context, Result};
use candle_core::{Layout, Storage, Tensor};
use rayon::prelude::*;

use super::kernels::{matmul, Mat};
use super::objective::clipped_surrogate;

/// Per-token loss settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenLoss {
    pub clip_low: f32,
    pub clip_high: f32,
    pub entropy_coef: f32,
    /// `1 / tokens in the whole batch`: token-mean aggregation across micro-batches.
    pub scale: f32,
}

/// The response tokens of a micro-batch, in the row order of the hidden states.
pub(crate) struct HeadTokens<'a> {
    pub targets: &'a [u32],
    /// Log-probs at sampling time; NaN means "use the current one" (ratio exactly 1).
    pub old_logprobs: &'a [f32],
    pub advantages: &'a [f32],
}

/// Sums over tokens, for the step's statistics.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HeadSums {
    pub loss: f64,
    pub entropy: f64,
    pub logprob: f64,
    pub clipped: usize,
    /// `(rho - 1) - log rho`, a non-negative estimate of KL(old || new).
    pub kl: f64,
    pub tokens: usize,
}

#[derive(Clone, Copy, Default)]
struct TokenStat {
    loss: f64,
    entropy: f64,
    logprob: f64,
    clipped: bool,
    kl: f64,
}

/// Runs the head over `h: (N, H)` (detached final hidden states of the response tokens) with
/// `w: (V, H)`; returns `dL/dh: (N, H)`, adds `dL/dW` into `grad_w` (`V * H`, row-major; `None`:
/// a frozen head, not computed) and the token statistics into `sums`.
pub(crate) fn head_backward(
    h: &Tensor,
    w: &Tensor,
    toks: &HeadTokens<'_>,
    loss: &TokenLoss,
    chunk: usize,
    mut grad_w: Option<&mut [f32]>,
    sums: &mut HeadSums,
) -> Result<Tensor> {
    let (n, hidden) = h.dims2()?;
    let (vocab, w_hidden) = w.dims2()?;
    if hidden != w_hidden || grad_w.as_ref().is_some_and(|g| g.len() != vocab * hidden) {
        bail!("head shapes disagree: h {n}x{hidden}, w {vocab}x{w_hidden}");
    }
    if toks.targets.len() != n || toks.old_logprobs.len() != n || toks.advantages.len() != n {
        bail!("{n} hidden rows but {} targets", toks.targets.len());
    }
    let chunk = chunk.max(1);
    let h = h.contiguous()?;
    let mut grad_h = vec![0f32; n * hidden];
    with_cpu_slice(&h, |h| {
        with_cpu_slice(&w.contiguous()?, |w| {
            // One chunk's logits, turned into dL/dlogits in place.
            let mut buf = vec![0f32; chunk.min(n) * vocab];
            for start in (0..n).step_by(chunk) {
                let c = chunk.min(n - start);
                let h_c = &h[start * hidden..(start + c) * hidden];
                let z = &mut buf[..c * vocab];
                matmul(
                    z,
                    false,
                    Mat::new(h_c, c, hidden),
                    Mat::t(w, vocab, hidden),
                    true,
                )?;
                let stats: Vec<TokenStat> = z
                    .par_chunks_mut(vocab)
                    .enumerate()
                    .map(|(i, z)| {
                        let j = start + i;
                        token_row(
                            z,
                            toks.targets[j] as usize,
                            toks.old_logprobs[j],
                            toks.advantages[j],
                            loss,
                        )
                    })
                    .collect::<Result<_>>()?;
                for s in &stats {
                    sums.loss += s.loss;
                    sums.entropy += s.entropy;
                    sums.logprob += s.logprob;
                    sums.clipped += s.clipped as usize;
                    sums.kl += s.kl;
                    sums.tokens += 1;
                }
                // dh = dz W; dW += dz^T h, straight into the buffer.
                let gh = &mut grad_h[start * hidden..(start + c) * hidden];
                matmul(
                    gh,
                    false,
                    Mat::new(z, c, vocab),
                    Mat::new(w, vocab, hidden),
                    true,
                )?;
                if let Some(grad_w) = grad_w.as_deref_mut() {
                    matmul(
                        grad_w,
                        true,
                        Mat::t(z, c, vocab),
                        Mat::new(h_c, c, hidden),
                        true,
                    )?;
                }
            }
            Ok(())
        })
    })?;
    Ok(Tensor::from_vec(grad_h, (n, hidden), h.device())?)
}

/// One token: turns its logits `z` into `dL/dz` in place and returns its statistics.
fn token_row(
    z: &mut [f32],
    target: usize,
    old: f32,
    adv: f32,
    loss: &TokenLoss,
) -> Result<TokenStat> {
    if target >= z.len() {
        bail!("token id {target} is outside the vocabulary of {}", z.len());
    }
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let zt = z[target] - m;
    let (mut sum, mut ez) = (0f64, 0f64);
    for x in z.iter_mut() {
        let zi = *x - m;
        let e = zi.exp();
        sum += e as f64;
        ez += e as f64 * zi as f64;
        *x = e;
    }
    let log_sum = sum.ln();
    let entropy = log_sum - ez / sum;
    let logprob = zt as f64 - log_sum;
    let old = if old.is_nan() { logprob } else { old as f64 };
    let objective = clipped_surrogate(
        logprob,
        old,
        adv as f64,
        loss.clip_low as f64,
        loss.clip_high as f64,
    );
    let scale = loss.scale as f64;
    let coef = loss.entropy_coef as f64;
    let g_lp = objective.grad * scale;
    let g_ent = -coef * scale;
    let inv_sum = 1.0 / sum;
    if g_ent == 0.0 {
        for x in z.iter_mut() {
            *x = (-g_lp * *x as f64 * inv_sum) as f32;
        }
    } else {
        for x in z.iter_mut() {
            let p = *x as f64 * inv_sum;
            let plogp_term = if p > 0.0 {
                -p * (p.ln() + entropy)
            } else {
                0.0
            };
            *x = (-g_lp * p + g_ent * plogp_term) as f32;
        }
    }
    z[target] += g_lp as f32;
    Ok(TokenStat {
        loss: (objective.loss - coef * entropy) * scale,
        entropy,
        logprob,
        clipped: objective.clipped,
        kl: (objective.ratio - 1.0) - (logprob - old),
    })
}

/// Calls `f` with the f32 elements of a contiguous CPU tensor.
pub(crate) fn with_cpu_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    f(cpu_f32(&storage, layout)?)
}

/// The f32 elements a contiguous CPU tensor's storage and layout describe.
pub(crate) fn cpu_f32<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    let Storage::Cpu(cpu) = storage else {
        bail!("training runs on the CPU only");
    };
    let all = cpu
        .as_slice::<f32>()
        .context("training needs f32 tensors")?;
    let (a, b) = layout
        .contiguous_offsets()
        .context("expected a contiguous tensor")?;
    Ok(&all[a..b])
}
