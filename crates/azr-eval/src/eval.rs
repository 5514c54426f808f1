//! [`evaluate`]: prompts -> policy -> answers -> checks -> [`Report`].
//!
//! The model enters only through [`Generate`]: a batch of rendered prompts in, one
//! [`Generated`] response per prompt out, in order. Greedy decoding (the paper's pass@1) is the
//! implementation's business; a closure over the model engine is enough, returning either
//! [`Generated`] values or plain texts (taken as not scaffolded):
//! `&mut |prompts: &[String]| model.generate_greedy(prompts)`.

use azr_core::{PolicyError, Rendering};
use azr_exec::{Executor, Job, JobResult, Status};

use crate::bench::BenchmarkId;
use crate::code::{humaneval, mbpp};
use crate::data::{Benchmark, Problem, Task};
use crate::report::{BenchSummary, FailReason, ProblemRecord, Report, RunInfo};
use crate::select::select;
use crate::{extract, math, prompt};

/// One response of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The response, without the prompt and without special tokens.
    pub text: String,
    /// Whether the environment, not the model, completed the response's structure (e.g. closed
    /// the think block or opened the answer block for it). A scaffolded response can still be
    /// correct, leniently, but never strict-correct.
    pub scaffolded: bool,
}

impl From<String> for Generated {
    /// A response the model wrote all by itself.
    fn from(text: String) -> Generated {
        Generated {
            text,
            scaffolded: false,
        }
    }
}

/// Something that answers prompts (greedily, for pass@1).
pub trait Generate {
    /// One response per prompt, in order.
    fn generate(&mut self, prompts: &[String]) -> Result<Vec<Generated>, PolicyError>;

    /// [`generate`](Self::generate) for prompts of `benchmark`: an implementation that
    /// scaffolds responses picks the role's scaffold from it. The evaluation calls this one.
    fn generate_for(
        &mut self,
        benchmark: BenchmarkId,
        prompts: &[String],
    ) -> Result<Vec<Generated>, PolicyError> {
        let _ = benchmark;
        self.generate(prompts)
    }
}

/// Closures returning [`Generated`] values, or anything that converts into one (a `String`: a
/// response that was not scaffolded).
impl<F, T> Generate for F
where
    F: FnMut(&[String]) -> Result<Vec<T>, PolicyError>,
    T: Into<Generated>,
{
    fn generate(&mut self, prompts: &[String]) -> Result<Vec<Generated>, PolicyError> {
        Ok(self(prompts)?.into_iter().map(Into::into).collect())
    }
}

/// How to run an evaluation.
#[derive(Clone, Copy)]
pub struct EvalOptions<'a> {
    pub rendering: Rendering<'a>,
    /// At most this many problems per benchmark.
    pub limit: Option<usize>,
    /// With `limit`: draw the subset at random with this seed (else the first `limit`).
    pub sample_seed: Option<u64>,
    /// Prompts per [`Generate::generate`] call.
    pub batch_size: usize,
    /// MBPP+ inputs per sandbox job.
    pub mbpp_chunk: usize,
}

impl Default for EvalOptions<'_> {
    fn default() -> Self {
        EvalOptions {
            rendering: Rendering::Plain,
            limit: None,
            sample_seed: None,
            batch_size: 16,
            mbpp_chunk: mbpp::DEFAULT_CHUNK,
        }
    }
}

/// Where an evaluation is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `done` of `total` responses of `benchmark` generated.
    Generated {
        benchmark: BenchmarkId,
        done: usize,
        total: usize,
    },
    /// All answers of `benchmark` checked.
    Checked { benchmark: BenchmarkId, n: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("the policy failed on {benchmark}: {source}")]
    Policy {
        benchmark: BenchmarkId,
        #[source]
        source: PolicyError,
    },
    #[error("the policy returned {got} responses for {expected} prompts on {benchmark}")]
    ResponseCount {
        benchmark: BenchmarkId,
        expected: usize,
        got: usize,
    },
}

/// The verdict on one answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub extracted: Option<String>,
    pub reference: Option<String>,
    pub correct: bool,
    pub reason: Option<FailReason>,
    pub detail: Option<String>,
}

impl Verdict {
    fn pass(extracted: Option<String>, reference: Option<String>) -> Verdict {
        Verdict {
            extracted,
            reference,
            correct: true,
            reason: None,
            detail: None,
        }
    }

    fn fail(
        extracted: Option<String>,
        reference: Option<String>,
        reason: FailReason,
        detail: Option<String>,
    ) -> Verdict {
        Verdict {
            extracted,
            reference,
            correct: false,
            reason: Some(reason),
            detail,
        }
    }
}

