//! `azr train`: Absolute Zero self-play end to end (azr-spec section 2).
//!
//! Read top to bottom: resolve the config, open (or resume) the run directory, load the model
//! into a [`Trainer`], start the executor; run the format warm-up when enabled ([`warmup`]);
//! seed the buffers from the identity task (no updates, capped in rounds and minutes); build the
//! frozen probe and hold its tasks out; then per step: [`azr_core::run_step`] (propose, validate,
//! estimate learnability, solve, score, rewards, TRR++, buffer growth) with the model as the
//! policy, one [`Trainer::step`] over the step's trained responses, a metrics line, samples,
//! and a checkpoint every `run.checkpoint_every` steps, at the end, and on Ctrl-C.

mod config;
mod evaluate;
mod record;
mod rollouts;
mod rundir;
mod warmup;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azr_core::prompt::Rendering;
use azr_core::table::PerTask;
use azr_core::{run_seeding_round, run_step, seeding_done, TaskStore};
use azr_exec::Executor;
use azr_model::{resolve_model, LoadedModel, SamplingParams, TrainStats, Trainer};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use crate::policy::{rendering, ChatBridge, ScaffoldConfig};
use crate::tensorboard::EventWriter;
pub use config::RunConfig;
use evaluate::{read_tasks, Evaluator};
use record::{ProbeRecord, StepRecord, StepTimes};
use rundir::{append_jsonl, remove_if_present, step_name, RunDir, RunState};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Start from this preset: cpu (default; SmolLM2-135M, minutes per step on 2 cores),
    /// qwen-coder-0.5b (the smallest model that proposes valid tasks), reference (the paper's
    /// sizes, for GPUs).
    #[arg(long, default_value = "cpu")]
    preset: String,
    /// A TOML file laid over the preset (same sections as --print-config shows).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. --set run.steps=20 --set model.name=qwen2.5-coder-0.5b
    /// (repeatable; applied last).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    overrides: Vec<String>,
    /// Print the effective config as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// The run directory (default: runs/run-<unix time>). Must not hold a run already.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its latest checkpoint (its config.toml, plus
    /// any --set overrides, e.g. a larger run.steps).
    #[arg(long, conflicts_with_all = ["out", "preset", "config"])]
    resume: Option<PathBuf>,
    /// Run Python WITHOUT the bubblewrap sandbox. Only for code you trust; never for a model.
    #[arg(long)]
    no_sandbox: bool,
}

