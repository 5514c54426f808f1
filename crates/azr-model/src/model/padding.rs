//! Padded batches: where each row's padding sits, so positions and masks skip it.

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};

/// Per-row layout of a padded batch, used to build positions and masks: row `b`'s padding is
/// the `pad[b]` slots from slot `at` on. `at = 0` is left padding; generation prefills prompts
/// that share their first `at` tokens with the padding after that shared prefix.
#[derive(Clone, Debug)]
pub struct Padding {
    /// Padding slots of each row.
    pub pad: Vec<usize>,
    /// The slot where every row's padding starts.
    pub at: usize,
}

impl Padding {
    /// Left padding: `pad[b]` slots before the first token of row `b`.
    pub fn left(pad: Vec<usize>) -> Self {
        Self { pad, at: 0 }
    }

    /// Whether slot `s` of row `b` is padding.
    pub(super) fn is_pad(&self, b: usize, s: usize) -> bool {
        (self.at..self.at + self.pad[b]).contains(&s)
    }

    /// The position (RoPE index) of row `b`'s token at slot `s` (not padding).
    pub(super) fn position(&self, b: usize, s: usize) -> usize {
        if s < self.at {
            s
        } else {
            s.saturating_sub(self.pad[b])
        }
    }
}

/// Left-pads token rows into a `(B, T)` u32 tensor.
pub fn left_pad(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<(Tensor, Padding)> {
    if rows.is_empty() {
        bail!("empty batch");
    }
    let t = rows.iter().map(Vec::len).max().unwrap_or(0);
    if t == 0 {
        bail!("every row is empty");
    }
    let mut flat = Vec::with_capacity(rows.len() * t);
    let mut pad = Vec::with_capacity(rows.len());
    for r in rows {
        pad.push(t - r.len());
        flat.extend(std::iter::repeat_n(pad_id, t - r.len()));
        flat.extend_from_slice(r);
    }
    Ok((
        Tensor::from_vec(flat, (rows.len(), t), device)?,
        Padding::left(pad),
    ))
}
