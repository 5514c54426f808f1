//! The seeding phase (spec section 7): before any update, the proposers propose repeatedly from
//! the buffers (at first only the identity seeds) until each buffer holds a target number of valid
//! unique tasks.
//!
//! One round ([`run_seeding_round`]) is the proposer half of a step:
//! 1. B proposer prompts per task type, built exactly as a step builds them
//!    ([`crate::step`]; the identity seed stands in for an empty buffer).
//! 2. One `Policy::generate` call for the 3B prompts, with [`Purpose::Seeding`].
//! 3. One `Executor::run_batch` validating every proposal ([`ValidationPlan`], as in a step).
//! 4. Every valid proposal is added to its buffer with `added_at = 0`: the seeds and everything
//!    found while seeding are "step 0", so the first step's solvers (which take the tasks added at
//!    `step - 1` first) start from them.
//!
//! No solver prompts, no learnability estimation, no rewards: nothing of a round is trained on.
//! The loop (until [`seeding_done`], with a cap on rounds and time) belongs to the trainer; a
//! round never loops. On an error the buffers are unchanged (the RNG may have advanced). A target
//! above the buffers' capacity is never reached: the trainer's cap ends such a loop.

use crate::metrics::ProposalMetrics;
use crate::policy::{GenRequest, Policy, Purpose};
use crate::prompt::Rendering;
use crate::step::prompts::proposer_prompts;
use crate::step::{generate, request, run_jobs, store_proposals, StepConfig, StepError, Tally};
use crate::store::TaskStore;
use crate::table::PerTask;
use crate::task::{Role, TaskType};
use crate::validate::{Proposed, Validated, ValidationPlan};
use azr_exec::Executor;
use serde::{Deserialize, Serialize};

/// What one seeding round did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedingRound {
    pub round: u64,
    /// Only `proposed`, `valid`, `added` and `rejections` are filled (no solve rates are
    /// estimated while seeding).
    pub proposals: PerTask<ProposalMetrics>,
    /// Tasks newly stored by this round, all types together.
    pub added: usize,
    /// Buffer sizes after this round's additions.
    pub buffer_sizes: PerTask<usize>,
    /// Sum of the generated responses' token counts.
    pub generated_tokens: usize,
    /// Executor jobs run by this round's validation.
    pub executor_jobs: usize,
    /// Every proposer response of the round: what the model saw and wrote, and the verdict.
    #[serde(default)]
    pub responses: Vec<SeedingResponse>,
}

/// One proposer response of a seeding round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeedingResponse {
    pub group: String,
    pub prompt: String,
    pub response: String,
    /// What the environment appended ([`crate::scaffold`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<crate::policy::Injected>,
    /// `valid`, or the rejection reason's name.
    pub verdict: String,
}

/// Runs one seeding round (see the module documentation). `round` only numbers the result.
pub fn run_seeding_round(
    round: u64,
    store: &mut TaskStore,
    policy: &mut dyn Policy,
    exec: &Executor,
    rendering: Rendering<'_>,
    cfg: &StepConfig,
) -> Result<SeedingRound, StepError> {
    cfg.check()?;
    let mut fallbacks = 0;
    let proposers = proposer_prompts(store, cfg, rendering, &mut fallbacks)?;
    let requests: Vec<GenRequest> = proposers
        .iter()
        .map(|p| {
            request(
                p.prompt.clone(),
                p.task_type,
                Role::Propose,
                Purpose::Seeding,
            )
        })
        .collect();
    let responses = generate(policy, &requests, Purpose::Seeding)?;

    let proposed: Vec<Proposed<'_>> = proposers
        .iter()
        .zip(&responses)
        .map(|(p, r)| p.proposed(&r.text))
        .collect();
    let plan = ValidationPlan::new(&proposed, &cfg.validate_config());
    let executor_jobs = plan.jobs().len();
    let results = run_jobs(exec, plan.jobs());
    let verdicts: Vec<Validated> = plan.finish(&results, store);

    let samples = verdicts
        .iter()
        .zip(requests.iter().zip(&responses))
        .map(|(verdict, (req, resp))| SeedingResponse {
            group: req.group.name().to_string(),
            prompt: req.prompt.clone(),
            response: resp.text.clone(),
            injected: resp.injected.clone(),
            verdict: match verdict {
                Ok(_) => "valid".to_string(),
                Err(r) => r.reason.name(),
            },
        })
        .collect();
    let Tally { proposals, tasks } = store_proposals(
        store,
        &proposers,
        verdicts,
        None,
        0,
        cfg.learnability_samples,
    );

    Ok(SeedingRound {
        round,
        proposals,
        added: tasks.iter().filter(|t| t.added).count(),
        buffer_sizes: PerTask::from_fn(|t| store.len(t)),
        generated_tokens: responses.iter().map(|r| r.tokens).sum(),
        executor_jobs,
        responses: samples,
    })
}

/// Whether every one of the three buffers holds at least `target` tasks.
pub fn seeding_done(store: &TaskStore, target: usize) -> bool {
    TaskType::ALL.iter().all(|t| store.len(*t) >= target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{Triplet, ValidTask};

    #[test]
    fn done_needs_every_buffer() {
        let mut s = TaskStore::new(8, 0).unwrap();
        assert!(seeding_done(&s, 0));
        assert!(seeding_done(&s, 1));
        assert!(!seeding_done(&s, 2));
        let t = Triplet::new("def f(a):\n    return a + 1", "1", "2");
        s.add(ValidTask::Deduction(t.clone()), 0);
        s.add(ValidTask::Abduction(t), 0);
        // induction still holds only its seed
        assert!(!seeding_done(&s, 2));
    }
}
