//! `azr bench train`: one policy-gradient update (forward, backward, AdamW) on a real model at
//! several `rows x tokens` shapes: tokens/s and peak RSS, and where the time goes.
//!
//! Each row is one prompt token followed by `tokens - 1` response tokens (sampled ids from a
//! fixed seed), advantages +-1, so every position is trained, as in the PyTorch anchor. tokens/s
//! counts all `rows x tokens` positions per second of a full update (median of `--steps` after
//! one warm-up update). Each shape runs in a child process so its peak RSS is its own.
//!
//! The anchor, in the same run: PyTorch on the CPU (f32, as many threads as candle) on the same
//! model and batch shape, through our own plain-PyTorch decoder (`torch_anchor.py`, no
//! transformers) loading the same weights, which azr writes once as a Hugging Face directory into
//! `$XDG_CACHE_HOME/azr/bench/<model>-hf` (else `~/.cache/azr/bench/<model>-hf`). Before timing,
//! the script checks its log-probs on a short row against azr's and fails on a difference of
//! 1e-3 or more, so a wrong anchor shows as an error, not a number. OpenMP waits passively
//! (`OMP_WAIT_POLICY=PASSIVE` unless set): its default spinning makes PyTorch many times slower
//! whenever the machine has other work. PyTorch lives in a private venv,
//! `$XDG_CACHE_HOME/azr/venvs/torch` (else `~/.cache/azr/venvs/torch`); the bench creates it when
//! missing and says so (a one-time install of about 5 GB: PyPI's wheel brings CUDA libraries).
//! `--no-anchor` skips it; `AZR_TORCH_PYTHON` names another interpreter that has `torch` and
//! `safetensors`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use azr_model::checkpoint::{create_dir_atomically, write_hf_files};
use azr_model::train::response_logprobs;
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
    /// Recompute each layer in the backward instead of keeping its activations (less memory,
    /// slower).
    #[arg(long)]
    recompute: bool,
    /// Skip the PyTorch anchor (and its one-time install).
    #[arg(long)]
    no_anchor: bool,
    /// Also measure LoRA updates of this rank (all seven linear layers of every block; the
    /// base frozen). 0: only full fine-tuning.
    #[arg(long, default_value_t = 0)]
    lora_rank: usize,
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
        recompute: args.recompute,
        lora: azr_model::LoraConfig {
            rank: args.lora_rank,
            ..Default::default()
        },
        ..TrainConfig::default()
    }
}

/// Runs one measurement in a child process (a fresh heap, so peak RSS is this shape's).
fn measure_in_child(
    exe: &Path,
    args: &TrainBenchArgs,
    shape: &str,
    lora_rank: usize,
) -> Result<serde_json::Value> {
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "train", "--model", &args.model, "--child", shape]);
    cmd.args(["--steps", &args.steps.to_string()]);
    cmd.args(["--micro-batch-tokens", &args.micro_batch_tokens.to_string()]);
    cmd.args(["--lora-rank", &lora_rank.to_string()]);
    if args.recompute {
        cmd.arg("--recompute");
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
    serde_json::from_str(line).context("measurement output")
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
            sampled: vec![],
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

/// The PyTorch the anchor installs.
const TORCH: &str = "torch==2.15.0";
const SAFETENSORS: &str = "safetensors==0.8.0";

/// The anchor: our plain-PyTorch decoder and update (see the file's header).
const TORCH_SCRIPT: &str = include_str!("torch_anchor.py");

/// The row the anchor's log-probs are checked on: prompt and response lengths.
const CHECK_PROMPT: usize = 4;
const CHECK_RESPONSE: usize = 60;

/// `$XDG_CACHE_HOME`, else `~/.cache`.
fn cache_base() -> Result<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .context("no XDG_CACHE_HOME or HOME for the PyTorch anchor's cache")
}

