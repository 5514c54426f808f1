//! `azr bench train`: one policy-gradient update (forward, backward, AdamW) on a real model at
//! several `rows x tokens` shapes: tokens/s and peak RSS, and where the time goes.
//!
//! Each row is one prompt token followed by `tokens - 1` response tokens (sampled ids from a
//! fixed seed), advantages +-1, so every position is trained, as in the PyTorch anchor. tokens/s
//! counts all `rows x tokens` positions per second of a full update (median of `--steps` after
//! one warm-up update). Each shape runs in a child process so its peak RSS is its own.

use std::process::Command;

use anyhow::{bail, Context, Result};
use azr_model::{load, resolve_model, TrainConfig, TrainRow, TrainStats, Trainer, DEFAULT_MODEL};
use clap::Args;
use rand::{Rng, SeedableRng};

use super::{peak_rss_mib, quantile, table};

#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    /// A named model, a GGUF file, or a Hugging Face directory.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Shapes to measure, as ROWSxTOKENS.
    #[arg(long, value_delimiter = ',', default_value = "8x256,8x1024")]
    shapes: Vec<String>,
    /// Timed updates per shape (after one warm-up update).
    #[arg(long, default_value_t = 2)]
    steps: usize,
    /// Padded tokens per micro-batch.
    #[arg(long, default_value_t = TrainConfig::default().micro_batch_tokens)]
    micro_batch_tokens: usize,
    /// Keep every layer's graph instead of recomputing it in the backward.
    #[arg(long)]
    no_recompute: bool,
    /// Internal: measure one shape in this process and print JSON.
    #[arg(long, hide = true)]
    child: Option<String>,
}

fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let (r, t) = s
        .split_once('x')
        .with_context(|| format!("shape {s:?} is not ROWSxTOKENS"))?;
    let (r, t): (usize, usize) = (
        r.trim().parse().with_context(|| format!("shape {s:?}"))?,
        t.trim().parse().with_context(|| format!("shape {s:?}"))?,
    );
    if r == 0 || t < 2 {
        bail!("shape {s:?}: need at least 1 row of 2 tokens");
    }
    Ok((r, t))
}

fn train_config(args: &TrainBenchArgs) -> TrainConfig {
    TrainConfig {
        micro_batch_tokens: args.micro_batch_tokens,
        recompute: !args.no_recompute,
        ..TrainConfig::default()
    }
}

/// Child: one shape, printed as one JSON line.
fn measure(args: &TrainBenchArgs, shape: &str) -> Result<()> {
    let (rows_n, tokens) = parse_shape(shape)?;
    let path = resolve_model(&args.model, &mut |m| eprintln!("{m}"))?;
    let lm = load(&path)?;
    let vocab = lm.config().vocab_size as u32;
    let mut trainer = Trainer::new(lm.model, train_config(args))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let rows: Vec<TrainRow> = (0..rows_n)
        .map(|i| TrainRow {
            prompt: vec![rng.gen_range(0..vocab)],
            response: (1..tokens).map(|_| rng.gen_range(0..vocab)).collect(),
            old_logprobs: vec![],
            advantage: if i % 2 == 0 { 1.0 } else { -1.0 },
        })
        .collect();
    trainer.step(&rows)?;
    let mut all: Vec<TrainStats> = Vec::new();
    for _ in 0..args.steps.max(1) {
        all.push(trainer.step(&rows)?);
    }
    let secs: Vec<f64> = all.iter().map(|s| s.secs).collect();
    let med = quantile(&secs, 0.5);
    let pick = all
        .iter()
        .min_by(|a, b| (a.secs - med).abs().total_cmp(&(b.secs - med).abs()))
        .context("no step measured")?;
    let out = serde_json::json!({
        "shape": shape,
        "tokens_per_s": (rows_n * tokens) as f64 / med,
        "secs": med,
        "peak_rss_mib": peak_rss_mib(),
        "stats": pick,
    });
    println!("{out}");
    Ok(())
}

pub fn run(args: &TrainBenchArgs) -> Result<()> {
    if let Some(shape) = &args.child {
        return measure(args, shape);
    }
    for s in &args.shapes {
        parse_shape(s)?;
    }
    // Fetch once up front, in this process, so children do not race on the download.
    resolve_model(&args.model, &mut |m| eprintln!("{m}"))?;
    let exe = std::env::current_exe().context("locating the azr binary")?;
    let mut rows = Vec::new();
    let mut profile = Vec::new();
    for shape in &args.shapes {
        eprintln!("azr (candle, f32): {shape} ...");
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "train", "--model", &args.model, "--child", shape]);
        cmd.args(["--steps", &args.steps.to_string()]);
        cmd.args(["--micro-batch-tokens", &args.micro_batch_tokens.to_string()]);
        if args.no_recompute {
            cmd.arg("--no-recompute");
        }
        let out = cmd.output().context("running the measurement child")?;
        if !out.status.success() {
            bail!(
                "measuring {shape} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .last()
            .context("the measurement printed nothing")?;
        let v: serde_json::Value = serde_json::from_str(line).context("measurement output")?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let st = &v["stats"];
        let g = |k: &str| st[k].as_f64().unwrap_or(f64::NAN);
        rows.push(vec![
            "azr (candle, f32)".to_string(),
            shape.clone(),
            format!("{:.0}", f("tokens_per_s")),
            format!("{:.2}", f("secs")),
            format!("{:.0}", f("peak_rss_mib")),
        ]);
        profile.push(vec![
            shape.clone(),
            format!("{:.2}", g("forward_secs")),
            format!("{:.2}", g("head_secs")),
            format!("{:.2}", g("backward_secs")),
            format!("{:.2}", g("optimizer_secs")),
            format!("{}", st["micro_batches"].as_u64().unwrap_or(0)),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "engine",
                "rows x tokens",
                "tokens/s",
                "s/update",
                "peak RSS MiB"
            ],
            &rows
        )
    );
    println!();
    print!(
        "{}",
        table(
            &[
                "rows x tokens",
                "forward s",
                "LM head fwd+bwd s",
                "layers bwd s",
                "AdamW s",
                "micro-batches"
            ],
            &profile
        )
    );
    Ok(())
}
