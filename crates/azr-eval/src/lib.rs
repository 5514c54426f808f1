//! azr-eval: the benchmarks the paper reports, scored offline (issue 7), without the model.
//!
//! - [`bench`]: benchmark names, categories, data file names.
//! - [`data`]: loaders for every benchmark file, the built-in copy of the repository's `data/`
//!   (see [`DataSource`]) and the HumanEval download from PyPI.
//! - [`prompt`]: evaluation prompts in both renderings (CRUXEval uses azr-core's solver prompts).
//! - [`extract`]: answers taken out of responses (code blocks, CRUXEval literals).
//! - [`math`]: math answer extraction, normalisation and equivalence.
//! - [`code`]: HumanEval and MBPP+ checks in the sandbox, and float-tolerant output comparison.
//! - [`select`]: `limit` / `sample_seed` subsets.
//! - [`report`]: pass@1 (lenient and strict), standard error, table, JSON summary, per-problem
//!   JSONL.
//! - [`eval`]: [`evaluate`], with the model behind the [`Generate`] trait.
//! - [`compare`]: two runs paired on their shared problems (McNemar, paired bootstrap).
//!
//! The executor to pass in: sandboxed, as everywhere; a timeout of about 10 s per job suits MBPP+
//! chunks (see [`code::mbpp`]).

pub mod bench;
pub mod code;
pub mod compare;
pub mod data;
pub mod eval;
pub mod extract;
pub mod math;
pub mod prompt;
pub mod report;
pub mod select;

pub use bench::{BenchmarkId, Category, UnknownBenchmark};
pub use data::{Benchmark, DataError, DataSource, Problem, Task};
pub use eval::{
    evaluate, evaluate_with_progress, EvalError, EvalOptions, Generate, Generated, Progress,
    Verdict,
};
pub use report::{BenchSummary, FailReason, ProblemRecord, Report, RunInfo};
