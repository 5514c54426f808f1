//! The format warm-up: self-distillation before self-play (rejection sampling, as in STaR and
//! RFT), with no data but the model's own verified outputs.
//!
//! 1. **Prompts.** Each role's self-play prompt: proposer prompts built from the buffers as a
//!    step builds them; solver prompts on a pool of tasks (the buffers' tasks, and tasks the
//!    executor derives from their programs with new literal inputs, [`crate::probe`]), any
//!    `exclude`d task left out; [`Plan::solver_tasks`] lists them all, for a probe built later
//!    to leave out. A few prompts per role are held out before anything is sampled.
//! 2. **Sampling.** The policy answers with scaffolded decoding (the environment completes a
//!    response's structure), and answers are read leniently ([`crate::extract`]).
//! 3. **Kept:** what the executor verifies. A solver answer equal to the gold, a proposal that
//!    validates. Nothing of a warm-up round enters the buffers.
//! 4. **Rewrapped** into the exact response format ([`rewrap`]): the model's own reasoning (its
//!    `<think>` text, as sampled) and the verified content in the role's fenced blocks.
//! 5. The trainer fits them with cross-entropy on the response tokens ([`batches`] orders them).
//!
//! The held prompts are answered before and after, and [`rates`] reports per role how many
//! responses met the strict format unaided and how many were verified.

use crate::parse::{full_text, parse_response, ParseConfig, ThinkMode, THINK_CLOSE};
use crate::policy::{GenRequest, Policy, Purpose, Response};
use crate::prompt::{PromptTask, Rendering, PREFILL};
use crate::reward::{FormatReward, SolverOutcome};
use crate::score::ScorePlan;
use crate::step::prompts::{proposer_prompts, ProposerPrompt};
use crate::step::{generate, run_jobs, StepConfig, StepError};
use crate::store::TaskStore;
use crate::task::{Group, Role, SolverAnswer, TaskType, ValidTask};
use crate::validate::ValidationPlan;
use azr_exec::Executor;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The `[warmup]` section of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupConfig {
    /// Run the warm-up before the first self-play step.
    pub enabled: bool,
    /// Sampling rounds; each asks `batch` prompts per role (6 x `batch` responses).
    pub rounds: usize,
    pub batch: usize,
    /// Prompts per role held out of the warm-up and answered before and after it.
    pub held: usize,
    /// Cross-entropy optimizer steps over the kept examples, `rows` examples per step.
    pub steps: usize,
    pub rows: usize,
    /// The learning rate of those steps (self-play's `optim.optimizer.lr` is restored after).
    pub lr: f64,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig {
            enabled: false,
            rounds: 4,
            batch: 8,
            held: 32,
            steps: 20,
            rows: 8,
            lr: 1e-5,
        }
    }
}

/// A warm-up prompt and what judging its response needs.
#[derive(Debug, Clone)]
pub struct WarmupPrompt {
    pub group: Group,
    pub prompt: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Solve(ValidTask),
    Propose(ProposerPrompt),
}

/// One judged response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judged {
    pub group: Group,
    pub prompt: String,
    pub response: String,
    /// The strict format, met without scaffolding.
    pub strict: bool,
    /// The executor verified it: a correct answer, or a proposal that validates.
    pub verified: bool,
    /// A verified response rewrapped into the exact format (what the warm-up trains on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<Example>,
}

/// A training example: the prompt as the policy fed it and the rewrapped response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub group: Group,
    pub prompt_ids: Vec<u32>,
    pub response: String,
}

/// Per role: responses, strict-format ones, verified ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleRates {
    pub n: usize,
    pub strict: usize,
    pub verified: usize,
}

/// The warm-up's prompts: the held ones, fixed at the start, and the solver task pools the
/// sampling rounds draw from.
#[derive(Debug, Clone)]
pub struct Plan {
    held: Vec<WarmupPrompt>,
    /// Solver tasks per task type (deduction, abduction, induction), the held ones removed.
    pools: [Vec<ValidTask>; 3],
    /// Solver task types whose pool was too small to hold tasks out: their held prompts
    /// reuse training tasks.
    pub shared_pools: Vec<TaskType>,
    rng: ChaCha8Rng,
}

