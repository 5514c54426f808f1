//! The run directory: what a run writes and how a resume finds it again.
//!
//! ```text
//! RUN_DIR/config.toml                 the effective config
//! RUN_DIR/metrics.jsonl               one JSON line per training step
//! RUN_DIR/seeding.jsonl               one JSON line per seeding round
//! RUN_DIR/tensorboard/                the same scalars as TensorBoard event files
//! RUN_DIR/samples/step-000001.jsonl   the step's trained responses and valid tasks
//! RUN_DIR/eval/step-000010/           eval summaries (when eval.every > 0)
//! RUN_DIR/checkpoints/step-000005/    model/ (a Hugging Face dir + optimizer), buffers/,
//!                                     run_state.json; written atomically
//! RUN_DIR/checkpoints/latest          the newest complete checkpoint's name
//! ```

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use azr_core::{StepOutput, TaskStore};
use azr_model::checkpoint::{create_dir_atomically, write_file_atomically};
use azr_model::{Tokenizer, Trainer};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Where the run stands, saved in every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Training steps completed (0: none yet).
    pub step: u64,
    /// Whether seeding ended (a checkpoint from before this field existed: it had).
    #[serde(default = "yes")]
    pub seeding_done: bool,
    pub seeding_rounds: usize,
    /// Whether seeding reached its target (false: it hit its cap).
    pub seeding_reached_target: bool,
    /// Whether the format warm-up ran to its end.
    #[serde(default)]
    pub warmup_done: bool,
}

fn yes() -> bool {
    true
}

/// A checkpoint's directory name: the step, with a suffix at step 0 when the warm-up ran
/// (`-warmup` after it, `-warmup-seeded` after the seeding that follows it), so that names sort
/// in the order they were written.
pub fn checkpoint_name(state: &RunState) -> String {
    match (state.step, state.warmup_done, state.seeding_done) {
        (0, true, false) => format!("{}-warmup", step_name(0)),
        (0, true, true) => format!("{}-warmup-seeded", step_name(0)),
        (step, _, _) => step_name(step),
    }
}

pub struct RunDir {
    pub root: PathBuf,
}

pub fn step_name(step: u64) -> String {
    format!("step-{step:06}")
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The newest complete checkpoint, if any.
    pub fn latest_checkpoint(&self) -> Result<Option<PathBuf>> {
        let latest = self.checkpoints().join("latest");
        if !latest.exists() {
            return Ok(None);
        }
        let name = std::fs::read_to_string(&latest)
            .with_context(|| format!("reading {}", latest.display()))?;
        let dir = self.checkpoints().join(name.trim());
        if !dir.join("run_state.json").is_file() {
            bail!(
                "{} names {}, which is not a complete checkpoint",
                latest.display(),
                dir.display()
            );
        }
        Ok(Some(dir))
    }

    /// Writes checkpoint `step` (model, optimizer, buffers, run state) atomically, points
    /// `latest` at it, and removes all but the newest `keep`.
    pub fn save_checkpoint(
        &self,
        trainer: &Trainer,
        tokenizer: &Tokenizer,
        store: &TaskStore,
        state: &RunState,
        keep: usize,
    ) -> Result<PathBuf> {
        let dir = self.checkpoints().join(checkpoint_name(state));
        std::fs::create_dir_all(self.checkpoints())
            .with_context(|| format!("creating {}", self.checkpoints().display()))?;
        if dir.exists() {
            // Same step saved before (e.g. a resume that stopped at once): it is identical.
            return Ok(dir);
        }
        create_dir_atomically(&dir, |tmp| {
            trainer.save(tokenizer, &tmp.join("model"))?;
            store
                .save(&tmp.join("buffers"))
                .context("saving the task buffers")?;
            std::fs::write(
                tmp.join("run_state.json"),
                serde_json::to_string_pretty(state)?,
            )
            .context("writing run_state.json")
        })?;
        write_file_atomically(
            &self.checkpoints().join("latest"),
            checkpoint_name(state).as_bytes(),
        )?;
        self.prune(keep)?;
        Ok(dir)
    }

    fn prune(&self, keep: usize) -> Result<()> {
        let mut steps: Vec<PathBuf> = std::fs::read_dir(self.checkpoints())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("step-"))
            })
            .collect();
        steps.sort();
        let n = steps.len().saturating_sub(keep.max(1));
        for old in &steps[..n] {
            std::fs::remove_dir_all(old)
                .with_context(|| format!("removing the old checkpoint {}", old.display()))?;
        }
        Ok(())
    }

    /// Removes what a run writes before its first checkpoint, except the warm-up's judged
    /// rounds (a run started again reuses those): metrics, seeding rounds, the probe.
    pub fn forget_history(&self) -> Result<()> {
        for name in [
            "metrics.jsonl",
            "seeding.jsonl",
            "probe.jsonl",
            "probe_scores.jsonl",
        ] {
            remove_if_present(&self.root.join(name))?;
        }
        Ok(())
    }

    /// Drops the warm-up's metrics line (a warm-up that starts again writes a new one).
    pub fn drop_warmup_metrics(&self) -> Result<()> {
        self.filter_metrics(|v| v.get("warmup").is_none())
    }

    /// Drops metrics lines of steps after `step` (written after the checkpoint a resume starts
    /// from), so the file describes one consistent history.
    pub fn truncate_metrics(&self, step: u64) -> Result<()> {
        self.filter_metrics(|v| {
            v.get("step")
                .and_then(|s| s.as_u64())
                .is_some_and(|s| s <= step)
        })
    }

    /// Keeps the metrics lines that parse and pass `keep`.
    fn filter_metrics(&self, keep: impl Fn(&serde_json::Value) -> bool) -> Result<()> {
        let path = self.metrics();
        if !path.exists() {
            return Ok(());
        }
        let f =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut kept = String::new();
        for line in BufReader::new(f).lines() {
            let line = line?;
            if serde_json::from_str::<serde_json::Value>(&line).is_ok_and(|v| keep(&v)) {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        write_file_atomically(&path, kept.as_bytes())
    }
}

/// Appends one JSON line to `path` and flushes it.
pub fn append_jsonl(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut line = serde_json::to_string(value)?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|()| f.flush())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The step's trained responses (with their rewards and advantages) and its valid tasks.
pub fn write_samples(path: &Path, out: &StepOutput) -> Result<()> {
    let mut text = String::new();
    for s in &out.samples {
        let v = json!({
            "kind": "response",
            "group": s.group.name(),
            "reward": s.reward,
            "advantage": s.advantage,
            "tokens": s.tokens,
            "strict_format": s.strict_format,
            "injected": s.injected,
            "outcome": s.outcome,
            "prompt": s.prompt,
            "response": s.response,
        });
        text.push_str(&v.to_string());
        text.push('\n');
    }
    for t in &out.tasks {
        text.push_str(&json!({ "kind": "valid_task", "task": t }).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
