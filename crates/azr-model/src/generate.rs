//! Batched sampling with a KV cache over prompts of different lengths.
//!
//! Prompts are left-padded into one batch and prefilled together; then every step feeds each
//! row its last token. Each row samples with its own ChaCha RNG seeded from its own seed, so a
//! row's output does not depend on which other rows share its batch: batched generation equals
//! one-at-a-time generation with the same seeds.
//!
//! Log-probs: for every sampled token we return `log softmax(logits)[token]` of the raw logits —
//! the temperature-1, untruncated distribution, i.e. the policy the trainer differentiates —
//! whatever temperature/top-p/top-k the token was drawn with.
//!
//! Steering ([`Steer`], [`generate_steered`]): the caller may take over a row when it would stop
//! (end of turn, a stop string, its phase's token budget) and append text of its own that the
//! row then continues from. Appended tokens are fed to the model one per decode step, like
//! sampled ones, but they are not samples of the policy: [`Generation::sampled`] marks them
//! false, and their log-prob is 0. An end-of-turn token that a continuation replaces is dropped
//! from the row. Stop strings are looked for only in the text sampled since the last appended
//! text, so appended text never stops a row.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{IndexOp, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

mod sampling;

pub use sampling::{sample, SamplingParams};

use crate::model::{left_pad, KvCache, Model, Padding};
use crate::tokenizer::Tokenizer;

/// Why a row stopped.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Sampled a stop token (included in `tokens`).
    Eos,
    /// The generated text contains this stop string (the token completing it is the last one).
    Stop(String),
    /// Reached `max_new_tokens`.
    Length,
}

/// One row's output.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Generation {
    /// Generated token ids (not the prompt).
    pub tokens: Vec<u32>,
    /// `log p(token)` under the temperature-1 distribution, one per token (0 for a token the
    /// steering appended).
    pub logprobs: Vec<f32>,
    /// Per token: sampled from the policy (true) or appended by the steering (false).
    pub sampled: Vec<bool>,
    pub finish: FinishReason,
}

/// How a row goes on: until `budget` more sampled tokens, or one of `stop_strings`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub budget: usize,
    pub stop_strings: Vec<String>,
}

/// The caller's say in each row's generation (see the module documentation).
pub trait Steer {
    /// Row `row`'s first phase (its budget is capped by `max_new_tokens`).
    fn start(&self, row: usize) -> Phase;
    /// Row `row` would stop for `reason` with `text` generated so far (special tokens
    /// skipped; an end-of-turn token not in it). `Some((append, phase))` appends `append`
    /// and goes on with `phase`; `None` lets the row stop.
    fn on_stop(&self, row: usize, text: &str, reason: &FinishReason) -> Option<(String, Phase)>;
}

/// A row's state while it generates.
struct RowState {
    /// Tokens to append before sampling again.
    forced: std::collections::VecDeque<u32>,
    /// Sampled tokens left in the current phase.
    budget: usize,
    stop_strings: Vec<String>,
    /// Token index where stop strings start to count (after the last appended text).
    since: usize,
}

/// Per-row seeds derived from one base seed (what `generate` callers usually want).
pub fn row_seeds(base: u64, n: usize) -> Vec<u64> {
    // SplitMix64 steps: distinct, well-mixed seeds for consecutive rows.
    (0..n as u64)
        .map(|i| {
            let mut z = base.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        })
        .collect()
}

/// Where the time of one `generate` call went.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GenerateStats {
    /// Prompt tokens of all rows.
    pub prefill_tokens: usize,
    /// Prompt positions the model ran (padding excluded): fewer than `prefill_tokens` when rows
    /// share a prompt or a prefix, whose positions run once.
    pub prefill_computed: usize,
    pub prefill_secs: f64,
    /// Tokens sampled after the first one of each row (each costs one decode step).
    pub decode_tokens: usize,
    /// Decode forwards plus sampling of every token.
    pub decode_secs: f64,
}

