//! `azr bench rollout`: the rollouts of one recorded self-play step, replayed.
//!
//! A run's `samples/step-N.jsonl` holds every trained response of step N with its rendered
//! prompt and its length in tokens. The bench generates, for each of them, exactly that many
//! sampled tokens from that prompt (no stop: the lengths are the recorded ones), in length-sorted
//! batches of the run's `sampling.batch`, as `azr train` does, with the run's model. Each engine
//! setting replays the same rows with the same seeds:
//! - `shared`: rows with the same prompt prefill it once, and each batch prefills its prompts'
//!   common prefix once (what `azr train` runs);
//! - `unshared`: every row prefills its whole prompt (the engine before the sharing);
//! - `llama.cpp` (the anchor, when the model is a GGUF): llama.cpp through llama-cpp-python,
//!   the same rows one at a time (its Python binding has no parallel slots) with the same
//!   number of threads, each generating its recorded length at temperature 1 (`--no-anchor`
//!   skips it; its venv is `azr bench generate`'s).
//!
//! The learnability samples (n per valid proposal) are not recorded, so a real step generates
//! more rows than the replay, and those rows share their prompt four by four.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use azr_model::{
    generate_with_options, load, resolve_model, row_seeds, FinishReason, GenerateOptions, Phase,
    SamplingParams, Steer,
};
use clap::Args;

use super::{peak_rss_mib, reset_peak_rss, table};

#[derive(Args, Debug)]
pub struct RolloutBenchArgs {
    /// A recorded step: a run's `samples/step-N.jsonl`.
    samples: PathBuf,
    /// The model (default: the run's, from the `config.toml` two folders up).
    #[arg(long)]
    model: Option<String>,
    /// Rows per generation batch (default: the run's `sampling.batch`).
    #[arg(long)]
    batch: Option<usize>,
    /// Skip the llama.cpp anchor (and its one-time install).
    #[arg(long)]
    no_anchor: bool,
}

/// llama.cpp on the same rows, one at a time: prefill, then exactly the recorded number of
/// tokens (temperature 1, no truncation, EOS not a stop). Prints one JSON object.
const LLAMA_CPP_SCRIPT: &str = r#"
import json, sys, time
from llama_cpp import Llama
path, rows_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = json.load(open(rows_file))
llm = Llama(model_path=path, n_ctx=4096, n_threads=threads, n_threads_batch=threads,
            verbose=False, seed=0)
prefill = decode = 0.0
prompt_tokens = generated = 0
t0 = time.perf_counter()
for prompt, n in rows:
    toks = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    gen = llm.generate(toks, temp=1.0, top_k=0, top_p=1.0, min_p=0.0, reset=True)
    a = time.perf_counter(); next(gen); b = time.perf_counter()
    got = 1
    while got < n:
        next(gen); got += 1
    c = time.perf_counter()
    prefill += b - a; decode += c - b
    prompt_tokens += len(toks); generated += got
total = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"prompt_tokens": prompt_tokens, "prefill_s": prefill, "decode_s": decode,
                  "total_s": total, "generated": generated, "peak_rss_mib": int(hwm) / 1024}))
"#;

