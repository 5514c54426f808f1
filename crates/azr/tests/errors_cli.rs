//! Bad input gives one clear line on stderr and a non-zero exit, never a backtrace: every case
//! runs with RUST_BACKTRACE=1, which makes candle attach a backtrace to its errors.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// Runs `azr args...` with backtraces requested and returns its only stderr line, after
/// checking the exit status and that there is exactly one non-empty line.
fn single_error_line(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_azr"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("AZR_BACKTRACE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "azr {args:?} succeeded: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "azr {args:?} printed:\n{stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

fn contains_all(line: &str, parts: &[&str]) {
    for p in parts {
        assert!(line.contains(p), "{p:?} missing from: {line}");
    }
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-model");
    azr_model::tiny::write_tiny_model(&path, "qwen2", true, 3, 8192).unwrap();
    path
}

/// A GGUF whose header, config and tokenizer are valid, cut where the tensor data begins.
fn write_truncated_gguf(path: &Path) {
    use gguf_file::Value as V;
    let text = |s: &str| V::String(s.to_string());
    let metadata = [
        ("general.architecture", text("qwen2")),
        ("qwen2.embedding_length", V::U32(8)),
        ("qwen2.attention.head_count", V::U32(2)),
        ("qwen2.attention.layer_norm_rms_epsilon", V::F32(1e-5)),
        ("qwen2.feed_forward_length", V::U32(16)),
        ("qwen2.block_count", V::U32(1)),
        ("tokenizer.ggml.model", text("gpt2")),
        (
            "tokenizer.ggml.tokens",
            V::Array(vec![text("a"), text("b"), text("ab")]),
        ),
        ("tokenizer.ggml.merges", V::Array(vec![text("a b")])),
    ];
    let tensor = |shape: &[usize]| {
        let t = Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
        QTensor::quantize(&t, GgmlDType::F32).unwrap()
    };
    let tensors = [
        ("token_embd.weight", tensor(&[3, 8])),
        ("blk.0.ffn_norm.weight", tensor(&[8])),
    ];
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(
        &mut file,
        &metadata.iter().map(|(k, v)| (*k, v)).collect::<Vec<_>>(),
        &tensors.iter().map(|(k, t)| (*k, t)).collect::<Vec<_>>(),
    )
    .unwrap();
    drop(file);
    let content = gguf_file::Content::read(&mut std::fs::File::open(path).unwrap()).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(content.tensor_data_offset).unwrap();
}

#[test]
fn truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("cut.gguf");
    write_truncated_gguf(&gguf);
    let line = single_error_line(&[
        "generate",
        "--model",
        gguf.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    contains_all(&line, &["cut.gguf", "reading tensor", "only 0 remaining"]);
}

#[test]
fn file_that_is_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are not weights\n").unwrap();
    let line = single_error_line(&[
        "generate",
        "--model",
        path.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    contains_all(&line, &["notes.txt", "not a readable GGUF file"]);
}

#[test]
fn config_json_missing_a_field() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let config = model.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(&config, json.to_string()).unwrap();
    let line = single_error_line(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    contains_all(&line, &["config.json", "missing field `hidden_size`"]);
}

#[test]
fn truncated_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let weights = model.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&weights)
        .unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    let line = single_error_line(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "hi",
    ]);
    contains_all(
        &line,
        &["reading safetensors", "model.safetensors", "incomplete"],
    );
}

#[test]
fn unknown_set_key() {
    let line = single_error_line(&["train", "--print-config", "--set", "run.stepz=3"]);
    contains_all(&line, &["run.stepz", "unknown key stepz"]);
}

#[test]
fn data_folder_without_the_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let line = single_error_line(&[
        "eval",
        "--bench",
        "gsm8k",
        "--data",
        dir.path().to_str().unwrap(),
    ]);
    contains_all(&line, &["math/gsm8k.jsonl", "No such file"]);
    // The I/O error is printed once, not again as the cause of the file's error.
    assert_eq!(line.matches("No such file").count(), 1, "{line}");
}
