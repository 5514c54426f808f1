//! One line of `RUN_DIR/metrics.jsonl` per step, as a type: what the step measured (azr-core's
//! [`StepMetrics`]), the update ([`TrainStats`]), where the time went, and the evaluations of that
//! step. `azr report` and TensorBoard read it back generically (any numeric key is a curve).

use azr_core::metrics::{GroupMetrics, ProposalMetrics};
use azr_core::probe::ProbeScore;
use azr_core::table::{PerGroup, PerTask};
use azr_core::StepOutput;
use azr_model::TrainStats;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub step: u64,
    pub groups: PerGroup<GroupRecord>,
    pub proposals: PerTask<ProposalMetrics>,
    pub buffer_sizes: PerTask<usize>,
    pub seed_fallbacks: usize,
    pub zero_variance_groups: usize,
    pub nonzero_advantage_fraction: f64,
    pub executor_jobs: usize,
    pub generated: usize,
    pub generated_tokens: usize,
    pub train: TrainRecord,
    pub timing: Timing,
    /// The process's peak resident memory so far (Linux VmHWM; null elsewhere).
    pub peak_rss_mib: Option<f64>,
    /// Benchmark name -> pass@1 of the in-run evaluation, in the config's order (null when
    /// none ran this step).
    pub eval: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeRecord>,
    /// With a remote rollout engine: |engine log-prob - trainer log-prob| over sampled tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_logprob_mismatch: Option<super::rollouts::Mismatch>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRecord {
    #[serde(flatten)]
    pub metrics: GroupMetrics,
    /// Mean response tokens.
    pub response_length: f64,
}

/// The update; NaN (written as null) where no update was made.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRecord {
    pub loss: f64,
    pub grad_norm: f64,
    pub entropy: f64,
    pub logprob: f64,
    pub clip_fraction: f64,
    pub approx_kl: f64,
    pub lr: f64,
    pub tokens: usize,
    pub padded_tokens: usize,
    pub micro_batches: usize,
}

/// Seconds. `execution_s`: the step waited for the executor; `execution_overlapped_s`:
/// executor time hidden behind generation; `other_s`: prompts, parsing, samples, evaluations,
/// metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub generation_s: f64,
    pub execution_s: f64,
    pub execution_overlapped_s: f64,
    pub training_s: f64,
    pub other_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeRecord {
    pub strict_accuracy: f64,
    pub lenient_accuracy: f64,
}

impl From<&ProbeScore> for ProbeRecord {
    fn from(s: &ProbeScore) -> Self {
        ProbeRecord {
            strict_accuracy: s.strict_accuracy,
            lenient_accuracy: s.lenient_accuracy,
        }
    }
}

/// Where a step's time went, measured by the caller.
#[derive(Debug, Clone, Copy)]
pub struct StepTimes {
    /// Generating (the policy's own clock).
    pub generation: f64,
    /// The self-play step (`run_step`), generation included.
    pub step: f64,
    /// After the update: samples, evaluations, metrics.
    pub other: f64,
}

impl StepRecord {
    pub fn new(
        out: &StepOutput,
        train: &TrainStats,
        generated_tokens: usize,
        times: StepTimes,
        eval: Option<serde_json::Map<String, serde_json::Value>>,
        probe: Option<ProbeRecord>,
    ) -> Self {
        let m = &out.metrics;
        let exec = out.executor;
        StepRecord {
            step: m.step,
            groups: m.groups.map(|_, g| GroupRecord {
                metrics: g.clone(),
                response_length: if g.count > 0 {
                    g.tokens as f64 / g.count as f64
                } else {
                    0.0
                },
            }),
            proposals: m.proposals.clone(),
            buffer_sizes: m.buffer_sizes.clone(),
            seed_fallbacks: m.seed_fallbacks,
            zero_variance_groups: m.zero_variance_groups,
            nonzero_advantage_fraction: m.nonzero_advantage_fraction,
            executor_jobs: m.executor_jobs,
            generated: m.generated,
            generated_tokens,
            train: TrainRecord {
                loss: train.loss,
                grad_norm: train.grad_norm,
                entropy: train.entropy,
                logprob: train.logprob,
                clip_fraction: train.clip_fraction,
                approx_kl: train.approx_kl,
                lr: train.lr,
                tokens: train.tokens,
                padded_tokens: train.padded_tokens,
                micro_batches: train.micro_batches,
            },
            timing: Timing {
                generation_s: times.generation,
                execution_s: exec.wait_secs,
                execution_overlapped_s: (exec.busy_secs - exec.wait_secs).max(0.0),
                training_s: train.secs,
                other_s: (times.step - times.generation - exec.wait_secs).max(0.0) + times.other,
                total_s: times.step + train.secs + times.other,
            },
            peak_rss_mib: crate::bench::peak_rss_mib(),
            eval,
            probe,
            engine_logprob_mismatch: None,
        }
    }

    /// The step's log line: time, proposals, signal, format, and the update (or why none).
    pub fn log(&self) {
        let valid: usize = self.proposals.values().map(|p| p.valid).sum();
        let t = &self.train;
        let update = if !t.entropy.is_nan() {
            format!(
                "loss {:.4}, grad norm {:.3}, entropy {:.3}",
                t.loss, t.grad_norm, t.entropy
            )
        } else if t.lr == 0.0 {
            "no update: learning rate 0 (a control run)".to_string()
        } else {
            // Every advantage 0 (every group all failed, or all succeeded).
            "no update: zero gradient (every advantage is 0)".to_string()
        };
        let mean_of = |f: fn(&GroupMetrics) -> f64| -> f64 {
            self.groups.values().map(|g| f(&g.metrics)).sum::<f64>() / self.groups.len() as f64
        };
        let time = &self.timing;
        tracing::info!(
            target: "azr::train",
            "step {}: {:.0} s (generation {:.0}, execution {:.1}, training {:.0}, other {:.1}); \
             valid proposals {valid}; zero-variance groups {}/6, non-zero advantage {:.0}% of \
             tokens, strict format {:.0}%, scaffolded {:.0}%; {update}",
            self.step,
            time.total_s,
            time.generation_s,
            time.execution_s,
            time.training_s,
            time.other_s,
            self.zero_variance_groups,
            100.0 * self.nonzero_advantage_fraction,
            100.0 * mean_of(|g| g.strict_format_rate),
            100.0 * mean_of(|g| g.scaffolded_rate),
        );
    }
}
