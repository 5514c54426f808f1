//! Shared helpers of the integration tests: the benchmarks (built in) and a sandboxed executor.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use azr_eval::{Benchmark, BenchmarkId, DataSource};
use azr_exec::{ExecConfig, Executor};

/// The repository's `data/` folder (the built-in sets are compiled from it).
pub fn data_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// `id` from the built-in data (HumanEval from its PyPI cache).
pub fn load(id: BenchmarkId) -> Benchmark {
    Benchmark::load_default(id, &DataSource::Builtin)
        .unwrap_or_else(|e| panic!("loading {id}: {e}"))
}

pub fn executor(timeout_s: u64) -> Executor {
    Executor::new(ExecConfig {
        workers: 4,
        timeout: Duration::from_secs(timeout_s),
        ..ExecConfig::default()
    })
    .expect("the sandboxed executor starts")
}

/// A response in the strict format with `answer` as the answer block's content.
pub fn respond(answer: &str) -> String {
    format!("I worked it out.</think>\n<answer>\n{answer}\n</answer>")
}
