//! Per-step metrics: per task-role group, per proposal type, and the buffers.
//!
//! Every number is finite: rates and means of empty sets are 0 (JSON has no NaN).

use crate::batch::Sample;
use crate::reason::Reason;
use crate::reward::SolverOutcome;
use crate::table::{PerGroup, PerTask};
use crate::task::Group;
use crate::trr::GroupStats;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One task-role group's trained responses.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    pub count: usize,
    pub tokens: usize,
    /// Mean and population standard deviation of the reward over responses.
    pub reward_mean: f64,
    pub reward_std: f64,
    /// The token-weighted mean and unbiased std TRR++ normalised this group with.
    pub token_reward_mean: f64,
    pub token_reward_std: f64,
    /// Solver groups: correct answers. Proposer groups: valid proposals.
    pub successes: usize,
    /// `successes / count`.
    pub accuracy: f64,
    pub format_errors: usize,
    pub format_error_rate: f64,
    /// Responses that met the strict format by themselves ([`crate::parse`], no scaffold).
    #[serde(default)]
    pub strict_format_rate: f64,
    /// Responses whose structure the environment completed ([`crate::scaffold`]).
    #[serde(default)]
    pub scaffolded_rate: f64,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl GroupMetrics {
    /// Metrics of the samples of `group`, with the TRR++ statistics of that group.
    pub fn of(group: Group, samples: &[Sample], stats: &GroupStats) -> Self {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.group == group).collect();
        let count = mine.len();
        let mean = if count == 0 {
            0.0
        } else {
            mine.iter().map(|s| s.reward).sum::<f64>() / count as f64
        };
        let var = if count == 0 {
            0.0
        } else {
            mine.iter().map(|s| (s.reward - mean).powi(2)).sum::<f64>() / count as f64
        };
        let successes = mine.iter().filter(|s| s.outcome.is_success()).count();
        let format_errors = mine.iter().filter(|s| s.outcome.is_format_error()).count();
        GroupMetrics {
            count,
            tokens: mine.iter().map(|s| s.tokens).sum(),
            reward_mean: mean,
            reward_std: var.sqrt(),
            token_reward_mean: stats.mean,
            token_reward_std: stats.std,
            successes,
            accuracy: ratio(successes, count),
            format_errors,
            format_error_rate: ratio(format_errors, count),
            strict_format_rate: ratio(mine.iter().filter(|s| s.strict_format).count(), count),
            scaffolded_rate: ratio(mine.iter().filter(|s| s.scaffolded()).count(), count),
        }
    }
}

/// One task type's proposals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProposalMetrics {
    pub proposed: usize,
    pub valid: usize,
    /// Valid proposals newly stored (an identical proposal of the same step is stored once).
    pub added: usize,
    /// Rejections by [`Reason::name`].
    pub rejections: BTreeMap<String, usize>,
    /// Entry `k`: valid proposals that `k` of the n learnability samples solved (length n + 1).
    pub solve_rate_histogram: Vec<usize>,
    /// Mean solve rate over valid proposals.
    pub mean_solve_rate: f64,
    /// Valid proposals with solve rate 0 or 1 (they get the configurable "extreme" reward).
    pub extreme: usize,
    /// Learnability samples (n per valid proposal) and how many of them broke the format.
    pub estimate_samples: usize,
    pub estimate_format_errors: usize,
}

impl ProposalMetrics {
    /// Empty tally for n learnability samples per valid proposal.
    pub fn new(n: usize) -> Self {
        ProposalMetrics {
            solve_rate_histogram: vec![0; n + 1],
            ..Default::default()
        }
    }

    pub fn reject(&mut self, reason: &Reason) {
        self.proposed += 1;
        *self.rejections.entry(reason.name()).or_default() += 1;
    }

    /// A valid proposal whose solve rate is not estimated (the seeding phase): counts it as
    /// proposed, valid and, when `added`, added; the solve-rate fields stay as they are (a tally
    /// made with `ProposalMetrics::default()` keeps an empty histogram).
    pub fn valid_unestimated(&mut self, added: bool) {
        self.proposed += 1;
        self.valid += 1;
        self.added += usize::from(added);
    }

    /// A valid proposal and the outcomes of its learnability samples.
    pub fn valid(&mut self, estimates: &[SolverOutcome], added: bool) {
        let n = estimates.len();
        let solved = SolverOutcome::count_correct(estimates);
        self.proposed += 1;
        self.valid += 1;
        self.added += usize::from(added);
        if self.solve_rate_histogram.len() <= n {
            self.solve_rate_histogram.resize(n + 1, 0);
        }
        self.solve_rate_histogram[solved] += 1;
        // running mean over valid proposals
        let s = ratio(solved, n);
        self.mean_solve_rate += (s - self.mean_solve_rate) / self.valid as f64;
        self.extreme += usize::from(solved == 0 || solved == n);
        self.estimate_samples += n;
        self.estimate_format_errors += estimates
            .iter()
            .filter(|o| **o == SolverOutcome::FormatError)
            .count();
    }
}

