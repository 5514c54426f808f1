//! The trained sequences, and how they are packed into micro-batches.

use anyhow::{bail, Result};

use crate::ModelConfig;

/// One trained sequence: the advantage goes on every sampled response token.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TrainRow {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
    /// Log-probs of `response` at sampling time (the PPO ratio's denominator). Empty: take the
    /// current policy's (ratio 1, what one update on fresh rollouts gives anyway).
    pub old_logprobs: Vec<f32>,
    /// Per response token: sampled by the policy (true) or written by the environment (false).
    /// Environment tokens are context, like the prompt: no loss, no ratio, no entropy, and they
    /// do not count in the token mean. Empty: every token was sampled.
    pub sampled: Vec<bool>,
    pub advantage: f32,
}

impl TrainRow {
    /// Whether response token `j` is trained on.
    pub fn trains(&self, j: usize) -> bool {
        self.sampled.get(j).copied().unwrap_or(true)
    }

    /// Response tokens trained on.
    pub fn trained_tokens(&self) -> usize {
        (0..self.response.len()).filter(|&j| self.trains(j)).count()
    }

    /// The row fits `cfg`: token ids in the vocabulary, within the context, a prompt token
    /// before the first response token, and per-token vectors as long as the response.
    pub fn check(&self, cfg: &ModelConfig) -> Result<()> {
        if !self.old_logprobs.is_empty() && self.old_logprobs.len() != self.response.len() {
            bail!(
                "{} old log-probs for {} response tokens",
                self.old_logprobs.len(),
                self.response.len()
            );
        }
        if !self.sampled.is_empty() && self.sampled.len() != self.response.len() {
            bail!(
                "a sampled-token mask of {} for {} response tokens",
                self.sampled.len(),
                self.response.len()
            );
        }
        if !self.advantage.is_finite() {
            bail!("advantage {} is not finite", self.advantage);
        }
        if self.prompt.is_empty() {
            bail!("the prompt is empty (a response token needs a token before it)");
        }
        let len = self.prompt.len() + self.response.len();
        if len > cfg.max_position_embeddings {
            bail!(
                "{len} tokens exceed the model's context of {}",
                cfg.max_position_embeddings
            );
        }
        if let Some(t) = self
            .prompt
            .iter()
            .chain(&self.response)
            .find(|&&t| t as usize >= cfg.vocab_size)
        {
            bail!(
                "token id {t} is outside the vocabulary of {}",
                cfg.vocab_size
            );
        }
        Ok(())
    }
}

/// Groups row indices into micro-batches of at most `budget` padded tokens (rows x longest row),
/// longest rows first so rows of similar length share a batch. A row longer than the budget
/// goes alone.
pub fn plan_micro_batches(rows: &[&TrainRow], budget: usize) -> Vec<Vec<usize>> {
    let len = |i: usize| rows[i].prompt.len() + rows[i].response.len();
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(len(i)));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut longest = 0;
    for i in order {
        match out.last_mut() {
            Some(mb) if (mb.len() + 1) * longest <= budget => mb.push(i),
            _ => {
                longest = len(i);
                out.push(vec![i]);
            }
        }
    }
    out
}
