//! What one self-play step hands to the trainer: one [`Sample`] per trained response.

use crate::policy::Injected;
use crate::reward::{ProposerOutcome, SolverOutcome};
use crate::task::{Group, Role, ValidTask};
use serde::{Deserialize, Serialize};

/// How a trained response was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Outcome {
    Solve {
        outcome: SolverOutcome,
    },
    Propose {
        outcome: ProposerOutcome,
        /// The rejection reason's name ([`crate::reason::Reason::name`]) when not valid.
        reason: Option<String>,
        /// The executor's or checker's detail, for logs.
        detail: Option<String>,
    },
}

impl Outcome {
    /// Solver: correct. Proposer: valid.
    pub fn is_success(&self) -> bool {
        matches!(
            self,
            Outcome::Solve {
                outcome: SolverOutcome::Correct
            } | Outcome::Propose {
                outcome: ProposerOutcome::Valid { .. },
                ..
            }
        )
    }

    pub fn is_format_error(&self) -> bool {
        matches!(
            self,
            Outcome::Solve {
                outcome: SolverOutcome::FormatError
            } | Outcome::Propose {
                outcome: ProposerOutcome::FormatError,
                ..
            }
        )
    }

    pub fn role(&self) -> Role {
        match self {
            Outcome::Solve { .. } => Role::Solve,
            Outcome::Propose { .. } => Role::Propose,
        }
    }
}

/// One trained response: the trainer puts `advantage` on every one of its `tokens` sampled
/// response tokens (TRR++ broadcasts the sequence's advantage; `reward` is kept for logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub group: Group,
    pub prompt: String,
    pub response: String,
    /// Tokens the policy sampled (appended scaffold tokens not counted).
    pub tokens: usize,
    /// The prompt's token ids as the policy fed them (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_ids: Vec<u32>,
    /// The token ids of `response`, as the policy reported them (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_ids: Vec<u32>,
    /// The sampling-time log-prob of each of `token_ids` (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<f32>,
    /// Per token of `token_ids`: sampled (true) or appended by the environment (empty: all
    /// sampled).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampled: Vec<bool>,
    /// What the environment appended.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<Injected>,
    /// The response met the strict format by itself (no scaffold, [`crate::parse`]'s rule).
    #[serde(default)]
    pub strict_format: bool,
    pub reward: f64,
    pub advantage: f64,
    pub outcome: Outcome,
}

impl Sample {
    /// Whether the environment completed this response's structure.
    pub fn scaffolded(&self) -> bool {
        !self.injected.is_empty()
    }
}

/// A valid proposal of the step with its learnability estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedTask {
    pub task: ValidTask,
    /// Of `attempts` (= n) solver samples, how many were correct.
    pub solved: usize,
    pub attempts: usize,
    /// Newly stored; false when an identical proposal of the same step was stored first.
    pub added: bool,
}