/// Generates a continuation for every prompt. `seeds[i]` seeds row `i`'s sampler.
/// `tokenizer` is needed only for stop strings (it may be `None` when there are none).
pub fn generate(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    seeds: &[u64],
) -> Result<Vec<Generation>> {
    Ok(generate_with_stats(model, tokenizer, prompts, params, seeds)?.0)
}

/// [`generate`], also returning timings.
pub fn generate_with_stats(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    seeds: &[u64],
) -> Result<(Vec<Generation>, GenerateStats)> {
    generate_with_options(
        model,
        tokenizer,
        prompts,
        params,
        seeds,
        None,
        &GenerateOptions::default(),
    )
}

/// [`generate_with_stats`] with a [`Steer`] that may append text to rows that would stop.
/// Needs a tokenizer (appended text is tokenized, stop strings are decoded).
pub fn generate_steered(
    model: &Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    seeds: &[u64],
    steer: &dyn Steer,
) -> Result<(Vec<Generation>, GenerateStats)> {
    generate_with_options(
        model,
        Some(tokenizer),
        prompts,
        params,
        seeds,
        Some(steer),
        &GenerateOptions::default(),
    )
}

/// How the engine does its work; none of it changes what a row samples.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Rows with the same prompt prefill it once, and the distinct prompts prefill their
    /// longest common prefix once. Off, every row prefills its whole prompt (`azr bench
    /// rollout` measures the difference).
    pub share_prefill: bool,
    /// The attention scores one prefill forward may hold, in bytes (longer prompts prefill in
    /// chunks).
    pub prefill_bytes: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            share_prefill: true,
            prefill_bytes: PREFILL_SCORES_BYTES,
        }
    }
}

