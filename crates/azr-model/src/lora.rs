//! LoRA: a frozen base and a trainable low-rank update per target linear layer,
//! `y = W x + (alpha / r) B A x` with `A` (r, in) random and `B` (out, r) zero, so training starts
//! exactly at the base model. Only `A` and `B` get gradients and AdamW moments, which is what
//! lets a model too big to train fully train at all; the trainer merges `W + (alpha / r) B A` for
//! generation and for every exported checkpoint.

use anyhow::{bail, Result};
use candle_core::Tensor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The linear layers of a decoder block, by their Hugging Face module names.
pub const MODULES: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// LoRA settings; `rank = 0` turns LoRA off (every weight is trained).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// r: the rank of each update. 0: off.
    pub rank: usize,
    /// The update is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Which linear layers of every block get an update (names from [`MODULES`]).
    pub targets: LoraTargets,
    /// Seeds the random initialisation of `A`.
    pub seed: u64,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 0,
            alpha: 16.0,
            targets: LoraTargets::all(),
            seed: 0,
        }
    }
}

impl LoraConfig {
    pub fn enabled(&self) -> bool {
        self.rank > 0
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank.max(1) as f64
    }

    pub fn check(&self) -> Result<()> {
        if self.enabled() && !(self.alpha.is_finite() && self.alpha > 0.0) {
            bail!("lora.alpha must be a positive number, got {}", self.alpha);
        }
        if self.enabled() && self.targets.is_empty() {
            bail!("lora.targets is empty: name at least one of {MODULES:?}");
        }
        Ok(())
    }
}

/// A set of [`MODULES`], written as a list of their names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoraTargets(u8);

impl LoraTargets {
    pub fn all() -> Self {
        Self((1 << MODULES.len()) - 1)
    }

    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let mut bits = 0u8;
        for n in names {
            let n = n.as_ref();
            match MODULES.iter().position(|m| *m == n) {
                Some(i) => bits |= 1 << i,
                None => bail!("unknown LoRA target {n:?}; the targets are {MODULES:?}"),
            }
        }
        Ok(Self(bits))
    }

    /// Whether the linear layer with this Hugging Face name (`...self_attn.q_proj`) is a target.
    pub fn contains(&self, linear: &str) -> bool {
        let module = linear.rsplit('.').next().unwrap_or(linear);
        MODULES
            .iter()
            .position(|m| *m == module)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn names(&self) -> Vec<&'static str> {
        (0..MODULES.len())
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| MODULES[i])
            .collect()
    }
}

impl Serialize for LoraTargets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.names().serialize(s)
    }
}

impl<'de> Deserialize<'de> for LoraTargets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        LoraTargets::parse(&names).map_err(serde::de::Error::custom)
    }
}

/// The low-rank update of one linear layer.
#[derive(Clone, Debug)]
pub struct LoraAdapter {
    /// (r, in)
    pub a: Tensor,
    /// (out, r)
    pub b: Tensor,
    pub scale: f64,
}

impl LoraAdapter {
    /// `scale * (x A^T) B^T` for a 2-D `x` (rows, in); scaled at rank width, where it is cheap.
    pub fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        (x.matmul(&self.a.t()?)? * self.scale)?.matmul(&self.b.t()?)
    }

    /// `W + scale * B A`, untracked (no gradient flows into a merged weight).
    pub fn merge(&self, w: &Tensor) -> candle_core::Result<Tensor> {
        let ba = (self.b.detach().matmul(&self.a.detach())? * self.scale)?;
        w.detach() + ba
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_round_trip() {
        let t = LoraTargets::parse(&["q_proj", "v_proj"]).unwrap();
        assert!(t.contains("model.layers.3.self_attn.q_proj"));
        assert!(!t.contains("model.layers.3.self_attn.k_proj"));
        assert_eq!(t.names(), ["q_proj", "v_proj"]);
        let err = LoraTargets::parse(&["qkv"]).unwrap_err().to_string();
        assert!(err.contains("unknown LoRA target \"qkv\""), "{err}");
        let json = serde_json::to_string(&LoraConfig::default()).unwrap();
        let back: LoraConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, LoraConfig::default());
        assert!(serde_json::from_str::<LoraConfig>(r#"{"targets": ["x"]}"#).is_err());
        let off = LoraConfig::default();
        assert!(!off.enabled() && off.check().is_ok());
        let bad = LoraConfig {
            rank: 4,
            targets: LoraTargets::parse::<&str>(&[]).unwrap(),
            ..off
        };
        assert!(bad.check().is_err());
    }
}