/// The anchor's row, or a row saying why it is missing.
fn llama_cpp_row(gguf: &Path, recorded: &[Recorded], lengths: &[usize]) -> Vec<String> {
    let measured = || -> Result<Vec<String>> {
        let rows: Vec<(&str, usize)> = recorded
            .iter()
            .zip(lengths)
            .map(|(r, &n)| (r.prompt.as_str(), n))
            .collect();
        let file = std::env::temp_dir().join(format!("azr-rollout-{}.json", std::process::id()));
        std::fs::write(&file, serde_json::to_vec(&rows)?)
            .with_context(|| format!("writing {}", file.display()))?;
        let threads = candle_core::utils::get_num_threads();
        let v = super::generate::run_llama_cpp(
            LLAMA_CPP_SCRIPT,
            &[
                gguf.as_os_str(),
                file.as_os_str(),
                threads.to_string().as_ref(),
            ],
        );
        let _ = std::fs::remove_file(&file);
        let v = v?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Ok(vec![
            "llama.cpp, one at a time (anchor)".into(),
            format!("{:.0}", f("prompt_tokens")),
            format!("{:.1}", f("prefill_s")),
            format!("{:.1}", f("decode_s")),
            format!("{:.1}", f("total_s")),
            format!("{:.0}", recorded.len() as f64 * 3600.0 / f("total_s")),
            format!("{:.1}", f("generated") / f("total_s")),
            format!("{:.0}", f("peak_rss_mib")),
        ])
    };
    measured().unwrap_or_else(|e| {
        eprintln!("llama.cpp anchor: {e:#}");
        let mut row = vec!["llama.cpp, one at a time (anchor)".to_string()];
        row.extend(std::iter::repeat_n("failed".to_string(), 7));
        row
    })
}

/// One recorded rollout: its prompt and how many tokens it generated.
struct Recorded {
    prompt: String,
    tokens: usize,
}

fn read_samples(path: &Path) -> Result<Vec<Recorded>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = vec![];
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        if v["kind"] != "response" {
            continue;
        }
        let (Some(prompt), Some(tokens)) = (v["prompt"].as_str(), v["tokens"].as_u64()) else {
            bail!(
                "{}:{}: a response without `prompt` and `tokens` (not a run's samples file?)",
                path.display(),
                i + 1
            );
        };
        out.push(Recorded {
            prompt: prompt.to_string(),
            tokens: tokens as usize,
        });
    }
    if out.is_empty() {
        bail!("{} holds no responses", path.display());
    }
    Ok(out)
}

/// The run's model name and sampling batch, from `samples/../config.toml`.
fn run_config(samples: &Path) -> Result<(String, usize)> {
    let config = samples
        .parent()
        .and_then(Path::parent)
        .map(|run| run.join("config.toml"))
        .context("the samples file is not inside a run directory")?;
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {} (or give --model and --batch)", config.display()))?;
    let v: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", config.display()))?;
    let model = v["model"]["name"]
        .as_str()
        .with_context(|| format!("{}: no model.name", config.display()))?;
    let batch = v["sampling"]["batch"]
        .as_integer()
        .with_context(|| format!("{}: no sampling.batch", config.display()))?;
    Ok((model.to_string(), batch.max(1) as usize))
}

/// Each row generates exactly its recorded number of tokens.
struct Lengths(Vec<usize>);

impl Steer for Lengths {
    fn start(&self, row: usize) -> Phase {
        Phase {
            budget: self.0[row],
            stop_strings: vec![],
        }
    }

    fn on_stop(&self, _: usize, _: &str, _: &FinishReason) -> Option<(String, Phase)> {
        None
    }
}

