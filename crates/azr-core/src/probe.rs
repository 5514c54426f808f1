//! A frozen in-distribution probe: deduction and abduction tasks fixed at the start of a run,
//! never trained on, solved greedily every few steps to see whether the solver improves on the
//! distribution it trains on.
//!
//! Where its tasks come from, in order:
//! 1. What the base model proposed during seeding: every other deduction and abduction task the
//!    buffers gained in the seeding phase (`added_at == 0`, the identity seeds excluded),
//!    alternating deduction and abduction. The other half stays in the buffers to train on.
//! 2. When too few arrived (small models rarely propose valid tasks), tasks the executor derives
//!    from the buffers' programs with **new literal inputs**: every number and string literal of a
//!    stored input is replaced by a random one of the same kind (so the argument list keeps its
//!    shape), and the executor computes the output. Never from evaluation data.
//!
//! [`build`] takes both in that order and skips tasks something else already trained on (the
//! format warm-up's solver tasks, which come from the same programs).
//!
//! The run holds the probe's tasks out of its buffers ([`TaskStore::hold_out`]), so the solver is
//! never asked them in training and a re-proposal of one is not stored. A derived task shares
//! its program with a training task, not its input.
//!
//! Scored strict (the strict format, met without scaffolding) and lenient (the reward's
//! extraction) by [`score`].

use crate::parse::ParseConfig;
use crate::reward::{FormatReward, SolverOutcome};
use crate::score::ScorePlan;
use crate::store::TaskStore;
use crate::task::{TaskType, Triplet, ValidTask};
use azr_exec::{Executor, Job};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The probe: up to `n` tasks, first from seeding ([`from_seeding`]), then derived
/// ([`fill_derived`]), none of them in `exclude`. Returns the tasks and how many were proposed.
pub fn build(
    store: &TaskStore,
    exec: &Executor,
    n: usize,
    seed: u64,
    exclude: &[ValidTask],
) -> (Vec<ValidTask>, usize) {
    let skip: HashSet<&ValidTask> = exclude.iter().collect();
    // The excluded tasks head the list so that `fill_derived` skips them too; they are cut off.
    let mut tasks = exclude.to_vec();
    tasks.extend(
        from_seeding(store, n)
            .into_iter()
            .filter(|t| !skip.contains(t)),
    );
    let proposed = tasks.len() - exclude.len();
    fill_derived(&mut tasks, store, exec, exclude.len() + n, seed);
    (tasks.split_off(exclude.len()), proposed)
}

