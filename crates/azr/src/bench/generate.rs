//! `azr bench generate`: prefill and decode throughput of batched generation at several batch
//! sizes, with the peak RSS of each.
//!
//! Every row gets the same chat prompt and decodes exactly `--new-tokens` tokens (EOS is not a
//! stop here, so all batch sizes do the same work per row). The rows do not share their prefill
//! here, so that it measures the batched forward; `azr bench rollout` measures the sharing. Decode tok/s counts generated tokens
//! of all rows per second of decode steps (forward + sampling).
//!
//! Rows: our engine with f32 weights and with Q8_0 inference copies (`--weights`), the same f32
//! engine with azr's AVX-512 decode kernels off (`generic`: candle's gemm and a portable attention
//! loop, i.e. the naive-candle baseline), and the anchor,
//! llama.cpp (through llama-cpp-python) on the same GGUF and prompt at batch 1 with the same
//! number of threads. llama-cpp-python lives in a private venv, `$XDG_CACHE_HOME/azr/venvs/
//! llama-cpp` (else `~/.cache/azr/venvs/llama-cpp`); the bench creates it when missing and says
//! so (it compiles llama.cpp: about 4 minutes on 2 cores). `--no-anchor` skips it;
//! `AZR_LLAMA_CPP_PYTHON` names another interpreter that has `llama_cpp`.

use anyhow::{Context, Result};
use azr_core::prompt::{ChatMessage, ChatRole};
use azr_model::{
    generate_with_options, generate_with_stats, load, resolve_model, row_seeds, GenerateOptions,
    SamplingParams, DEFAULT_MODEL,
};
use clap::Args;

use super::{peak_rss_mib, reset_peak_rss, table};

#[derive(Args, Debug)]
pub struct GenerateBenchArgs {
    /// A named model, a GGUF file, or a Hugging Face directory.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8,16,32,64")]
    batch: Vec<usize>,
    /// Tokens generated per row.
    #[arg(long, default_value_t = 64)]
    new_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Engines to measure: f32 (the default), q8 (Q8_0 copies for inference at batch <= 3), and
    /// generic (f32 without azr's AVX-512 decode kernels: the baseline).
    #[arg(long, value_delimiter = ',', default_value = "f32,q8,generic")]
    weights: Vec<String>,
    /// Skip the llama.cpp anchor (and its one-time install).
    #[arg(long)]
    no_anchor: bool,
}

/// The llama.cpp version the anchor installs.
const LLAMA_CPP_PYTHON: &str = "llama-cpp-python==0.3.36";

/// Measures llama.cpp at batch 1: prefill of the prompt, then `n_new` sampled tokens
/// (temperature 1, no truncation, EOS not a stop), timed like ours. Prints one JSON object.
const LLAMA_CPP_SCRIPT: &str = r#"
import json, sys, time
from llama_cpp import Llama
path, prompt, n_new, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
toks = llm.tokenize(prompt.encode(), add_bos=False, special=True)
def run(n):
    llm.reset()
    gen = llm.generate(toks, temp=1.0, top_k=0, top_p=1.0, min_p=0.0, reset=True)
    t0 = time.perf_counter(); next(gen); t1 = time.perf_counter()
    got = 1
    while got < n:
        next(gen); got += 1
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, got
run(4)
prefill, decode, got = run(n_new)
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"prompt_tokens": len(toks), "prefill_s": prefill, "decode_s": decode,
                  "decode_tokens": got - 1, "peak_rss_mib": int(hwm) / 1024}))
"#;