pub fn run(args: &RolloutBenchArgs) -> Result<()> {
    let recorded = read_samples(&args.samples)?;
    let (model, batch) = match (&args.model, args.batch) {
        (Some(m), Some(b)) => (m.clone(), b.max(1)),
        _ => {
            let (m, b) = run_config(&args.samples)?;
            (
                args.model.clone().unwrap_or(m),
                args.batch.unwrap_or(b).max(1),
            )
        }
    };
    let path = resolve_model(&model, &mut |m| eprintln!("{m}"))?;
    let lm = load(&path)?;
    let prompts = recorded
        .iter()
        .map(|r| lm.tokenizer.encode(&r.prompt, false))
        .collect::<Result<Vec<_>>>()?;
    let lengths: Vec<usize> = recorded.iter().map(|r| r.tokens.max(1)).collect();
    let max_new = lengths.iter().copied().max().unwrap_or(1);
    let params = SamplingParams {
        max_new_tokens: max_new,
        ..SamplingParams::default()
    };
    let seeds = row_seeds(0, prompts.len());
    let mut order: Vec<usize> = (0..prompts.len()).collect();
    order.sort_by_key(|&i| prompts[i].len());
    let distinct = prompts
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!(
        "{}: {} rollouts ({distinct} distinct prompts, {} prompt tokens, {} generated tokens) \
         in batches of {batch}, {} threads",
        path.display(),
        prompts.len(),
        prompts.iter().map(Vec::len).sum::<usize>(),
        lengths.iter().sum::<usize>(),
        candle_core::utils::get_num_threads()
    );
    // Warm-up: first-touch page faults and thread-pool start-up are not throughput.
    let warm = SamplingParams {
        max_new_tokens: 2,
        ..params.clone()
    };
    generate_with_options(
        &lm.model,
        None,
        &prompts[..1],
        &warm,
        &[0],
        None,
        &GenerateOptions::default(),
    )?;
    let mut rows = vec![];
    let mut outputs = vec![];
    for share_prefill in [false, true] {
        let options = GenerateOptions {
            share_prefill,
            ..GenerateOptions::default()
        };
        reset_peak_rss();
        let (mut computed, mut prefill_s, mut decode_s, mut generated) = (0, 0.0, 0.0, 0);
        let mut tokens: Vec<(Vec<u32>, Vec<f32>)> = vec![Default::default(); prompts.len()];
        let started = Instant::now();
        for chunk in order.chunks(batch) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
            let row_seeds: Vec<u64> = chunk.iter().map(|&i| seeds[i]).collect();
            let steer = Lengths(chunk.iter().map(|&i| lengths[i]).collect());
            let (gens, stats) = generate_with_options(
                &lm.model,
                Some(&lm.tokenizer),
                &rows,
                &params,
                &row_seeds,
                Some(&steer),
                &options,
            )?;
            computed += stats.prefill_computed;
            prefill_s += stats.prefill_secs;
            decode_s += stats.decode_secs;
            for (&i, g) in chunk.iter().zip(gens) {
                generated += g.tokens.len();
                tokens[i] = (g.tokens, g.logprobs);
            }
        }
        let secs = started.elapsed().as_secs_f64();
        outputs.push(tokens);
        let row = vec![
            if share_prefill {
                "azr, shared prefill"
            } else {
                "azr, unshared prefill"
            }
            .to_string(),
            computed.to_string(),
            format!("{prefill_s:.1}"),
            format!("{decode_s:.1}"),
            format!("{secs:.1}"),
            format!("{:.0}", prompts.len() as f64 * 3600.0 / secs),
            format!("{:.1}", generated as f64 / secs),
            peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}")),
        ];
        eprintln!("{}", row.join("  "));
        rows.push(row);
    }
    let is_gguf = path.extension().is_some_and(|e| e == "gguf");
    if !args.no_anchor && is_gguf {
        let row = llama_cpp_row(&path, &recorded, &lengths);
        eprintln!("{}", row.join("  "));
        rows.push(row);
    }
    // Sharing is an engine detail: the same seeds give the same samples up to float rounding
    // (batches of other shapes sum in another order), which can flip a sampled token and
    // with it the rest of the row.
    let mut same = 0;
    let mut drift = 0f32;
    for ((a, alp), (b, blp)) in outputs[0].iter().zip(&outputs[1]) {
        same += usize::from(a == b);
        let agree = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        for (x, y) in alp.iter().zip(blp).take(agree) {
            drift = drift.max((x - y).abs());
        }
    }
    print!(
        "{}",
        table(
            &[
                "engine",
                "prompt tokens run",
                "prefill s",
                "decode s",
                "total s",
                "rollouts/hour",
                "generated tok/s",
                "peak RSS MiB",
            ],
            &rows
        )
    );
    println!(
        "{same} of {} rollouts identical with and without sharing; max |log-prob difference| \
         of a token both sampled alike: {drift:.1e}",
        prompts.len()
    );
    Ok(())
}