impl Plan {
    /// Builds the pools and the held prompts. `exclude`: tasks never to use (the probe's).
    /// Derived tasks come from the executor (one batch).
    pub fn new(
        store: &mut TaskStore,
        exec: &Executor,
        exclude: &[ValidTask],
        wcfg: &WarmupConfig,
        cfg: &StepConfig,
        rendering: Rendering<'_>,
        seed: u64,
    ) -> Result<Plan, StepError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let skip: HashSet<&ValidTask> = exclude.iter().collect();
        let mut pools: [Vec<ValidTask>; 3] = Default::default();
        for e in store.deduction.entries() {
            pools[0].push(ValidTask::Deduction(e.task.clone()));
        }
        for e in store.abduction.entries() {
            pools[1].push(ValidTask::Abduction(e.task.clone()));
        }
        for e in store.induction.entries() {
            pools[2].push(ValidTask::Induction(e.task.clone()));
        }
        // Derived tasks: enough that both the held prompts and the rounds can have their own.
        let want = 2 * (wcfg.held + wcfg.rounds * wcfg.batch);
        let mut derived: Vec<ValidTask> = exclude.to_vec();
        crate::probe::fill_derived(&mut derived, store, exec, exclude.len() + want, rng.gen());
        for t in derived.drain(exclude.len()..) {
            match t {
                ValidTask::Deduction(_) => pools[0].push(t),
                ValidTask::Abduction(_) => pools[1].push(t),
                ValidTask::Induction(_) => pools[2].push(t),
            }
        }
        let mut held = Vec::new();
        let mut shared_pools = Vec::new();
        for (pool, t) in pools.iter_mut().zip(TaskType::ALL) {
            pool.retain(|x| !skip.contains(x));
            pool.shuffle(&mut rng);
            if wcfg.held == 0 || pool.is_empty() {
                continue;
            }
            // Half the pool at most is held out; a pool of one task is shared.
            let k = wcfg.held.min(pool.len() / 2);
            let held_tasks: Vec<ValidTask> = if k == 0 {
                shared_pools.push(t);
                pool.clone()
            } else {
                pool.drain(..k).collect()
            };
            held.extend(
                held_tasks
                    .iter()
                    .cycle()
                    .take(wcfg.held)
                    .map(|task| solve_prompt(task, rendering, cfg)),
            );
        }
        if wcfg.held > 0 {
            let pcfg = StepConfig {
                proposer_batch: wcfg.held,
                ..*cfg
            };
            let mut fallbacks = 0;
            for p in proposer_prompts(store, &pcfg, rendering, &mut fallbacks)? {
                held.push(propose_prompt(p));
            }
        }
        Ok(Plan {
            held,
            pools,
            shared_pools,
            rng,
        })
    }

    /// The held prompts (the same before and after the warm-up).
    pub fn held(&self) -> &[WarmupPrompt] {
        &self.held
    }

    /// Every solver task the warm-up may ask (held or drawn in a round): a probe built after
    /// the warm-up leaves them out.
    pub fn solver_tasks(&self) -> Vec<ValidTask> {
        let held = self.held.iter().filter_map(|p| match &p.kind {
            Kind::Solve(t) => Some(t.clone()),
            Kind::Propose(_) => None,
        });
        let mut seen = HashSet::new();
        held.chain(self.pools.iter().flatten().cloned())
            .filter(|t| seen.insert(t.clone()))
            .collect()
    }

    /// One sampling round's prompts: `batch` per role, solver tasks drawn from the pools,
    /// proposer prompts built from the buffers.
    pub fn round(
        &mut self,
        store: &mut TaskStore,
        wcfg: &WarmupConfig,
        cfg: &StepConfig,
        rendering: Rendering<'_>,
    ) -> Result<Vec<WarmupPrompt>, StepError> {
        let pcfg = StepConfig {
            proposer_batch: wcfg.batch,
            ..*cfg
        };
        let mut fallbacks = 0;
        let mut out: Vec<WarmupPrompt> = proposer_prompts(store, &pcfg, rendering, &mut fallbacks)?
            .into_iter()
            .map(propose_prompt)
            .collect();
        for pool in &self.pools {
            for _ in 0..if pool.is_empty() { 0 } else { wcfg.batch } {
                let task = &pool[self.rng.gen_range(0..pool.len())];
                out.push(solve_prompt(task, rendering, cfg));
            }
        }
        Ok(out)
    }
}

