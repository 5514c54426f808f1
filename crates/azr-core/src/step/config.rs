//! The step's sizes and values, checked before a step runs, and its errors.

use serde::{Deserialize, Serialize};

use crate::parse::{ParseConfig, ThinkMode};
use crate::policy::{PolicyError, Purpose};
use crate::reward::RewardConfig;
use crate::store::StoreError;
use crate::trr::TrrError;
use crate::validate::ValidateConfig;

/// Which buffered tasks the solver rollouts get.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolverTasks {
    /// The reference's: tasks added at the previous step first, then uniform.
    #[default]
    Newest,
    /// Tasks whose measured solve rate is strictly between 0 and 1 first (a group of answers
    /// to such a task can disagree), then as `newest`.
    Informative,
}

/// The sizes and values of a step. `Default` is the reference's (B = 64, K = 6, N = 10, n = 8).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    /// B: solver prompts per task type (and proposer prompts unless `proposer_batch` is set).
    pub batch: usize,
    /// Proposer prompts per task type (0: `batch`).
    #[serde(default)]
    pub proposer_batch: usize,
    #[serde(default)]
    pub solver_tasks: SolverTasks,
    /// K: reference triplets shown to each deduction/abduction proposer.
    pub references: usize,
    /// N: inputs an induction proposer writes (the solver sees the first N/2 pairs). At least 2.
    pub induction_inputs: usize,
    /// n: solver samples per valid proposal to estimate its solve rate. At least 1.
    pub learnability_samples: usize,
    /// Fewest words of an induction message.
    pub min_message_words: usize,
    /// Reject proposals whose program ignores its input (see [`ValidateConfig`]). Ours: the
    /// reference has no such check; a config without the key keeps the reference's behaviour.
    #[serde(default)]
    pub require_input_use: bool,
    pub rewards: RewardConfig,
    /// Generate the proposer rollouts, then the solver rollouts, validating the proposals
    /// while the solvers generate (see the module documentation). Off by default.
    #[serde(default)]
    pub split_rollouts: bool,
    /// The think mode of prompts and parsing (the run config's `format.think`).
    #[serde(skip)]
    pub think: ThinkMode,
}

impl Default for StepConfig {
    fn default() -> Self {
        StepConfig {
            batch: 64,
            references: 6,
            induction_inputs: 10,
            learnability_samples: 8,
            min_message_words: 2,
            require_input_use: false,
            rewards: RewardConfig::default(),
            split_rollouts: false,
            proposer_batch: 0,
            solver_tasks: SolverTasks::Newest,
            think: ThinkMode::Required,
        }
    }
}

impl StepConfig {
    /// Prompts render and responses parse in the config's think mode.
    pub fn parse_config(&self) -> ParseConfig {
        ParseConfig {
            think: self.think,
            induction_inputs: self.induction_inputs,
        }
    }

    /// Proposer prompts per task type.
    pub fn proposers(&self) -> usize {
        if self.proposer_batch == 0 {
            self.batch
        } else {
            self.proposer_batch
        }
    }

    pub fn validate_config(&self) -> ValidateConfig {
        ValidateConfig {
            parse: self.parse_config(),
            min_message_words: self.min_message_words,
            require_input_use: self.require_input_use,
        }
    }

    pub(crate) fn check(&self) -> Result<(), StepError> {
        if self.learnability_samples == 0 {
            return Err(StepError::Config(
                "learnability_samples must be at least 1".into(),
            ));
        }
        if self.induction_inputs < 2 {
            return Err(StepError::Config(
                "induction_inputs must be at least 2 (half shown, half hidden)".into(),
            ));
        }
        let r = &self.rewards;
        if ![
            r.correct,
            r.wrong,
            r.format_error,
            r.invalid,
            r.extreme,
            r.scaffolded,
        ]
        .iter()
        .all(|v| v.is_finite())
        {
            return Err(StepError::Config("reward values must be finite".into()));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("step configuration: {0}")]
    Config(String),
    #[error("policy: {0}")]
    Policy(#[source] PolicyError),
    #[error("policy returned {got} responses for {expected} {purpose:?} prompts")]
    ResponseCount {
        purpose: Purpose,
        expected: usize,
        got: usize,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Trr(#[from] TrrError),
}
