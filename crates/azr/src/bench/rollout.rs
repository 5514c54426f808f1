//! `azr bench rollout`: the rollouts of one recorded self-play step, replayed.
//!
//! A run's `samples/step-N.jsonl` holds every trained response of step N with its rendered
//! prompt and its length in tokens. The bench generates, for each of them, exactly that many
//! sampled tokens from that prompt (no stop: the lengths are the recorded ones), in length-sorted
//! batches of the run's `sampling.batch`, as `azr train` does, with the run's model. Each engine
//! setting replays the same rows with the same seeds:
//! - `shared`: rows with the same prompt prefill it once, and each batch prefills its prompts'
//!   common prefix once (what `azr train` runs);
//! - `unshared`: every row prefills its whole prompt (the engine before the sharing; the anchor).
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
                "shared"
            } else {
                "unshared (anchor)"
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
                "prefill",
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