fn solve_prompt(task: &ValidTask, rendering: Rendering<'_>, cfg: &StepConfig) -> WarmupPrompt {
    WarmupPrompt {
        group: Group::new(task.task_type(), Role::Solve),
        prompt: PromptTask::solve(task).render_with(rendering, cfg.think),
        kind: Kind::Solve(task.clone()),
    }
}

fn propose_prompt(p: ProposerPrompt) -> WarmupPrompt {
    WarmupPrompt {
        group: Group::new(p.task_type, Role::Propose),
        prompt: p.prompt.clone(),
        kind: Kind::Propose(p),
    }
}

/// Samples every prompt once (one `generate` call) and judges the responses: strict format,
/// verified by the executor, and the rewrapped example of each verified one.
pub fn sample_and_judge(
    prompts: &[WarmupPrompt],
    policy: &mut dyn Policy,
    exec: &Executor,
    store: &TaskStore,
    cfg: &StepConfig,
    rendering: Rendering<'_>,
) -> Result<Vec<Judged>, StepError> {
    let requests: Vec<GenRequest> = prompts
        .iter()
        .map(|p| GenRequest {
            prompt: p.prompt.clone(),
            group: p.group,
            purpose: Purpose::Warmup,
        })
        .collect();
    let responses = generate(policy, &requests, Purpose::Warmup)?;
    let pcfg = cfg.parse_config();

    // Solver answers, scored leniently as learnability is.
    let solves: Vec<(usize, &ValidTask)> = prompts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.kind {
            Kind::Solve(t) => Some((i, t)),
            Kind::Propose(_) => None,
        })
        .collect();
    let splan = ScorePlan::new(
        solves
            .iter()
            .map(|&(i, t)| (t, responses[i].text.as_str(), responses[i].scaffolded())),
        &pcfg,
        FormatReward::Lenient,
    );
    let outcomes = splan.finish(&run_jobs(exec, splan.jobs()));

    // Proposals, validated as a step validates them.
    let props: Vec<(usize, &ProposerPrompt)> = prompts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.kind {
            Kind::Propose(pp) => Some((i, pp)),
            Kind::Solve(_) => None,
        })
        .collect();
    let proposed: Vec<_> = props
        .iter()
        .map(|&(i, pp)| pp.proposed(&responses[i].text))
        .collect();
    let vplan = ValidationPlan::new(&proposed, &cfg.validate_config());
    let vresults = run_jobs(exec, vplan.jobs());
    let verdicts = vplan.finish(&vresults, store);

    let mut verified: Vec<Option<String>> = vec![None; prompts.len()];
    for (&(i, task), outcome) in solves.iter().zip(&outcomes) {
        if *outcome == SolverOutcome::Correct {
            let text = full_text(&responses[i].text, pcfg.think_prefilled());
            verified[i] =
                crate::extract::solver_answer(task.task_type(), &text).map(|a| solver_body(&a));
        }
    }
    for (&(i, _), verdict) in props.iter().zip(&verdicts) {
        if let Ok(task) = verdict {
            verified[i] = Some(proposal_body(task));
        }
    }

    Ok(prompts
        .iter()
        .zip(&responses)
        .zip(verified)
        .map(|((p, r), body)| judge(p, r, body, &pcfg, rendering))
        .collect())
}