/// [`generate_steered`] (or, without `steer`, [`generate_with_stats`]) with the engine's
/// options.
pub fn generate_with_options(
    model: &Model,
    tokenizer: Option<&Tokenizer>,
    prompts: &[Vec<u32>],
    params: &SamplingParams,
    seeds: &[u64],
    steer: Option<&dyn Steer>,
    options: &GenerateOptions,
) -> Result<(Vec<Generation>, GenerateStats)> {
    let prefill_bytes = options.prefill_bytes;
    let mut stats = GenerateStats::default();
    if prompts.is_empty() {
        return Ok((vec![], stats));
    }
    if seeds.len() != prompts.len() {
        bail!("{} seeds for {} prompts", seeds.len(), prompts.len());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        bail!("prompt {i} is empty");
    }
    if (!params.stop_strings.is_empty() || steer.is_some()) && tokenizer.is_none() {
        bail!("stop strings and steering need a tokenizer");
    }
    let temperature_ok = params.temperature >= 0.0; // false for NaN
    let top_p_ok = params.top_p > 0.0 && params.top_p <= 1.0;
    if !temperature_ok || !top_p_ok {
        bail!(
            "temperature must be >= 0 and top_p in (0, 1], got {} and {}",
            params.temperature,
            params.top_p
        );
    }
    let vocab = model.config().vocab_size as u32;
    if let Some(&bad) = prompts.iter().flatten().find(|&&t| t >= vocab) {
        bail!("prompt token {bad} is outside the vocabulary of {vocab}");
    }
    let n = prompts.len();
    let mut out: Vec<Generation> = (0..n)
        .map(|_| Generation {
            tokens: vec![],
            logprobs: vec![],
            sampled: vec![],
            finish: FinishReason::Length,
        })
        .collect();
    if params.max_new_tokens == 0 {
        return Ok((out, stats));
    }
    let device = model.device().clone();
    let pad_id = params.stop_token_ids.first().copied().unwrap_or(0);
    // The samples of one prompt share its prefill, and the distinct prompts share the prefill
    // of their longest common prefix (the chat template's and the task kind's opening words).
    let (distinct, copy_of) = if options.share_prefill {
        distinct_prompts(prompts)
    } else {
        (prompts.to_vec(), (0..n).collect())
    };
    let shared = if options.share_prefill && distinct.len() > 1 {
        common_prefix(&distinct)
    } else {
        0
    };
    // Every row keeps at least one position of its own to prefill: its logits start the row.
    let shared = shared.min(distinct.iter().map(|p| p.len()).min().unwrap_or(1) - 1);
    // The prefill's layout: the shared prefix, each row's padding, its own tokens. Decoding
    // then sees the rows left-padded (the cache moves each row's padding to the front).
    let suffixes: Vec<Vec<u32>> = distinct.iter().map(|p| p[shared..].to_vec()).collect();
    let (tokens, padding) = left_pad(&suffixes, pad_id, &device)?;
    let padding = Padding {
        pad: padding.pad,
        at: shared,
    };
    let prompt_len = shared + tokens.dim(1)?;
    // The last sampled token never needs to go through the model.
    let capacity = prompt_len + params.max_new_tokens - 1;

    let mut rngs: Vec<ChaCha8Rng> = seeds
        .iter()
        .map(|&s| ChaCha8Rng::seed_from_u64(s))
        .collect();
    let mut done = vec![false; n];
    let mut state: Vec<RowState> = (0..n)
        .map(|i| {
            let phase = match steer {
                Some(st) => st.start(i),
                None => Phase {
                    budget: params.max_new_tokens,
                    stop_strings: params.stop_strings.clone(),
                },
            };
            RowState {
                forced: Default::default(),
                budget: phase.budget.min(params.max_new_tokens),
                stop_strings: phase.stop_strings,
                since: 0,
            }
        })
        .collect();

    // Prefill: only the last position's logits are needed.
    let start = Instant::now();
    let mut cache = if shared > 0 {
        let mut prefix = KvCache::new(model.config(), 1, shared, &device)?;
        let ids = Tensor::new(&distinct[0][..shared], &device)?.unsqueeze(0)?;
        let chunk = prefill_chunk(model, 1, shared, prefill_bytes);
        prefill(model, &ids, &Padding::left(vec![0]), &mut prefix, chunk)?;
        KvCache::broadcast_prefix(&prefix, distinct.len(), capacity)?
    } else {
        KvCache::new(model.config(), distinct.len(), capacity, &device)?
    };
    let chunk = prefill_chunk(model, distinct.len(), prompt_len, prefill_bytes);
    let last = prefill(model, &tokens, &padding, &mut cache, chunk)?;
    cache.move_padding_to_front(shared, &padding.pad)?;
    let mut logits = model.logits_inference(&last)?;
    // Reading the logits waits for the computation (matters on a GPU).
    let distinct_rows: Vec<Vec<f32>> = logits.to_vec2()?;
    let mut rows: Vec<Vec<f32>> = copy_of.iter().map(|&j| distinct_rows[j].clone()).collect();
    let mut padding = Padding::left(copy_of.iter().map(|&j| padding.pad[j]).collect());
    if distinct.len() < n {
        let idx: Vec<u32> = copy_of.iter().map(|&j| j as u32).collect();
        cache.select_rows(&idx)?;
    }
    stats.prefill_tokens = prompts.iter().map(Vec::len).sum();
    stats.prefill_computed = shared + suffixes.iter().map(Vec::len).sum::<usize>();
    stats.prefill_secs = start.elapsed().as_secs_f64();
    let start = Instant::now();
    // `live[r]`: the output row that cache row `r` decodes. Finished rows leave the batch once
    // enough of them gather (each removal copies the cache of the rows that stay).
    let mut live: Vec<usize> = (0..n).collect();
    for step in 0..params.max_new_tokens {
        if step > 0 {
            rows = logits.to_vec2()?;
        }
        let mut next = vec![pad_id; live.len()];
        // Sampling reads the whole vocabulary of every row (exps, selection): in parallel over
        // rows, each with its own generator, so the result does not depend on the threads.
        let mut cache_row = vec![0; n];
        for (r, &i) in live.iter().enumerate() {
            cache_row[i] = r;
        }
        // Rows with appended text waiting take it instead of sampling.
        let mut picks: Vec<Option<(u32, f32, bool)>> = vec![None; n];
        for (i, st) in state.iter_mut().enumerate() {
            if !done[i] {
                if let Some(tok) = st.forced.pop_front() {
                    picks[i] = Some((tok, 0.0, false));
                }
            }
        }
        let mut jobs: Vec<(usize, &mut ChaCha8Rng)> = rngs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| !done[*i] && picks[*i].is_none())
            .collect();
        let sampled: Vec<(usize, (u32, f32))> = jobs
            .par_iter_mut()
            .map(|(i, rng)| (*i, sample(&rows[cache_row[*i]], params, rng)))
            .collect();
        for (i, (tok, lp)) in sampled {
            picks[i] = Some((tok, lp, true));
        }
        for (r, &i) in live.iter().enumerate() {
            let Some((tok, lp, was_sampled)) = picks[i] else {
                continue;
            };
            let g = &mut out[i];
            g.tokens.push(tok);
            g.logprobs.push(lp);
            g.sampled.push(was_sampled);
            next[r] = tok;
            if !was_sampled {
                continue;
            }
            let st = &mut state[i];
            st.budget = st.budget.saturating_sub(1);
            let reason = if params.stop_token_ids.contains(&tok) {
                Some(FinishReason::Eos)
            } else if let Some(s) = match tokenizer {
                Some(tk) => stop_string(tk, &g.tokens, st)?,
                None => None,
            } {
                Some(FinishReason::Stop(s))
            } else if st.budget == 0 || g.tokens.len() >= params.max_new_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            let Some(reason) = reason else {
                continue;
            };
            g.finish = reason;
            done[i] = true;
            let (Some(steer), Some(tk)) = (steer, tokenizer) else {
                continue;
            };
            let eos = g.finish == FinishReason::Eos;
            let kept = g.tokens.len() - usize::from(eos);
            let text = tk.decode(&g.tokens[..kept], true)?;
            let Some((append, phase)) = steer.on_stop(i, &text, &g.finish) else {
                continue;
            };
            let ids = if append.is_empty() {
                Vec::new()
            } else {
                tk.encode(&append, false)?
            };
            // Room for the appended tokens and at least one sampled token after them (the
            // KV cache holds max_new_tokens positions).
            let room = params.max_new_tokens.saturating_sub(kept + ids.len());
            if room < 1 || phase.budget == 0 {
                continue;
            }
            if eos {
                g.tokens.pop();
                g.logprobs.pop();
                g.sampled.pop();
            }
            done[i] = false;
            g.finish = FinishReason::Length;
            st.forced = ids.into();
            st.budget = phase.budget.min(room);
            st.stop_strings = phase.stop_strings;
            st.since = kept + st.forced.len();
            if eos {
                // The end-of-turn token is not fed: the first appended token takes its place.
                match st.forced.pop_front() {
                    Some(first) => {
                        g.tokens.push(first);
                        g.logprobs.push(0.0);
                        g.sampled.push(false);
                        next[r] = first;
                    }
                    None => {
                        // Nothing appended after an end of turn: there is no token to feed.
                        g.finish = FinishReason::Eos;
                        done[i] = true;
                    }
                }
            }
        }
        if done.iter().all(|&d| d) || step + 1 >= params.max_new_tokens {
            break;
        }
        let finished = live.iter().filter(|&&i| done[i]).count();
        if finished > 0 && finished * 8 >= live.len() {
            let keep: Vec<u32> = (0..live.len() as u32)
                .filter(|&r| !done[live[r as usize]])
                .collect();
            cache.select_rows(&keep)?;
            padding.pad = keep.iter().map(|&r| padding.pad[r as usize]).collect();
            next = keep.iter().map(|&r| next[r as usize]).collect();
            live = keep.iter().map(|&r| live[r as usize]).collect();
        }
        // Finished rows still in the batch run on a pad token; their outputs are ignored.
        let input = Tensor::from_vec(next, (live.len(), 1), &device)?;
        let hidden = model.forward_cached(&input, &padding, &mut cache)?;
        logits = model.logits_inference(&hidden.squeeze(1)?)?;
    }
    stats.decode_secs = start.elapsed().as_secs_f64();
    stats.decode_tokens = out.iter().map(|g| g.tokens.len().saturating_sub(1)).sum();
    Ok((out, stats))
}

