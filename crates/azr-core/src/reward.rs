//! Rewards: one scalar per response (the trainer places it on the response's last token / broadcasts
//! it through TRR++).
//!
//! - Solver: `correct` (1) / `wrong` (-0.5, well-formatted but incorrect) / `format_error` (-1).
//! - Proposer: `format_error` (-1) for a broken format, `invalid` (-1) for a proposal the executor
//!   rejected; a valid proposal gets its learnability `1 - s`, `s` = solved / attempts of the n
//!   solver samples, when `0 < s < 1`, and `extreme` when `s` is 0 or 1.
//!
//! - Scaffolded responses ([`crate::scaffold`]): a correct or wrong answer, or a valid proposal,
//!   whose structure the environment completed pays `scaffolded` less. Format errors and invalid
//!   proposals are already the floor and pay nothing more.
//! - What counts as a format error ([`FormatReward`]): by default the reference's lenient
//!   extraction ([`crate::extract`]); `strict` uses the strict rule of [`crate::parse`] (and a
//!   scaffolded response then breaks the format).
//!
//! Deliberate deviations from the reference:
//! - `extreme` defaults to 0 (the paper's value); the reference code uses -0.5. Configurable.
//! - A valid proposal with zero learnability attempts (no solver sample could be scored) gets
//!   `extreme`: there is no evidence either way. The step driver always uses n >= 1.
//! - The solve rate is computed from integer counts, so `s == 0` and `s == 1` are exact.

use serde::{Deserialize, Serialize};

/// Which reading of a response decides whether its format is broken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatReward {
    /// The answer as the reference extracts it ([`crate::extract`]).
    #[default]
    Lenient,
    /// The strict think/answer rule ([`crate::parse`]), met without scaffolding.
    Strict,
}

/// Reward values. `Default` is the paper's, plus the scaffold penalty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardConfig {
    pub correct: f64,
    pub wrong: f64,
    pub format_error: f64,
    pub invalid: f64,
    /// Proposer reward for a valid task that every sample solved, or none did.
    pub extreme: f64,
    /// Subtracted from a scaffolded response's reward (not from format errors or invalid
    /// proposals).
    #[serde(default = "default_scaffolded")]
    pub scaffolded: f64,
    #[serde(default)]
    pub format: FormatReward,
}

fn default_scaffolded() -> f64 {
    0.1
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            correct: 1.0,
            wrong: -0.5,
            format_error: -1.0,
            invalid: -1.0,
            extreme: 0.0,
            scaffolded: default_scaffolded(),
            format: FormatReward::Lenient,
        }
    }
}

/// A reward less the scaffold penalty where it applies.
pub fn with_scaffold_penalty(
    reward: f64,
    floor: bool,
    scaffolded: bool,
    cfg: &RewardConfig,
) -> f64 {
    if scaffolded && !floor {
        reward - cfg.scaffolded
    } else {
        reward
    }
}

/// How a solver response was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolverOutcome {
    Correct,
    /// Well-formatted but wrong (including answers that are not literals or fail to run).
    Wrong,
    FormatError,
}

impl SolverOutcome {
    /// How many of `outcomes` are correct: a proposal's solve count.
    pub fn count_correct(outcomes: &[SolverOutcome]) -> usize {
        outcomes
            .iter()
            .filter(|o| **o == SolverOutcome::Correct)
            .count()
    }
}

/// How a proposer response was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposerOutcome {
    FormatError,
    /// Parsed, but the executor rejected it.
    Invalid,
    /// Valid: `solved` of `attempts` solver samples were correct.
    Valid {
        solved: usize,
        attempts: usize,
    },
}

/// Solve rate `s = solved / attempts` (`solved` is clamped to `attempts`); `None` when no attempt.
pub fn solve_rate(solved: usize, attempts: usize) -> Option<f64> {
    (attempts > 0).then(|| solved.min(attempts) as f64 / attempts as f64)
}

/// Learnability of a valid task: `1 - s` for `0 < s < 1`, else `cfg.extreme`.
pub fn learnability(solved: usize, attempts: usize, cfg: &RewardConfig) -> f64 {
    let solved = solved.min(attempts);
    if solved == 0 || solved == attempts {
        cfg.extreme
    } else {
        1.0 - solved as f64 / attempts as f64
    }
}

/// Counts the correct ones among solver outcomes: (solved, attempts).
pub fn count_solved(outcomes: &[SolverOutcome]) -> (usize, usize) {
    let solved = outcomes
        .iter()
        .filter(|o| **o == SolverOutcome::Correct)
        .count();
    (solved, outcomes.len())
}

