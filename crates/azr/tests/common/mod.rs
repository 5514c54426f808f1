//! What the `azr` CLI tests share.

use std::path::Path;
use std::process::{Command, Output};

/// `out`, after checking that azr succeeded (its output in the failure message).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "azr failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Small everything: 1 prompt per group, 24 new tokens, 2 learnability samples. A random model
/// breaks the format everywhere, so every advantage is 0: the entropy bonus gives the update a
/// gradient, so resume equality compares weights that really moved.
#[allow(dead_code)] // warmup_cli.rs sets its own
pub fn tiny_args(model: &Path) -> Vec<String> {
    [
        format!("model.name={}", model.display()),
        "run.steps=2".into(),
        "run.checkpoint_every=1".into(),
        "run.keep_checkpoints=5".into(),
        "seeding.target=2".into(),
        "seeding.max_rounds=1".into(),
        "step.batch=1".into(),
        "step.proposer_batch=1".into(),
        "step.references=1".into(),
        "step.learnability_samples=2".into(),
        "sampling.max_new_tokens=24".into(),
        "sampling.think_budget=4".into(),
        "sampling.answer_budget=4".into(),
        "sampling.batch=8".into(),
        "optim.optimizer.lr=1e-3".into(),
        "optim.entropy_coef=0.01".into(),
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.clone()])
    .collect()
}

/// Runs `azr` with `args` and checks that it succeeded.
#[allow(dead_code)] // not every test binary runs azr this way
pub fn run_azr(args: &[String]) -> Output {
    ok(Command::new(env!("CARGO_BIN_EXE_azr"))
        .args(args)
        .output()
        .unwrap())
}

/// A run's `metrics.jsonl`, a value per line.
#[allow(dead_code)] // not every test binary reads metrics
pub fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
