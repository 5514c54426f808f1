//! One self-play step's data flow, with the policy as a parameter ([`run_step`]).
//!
//! 1. Prompts: per task type, B proposer prompts (deduction/abduction: K reference triplets each,
//!    sampled without replacement; induction: one program each from the union of the deduction
//!    and abduction buffers) and B solver prompts from the buffers, newest first (tasks added at
//!    the previous step, `added_at >= step - 1`), then uniform.
//! 2. The 6B rollouts: one `Policy::generate` call for all of them, or (`split_rollouts`) one
//!    for the 3B proposer prompts and then one for the 3B solver prompts. Solver prompts come
//!    from the buffers as they were before this step, so they never wait for validation.
//! 3. The validation of every proposal ([`crate::validate`]) runs on the executor in the
//!    background: with `split_rollouts`, while the solver rollouts generate.
//! 4. Learnability: for every valid proposal, its solver prompt n times in one more `generate`
//!    call, scored in one more `run_batch`; solve rate `s` = correct / n. The scoring of the
//!    solver rollouts ([`crate::score`]) runs on the executor meanwhile.
//! 5. Rewards ([`crate::reward`]): solver 1 / -0.5 / -1; proposer -1 (format) / -1 (invalid) /
//!    learnability of `s`.
//! 6. TRR++ advantages ([`crate::trr`]) per task-role group over the 6B rollouts.
//! 7. Valid proposals are appended to their buffers with `added_at = step`.
//!
//! **Trained on: only the 6B rollouts** (B proposer and B solver responses per task type). The n
//! learnability samples of each proposal only measure its solve rate: they are not in the batch,
//! get no reward and do not enter the TRR++ statistics.
//!
//! Overlap: the executor is a pool of sandboxed processes, so its batches run while the model
//! generates (a proposal that loops until its timeout costs no generation time). Splitting the
//! rollouts buys the first overlap at the price of two smaller generation batches: worth it when
//! 3B prompts alone fill the sampling batch (GPU sizes), not at the CPU preset's B = 2.
//! [`StepOutput::executor`] says how long the executor worked and how long the step waited.
//!
//! Robustness: the step never loops — it makes at most three `generate` calls and three
//! `run_batch` calls. Sampling from a non-empty buffer always returns as many tasks as asked
//! (refill by resampling); when a buffer is empty (only possible for a store built or loaded
//! without seeds) the identity seed task stands in and `seed_fallbacks` counts it. No valid
//! proposal simply means no learnability call. On an error the buffers are unchanged (the RNG may
//! have advanced).

use crate::batch::{EstimatedTask, Outcome, Sample};
use crate::buffer::AddOutcome;
use crate::metrics::{GroupMetrics, ProposalMetrics, StepMetrics};
use crate::parse::parse_response;
use crate::policy::{GenRequest, Policy, Purpose, Response};
use crate::prompt::{PromptTask, Rendering};
use crate::reason::Rejected;
use crate::reward::{
    scaffolded_proposer_reward, scaffolded_solver_reward, FormatReward, ProposerOutcome,
    SolverOutcome,
};
use crate::score::ScorePlan;
use crate::store::TaskStore;
use crate::table::{PerGroup, PerTask};
use crate::task::{Group, Role, TaskType, ValidTask};
use crate::trr::{trr_advantages, SequenceReward};
use crate::validate::{Proposed, Validated, ValidationPlan};
use azr_exec::{Executor, Job, JobResult, Pending};
use serde::{Deserialize, Serialize};
use std::time::Instant;

mod config;
pub(crate) mod prompts;
pub use config::{SolverTasks, StepConfig, StepError};
use prompts::{proposer_prompts, solver_tasks, ProposerPrompt};

/// What a step returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepOutput {
    /// The 6B trained responses, grouped: proposers (deduction, abduction, induction) then
    /// solvers (same order), B each, in prompt order.
    pub samples: Vec<Sample>,
    /// The valid proposals, in proposal order, with their solve counts.
    pub tasks: Vec<EstimatedTask>,
    pub metrics: StepMetrics,
    /// Wall-clock time of the executor's batches (not deterministic: compare runs without it).
    #[serde(default)]
    pub executor: ExecutorTime,
}

/// How long the executor worked in a step, and how much of that the step spent waiting for it
/// (the rest ran while the model generated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorTime {
    /// Sum of the wall-clock times of the step's executor batches.
    pub busy_secs: f64,
    /// Time the step blocked on the executor.
    pub wait_secs: f64,
}