pub fn run(args: &TrainArgs, quiet: bool) -> Result<()> {
    // 1. Config and run directory.
    let (cfg, run_dir) = match &args.resume {
        Some(dir) => {
            let rd = RunDir::new(dir);
            let text = std::fs::read_to_string(rd.config())
                .with_context(|| format!("{} is not a run directory", dir.display()))?;
            let base = config::parse(&text, &rd.config().display().to_string())?;
            (config::with_overrides(&base, &args.overrides)?, rd)
        }
        None => {
            let cfg = config::resolve(&args.preset, args.config.as_deref(), &args.overrides)?;
            let out = args.out.clone().unwrap_or_else(|| {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/run-{secs}"))
            });
            (cfg, RunDir::new(&out))
        }
    };
    if args.print_config {
        print!("{}", config::to_toml(&cfg)?);
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrl_c(stop.clone());

    // 2. Model (fresh, or the checkpoint's), trainer, buffers. A run stopped before its first
    // checkpoint starts again from the base model (the warm-up reuses its rounds on disk).
    let resume_from = match &args.resume {
        Some(_) => {
            let ckpt = run_dir.latest_checkpoint()?;
            if ckpt.is_none() {
                tracing::info!(
                    "{} has no checkpoint yet: starting it again from the base model",
                    run_dir.root.display()
                );
                run_dir.forget_history()?;
            }
            ckpt
        }
        None => {
            if run_dir.config().exists() {
                bail!(
                    "{} already holds a run: pass --resume {} to continue it, or another --out",
                    run_dir.root.display(),
                    run_dir.root.display()
                );
            }
            None
        }
    };
    // A LoRA run resumes from its base model plus the checkpoint's adapters: the checkpoint's
    // Hugging Face files hold the merged weights, which are not the base.
    let lora = cfg.optim.lora.enabled();
    let model_path = match &resume_from {
        Some(ckpt) if !lora => ckpt.join("model"),
        _ => resolve_model(&cfg.model.name, &mut |m| eprintln!("{m}"))?,
    };
    let lm = azr_model::load(&model_path)
        .with_context(|| format!("loading the model {}", model_path.display()))?;
    let LoadedModel {
        model, tokenizer, ..
    } = lm;
    let mut trainer = Trainer::new(model, cfg.optim)?;
    let (mut store, mut state) = match &resume_from {
        Some(ckpt) => {
            if lora {
                trainer.load_adapter(&ckpt.join("model"))?;
            }
            trainer.load_optimizer(&ckpt.join("model"))?;
            let store = TaskStore::load(&ckpt.join("buffers"))
                .with_context(|| format!("loading the buffers of {}", ckpt.display()))?;
            let path = ckpt.join("run_state.json");
            let state: RunState = serde_json::from_str(
                &std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
            )
            .with_context(|| format!("{} is not valid", path.display()))?;
            run_dir.truncate_metrics(state.step)?;
            tracing::info!(
                "resuming {} from {} (step {})",
                run_dir.root.display(),
                ckpt.display(),
                state.step
            );
            (store, state)
        }
        None => {
            std::fs::create_dir_all(&run_dir.root)
                .with_context(|| format!("creating {}", run_dir.root.display()))?;
            (
                TaskStore::new(cfg.run.buffer_cap, cfg.run.seed)?,
                RunState {
                    step: 0,
                    seeding_done: false,
                    seeding_rounds: 0,
                    seeding_reached_target: false,
                    warmup_done: false,
                },
            )
        }
    };
    std::fs::write(run_dir.config(), config::to_toml(&cfg)?)
        .with_context(|| format!("writing {}", run_dir.config().display()))?;
    for sub in ["samples", "tensorboard"] {
        std::fs::create_dir_all(run_dir.root.join(sub))?;
    }
    let mut tb = EventWriter::create(&run_dir.root.join("tensorboard"))?;

    let executor = Executor::new(cfg.exec_config(args.no_sandbox))?;
    let mut engine = rollouts::connect(&cfg, &run_dir.root)?;
    let chat = ChatBridge(&tokenizer);
    let rendering = rendering(cfg.model.template, &chat).context("model.template")?;
    // Stop strings come from the scaffold (`</answer>`, and `\nUser:` in the plain rendering).
    let params = SamplingParams {
        temperature: cfg.sampling.temperature,
        top_p: cfg.sampling.top_p,
        top_k: 0,
        max_new_tokens: cfg.sampling.max_new_tokens,
        stop_strings: Vec::new(),
        stop_token_ids: trainer.model().config().eos_token_ids.clone(),
    };
    let scaffold = ScaffoldConfig {
        think: cfg.format.think,
        think_budget: cfg.sampling.think_budget,
        answer_budget: cfg.sampling.answer_budget,
        plain: matches!(rendering, Rendering::Plain),
        induction_inputs: cfg.step.induction_inputs,
        entry_header: true,
    };
    let step_cfg = cfg.step;
    let draw = || {
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    };
    let bar = ProgressBar::with_draw_target(Some(0), draw());
    bar.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed_precise}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    tracing::info!(
        "run {}: model {} ({:.1}M trainable parameters{}), {} prompts per group, {} new tokens",
        run_dir.root.display(),
        model_path.display(),
        trainer.num_params() as f64 / 1e6,
        if lora {
            format!(", LoRA rank {}", cfg.optim.lora.rank)
        } else {
            String::new()
        },
        cfg.step.batch,
        cfg.sampling.max_new_tokens
    );

    // 3. The format warm-up, once, before seeding: a base model that proposes nothing valid
    // would leave seeding, the probe and the first steps with the identity program alone.
    if cfg.warmup.enabled && state.step == 0 && !state.warmup_done {
        let env = warmup::Env {
            cfg: &cfg,
            tokenizer: &tokenizer,
            params: &params,
            scaffold,
            rendering,
            executor: &executor,
            bar: &bar,
            stop: &stop,
            dir: run_dir.root.join("warmup"),
        };
        run_dir.drop_warmup_metrics()?;
        let Some(summary) = warmup::run(&env, &mut trainer, &mut store)? else {
            bar.finish_and_clear();
            eprintln!(
                "stopped during the warm-up; continue with: azr train --resume {}",
                run_dir.root.display()
            );
            return Ok(());
        };
        state.warmup_done = true;
        let line = json!({"step": 0, "warmup": summary.scalars()});
        append_jsonl(&run_dir.metrics(), &line)?;
        tb.add_json_scalars("", &strip_step(&line), 0)?;
        tb.flush()?;
        run_dir.save_checkpoint(
            &trainer,
            &tokenizer,
            &store,
            &state,
            cfg.run.keep_checkpoints,
        )?;
        for (group, b) in &summary.before {
            let a = summary.after.get(group).copied().unwrap_or_default();
            tracing::info!(
                "warm-up {group}: strict format {}/{} -> {}/{}, verified {}/{} -> {}/{}, {} examples",
                b.strict,
                b.n,
                a.strict,
                a.n,
                b.verified,
                b.n,
                a.verified,
                a.n,
                summary.kept.get(group).copied().unwrap_or(0)
            );
        }
        tracing::info!(
            "warm-up: {} examples from {} responses, {} cross-entropy steps ({:.0} s)",
            summary.examples,
            summary.sampled,
            summary.steps.len(),
            summary.secs
        );
    }

    // 4. Seeding: propose from the identity seed until the buffers hold their target. A stopped
    // seeding starts again from its first round.
    if !state.seeding_done {
        remove_if_present(&run_dir.root.join("seeding.jsonl"))?;
        state.seeding_rounds = 0;
        let started = Instant::now();
        let budget = Duration::from_secs_f64(cfg.seeding.max_minutes * 60.0);
        while !seeding_done(&store, cfg.seeding.target)
            && state.seeding_rounds < cfg.seeding.max_rounds
            && started.elapsed() < budget
            && !stop.load(Ordering::SeqCst)
        {
            let round = state.seeding_rounds as u64;
            bar.set_message(format!(
                "seeding round {}/{}",
                round + 1,
                cfg.seeding.max_rounds
            ));
            rollouts::sync(&mut engine, &trainer, &tokenizer)?;
            let mut policy = rollouts::policy(
                &engine,
                &trainer,
                &tokenizer,
                &params,
                scaffold,
                &cfg,
                u64::MAX - round,
                &bar,
            );
            let out = run_seeding_round(
                round,
                &mut store,
                &mut policy,
                &executor,
                rendering,
                &step_cfg,
            )
            .context("seeding round")?;
            append_jsonl(&run_dir.root.join("seeding.jsonl"), &out)?;
            tracing::info!(
                "seeding round {}: {} new tasks, buffers {:?} ({:.0} s)",
                round + 1,
                out.added,
                out.buffer_sizes,
                policy.spent().0
            );
            state.seeding_rounds += 1;
        }
        state.seeding_done = true;
        state.seeding_reached_target = seeding_done(&store, cfg.seeding.target);
        if !state.seeding_reached_target {
            tracing::warn!(
                "seeding stopped short of {} tasks per buffer after {} rounds ({:?}): training \
                 continues from what the buffers hold (the identity seed at least)",
                cfg.seeding.target,
                state.seeding_rounds,
                PerTask::from_fn(|t| store.len(t))
            );
        }
        run_dir.save_checkpoint(
            &trainer,
            &tokenizer,
            &store,
            &state,
            cfg.run.keep_checkpoints,
        )?;
    }

    // 5. The frozen probe: built once, after seeding, from what the model proposed (and
    // executor-derived tasks when that is too little), none the warm-up asked; a resumed run
    // reads it back. Its tasks leave the buffers: the solver never trains on them.
    let judge = Evaluator {
        cfg: &cfg,
        tokenizer: &tokenizer,
        rendering,
        executor: &executor,
        run_dir: &run_dir,
    };
    let probe_path = run_dir.root.join("probe.jsonl");
    let probe: Vec<azr_core::ValidTask> = if cfg.eval.every == 0 || cfg.eval.probe == 0 {
        Vec::new()
    } else if probe_path.exists() {
        read_tasks(&probe_path)?
    } else {
        bar.set_message("building the probe");
        let tasks = judge.build_probe(&store)?;
        let score = judge.probe(&trainer, &tasks, 0)?;
        let scalars = serde_json::to_value(ProbeRecord::from(&score))?;
        tb.add_json_scalars("probe", &scalars, 0)?;
        tracing::info!(
            "probe at step 0: strict {}/{}, lenient {}/{}",
            score.strict,
            score.n,
            score.lenient,
            score.n
        );
        tasks
    };
    store.hold_out(&probe);

    // 6. Self-play steps.
    let first = state.step + 1;
    let steps = ProgressBar::with_draw_target(Some(cfg.run.steps), draw());
    steps.set_style(
        ProgressStyle::with_template("steps [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    steps.set_position(state.step.min(cfg.run.steps));
    for step in first..=cfg.run.steps {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let t0 = Instant::now();
        bar.set_message(format!("step {step}: generating"));
        rollouts::sync(&mut engine, &trainer, &tokenizer)?;
        let mut policy = rollouts::policy(
            &engine, &trainer, &tokenizer, &params, scaffold, &cfg, step, &bar,
        );
        let out = run_step(
            step,
            &mut store,
            &mut policy,
            &executor,
            rendering,
            &step_cfg,
        )
        .with_context(|| format!("step {step}"))?;
        let (gen_secs, gen_tokens) = policy.spent();
        let step_secs = t0.elapsed().as_secs_f64();
        drop(policy);
        // The engine's log-probs against the trainer's, before the update changes the weights.
        let mismatch = match engine {
            Some(_) => Some(rollouts::mismatch(&out, &trainer).context("log-prob mismatch")?),
            None => None,
        };

        // No token with a non-zero advantage (and no entropy bonus): nothing to learn, and
        // AdamW's moments would still move the weights on a zero gradient. Skip the update (the
        // log line says so). A learning rate of 0 (a no-update control run) skips it too: the
        // update would change nothing, and it is about half of a step's time.
        let learns = cfg.optim.optimizer.lr > 0.0
            && (out.metrics.nonzero_advantage_fraction > 0.0 || cfg.optim.entropy_coef != 0.0);
        let train = if learns {
            bar.set_message(format!("step {step}: training"));
            let rows = rollouts::train_rows(&out, engine.is_none())?;
            trainer
                .step(&rows)
                .with_context(|| format!("step {step}: update"))?
        } else {
            TrainStats {
                step: trainer.steps(),
                loss: f64::NAN,
                grad_norm: f64::NAN,
                entropy: f64::NAN,
                logprob: f64::NAN,
                clip_fraction: f64::NAN,
                approx_kl: f64::NAN,
                lr: cfg.optim.optimizer.lr,
                ..TrainStats::default()
            }
        };
        state.step = step;

        let t1 = Instant::now();
        rundir::write_samples(
            &run_dir
                .root
                .join("samples")
                .join(format!("{}.jsonl", step_name(step))),
            &out,
        )?;
        let mut eval = None;
        let mut probe_line = None;
        if cfg.eval.every > 0 && step % cfg.eval.every == 0 {
            if !probe.is_empty() {
                bar.set_message(format!("step {step}: probe"));
                let score = judge.probe(&trainer, &probe, step)?;
                probe_line = Some(ProbeRecord::from(&score));
            }
            if !cfg.eval.bench.ids().is_empty() && cfg.eval.limit > 0 {
                bar.set_message(format!("step {step}: evaluating"));
                eval = Some(judge.benchmarks(&trainer, step)?);
            }
        }
        // The metrics line goes first: a checkpoint of step N implies its line is on disk (a
        // resume drops lines after its checkpoint, never needs one before it).
        let times = StepTimes {
            generation: gen_secs,
            step: step_secs,
            other: t1.elapsed().as_secs_f64(),
        };
        let mut record = StepRecord::new(&out, &train, gen_tokens, times, eval, probe_line);
        record.engine_logprob_mismatch = mismatch;
        append_jsonl(&run_dir.metrics(), &record)?;
        tb.add_json_scalars(
            "",
            &strip_step(&serde_json::to_value(&record)?),
            step as i64,
        )?;
        tb.flush()?;
        let checkpoint = step % cfg.run.checkpoint_every == 0
            || step == cfg.run.steps
            || stop.load(Ordering::SeqCst);
        if checkpoint {
            bar.set_message(format!("step {step}: checkpoint"));
            let t2 = Instant::now();
            run_dir.save_checkpoint(
                &trainer,
                &tokenizer,
                &store,
                &state,
                cfg.run.keep_checkpoints,
            )?;
            tracing::info!(
                "checkpoint of step {step} written in {:.1} s",
                t2.elapsed().as_secs_f64()
            );
        }
        record.log();
        steps.set_position(step);
    }
    steps.finish_and_clear();
    bar.finish_and_clear();
    if stop.load(Ordering::SeqCst) {
        eprintln!(
            "stopped at step {}; continue with: azr train --resume {}",
            state.step,
            run_dir.root.display()
        );
    }
    let latest = run_dir.latest_checkpoint()?;
    eprintln!(
        "run directory: {}\n  metrics: {}\n  plots:   azr report {}\n  model:   {}",
        run_dir.root.display(),
        run_dir.metrics().display(),
        run_dir.root.display(),
        latest
            .map(|d| d.join("model").display().to_string())
            .unwrap_or_else(|| "(no checkpoint)".into())
    );
    Ok(())
}

fn strip_step(line: &serde_json::Value) -> serde_json::Value {
    let mut v = line.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("step");
    }
    v
}

/// First Ctrl-C: finish the current step, checkpoint, stop. Second: exit at once.
fn install_ctrl_c(stop: Arc<AtomicBool>) {
    let result = ctrlc::set_handler(move || {
        if stop.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: finishing this step, then writing a checkpoint (Ctrl-C again to abort)"
        );
    });
    if let Err(e) = result {
        tracing::warn!("cannot catch Ctrl-C ({e}); a checkpoint is still written every run.checkpoint_every steps");
    }
}
