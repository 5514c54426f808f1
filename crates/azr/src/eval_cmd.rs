//! `azr eval`: score a model on the paper's benchmarks, offline, greedy pass@1.

use std::path::PathBuf;

use anyhow::{Context, Result};
use azr_core::prompt::{ChatMessage as CoreMessage, ChatRole, Rendering};
use azr_eval::{evaluate_with_progress, Benchmark, BenchmarkId, EvalOptions, Progress};
use azr_exec::Executor;
use azr_model::{generate, resolve_model, row_seeds, ChatMessage, LoadedModel, SamplingParams};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::ExecArgs;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A known model name (`azr model list`), a GGUF file, or a Hugging Face directory.
    #[arg(long, default_value = azr_model::DEFAULT_MODEL)]
    model: String,
    /// Benchmarks, comma-separated: cruxeval-o, cruxeval-i, humaneval, mbppplus, gsm8k, math500,
    /// aime24, aime25, amc23, minerva, olympiadbench, or the groups code, math, cruxeval, all.
    #[arg(long, default_value = "cruxeval-o")]
    bench: String,
    /// Folder holding the evaluation data (`code/cruxeval.jsonl`, `math/gsm8k.jsonl`, ...).
    #[arg(long, default_value = "../shared/data")]
    data: PathBuf,
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
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let ids = BenchmarkId::parse_list(&args.bench).map_err(|e| anyhow::anyhow!("{e}"))?;
    let benchmarks = ids
        .iter()
        .map(|id| Benchmark::load_default(*id, &args.data).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let path = resolve_model(&args.model, &mut |msg| eprintln!("{msg}"))?;
    let lm = azr_model::load(&path).with_context(|| format!("loading {}", path.display()))?;
    let executor = Executor::new(args.exec.config())?;

    let template = |messages: &[CoreMessage]| chat_prompt(&lm, messages);
    let rendering = if args.plain || lm.tokenizer.chat_template().is_none() {
        Rendering::Plain
    } else {
        // Fail now, clearly, rather than on every prompt.
        lm.tokenizer
            .apply_chat_template(&[ChatMessage::new("user", "hi")], true)
            .context("the model's chat template does not render (pass --plain)")?;
        Rendering::Chat(&template)
    };
    let options = EvalOptions {
        rendering,
        limit: args.limit,
        sample_seed: args.sample_seed,
        batch_size: args.batch.max(1),
        ..EvalOptions::default()
    };
    let params = SamplingParams {
        stop_token_ids: lm.config().eos_token_ids.clone(),
        stop_strings: vec!["</answer>".into()],
        ..SamplingParams::greedy(args.max_tokens)
    };
    let mut policy = |prompts: &[String]| -> Result<Vec<String>, azr_core::policy::PolicyError> {
        let ids = prompts
            .iter()
            .map(|p| lm.tokenizer.encode(p, false))
            .collect::<Result<Vec<_>>>()?;
        let out = generate(
            &lm.model,
            Some(&lm.tokenizer),
            &ids,
            &params,
            &row_seeds(0, ids.len()),
        )?;
        Ok(out
            .iter()
            .map(|g| lm.tokenizer.decode(&g.tokens, true))
            .collect::<Result<Vec<_>>>()?)
    };

    let started = std::time::Instant::now();
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

/// azr-core's prompts rendered through the model's own chat template.
fn chat_prompt(lm: &LoadedModel, messages: &[CoreMessage]) -> String {
    chat_prompt_with(&lm.tokenizer, messages)
}

/// azr-core's prompts rendered through `tokenizer`'s chat template (checked at start-up: a
/// template that renders "hi" renders these too, so an error here renders as empty text).
pub fn chat_prompt_with(tokenizer: &azr_model::Tokenizer, messages: &[CoreMessage]) -> String {
    let messages: Vec<ChatMessage> = messages
        .iter()
        .map(|m| {
            let role = match m.role {
                ChatRole::System => "system",
                ChatRole::User => "user",
                ChatRole::Assistant => "assistant",
            };
            ChatMessage::new(role, &m.content)
        })
        .collect();
    tokenizer
        .apply_chat_template(&messages, true)
        .unwrap_or_default()
}
