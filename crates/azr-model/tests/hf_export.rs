//! A trained checkpoint loads in Hugging Face transformers with our logits, and a LoRA
//! checkpoint's adapters load in PEFT onto the base model with the same logits.
//!
//! Needs PyTorch, transformers and PEFT: `scripts/hf-venv` installs them from PyPI into the user
//! cache directory once (~3 GB). When that fails (no network, `AZR_HF_VENV=skip`) the test prints
//! why and passes without checking anything.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use azr_model::tiny::write_tiny_model;
use azr_model::train::{AdamWConfig, PEFT_PREFIX};
use azr_model::{load, LoraConfig, Model, TrainConfig, TrainRow, Trainer};

/// The venv's python, or None with the reason printed.
fn hf_python() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/hf-venv");
    let out = match Command::new(&script).stderr(Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: running {}: {e}", script.display());
            return None;
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        eprintln!("skipped: scripts/hf-venv could not make the PyTorch venv: {last}");
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

struct HfOutput {
    text_ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

/// transformers' token ids of `text` (the tokenizer of the checkpoint `tokenizer`) and logits of
/// `ids`, for `model` (+ PEFT `adapter`).
fn hf_logits(
    python: &Path,
    model: &Path,
    adapter: Option<&Path>,
    tokenizer: &Path,
    text: &str,
    ids: &[u32],
) -> HfOutput {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hf_logits.py");
    let req = serde_json::json!({
        "model": model,
        "adapter": adapter,
        "tokenizer": tokenizer,
        "text": text,
        "ids": ids,
    });
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    HfOutput {
        text_ids: serde_json::from_value(v["text_ids"].clone()).unwrap(),
        logits: serde_json::from_value(v["logits"].clone()).unwrap(),
    }
}

/// Our teacher-forced logits `(T, V)` of one row.
fn our_logits(model: &Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let (logits, _) = model.forward_padded(&[ids.to_vec()], 0).unwrap();
    logits.squeeze(0).unwrap().to_vec2::<f32>().unwrap()
}

fn assert_close(ours: &[Vec<f32>], theirs: &[Vec<f32>], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: positions");
    let mut worst = 0f32;
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(a.len(), b.len(), "{what}: vocabulary");
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst < 1e-3, "{what}: max |logit difference| {worst}");
}

/// Rows that move the weights: a few steps of a large learning rate on fixed tokens.
fn train(trainer: &mut Trainer) {
    let rows = vec![
        TrainRow {
            prompt: vec![5, 17, 200, 3],
            response: vec![42, 7, 250, 11],
            old_logprobs: vec![],
            sampled: vec![],
            advantage: 1.0,
        },
        TrainRow {
            prompt: vec![88, 1],
            response: vec![9, 120, 64],
            old_logprobs: vec![],
            sampled: vec![],
            advantage: -0.5,
        },
    ];
    for _ in 0..3 {
        trainer.step(&rows).unwrap();
    }
}

fn config(rank: usize) -> TrainConfig {
    TrainConfig {
        optimizer: AdamWConfig {
            lr: 1e-2,
            ..AdamWConfig::default()
        },
        lora: LoraConfig {
            rank,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        ..TrainConfig::default()
    }
}

#[test]
fn checkpoints_load_in_transformers_and_peft_with_our_logits() {
    let Some(python) = hf_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let text = "def f(x):\n    return x + 1\n<|im_end|>";
    for (arch, tie) in [("qwen2", true), ("llama", false)] {
        let base = dir.path().join(format!("{arch}-base"));
        write_tiny_model(&base, arch, tie, 5, 256).unwrap();
        let lm = load(&base).unwrap();
        let ids = lm.tokenizer.encode(text, false).unwrap();
        let before = our_logits(&lm.model, &ids);

        // Every weight trained: the checkpoint's model/ files alone.
        let mut full = Trainer::new(lm.model.clone(), config(0)).unwrap();
        train(&mut full);
        let ckpt = dir.path().join(format!("{arch}-full"));
        full.save(&lm.tokenizer, &ckpt).unwrap();
        let hf = hf_logits(&python, &ckpt, None, &ckpt, text, &ids);
        assert_eq!(hf.text_ids, ids, "{arch}: tokenizer");
        let ours = our_logits(full.model(), &ids);
        assert_close(&ours, &hf.logits, &format!("{arch} full"));
        // Training moved the logits away from the base model's.
        assert!(
            before
                .iter()
                .flatten()
                .zip(ours.iter().flatten())
                .any(|(a, b)| (a - b).abs() > 1e-2),
            "{arch}: training changed nothing"
        );

        // LoRA: the merged files load as above; the adapters load in PEFT onto the base.
        let mut lora = Trainer::new(lm.model.clone(), config(4)).unwrap();
        train(&mut lora);
        let ckpt = dir.path().join(format!("{arch}-lora"));
        lora.save(&lm.tokenizer, &ckpt).unwrap();
        let ours = our_logits(lora.model(), &ids);
        let merged = hf_logits(&python, &ckpt, None, &ckpt, text, &ids);
        assert_close(&ours, &merged.logits, &format!("{arch} LoRA merged"));
        let adapter = ckpt.join(azr_model::train::ADAPTER_DIR);
        let peft = hf_logits(&python, &base, Some(&adapter), &ckpt, text, &ids);
        assert_close(&ours, &peft.logits, &format!("{arch} LoRA via PEFT"));
        let names = candle_core::safetensors::load(
            adapter.join(azr_model::train::ADAPTER_FILE),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert!(names.keys().all(|k| k.starts_with(PEFT_PREFIX)));
    }
}
