//! `azr train` end to end on a tiny random model (fast): the run directory, the metrics schema,
//! checkpoints that load, resume equality, and clear errors. Plus one step on the real default
//! model (slow, but in CI: the product's main path must run).

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{metrics, ok, tiny_args};

fn azr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_azr"))
}

fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny-model");
    azr_model::tiny::write_tiny_model(&path, "qwen2", true, 3, 8192).unwrap();
    path
}

/// The parts of a metrics line that must be identical between runs (timings are not).
fn deterministic(line: &serde_json::Value) -> serde_json::Value {
    let mut v = line.clone();
    let o = v.as_object_mut().unwrap();
    o.remove("timing");
    o.remove("eval");
    // memory depends on the process's history (a resumed run is a new process)
    o.remove("peak_rss_mib");
    v
}

#[test]
fn two_steps_on_a_tiny_model_then_resume_equals_uninterrupted() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let full = dir.path().join("full");
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&full)
        .args(tiny_args(&model))
        .output()
        .unwrap());

    // The run directory.
    for p in [
        "config.toml",
        "metrics.jsonl",
        "seeding.jsonl",
        "samples/step-000001.jsonl",
        "samples/step-000002.jsonl",
        "checkpoints/latest",
        "checkpoints/step-000000/run_state.json",
        "checkpoints/step-000002/model/model.safetensors",
        "checkpoints/step-000002/model/optimizer.safetensors",
        "checkpoints/step-000002/buffers/store.json",
    ] {
        assert!(full.join(p).exists(), "missing {p}");
    }
    let tb: Vec<_> = std::fs::read_dir(full.join("tensorboard"))
        .unwrap()
        .collect();
    assert_eq!(tb.len(), 1);
    assert_eq!(
        std::fs::read_to_string(full.join("checkpoints/latest")).unwrap(),
        "step-000002"
    );

    // The metrics schema.
    let lines = metrics(&full);
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"], i as u64 + 1);
        let groups = l["groups"].as_object().unwrap();
        assert_eq!(groups.len(), 6, "{groups:?}");
        for g in groups.values() {
            for k in [
                "reward_mean",
                "reward_std",
                "accuracy",
                "format_error_rate",
                "response_length",
            ] {
                assert!(g[k].is_number(), "group metric {k} missing: {g}");
            }
        }
        for t in ["deduction", "abduction", "induction"] {
            assert!(l["proposals"][t]["valid"].is_number(), "{l}");
            assert!(l["buffer_sizes"][t].as_u64().unwrap() >= 1);
        }
        for k in ["loss", "grad_norm", "entropy", "lr", "tokens"] {
            assert!(l["train"][k].is_number(), "train.{k} missing: {l}");
        }
        assert!(l["train"]["tokens"].as_u64().unwrap() > 0);
        for k in [
            "generation_s",
            "execution_s",
            "training_s",
            "other_s",
            "total_s",
        ] {
            assert!(l["timing"][k].as_f64().unwrap() >= 0.0);
        }
    }

    // The checkpoint is a model `azr generate` can load.
    let gen = ok(azr()
        .args(["--quiet", "generate", "--max-tokens", "4", "--model"])
        .arg(full.join("checkpoints/step-000002/model"))
        .args(["--prompt", "hi"])
        .output()
        .unwrap());
    assert!(!gen.stdout.is_empty());

    // Resume: stop after 1 step, continue to 2; step 2 must be what the full run did.
    let part = dir.path().join("part");
    one_step_then_resume_to_two(&part, &tiny_args(&model));
    let resumed = metrics(&part);
    assert_eq!(resumed.len(), 2);
    assert_eq!(deterministic(&resumed[1]), deterministic(&lines[1]));
    let a = std::fs::read(full.join("checkpoints/step-000002/model/model.safetensors")).unwrap();
    let b = std::fs::read(part.join("checkpoints/step-000002/model/model.safetensors")).unwrap();
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    let before =
        std::fs::read(full.join("checkpoints/step-000000/model/model.safetensors")).unwrap();
    assert!(before != a, "two updates left the weights unchanged");

    // The report plots the run.
    let report = ok(azr().arg("report").arg(&full).output().unwrap());
    assert!(String::from_utf8_lossy(&report.stdout).contains("steps: 2"));
    assert!(full.join("plots").read_dir().unwrap().count() > 0);
}

