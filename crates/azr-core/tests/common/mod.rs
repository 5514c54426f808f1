//! What the executor-backed tests share.

use azr_core::StepConfig;
use azr_exec::{ExecConfig, Executor};
use std::sync::OnceLock;

/// One sandboxed executor (2 workers) per test binary.
pub fn exec() -> &'static Executor {
    static EXEC: OnceLock<Executor> = OnceLock::new();
    EXEC.get_or_init(|| {
        Executor::new(ExecConfig {
            workers: 2,
            ..Default::default()
        })
        .expect("the sandboxed executor starts (is bubblewrap installed?)")
    })
}

/// B = 4 per group, K = 2 references, N = 4 induction inputs (2 shown, 2 hidden), n = 4
/// learnability samples, paper rewards (extreme = 0).
#[allow(dead_code)] // not every test binary builds steps
pub fn config() -> StepConfig {
    StepConfig {
        batch: 4,
        references: 2,
        induction_inputs: 4,
        learnability_samples: 4,
        min_message_words: 2,
        ..Default::default()
    }
}