/// Probe tasks from the seeding phase's proposals: up to `n`, alternating deduction and
/// abduction, from every other proposal of each type (the rest is left to train on).
pub fn from_seeding(store: &TaskStore, n: usize) -> Vec<ValidTask> {
    let seed = Triplet::identity_seed();
    let take = |t: TaskType| -> Vec<ValidTask> {
        store
            .triplets(t)
            .map(|b| {
                b.entries()
                    .filter(|e| e.added_at == 0 && e.task != seed)
                    .step_by(2)
                    .filter_map(|e| ValidTask::from_triplet(t, e.task.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    interleave(take(TaskType::Deduction), take(TaskType::Abduction), n)
}

fn interleave(a: Vec<ValidTask>, b: Vec<ValidTask>, n: usize) -> Vec<ValidTask> {
    let mut out = Vec::with_capacity(n);
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    while out.len() < n {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y).take(n - out.len())),
        }
    }
    out
}

/// `input` with every number and string literal replaced by a random one of the same kind.
pub fn new_literals(input: &str, rng: &mut ChaCha8Rng) -> String {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // Skip to the closing quote (escapes included); write a new word in its place.
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let len = rng.gen_range(1..=8);
            let word: String = (0..len)
                .map(|_| (b'a' + rng.gen_range(0..26u8)) as char)
                .collect();
            out.push(c);
            out.push_str(&word);
            out.push(c);
            i = j + 1;
        } else if c.is_ascii_digit()
            && (i == 0
                || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '.'))
        {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            // A float keeps its fraction digits as they were; the integer part is new.
            let digits = j - i;
            let max = 10u64.pow(digits.min(3) as u32 + 1);
            out.push_str(&rng.gen_range(0..max).to_string());
            i = j;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Candidate (task type, program, input) triples with new literal inputs for the programs of
/// the deduction and abduction buffers: `per_program` tries each, deduplicated.
pub fn derived_candidates(
    store: &TaskStore,
    per_program: usize,
    seed: u64,
) -> Vec<(TaskType, String, String)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for _ in 0..per_program {
        for t in [TaskType::Deduction, TaskType::Abduction] {
            let Ok(buffer) = store.triplets(t) else {
                continue;
            };
            for e in buffer.entries() {
                let input = new_literals(&e.task.input, &mut rng);
                if input != e.task.input && seen.insert((e.task.program.clone(), input.clone())) {
                    out.push((t, e.task.program.clone(), input));
                }
            }
        }
    }
    out
}

/// Fills `tasks` up to `n` with derived tasks the executor validates (its outputs are gold),
/// alternating deduction and abduction, skipping any task already in `tasks`.
pub fn fill_derived(
    tasks: &mut Vec<ValidTask>,
    store: &TaskStore,
    exec: &Executor,
    n: usize,
    seed: u64,
) {
    if tasks.len() >= n {
        return;
    }
    // Each program gets enough tries that the probe can fill even from the identity seeds.
    let programs = store.len(TaskType::Deduction) + store.len(TaskType::Abduction);
    let per_program = (2 * n).div_ceil(programs.max(1)).max(2);
    let candidates = derived_candidates(store, per_program, seed);
    let jobs: Vec<Job> = candidates
        .iter()
        .map(|(_, program, input)| Job::Validate {
            program: program.clone(),
            input: input.clone(),
            literal_input: true,
            // The programs were stored by validation, which made its own choice.
            reads_input: false,
        })
        .collect();
    let results = if jobs.is_empty() {
        Vec::new()
    } else {
        exec.run_batch(&jobs)
    };
    let mut have: HashSet<ValidTask> = tasks.iter().cloned().collect();
    let (mut ded, mut abd) = (Vec::new(), Vec::new());
    for ((t, program, input), r) in candidates.into_iter().zip(&results) {
        let Some(output) = r.gold_output() else {
            continue;
        };
        let Some(task) = ValidTask::from_triplet(t, Triplet::new(program, input, output)) else {
            continue;
        };
        if have.insert(task.clone()) {
            match t {
                TaskType::Deduction => ded.push(task),
                _ => abd.push(task),
            }
        }
    }
    let need = n - tasks.len();
    tasks.extend(interleave(ded, abd, need));
}

/// A probe's score at one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeScore {
    pub n: usize,
    /// Correct with the strict format, met without scaffolding.
    pub strict: usize,
    /// Correct as the reward reads answers.
    pub lenient: usize,
    pub strict_accuracy: f64,
    pub lenient_accuracy: f64,
    /// Task by task (probe order), for paired comparisons between steps and runs.
    #[serde(default)]
    pub strict_correct: Vec<bool>,
    #[serde(default)]
    pub lenient_correct: Vec<bool>,
}

/// The executor jobs that score the probe's responses (text, scaffolded), strict and lenient.
pub struct ProbePlan {
    strict: ScorePlan,
    lenient: ScorePlan,
}

impl ProbePlan {
    pub fn new(tasks: &[ValidTask], responses: &[(&str, bool)], cfg: &ParseConfig) -> Self {
        let items = || {
            tasks
                .iter()
                .zip(responses)
                .map(|(t, (text, scaffolded))| (t, *text, *scaffolded))
        };
        ProbePlan {
            strict: ScorePlan::new(items(), cfg, FormatReward::Strict),
            lenient: ScorePlan::new(items(), cfg, FormatReward::Lenient),
        }
    }

    /// Both plans' jobs, strict first.
    pub fn jobs(&self) -> Vec<Job> {
        [self.strict.jobs(), self.lenient.jobs()].concat()
    }