/// Runs `tokens: (B, T)` into `cache` in chunks of `chunk` positions; returns the last
/// position's hidden states `(B, hidden)`.
fn prefill(
    model: &Model,
    tokens: &Tensor,
    padding: &Padding,
    cache: &mut KvCache,
    chunk: usize,
) -> Result<Tensor> {
    let t = tokens.dim(1)?;
    let mut last = None;
    for c0 in (0..t).step_by(chunk) {
        let len = chunk.min(t - c0);
        let hidden = model.forward_cached(&tokens.narrow(1, c0, len)?, padding, cache)?;
        last = Some(hidden.i((.., len - 1, ..))?.contiguous()?);
    }
    last.context("an empty prompt batch")
}

/// The distinct prompts in first-seen order, and for each row the index of its prompt there.
fn distinct_prompts(prompts: &[Vec<u32>]) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut index: std::collections::HashMap<&[u32], usize> = Default::default();
    let mut distinct = Vec::new();
    let copy_of = prompts
        .iter()
        .map(|p| {
            *index.entry(p.as_slice()).or_insert_with(|| {
                distinct.push(p.clone());
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, copy_of)
}

/// The length of the longest prefix that every prompt starts with.
fn common_prefix(prompts: &[Vec<u32>]) -> usize {
    let Some((first, rest)) = prompts.split_first() else {
        return 0;
    };
    rest.iter().fold(first.len(), |n, p| {
        first[..n].iter().zip(p).take_while(|(a, b)| a == b).count()
    })
}

/// The first of the row's stop strings in the text sampled since its last appended text.
fn stop_string(tk: &Tokenizer, tokens: &[u32], st: &RowState) -> Result<Option<String>> {
    let longest = st.stop_strings.iter().map(|s| s.len()).max().unwrap_or(0);
    if longest == 0 {
        return Ok(None);
    }
    // Decode only a tail long enough to contain any stop string (every token decodes to at
    // least one byte, so `longest` tokens suffice; a few more cover tokens that are partial
    // UTF-8 sequences).
    let from = tokens.len().saturating_sub(longest + 4).max(st.since);
    let tail = tk.decode(&tokens[from.min(tokens.len())..], false)?;
    Ok(st
        .stop_strings
        .iter()
        .find(|s| tail.contains(s.as_str()))
        .cloned())
}

/// Prompt positions per prefill forward. A whole-prompt forward holds attention scores of
/// `batch x heads x T x T` floats (several GB for 32 prompts of ~1 000 tokens: `azr eval` on
/// the 135M model peaked at 8.5 GB); chunks against the KV cache bound them to ~256 MB.
fn prefill_chunk(model: &Model, batch: usize, prompt_len: usize, budget: usize) -> usize {
    let per_position = batch * model.config().num_heads * prompt_len * 4;
    (budget / per_position.max(1))
        .max(64)
        .min(prompt_len.max(1))
}

const PREFILL_SCORES_BYTES: usize = 256 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest budget prefills in chunks of 64 (`tests/tiny.rs` checks that chunked and
    /// whole prefills generate the same).
    #[test]
    fn the_smallest_prefill_budget_gives_chunks_of_64() {
        let dir = tempfile::tempdir().unwrap();
        crate::tiny::write_tiny_model(dir.path(), "qwen2", false, 5, 256).unwrap();
        let lm = crate::load(dir.path()).unwrap();
        assert_eq!(prefill_chunk(&lm.model, 2, 150, 0), 64);
    }
}
