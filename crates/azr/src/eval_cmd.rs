//! `azr eval`: score a model on the paper's benchmarks, offline, greedy pass@1 (lenient and
//! strict); `azr eval compare`: two such runs, paired problem by problem.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use azr_core::prompt::Rendering;
use azr_eval::compare::{self, DEFAULT_RESAMPLES, DEFAULT_SEED};
use azr_eval::{
    evaluate_with_progress, Benchmark, BenchmarkId, DataSource, EvalOptions, Progress, RunInfo,
};
use azr_exec::Executor;
use azr_model::resolve_model;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::policy::{rendering, ChatBridge, GreedyEval, ScaffoldConfig, Template};
use crate::ExecArgs;

/// `azr eval [flags]` runs an evaluation; `azr eval compare A B` compares two.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: Option<EvalCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Compare two evaluation folders (from `azr eval --out`) on the problems they share.
    ///
    /// Problems are matched by benchmark and id; those in one folder only are counted and
    /// reported. For each benchmark in both, and for the lenient verdict (the answer is right)
    /// and the strict one (right, in the think/answer format, not scaffolded), prints: the shared
    /// problems n, pass@1 of A and of B, the difference B - A, the discordant counts b (right in
    /// A, wrong in B) and c (wrong in A, right in B), McNemar's exact two-sided p-value, and a
    /// paired bootstrap 95% percentile interval of B - A. With --json, the same numbers as one
    /// JSON object on standard output instead of the table.
    Compare(CompareArgs),
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Folder of run A (the baseline): summary.json and problems.jsonl.
    dir_a: PathBuf,
    /// Folder of run B (compared with A: differences are B - A).
    dir_b: PathBuf,
    /// Print JSON (rows, problems only in A or B, the runs' settings) instead of the table.
    #[arg(long)]
    json: bool,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = DEFAULT_RESAMPLES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    resamples: u64,
    /// Bootstrap seed (the interval is reproducible for a given seed).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A known model name (`azr model list`), a GGUF file, or a Hugging Face directory.
    #[arg(long, default_value = azr_model::DEFAULT_MODEL)]
    model: String,
    /// Benchmarks, comma-separated: cruxeval-o, cruxeval-i, humaneval, mbppplus, gsm8k, math500,
    /// aime24, aime25, amc23, minerva, olympiadbench, or the groups code, math, cruxeval, all.
    #[arg(long, default_value = "cruxeval-o")]
    bench: String,
    /// Read the evaluation data from this folder, laid out like the repository's `data/`
    /// (`code/cruxeval.jsonl`, `math/gsm8k.jsonl`, ...). Default: the copy built into azr.
    #[arg(long)]
    data: Option<PathBuf>,
    /// At most this many problems per benchmark.
    #[arg(long)]
    limit: Option<usize>,
    /// With --limit: draw the problems at random with this seed (default: the first ones).
    #[arg(long)]
    sample_seed: Option<u64>,
    /// Folder for `summary.json` and `problems.jsonl` (one line per problem: prompt, response,
    /// extracted answer, verdict and why).
    #[arg(long, default_value = "eval-out")]
    out: PathBuf,
    /// Longest response, in tokens.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Prompts generated together.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Use the plain "User: ... Assistant:" prompt even when the model has a chat template.
    #[arg(long)]
    plain: bool,
    /// Tokens the model may write after the environment opened its answer (scaffolded
    /// decoding, as in training: a response that ends, or thinks past max-tokens minus this,
    /// before answering gets `</think>`, `<answer>` and the answer's fence appended).
    #[arg(long, default_value_t = 128)]
    answer_budget: usize,
    /// No scaffolding: score only what the model writes by itself.
    #[arg(long)]
    no_scaffold: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    match &args.command {
        Some(EvalCommand::Compare(c)) => run_compare(c),
        None => run_eval(&args.run),
    }
}

