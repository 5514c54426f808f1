//! Where a run's rollouts come from (`[rollout]`): the local engine on the trainer's own
//! weights, or an SGLang, vLLM or llama-server that is sent the trainer's weights after every
//! update. Either
//! way the step driver sees one [`Policy`], and the update trains on rows it builds here.

use anyhow::{bail, Result};
use azr_core::scaffold::Scaffold;
use azr_core::{GenRequest, Group, Policy, PolicyError, Response, StepOutput};
use azr_model::{SamplingParams, Tokenizer, TrainRow, Trainer};
use azr_rollout::{Engine, Remote, RemotePolicy};
use indicatif::ProgressBar;
use serde::Serialize;

use super::RunConfig;
use crate::policy::{call_seed, ModelPolicy, ScaffoldConfig};

/// The policy of one step (or seeding round).
pub enum Rollouts<'a> {
    Local(ModelPolicy<'a>),
    Remote(RemotePolicy<'a>),
}

impl Rollouts<'_> {
    /// Seconds spent generating, and tokens generated.
    pub fn spent(&self) -> (f64, usize) {
        match self {
            Rollouts::Local(p) => (p.secs, p.tokens),
            Rollouts::Remote(p) => (p.secs, p.tokens),
        }
    }
}

impl Policy for Rollouts<'_> {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        match self {
            Rollouts::Local(p) => p.generate(requests),
            Rollouts::Remote(p) => p.generate(requests),
        }
    }
}

/// The remote engine of a run, connected at start-up; `None` for the local engine.
pub fn connect(cfg: &RunConfig, run_dir: &std::path::Path) -> Result<Option<Remote>> {
    match cfg.rollout.engine {
        Engine::Local => Ok(None),
        Engine::Sglang | Engine::Vllm | Engine::LlamaServer => {
            // llama-server is sent GGUF files shaped like the base model's.
            let base_gguf = if cfg.rollout.engine == Engine::LlamaServer {
                let path = azr_model::resolve_model(&cfg.model.name, &mut |m| eprintln!("{m}"))?;
                if !path.is_file() {
                    bail!(
                        "rollout.engine = \"llama-server\" needs model.name to be a GGUF file or \
                         a known model (got the directory {}): the pushed GGUFs copy its \
                         metadata and tokenizer",
                        path.display()
                    );
                }
                Some(path)
            } else {
                None
            };
            let engine = Remote::connect(&cfg.rollout, run_dir, base_gguf.as_deref())?;
            tracing::info!(
                "rollouts on the {} server at {}",
                cfg.rollout.engine.name(),
                cfg.rollout.url
            );
            Ok(Some(engine))
        }
    }
}

/// Makes the engine serve the trainer's weights, when it serves older ones. The version is the
/// optimizer's step count: it moves with every update (the warm-up's too).
pub fn sync(engine: &mut Option<Remote>, trainer: &Trainer, tokenizer: &Tokenizer) -> Result<()> {
    if let Some(e) = engine {
        if e.version() != Some(trainer.steps()) {
            e.push(trainer, tokenizer, trainer.steps())?;
        }
    }
    Ok(())
}

/// The policy for `step`: the engine's when there is one (call [`sync`] first), else the local
/// engine on the trainer's weights.
#[allow(clippy::too_many_arguments)]
pub fn policy<'a>(
    engine: &'a Option<Remote>,
    trainer: &'a Trainer,
    tokenizer: &'a Tokenizer,
    params: &SamplingParams,
    scaffold: ScaffoldConfig,
    cfg: &RunConfig,
    step: u64,
    bar: &ProgressBar,
) -> Rollouts<'a> {
    match engine {
        Some(e) => {
            // The template's group is replaced by each request's.
            let template: Scaffold = scaffold.scaffold(Group::SOLVE_DEDUCTION);
            let seed = call_seed(cfg.run.seed, step, 0);
            let mut policy = e.policy(tokenizer, params.clone(), template, seed);
            let bar = bar.clone();
            policy.progress = Some(Box::new(move |done, rows| {
                bar.set_length(rows as u64);
                bar.set_position(done as u64);
            }));
            Rollouts::Remote(policy)
        }
        None => Rollouts::Local(ModelPolicy {
            model: trainer.model(),
            tokenizer,
            params: params.clone(),
            scaffold,
            batch: cfg.sampling.batch,
            run_seed: cfg.run.seed,
            step,
            calls: 0,
            secs: 0.0,
            tokens: 0,
            bar: bar.clone(),
        }),
    }
}

/// The step's trained responses as training rows: the prompt and response ids as the policy fed
/// and produced them, and the sampled-token mask (scaffold tokens are context, not samples).
/// The old log-probs are the sampling ones when this process sampled (`local`); a remote
/// engine's are not trusted (other kernels, other precision): the rows carry none, and the
/// update uses its own (a ratio of 1, exact for one update per step).
pub fn train_rows(out: &StepOutput, local: bool) -> Result<Vec<TrainRow>> {
    out.samples
        .iter()
        .map(|s| {
            if s.token_ids.len() != s.logprobs.len() {
                bail!(
                    "a sample has {} token ids but {} log-probs",
                    s.token_ids.len(),
                    s.logprobs.len()
                );
            }
            if s.prompt_ids.is_empty() {
                bail!("a sample carries no prompt ids");
            }
            Ok(TrainRow {
                prompt: s.prompt_ids.clone(),
                response: s.token_ids.clone(),
                old_logprobs: if local {
                    s.logprobs.clone()
                } else {
                    Vec::new()
                },
                sampled: s.sampled.clone(),
                advantage: s.advantage as f32,
            })
        })
        .collect()
}

/// How far the engine's log-probs are from the trainer's, over the sampled tokens of a step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mismatch {
    pub mean_abs: f64,
    pub max_abs: f64,
    pub tokens: usize,
}

/// The trainer's log-probs of the step's responses (before its update) against the engine's.
pub fn mismatch(out: &StepOutput, trainer: &Trainer) -> Result<Mismatch> {
    let rows: Vec<(Vec<u32>, Vec<u32>)> = out
        .samples
        .iter()
        .map(|s| (s.prompt_ids.clone(), s.token_ids.clone()))
        .collect();
    let ours = trainer.logprobs(&rows)?;
    let (mut sum, mut max, mut n) = (0f64, 0f64, 0usize);
    for (s, ours) in out.samples.iter().zip(&ours) {
        for (j, (&theirs, &mine)) in s.logprobs.iter().zip(ours).enumerate() {
            // A missing engine log-prob is NaN (llama-server lists none for some tokens).
            if s.sampled.get(j).copied().unwrap_or(true) && theirs.is_finite() {
                let d = (theirs as f64 - mine as f64).abs();
                sum += d;
                max = max.max(d);
                n += 1;
            }
        }
    }
    Ok(Mismatch {
        mean_abs: if n > 0 { sum / n as f64 } else { 0.0 },
        max_abs: max,
        tokens: n,
    })
}
