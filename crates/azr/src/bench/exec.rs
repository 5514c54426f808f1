//! `azr bench exec`: the executor on the 800 CRUXEval programs.
//!
//! Rows: validations/s (determinism included), deduction and abduction checks/s with 8 answers per
//! task (as learnability estimation needs), job latency p50/p99, for 1 and 2 workers; a mixed
//! workload of 200 programs of which 5 loop forever and 5 allocate gigabytes, at a 10 s timeout;
//! and the anchor measured in the same run: a fresh `python3` process per job, no sandbox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use azr_eval::DataSource;
use azr_exec::literal::{parse_arguments, py_repr, PyValue};
use azr_exec::sandbox::PythonRuntime;
use azr_exec::{ExecConfig, Executor, Job, JobResult, Status};
use clap::Args;

use super::{quantile, table};
use crate::data::{load_cruxeval, CruxTask};

#[derive(Args, Debug)]
pub struct ExecBenchArgs {
    /// Read `code/cruxeval.jsonl` from this folder (laid out like the repository's `data/`).
    /// Default: the copy built into azr.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Worker counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    workers: Vec<usize>,
    /// Skip the mixed hostile workload (it takes at least 10 s).
    #[arg(long)]
    skip_mixed: bool,
    /// Jobs for the fresh-process baseline (it is slow).
    #[arg(long, default_value_t = 200)]
    baseline_jobs: usize,
}

struct Measured {
    jobs: usize,
    /// Jobs that hit their timeout (they count in the total time).
    timeouts: usize,
    seconds: f64,
    job_ms: Vec<f64>,
}

impl Measured {
    fn row(&self, name: &str, workers: usize) -> Vec<String> {
        vec![
            name.to_string(),
            workers.to_string(),
            self.jobs.to_string(),
            format!("{:.0}", self.jobs as f64 / self.seconds),
            format!("{:.2}", quantile(&self.job_ms, 0.5)),
            format!("{:.2}", quantile(&self.job_ms, 0.99)),
            self.timeouts.to_string(),
            format!("{:.2}", self.seconds),
        ]
    }
}

fn measure(exec: &Executor, jobs: &[Job]) -> (Measured, Vec<JobResult>) {
    let start = Instant::now();
    let results = exec.run_batch(jobs);
    let seconds = start.elapsed().as_secs_f64();
    let job_ms = results
        .iter()
        .map(|r| r.elapsed.as_secs_f64() * 1000.0)
        .collect();
    (
        Measured {
            jobs: jobs.len(),
            timeouts: results
                .iter()
                .filter(|r| r.status == Status::Timeout)
                .count(),
            seconds,
            job_ms,
        },
        results,
    )
}