/// An interpreter with `torch` and `safetensors`, installing them into the private venv when
/// missing.
fn torch_python() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("AZR_TORCH_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let venv = cache_base()?.join("azr").join("venvs").join("torch");
    let python = venv.join("bin").join("python");
    let has_it = |py: &Path| {
        Command::new(py)
            .args(["-c", "import torch, safetensors"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_it(&python) {
        return Ok(python);
    }
    eprintln!(
        "installing {TORCH} and {SAFETENSORS} into {} for the PyTorch anchor: a one-time \
         install of about 5 GB (PyPI's torch wheel brings CUDA libraries); --no-anchor skips it, \
         AZR_TORCH_PYTHON names an interpreter that has torch",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv")?;
    anyhow::ensure!(
        status.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--no-cache-dir", TORCH, SAFETENSORS])
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("running pip install torch")?;
    anyhow::ensure!(
        status.success() && has_it(&python),
        "installing {TORCH} into {} failed (see pip's output above)",
        venv.display()
    );
    Ok(python)
}

/// What the anchor runs with: the interpreter, the model as a Hugging Face directory, and the
/// check row with azr's log-probs (JSON).
struct Anchor {
    python: PathBuf,
    hf_dir: PathBuf,
    check: String,
}

/// Identifies the model file the Hugging Face copy was written from (path, size, mtime), so a
/// replaced model is written again.
fn source_key(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(format!("{} {} {mtime}\n", canonical.display(), meta.len()))
}

/// The marker file in the Hugging Face copy naming its source.
const SOURCE_FILE: &str = "azr-source.txt";

/// Installs PyTorch when missing, writes the model as a Hugging Face directory when not yet
/// there, and computes azr's log-probs on the check row.
fn prepare_anchor(model: &Path) -> Result<Anchor> {
    let python = torch_python()?;
    let lm = load(model)?;
    let name = model
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let hf_dir = cache_base()?
        .join("azr")
        .join("bench")
        .join(format!("{name}-hf"));
    let key = source_key(model)?;
    let complete = ["config.json", "model.safetensors"]
        .iter()
        .all(|f| hf_dir.join(f).is_file())
        && std::fs::read_to_string(hf_dir.join(SOURCE_FILE)).is_ok_and(|k| k == key);
    if !complete {
        if hf_dir.exists() {
            std::fs::remove_dir_all(&hf_dir)
                .with_context(|| format!("removing the stale {}", hf_dir.display()))?;
        }
        eprintln!(
            "writing {} as a Hugging Face directory for the PyTorch anchor: {}",
            model.display(),
            hf_dir.display()
        );
        std::fs::create_dir_all(hf_dir.parent().context("no parent")?)?;
        create_dir_atomically(&hf_dir, |tmp| {
            write_hf_files(&lm.model, &lm.tokenizer, tmp)?;
            std::fs::write(tmp.join(SOURCE_FILE), &key)?;
            Ok(())
        })?;
    }
    let vocab = lm.config().vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(0..vocab)).collect() };
    let (prompt, response) = (ids(CHECK_PROMPT), ids(CHECK_RESPONSE));
    let logprobs = response_logprobs(&lm.model, &[(prompt.clone(), response.clone())])?
        .pop()
        .context("no log-probs for the check row")?;
    let check = serde_json::json!({
        "prompt": prompt,
        "response": response,
        "logprobs": logprobs,
    })
    .to_string();
    Ok(Anchor {
        python,
        hf_dir,
        check,
    })
}

/// Runs the anchor on one shape in a child process: its JSON result.
fn measure_torch(anchor: &Anchor, shape: &str, steps: usize) -> Result<serde_json::Value> {
    let (rows, tokens) = parse_shape(shape)?;
    let mut cmd = Command::new(&anchor.python);
    // OpenMP's default is to spin-wait between parallel regions: on a machine with other work
    // on it that makes PyTorch many times slower (10x and more seen on 2 busy cores), which
    // would measure the machine, not PyTorch. Passive waiting unless the caller chose.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        cmd.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    let out = cmd
        .arg("-c")
        .arg(TORCH_SCRIPT)
        .arg("--model-dir")
        .arg(&anchor.hf_dir)
        .args(["--rows", &rows.to_string(), "--tokens", &tokens.to_string()])
        .args(["--steps", &steps.to_string()])
        .args([
            "--threads",
            &candle_core::utils::get_num_threads().to_string(),
        ])
        .args(["--check", &anchor.check])
        .output()
        .with_context(|| {
            format!(
                "running the PyTorch anchor with {}",
                anchor.python.display()
            )
        })?;
    anyhow::ensure!(
        out.status.success(),
        "the PyTorch anchor failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .last()
        .context("the PyTorch anchor printed nothing")?;
    serde_json::from_str(line).context("reading the PyTorch anchor's result")
}

pub fn run(args: &TrainBenchArgs) -> Result<()> {
    if let Some(shape) = &args.child {
        return measure(args, shape);
    }
    for s in &args.shapes {
        parse_shape(s)?;
    }
    // Fetch once up front, in this process, so children do not race on the download.
    let path = resolve_model(&args.model, &mut |m| eprintln!("{m}"))?;
    let anchor = if args.no_anchor {
        None
    } else {
        Some(prepare_anchor(&path).map_err(|e| format!("{e:#}")))
    };
    let exe = std::env::current_exe().context("locating the azr binary")?;
    let mut rows = Vec::new();
    let mut profile = Vec::new();
    let mut notes = Vec::new();
    for shape in &args.shapes {
        eprintln!("azr (candle, f32): {shape} ...");
        let v = measure_in_child(&exe, args, shape, 0)?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let st = &v["stats"];
        let torch = anchor.as_ref().map(|a| {
            eprintln!("PyTorch (f32): {shape} ...");
            a.as_ref()
                .map_err(Clone::clone)
                .and_then(|a| measure_torch(a, shape, args.steps).map_err(|e| format!("{e:#}")))
        });
        let ratio = match &torch {
            Some(Ok(t)) => format!(
                "{:.2}x",
                f("tokens_per_s") / t["tokens_per_s"].as_f64().unwrap_or(f64::NAN)
            ),
            _ => "-".into(),
        };
        rows.push(azr_row("azr (candle, f32)".into(), shape, &v, ratio));
        match torch {
            None => {}
            Some(Ok(t)) => {
                let tf = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
                let version = t["torch"].as_str().unwrap_or("?");
                rows.push(vec![
                    format!("PyTorch {version} (f32)"),
                    shape.clone(),
                    format!("{:.0}", tf("tokens_per_s")),
                    format!("{:.2}", tf("secs")),
                    format!("{:.0}", tf("peak_rss_mib")),
                    "1.00x".into(),
                ]);
                notes.push(format!(
                    "PyTorch {version} at {shape}: {} threads, OMP_WAIT_POLICY={}, AdamW {}; \
                     log-probs vs azr on a {}-token row: max |diff| {:.1e} (limit 1e-3)",
                    t["threads"],
                    t["omp_wait_policy"].as_str().unwrap_or("unset"),
                    t["optimizer"].as_str().unwrap_or("?"),
                    t["check_tokens"],
                    tf("check_max_abs_diff"),
                ));
            }
            Some(Err(e)) => {
                eprintln!("PyTorch anchor at {shape}: {e}");
                rows.push(vec![
                    "PyTorch (f32)".into(),
                    shape.clone(),
                    "failed".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                notes.push(format!("PyTorch anchor at {shape} failed: {e}"));
            }
        }
        profile.push(profile_row(shape.clone(), st));
        if args.lora_rank > 0 {
            let label = format!("azr (candle, f32, LoRA r={})", args.lora_rank);
            eprintln!("{label}: {shape} ...");
            let v = measure_in_child(&exe, args, shape, args.lora_rank)?;
            // PyTorch does full fine-tuning: not the same work, so no ratio.
            rows.push(azr_row(label, shape, &v, "-".into()));
            profile.push(profile_row(
                format!("{shape} LoRA r={}", args.lora_rank),
                &v["stats"],
            ));
        }
    }
    print!(
        "{}",
        table(
            &[
                "engine",
                "rows x tokens",
                "tokens/s",
                "s/update",
                "peak RSS MiB",
                "speed vs PyTorch"
            ],
            &rows
        )
    );
    for note in &notes {
        println!("{note}");
    }
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

/// One azr row of the main table from a measurement child's output.
fn azr_row(label: String, shape: &str, v: &serde_json::Value, ratio: String) -> Vec<String> {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    vec![
        label,
        shape.to_string(),
        format!("{:.0}", f("tokens_per_s")),
        format!("{:.2}", f("secs")),
        format!("{:.0}", f("peak_rss_mib")),
        ratio,
    ]
}

fn profile_row(label: String, st: &serde_json::Value) -> Vec<String> {
    let g = |k: &str| st[k].as_f64().unwrap_or(f64::NAN);
    vec![
        label,
        format!("{:.2}", g("forward_secs")),
        format!("{:.2}", g("head_secs")),
        format!("{:.2}", g("backward_secs")),
        format!("{:.2}", g("optimizer_secs")),
        format!("{}", st["micro_batches"].as_u64().unwrap_or(0)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse() {
        assert_eq!(parse_shape("8x256").unwrap(), (8, 256));
        assert_eq!(parse_shape(" 2 x 16 ").unwrap(), (2, 16));
        assert!(parse_shape("8").is_err());
        assert!(parse_shape("0x16").is_err());
        assert!(parse_shape("8x1").is_err());
    }

    /// The embedded anchor script is valid Python (it needs torch only to run).
    #[test]
    fn anchor_script_parses() {
        let out = Command::new("python3")
            .args([
                "-c",
                "import ast, sys; ast.parse(sys.argv[1])",
                TORCH_SCRIPT,
            ])
            .output()
            .expect("running python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
