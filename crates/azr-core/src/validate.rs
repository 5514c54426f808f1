//! The validation pipeline: proposer response text -> parsed proposal -> executor validation ->
//! a [`ValidTask`] to store, or a [`Rejected`] reason.
//!
//! Checks, in order (the first failing one is the reason):
//! 1. Parse ([`crate::parse::parse_proposal`]): a python block and an input block (deduction,
//!    abduction), or N input blocks and a message block (induction); when the strict parse
//!    fails, the reference's lenient extraction ([`crate::extract`]) — a proposal with broken
//!    tags is still validated, and stored when valid. -> `parse.*` when neither reads it
//! 2. Induction only, before anything runs ([`crate::induction`]): the message has at least
//!    `min_message_words` words and no code; the N inputs are N distinct argument lists.
//! 3. The executor's `Job::Validate` on (program, input) — for induction once per input, against
//!    the program the proposer was shown; **every** one of the N inputs must validate (spec: "all N
//!    inputs validate"), the first failing input (in the proposer's order) gives the reason.
//!    -> `exec.*`. The gold output(s) are the executor's.
//!    With `require_input_use`, `f` must take a parameter and read every one (a static check
//!    in the executor): any input solves the abduction of a program that ignores its input, and
//!    the learnability reward pays for such tasks while the solver is weak (measured on the
//!    135M default: 21 of a 20-step run's 26 correct answers). -> `exec.ignores_input`
//! 4. The finished task is not already in its buffer -> `duplicate`.
//!
//! Proposer inputs must be **literal** argument lists (`literal_input: true`): the solver reads
//! the input of a deduction task and must be able to evaluate it in its head, and an abduction
//! answer is accepted only as literals — an input such as `[K] * 2` that leans on the program's
//! globals, or any expression, would make a task the solver cannot read or reproduce.
//!
//! Batching: [`ValidationPlan`] turns a whole step's proposals into one list of jobs, so the caller
//! can run them (together with other jobs) in one `Executor::run_batch`, which parallelises them.
//!
//! Duplicates are checked against the buffers as they are when [`ValidationPlan::finish`] runs.
//! Two identical proposals in one batch are both valid (neither was stored yet); the buffer keeps
//! one (see [`crate::step`]).

use crate::induction::{code_marker, distinct_inputs, message_words};
use crate::parse::{full_text, parse_proposal, ParseConfig};
use crate::reason::{Reason, Rejected};
use crate::store::TaskStore;
use crate::task::{InductionRecord, Proposal, TaskType, Triplet, ValidTask};
use azr_exec::{Executor, Job, JobResult, Rejection};
use serde::{Deserialize, Serialize};

/// What validation needs to know besides the responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateConfig {
    /// Parsing; `induction_inputs` is N.
    pub parse: ParseConfig,
    /// Fewest words an induction message may have.
    pub min_message_words: usize,
    /// Reject programs whose `f` takes no parameter or never reads one (`exec.ignores_input`).
    pub require_input_use: bool,
}

impl Default for ValidateConfig {
    fn default() -> Self {
        ValidateConfig {
            parse: ParseConfig::default(),
            min_message_words: 2,
            require_input_use: false,
        }
    }
}

/// One proposer response to validate, with what its prompt showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposed<'a> {
    Deduction {
        response: &'a str,
    },
    Abduction {
        response: &'a str,
    },
    /// `program`: the program the induction proposer was shown (its inputs are run against it).
    Induction {
        program: &'a str,
        response: &'a str,
    },
}

impl Proposed<'_> {
    pub fn task_type(&self) -> TaskType {
        match self {
            Proposed::Deduction { .. } => TaskType::Deduction,
            Proposed::Abduction { .. } => TaskType::Abduction,
            Proposed::Induction { .. } => TaskType::Induction,
        }
    }

    fn response(&self) -> &str {
        match self {
            Proposed::Deduction { response }
            | Proposed::Abduction { response }
            | Proposed::Induction { response, .. } => response,
        }
    }
}

/// The verdict on one proposal.
pub type Validated = Result<ValidTask, Rejected>;

