//! Reading weights into f32 tensors named the Hugging Face way (`model.layers.0.self_attn.q_proj.weight`),
//! from a GGUF file (dequantized) or from safetensors files (single or sharded).
//!
//! GGUF files converted from Llama checkpoints store the q and k projections with their rows
//! permuted for llama.cpp's interleaved RoPE. We undo that permutation here, so every model in
//! memory has the Hugging Face layout and one RoPE (the half-split, "NeoX" form) serves all of
//! them. This also means a checkpoint saved from a GGUF-loaded model is a valid Hugging Face one.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};

use crate::config::{Arch, ModelConfig};

pub type Weights = HashMap<String, Tensor>;

/// Maps a GGUF tensor name to its Hugging Face name; `None` for tensors we do not use
/// (e.g. `rope_freqs.weight`).
pub fn gguf_to_hf_name(name: &str) -> Option<String> {
    let top = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(n) = top {
        return Some(n.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// llama.cpp's q/k row permutation: GGUF rows are ordered (head, pair, 2) where Hugging Face
/// orders them (head, 2, pair). `to_gguf` applies it, else it is undone. Works for weights
/// `(out, in)` and biases `(out,)`.
pub(crate) fn permute_qk_rows(t: &Tensor, n_head: usize, to_gguf: bool) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let out = dims[0];
    if n_head == 0 || !out.is_multiple_of(2 * n_head) {
        bail!("cannot permute the rows of a tensor of shape {dims:?} for {n_head} heads");
    }
    let half = out / n_head / 2;
    let rest: usize = dims[1..].iter().product();
    let from = if to_gguf {
        (n_head, 2, half, rest)
    } else {
        (n_head, half, 2, rest)
    };
    Ok(t.reshape(from)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)?)
}

/// Dequantizes every tensor of a GGUF file to f32, renamed to Hugging Face names.
pub fn load_gguf_weights(
    path: &Path,
    content: &gguf_file::Content,
    cfg: &ModelConfig,
    device: &Device,
) -> Result<Weights> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut weights = Weights::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = gguf_to_hf_name(name) else {
            tracing::debug!("{}: skipping tensor {name}", path.display());
            continue;
        };
        let q = content
            .tensor(&mut reader, name, device)
            .with_context(|| format!("{}: reading tensor {name}", path.display()))?;
        let mut t = q
            .dequantize(device)
            .with_context(|| format!("{}: dequantizing tensor {name}", path.display()))?
            .to_dtype(DType::F32)?;
        if cfg.arch == Arch::Llama {
            if name.contains(".attn_q.") {
                t = permute_qk_rows(&t, cfg.num_heads, false)
                    .with_context(|| format!("{}: tensor {name}", path.display()))?;
            } else if name.contains(".attn_k.") {
                t = permute_qk_rows(&t, cfg.num_kv_heads, false)
                    .with_context(|| format!("{}: tensor {name}", path.display()))?;
            }
        }
        weights.insert(hf, t);
    }
    Ok(weights)
}

/// Loads `model.safetensors`, or the shards listed in `model.safetensors.index.json`, as f32.
pub fn load_safetensors_dir(dir: &Path, device: &Device) -> Result<Weights> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<std::path::PathBuf> = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading {}", index.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .with_context(|| format!("{} has no weight_map object", index.display()))?;
        let mut shards: Vec<String> = map
            .values()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        shards.sort();
        shards.dedup();
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        bail!(
            "{}: no model.safetensors or model.safetensors.index.json",
            dir.display()
        );
    };
    let mut weights = Weights::new();
    for file in files {
        let tensors = candle_core::safetensors::load(&file, device)
            .with_context(|| format!("reading safetensors {}", file.display()))?;
        for (name, t) in tensors {
            let t = t
                .to_dtype(DType::F32)
                .with_context(|| format!("{}: converting {name} to f32", file.display()))?;
            weights.insert(name, t);
        }
    }
    Ok(weights)
}
