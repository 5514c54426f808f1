//! Scoring solver responses with the executor: the same code path for the B solver responses
//! that are trained on and for the n learnability samples of each new proposal.
//!
//! | task | job | correct when |
//! |---|---|---|
//! | deduction | `Job::Deduction { predicted, gold }` | the two literals are `==` (Python semantics) |
//! | abduction | `Job::Abduction { program, predicted_input, gold_output }` | `f(pred) == gold`; literal inputs only |
//! | induction | `Job::Induction { program: answer, pairs: hidden }` | the answer reproduces every hidden pair |
//!
//! The answer is read leniently ([`crate::extract`], the reference's extraction) unless
//! `rewards.format = "strict"`, where the strict rule of [`crate::parse`] decides and a
//! scaffolded response is a format error. A response with no answer is a format error and runs
//! nothing. A parsed answer whose job has no verdict (a missing result, an induction record
//! without hidden pairs) is wrong: only a verdict of the executor makes an answer correct.
//! Learnability samples are scored the same way, so by default on extraction alone.

use crate::parse::{full_text, parse_solver_answer, ParseConfig};
use crate::reward::{FormatReward, SolverOutcome};
use crate::task::{SolverAnswer, ValidTask};
use azr_exec::{Job, JobResult};

/// The executor job that checks `answer` against `task`; `None` when nothing can make it
/// correct (an answer of another task type, an induction record with no hidden pair).
pub fn answer_job(task: &ValidTask, answer: &SolverAnswer) -> Option<Job> {
    match (task, answer) {
        (ValidTask::Deduction(t), SolverAnswer::Deduction(pred)) => Some(Job::Deduction {
            predicted: pred.clone(),
            gold: t.output.clone(),
        }),
        (ValidTask::Abduction(t), SolverAnswer::Abduction(pred)) => Some(Job::Abduction {
            program: t.program.clone(),
            predicted_input: pred.clone(),
            gold_output: t.output.clone(),
        }),
        (ValidTask::Induction(r), SolverAnswer::Induction(program)) => {
            let hidden = r.split().1;
            (!hidden.is_empty()).then(|| Job::Induction {
                program: program.clone(),
                pairs: hidden.to_vec(),
            })
        }
        _ => None,
    }
}

