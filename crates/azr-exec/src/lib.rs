//! azr-exec: the sandboxed, parallel Python executor of azr.
//!
//! Every part of Absolute Zero executes model-written Python: validating proposals, computing gold
//! outputs, checking answers. Programs run in long-lived `python3` workers inside bubblewrap
//! sandboxes; each job runs in a fresh child forked from its worker, as an unprivileged uid, with
//! rlimits and a wall-clock deadline, and everything it leaves behind is killed before the next job.
//!
//! Verdicts never come from a process that ran model code: a job only reports a *claimed value*
//! (the `repr` of what `f` returned); equality with the gold output is decided here, in Rust, by
//! [`literal::py_eq`], or in a clean child that runs nothing but `ast.literal_eval`.

pub mod config;
pub mod fusion;
pub mod job;
pub mod literal;
mod pool;
mod proc;
pub mod sandbox;
#[cfg(feature = "test-util")]
pub mod stub;

use std::time::{Duration, Instant};

pub use config::{ExecConfig, Limits, SandboxMode};
pub use fusion::FusionConfig;
pub use job::{Job, JobResult, Rejection, Status};

use crate::literal::{parse_literal, py_eq, PyValue};
use crate::pool::{PendingReplies, Pool};
use crate::proc::{Reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "bubblewrap (`bwrap`) is not installed, and azr runs model-written code only inside its \
         sandbox. Install it (Debian/Ubuntu: `apt-get install -y bubblewrap`), or pass \
         --no-sandbox to run trusted code without isolation"
    )]
    NoBubblewrap,
    #[error("python3: {0}")]
    Python(String),
    #[error("{0}")]
    Spawn(String),
    #[error("executor configuration: {0}")]
    Config(String),
}

/// Where jobs run: the local pool of sandboxed workers, or a SandboxFusion service.
enum Backend {
    Pool(Pool),
    Fusion(fusion::Fusion),
}

impl Backend {
    fn submit(&self, requests: Vec<Request>) -> PendingReplies {
        match self {
            Backend::Pool(p) => p.submit(requests),
            Backend::Fusion(f) => f.submit(requests),
        }
    }
}

/// The executor: a pool of sandboxed workers (or a SandboxFusion client). Cheap to share
/// between threads (`&Executor`).
pub struct Executor {
    pool: Backend,
    cfg: ExecConfig,
}

/// A batch of jobs running on the pool ([`Executor::submit`]).
pub struct Pending<'a> {
    exec: &'a Executor,
    jobs: Vec<Job>,
    plans: Vec<Plan>,
    replies: PendingReplies,
    submitted: Instant,
}

impl Pending<'_> {
    /// Blocks until every job has its result; returns the results in input order, and the
    /// batch's busy time: from its submission to its last reply, plus the time to turn the
    /// replies into results.
    pub fn wait(self) -> (Vec<JobResult>, Duration) {
        let (replies, last) = self.replies.wait();
        let finishing = Instant::now();
        let mut replies = replies.into_iter();
        let mut results = Vec::with_capacity(self.jobs.len());
        for (job, plan) in self.jobs.iter().zip(self.plans) {
            let result = match plan {
                Plan::Done(result) => result,
                Plan::Send(reqs) => {
                    let mine: Vec<Reply> = replies.by_ref().take(reqs.len()).collect();
                    self.exec.finish(job, mine)
                }
            };
            results.push(result);
        }
        let queued = last.unwrap_or(self.submitted) - self.submitted;
        (results, queued + finishing.elapsed())
    }
}

/// How one job maps onto the pool: requests to send, or a verdict already known.
enum Plan {
    Send(Vec<Request>),
    Done(JobResult),
}

impl Executor {
    pub fn new(cfg: ExecConfig) -> Result<Executor, ExecError> {
        let pool = if cfg.sandboxfusion.url.is_empty() {
            Backend::Pool(Pool::start(cfg.clone())?)
        } else {
            Backend::Fusion(fusion::Fusion::new(&cfg, &cfg.sandboxfusion)?)
        };
        Ok(Executor { pool, cfg })
    }

    pub fn config(&self) -> &ExecConfig {
        &self.cfg
    }

    /// Runs one job.
    pub fn run(&self, job: &Job) -> JobResult {
        self.run_batch(std::slice::from_ref(job))
            .pop()
            .expect("one result per job")
    }

    /// Runs many jobs across the pool; results come back in input order.
    pub fn run_batch(&self, jobs: &[Job]) -> Vec<JobResult> {
        self.submit(jobs).wait().0
    }