/// Where one proposal's verdict will come from.
#[derive(Debug, Clone)]
enum Slot {
    /// Decided before anything ran.
    Done(Rejected),
    /// One validation job at `job`.
    Triplet {
        task_type: TaskType,
        program: String,
        input: String,
        job: usize,
    },
    /// One validation job per input, starting at `first_job`.
    Induction {
        program: String,
        inputs: Vec<String>,
        message: String,
        first_job: usize,
    },
}

/// The executor jobs of a batch of proposals, and how to read their results back.
#[derive(Debug, Clone)]
pub struct ValidationPlan {
    jobs: Vec<Job>,
    slots: Vec<Slot>,
}

fn validate_job(program: &str, input: &str, cfg: &ValidateConfig) -> Job {
    Job::Validate {
        program: program.to_string(),
        input: input.to_string(),
        literal_input: true,
        reads_input: cfg.require_input_use,
    }
}

/// A proposal read by the reference's lenient extraction: from the last `<answer>` (closed or
/// not), else from the whole response.
fn lenient_proposal(item: &Proposed<'_>, cfg: &ValidateConfig) -> Option<Proposal> {
    let mut text = full_text(item.response(), cfg.parse.think_prefilled()).into_owned();
    if crate::extract::answer(&text).is_none() {
        // No answer block: the whole response is read as one.
        text.insert_str(0, crate::parse::ANSWER_OPEN);
    }
    crate::extract::proposal(item.task_type(), &text, cfg.parse.induction_inputs)
}

/// The rejection a failed validation result stands for, with the executor's error line.
fn exec_rejection(result: Option<&JobResult>) -> Result<String, Rejected> {
    let Some(r) = result else {
        return Err(Rejected::with_detail(
            Reason::Exec(Rejection::Error),
            Some("no result from the executor".into()),
        ));
    };
    match r.gold_output() {
        Some(out) => Ok(out.to_string()),
        None => Err(Rejected::with_detail(
            Reason::Exec(r.rejection.unwrap_or(Rejection::Error)),
            r.error.clone(),
        )),
    }
}