fn judge(
    p: &WarmupPrompt,
    r: &Response,
    body: Option<String>,
    pcfg: &ParseConfig,
    rendering: Rendering<'_>,
) -> Judged {
    let strict = !r.scaffolded() && parse_response(p.group, &r.text, pcfg).is_ok();
    let example = body.as_ref().and_then(|body| {
        let response = rewrap(&r.text, body, pcfg.think, rendering);
        // A rewrap the strict parser would not read back is not an example of the format.
        parse_response(p.group, &response, pcfg)
            .is_ok()
            .then(|| Example {
                group: p.group,
                prompt_ids: r.prompt_ids.clone(),
                response,
            })
    });
    Judged {
        group: p.group,
        prompt: p.prompt.clone(),
        response: r.text.clone(),
        strict,
        verified: body.is_some(),
        example,
    }
}

/// The answer block's body for a verified solver answer.
pub fn solver_body(answer: &SolverAnswer) -> String {
    match answer {
        SolverAnswer::Deduction(o) => fence("output", o),
        SolverAnswer::Abduction(i) => fence("input", i),
        SolverAnswer::Induction(p) => fence("python", p),
    }
}

/// The answer block's body for a validated proposal, from the task as validated.
pub fn proposal_body(task: &ValidTask) -> String {
    match task {
        ValidTask::Deduction(t) | ValidTask::Abduction(t) => {
            format!(
                "{}\n{}",
                fence("python", &t.program),
                fence("input", &t.input)
            )
        }
        ValidTask::Induction(r) => {
            let mut s: Vec<String> = r.pairs.iter().map(|(i, _)| fence("input", i)).collect();
            s.push(fence("message", &r.message));
            s.join("\n")
        }
    }
}

fn fence(tag: &str, content: &str) -> String {
    format!("```{tag}\n{}\n```", content.trim_end())
}

/// A response in the exact format of `think`: the model's own `<think>` text from `response`
/// (as sampled, up to its first `</think>`), then `<answer>` with `body`. The prefilled
/// `<think>` is part of the prompt, not of the response.
pub fn rewrap(response: &str, body: &str, think: ThinkMode, rendering: Rendering<'_>) -> String {
    let answer = format!("<answer>\n{body}\n</answer>");
    let thought = |text: &str| -> String {
        let text = text.trim_start().strip_prefix(PREFILL).unwrap_or(text);
        let end = text
            .find(THINK_CLOSE)
            .or_else(|| text.find("<answer>"))
            .unwrap_or(text.len());
        text[..end].trim_end().to_string()
    };
    match think {
        ThinkMode::Required => format!("{}\n{THINK_CLOSE}\n{answer}", thought(response)),
        ThinkMode::Optional if response.trim_start().starts_with(PREFILL) => {
            format!("{PREFILL}{}\n{THINK_CLOSE}\n{answer}", thought(response))
        }
        // The plain rendering ends with "Assistant:", and its responses begin with a space.
        ThinkMode::Optional | ThinkMode::Off => match rendering {
            Rendering::Plain => format!(" {answer}"),
            Rendering::Chat(_) => answer,
        },
    }
}

/// Per group name: how many of `judged` there are, met the strict format, were verified.
pub fn rates(judged: &[Judged]) -> BTreeMap<String, RoleRates> {
    let mut out: BTreeMap<String, RoleRates> = BTreeMap::new();
    for j in judged {
        let r = out.entry(j.group.name().to_string()).or_default();
        r.n += 1;
        r.strict += usize::from(j.strict);
        r.verified += usize::from(j.verified);
    }
    out
}