impl ExecutorTime {
    /// Runs a batch where the step waits for it.
    fn run(&mut self, exec: &Executor, jobs: &[Job]) -> Vec<JobResult> {
        self.wait(exec.submit(jobs))
    }

    /// Waits for a batch that ran while the step did something else.
    fn wait(&mut self, pending: Pending<'_>) -> Vec<JobResult> {
        let t = Instant::now();
        let (results, busy) = pending.wait();
        self.wait_secs += t.elapsed().as_secs_f64();
        self.busy_secs += busy.as_secs_f64();
        results
    }
}

/// One `Policy::generate` call (none for no requests), checked to answer every request.
pub(crate) fn generate(
    policy: &mut dyn Policy,
    requests: &[GenRequest],
    purpose: Purpose,
) -> Result<Vec<Response>, StepError> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    let responses = policy.generate(requests).map_err(StepError::Policy)?;
    if responses.len() != requests.len() {
        return Err(StepError::ResponseCount {
            purpose,
            expected: requests.len(),
            got: responses.len(),
        });
    }
    Ok(responses)
}

/// One `Executor::run_batch` (none for no jobs).
pub(crate) fn run_jobs(exec: &Executor, jobs: &[Job]) -> Vec<JobResult> {
    if jobs.is_empty() {
        Vec::new()
    } else {
        exec.run_batch(jobs)
    }
}

pub(crate) fn request(
    prompt: String,
    task_type: TaskType,
    role: Role,
    purpose: Purpose,
) -> GenRequest {
    GenRequest {
        prompt,
        group: Group::new(task_type, role),
        purpose,
    }
}

/// Learnability estimation: the outcomes of the n solver samples of every valid proposal (an
/// empty list for a rejected one), aligned with `verdicts`.
struct Estimates {
    per_proposal: Vec<Vec<SolverOutcome>>,
    generated: usize,
    jobs: usize,
}

fn estimate(
    policy: &mut dyn Policy,
    exec: &Executor,
    verdicts: &[Validated],
    rendering: Rendering<'_>,
    cfg: &StepConfig,
    time: &mut ExecutorTime,
) -> Result<Estimates, StepError> {
    let n = cfg.learnability_samples;
    let valid: Vec<&ValidTask> = verdicts.iter().filter_map(|v| v.as_ref().ok()).collect();
    let mut requests = Vec::with_capacity(valid.len() * n);
    for task in &valid {
        let prompt = PromptTask::solve(task).render_with(rendering, cfg.think);
        for _ in 0..n {
            requests.push(request(
                prompt.clone(),
                task.task_type(),
                Role::Solve,
                Purpose::Learnability,
            ));
        }
    }
    let responses = generate(policy, &requests, Purpose::Learnability)?;
    // Learnability is scored on extraction alone, whatever the reward's format rule (as the
    // reference does): it measures whether the task can be solved, not the format.
    let plan = ScorePlan::new(
        valid
            .iter()
            .flat_map(|t| (0..n).map(move |_| *t))
            .zip(responses.iter())
            .map(|(t, r)| (t, r.text.as_str(), r.scaffolded())),
        &cfg.parse_config(),
        FormatReward::Lenient,
    );
    let outcomes = plan.finish(&time.run(exec, plan.jobs()));
    let mut chunks = outcomes.chunks(n);
    let per_proposal = verdicts
        .iter()
        .map(|v| match v {
            Ok(_) => chunks.next().unwrap_or(&[]).to_vec(),
            Err(_) => Vec::new(),
        })
        .collect();
    Ok(Estimates {
        per_proposal,
        generated: responses.len(),
        jobs: plan.jobs().len(),
    })
}

/// A proposer's outcome and reward. `formatted`: the response's format holds under the reward's
/// rule (lenient: it has an answer block; strict: the strict rule, unscaffolded). A valid task
/// from a response whose format does not hold is stored, but its reward is the format penalty.
fn judge_proposal(
    verdict: &Validated,
    estimates: &[SolverOutcome],
    formatted: bool,
    scaffolded: bool,
    cfg: &StepConfig,
) -> (Outcome, f64) {
    let (outcome, reason, detail) = match verdict {
        Ok(_) if !formatted => (
            ProposerOutcome::FormatError,
            Some("format".to_string()),
            Some("valid, but the response's format is broken".to_string()),
        ),
        Ok(_) => (
            ProposerOutcome::Valid {
                solved: SolverOutcome::count_correct(estimates),
                attempts: cfg.learnability_samples,
            },
            None,
            None,
        ),
        Err(Rejected { reason, detail }) => (
            if reason.is_format_error() {
                ProposerOutcome::FormatError
            } else {
                ProposerOutcome::Invalid
            },
            Some(reason.name()),
            detail.clone(),
        ),
    };
    let reward = scaffolded_proposer_reward(outcome, scaffolded, &cfg.rewards);
    (
        Outcome::Propose {
            outcome,
            reason,
            detail,
        },
        reward,
    )
}