/// Evaluates `policy` on every benchmark (see [`evaluate_with_progress`]).
pub fn evaluate(
    benchmarks: &[Benchmark],
    policy: &mut dyn Generate,
    executor: &Executor,
    options: &EvalOptions<'_>,
) -> Result<Report, EvalError> {
    evaluate_with_progress(benchmarks, policy, executor, options, &mut |_| {})
}

/// Evaluates `policy` on every benchmark, one after the other: the selected problems' prompts
/// are generated in batches, then all answers are checked (sandbox jobs run in parallel).
pub fn evaluate_with_progress(
    benchmarks: &[Benchmark],
    policy: &mut dyn Generate,
    executor: &Executor,
    options: &EvalOptions<'_>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, EvalError> {
    let mut summaries = Vec::new();
    let mut records = Vec::new();
    for bench in benchmarks {
        let picked: Vec<&Problem> =
            select(bench.problems.len(), options.limit, options.sample_seed)
                .into_iter()
                .map(|i| &bench.problems[i])
                .collect();
        let prompts: Vec<String> = picked
            .iter()
            .map(|p| prompt::render(bench.id, p, options.rendering))
            .collect();
        let mut responses = Vec::with_capacity(prompts.len());
        for batch in prompts.chunks(options.batch_size.max(1)) {
            let out = policy
                .generate_for(bench.id, batch)
                .map_err(|source| EvalError::Policy {
                    benchmark: bench.id,
                    source,
                })?;
            if out.len() != batch.len() {
                return Err(EvalError::ResponseCount {
                    benchmark: bench.id,
                    expected: batch.len(),
                    got: out.len(),
                });
            }
            responses.extend(out);
            progress(Progress::Generated {
                benchmark: bench.id,
                done: responses.len(),
                total: prompts.len(),
            });
        }
        let (texts, scaffolded): (Vec<String>, Vec<bool>) = responses
            .into_iter()
            .map(|g| (g.text, g.scaffolded))
            .unzip();
        let verdicts = check(bench.id, &picked, &texts, executor, options);
        let start = records.len();
        for ((((p, prompt), response), scaffolded), v) in picked
            .iter()
            .zip(prompts)
            .zip(texts)
            .zip(scaffolded)
            .zip(verdicts)
        {
            records.push(ProblemRecord {
                benchmark: bench.id,
                id: p.id.clone(),
                format_ok: extract::format_ok(&response),
                scaffolded,
                prompt,
                response,
                extracted: v.extracted,
                reference: v.reference,
                correct: v.correct,
                reason: v.reason,
                detail: v.detail,
            });
        }
        let done = &records[start..];
        summaries.push(BenchSummary::with_strict(
            bench.id,
            done.iter().filter(|r| r.correct).count(),
            done.iter().filter(|r| r.strict_correct()).count(),
            picked.len(),
            bench.problems.len(),
        ));
        progress(Progress::Checked {
            benchmark: bench.id,
            n: picked.len(),
        });
    }
    let info = RunInfo {
        limit: options.limit,
        sample_seed: options.sample_seed,
        rendering: match options.rendering {
            Rendering::Plain => "plain".into(),
            Rendering::Chat(_) => "chat".into(),
        },
    };
    Ok(Report::new(info, summaries, records))
}

