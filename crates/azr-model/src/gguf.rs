//! Writing a model's current weights as a GGUF file, for engines that read only GGUF
//! (llama.cpp's `llama-server`).
//!
//! The file is the base model's GGUF with new tensors: every metadata entry (architecture,
//! hyper-parameters, the tokenizer's vocabulary and merges, chat template) is copied from it, so
//! an engine tokenizes and renders exactly as it does for the base model, and every tensor is
//! replaced by the model's weight of the same name, in llama.cpp's layout (q/k rows permuted
//! back for Llama, see [`crate::weights`]). Tensors the model does not hold (`rope_freqs`) are
//! copied as they are.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::Arch;
use crate::model::Model;
use crate::weights::{gguf_to_hf_name, permute_qk_rows};

/// The type of a written GGUF's matrices (vectors, the norms and biases, stay f32, as llama.cpp
/// wants them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GgufType {
    /// The trainer's weights exactly (the default: an engine samples from the policy the
    /// trainer holds, however small the last update).
    #[default]
    F32,
    /// Half the size of f32. An update smaller than f16 resolves (one step at lr 1e-6) does
    /// not reach the engine: it samples from the rounding of the trainer's weights.
    F16,
    /// 8-bit blocks of 32 with an f16 scale: a quarter of f32. Matrices whose rows are not a
    /// multiple of 32 are written f16.
    Q8_0,
}

impl GgufType {
    fn ggml(self) -> GgmlDType {
        match self {
            GgufType::F32 => GgmlDType::F32,
            GgufType::F16 => GgmlDType::F16,
            GgufType::Q8_0 => GgmlDType::Q8_0,
        }
    }

    /// `general.file_type`, llama.cpp's `llama_ftype` (ALL_F32, MOSTLY_F16, MOSTLY_Q8_0).
    fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
        }
    }
}

/// Writes `model`'s weights into `out` as a GGUF file shaped like `template` (the base model's
/// GGUF, whose metadata and tensor names it copies). Written atomically: `out` is either the
/// whole file or absent.
pub fn write_gguf(model: &Model, template: &Path, out: &Path, ty: GgufType) -> Result<()> {
    let file = File::open(template).with_context(|| format!("opening {}", template.display()))?;
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)
        .with_context(|| format!("{} is not a readable GGUF file", template.display()))?;
    let cfg = model.config();
    let weights: std::collections::HashMap<String, Tensor> =
        model.named_weights().into_iter().collect();

    // The template's tensors in file order, so the written file reads like the original.
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort_by_key(|n| content.tensor_infos[*n].offset);
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let info = &content.tensor_infos[name];
        let hf = gguf_to_hf_name(name);
        let weight = match hf.as_deref() {
            Some("lm_head.weight") if cfg.tie_embeddings => {
                weights.get("model.embed_tokens.weight")
            }
            Some(hf) => weights.get(hf),
            None => None,
        };
        let Some(weight) = weight else {
            if hf.is_some() {
                bail!(
                    "{}: the model has no weight for the tensor {name}",
                    template.display()
                );
            }
            let copy = content
                .tensor(&mut reader, name, &Device::Cpu)
                .with_context(|| format!("{}: reading tensor {name}", template.display()))?;
            tensors.push((name.clone(), copy));
            continue;
        };
        let mut t = weight.to_device(&Device::Cpu)?;
        if cfg.arch == Arch::Llama && name.contains(".attn_q.") {
            t = permute_qk_rows(&t, cfg.num_heads, true)?;
        } else if cfg.arch == Arch::Llama && name.contains(".attn_k.") {
            t = permute_qk_rows(&t, cfg.num_kv_heads, true)?;
        }
        if t.dims() != info.shape.dims() {
            bail!(
                "{}: tensor {name} is {:?} in the file but {:?} in the model (another model?)",
                template.display(),
                info.shape.dims(),
                t.dims()
            );
        }
        let dtype = match (t.rank(), ty) {
            (1, _) => GgmlDType::F32,
            (_, GgufType::Q8_0) if !t.dims()[t.rank() - 1].is_multiple_of(32) => GgmlDType::F16,
            (_, ty) => ty.ggml(),
        };
        let q = QTensor::quantize(&t, dtype)
            .with_context(|| format!("converting tensor {name} to {dtype:?}"))?;
        tensors.push((name.clone(), q));
    }

    let file_type = gguf_file::Value::U32(ty.file_type());
    let mut metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        // candle writes 32-byte alignment, GGUF's default, whatever the template said.
        .filter(|(k, _)| k.as_str() != "general.alignment" && k.as_str() != "general.file_type")
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    metadata.push(("general.file_type", &file_type));
    metadata.sort_by_key(|(k, _)| *k);
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    crate::checkpoint::create_file_atomically(out, |f| {
        let mut w = BufWriter::new(f);
        gguf_file::write(&mut w, &metadata, &tensor_refs)?;
        w.flush()?;
        Ok(())
    })
    .with_context(|| format!("writing the GGUF {}", out.display()))
}