/// The proposals of a step or a seeding round, tallied per task type, and the valid ones.
pub(crate) struct Tally {
    pub proposals: PerTask<ProposalMetrics>,
    pub tasks: Vec<EstimatedTask>,
}

/// Stores every valid proposal with `added_at` (and, with `estimates` — the outcomes of each
/// proposal's n learnability samples — its measured solve rate), and tallies the verdicts.
pub(crate) fn store_proposals(
    store: &mut TaskStore,
    proposers: &[ProposerPrompt],
    verdicts: Vec<Validated>,
    estimates: Option<Vec<Vec<SolverOutcome>>>,
    added_at: u64,
    n: usize,
) -> Tally {
    let estimated = estimates.is_some();
    let mut estimates = estimates.unwrap_or_default().into_iter();
    let mut proposals = PerTask::from_fn(|_| {
        if estimated {
            ProposalMetrics::new(n)
        } else {
            ProposalMetrics::default()
        }
    });
    let mut tasks = Vec::new();
    for (prompt, verdict) in proposers.iter().zip(verdicts) {
        let outcomes = estimates.next();
        let m = &mut proposals[prompt.task_type];
        let task = match verdict {
            Err(rejected) => {
                m.reject(&rejected.reason);
                continue;
            }
            Ok(task) => task,
        };
        // An identical proposal stored first (by this step or round): valid, not added.
        let (added, solved, attempts) = match outcomes {
            Some(o) => {
                let solved = SolverOutcome::count_correct(&o);
                let added = store.add_measured(task.clone(), added_at, solved, n);
                m.valid(&o, added != AddOutcome::Duplicate);
                (added, solved, n)
            }
            None => {
                let added = store.add(task.clone(), added_at);
                m.valid_unestimated(added != AddOutcome::Duplicate);
                (added, 0, 0)
            }
        };
        tasks.push(EstimatedTask {
            task,
            solved,
            attempts,
            added: added != AddOutcome::Duplicate,
        });
    }
    Tally { proposals, tasks }
}

