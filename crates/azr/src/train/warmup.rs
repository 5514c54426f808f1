//! `azr train`'s format warm-up ([`azr_core::warmup`]), run once before seeding: the held
//! prompts answered, sampling rounds judged by the executor, cross-entropy steps on the kept
//! (rewrapped) responses, the held prompts answered again.
//!
//! What it writes, under `RUN_DIR/warmup/`: `tasks.jsonl` (every solver task it may ask, which
//! the probe leaves out), `held-before.jsonl`, `round-NNN.jsonl` (every judged response, with its
//! rewrapped example when kept), `held-after.jsonl`, and `summary.json`. A resumed run reuses
//! the held answers and the rounds already on disk; the cross-entropy steps start again from
//! the base model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use azr_core::prompt::Rendering;
use azr_core::warmup::{batches, rates, sample_and_judge, Judged, Plan, RoleRates, WarmupPrompt};
use azr_core::{TaskStore, ValidTask};
use azr_exec::Executor;
use azr_model::checkpoint::write_file_atomically;
use azr_model::{SamplingParams, Tokenizer, TrainRow, Trainer};
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::json;

use super::config::RunConfig;
use crate::policy::{ModelPolicy, ScaffoldConfig};

/// What the warm-up needs from the run.
pub struct Env<'a> {
    pub cfg: &'a RunConfig,
    pub tokenizer: &'a Tokenizer,
    pub params: &'a SamplingParams,
    pub scaffold: ScaffoldConfig,
    pub rendering: Rendering<'a>,
    pub executor: &'a Executor,
    pub bar: &'a ProgressBar,
    pub stop: &'a AtomicBool,
    pub dir: PathBuf,
}

/// One cross-entropy step.
#[derive(Debug, Clone, Serialize)]
pub struct CeStep {
    /// Mean negative log-likelihood of the trained tokens (nats), before the update.
    pub ce: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub secs: f64,
}

/// What the warm-up did: the metrics line's `warmup` object and `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Per group: held responses, strict format unaided, verified; before and after.
    pub before: BTreeMap<String, RoleRates>,
    pub after: BTreeMap<String, RoleRates>,
    /// Kept (verified, rewrapped) examples per group, and their total.
    pub kept: BTreeMap<String, usize>,
    pub examples: usize,
    /// Responses sampled in the rounds.
    pub sampled: usize,
    pub steps: Vec<CeStep>,
    /// Solver task types with too few tasks to hold any out (held prompts reuse round tasks).
    pub shared_pools: Vec<String>,
    pub secs: f64,
}

/// Runs the warm-up. `None`: stopped by Ctrl-C (the trainer is untouched or mid-way; the
/// caller must not checkpoint it as warmed up).
pub fn run(env: &Env<'_>, trainer: &mut Trainer, store: &mut TaskStore) -> Result<Option<Summary>> {
    let started = Instant::now();
    std::fs::create_dir_all(&env.dir).with_context(|| format!("creating {}", env.dir.display()))?;
    // The warm-up draws from the store's RNG; self-play then draws what it would have drawn
    // without it (a run and its no-warm-up control see the same step prompts).
    let store_rng = store.rng.clone();
    let out = fit(env, trainer, store, started);
    store.rng = store_rng;
    out
}

