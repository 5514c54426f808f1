//! The executor on a SandboxFusion service, against a stand-in for its `POST /run_code` (the
//! real service needs its repository, conda runtimes and Docker): the stand-in answers with
//! SandboxFusion's JSON and runs the posted script with `python3` under the requested time
//! limit, as SandboxFusion's default configuration does (no isolation). Every job kind gives
//! the same result as on the local sandboxed pool.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use azr_exec::{ExecConfig, Executor, FusionConfig, Job, JobResult, Status};
use serde_json::{json, Value};

/// Runs one posted script as SandboxFusion would, and answers in its format.
fn run_code(body: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main.py");
    std::fs::write(&path, body["code"].as_str().unwrap()).unwrap();
    let limit = Duration::from_secs_f64(body["run_timeout"].as_f64().unwrap());
    let mut child = Command::new("python3")
        .arg(&path)
        .env_remove("PYTHONHASHSEED")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let (status, run) = match code {
        None => ("Failed", "TimeLimitExceeded"),
        Some(0) => ("Success", "Finished"),
        Some(_) => ("Failed", "Finished"),
    };
    json!({"status": status, "message": "", "run_result": {
        "status": run, "execution_time": start.elapsed().as_secs_f64(),
        "return_code": code, "stdout": out, "stderr": err,
    }})
}

fn executors() -> (Executor, Executor) {
    let busy = AtomicBool::new(true);
    let (url, _log) = azr_exec::stub::serve(move |route, body| match route {
        // One 504 first: the client tries again.
        "POST /run_code" if busy.swap(false, Ordering::SeqCst) => {
            (504, json!({"detail": "Gateway Timeout"}))
        }
        "POST /run_code" => (200, run_code(body)),
        _ => (404, json!({"detail": "Not Found"})),
    });
    let cfg = ExecConfig {
        workers: 2,
        timeout: Duration::from_millis(1500),
        ..ExecConfig::default()
    };
    let local = Executor::new(cfg.clone()).expect("the local sandboxed executor starts");
    let remote = Executor::new(ExecConfig {
        sandboxfusion: FusionConfig {
            url,
            max_concurrent: 4,
        },
        ..cfg
    })
    .unwrap();
    (local, remote)
}

/// What must agree between the two back-ends (timings and captured output need not).
fn outcome(r: &JobResult) -> (Status, Option<String>, Option<String>, Option<bool>) {
    (
        r.status,
        r.output.clone(),
        r.rejection.map(|x| x.name().to_string()),
        r.correct,
    )
}

fn validate(program: &str, input: &str) -> Job {
    Job::Validate {
        program: program.into(),
        input: input.into(),
        literal_input: true,
        reads_input: true,
    }
}

#[test]
fn every_job_kind_agrees_with_the_local_pool() {
    let (local, remote) = executors();
    let square = "def f(x):\n    print('noise')\n    return x * x";
    let jobs = vec![
        validate(square, "7"),
        // set order depends on the hash seed: the script re-executes itself with ours
        validate("def f(s):\n    return list(set(s))", "'abcdefgh'"),
        validate("import os\ndef f(x):\n    return x", "1"),
        validate("def f(x):\n    return 1", "1"),
        validate("def f(x):\n    return 1 / x", "0"),
        validate("def f(x):\n    while True:\n        x += 1", "1"),
        validate("def f(x:\n", "1"),
        Job::Run {
            program: square.into(),
            input: "3".into(),
        },
        Job::Deduction {
            predicted: "(1, [2.0])".into(),
            gold: "(1, [2])".into(),
        },
        Job::Abduction {
            program: square.into(),
            predicted_input: "-7".into(),
            gold_output: "49".into(),
        },
        Job::Abduction {
            program: square.into(),
            predicted_input: "6".into(),
            gold_output: "49".into(),
        },
        Job::Induction {
            program: "def f(x):\n    return x * x".into(),
            pairs: vec![("2".into(), "4".into()), ("3".into(), "9".into())],
        },
        Job::Induction {
            program: "def f(x):\n    return x + x".into(),
            pairs: vec![("2".into(), "4".into()), ("3".into(), "9".into())],
        },
    ];
    let mine = local.run_batch(&jobs);
    let theirs = remote.run_batch(&jobs);
    for ((job, a), b) in jobs.iter().zip(&mine).zip(&theirs) {
        assert_eq!(
            outcome(a),
            outcome(b),
            "{job:?}\nlocal: {a:?}\nremote: {b:?}"
        );
    }
    // The outcomes themselves, so that agreeing on nothing cannot pass.
    assert_eq!(theirs[0].gold_output(), Some("49"));
    assert_eq!(theirs[5].status, Status::Timeout);
    assert_eq!(theirs[9].correct, Some(true));
    assert_eq!(theirs[10].correct, Some(false));
}

#[test]
fn a_service_that_is_not_there_fails_the_job_not_the_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let exec = Executor::new(ExecConfig {
        sandboxfusion: FusionConfig {
            url,
            max_concurrent: 1,
        },
        ..ExecConfig::default()
    })
    .unwrap();
    let r = exec.run(&validate("def f(x):\n    return x", "1"));
    assert_eq!(r.status, Status::Killed, "{r:?}");
    assert!(r.error.unwrap_or_default().contains("SandboxFusion"));
    let bad = Executor::new(ExecConfig {
        sandboxfusion: FusionConfig {
            url: "ftp://x".into(),
            max_concurrent: 1,
        },
        ..ExecConfig::default()
    });
    assert!(bad.is_err());
}
