//! What callers ask the executor to do, and what they get back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One unit of work. Programs define an entry function `f`; inputs are the text of an argument
/// list (what goes between the parentheses of `f(...)`); outputs are `repr` texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Run `f(input)` and return the `repr` of its value.
    Run { program: String, input: String },
    /// The full validity check of a proposed (program, input); the gold output when valid.
    Validate {
        program: String,
        input: String,
        /// Also require every argument of `input` to be a literal.
        #[serde(default)]
        literal_input: bool,
        /// Also require `f` to take a parameter and read every one it takes (a static check):
        /// any input solves the abduction of a program that ignores its input.
        #[serde(default)]
        reads_input: bool,
    },
    /// Is the predicted output text equal (Python `==`) to the gold output text?
    Deduction { predicted: String, gold: String },
    /// Does `f(predicted_input)` equal the gold output? The input must be literal arguments.
    Abduction {
        program: String,
        predicted_input: String,
        gold_output: String,
    },
    /// Does the candidate program reproduce every (input, output) pair?
    Induction {
        program: String,
        pairs: Vec<(String, String)>,
    },
}

/// How a job's execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The program raised (the exception line is in `error`), or exited before returning.
    Error,
    Timeout,
    Memory,
    OutputLimit,
    /// Ended by a signal (segfault, SIGKILL), or its worker died.
    Killed,
    /// A validation failed a static or value check (see `rejection`).
    Rejected,
    /// The job itself was malformed (e.g. a bad JSON line in the CLI); nothing ran.
    InvalidJob,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Timeout => "timeout",
            Status::Memory => "memory",
            Status::OutputLimit => "output_limit",
            Status::Killed => "killed",
            Status::Rejected => "rejected",
            Status::InvalidJob => "invalid_job",
        }
    }
}

/// Why a proposal is invalid: one value per failed check, counted per step by the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    SyntaxError,
    NoEntryFunction,
    BannedModule,
    ForbiddenCall,
    BadInput,
    InputNotLiteral,
    Error,
    Timeout,
    Memory,
    OutputLimit,
    Killed,
    NotLiteral,
    Nondeterministic,
    OutputTooLong,
    IgnoresInput,
}

impl Rejection {
    pub const ALL: [Rejection; 15] = [
        Rejection::SyntaxError,
        Rejection::NoEntryFunction,
        Rejection::BannedModule,
        Rejection::ForbiddenCall,
        Rejection::BadInput,
        Rejection::InputNotLiteral,
        Rejection::Error,
        Rejection::Timeout,
        Rejection::Memory,
        Rejection::OutputLimit,
        Rejection::Killed,
        Rejection::NotLiteral,
        Rejection::Nondeterministic,
        Rejection::OutputTooLong,
        Rejection::IgnoresInput,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rejection::SyntaxError => "syntax_error",
            Rejection::NoEntryFunction => "no_entry_function",
            Rejection::BannedModule => "banned_module",
            Rejection::ForbiddenCall => "forbidden_call",
            Rejection::BadInput => "bad_input",
            Rejection::InputNotLiteral => "input_not_literal",
            Rejection::Error => "error",
            Rejection::Timeout => "timeout",
            Rejection::Memory => "memory",
            Rejection::OutputLimit => "output_limit",
            Rejection::Killed => "killed",
            Rejection::NotLiteral => "not_literal",
            Rejection::Nondeterministic => "nondeterministic",
            Rejection::OutputTooLong => "output_too_long",
            Rejection::IgnoresInput => "ignores_input",
        }
    }

    pub(crate) fn from_wire(s: &str) -> Option<Rejection> {
        Rejection::ALL.into_iter().find(|r| r.name() == s)
    }

    /// The rejection implied by a failed execution during validation.
    pub(crate) fn from_status(status: Status) -> Option<Rejection> {
        match status {
            Status::Error => Some(Rejection::Error),
            Status::Timeout => Some(Rejection::Timeout),
            Status::Memory => Some(Rejection::Memory),
            Status::OutputLimit => Some(Rejection::OutputLimit),
            Status::Killed => Some(Rejection::Killed),
            Status::Ok | Status::Rejected | Status::InvalidJob => None,
        }
    }
}

/// The result of one job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobResult {
    pub status: Status,
    /// `Run`: the `repr` of the value. `Validate`: the gold output when valid. Checks: the value
    /// the program produced (abduction), or `None`.
    pub output: Option<String>,
    /// The exception line or the reason the job failed.
    pub error: Option<String>,
    /// `Validate` only: why the proposal is invalid (`None` when valid).
    pub rejection: Option<Rejection>,
    /// Checks only: the verdict, computed outside any process that ran the program.
    pub correct: Option<bool>,
    /// The first bytes the job wrote to stdout and stderr.
    pub stdout: Option<String>,
    /// Time spent executing (zero for checks decided without running code).
    pub elapsed: Duration,
}

impl JobResult {
    pub(crate) fn failed(status: Status, error: impl Into<String>) -> Self {
        JobResult {
            status,
            output: None,
            error: Some(error.into()),
            rejection: None,
            correct: None,
            stdout: None,
            elapsed: Duration::ZERO,
        }
    }

    /// For `Validate`: the gold output of a valid proposal.
    pub fn gold_output(&self) -> Option<&str> {
        match (self.status, self.rejection) {
            (Status::Ok, None) => self.output.as_deref(),
            _ => None,
        }
    }

    pub fn is_correct(&self) -> bool {
        self.correct == Some(true)
    }
}