fn run_compare(args: &CompareArgs) -> Result<()> {
    let read = |dir: &Path, which: &str| {
        // The error names the folder or the file.
        compare::read_dir(dir).with_context(|| format!("run {which}"))
    };
    let (a, b) = (read(&args.dir_a, "A")?, read(&args.dir_b, "B")?);
    let resamples = usize::try_from(args.resamples).context("--resamples")?;
    let cmp = compare::compare(&a, &b, resamples, args.seed).with_context(|| {
        format!(
            "comparing {} with {}",
            args.dir_a.display(),
            args.dir_b.display()
        )
    })?;
    if args.json {
        let run = |dir: &Path, info: &RunInfo| serde_json::json!({"dir": dir, "info": info});
        let mut out = serde_json::json!({
            "a": run(&args.dir_a, &a.info),
            "b": run(&args.dir_b, &b.info),
        });
        let fields = serde_json::to_value(&cmp).context("serializing the comparison")?;
        if let (Some(out), serde_json::Value::Object(fields)) = (out.as_object_mut(), fields) {
            out.extend(fields);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let describe = |info: &RunInfo| {
            let limit = info
                .limit
                .map_or("all problems".into(), |n| format!("limit {n}"));
            let seed = info
                .sample_seed
                .map_or(String::new(), |s| format!(", sample seed {s}"));
            format!("{} prompts, {limit}{seed}", info.rendering)
        };
        println!("A: {} ({})", args.dir_a.display(), describe(&a.info));
        println!("B: {} ({})", args.dir_b.display(), describe(&b.info));
        print!("{}", cmp.table());
    }
    Ok(())
}

fn run_eval(args: &RunArgs) -> Result<()> {
    let ids = BenchmarkId::parse_list(&args.bench).map_err(|e| anyhow::anyhow!("{e}"))?;
    let data = args
        .data
        .clone()
        .map_or(DataSource::Builtin, DataSource::Dir);
    let benchmarks = ids
        .iter()
        .map(|id| Benchmark::load_default(*id, &data).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let path = resolve_model(&args.model, &mut |msg| eprintln!("{msg}"))?;
    let lm = azr_model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let executor = Executor::new(args.exec.config())?;

    let chat = ChatBridge(&lm.tokenizer);
    let template = if args.plain {
        Template::Plain
    } else {
        Template::Auto
    };
    let rendering = rendering(template, &chat)?;
    let options = EvalOptions {
        rendering,
        limit: args.limit,
        sample_seed: args.sample_seed,
        batch_size: args.batch.max(1),
        ..EvalOptions::default()
    };
    let mut policy = GreedyEval {
        model: &lm.model,
        tokenizer: &lm.tokenizer,
        max_new_tokens: args.max_tokens,
        scaffold: (!args.no_scaffold).then(|| ScaffoldConfig {
            think: azr_core::ThinkMode::Required,
            think_budget: args.max_tokens.saturating_sub(args.answer_budget + 16),
            answer_budget: args.answer_budget,
            plain: matches!(rendering, Rendering::Plain),
            // benchmarks ask solver roles only; a proposer's scaffold is never built here
            induction_inputs: azr_core::ParseConfig::default().induction_inputs,
            entry_header: false,
        }),
        batch: args.batch.max(1),
    };

    let started = std::time::Instant::now();
    // Without a terminal the bar is hidden: a log line a minute stands in for it, so a log of
    // an hour-long evaluation still shows that it is moving and how far it is.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_line = started;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report =
        evaluate_with_progress(
            &benchmarks,
            &mut policy,
            &executor,
            &options,
            &mut |p| match p {
                Progress::Generated {
                    benchmark,
                    done,
                    total,
                } => {
                    bar.set_message(benchmark.name());
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                    if !tty && last_line.elapsed().as_secs() >= 60 {
                        last_line = std::time::Instant::now();
                        tracing::info!(
                            "{}: {done} of {total} generated, {:.0} s since the start",
                            benchmark.name(),
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
                // A line per benchmark, also where the bar is hidden (logs, nohup runs).
                Progress::Checked { benchmark, n } => bar.suspend(|| {
                    tracing::info!(
                        "{}: {n} problems generated and checked, {:.0} s since the start",
                        benchmark.name(),
                        started.elapsed().as_secs_f64()
                    )
                }),
            },
        )?;
    bar.finish_and_clear();

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let summary = args.out.join("summary.json");
    let problems = args.out.join("problems.jsonl");
    report
        .write_files(&summary, &problems)
        .map_err(|e| anyhow::anyhow!("writing the report: {e}"))?;
    println!("{}", report.table());
    println!("wrote {} and {}", summary.display(), problems.display());
    Ok(())
}
