//! Picking a token from a row of logits: greedy, or a draw at a temperature with top-k and
//! top-p truncation; the returned log-prob is always the temperature-1, untruncated one.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How to pick tokens.
#[derive(Clone, Debug)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`
    /// (1.0 keeps all).
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens (0 keeps all).
    pub top_k: usize,
    pub max_new_tokens: usize,
    /// Stop a row once its generated text contains any of these strings.
    pub stop_strings: Vec<String>,
    /// Stop a row when it samples any of these ids (usually the model's EOS ids).
    pub stop_token_ids: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 256,
            stop_strings: vec![],
            stop_token_ids: vec![],
        }
    }
}

impl SamplingParams {
    pub fn greedy(max_new_tokens: usize) -> Self {
        Self {
            temperature: 0.0,
            max_new_tokens,
            ..Self::default()
        }
    }
}

/// Picks a token from one row of logits; returns it with its temperature-1 log-prob.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut ChaCha8Rng) -> (u32, f32) {
    // log-softmax at temperature 1, for the returned log-prob.
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_z = max + crate::vexp::exp_sum(logits, max, 1.0).ln();
    let tok = if params.temperature <= 0.0 {
        argmax(logits)
    } else {
        sample_tempered(logits, params, max, rng)
    };
    (tok, logits[tok as usize] - log_z)
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn sample_tempered(logits: &[f32], params: &SamplingParams, max: f32, rng: &mut ChaCha8Rng) -> u32 {
    let inv_t = 1.0 / params.temperature;
    let vocab = logits.len();
    let top_k = if params.top_k == 0 {
        vocab
    } else {
        params.top_k.min(vocab)
    };
    // Unnormalized probabilities at the sampling temperature.
    let mut weights = logits.to_vec();
    crate::vexp::exp_in_place(&mut weights, max, inv_t);
    if top_k == vocab && params.top_p >= 1.0 {
        return draw(rng, weights.iter().copied().enumerate());
    }
    // Candidates in descending probability. Rather than sorting the whole vocabulary, take the
    // top `k` by selection, growing `k` until it covers top_p's mass (or reaches top_k).
    let total: f32 = weights.iter().sum();
    let mut idx: Vec<u32> = (0..vocab as u32).collect();
    let desc = |a: &u32, b: &u32| {
        weights[*b as usize]
            .total_cmp(&weights[*a as usize])
            .then(a.cmp(b))
    };
    let mut k = top_k.min(64);
    loop {
        if k < vocab {
            idx.select_nth_unstable_by(k, desc);
        }
        let head = &mut idx[..k];
        head.sort_unstable_by(desc);
        let mass: f32 = head.iter().map(|&i| weights[i as usize]).sum();
        if k == top_k || mass >= params.top_p * total {
            break;
        }
        k = (k * 4).min(top_k);
    }
    // Nucleus: the shortest prefix reaching top_p of the total mass (at least one token).
    let mut keep = 0;
    let mut acc = 0.0;
    for &i in &idx[..k] {
        keep += 1;
        acc += weights[i as usize];
        if acc >= params.top_p * total {
            break;
        }
    }
    draw(
        rng,
        idx[..keep]
            .iter()
            .map(|&i| (i as usize, weights[i as usize])),
    )
}

/// Draws an index proportionally to the weights.
fn draw(rng: &mut ChaCha8Rng, items: impl Iterator<Item = (usize, f32)> + Clone) -> u32 {
    let total: f32 = items.clone().map(|(_, w)| w).sum();
    let mut r = rng.gen::<f32>() * total;
    let mut last = 0;
    for (i, w) in items {
        if w <= 0.0 {
            continue;
        }
        last = i;
        if r < w {
            return i as u32;
        }
        r -= w;
    }
    // Rounding left a sliver: the last token with weight takes it.
    last as u32
}
