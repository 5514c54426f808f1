//! Executor configuration: pool size, limits, and the validity filter's lists.

use std::path::PathBuf;
use std::time::Duration;

/// Modules a proposed program may not import (spec section 4). This keeps tasks deterministic
/// and self-contained; it is a validity filter, not a security boundary (the sandbox is).
pub const BANNED_MODULES: &[&str] = &[
    // The reference list.
    "logging",
    "random",
    "multiprocessing",
    "pebble",
    "subprocess",
    "threading",
    "datetime",
    "time",
    "hashlib",
    "hmac",
    "bcrypt",
    "calendar",
    // os/sys access (the reference bans os.sys, os.path, sys.exit, os.environ): we ban the modules.
    "os",
    "sys",
    // Ours: I/O, processes, introspection and other sources of nondeterminism.
    "socket",
    "ssl",
    "select",
    "selectors",
    "asyncio",
    "concurrent",
    "signal",
    "shutil",
    "pathlib",
    "glob",
    "tempfile",
    "io",
    "fileinput",
    "ctypes",
    "importlib",
    "builtins",
    "gc",
    "inspect",
    "resource",
    "pty",
    "fcntl",
    "mmap",
    "urllib",
    "http",
    "pickle",
    "marshal",
    "shelve",
    "sqlite3",
    "uuid",
    "secrets",
    "platform",
    "code",
    "codeop",
    "runpy",
    "site",
    "sysconfig",
    "webbrowser",
    "tracemalloc",
    "faulthandler",
    "atexit",
    "weakref",
];

/// Names a proposed program may not use: stdin, files, dynamic code and imports.
pub const FORBIDDEN_NAMES: &[&str] = &[
    "open",
    "input",
    "__import__",
    "eval",
    "exec",
    "compile",
    "breakpoint",
    "exit",
    "quit",
    "help",
    "globals",
    "__builtins__",
    "__loader__",
    "__spec__",
];

/// Attributes that reach the interpreter's internals (`x.__class__.__subclasses__()` and friends).
pub const FORBIDDEN_ATTRS: &[&str] = &[
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__code__",
    "__closure__",
    "__import__",
    "__loader__",
    "__spec__",
    "__bases__",
    "__mro__",
    "__dict__",
    "__getattribute__",
    "f_globals",
    "f_locals",
    "f_back",
    "gi_frame",
    "cr_frame",
    "tb_frame",
];

/// How model-written code is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SandboxMode {
    /// Every worker runs in a bubblewrap sandbox (the default, and the only safe choice).
    #[default]
    Bubblewrap,
    /// No sandbox: workers run as plain processes with only rlimits. For trusted code only.
    None,
}

#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Number of sandboxed worker processes (each runs one job at a time). Default: 2 per core.
    pub workers: usize,
    /// Wall-clock limit per job.
    pub timeout: Duration,
    /// Address-space limit per job, in MiB.
    pub memory_mb: u64,
    /// Longest `repr` of an output accepted (spec: never truncated; longer is invalid).
    pub max_output_chars: usize,
    /// Longest program accepted, in characters (longer: `syntax_error`, nothing runs).
    pub max_program_chars: usize,
    /// Bytes a job may write to stdout+stderr before it is stopped (`output_limit`).
    pub capture_bytes: u64,
    /// Captured stdout/stderr bytes returned with each result (0: none).
    pub return_stdout_bytes: usize,
    /// Processes and threads a job may have at once.
    pub max_procs: u64,
    /// Python recursion limit inside jobs.
    pub recursion_limit: u32,
    /// `PYTHONHASHSEED` for every worker, so set/dict orders agree between the run that computed a
    /// gold output and the run that checks an answer.
    pub hash_seed: u32,
    /// Python interpreter; `None` finds `python3` on PATH.
    pub python: Option<PathBuf>,
    pub sandbox: SandboxMode,
    pub banned_modules: Vec<String>,
    pub forbidden_names: Vec<String>,
    pub forbidden_attrs: Vec<String>,
    /// Run jobs on a SandboxFusion service instead of the local pool (`url` empty: local).
    pub sandboxfusion: crate::fusion::FusionConfig,
}

impl Default for ExecConfig {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        ExecConfig {
            // Two per core: a job stuck until its timeout (and the batch queued behind it) then
            // holds only half a core's worth of slots. It costs ~9% of peak throughput on short
            // jobs (abduction checks on 2 cores: 1819/s at 4 workers, 1990/s at 2).
            workers: 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: Duration::from_secs(5),
            memory_mb: 1024,
            max_output_chars: 1000,
            max_program_chars: 256 * 1024,
            capture_bytes: 1 << 20,
            return_stdout_bytes: 4096,
            max_procs: 8,
            recursion_limit: 1000,
            hash_seed: 0,
            python: None,
            sandbox: SandboxMode::Bubblewrap,
            banned_modules: owned(BANNED_MODULES),
            forbidden_names: owned(FORBIDDEN_NAMES),
            forbidden_attrs: owned(FORBIDDEN_ATTRS),
            sandboxfusion: crate::fusion::FusionConfig::default(),
        }
    }
}

/// The settings a user chooses (the `[executor]` section of a run's config, the executor flags
/// of `azr exec` and `azr eval`); everything else keeps [`ExecConfig::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Sandboxed workers (0: two per CPU core).
    pub workers: usize,
    /// Wall-clock limit per job, in milliseconds.
    pub timeout_ms: u64,
    /// Address-space limit per job, in MiB.
    pub memory_mb: u64,
    /// Longest `repr` of an output accepted.
    pub max_output_chars: usize,
}

impl ExecConfig {
    /// The default config with `limits` applied, sandboxed as `sandbox` says.
    pub fn with_limits(limits: Limits, sandbox: SandboxMode) -> Self {
        let default = ExecConfig::default();
        ExecConfig {
            workers: if limits.workers > 0 {
                limits.workers
            } else {
                default.workers
            },
            timeout: Duration::from_millis(limits.timeout_ms),
            memory_mb: limits.memory_mb,
            max_output_chars: limits.max_output_chars,
            sandbox,
            ..default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_apply_over_the_defaults() {
        let limits = Limits {
            workers: 3,
            timeout_ms: 250,
            memory_mb: 512,
            max_output_chars: 80,
        };
        let c = ExecConfig::with_limits(limits, SandboxMode::None);
        assert_eq!(c.workers, 3);
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!((c.memory_mb, c.max_output_chars), (512, 80));
        assert_eq!(c.sandbox, SandboxMode::None);
        assert_eq!(c.banned_modules, ExecConfig::default().banned_modules);
        // 0 workers: the default count
        let c = ExecConfig::with_limits(
            Limits {
                workers: 0,
                ..limits
            },
            SandboxMode::Bubblewrap,
        );
        assert_eq!(c.workers, ExecConfig::default().workers);
    }
}
