//! `azr train` with the format warm-up on a tiny random model: what it writes (held answers
//! before and after, the rounds, the summary, a step-0 metrics line, its own checkpoint before
//! seeding's), a probe that leaves its tasks out, a resume that does not run it again, and a
//! run with no checkpoint left that starts it again.

use std::path::Path;
use std::process::Command;

mod common;
use common::ok;

fn azr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_azr"))
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn warm_up_then_one_step_then_resume_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-model");
    azr_model::tiny::write_tiny_model(&model, "qwen2", true, 3, 8192).unwrap();
    let run = dir.path().join("run");
    let args: Vec<String> = [
        format!("model.name={}", model.display()),
        "run.steps=1".into(),
        "run.keep_checkpoints=5".into(),
        "eval.every=1".into(),
        "eval.probe=4".into(),
        "eval.limit=0".into(),
        "seeding.max_rounds=1".into(),
        "step.batch=1".into(),
        "step.proposer_batch=1".into(),
        "step.references=1".into(),
        "step.learnability_samples=2".into(),
        "sampling.max_new_tokens=24".into(),
        "sampling.think_budget=4".into(),
        "sampling.answer_budget=4".into(),
        "warmup.enabled=true".into(),
        "warmup.rounds=2".into(),
        "warmup.batch=2".into(),
        "warmup.held=2".into(),
        "warmup.steps=2".into(),
    ]
    .iter()
    .flat_map(|s| ["--set".to_string(), s.clone()])
    .collect();
    ok(azr()
        .args(["--quiet", "train", "--out"])
        .arg(&run)
        .args(&args)
        .output()
        .unwrap());

    let w = run.join("warmup");
    // 2 held prompts per role, before and after; 2 per role in each of the 2 rounds.
    for (name, n) in [
        ("held-before", 12),
        ("held-after", 12),
        ("round-001", 12),
        ("round-002", 12),
    ] {
        let judged = lines(&w.join(format!("{name}.jsonl")));
        assert_eq!(judged.len(), n, "{name}");
        for j in &judged {
            // a kept response is a verified one, rewrapped
            assert!(j.get("example").is_none() || j["verified"] == true, "{j}");
        }
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["before"].as_object().unwrap().len(), 6);
    assert_eq!(summary["sampled"], 24);

    let m = lines(&run.join("metrics.jsonl"));
    assert_eq!(m.len(), 2, "the warm-up's line, then step 1");
    assert_eq!(m[0]["step"], 0);
    let groups = m[0]["warmup"]["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 6);
    for (g, v) in groups {
        for k in [
            "strict_before",
            "strict_after",
            "verified_before",
            "verified_after",
        ] {
            let x = v[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{g}.{k} = {x}");
        }
    }
    assert_eq!(m[1]["step"], 1);
    assert!(run
        .join("checkpoints/step-000000-warmup/run_state.json")
        .exists());
    let state =
        std::fs::read_to_string(run.join("checkpoints/step-000000-warmup/run_state.json")).unwrap();
    assert!(state.contains("\"warmup_done\": true"), "{state}");
    assert!(state.contains("\"seeding_done\": false"), "{state}");
    // Seeding runs after the warm-up, with its own checkpoint.
    let state =
        std::fs::read_to_string(run.join("checkpoints/step-000000-warmup-seeded/run_state.json"))
            .unwrap();
    assert!(state.contains("\"seeding_done\": true"), "{state}");
    let warmed_on: Vec<serde_json::Value> = lines(&w.join("tasks.jsonl"));
    let probe = lines(&run.join("probe.jsonl"));
    assert_eq!(probe.len(), 4);
    assert!(probe.iter().all(|t| !warmed_on.contains(t)), "{probe:?}");

    // Resume: the warm-up is done; its line stays, once.
    let before = std::fs::read(w.join("summary.json")).unwrap();
    ok(azr()
        .args(["--quiet", "train", "--resume"])
        .arg(&run)
        .args(["--set", "run.steps=2"])
        .output()
        .unwrap());
    let m = lines(&run.join("metrics.jsonl"));
    let steps: Vec<u64> = m.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![0, 1, 2]);
    assert_eq!(std::fs::read(w.join("summary.json")).unwrap(), before);

    // No checkpoint left (a run stopped during its warm-up): --resume starts it again from the
    // base model, reusing the judged rounds on disk, and seeds after it.
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    std::fs::remove_file(run.join("probe.jsonl")).unwrap();
    let round = std::fs::read(w.join("round-001.jsonl")).unwrap();
    ok(azr()
        .args(["--quiet", "train", "--resume"])
        .arg(&run)
        .args(["--set", "run.steps=0"])
        .output()
        .unwrap());
    assert_eq!(std::fs::read(w.join("round-001.jsonl")).unwrap(), round);
    let m = lines(&run.join("metrics.jsonl"));
    let steps: Vec<u64> = m.iter().map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, vec![0], "one warm-up line, no step");
    assert!(run
        .join("checkpoints/step-000000-warmup-seeded/run_state.json")
        .exists());
    assert_eq!(
        lines(&run.join("seeding.jsonl")).len(),
        1,
        "one round, written once"
    );
}