/// An interpreter with `llama_cpp`, installing it into the private venv when missing.
fn llama_cpp_python() -> Result<std::path::PathBuf> {
    use std::process::Command;
    if let Some(p) = std::env::var_os("AZR_LLAMA_CPP_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(p.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
        .context("no XDG_CACHE_HOME or HOME for the llama.cpp venv")?;
    let venv = base.join("azr").join("venvs").join("llama-cpp");
    let python = venv.join("bin").join("python");
    // llama.cpp is compiled for this CPU; the build records for which, so a cache directory
    // moved to another machine (or a VM whose CPU changed) rebuilds instead of crashing.
    let cmake_args = llama_cpp_cmake_args();
    let stamp = venv.join("azr-cmake-args");
    let has_it = |py: &std::path::Path| {
        Command::new(py)
            .args(["-c", "import llama_cpp"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let built_here = std::fs::read_to_string(&stamp).is_ok_and(|s| s == cmake_args);
    if built_here && has_it(&python) {
        return Ok(python);
    }
    if venv.exists() {
        eprintln!(
            "the llama.cpp anchor in {} was built for another CPU or incompletely: rebuilding",
            venv.display()
        );
        std::fs::remove_dir_all(&venv)
            .with_context(|| format!("removing the stale venv {}", venv.display()))?;
    }
    eprintln!(
        "installing {LLAMA_CPP_PYTHON} into {} for the llama.cpp anchor \
         (compiles llama.cpp, about 4 minutes; --no-anchor skips it)",
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
        .args(["-m", "pip", "install", "--no-cache-dir", LLAMA_CPP_PYTHON])
        .env("CMAKE_ARGS", &cmake_args)
        .stdout(std::process::Stdio::from(std::io::stderr()))
        .status()
        .context("running pip install llama-cpp-python")?;
    anyhow::ensure!(
        status.success() && has_it(&python),
        "installing {LLAMA_CPP_PYTHON} into {} failed (see pip's output above)",
        venv.display()
    );
    std::fs::write(&stamp, &cmake_args).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// llama.cpp's build flags: its SIMD kernels for the instruction sets this CPU reports, but
/// never AMX. `-march=native` (llama.cpp's default) turns AMX on where the CPU advertises it,
/// and some VMs (this project's CI among them) advertise AMX without enabling its register
/// state, so the anchor died with SIGILL on its first `tilezero`.
fn llama_cpp_cmake_args() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let has = |f: &str| flags.contains(&f);
    let mut args = vec!["-DGGML_NATIVE=OFF".to_string()];
    for (flag, option) in [
        ("avx", "GGML_AVX"),
        ("avx2", "GGML_AVX2"),
        ("fma", "GGML_FMA"),
        ("f16c", "GGML_F16C"),
        ("bmi2", "GGML_BMI2"),
        ("avx_vnni", "GGML_AVX_VNNI"),
        ("avx512f", "GGML_AVX512"),
        ("avx512vbmi", "GGML_AVX512_VBMI"),
        ("avx512_vnni", "GGML_AVX512_VNNI"),
        ("avx512_bf16", "GGML_AVX512_BF16"),
    ] {
        args.push(format!(
            "-D{option}={}",
            if has(flag) { "ON" } else { "OFF" }
        ));
    }
    args.join(" ")
}

/// Runs a llama.cpp anchor script (in the anchor's venv, installed when missing) with `args`;
/// returns the one JSON object it prints.
pub(super) fn run_llama_cpp(script: &str, args: &[&std::ffi::OsStr]) -> Result<serde_json::Value> {
    let python = llama_cpp_python()?;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .context("running the llama.cpp anchor")?;
    anyhow::ensure!(
        out.status.success(),
        "the llama.cpp anchor failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    serde_json::from_slice(&out.stdout).context("reading the llama.cpp anchor's result")
}

/// The anchor row, or a row saying why it is missing.
fn llama_cpp_row(path: &std::path::Path, prompt: &str, n_new: usize) -> Vec<String> {
    let measured = || -> Result<Vec<String>> {
        let threads = candle_core::utils::get_num_threads();
        let v = run_llama_cpp(
            LLAMA_CPP_SCRIPT,
            &[
                path.as_os_str(),
                prompt.as_ref(),
                n_new.to_string().as_ref(),
                threads.to_string().as_ref(),
            ],
        )?;
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        Ok(vec![
            "llama.cpp (anchor)".into(),
            "1".into(),
            format!("{:.0}", f("prompt_tokens") / f("prefill_s")),
            format!("{:.0}", f("decode_tokens") / f("decode_s")),
            format!("{:.1}", f("decode_s") * 1000.0 / f("decode_tokens")),
            format!("{:.0}", f("peak_rss_mib")),
        ])
    };
    measured().unwrap_or_else(|e| {
        eprintln!("llama.cpp anchor: {e:#}");
        vec![
            "llama.cpp (anchor)".into(),
            "1".into(),
            "failed".into(),
            "failed".into(),
            "-".into(),
            "-".into(),
        ]
    })
}

pub fn run(args: &GenerateBenchArgs) -> Result<()> {
    let path = resolve_model(&args.model, &mut |m| eprintln!("{m}"))?;
    let mut lm = load(&path)?;
    let text = lm.tokenizer.apply_chat_template(
        &[ChatMessage::new(
            ChatRole::User,
            "Write a Python function f(a) that takes a list of integers and returns the sum of the \
             squares of its even elements. Then give an input for it and the output it produces.",
        )],
        true,
    )?;
    let prompt = lm.tokenizer.encode(&text, false)?;
    let params = SamplingParams {
        temperature: args.temperature,
        max_new_tokens: args.new_tokens,
        ..SamplingParams::default()
    };
    eprintln!(
        "{}: prompt {} tokens, {} new tokens per row, {} threads",
        path.display(),
        prompt.len(),
        args.new_tokens,
        candle_core::utils::get_num_threads()
    );
    let mut rows = vec![];
    for weights in &args.weights {
        let quant = match weights.as_str() {
            "f32" | "generic" => None,
            "q8" => Some(candle_core::quantized::GgmlDType::Q8_0),
            other => anyhow::bail!("unknown --weights {other:?} (f32, q8, generic)"),
        };
        lm.model.quantize_for_inference(quant)?;
        azr_model::decode_matmul::set_enabled(weights != "generic");
        // Warm-up: first-touch page faults and thread-pool start-up are not throughput.
        let warm = SamplingParams {
            max_new_tokens: 4,
            ..params.clone()
        };
        generate_with_stats(&lm.model, None, std::slice::from_ref(&prompt), &warm, &[0])?;
        for &b in &args.batch {
            reset_peak_rss();
            let prompts = vec![prompt.clone(); b];
            let unshared = GenerateOptions {
                share_prefill: false,
                ..GenerateOptions::default()
            };
            let seeds = row_seeds(0, b);
            let (_, stats) =
                generate_with_options(&lm.model, None, &prompts, &params, &seeds, None, &unshared)?;
            let row = vec![
                format!("azr {weights}"),
                b.to_string(),
                format!("{:.0}", stats.prefill_tokens as f64 / stats.prefill_secs),
                format!("{:.0}", stats.decode_tokens as f64 / stats.decode_secs),
                format!(
                    "{:.1}",
                    stats.decode_secs * 1000.0 / (args.new_tokens.max(2) - 1) as f64
                ),
                peak_rss_mib().map_or("?".into(), |m| format!("{m:.0}")),
            ];
            eprintln!("{}", row.join("  "));
            rows.push(row);
        }
    }
    if !args.no_anchor {
        let row = llama_cpp_row(&path, &text, args.new_tokens);
        eprintln!("{}", row.join("  "));
        rows.push(row);
    }
    print!(
        "{}",
        table(
            &[
                "engine",
                "batch",
                "prefill tok/s",
                "decode tok/s",
                "ms/step",
                "peak RSS MiB"
            ],
            &rows
        )
    );
    Ok(())
}