fn fit(
    env: &Env<'_>,
    trainer: &mut Trainer,
    store: &mut TaskStore,
    started: Instant,
) -> Result<Option<Summary>> {
    let cfg = env.cfg;
    let w = &cfg.warmup;
    env.bar.set_message("warm-up: preparing prompts");
    let mut plan = Plan::new(
        store,
        env.executor,
        &[],
        w,
        &cfg.step,
        env.rendering,
        cfg.run.seed ^ 0x5741_524d,
    )
    .context("warm-up prompts")?;
    super::evaluate::write_tasks(&env.dir.join("tasks.jsonl"), &plan.solver_tasks())?;

    let before = answer(env, trainer, store, plan.held(), "held-before", 0)?;
    let mut judged: Vec<Judged> = Vec::new();
    for round in 1..=w.rounds {
        if env.stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        // Drawn even when the round is on disk, so later rounds draw what they drew before.
        let prompts = plan.round(store, w, &cfg.step, env.rendering)?;
        let name = format!("round-{round:03}");
        let out = answer(env, trainer, store, &prompts, &name, round as u64)?;
        tracing::info!(
            "warm-up round {round}/{}: kept {} of {} responses",
            w.rounds,
            out.iter().filter(|j| j.example.is_some()).count(),
            out.len()
        );
        judged.extend(out);
    }
    if env.stop.load(Ordering::SeqCst) {
        return Ok(None);
    }

    let examples: Vec<&azr_core::warmup::Example> =
        judged.iter().filter_map(|j| j.example.as_ref()).collect();
    let mut kept: BTreeMap<String, usize> = BTreeMap::new();
    for e in &examples {
        *kept.entry(e.group.name().to_string()).or_default() += 1;
    }
    let rows: Vec<TrainRow> = examples
        .iter()
        .map(|e| {
            Ok(TrainRow {
                prompt: e.prompt_ids.clone(),
                response: env.tokenizer.encode(&e.response, false)?,
                advantage: 1.0,
                ..TrainRow::default()
            })
        })
        .collect::<Result<_>>()?;

    // Cross-entropy: advantage 1 on every response token with the current policy as the
    // ratio's denominator (ratio 1, never clipped) makes the clipped surrogate's gradient that
    // of the token-mean negative log-likelihood.
    let mut steps = Vec::new();
    let rl_lr = trainer.config.optimizer.lr;
    trainer.config.optimizer.lr = w.lr;
    let order = batches(rows.len(), w.steps, w.rows, cfg.run.seed);
    for (i, batch) in order.iter().enumerate() {
        if env.stop.load(Ordering::SeqCst) {
            trainer.config.optimizer.lr = rl_lr;
            return Ok(None);
        }
        env.bar
            .set_message(format!("warm-up: fit {}/{}", i + 1, order.len()));
        let picked: Vec<TrainRow> = batch.iter().map(|&k| rows[k].clone()).collect();
        let stats = trainer
            .step(&picked)
            .with_context(|| format!("warm-up step {}", i + 1))?;
        tracing::info!(
            "warm-up fit {}/{}: cross-entropy {:.4}, grad norm {:.3}, {} tokens, {:.1} s",
            i + 1,
            order.len(),
            -stats.logprob,
            stats.grad_norm,
            stats.tokens,
            stats.secs
        );
        steps.push(CeStep {
            ce: -stats.logprob,
            grad_norm: stats.grad_norm,
            tokens: stats.tokens,
            secs: stats.secs,
        });
    }
    trainer.config.optimizer.lr = rl_lr;
    trainer.reset_optimizer();

    // The after-answers are the trained model's: never reused from an earlier try.
    let after_path = env.dir.join("held-after.jsonl");
    if after_path.exists() {
        std::fs::remove_file(&after_path)
            .with_context(|| format!("removing {}", after_path.display()))?;
    }
    let after = answer(
        env,
        trainer,
        store,
        plan.held(),
        "held-after",
        w.rounds as u64 + 1,
    )?;
    let summary = Summary {
        before: rates(&before),
        after: rates(&after),
        kept,
        examples: rows.len(),
        sampled: judged.len(),
        steps,
        shared_pools: plan
            .shared_pools
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        secs: started.elapsed().as_secs_f64(),
    };
    write_file_atomically(
        &env.dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    Ok(Some(summary))
}

/// The judged responses to `prompts`: read from `DIR/name.jsonl` when an earlier try wrote
/// them, else sampled (generation seed `salt`), judged and written.
fn answer(
    env: &Env<'_>,
    trainer: &Trainer,
    store: &TaskStore,
    prompts: &[WarmupPrompt],
    name: &str,
    salt: u64,
) -> Result<Vec<Judged>> {
    let path = env.dir.join(format!("{name}.jsonl"));
    if let Some(judged) = read_judged(&path, prompts.len())? {
        return Ok(judged);
    }
    env.bar.set_message(format!("warm-up: {name}"));
    let mut policy = ModelPolicy {
        model: trainer.model(),
        tokenizer: env.tokenizer,
        params: env.params.clone(),
        scaffold: env.scaffold,
        batch: env.cfg.sampling.batch,
        run_seed: env.cfg.run.seed,
        // Generation seeds apart from the steps' (small numbers) and seeding's (u64::MAX - r).
        step: u64::MAX / 2 + salt,
        calls: 0,
        secs: 0.0,
        tokens: 0,
        bar: env.bar.clone(),
    };
    let judged = sample_and_judge(
        prompts,
        &mut policy,
        env.executor,
        store,
        &env.cfg.step,
        env.rendering,
    )
    .with_context(|| format!("warm-up: {name}"))?;
    let mut text = String::new();
    for j in &judged {
        text.push_str(&serde_json::to_string(j)?);
        text.push('\n');
    }
    write_file_atomically(&path, text.as_bytes())?;
    Ok(judged)
}

/// A complete file of `n` judged responses, or `None` (absent, or from another config).
fn read_judged(path: &Path, n: usize) -> Result<Option<Vec<Judged>>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let judged: Vec<Judged> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("{} is not valid", path.display()))?;
    Ok((judged.len() == n).then_some(judged))
}

/// The solver tasks a warm-up in `dir` may have asked (none when there was no warm-up).
pub fn solver_tasks(dir: &Path) -> Result<Vec<ValidTask>> {
    let path = dir.join("tasks.jsonl");
    if path.exists() {
        super::evaluate::read_tasks(&path)
    } else {
        Ok(Vec::new())
    }
}

impl Summary {
    /// The metrics line's `warmup` object: per group the strict-format and verified rates on
    /// the held prompts before and after, the kept examples; the first and last cross-entropy.
    pub fn scalars(&self) -> serde_json::Value {
        let s = self;
        let rate = |x: usize, n: usize| {
            if n == 0 {
                f64::NAN
            } else {
                x as f64 / n as f64
            }
        };
        let mut groups = serde_json::Map::new();
        for (g, b) in &s.before {
            let a = s.after.get(g).copied().unwrap_or_default();
            groups.insert(
                g.clone(),
                json!({
                    "strict_before": rate(b.strict, b.n),
                    "strict_after": rate(a.strict, a.n),
                    "verified_before": rate(b.verified, b.n),
                    "verified_after": rate(a.verified, a.n),
                    "kept": s.kept.get(g).copied().unwrap_or(0),
                }),
            );
        }
        json!({
            "groups": groups,
            "examples": s.examples,
            "sampled": s.sampled,
            "ce_first": s.steps.first().map(|x| x.ce),
            "ce_last": s.steps.last().map(|x| x.ce),
            "secs": s.secs,
        })
    }
}
