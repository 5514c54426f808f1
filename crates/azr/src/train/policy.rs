//! The model as azr-core's [`Policy`]: prompts in, sampled responses (with token ids and
//! sampling log-probs for the PPO ratio) out, generated in length-sorted batches.

use std::time::Instant;

use azr_core::{GenRequest, Policy, PolicyError, Response};
use azr_model::{generate, row_seeds, Model, SamplingParams, Tokenizer};
use indicatif::ProgressBar;

/// Per-call seeds: every (step, call) pair gets its own, so a resumed run samples what the
/// uninterrupted one would have.
pub fn call_seed(run_seed: u64, step: u64, call: u64) -> u64 {
    row_seeds(run_seed ^ step.rotate_left(24) ^ call.rotate_left(48), 1)[0]
}

pub struct ModelPolicy<'a> {
    pub model: &'a Model,
    pub tokenizer: &'a Tokenizer,
    pub params: SamplingParams,
    /// Rows generated together.
    pub batch: usize,
    pub run_seed: u64,
    /// The step (or seeding round) this policy serves; with `calls`, picks the seeds.
    pub step: u64,
    pub calls: u64,
    /// Time spent generating, and tokens generated, since creation.
    pub secs: f64,
    pub tokens: usize,
    pub bar: ProgressBar,
}

impl Policy for ModelPolicy<'_> {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        let started = Instant::now();
        let seeds = row_seeds(
            call_seed(self.run_seed, self.step, self.calls),
            requests.len(),
        );
        self.calls += 1;
        let context = self.model.config().max_position_embeddings;
        let mut prompts = Vec::with_capacity(requests.len());
        for r in requests {
            let ids = self.tokenizer.encode(&r.prompt, false)?;
            if ids.is_empty() {
                return Err("a prompt tokenized to nothing".into());
            }
            if ids.len() + self.params.max_new_tokens > context {
                return Err(format!(
                    "a {:?} prompt of {} tokens plus {} new tokens exceeds the model's context of \
                     {context} (lower sampling.max_new_tokens or step.references)",
                    r.group,
                    ids.len(),
                    self.params.max_new_tokens
                )
                .into());
            }
            prompts.push(ids);
        }
        // Similar lengths together: less padding. Seeds stay with their rows, so the order
        // changes nothing in what each row samples.
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| prompts[i].len());
        let mut out: Vec<Option<Response>> = vec![None; requests.len()];
        self.bar.set_length(requests.len() as u64);
        self.bar.set_position(0);
        for chunk in order.chunks(self.batch.max(1)) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
            let row_seeds: Vec<u64> = chunk.iter().map(|&i| seeds[i]).collect();
            let gens = generate(
                self.model,
                Some(self.tokenizer),
                &rows,
                &self.params,
                &row_seeds,
            )?;
            for (&i, g) in chunk.iter().zip(gens) {
                let text = self.tokenizer.decode(&g.tokens, true)?;
                self.tokens += g.tokens.len();
                out[i] = Some(Response::sampled(text, g.tokens, g.logprobs));
            }
            self.bar.inc(chunk.len() as u64);
        }
        self.secs += started.elapsed().as_secs_f64();
        out.into_iter()
            .map(|r| r.ok_or_else(|| PolicyError::from("a row was not generated")))
            .collect()
    }
}