/// Everything measured in one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: u64,
    /// Groups (of the six) with responses whose rewards are all equal: they teach nothing.
    #[serde(default)]
    pub zero_variance_groups: usize,
    /// Fraction of the trained (sampled) tokens whose advantage is not 0.
    #[serde(default)]
    pub nonzero_advantage_fraction: f64,
    pub groups: PerGroup<GroupMetrics>,
    pub proposals: PerTask<ProposalMetrics>,
    /// Buffer sizes after this step's additions.
    pub buffer_sizes: PerTask<usize>,
    /// Prompts built from an identity seed because a buffer had nothing to give.
    pub seed_fallbacks: usize,
    /// The proposer reward used for solve rates 0 and 1 (spec: always logged).
    pub extreme_reward: f64,
    /// Executor jobs run and responses generated in this step (all purposes).
    pub executor_jobs: usize,
    pub generated: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Outcome;
    use crate::reward::ProposerOutcome;
    use SolverOutcome::*;

    fn s(group: Group, reward: f64, tokens: usize, outcome: Outcome) -> Sample {
        Sample {
            group,
            prompt: String::new(),
            response: String::new(),
            tokens,
            prompt_ids: Vec::new(),
            token_ids: Vec::new(),
            logprobs: Vec::new(),
            sampled: Vec::new(),
            injected: Vec::new(),
            strict_format: false,
            reward,
            advantage: 0.0,
            outcome,
        }
    }

    #[test]
    fn group_numbers() {
        let g = Group::SOLVE_DEDUCTION;
        let solve = |outcome| Outcome::Solve { outcome };
        let samples = [
            s(g, 1.0, 2, solve(Correct)),
            s(g, -0.5, 3, solve(Wrong)),
            s(g, -1.0, 1, solve(FormatError)),
            s(
                Group::PROPOSE_DEDUCTION,
                0.5,
                9,
                Outcome::Propose {
                    outcome: ProposerOutcome::Valid {
                        solved: 1,
                        attempts: 2,
                    },
                    reason: None,
                    detail: None,
                },
            ),
        ];
        let m = GroupMetrics::of(g, &samples, &GroupStats::default());
        // mean = (1 - 0.5 - 1)/3 = -1/6; deviations 7/6, -1/3, -5/6
        // var = (49/36 + 4/36 + 25/36)/3 = 78/108
        assert_eq!(
            (m.count, m.tokens, m.successes, m.format_errors),
            (3, 6, 1, 1)
        );
        assert!((m.reward_mean + 1.0 / 6.0).abs() < 1e-12);
        assert!((m.reward_std - (78.0f64 / 108.0).sqrt()).abs() < 1e-12);
        assert!((m.accuracy - 1.0 / 3.0).abs() < 1e-12);
        let p = GroupMetrics::of(Group::PROPOSE_DEDUCTION, &samples, &GroupStats::default());
        assert_eq!((p.count, p.successes, p.accuracy), (1, 1, 1.0));
        let empty = GroupMetrics::of(Group::SOLVE_INDUCTION, &samples, &GroupStats::default());
        assert_eq!(empty, GroupMetrics::default());
    }

    #[test]
    fn proposal_tally() {
        let mut m = ProposalMetrics::new(4);
        m.reject(&Reason::Duplicate);
        m.reject(&Reason::Duplicate);
        m.valid(&[Correct, Wrong, FormatError, Correct], true);
        m.valid(&[Correct; 4], false);
        assert_eq!((m.proposed, m.valid, m.added, m.extreme), (4, 2, 1, 1));
        assert_eq!(m.rejections.get("duplicate"), Some(&2));
        assert_eq!(m.solve_rate_histogram, vec![0, 0, 1, 0, 1]);
        // (0.5 + 1.0) / 2
        assert!((m.mean_solve_rate - 0.75).abs() < 1e-12);
        assert_eq!((m.estimate_samples, m.estimate_format_errors), (8, 1));
    }

    #[test]
    fn unestimated_tally() {
        let mut m = ProposalMetrics::default();
        m.valid_unestimated(true);
        m.valid_unestimated(false);
        m.reject(&Reason::Duplicate);
        assert_eq!((m.proposed, m.valid, m.added, m.extreme), (3, 2, 1, 0));
        assert!(m.solve_rate_histogram.is_empty());
        assert_eq!((m.mean_solve_rate, m.estimate_samples), (0.0, 0));
    }
}