/// Runs one self-play step (see the module documentation). `step` numbers the step (the seeds
/// are step 0); this step's valid proposals are stored with `added_at = step`.
pub fn run_step(
    step: u64,
    store: &mut TaskStore,
    policy: &mut dyn Policy,
    exec: &Executor,
    rendering: Rendering<'_>,
    cfg: &StepConfig,
) -> Result<StepOutput, StepError> {
    cfg.check()?;
    let mut fallbacks = 0;

    // 1. Prompts: the 3B proposer prompts, then the 3B solver prompts.
    let proposers = proposer_prompts(store, cfg, rendering, &mut fallbacks)?;
    let solver_tasks = solver_tasks(store, cfg, step, &mut fallbacks)?;
    let mut requests: Vec<GenRequest> = proposers
        .iter()
        .map(|p| {
            request(
                p.prompt.clone(),
                p.task_type,
                Role::Propose,
                Purpose::Rollout,
            )
        })
        .collect();
    for task in &solver_tasks {
        let prompt = PromptTask::solve(task).render_with(rendering, cfg.think);
        requests.push(request(
            prompt,
            task.task_type(),
            Role::Solve,
            Purpose::Rollout,
        ));
    }
    let (prop_req, solve_req) = requests.split_at(proposers.len());

    // 2. The rollouts: proposers first (alone when split), so their validation can start.
    let (prop_resp, early_solve) = if cfg.split_rollouts {
        (generate(policy, prop_req, Purpose::Rollout)?, None)
    } else {
        let mut all = generate(policy, &requests, Purpose::Rollout)?;
        let solve = all.split_off(proposers.len());
        (all, Some(solve))
    };
    let proposed: Vec<Proposed<'_>> = proposers
        .iter()
        .zip(&prop_resp)
        .map(|(p, r)| p.proposed(&r.text))
        .collect();
    let vplan = ValidationPlan::new(&proposed, &cfg.validate_config());
    let validation_jobs = vplan.jobs().len();
    let mut time = ExecutorTime::default();

    // 3. Validation on the executor; with split rollouts, the solvers generate meanwhile.
    let validation = exec.submit(vplan.jobs());
    let solve_resp = match early_solve {
        Some(r) => r,
        None => generate(policy, solve_req, Purpose::Rollout)?,
    };
    let verdicts: Vec<Validated> = vplan.finish(&time.wait(validation), store);

    // 4. Learnability of every valid proposal (n samples each, not trained on), while the
    //    solver rollouts are scored.
    let splan = ScorePlan::new(
        solver_tasks
            .iter()
            .zip(&solve_resp)
            .map(|(t, r)| (t, r.text.as_str(), r.scaffolded())),
        &cfg.parse_config(),
        cfg.rewards.format,
    );
    let scoring = exec.submit(splan.jobs());
    let est = estimate(policy, exec, &verdicts, rendering, cfg, &mut time)?;
    let solver_outcomes = splan.finish(&time.wait(scoring));
    let responses: Vec<Response> = prop_resp.into_iter().chain(solve_resp).collect();

    // 5. Rewards: proposers, then solvers (the order of `requests`).
    let pcfg = cfg.parse_config();
    let strict: Vec<bool> = requests
        .iter()
        .zip(&responses)
        .map(|(req, resp)| {
            !resp.scaffolded() && parse_response(req.group, &resp.text, &pcfg).is_ok()
        })
        .collect();
    let mut samples = Vec::with_capacity(requests.len());
    let judged = verdicts
        .iter()
        .zip(&est.per_proposal)
        .zip(responses.iter().zip(&strict))
        .map(|((v, e), (resp, &strict))| {
            let formatted = match cfg.rewards.format {
                FormatReward::Strict => strict,
                FormatReward::Lenient => crate::extract::answer(&crate::parse::full_text(
                    &resp.text,
                    pcfg.think_prefilled(),
                ))
                .is_some(),
            };
            judge_proposal(v, e, formatted, resp.scaffolded(), cfg)
        })
        .chain(
            solver_outcomes
                .iter()
                .zip(&responses[proposers.len()..])
                .map(|(o, resp)| {
                    (
                        Outcome::Solve { outcome: *o },
                        scaffolded_solver_reward(*o, resp.scaffolded(), &cfg.rewards),
                    )
                }),
        );
    for (((req, resp), (outcome, reward)), &strict_format) in
        requests.iter().zip(&responses).zip(judged).zip(&strict)
    {
        samples.push(Sample {
            group: req.group,
            prompt: req.prompt.clone(),
            response: resp.text.clone(),
            tokens: resp.tokens,
            prompt_ids: resp.prompt_ids.clone(),
            token_ids: resp.token_ids.clone(),
            logprobs: resp.logprobs.clone(),
            sampled: resp.sampled.clone(),
            injected: resp.injected.clone(),
            strict_format,
            reward,
            advantage: 0.0,
            outcome,
        });
    }

    // 6. TRR++ over the trained rollouts only.
    let seqs: Vec<SequenceReward> = samples
        .iter()
        .map(|s| SequenceReward {
            group: s.group,
            reward: s.reward,
            tokens: s.tokens,
        })
        .collect();
    let adv = trr_advantages(&seqs)?;
    for (s, a) in samples.iter_mut().zip(&adv.per_sequence) {
        s.advantage = *a;
    }

    // 7. Valid proposals into their buffers; per-type proposal metrics.
    let Tally { proposals, tasks } = store_proposals(
        store,
        &proposers,
        verdicts,
        Some(est.per_proposal),
        step,
        cfg.learnability_samples,
    );

    let zero_variance_groups = Group::ALL
        .iter()
        .filter(|g| {
            let mut r = samples.iter().filter(|s| s.group == **g).map(|s| s.reward);
            match r.next() {
                Some(first) => r.all(|x| x == first),
                None => false,
            }
        })
        .count();
    let trained_tokens: usize = samples.iter().map(|s| s.tokens).sum();
    let informative_tokens: usize = samples
        .iter()
        .filter(|s| s.advantage != 0.0)
        .map(|s| s.tokens)
        .sum();
    let metrics = StepMetrics {
        step,
        zero_variance_groups,
        nonzero_advantage_fraction: if trained_tokens == 0 {
            0.0
        } else {
            informative_tokens as f64 / trained_tokens as f64
        },
        groups: PerGroup::from_fn(|g| GroupMetrics::of(g, &samples, &adv.stats[g.index()])),
        proposals,
        buffer_sizes: PerTask::from_fn(|t| store.len(t)),
        seed_fallbacks: fallbacks,
        extreme_reward: cfg.rewards.extreme,
        executor_jobs: validation_jobs + splan.jobs().len() + est.jobs,
        generated: responses.len() + est.generated,
    };
    Ok(StepOutput {
        samples,
        tasks,
        metrics,
        executor: time,
    })
}