/// The order the cross-entropy steps take the examples in: `steps` batches of `rows`
/// examples (indices into `n`), epoch after epoch, each epoch a fresh shuffle.
pub fn batches(n: usize, steps: usize, rows: usize, seed: u64) -> Vec<Vec<usize>> {
    if n == 0 || rows == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = Vec::new();
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let mut batch = Vec::with_capacity(rows.min(n));
        while batch.len() < rows.min(n) {
            if order.is_empty() {
                order = (0..n).collect();
                order.shuffle(&mut rng);
            }
            batch.extend(order.pop());
        }
        out.push(batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Triplet;

    const TEMPLATE: fn(&[crate::prompt::ChatMessage]) -> String = |_| String::new();

    fn chat() -> Rendering<'static> {
        Rendering::Chat(&TEMPLATE)
    }

    fn pcfg(think: ThinkMode) -> ParseConfig {
        ParseConfig {
            think,
            induction_inputs: 2,
        }
    }

    #[test]
    fn rewrapped_answers_parse_strictly_to_the_verified_content() {
        let body = solver_body(&SolverAnswer::Deduction("[1, 2]".into()));
        // scaffolded: the environment closed the think block and opened the answer
        let r = "f doubles each item so 1, 2</think>\n<answer>\n```output\n[1, 2]";
        for (think, rendering) in [
            (ThinkMode::Required, chat()),
            (ThinkMode::Off, chat()),
            (ThinkMode::Off, Rendering::Plain),
            (ThinkMode::Optional, chat()),
        ] {
            let text = rewrap(r, &body, think, rendering);
            let parsed = parse_response(Group::SOLVE_DEDUCTION, &text, &pcfg(think));
            assert_eq!(
                parsed,
                Ok(crate::parse::Parsed::Answer(SolverAnswer::Deduction(
                    "[1, 2]".into()
                ))),
                "{think:?}: {text:?}"
            );
        }
        let text = rewrap(r, &body, ThinkMode::Required, chat());
        assert!(
            text.starts_with("f doubles each item so 1, 2\n</think>\n<answer>"),
            "{text}"
        );
        // nothing closed: all of it was thought (as when the answer sits inside <think>)
        let text = rewrap(" it is [1, 2]", &body, ThinkMode::Required, chat());
        assert!(
            text.starts_with(" it is [1, 2]\n</think>\n<answer>\n```output"),
            "{text:?}"
        );
        let text = rewrap("", &body, ThinkMode::Required, chat());
        assert!(text.starts_with("\n</think>\n<answer>"), "{text:?}");
        // optional think, written by the model: kept
        let text = rewrap(
            "<think>hm</think><answer>",
            &body,
            ThinkMode::Optional,
            chat(),
        );
        assert!(text.starts_with("<think>hm\n</think>"), "{text:?}");
    }

    #[test]
    fn rewrapped_proposals_parse_back_to_the_validated_task() {
        let t = Triplet::new("def f(a):\n    return a + 1", "3", "4");
        let body = proposal_body(&ValidTask::Deduction(t.clone()));
        let text = rewrap("plan</think>", &body, ThinkMode::Required, chat());
        match parse_response(Group::PROPOSE_DEDUCTION, &text, &pcfg(ThinkMode::Required)) {
            Ok(crate::parse::Parsed::Proposal(crate::task::Proposal::Deduction(p))) => {
                assert_eq!(
                    (p.program.as_str(), p.input.as_str()),
                    ("def f(a):\n    return a + 1", "3")
                );
            }
            other => panic!("{other:?}: {text}"),
        }
        let rec = crate::task::InductionRecord {
            program: "def f(a):\n    return a".into(),
            pairs: vec![("1".into(), "1".into()), ("'x'".into(), "'x'".into())],
            message: "gives back its argument".into(),
        };
        let body = proposal_body(&ValidTask::Induction(rec));
        let text = rewrap("", &body, ThinkMode::Off, chat());
        match parse_response(Group::PROPOSE_INDUCTION, &text, &pcfg(ThinkMode::Off)) {
            Ok(crate::parse::Parsed::Proposal(crate::task::Proposal::Induction(p))) => {
                assert_eq!(p.inputs, vec!["1", "'x'"]);
                assert_eq!(p.message, "gives back its argument");
            }
            other => panic!("{other:?}: {text}"),
        }
    }

    #[test]
    fn batches_cover_every_example_once_per_epoch() {
        let b = batches(5, 4, 2, 1);
        assert_eq!(b.len(), 4);
        assert!(b.iter().all(|x| x.len() == 2));
        let first: Vec<usize> = b.iter().flatten().copied().take(5).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4], "{b:?}");
        // fewer examples than rows: each step takes them all
        assert!(batches(2, 3, 8, 0).iter().all(|x| x.len() == 2));
        assert!(batches(0, 3, 8, 0).is_empty());
        assert_eq!(batches(5, 4, 2, 1), b);
    }
}