pub fn solver_reward(outcome: SolverOutcome, cfg: &RewardConfig) -> f64 {
    match outcome {
        SolverOutcome::Correct => cfg.correct,
        SolverOutcome::Wrong => cfg.wrong,
        SolverOutcome::FormatError => cfg.format_error,
    }
}

/// [`solver_reward`] of a response that may have been scaffolded.
pub fn scaffolded_solver_reward(
    outcome: SolverOutcome,
    scaffolded: bool,
    cfg: &RewardConfig,
) -> f64 {
    let floor = outcome == SolverOutcome::FormatError;
    with_scaffold_penalty(solver_reward(outcome, cfg), floor, scaffolded, cfg)
}

pub fn proposer_reward(outcome: ProposerOutcome, cfg: &RewardConfig) -> f64 {
    match outcome {
        ProposerOutcome::FormatError => cfg.format_error,
        ProposerOutcome::Invalid => cfg.invalid,
        ProposerOutcome::Valid { solved, attempts } => learnability(solved, attempts, cfg),
    }
}

/// [`proposer_reward`] of a response that may have been scaffolded.
pub fn scaffolded_proposer_reward(
    outcome: ProposerOutcome,
    scaffolded: bool,
    cfg: &RewardConfig,
) -> f64 {
    let floor = !matches!(outcome, ProposerOutcome::Valid { .. });
    with_scaffold_penalty(proposer_reward(outcome, cfg), floor, scaffolded, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solver_values() {
        let c = RewardConfig::default();
        assert_eq!(solver_reward(SolverOutcome::Correct, &c), 1.0);
        assert_eq!(solver_reward(SolverOutcome::Wrong, &c), -0.5);
        assert_eq!(solver_reward(SolverOutcome::FormatError, &c), -1.0);
    }

    #[test]
    fn proposer_values() {
        let c = RewardConfig::default();
        assert_eq!(proposer_reward(ProposerOutcome::FormatError, &c), -1.0);
        assert_eq!(proposer_reward(ProposerOutcome::Invalid, &c), -1.0);
        // s = 2/8 = 0.25 -> 1 - 0.25 = 0.75
        let v = |solved, attempts| ProposerOutcome::Valid { solved, attempts };
        assert_eq!(proposer_reward(v(2, 8), &c), 0.75);
        // s = 7/8 -> 1/8
        assert_eq!(proposer_reward(v(7, 8), &c), 0.125);
        // s = 1/3 -> 2/3
        assert!((proposer_reward(v(1, 3), &c) - 2.0 / 3.0).abs() < 1e-15);
        // extremes: paper value 0 by default
        assert_eq!(proposer_reward(v(0, 8), &c), 0.0);
        assert_eq!(proposer_reward(v(8, 8), &c), 0.0);
        assert_eq!(proposer_reward(v(0, 0), &c), 0.0);
        // more solved than attempts is clamped to "all solved"
        assert_eq!(proposer_reward(v(9, 8), &c), 0.0);
        let r = RewardConfig { extreme: -0.5, ..c };
        assert_eq!(proposer_reward(v(0, 8), &r), -0.5);
        assert_eq!(proposer_reward(v(8, 8), &r), -0.5);
        assert_eq!(proposer_reward(v(4, 8), &r), 0.5);
    }

    #[test]
    fn scaffold_penalty_spares_the_floor() {
        let c = RewardConfig::default();
        use SolverOutcome::*;
        assert_eq!(scaffolded_solver_reward(Correct, true, &c), 0.9);
        assert_eq!(scaffolded_solver_reward(Correct, false, &c), 1.0);
        assert_eq!(scaffolded_solver_reward(Wrong, true, &c), -0.6);
        assert_eq!(scaffolded_solver_reward(FormatError, true, &c), -1.0);
        let v = ProposerOutcome::Valid {
            solved: 1,
            attempts: 4,
        };
        assert_eq!(scaffolded_proposer_reward(v, true, &c), 0.65);
        assert_eq!(
            scaffolded_proposer_reward(ProposerOutcome::Invalid, true, &c),
            -1.0
        );
        assert_eq!(
            scaffolded_proposer_reward(ProposerOutcome::FormatError, true, &c),
            -1.0
        );
    }

    #[test]
    fn counting_and_rate() {
        use SolverOutcome::*;
        let o = [Correct, Wrong, FormatError, Correct];
        assert_eq!(count_solved(&o), (2, 4));
        assert_eq!(solve_rate(2, 4), Some(0.5));
        assert_eq!(solve_rate(0, 0), None);
        assert_eq!(solve_rate(5, 4), Some(1.0));
    }
}