    /// Queues many jobs on the pool and returns at once: the caller can work (generate) while
    /// they run, then [`Pending::wait`] for the results.
    pub fn submit(&self, jobs: &[Job]) -> Pending<'_> {
        let submitted = Instant::now();
        let plans: Vec<Plan> = jobs.iter().map(|job| self.plan(job)).collect();
        let requests: Vec<Request> = plans
            .iter()
            .filter_map(|p| match p {
                Plan::Send(reqs) => Some(reqs.clone()),
                Plan::Done(_) => None,
            })
            .flatten()
            .collect();
        Pending {
            exec: self,
            jobs: jobs.to_vec(),
            plans,
            replies: self.pool.submit(requests),
            submitted,
        }
    }

    fn request(&self, mode: &'static str) -> Request {
        Request {
            mode,
            program: None,
            input: None,
            inputs: None,
            a: None,
            b: None,
            literal_input: false,
            reads_input: false,
            timeout: self.cfg.timeout.as_secs_f64(),
            mem_mb: self.cfg.memory_mb,
            max_output: self.cfg.max_output_chars,
        }
    }

    fn plan(&self, job: &Job) -> Plan {
        match job {
            Job::Run { program, input } => Plan::Send(vec![Request {
                program: Some(program.clone()),
                input: Some(input.clone()),
                // A plain run reports long outputs (up to 1 MiB) instead of rejecting them.
                max_output: self.cfg.max_output_chars.max(1 << 20),
                ..self.request("run")
            }]),
            Job::Validate {
                program,
                input,
                literal_input,
                reads_input,
            } => Plan::Send(vec![Request {
                program: Some(program.clone()),
                input: Some(input.clone()),
                literal_input: *literal_input,
                reads_input: *reads_input,
                ..self.request("validate")
            }]),
            Job::Deduction { predicted, gold } => match compare_literals(predicted, gold) {
                Some(equal) => Plan::Done(verdict(equal, None, Duration::ZERO)),
                // Not decidable by our parser: a clean child compares with ast.literal_eval.
                None => Plan::Send(vec![Request {
                    a: Some(predicted.clone()),
                    b: Some(gold.clone()),
                    ..self.request("compare")
                }]),
            },
            Job::Abduction {
                program,
                predicted_input,
                ..
            } => Plan::Send(vec![Request {
                program: Some(program.clone()),
                input: Some(predicted_input.clone()),
                literal_input: true,
                ..self.request("call_literal")
            }]),
            Job::Induction { program, pairs } => {
                if pairs.is_empty() {
                    return Plan::Done(JobResult::failed(
                        Status::InvalidJob,
                        "induction check needs at least one pair",
                    ));
                }
                Plan::Send(vec![Request {
                    program: Some(program.clone()),
                    inputs: Some(pairs.iter().map(|(i, _)| i.clone()).collect()),
                    ..self.request("multi")
                }])
            }
        }
    }

    fn finish(&self, job: &Job, mut replies: Vec<Reply>) -> JobResult {
        let reply = replies
            .pop()
            .unwrap_or_else(|| Reply::failure(Status::Killed, "no reply".into()));
        let status = reply.s;
        let elapsed = Duration::from_secs_f64(reply.ms.max(0.0) / 1000.0);
        let mut result = JobResult {
            status,
            output: None,
            error: reply.e.clone(),
            rejection: None,
            correct: None,
            stdout: reply.out.clone(),
            elapsed,
        };
        match job {
            Job::Run { .. } => result.output = reply.o,
            Job::Validate { .. } => {
                if status == Status::Rejected {
                    result.rejection = reply
                        .r
                        .as_deref()
                        .and_then(Rejection::from_wire)
                        .or(Some(Rejection::Error));
                } else if status == Status::Ok && reply.o.is_some() {
                    result.output = reply.o;
                } else {
                    result.rejection = Rejection::from_status(status).or(Some(Rejection::Error));
                    if status == Status::Ok {
                        result.status = Status::Error;
                        result.error = Some("worker returned no output".into());
                    }
                }
            }
            Job::Deduction { .. } => {
                result.correct = Some(status == Status::Ok && reply.eq == Some(true));
                if status != Status::Ok {
                    // literal_eval failed on one side: a malformed prediction is simply wrong.
                    result.status = Status::Ok;
                }
            }
            Job::Abduction { gold_output, .. } => {
                result.correct = Some(false);
                if status == Status::Ok && reply.lit {
                    if let Some(claimed) = reply.o.as_deref() {
                        result.correct = Some(self.values_equal(claimed, gold_output));
                    }
                }
                result.output = reply.o;
            }
            Job::Induction { pairs, .. } => {
                let outs = reply.outs.unwrap_or_default();
                let all = status == Status::Ok
                    && outs.len() == pairs.len()
                    && outs
                        .iter()
                        .zip(pairs)
                        .all(|((claimed, lit, _), (_, gold))| {
                            *lit && claimed
                                .as_deref()
                                .is_some_and(|c| self.values_equal(c, gold))
                        });
                result.correct = Some(all);
                if result.error.is_none() {
                    result.error = outs.iter().find_map(|(_, _, e)| e.clone());
                }
            }
        }
        result
    }

    /// Python `==` between a claimed value and a gold value, both literal texts; undecidable
    /// texts go to a clean child that only runs `ast.literal_eval`.
    fn values_equal(&self, claimed: &str, gold: &str) -> bool {
        if let Some(equal) = compare_literals(claimed, gold) {
            return equal;
        }
        let request = Request {
            a: Some(claimed.to_string()),
            b: Some(gold.to_string()),
            ..self.request("compare")
        };
        let reply = self.pool.submit(vec![request]).wait().0.pop();
        reply.is_some_and(|r| r.s == Status::Ok && r.eq == Some(true))
    }
}

/// Decides `a == b` for two literal texts in Rust; `None` when either does not parse here.
pub fn compare_literals(a: &str, b: &str) -> Option<bool> {
    let a: PyValue = parse_literal(a).ok()?;
    let b: PyValue = parse_literal(b).ok()?;
    Some(py_eq(&a, &b))
}

fn verdict(correct: bool, error: Option<String>, elapsed: Duration) -> JobResult {
    JobResult {
        status: Status::Ok,
        output: None,
        error,
        rejection: None,
        correct: Some(correct),
        stdout: None,
        elapsed,
    }
}