    /// The score from the results of [`jobs`](Self::jobs).
    pub fn finish(&self, results: &[azr_exec::JobResult]) -> ProbeScore {
        let k = self.strict.jobs().len().min(results.len());
        let correct = |o: Vec<SolverOutcome>| -> Vec<bool> {
            o.iter().map(|o| *o == SolverOutcome::Correct).collect()
        };
        let strict_correct = correct(self.strict.finish(&results[..k]));
        let lenient_correct = correct(self.lenient.finish(&results[k..]));
        let count = |c: &[bool]| c.iter().filter(|c| **c).count();
        let (strict, lenient) = (count(&strict_correct), count(&lenient_correct));
        let n = self.strict.len();
        let ratio = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
        ProbeScore {
            n,
            strict,
            lenient,
            strict_accuracy: ratio(strict),
            lenient_accuracy: ratio(lenient),
            strict_correct,
            lenient_correct,
        }
    }
}

/// Scores the probe's responses with one executor batch.
pub fn score(
    tasks: &[ValidTask],
    responses: &[(&str, bool)],
    exec: &Executor,
    cfg: &ParseConfig,
) -> ProbeScore {
    let plan = ProbePlan::new(tasks, responses, cfg);
    let jobs = plan.jobs();
    let results = if jobs.is_empty() {
        Vec::new()
    } else {
        exec.run_batch(&jobs)
    };
    plan.finish(&results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_literals_keep_the_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for input in [
            "'Hello World'",
            "[1, 22, 333], 'ab'",
            "{'k': 5}, \"x\\\"y\"",
            "x1, 2.5",
        ] {
            let out = new_literals(input, &mut rng);
            // same punctuation skeleton: strip literals from both and compare
            let skeleton = |s: &str| {
                s.chars()
                    .filter(|c| matches!(c, '[' | ']' | '{' | '}' | ',' | ':' | '(' | ')'))
                    .collect::<String>()
            };
            assert_eq!(skeleton(input), skeleton(&out), "{input} -> {out}");
        }
        // an identifier's digits are not a number literal
        let out = new_literals("x1", &mut rng);
        assert_eq!(out, "x1");
        assert_ne!(new_literals("'abc', 7", &mut rng), "'abc', 7");
    }

    #[test]
    fn seeding_tasks_alternate_and_skip_the_seeds() {
        let mut s = TaskStore::new(16, 0).unwrap();
        for i in 0..3 {
            let t = Triplet::new(
                format!("def f(a):\n    return a + {i}"),
                "1",
                (1 + i).to_string(),
            );
            s.add(ValidTask::Deduction(t.clone()), 0);
            s.add(ValidTask::Abduction(t), 0);
        }
        let late = Triplet::new("def f(a):\n    return -a", "1", "-1");
        s.add(ValidTask::Deduction(late), 3);
        let p = from_seeding(&s, 5);
        // every other seeding proposal of each type: the 1st and 3rd, never the 2nd
        assert_eq!(p.len(), 4);
        let types: Vec<TaskType> = p.iter().map(|t| t.task_type()).collect();
        use TaskType::*;
        assert_eq!(types, vec![Deduction, Abduction, Deduction, Abduction]);
        assert!(p.iter().all(|t| match t {
            ValidTask::Deduction(x) | ValidTask::Abduction(x) =>
                x.program.contains('+') && !x.program.ends_with("+ 1"),
            _ => false,
        }));
        assert_eq!(from_seeding(&s, 3).len(), 3);
        // held out: gone from the buffers, refused when proposed again
        let mut held = s.clone();
        held.hold_out(&p);
        assert_eq!(held.len(Deduction), s.len(Deduction) - 2);
        assert!(p.iter().all(|t| held.contains(t)));
        assert_eq!(
            held.add(p[0].clone(), 5),
            crate::buffer::AddOutcome::Duplicate
        );
        assert!(held
            .deduction
            .entries()
            .all(|e| !p.contains(&ValidTask::Deduction(e.task.clone()))));
        // derived candidates: new inputs for every stored program, none equal to a stored one
        let c = derived_candidates(&s, 2, 1);
        assert!(c.len() >= 8);
        assert!(c.iter().all(|(_, _, i)| i != "1"));
    }
}