/// A run of `args` stopped after step 1, then resumed to step 2.
fn one_step_then_resume_to_two(run: &Path, args: &[String]) {
    let mut first = args.to_vec();
    first.extend(["--set".into(), "run.steps=1".into()]);
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(run)
        .args(&first)
        .output()
        .unwrap());
    assert_eq!(metrics(run).len(), 1);
    ok(azr()
        .args(["--quiet", "train", "--resume"])
        .arg(run)
        .args(["--set", "run.steps=2"])
        .output()
        .unwrap());
}

/// Starts `azr train --out run` in the background (stdout discarded, stderr piped).
fn spawn_train(run: &Path, args: &[String]) -> std::process::Child {
    azr()
        .args(["--quiet", "train", "--out"])
        .arg(run)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls every 20 ms until `done` holds, for at most 5 minutes.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A LoRA run: checkpoints hold the merged model and the adapters; a resume rebuilds the base
/// plus adapters and ends where the uninterrupted run ends.
#[test]
fn lora_run_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut args = tiny_args(&model);
    args.extend(["--set".into(), "optim.lora.rank=4".into()]);
    let full = dir.path().join("full");
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&full)
        .args(&args)
        .output()
        .unwrap());
    let part = dir.path().join("part");
    one_step_then_resume_to_two(&part, &args);
    for file in ["model.safetensors", "adapter/adapter_model.safetensors"] {
        let path = |run: &Path| run.join("checkpoints/step-000002/model").join(file);
        let (a, b) = (
            std::fs::read(path(&full)).unwrap(),
            std::fs::read(path(&part)).unwrap(),
        );
        assert!(a == b, "{file} differs after the resume");
    }
    let base = std::fs::read(full.join("checkpoints/step-000000/model/model.safetensors")).unwrap();
    let last = std::fs::read(full.join("checkpoints/step-000002/model/model.safetensors")).unwrap();
    assert!(base != last, "the merged weights did not move");
    assert_eq!(
        deterministic(&metrics(&full)[1]),
        deterministic(&metrics(&part)[1])
    );
}

/// `kill -9` mid-run loses at most the steps since the last checkpoint; the run resumes.
#[test]
fn kill_9_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = dir.path().join("run");
    let mut args = tiny_args(&model);
    args.extend(["--set".into(), "run.steps=4".into()]);
    let mut child = spawn_train(&run, &args);
    let latest = run.join("checkpoints/latest");
    wait_until("a step-1 checkpoint", || {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::fs::read_to_string(&latest).ok().as_deref() == Some("step-000001")
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    ok(azr()
        .args(["--quiet", "train", "--resume"])
        .arg(&run)
        .output()
        .unwrap());
    let steps: Vec<u64> = metrics(&run)
        .iter()
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4]);
}

/// Ctrl-C (SIGINT) finishes the step, writes a checkpoint of it, says how to continue and exits
/// cleanly; the run resumes from there.
#[test]
fn ctrl_c_checkpoints_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = dir.path().join("run");
    let mut args = tiny_args(&model);
    args.extend([
        "--set".into(),
        "run.steps=200".into(),
        "--set".into(),
        "run.checkpoint_every=1000".into(),
    ]);
    let child = spawn_train(&run, &args);
    wait_until("a finished step", || {
        std::fs::read_to_string(run.join("metrics.jsonl")).is_ok_and(|t| t.lines().count() > 0)
    });
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("continue with: azr train --resume"),
        "{stderr}"
    );
    let done = metrics(&run).len() as u64;
    assert!(done < 200, "the run did not stop");
    assert_eq!(
        std::fs::read_to_string(run.join("checkpoints/latest")).unwrap(),
        format!("step-{done:06}")
    );
    ok(azr()
        .args(["--quiet", "train", "--resume"])
        .arg(&run)
        .args(["--set", &format!("run.steps={}", done + 1)])
        .output()
        .unwrap());
    assert_eq!(metrics(&run).len() as u64, done + 1);
}

/// `eval.every` runs a benchmark subset (from the built-in data: no `eval.data`) and the frozen
/// probe during training and logs them.
#[test]
fn eval_every_step_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = dir.path().join("run");
    let mut args = tiny_args(&model);
    for s in [
        "run.steps=1".to_string(),
        "seeding.max_rounds=0".into(),
        "eval.every=1".into(),
        "eval.bench=cruxeval-o".into(),
        "eval.limit=3".into(),
        "eval.max_tokens=8".into(),
        "eval.probe=6".into(),
    ] {
        args.push("--set".into());
        args.push(s);
    }
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&run)
        .args(&args)
        .output()
        .unwrap());
    let lines = metrics(&run);
    let p = lines[0]["eval"]["cruxeval-o"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&p));
    let summary = std::fs::read_to_string(run.join("eval/step-000001/summary.json")).unwrap();
    assert!(summary.contains("cruxeval-o"));
    let problems = std::fs::read_to_string(run.join("eval/step-000001/problems.jsonl")).unwrap();
    assert_eq!(problems.lines().count(), 3);
    // The probe: 6 tasks (derived from the identity seeds: nothing was proposed), scored
    // before the first step and at it.
    let probe = std::fs::read_to_string(run.join("probe.jsonl")).unwrap();
    assert_eq!(probe.lines().count(), 6);
    let scores = std::fs::read_to_string(run.join("probe_scores.jsonl")).unwrap();
    let steps: Vec<u64> = scores
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![0, 1]);
    let strict = lines[0]["probe"]["strict_accuracy"].as_f64().unwrap();
    let lenient = lines[0]["probe"]["lenient_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&strict) && strict <= lenient);
}

