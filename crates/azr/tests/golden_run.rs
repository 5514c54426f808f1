//! Behaviour pinned across refactors: a fixed-seed two-step `azr train` of the tiny model must
//! give the same samples, metrics and checkpoint bytes as the recorded run in
//! `tests/golden/tiny-two-steps.json`. A change that is meant to change behaviour re-records it
//! with `AZR_BLESS=1 cargo test -p azr --test golden_run` and says why in its commit.
//!
//! Float results depend on the matrix kernels the CPU selects at run time (AVX-512 and AVX2 sum
//! in different orders), so the record holds one entry per CPU class. On a class with no entry
//! the test prints the digests it computed and does not compare.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

mod common;
use common::{ok, tiny_args};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/tiny-two-steps.json"
);

/// The run's files whose bytes are deterministic, as written.
const FILES: [&str; 6] = [
    "samples/step-000001.jsonl",
    "samples/step-000002.jsonl",
    "checkpoints/step-000001/model/model.safetensors",
    "checkpoints/step-000002/model/model.safetensors",
    "checkpoints/step-000002/model/optimizer.safetensors",
    "checkpoints/step-000002/buffers/store.json",
];

fn cpu_class() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "x86_64-avx512f".into();
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "x86_64-avx2-fma".into();
        }
    }
    std::env::consts::ARCH.into()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each metrics line without what varies between identical runs (timings, memory).
fn metrics_digest(run: &Path) -> String {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            for k in ["timing", "peak_rss_mib"] {
                o.remove(k);
            }
            v.to_string()
        })
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    sha256(lines.join("\n").as_bytes())
}

/// The digests of one run, full fine-tuning (`lora_rank` 0) or LoRA, keyed by file.
fn digests(dir: &Path, lora_rank: usize) -> BTreeMap<String, String> {
    let model = dir.join("tiny-model");
    if !model.exists() {
        azr_model::tiny::write_tiny_model(&model, "qwen2", true, 3, 8192).unwrap();
    }
    let run = dir.join(format!("run-lora{lora_rank}"));
    // The same small run as train_cli.rs's resume test.
    let mut args = tiny_args(&model);
    args.extend(["--set".into(), format!("optim.lora.rank={lora_rank}")]);
    ok(Command::new(env!("CARGO_BIN_EXE_azr"))
        .args(["--quiet", "train", "--out"])
        .arg(&run)
        .args(&args)
        .output()
        .unwrap());
    let adapter = "checkpoints/step-000002/model/adapter/adapter_model.safetensors";
    let mut d: BTreeMap<String, String> = FILES
        .iter()
        .chain((lora_rank > 0).then_some(&adapter))
        .map(|f| {
            let bytes = std::fs::read(run.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            (format!("lora{lora_rank}/{f}"), sha256(&bytes))
        })
        .collect();
    d.insert(
        format!("lora{lora_rank}/metrics.jsonl (no timing)"),
        metrics_digest(&run),
    );
    d
}

#[test]
fn a_fixed_seed_two_step_run_matches_its_recorded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut got = digests(dir.path(), 0);
    got.extend(digests(dir.path(), 4));
    let model = std::fs::read(dir.path().join("tiny-model/model.safetensors")).unwrap();
    got.insert("tiny-model/model.safetensors".into(), sha256(&model));
    let class = cpu_class();
    let mut golden: BTreeMap<String, BTreeMap<String, String>> = std::fs::read_to_string(GOLDEN)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    if std::env::var("AZR_BLESS").is_ok_and(|v| v == "1") {
        golden.insert(class, got);
        let text = serde_json::to_string_pretty(&golden).unwrap() + "\n";
        std::fs::write(GOLDEN, text).unwrap();
        return;
    }
    let Some(want) = golden.get(&class) else {
        eprintln!(
            "no recorded run for CPU class {class}; computed (AZR_BLESS=1 records them):\n{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
        return;
    };
    let differ: Vec<&String> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(*k) != got.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "the fixed-seed run changed on {class} (AZR_BLESS=1 re-records it, if meant): {differ:?}"
    );
}