impl ValidationPlan {
    /// Parses every proposal, makes the checks that need no executor, and lists the jobs.
    pub fn new(items: &[Proposed<'_>], cfg: &ValidateConfig) -> Self {
        let mut plan = ValidationPlan {
            jobs: Vec::new(),
            slots: Vec::with_capacity(items.len()),
        };
        for item in items {
            let slot = plan.slot(item, cfg);
            plan.slots.push(slot);
        }
        plan
    }

    fn slot(&mut self, item: &Proposed<'_>, cfg: &ValidateConfig) -> Slot {
        let parsed = match parse_proposal(item.task_type(), item.response(), &cfg.parse) {
            Ok(p) => p,
            // As the reference does, a proposal whose program and input(s) can be read is
            // validated (and stored when valid) even when its tags are broken: validity is
            // kept apart from format, which only the reward sees.
            Err(e) => match lenient_proposal(item, cfg) {
                Some(p) => p,
                None => return Slot::Done(Reason::Parse(e).into()),
            },
        };
        match (parsed, item) {
            (Proposal::Deduction(p) | Proposal::Abduction(p), _) => {
                let job = self.jobs.len();
                self.jobs.push(validate_job(&p.program, &p.input, cfg));
                Slot::Triplet {
                    task_type: item.task_type(),
                    program: p.program,
                    input: p.input,
                    job,
                }
            }
            (Proposal::Induction(p), Proposed::Induction { program, .. }) => {
                let words = message_words(&p.message);
                if words < cfg.min_message_words {
                    return Slot::Done(
                        Reason::MessageTooShort {
                            words,
                            needed: cfg.min_message_words,
                        }
                        .into(),
                    );
                }
                if let Some(marker) = code_marker(&p.message) {
                    return Slot::Done(Reason::MessageHasCode(marker).into());
                }
                let distinct = distinct_inputs(&p.inputs);
                if distinct < p.inputs.len() {
                    return Slot::Done(
                        Reason::TooFewDistinctInputs {
                            distinct,
                            needed: p.inputs.len(),
                        }
                        .into(),
                    );
                }
                let first_job = self.jobs.len();
                self.jobs
                    .extend(p.inputs.iter().map(|i| validate_job(program, i, cfg)));
                Slot::Induction {
                    program: program.to_string(),
                    inputs: p.inputs,
                    message: p.message,
                    first_job,
                }
            }
            // parse_proposal returns the variant of the task type asked for.
            (Proposal::Induction(_), _) => Slot::Done(Rejected::with_detail(
                Reason::Exec(Rejection::Error),
                Some("induction proposal without a program".into()),
            )),
        }
    }

    /// The jobs to run, in order.
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Reads the results of [`jobs`](Self::jobs) (same order) into one verdict per proposal.
    /// Missing results count as executor errors; nothing here panics.
    pub fn finish(self, results: &[JobResult], store: &TaskStore) -> Vec<Validated> {
        self.slots
            .into_iter()
            .map(|slot| {
                let task = match slot {
                    Slot::Done(rejected) => return Err(rejected),
                    Slot::Triplet {
                        task_type,
                        program,
                        input,
                        job,
                    } => {
                        let output = exec_rejection(results.get(job))?;
                        ValidTask::from_triplet(task_type, Triplet::new(program, input, output))
                            .ok_or_else(|| Rejected::new(Reason::Exec(Rejection::Error)))?
                    }
                    Slot::Induction {
                        program,
                        inputs,
                        message,
                        first_job,
                    } => {
                        let mut pairs = Vec::with_capacity(inputs.len());
                        for (k, input) in inputs.into_iter().enumerate() {
                            let output =
                                exec_rejection(results.get(first_job + k)).map_err(|mut r| {
                                    let d = r.detail.take().unwrap_or_default();
                                    r.detail = Some(format!("input {}: {d}", k + 1));
                                    r
                                })?;
                            pairs.push((input, output));
                        }
                        ValidTask::Induction(InductionRecord {
                            program,
                            pairs,
                            message,
                        })
                    }
                };
                if store.contains(&task) {
                    return Err(Reason::Duplicate.into());
                }
                Ok(task)
            })
            .collect()
    }
}

/// Validates a batch of proposals with one `run_batch` call.
pub fn validate_proposals(
    exec: &Executor,
    items: &[Proposed<'_>],
    store: &TaskStore,
    cfg: &ValidateConfig,
) -> Vec<Validated> {
    let plan = ValidationPlan::new(items, cfg);
    let results = if plan.jobs().is_empty() {
        Vec::new()
    } else {
        exec.run_batch(plan.jobs())
    };
    plan.finish(&results, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::FormatError;

    const CFG: ValidateConfig = ValidateConfig {
        parse: ParseConfig {
            think: crate::parse::ThinkMode::Required,
            induction_inputs: 2,
        },
        min_message_words: 2,
        require_input_use: true,
    };

    fn ok_result(output: &str) -> JobResult {
        JobResult {
            status: azr_exec::Status::Ok,
            output: Some(output.into()),
            error: None,
            rejection: None,
            correct: None,
            stdout: None,
            elapsed: std::time::Duration::ZERO,
        }
    }

    fn ind(inputs: &[&str], message: &str) -> String {
        let mut s = String::from("t</think><answer>");
        for i in inputs {
            s += &format!("```input\n{i}\n```\n");
        }
        s + &format!("```message\n{message}\n```</answer>")
    }

    /// The jobs and the result reading, without an executor: results are made up here.
    #[test]
    fn plan_lists_literal_jobs_and_reads_results() {
        let store = TaskStore::new(8, 0).unwrap();
        let ded = "t</think><answer>```python\ndef f(x):\n    return x + 1\n```\n```input\n1\n```</answer>";
        let bad = "no answer at all";
        let i_ok = ind(&["1", "2"], "adds nothing at all");
        let i_short = ind(&["1", "2"], "x");
        let i_dup = ind(&["[1,2]", "[1, 2]"], "two equal lists");
        let items = [
            Proposed::Deduction { response: ded },
            Proposed::Abduction { response: bad },
            Proposed::Induction {
                program: "def f(a):\n    return a",
                response: &i_ok,
            },
            Proposed::Induction {
                program: "def f(a):\n    return a",
                response: &i_short,
            },
            Proposed::Induction {
                program: "def f(a):\n    return a",
                response: &i_dup,
            },
        ];
        let plan = ValidationPlan::new(&items, &CFG);
        assert_eq!(plan.jobs().len(), 3);
        assert!(plan.jobs().iter().all(|j| matches!(
            j,
            Job::Validate {
                literal_input: true,
                reads_input: true,
                ..
            }
        )));
        let results = [ok_result("2"), ok_result("1"), ok_result("2")];
        let v = plan.finish(&results, &store);
        assert_eq!(
            v[0],
            Ok(ValidTask::Deduction(Triplet::new(
                "def f(x):\n    return x + 1",
                "1",
                "2"
            )))
        );
        assert_eq!(
            v[1].as_ref().unwrap_err().reason,
            Reason::Parse(FormatError::ThinkNotClosed.into())
        );
        let ValidTask::Induction(rec) = v[2].as_ref().unwrap() else {
            panic!("{:?}", v[2]);
        };
        assert_eq!(
            rec.pairs,
            vec![("1".into(), "1".into()), ("2".into(), "2".into())]
        );
        assert_eq!(rec.message, "adds nothing at all");
        assert_eq!(
            v[3].as_ref().unwrap_err().reason,
            Reason::MessageTooShort {
                words: 1,
                needed: 2
            }
        );
        assert_eq!(
            v[4].as_ref().unwrap_err().reason,
            Reason::TooFewDistinctInputs {
                distinct: 1,
                needed: 2
            }
        );
    }

    #[test]
    fn missing_results_are_errors_not_panics() {
        let store = TaskStore::new(8, 0).unwrap();
        let ded =
            "t</think><answer>```python\ndef f(x):\n    return x\n```\n```input\n1\n```</answer>";
        let plan = ValidationPlan::new(&[Proposed::Deduction { response: ded }], &CFG);
        let v = plan.finish(&[], &store);
        assert_eq!(
            v[0].as_ref().unwrap_err().reason,
            Reason::Exec(Rejection::Error)
        );
    }

    #[test]
    fn duplicates_of_stored_tasks() {
        let store = TaskStore::new(8, 0).unwrap();
        let seed = "t</think><answer>```python\ndef f(a):\n    return a\n```\n```input\n'Hello World'\n```</answer>";
        for item in [
            Proposed::Deduction { response: seed },
            Proposed::Abduction { response: seed },
        ] {
            let plan = ValidationPlan::new(&[item], &CFG);
            let v = plan.finish(&[ok_result("'Hello World'")], &store);
            assert_eq!(v[0].as_ref().unwrap_err().reason, Reason::Duplicate);
        }
        // same program, other output text: a different task
        let plan = ValidationPlan::new(&[Proposed::Deduction { response: seed }], &CFG);
        assert!(plan.finish(&[ok_result("'Hello'")], &store)[0].is_ok());
    }

    #[test]
    fn broken_tags_are_still_validated() {
        let store = TaskStore::new(8, 0).unwrap();
        // no </answer> (the model stopped), and no answer block at all
        let unclosed =
            "t</think><answer>\n```python\ndef f(x):\n    return x * 3\n```\n```input\n2\n```";
        let untagged = "```python\ndef f(x):\n    return -x\n```\n```input\n5\n```";
        let items = [
            Proposed::Deduction { response: unclosed },
            Proposed::Abduction { response: untagged },
        ];
        let plan = ValidationPlan::new(&items, &CFG);
        assert_eq!(plan.jobs().len(), 2);
        let v = plan.finish(&[ok_result("6"), ok_result("-5")], &store);
        assert_eq!(
            v[0],
            Ok(ValidTask::Deduction(Triplet::new(
                "def f(x):\n    return x * 3",
                "2",
                "6"
            )))
        );
        assert!(v[1].is_ok(), "{:?}", v[1]);
    }
}