pub fn run(args: &ExecBenchArgs) -> Result<()> {
    let tasks = load_cruxeval(
        &args
            .data
            .clone()
            .map_or(DataSource::Builtin, DataSource::Dir),
    )?;
    let validations: Vec<Job> = tasks
        .iter()
        .map(|t| Job::Validate {
            program: t.code.clone(),
            input: t.input.clone(),
            literal_input: false,
            reads_input: false,
        })
        .collect();
    let deductions = deduction_answers(&tasks);
    let abductions = without_endless_answers(abduction_answers(&tasks))?;
    let mut rows = Vec::new();
    for &workers in &args.workers {
        let exec = Executor::new(ExecConfig {
            workers,
            ..ExecConfig::default()
        })
        .context("starting the executor")?;
        exec.run_batch(&validations[..50]); // warm up: workers started, caches hot
        let (m, results) = measure(&exec, &validations);
        let invalid: Vec<&str> = tasks
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.gold_output().is_none())
            .map(|(t, _)| t.id.as_str())
            .collect();
        eprintln!(
            "{workers} worker(s): {}/{} CRUXEval programs valid; invalid: {invalid:?}",
            tasks.len() - invalid.len(),
            tasks.len()
        );
        rows.push(m.row("validate", workers));
        let (m, _) = measure(&exec, &deductions);
        rows.push(m.row("deduction check (8/task)", workers));
        let (m, _) = measure(&exec, &abductions);
        rows.push(m.row("abduction check (8/task)", workers));
    }
    let baseline_workers = *args.workers.iter().max().unwrap_or(&2);
    let n = args.baseline_jobs.min(tasks.len());
    let m = fresh_process_baseline(&tasks[..n], baseline_workers)?;
    rows.push(m.row(
        "baseline: fresh python3 per job, no sandbox",
        baseline_workers,
    ));
    println!(
        "{}",
        table(
            &[
                "workload",
                "workers",
                "jobs",
                "jobs/s",
                "job p50 ms",
                "job p99 ms",
                "timeouts",
                "total s"
            ],
            &rows
        )
    );
    if !args.skip_mixed {
        let default_workers = ExecConfig::default().workers;
        let mut rows = vec![mixed(&tasks, baseline_workers)?];
        if default_workers != baseline_workers {
            rows.push(mixed(&tasks, default_workers)?);
        }
        println!(
            "{}",
            table(
                &[
                    "mixed workload: 200 validations, 5 loop forever, 5 allocate GBs, 10 s timeout",
                    "workers",
                    "timeouts",
                    "memory",
                    "valid",
                    "slowest other job s",
                    "total s"
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// 8 predicted outputs per task: the gold text, a respaced copy, and wrong values.
fn deduction_answers(tasks: &[CruxTask]) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(tasks.len() * 8);
    for (i, t) in tasks.iter().enumerate() {
        for k in 0..8 {
            let predicted = match k {
                0 | 1 => t.output.clone(),
                2 => t.output.replace(", ", ","),
                _ => tasks[(i + k * 97) % tasks.len()].output.clone(),
            };
            jobs.push(Job::Deduction {
                predicted,
                gold: t.output.clone(),
            });
        }
    }
    jobs
}

/// 8 predicted inputs per task: the true input twice, and six near misses (one argument nudged:
/// an int moved, a string or list shortened or extended), as a solver's wrong guesses look.
fn abduction_answers(tasks: &[CruxTask]) -> Vec<Job> {
    let mut jobs = Vec::with_capacity(tasks.len() * 8);
    for t in tasks {
        let args = parse_arguments(&t.input).ok();
        for k in 0..8usize {
            let predicted_input = match (&args, k) {
                (Some(args), 2..) if !args.is_empty() => {
                    let mut args = args.clone();
                    let slot = k % args.len();
                    nudge(&mut args[slot].1, k);
                    args.iter()
                        .map(|(name, v)| match name {
                            Some(name) => format!("{name}={}", py_repr(v)),
                            None => py_repr(v),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
                _ => t.input.clone(),
            };
            jobs.push(Job::Abduction {
                program: t.code.clone(),
                predicted_input,
                gold_output: t.output.clone(),
            });
        }
    }
    jobs
}

/// Near misses that loop forever would turn the abduction row into a measure of the timeout
/// (the mixed workload measures that); a short pre-pass swaps them for the true input.
fn without_endless_answers(mut jobs: Vec<Job>) -> Result<Vec<Job>> {
    let exec = Executor::new(ExecConfig {
        timeout: Duration::from_millis(500),
        ..ExecConfig::default()
    })?;
    let results = exec.run_batch(&jobs);
    let mut swapped = 0;
    for (i, r) in results.iter().enumerate() {
        if r.status == Status::Timeout {
            let truth = jobs[i - i % 8].clone();
            jobs[i] = truth;
            swapped += 1;
        }
    }
    eprintln!(
        "abduction answers: {swapped} near misses that loop forever swapped for the true input"
    );
    Ok(jobs)
}

fn nudge(v: &mut PyValue, k: usize) {
    match v {
        PyValue::Int(i) => *i += k as i64 - 4,
        PyValue::Bool(b) => *b = !*b,
        PyValue::Float(x) => *x += 0.5,
        PyValue::Str(s) => {
            if k.is_multiple_of(2) && !s.is_empty() {
                s.pop();
            } else {
                s.push('a');
            }
        }
        PyValue::List(items) | PyValue::Tuple(items) => {
            if k.is_multiple_of(2) {
                items.pop();
            } else if let Some(first) = items.first().cloned() {
                items.push(first);
            }
        }
        _ => {}
    }
}

const BASELINE_PY: &str = r#"
import sys
src, arg = sys.stdin.read().split("\0")
ns = {}
exec(src, ns)
v1 = eval("f(" + arg + ")", ns)
v2 = eval("f(" + arg + ")", ns)
print(repr(v1) if v1 == v2 else "nondeterministic")
"#;

/// The naive executor: one fresh `python3` per validation (no sandbox, no limits).
fn fresh_process_baseline(tasks: &[CruxTask], workers: usize) -> Result<Measured> {
    // The real interpreter, not a wrapper such as a pyenv shim, so the anchor is not handicapped.
    let python = PythonRuntime::discover(None)?.executable;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let job_ms: Vec<f64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut times = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(t) = tasks.get(i) else { break };
                        let t0 = Instant::now();
                        let _ = run_fresh(&python, t);
                        times.push(t0.elapsed().as_secs_f64() * 1000.0);
                    }
                    times
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    Ok(Measured {
        jobs: tasks.len(),
        timeouts: 0,
        seconds: start.elapsed().as_secs_f64(),
        job_ms,
    })
}

fn run_fresh(python: &Path, t: &CruxTask) -> Result<String> {
    let mut child = Command::new(python)
        .args(["-I", "-c", BASELINE_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{}\0{}", t.code, t.input).as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// 200 validations at a 10 s timeout: 190 CRUXEval programs, 5 infinite loops, 5 memory hogs.
fn mixed(tasks: &[CruxTask], workers: usize) -> Result<Vec<String>> {
    let exec = Executor::new(ExecConfig {
        workers,
        timeout: Duration::from_secs(10),
        ..ExecConfig::default()
    })?;
    let mut jobs: Vec<Job> = Vec::with_capacity(200);
    for (i, t) in tasks.iter().take(190).enumerate() {
        if i % 19 == 0 {
            let hostile = if (i / 19) % 2 == 0 {
                "def f(x):\n    while True:\n        x += 1"
            } else {
                "def f(x):\n    blocks = []\n    while True:\n        blocks.append(bytearray(1 << 30))"
            };
            jobs.push(Job::Validate {
                program: hostile.into(),
                input: "1".into(),
                literal_input: false,
                reads_input: false,
            });
        }
        jobs.push(Job::Validate {
            program: t.code.clone(),
            input: t.input.clone(),
            literal_input: false,
            reads_input: false,
        });
    }
    let start = Instant::now();
    let results = exec.run_batch(&jobs);
    let total = start.elapsed().as_secs_f64();
    let count = |s: Status| results.iter().filter(|r| r.status == s).count();
    let benign_max = results
        .iter()
        .filter(|r| !matches!(r.status, Status::Timeout | Status::Memory))
        .map(|r| r.elapsed.as_secs_f64())
        .fold(0.0, f64::max);
    Ok(vec![
        format!("{} jobs", jobs.len()),
        workers.to_string(),
        count(Status::Timeout).to_string(),
        count(Status::Memory).to_string(),
        results
            .iter()
            .filter(|r| r.gold_output().is_some())
            .count()
            .to_string(),
        format!("{benign_max:.3}"),
        format!("{total:.2}"),
    ])
}