/// A no-update control (learning rate 0) samples and scores like any run but skips the update.
#[test]
fn a_learning_rate_of_0_skips_the_update() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = dir.path().join("run");
    let mut args = tiny_args(&model);
    args.extend(["--set".into(), "run.steps=1".into()]);
    args.extend(["--set".into(), "optim.optimizer.lr=0".into()]);
    let out = ok(azr()
        .args(["train", "--out"])
        .arg(&run)
        .args(&args)
        .output()
        .unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no update: learning rate 0"), "{stderr}");
    let line = &metrics(&run)[0];
    assert!(line["train"]["entropy"].is_null(), "{line}");
    assert_eq!(line["train"]["lr"].as_f64(), Some(0.0));
    assert!(line["groups"].as_object().is_some_and(|g| g.len() == 6));
}

/// `azr bench rollout` replays a recorded step with and without shared prefills.
#[test]
fn bench_rollout_replays_a_recorded_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let run = dir.path().join("run");
    let mut args = tiny_args(&model);
    args.extend(["--set".into(), "run.steps=1".into()]);
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&run)
        .args(&args)
        .output()
        .unwrap());
    let samples = run.join("samples/step-000001.jsonl");
    let recorded = std::fs::read_to_string(&samples).unwrap().lines().count();
    let out = ok(azr()
        .args(["bench", "rollout"])
        .arg(&samples)
        .output()
        .unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The prompt positions each setting ran: sharing runs fewer (the 6 prompts open alike).
    let ran = |name: &str| -> usize {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name} ")))
            .unwrap_or_else(|| panic!("no {name} row in:\n{stdout}"));
        line.split('|').nth(2).unwrap().trim().parse().unwrap()
    };
    assert!(
        ran("azr, shared prefill") < ran("azr, unshared prefill"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("of {recorded} rollouts identical")),
        "{stdout}"
    );
    // Not a samples file: one clear line.
    let out = azr()
        .args(["bench", "rollout"])
        .arg(run.join("config.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not JSON"), "{stderr}");
}

#[test]
fn clear_errors_for_bad_config_and_existing_runs() {
    let out = azr()
        .args(["train", "--set", "run.stepz=3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key stepz"), "{err}");
    assert!(!err.contains("panicked"));

    let out = ok(azr()
        .args(["train", "--print-config", "--set", "run.steps=3"])
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("steps = 3") && text.contains("[optim.optimizer]"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    let out = azr()
        .args(["train", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    let out = azr()
        .args(["train", "--resume"])
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a run directory"));
}

/// One self-play step of the real default model (SmolLM2-135M), tiny sizes: the README's main
/// path, end to end, on the real weights.
#[test]
fn one_step_on_the_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&run)
        .args([
            "--set",
            "run.steps=1",
            "--set",
            "seeding.max_rounds=0",
            "--set",
            "step.batch=1",
            "--set",
            "step.references=1",
            "--set",
            "step.learnability_samples=2",
            "--set",
            "step.proposer_batch=1",
            "--set",
            "sampling.max_new_tokens=48",
            "--set",
            "sampling.think_budget=16",
            "--set",
            "sampling.answer_budget=16",
        ])
        .output()
        .unwrap());
    let lines = metrics(&run);
    assert_eq!(lines.len(), 1);
    // One response per group: no group can have variance, so no token has an advantage and
    // the update is skipped (no tokens trained), which the metrics say.
    let l = &lines[0];
    assert_eq!(l["zero_variance_groups"].as_u64(), Some(6));
    assert_eq!(l["nonzero_advantage_fraction"].as_f64(), Some(0.0));
    assert_eq!(l["train"]["tokens"].as_u64(), Some(0));
    assert!(run
        .join("checkpoints/step-000001/model/config.json")
        .exists());
}
