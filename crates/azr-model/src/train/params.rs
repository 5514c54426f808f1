//! The trainer's parameters: every weight (full fine-tuning) or fresh LoRA adapters over frozen
//! weights.

use std::collections::HashMap;

use anyhow::Result;
use candle_core::{Tensor, Var};

use crate::lora::{LoraAdapter, LoraConfig};
use crate::model::Model;

/// One trained tensor and its gradient buffer.
pub(super) struct Param {
    pub(super) name: String,
    pub(super) var: Var,
    pub(super) grad: Vec<f32>,
}

/// Full fine-tuning: every weight a `Var`. Returns the tracked model, the untracked one (same
/// storage) and the parameters.
pub(super) fn full_params(model: Model) -> Result<(Model, Model, Vec<Param>)> {
    let cfg = model.config().clone();
    let device = model.device().clone();
    let mut params = Vec::new();
    for (name, t) in model.named_weights() {
        let var = Var::from_tensor(&t.contiguous()?)?;
        let n = var.elem_count();
        params.push(Param {
            name,
            var,
            grad: vec![0.0; n],
        });
    }
    drop(model);
    let tracked: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().clone()))
        .collect();
    let untracked: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().detach()))
        .collect();
    let model = Model::from_weights(&cfg, &tracked, &device)?;
    let inference = Model::from_weights(&cfg, &untracked, &device)?;
    Ok((model, inference, params))
}

/// LoRA: frozen base weights (plain tensors), and per target linear layer `A` (r, in) uniform
/// in +-1/sqrt(in) (as PyTorch initialises a linear layer) and `B` (out, r) zero, so the model
/// starts exactly at the base. Parameters are named `<linear>.lora_A.weight` / `.lora_B.weight`.
pub(super) fn lora_params(model: Model, lora: &LoraConfig) -> Result<(Model, Model, Vec<Param>)> {
    use rand::{Rng, SeedableRng};
    let cfg = model.config().clone();
    let device = model.device().clone();
    let base: HashMap<String, Tensor> = model
        .named_weights()
        .into_iter()
        .map(|(n, t)| Ok((n, t.contiguous()?.detach())))
        .collect::<Result<_>>()?;
    drop(model);
    let mut tracked = Model::from_weights(&cfg, &base, &device)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(lora.seed);
    let r = lora.rank;
    let shapes: Vec<(String, usize, usize)> = tracked
        .linears()
        .into_iter()
        .filter(|(n, _)| lora.targets.contains(n))
        .map(|(n, l)| {
            let (out, inp) = l.weight.dims2()?;
            Ok((n, out, inp))
        })
        .collect::<Result<_>>()?;
    let mut params = Vec::new();
    for (name, out, inp) in shapes {
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = (0..r * inp).map(|_| rng.gen_range(-bound..bound)).collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), &device)?)?;
        let b = Var::zeros((out, r), candle_core::DType::F32, &device)?;
        tracked.set_lora(
            &name,
            LoraAdapter {
                a: a.as_tensor().clone(),
                b: b.as_tensor().clone(),
                scale: lora.scale(),
            },
        )?;
        for (suffix, var) in [("lora_A", a), ("lora_B", b)] {
            let n = var.elem_count();
            params.push(Param {
                name: format!("{name}.{suffix}.weight"),
                var,
                grad: vec![0.0; n],
            });
        }
    }
    let inference = tracked.merged()?;
    Ok((tracked, inference, params))
}
