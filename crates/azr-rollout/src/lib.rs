//! Where rollouts come from besides the local candle engine: an SGLang, vLLM or llama.cpp
//! server ([`remote`]), chosen by the run's `[rollout]` section ([`RolloutConfig`]). The trainer stays local: it
//! recomputes every log-prob it trains on, and pushes its new weights to the engine after each
//! update.
//!
//! Both engines hand their tokens to [`finish_response`], so a scaffolded response has the same
//! shape (appended spans masked out, the structure closed) whichever engine sampled it.

pub mod config;
pub mod remote;

pub use config::{Engine, RolloutConfig, WeightsMode};
pub use remote::{Remote, RemotePolicy};

use anyhow::Result;
use azr_core::scaffold::Scaffold;
use azr_core::{Injected, Response};
use azr_model::Tokenizer;

/// One row's generated tokens, as an engine left them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowTokens {
    pub ids: Vec<u32>,
    /// Per token: its log-prob at sampling time (0 for an appended token).
    pub logprobs: Vec<f32>,
    /// Per token: sampled by the policy (true) or appended by the environment (false).
    pub sampled: Vec<bool>,
}

/// The response of one row: the engine's tokens, then the text that closes the structure
/// (`scaffold.close`), with the appended spans listed.
pub fn finish_response(
    tokenizer: &Tokenizer,
    scaffold: &Scaffold,
    prompt_ids: Vec<u32>,
    row: RowTokens,
) -> Result<Response> {
    let RowTokens {
        mut ids,
        mut logprobs,
        mut sampled,
    } = row;
    // Closing text goes after an end-of-turn token, if the row sampled one: that token stays a
    // trained sample (ending the turn was the policy's choice), and nothing after a token
    // changes its log-prob, so the closing tokens are pure context.
    let text = tokenizer.decode(&ids, true)?;
    let close = scaffold.close(&text);
    if !close.is_empty() {
        for t in tokenizer.encode(close, false)? {
            ids.push(t);
            logprobs.push(0.0);
            sampled.push(false);
        }
    }
    let mut injected = Vec::new();
    let mut j = 0;
    while j < ids.len() {
        if sampled[j] {
            j += 1;
            continue;
        }
        let start = j;
        while j < ids.len() && !sampled[j] {
            j += 1;
        }
        injected.push(Injected {
            token: start,
            text: tokenizer.decode(&ids[start..j], false)?,
        });
    }
    Ok(Response {
        text: tokenizer.decode(&ids, true)?,
        tokens: sampled.iter().filter(|&&s| s).count(),
        prompt_ids,
        token_ids: ids,
        logprobs,
        sampled,
        injected,
    })
}