/// Checks the responses to `problems` of `bench`; one verdict per problem, in order.
pub fn check(
    bench: BenchmarkId,
    problems: &[&Problem],
    responses: &[String],
    executor: &Executor,
    options: &EvalOptions<'_>,
) -> Vec<Verdict> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; problems.len()];
    // Executor jobs of the CRUXEval and HumanEval answers, run as one batch.
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    let mut codes: Vec<Option<String>> = vec![None; problems.len()];
    let mut mbpp_items: Vec<(usize, String)> = Vec::new();
    for (i, (p, response)) in problems.iter().zip(responses).enumerate() {
        match &p.task {
            Task::Crux(t) => {
                let (answer, reference) = if bench == BenchmarkId::CruxevalI {
                    (extract::crux_input(response), t.input.clone())
                } else {
                    (extract::crux_output(response), t.output.clone())
                };
                match answer {
                    None => verdicts[i] = Some(no_answer(Some(reference))),
                    Some(a) => jobs.push((
                        i,
                        if bench == BenchmarkId::CruxevalI {
                            Job::Abduction {
                                program: t.program.clone(),
                                predicted_input: a,
                                gold_output: t.output.clone(),
                            }
                        } else {
                            Job::Deduction {
                                predicted: a,
                                gold: t.output.clone(),
                            }
                        },
                    )),
                }
            }
            Task::HumanEval(h) => match extract::code(response) {
                None => verdicts[i] = Some(no_answer(None)),
                Some(code) => {
                    jobs.push((i, humaneval::job(h, &code)));
                    codes[i] = Some(code);
                }
            },
            Task::Mbpp(_) => match extract::code(response) {
                None => verdicts[i] = Some(no_answer(None)),
                Some(code) => mbpp_items.push((i, code)),
            },
            Task::Math(m) => {
                let reference = Some(m.answer.clone());
                verdicts[i] = Some(
                    match math::extract_answer(response, extract::THINK_PREFILLED) {
                        None => no_answer(reference),
                        Some(a) if math::equivalent(&a, &m.answer, m.tolerance) => {
                            Verdict::pass(Some(a), reference)
                        }
                        Some(a) => Verdict::fail(Some(a), reference, FailReason::Wrong, None),
                    },
                );
            }
        }
    }
    let batch: Vec<Job> = jobs.iter().map(|(_, j)| j.clone()).collect();
    for ((i, job), result) in jobs.into_iter().zip(executor.run_batch(&batch)) {
        let mut v = job_verdict(&problems[i].task, job, &result);
        if v.extracted.is_none() {
            v.extracted = codes[i].take();
        }
        verdicts[i] = Some(v);
    }
    check_mbpp(
        problems,
        &mbpp_items,
        executor,
        options.mbpp_chunk,
        &mut verdicts,
    );
    verdicts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| no_answer(None)))
        .collect()
}

fn no_answer(reference: Option<String>) -> Verdict {
    Verdict::fail(None, reference, FailReason::NoAnswer, None)
}

fn job_verdict(task: &Task, job: Job, result: &JobResult) -> Verdict {
    match (task, job) {
        (Task::Crux(t), Job::Deduction { predicted, .. }) => {
            let reference = Some(t.output.clone());
            if result.is_correct() {
                Verdict::pass(Some(predicted), reference)
            } else {
                Verdict::fail(Some(predicted), reference, FailReason::Wrong, None)
            }
        }
        (
            Task::Crux(t),
            Job::Abduction {
                predicted_input, ..
            },
        ) => {
            let reference = Some(t.input.clone());
            if result.is_correct() {
                return Verdict::pass(Some(predicted_input), reference);
            }
            let (reason, detail) = match (result.status, &result.output) {
                (Status::Ok, Some(out)) => (FailReason::Wrong, format!("f returned {out}")),
                (status, _) => (
                    FailReason::from_status(status),
                    result.error.clone().unwrap_or_else(|| status.name().into()),
                ),
            };
            Verdict::fail(Some(predicted_input), reference, reason, Some(detail))
        }
        (Task::HumanEval(_), Job::Run { .. }) => match humaneval::verdict(result) {
            Ok(()) => Verdict::pass(None, None),
            Err((status, why)) => {
                Verdict::fail(None, None, FailReason::from_status(status), Some(why))
            }
        },
        _ => Verdict::fail(
            None,
            None,
            FailReason::Error,
            Some("internal: job mismatch".into()),
        ),
    }
}

fn check_mbpp(
    problems: &[&Problem],
    items: &[(usize, String)],
    executor: &Executor,
    chunk: usize,
    verdicts: &mut [Option<Verdict>],
) {
    let mbpp_of = |i: usize| match &problems[i].task {
        Task::Mbpp(m) => Some(m.as_ref()),
        _ => None,
    };
    let items: Vec<(usize, &crate::data::MbppProblem, &str)> = items
        .iter()
        .filter_map(|(i, code)| Some((*i, mbpp_of(*i)?, code.as_str())))
        .collect();
    if items.is_empty() {
        return;
    }
    let runs: Vec<(&crate::data::MbppProblem, &str)> =
        items.iter().map(|(_, p, c)| (*p, *c)).collect();
    let results = mbpp::check_candidates(executor, &runs, chunk);
    for ((i, _, code), result) in items.iter().zip(results) {
        let extracted = Some(code.to_string());
        verdicts[*i] = Some(match result {
            Ok(()) => Verdict::pass(extracted, None),
            Err(m) => {
                let reason = m.status.map_or(FailReason::Wrong, FailReason::from_status);
                Verdict::fail(extracted, None, reason, Some(m.detail))
            }
        });
    }
}
