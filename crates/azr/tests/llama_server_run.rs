//! `azr train` with `rollout.engine = "llama-server"`, end to end, against a real llama.cpp
//! `llama-server` in router mode, built from the llama-cpp-python sdist on PyPI by
//! `scripts/llama-server` (once; several minutes; cached in the user cache directory). What it
//! shows on the default model: every rollout comes from the server, the server is sent the
//! trainer's weights after every update as a GGUF and its log-probs move with them, its
//! log-probs agree with the trainer's, and the run resumes.
//!
//! When the server cannot be built (no network, no compiler, `AZR_LLAMA_SERVER=skip`) the test
//! says so and passes without checking anything.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::{metrics, run_azr, tiny_args};

/// The built `llama-server`, or None with the reason printed.
fn llama_server() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/llama-server");
    let out = match Command::new(&script).stderr(Stdio::piped()).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!("skipped: running {}: {e}", script.display());
            return None;
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        eprintln!("skipped: scripts/llama-server could not build llama-server: {last}");
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A router-mode server on a free port; it and the model instances it spawns are killed on drop.
struct Server {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(bin: &Path, models_dir: &Path, log: &Path) -> Server {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(bin)
            .arg("--models-dir")
            .arg(models_dir)
            .args(["--no-models-autoload", "--host", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .args(["--parallel", "4", "--ctx-size", "8192", "--threads", "2"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
        };
        let started = Instant::now();
        while server
            .agent
            .get(&format!("{}/health", server.url))
            .call()
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "llama-server did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    fn get(&self, route: &str) -> Value {
        let reply = self
            .agent
            .get(&format!("{}{route}", self.url))
            .call()
            .unwrap();
        serde_json::from_str(&reply.into_string().unwrap()).unwrap()
    }

    fn post(&self, route: &str, body: Value) -> Value {
        let reply = self
            .agent
            .post(&format!("{}{route}", self.url))
            .send_string(&body.to_string())
            .unwrap();
        serde_json::from_str(&reply.into_string().unwrap()).unwrap()
    }

    fn status(&self, model: &str) -> String {
        let models = self.get("/models");
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == model)
            .map(|m| m["status"]["value"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    /// Loads `model` (one of the pushed `azr-<n>`) and waits until it serves.
    fn load(&self, model: &str) {
        if self.status(model) != "loaded" {
            self.post("/models/load", json!({"model": model}));
        }
        let started = Instant::now();
        while self.status(model) != "loaded" {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{model} did not load"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The log-probs of 8 greedy tokens after a fixed prompt, from `model`.
    fn greedy_logprobs(&self, model: &str) -> Vec<f64> {
        self.load(model);
        let reply = self.post(
            "/completion",
            json!({"model": model, "prompt": "def f(a, b):\n    return", "n_predict": 8,
                   "temperature": 0.0, "n_probs": 1, "cache_prompt": false}),
        );
        reply["completion_probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["logprob"].as_f64().unwrap())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.wait();
    }
}

fn train_args(run: &Path, model: &Path, extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "train".to_string(),
        "--out".into(),
        run.display().to_string(),
    ];
    args.extend(tiny_args(model));
    for kv in extra {
        args.extend(["--set".to_string(), kv.clone()]);
    }
    args
}

#[test]
fn self_play_with_rollouts_on_llama_server() {
    let Some(bin) = llama_server() else {
        return;
    };
    let model = azr_model::resolve_model("smollm2-135m", &mut |m| eprintln!("{m}")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    let server = Server::start(&bin, &weights, &dir.path().join("llama-server.log"));

    let run = dir.path().join("run");
    let engine = [
        "rollout.engine=llama-server".to_string(),
        format!("rollout.url={}", server.url),
        format!("rollout.dir={}", weights.display()),
    ];
    run_azr(&train_args(&run, &model, &engine));

    let lines = metrics(&run);
    assert_eq!(lines.len(), 2);
    for r in &lines {
        let m = &r["engine_logprob_mismatch"];
        eprintln!(
            "step {}: {:.1} s ({:.1} s generating); log-prob mismatch {:.4} mean, {:.4} max, {} tokens",
            r["step"],
            r["timing"]["total_s"].as_f64().unwrap(),
            r["timing"]["generation_s"].as_f64().unwrap(),
            m["mean_abs"].as_f64().unwrap(),
            m["max_abs"].as_f64().unwrap(),
            m["tokens"],
        );
        assert!(m["tokens"].as_u64().unwrap() > 0, "{m}");
        // The trainer's weights (f32 GGUF), llama.cpp's kernels against ours: measured 0.002.
        // The weights before the update (lr 1e-3) would be far off at step 2.
        assert!(m["mean_abs"].as_f64().unwrap() < 0.01, "{m}");
    }

    // Pushed before seeding (azr-0) and after step 1's update (azr-1), which the server serves
    // now; the weights moved, so the server's log-probs did.
    assert_eq!(server.status("azr-1"), "loaded");
    assert_ne!(server.status("azr-0"), "loaded");
    let before = server.greedy_logprobs("azr-0");
    let after = server.greedy_logprobs("azr-1");
    let moved = before
        .iter()
        .zip(&after)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("server log-probs, step 0 -> 1: {before:?} -> {after:?}");
    assert!(
        moved > 0.01,
        "the server's log-probs did not move: {before:?} {after:?}"
    );

    // A resumed run sends its weights again (azr-2, after step 2's update), unloads the
    // others, and keeps the last two files.
    run_azr(&[
        "train".to_string(),
        "--resume".into(),
        run.display().to_string(),
        "--set".into(),
        "run.steps=3".into(),
    ]);
    assert_eq!(metrics(&run).len(), 3);
    assert_eq!(server.status("azr-2"), "loaded");
    assert_ne!(server.status("azr-1"), "loaded");
    assert_ne!(server.status("azr-0"), "loaded");
    let mut files: Vec<String> = std::fs::read_dir(&weights)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["azr-1.gguf", "azr-2.gguf"]);
}
