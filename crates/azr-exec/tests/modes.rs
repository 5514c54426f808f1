//! Start-up modes: a missing bubblewrap is refused with the fix named; --no-sandbox still runs.
//! (Its own test binary: it changes PATH, which other tests read.)

use azr_exec::sandbox::PythonRuntime;
use azr_exec::{ExecConfig, ExecError, Executor, Job, SandboxMode, Status};

#[test]
fn missing_bubblewrap_is_refused_and_no_sandbox_runs() {
    let python = PythonRuntime::discover(None)
        .expect("python3 is installed")
        .executable;
    let empty = tempfile::tempdir().unwrap();
    // SAFETY: this test binary has a single test; nothing else reads the environment meanwhile.
    std::env::set_var("PATH", empty.path());

    let err = Executor::new(ExecConfig::default())
        .err()
        .expect("refused without bwrap");
    assert!(matches!(err, ExecError::NoBubblewrap), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("apt-get install -y bubblewrap"),
        "{message}"
    );
    assert!(message.contains("--no-sandbox"), "{message}");

    let exec = Executor::new(ExecConfig {
        workers: 1,
        timeout: std::time::Duration::from_secs(1),
        sandbox: SandboxMode::None,
        python: Some(python),
        ..ExecConfig::default()
    })
    .expect("the unsandboxed executor starts");
    let r = exec.run(&Job::Validate {
        program: "def f(x):\n    return sorted(x)".into(),
        input: "[3, 1, 2]".into(),
        literal_input: false,
        reads_input: false,
    });
    assert_eq!(r.gold_output(), Some("[1, 2, 3]"), "{r:?}");
    let r = exec.run(&Job::Run {
        program: "def f(x):\n    while True:\n        pass".into(),
        input: "1".into(),
    });
    assert_eq!(r.status, Status::Timeout, "{r:?}");
}
