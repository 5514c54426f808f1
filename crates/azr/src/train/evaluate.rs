//! What a run measures besides its steps: the frozen probe (its tasks on disk, solved greedily
//! and scored) and the in-run benchmark evaluation.

use std::path::Path;

use anyhow::{Context, Result};
use azr_core::probe::ProbeScore;
use azr_core::prompt::Rendering;
use azr_core::{TaskStore, ValidTask};
use azr_eval::{evaluate_with_progress, Benchmark, EvalOptions};
use azr_exec::Executor;
use azr_model::Trainer;
use serde_json::json;

use super::config::RunConfig;
use super::rundir::{append_jsonl, step_name, RunDir};
use crate::policy::{GreedyEval, ScaffoldConfig};

/// Tasks as JSON lines (the probe's, the warm-up's), written atomically.
pub fn write_tasks(path: &Path, tasks: &[azr_core::ValidTask]) -> Result<()> {
    let mut text = String::new();
    for t in tasks {
        text.push_str(&serde_json::to_string(t)?);
        text.push('\n');
    }
    azr_model::checkpoint::write_file_atomically(path, text.as_bytes())
}

pub fn read_tasks(path: &Path) -> Result<Vec<azr_core::ValidTask>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

/// What evaluating a run's model needs besides the model.
#[derive(Clone, Copy)]
pub struct Evaluator<'a> {
    pub cfg: &'a RunConfig,
    pub tokenizer: &'a azr_model::Tokenizer,
    pub rendering: Rendering<'a>,
    pub executor: &'a Executor,
    pub run_dir: &'a RunDir,
}

impl Evaluator<'_> {
    /// The frozen probe, built once after seeding: `eval.probe` tasks from what the model
    /// proposed while seeding, then derived ones, none the warm-up asked; written to
    /// `probe.jsonl`.
    pub fn build_probe(&self, store: &TaskStore) -> Result<Vec<ValidTask>> {
        let warmed_on = super::warmup::solver_tasks(&self.run_dir.root.join("warmup"))?;
        let (tasks, proposed) = azr_core::probe::build(
            store,
            self.executor,
            self.cfg.eval.probe,
            self.cfg.run.seed,
            &warmed_on,
        );
        tracing::info!(
            "probe: {} tasks ({proposed} proposed during seeding, {} derived from stored \
             programs with new inputs)",
            tasks.len(),
            tasks.len() - proposed
        );
        write_tasks(&self.run_dir.root.join("probe.jsonl"), &tasks)?;
        Ok(tasks)
    }

    /// The model's score on the probe at `step`, appended to `probe_scores.jsonl`.
    pub fn probe(&self, trainer: &Trainer, tasks: &[ValidTask], step: u64) -> Result<ProbeScore> {
        let score = self.solve_probe(trainer, tasks)?;
        append_jsonl(
            &self.run_dir.root.join("probe_scores.jsonl"),
            &json!({"step": step, "score": score}),
        )?;
        Ok(score)
    }

    /// Greedy, scaffolded answers to the probe's tasks (in the run's think mode), scored strict and
    /// lenient.
    fn solve_probe(&self, trainer: &Trainer, tasks: &[ValidTask]) -> Result<ProbeScore> {
        let Evaluator {
            cfg,
            tokenizer,
            rendering,
            executor,
            ..
        } = *self;
        let max_tokens = cfg.eval.max_tokens;
        let think_budget = if cfg.sampling.think_budget == 0 {
            0
        } else {
            cfg.sampling
                .think_budget
                .min(max_tokens.saturating_sub(cfg.sampling.answer_budget + 16))
        };
        let gen = GreedyEval {
            model: trainer.model(),
            tokenizer,
            max_new_tokens: max_tokens,
            scaffold: Some(ScaffoldConfig {
                think: cfg.format.think,
                think_budget,
                answer_budget: cfg.sampling.answer_budget,
                plain: matches!(rendering, Rendering::Plain),
                induction_inputs: cfg.step.induction_inputs,
                entry_header: true,
            }),
            batch: cfg.sampling.batch,
        };
        let mut texts: Vec<(String, bool)> = vec![(String::new(), false); tasks.len()];
        for group in [
            azr_core::Group::SOLVE_DEDUCTION,
            azr_core::Group::SOLVE_ABDUCTION,
        ] {
            let idx: Vec<usize> = (0..tasks.len())
                .filter(|&i| tasks[i].task_type() == group.task_type)
                .collect();
            let prompts: Vec<String> = idx
                .iter()
                .map(|&i| {
                    azr_core::PromptTask::solve(&tasks[i]).render_with(rendering, cfg.format.think)
                })
                .collect();
            for (&i, r) in idx.iter().zip(gen.respond(Some(group), &prompts)?) {
                texts[i] = (r.text.clone(), r.scaffolded());
            }
        }
        let responses: Vec<(&str, bool)> = texts.iter().map(|(t, s)| (t.as_str(), *s)).collect();
        Ok(azr_core::probe::score(
            tasks,
            &responses,
            executor,
            &cfg.step.parse_config(),
        ))
    }

    /// The in-run benchmark evaluation: `eval.limit` problems of each `eval.bench`, greedy, written
    /// under `RUN_DIR/eval/step-N/`; returns pass@1 by benchmark, in the config's order.
    pub fn benchmarks(
        &self,
        trainer: &Trainer,
        step: u64,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let Evaluator {
            cfg,
            tokenizer,
            rendering,
            executor,
            run_dir,
        } = *self;
        let ids = cfg.eval.bench.ids();
        let data = azr_eval::DataSource::from_setting(&cfg.eval.data);
        let benchmarks = ids
            .iter()
            .map(|id| Benchmark::load_default(*id, &data).map_err(anyhow::Error::from))
            .collect::<Result<Vec<_>>>()?;
        let batch = cfg.sampling.batch;
        let mut gen = GreedyEval {
            model: trainer.model(),
            tokenizer,
            max_new_tokens: cfg.eval.max_tokens,
            scaffold: Some(eval_scaffold(cfg, rendering, cfg.eval.max_tokens)),
            batch,
        };
        let options = EvalOptions {
            rendering,
            limit: Some(cfg.eval.limit),
            sample_seed: Some(cfg.run.seed),
            batch_size: batch.max(1),
            ..EvalOptions::default()
        };
        let report =
            evaluate_with_progress(&benchmarks, &mut gen, executor, &options, &mut |_| {})?;
        let dir = run_dir.root.join("eval").join(step_name(step));
        std::fs::create_dir_all(&dir)?;
        report
            .write_files(&dir.join("summary.json"), &dir.join("problems.jsonl"))
            .map_err(|e| anyhow::anyhow!("writing the eval report: {e}"))?;
        Ok(report
            .benchmarks
            .iter()
            .map(|b| (b.benchmark.name().to_string(), json!(b.pass_at_1)))
            .collect())
    }
}

/// The scaffold of greedy evaluations inside a run: the eval prompts prefill `<think>`, the
/// answer budget is the run's, the think phase gets the rest of `max_tokens`.
fn eval_scaffold(cfg: &RunConfig, rendering: Rendering<'_>, max_tokens: usize) -> ScaffoldConfig {
    ScaffoldConfig {
        think: azr_core::ThinkMode::Required,
        think_budget: max_tokens.saturating_sub(cfg.sampling.answer_budget + 16),
        answer_budget: cfg.sampling.answer_budget,
        plain: matches!(rendering, Rendering::Plain),
        induction_inputs: cfg.step.induction_inputs,
        entry_header: false,
    }
}