/// The answer a response gives to `task` under the format rule in force.
fn read_answer(
    task: &ValidTask,
    response: &str,
    scaffolded: bool,
    cfg: &ParseConfig,
    format: FormatReward,
) -> Option<SolverAnswer> {
    match format {
        FormatReward::Strict if scaffolded => None,
        FormatReward::Strict => parse_solver_answer(task.task_type(), response, cfg).ok(),
        FormatReward::Lenient => crate::extract::solver_answer(
            task.task_type(),
            &full_text(response, cfg.think_prefilled()),
        ),
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    FormatError,
    Wrong,
    Job(usize),
}

/// The executor jobs that score a batch of (task, response) pairs.
#[derive(Debug, Clone)]
pub struct ScorePlan {
    jobs: Vec<Job>,
    slots: Vec<Slot>,
}

impl ScorePlan {
    /// Reads every response as an answer to its task and lists the checking jobs. Items are
    /// (task, response text, scaffolded).
    pub fn new<'a>(
        items: impl IntoIterator<Item = (&'a ValidTask, &'a str, bool)>,
        cfg: &ParseConfig,
        format: FormatReward,
    ) -> Self {
        let mut jobs = Vec::new();
        let slots = items
            .into_iter()
            .map(|(task, response, scaffolded)| {
                match read_answer(task, response, scaffolded, cfg, format) {
                    None => Slot::FormatError,
                    Some(answer) => match answer_job(task, &answer) {
                        Some(job) => {
                            jobs.push(job);
                            Slot::Job(jobs.len() - 1)
                        }
                        None => Slot::Wrong,
                    },
                }
            })
            .collect();
        ScorePlan { jobs, slots }
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Items scored.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// One outcome per item, from the results of [`jobs`](Self::jobs) (same order).
    pub fn finish(&self, results: &[JobResult]) -> Vec<SolverOutcome> {
        self.slots
            .iter()
            .map(|slot| match *slot {
                Slot::FormatError => SolverOutcome::FormatError,
                Slot::Wrong => SolverOutcome::Wrong,
                Slot::Job(i) => match results.get(i) {
                    Some(r) if r.is_correct() => SolverOutcome::Correct,
                    _ => SolverOutcome::Wrong,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{InductionRecord, Triplet};

    const CFG: ParseConfig = ParseConfig {
        think: crate::parse::ThinkMode::Required,
        induction_inputs: 2,
    };

    fn verdict(correct: bool) -> JobResult {
        JobResult {
            status: azr_exec::Status::Ok,
            output: None,
            error: None,
            rejection: None,
            correct: Some(correct),
            stdout: None,
            elapsed: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn jobs_and_outcomes() {
        let t = Triplet::new("def f(a):\n    return a * 2", "3", "6");
        let ded = ValidTask::Deduction(t.clone());
        let abd = ValidTask::Abduction(t);
        let ind = ValidTask::Induction(InductionRecord {
            program: "def f(a):\n    return -a".into(),
            pairs: vec![("1".into(), "-1".into()), ("2".into(), "-2".into())],
            message: "negates".into(),
        });
        let no_hidden = ValidTask::Induction(InductionRecord {
            pairs: vec![],
            ..InductionRecord::identity_seed()
        });
        let items = [
            (&ded, "t</think><answer>```output\n6\n```</answer>"),
            (&abd, "t</think><answer>```input\n3\n```</answer>"),
            (
                &ind,
                "t</think><answer>```python\ndef f(a):\n    return -a\n```</answer>",
            ),
            (&ded, "no tags"),
            (
                &no_hidden,
                "t</think><answer>```python\ndef f(a):\n    return a\n```</answer>",
            ),
            (&ded, "t</think><answer>```output\n7\n```</answer>"),
        ];
        let plan = ScorePlan::new(
            items.iter().map(|(t, r)| (*t, *r, false)),
            &CFG,
            FormatReward::Strict,
        );
        assert_eq!(plan.jobs().len(), 4);
        assert_eq!(
            plan.jobs()[0],
            Job::Deduction {
                predicted: "6".into(),
                gold: "6".into()
            }
        );
        assert_eq!(
            plan.jobs()[1],
            Job::Abduction {
                program: "def f(a):\n    return a * 2".into(),
                predicted_input: "3".into(),
                gold_output: "6".into()
            }
        );
        // only the hidden half of the pairs is checked
        assert_eq!(
            plan.jobs()[2],
            Job::Induction {
                program: "def f(a):\n    return -a".into(),
                pairs: vec![("2".into(), "-2".into())]
            }
        );
        use SolverOutcome::*;
        let out = plan.finish(&[verdict(true), verdict(true), verdict(false), verdict(false)]);
        assert_eq!(
            out,
            vec![Correct, Correct, Wrong, FormatError, Wrong, Wrong]
        );
        // missing results: wrong, never correct
        assert_eq!(
            plan.finish(&[]),
            vec![Wrong, Wrong, Wrong, FormatError, Wrong, Wrong]
        );
        // strict: a scaffolded response breaks the format; lenient: its answer counts
        let scaffolded = [(&ded, "t</think><answer>```output\n6\n```</answer>", true)];
        let strict = ScorePlan::new(scaffolded, &CFG, FormatReward::Strict);
        assert!(strict.jobs().is_empty());
        let lenient = ScorePlan::new(scaffolded, &CFG, FormatReward::Lenient);
        assert_eq!(lenient.jobs().len(), 1);
        // lenient: an unclosed answer and trailing text still answer
        let loose = [
            (&ded, "t</think><answer>```output\n6\n```", false),
            (
                &ded,
                "t</think><answer>```output\n6\n```</answer> and more",
                false,
            ),
            (&ded, "t</think> the output is 6", false),
        ];
        let plan = ScorePlan::new(loose, &CFG, FormatReward::Lenient);
        assert_eq!(plan.jobs().len(), 2);
        assert_eq!(
            plan.finish(&[verdict(true), verdict(true)]),
            vec![Correct, Correct, FormatError]
        );
    }
}
