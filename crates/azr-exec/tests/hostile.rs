//! Hostile programs: each test asserts containment AND that the pool still answers a benign job
//! correctly afterwards. These run the real sandbox (bubblewrap + python3), as CI does, as root.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use azr_exec::{ExecConfig, Executor, Job, JobResult, Rejection, Status};

fn executor(workers: usize, timeout_ms: u64) -> Executor {
    Executor::new(ExecConfig {
        workers,
        timeout: Duration::from_millis(timeout_ms),
        memory_mb: 512,
        ..ExecConfig::default()
    })
    .expect("the sandboxed executor starts (is bubblewrap installed?)")
}

fn run(exec: &Executor, program: &str) -> JobResult {
    exec.run(&Job::Run {
        program: program.into(),
        input: "1".into(),
    })
}

/// The pool still answers a benign job correctly.
fn assert_benign(exec: &Executor) {
    let r = exec.run(&Job::Run {
        program: "def f(xs):\n    return sorted(xs, reverse=True)".into(),
        input: "[3, 1, 2]".into(),
    });
    assert_eq!(r.status, Status::Ok, "benign job after hostile one: {r:?}");
    assert_eq!(r.output.as_deref(), Some("[3, 2, 1]"));
}

#[test]
fn infinite_loop_times_out() {
    let exec = executor(1, 1000);
    let start = Instant::now();
    let r = run(&exec, "def f(x):\n    while True:\n        x += 1");
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "deadline not enforced"
    );
    assert_benign(&exec);
}

#[test]
fn infinite_loop_ignoring_sigterm_and_sigxcpu_times_out() {
    let exec = executor(1, 1000);
    let r = run(
        &exec,
        "import signal\ndef f(x):\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n    \
         signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    \
         while True:\n        pass",
    );
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn sleeping_job_times_out_on_wall_clock() {
    let exec = executor(1, 500);
    let start = Instant::now();
    let r = run(&exec, "import time\ndef f(x):\n    time.sleep(60)");
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_benign(&exec);
}

#[test]
fn fork_bomb_is_contained() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os, time\ndef f(x):\n    n = 0\n    while True:\n        try:\n            pid = os.fork()\n        \
         except OSError:\n            return n\n        if pid == 0:\n            time.sleep(60)\n            os._exit(0)\n        \
         n += 1",
    );
    // RLIMIT_NPROC stops the forks: children park, the parent counts forks until EAGAIN.
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let forks: u64 = r.output.as_deref().unwrap().parse().unwrap();
    assert!(forks < 16, "{forks} forks succeeded");
    assert_benign(&exec);
    // Nothing of the bomb is left in the sandbox.
    let r = run(
        &exec,
        "import os\ndef f(x):\n    return len([p for p in os.listdir('/proc') if p.isdigit()])",
    );
    assert_eq!(
        r.output.as_deref(),
        Some("2"),
        "the worker (PID 1) and this job: {r:?}"
    );
}

#[test]
fn endless_fork_bomb_times_out_and_is_cleaned_up() {
    let exec = executor(1, 1500);
    let r = run(
        &exec,
        "import os\ndef f(x):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass",
    );
    assert_eq!(r.status, Status::Timeout, "{r:?}");
    let r = run(
        &exec,
        "import os\ndef f(x):\n    return len([p for p in os.listdir('/proc') if p.isdigit()])",
    );
    assert_eq!(r.output.as_deref(), Some("2"), "worker (PID 1), job: {r:?}");
    assert_benign(&exec);
}

#[test]
fn thread_bomb_is_contained() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import threading, time\ndef f(x):\n    n = 0\n    while True:\n        try:\n            \
         threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n            n += 1\n        \
         except RuntimeError:\n            return n",
    );
    assert_eq!(r.status, Status::Ok, "{r:?}");
    assert!(r.output.as_deref().unwrap().parse::<u64>().unwrap() < 16);
    assert_benign(&exec);
}

#[test]
fn memory_bomb_hits_the_limit() {
    let exec = executor(1, 5000);
    let r = run(
        &exec,
        "def f(x):\n    blocks = []\n    while True:\n        blocks.append(bytearray(10 ** 7))",
    );
    assert_eq!(r.status, Status::Memory, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn huge_single_allocation_hits_the_limit() {
    let exec = executor(1, 5000);
    let r = run(&exec, "def f(x):\n    return len(bytearray(1 << 40))");
    assert_eq!(r.status, Status::Memory, "{r:?}");
    let r = run(&exec, "def f(x):\n    return [0] * (10 ** 10)");
    assert_eq!(r.status, Status::Memory, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn huge_integer_power_is_stopped() {
    let exec = executor(1, 1000);
    let r = run(&exec, "def f(x):\n    return 7 ** (10 ** 10)");
    assert!(
        matches!(r.status, Status::Timeout | Status::Memory),
        "{r:?}"
    );
    assert_benign(&exec);
}

#[test]
fn no_network_to_a_loopback_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let exec = executor(1, 3000);
    let program = format!(
        "import socket\ndef f(x):\n    s = socket.socket()\n    s.settimeout(1)\n    \
         s.connect(('127.0.0.1', {port}))\n    s.sendall(b'exfiltrated')\n    return 'connected'"
    );
    let r = run(&exec, &program);
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("ConnectionRefused"),
        "{r:?}"
    );
    assert!(listener.accept().is_err(), "the listener got a connection");
    assert_benign(&exec);
}

#[test]
fn host_files_cannot_be_read_written_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "host-secret-4711").unwrap();
    let exec = executor(1, 2000);
    let p = secret.display();
    let read = run(&exec, &format!("def f(x):\n    return open('{p}').read()"));
    assert_eq!(read.status, Status::Error, "{read:?}");
    assert!(!format!("{read:?}").contains("host-secret-4711"));
    let write = run(
        &exec,
        &format!("def f(x):\n    open('{p}', 'w').write('pwned')\n    return 1"),
    );
    assert_eq!(write.status, Status::Error, "{write:?}");
    let created = dir.path().join("created.txt");
    let c = created.display();
    let create = run(
        &exec,
        &format!("def f(x):\n    open('{c}', 'w').write('x')\n    return 1"),
    );
    assert_eq!(create.status, Status::Error, "{create:?}");
    let delete = run(
        &exec,
        &format!("import os\ndef f(x):\n    os.remove('{p}')\n    return 1"),
    );
    assert_eq!(delete.status, Status::Error, "{delete:?}");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "host-secret-4711"
    );
    assert!(!created.exists());
    // The host's /etc and home are not there at all; the Python runtime is read-only.
    let etc = run(&exec, "def f(x):\n    return open('/etc/passwd').read()");
    assert_eq!(etc.status, Status::Error, "{etc:?}");
    let usr = run(
        &exec,
        "def f(x):\n    open('/usr/azr-test', 'w')\n    return 1",
    );
    assert_eq!(usr.status, Status::Error, "{usr:?}");
    assert!(!std::path::Path::new("/usr/azr-test").exists());
    assert_benign(&exec);
}

#[test]
fn environment_is_not_inherited() {
    // SAFETY: set before the executor starts; no other thread of this test reads it concurrently.
    std::env::set_var("AZR_TEST_SECRET", "env-secret-0815");
    let exec = executor(1, 2000);
    let r = run(&exec, "import os\ndef f(x):\n    return dict(os.environ)");
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let out = r.output.unwrap();
    assert!(!out.contains("env-secret-0815"), "{out}");
    assert!(!out.contains("HOME") && !out.contains("PATH"), "{out}");
    let r = run(
        &exec,
        "def f(x):\n    return open('/proc/1/environ', 'rb').read()",
    );
    assert!(!format!("{r:?}").contains("env-secret-0815"));
    assert_benign(&exec);
}

#[test]
fn killing_the_parent_fails() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return 1",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(
        r.error.as_deref().unwrap().contains("PermissionError"),
        "{r:?}"
    );
    let r = run(
        &exec,
        "import os, signal\ndef f(x):\n    os.kill(1, signal.SIGKILL)\n    return 1",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn killing_its_own_process_group_and_everything() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os, signal\ndef f(x):\n    os.killpg(0, signal.SIGKILL)",
    );
    assert_eq!(r.status, Status::Killed, "{r:?}");
    // kill(-1) reaches every process the job may signal: none (Linux spares the caller, and the
    // worker runs as another uid), so it fails with ESRCH.
    let r = run(
        &exec,
        "import os, signal\ndef f(x):\n    try:\n        os.kill(-1, signal.SIGKILL)\n    \
         except ProcessLookupError:\n        return 'alive'",
    );
    assert_eq!(r.output.as_deref(), Some("'alive'"), "{r:?}");
    assert_benign(&exec);
}

#[test]
fn stdout_flood_is_capped() {
    let exec = executor(1, 5000);
    let r = run(
        &exec,
        "def f(x):\n    while True:\n        print('y' * 10000)",
    );
    assert_eq!(r.status, Status::OutputLimit, "{r:?}");
    let captured = r.stdout.unwrap_or_default();
    assert!(
        captured.len() <= 4096 && captured.starts_with("yyyy"),
        "{}",
        captured.len()
    );
    let r = run(
        &exec,
        "import sys\ndef f(x):\n    sys.stderr.write('e' * (1 << 22))\n    return 1",
    );
    assert_eq!(r.status, Status::OutputLimit, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn huge_return_value_is_refused() {
    let exec = executor(1, 5000);
    let r = run(&exec, "def f(x):\n    return 'z' * (1 << 26)");
    assert_eq!(r.status, Status::OutputLimit, "{r:?}");
    let v = exec.run(&Job::Validate {
        program: "def f(x):\n    return list(range(10000))".into(),
        input: "1".into(),
        literal_input: false,
        reads_input: false,
    });
    assert_eq!(v.status, Status::Rejected);
    assert_eq!(v.rejection, Some(Rejection::OutputTooLong), "{v:?}");
    assert_benign(&exec);
}

#[test]
fn daemon_does_not_outlive_its_job() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os, time\ndef f(x):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            \
         time.sleep(30)\n        os._exit(0)\n    time.sleep(0.2)\n    return 'spawned'",
    );
    assert_eq!(r.output.as_deref(), Some("'spawned'"), "{r:?}");
    let r = run(&exec, "import os\ndef f(x):\n    return sorted(int(p) for p in os.listdir('/proc') if p.isdigit())");
    let pids: Vec<u64> = r
        .output
        .unwrap()
        .trim_matches(&['[', ']'][..])
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "only the worker (PID 1) and this job: {pids:?}"
    );
    // The worker skips its sweep when the job holds the namespace's last pid; a job cannot
    // pretend it does (writing ns_last_pid needs a capability no job has).
    let r = run(
        &exec,
        "import os\ndef f(x):\n    try:\n        fd = os.open('/proc/sys/kernel/ns_last_pid', os.O_WRONLY)\n        \
         os.write(fd, b'1')\n        return 'wrote'\n    except OSError as e:\n        return e.errno",
    );
    assert_eq!(r.output.as_deref(), Some("1"), "EPERM expected: {r:?}");
    assert_benign(&exec);
}

#[test]
fn no_state_leaks_between_jobs() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import builtins, json\nLEAK = 1\ndef f(x):\n    builtins.leaked = 42\n    json.leaked = 43\n    \
         try:\n        open('/tmp/leak', 'w').write('x')\n    except OSError:\n        pass\n    return 1",
    );
    assert_eq!(r.status, Status::Ok, "{r:?}");
    let r = run(
        &exec,
        "import builtins, json, os\ndef f(x):\n    return (hasattr(builtins, 'leaked'), hasattr(json, 'leaked'), \
         os.listdir('/tmp'), 'LEAK' in globals())",
    );
    assert_eq!(
        r.output.as_deref(),
        Some("(False, False, [], False)"),
        "{r:?}"
    );
    assert_benign(&exec);
}

#[test]
fn printing_the_result_protocol_changes_nothing() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os\ndef f(x):\n    print('{\"s\": \"ok\", \"o\": \"42\", \"lit\": true, \"ms\": 1}')\n    \
         for fd in range(3, 64):\n        try:\n            os.write(fd, b'\\n{\"ready\": true}\\n')\n        \
         except OSError:\n            pass\n    return 7",
    );
    // Writing to the job's own result pipe can at most garble the claimed value; it never reaches
    // the worker's protocol stream, and the next job is answered correctly.
    assert_ne!(r.output.as_deref(), Some("42"), "{r:?}");
    assert_benign(&exec);
    // Bytes that are not UTF-8 (or not JSON) on the result pipe are no result: the job is an
    // error, and its worker lives on.
    let r = run(
        &exec,
        "import os\ndef f(x):\n    os.write(3, b'\\xff\\xfe\\t{\"s\": \"ok\", \"o\": \"42\"}')\n    return 7",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn os_exit_and_sys_exit_are_errors() {
    let exec = executor(1, 2000);
    let r = run(&exec, "import os\ndef f(x):\n    os._exit(0)");
    assert_eq!(r.status, Status::Error, "{r:?}");
    let r = run(&exec, "import sys\ndef f(x):\n    sys.exit(0)");
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("SystemExit"));
    let r = run(&exec, "def f(x):\n    raise KeyboardInterrupt");
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn segfault_via_ctypes_is_killed() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import ctypes\ndef f(x):\n    return ctypes.string_at(0)",
    );
    assert_eq!(r.status, Status::Killed, "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("SIGSEGV"), "{r:?}");
    assert_benign(&exec);
}

#[test]
fn closing_every_descriptor_gives_an_error() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os\ndef f(x):\n    os.closerange(0, 1024)\n    return 1",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let exec = executor(1, 5000);
    let r = run(&exec, "def f(x):\n    return f(x + 1)");
    assert_eq!(r.status, Status::Error, "{r:?}");
    assert!(r.error.as_deref().unwrap().contains("RecursionError"));
    let nested = format!(
        "def f(x):\n    return {}1{}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let r = run(&exec, &nested);
    assert_ne!(r.status, Status::Ok, "{r:?}");
    assert_benign(&exec);
}

#[test]
fn privileges_cannot_be_regained() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os\ndef f(x):\n    os.setuid(0)\n    return os.getuid()",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    let r = run(
        &exec,
        "import resource\ndef f(x):\n    resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n    return 1",
    );
    assert_eq!(r.status, Status::Error, "{r:?}");
    let r = run(
        &exec,
        "import os\ndef f(x):\n    return os.getuid() != 0 and os.geteuid() != 0",
    );
    assert_eq!(r.output.as_deref(), Some("True"), "{r:?}");
    assert_benign(&exec);
}

#[test]
fn host_processes_are_invisible() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "import os\ndef f(x):\n    return len([p for p in os.listdir('/proc') if p.isdigit()])",
    );
    assert_eq!(r.output.as_deref(), Some("2"), "worker (PID 1), job: {r:?}");
    assert_benign(&exec);
}

#[test]
fn abduction_input_must_be_literal() {
    let exec = executor(1, 2000);
    // An object whose __eq__ always says yes would "match" any gold output.
    let r = exec.run(&Job::Abduction {
        program: "def f(x):\n    return x".into(),
        predicted_input: "type('X', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()"
            .into(),
        gold_output: "[1, 2, 3]".into(),
    });
    assert_eq!(r.correct, Some(false), "{r:?}");
    let r = exec.run(&Job::Abduction {
        program: "def f(x):\n    return x".into(),
        predicted_input: "__import__('os').system('true')".into(),
        gold_output: "0".into(),
    });
    assert_eq!(r.correct, Some(false), "{r:?}");
    assert_benign(&exec);
}

#[test]
fn forged_values_do_not_count() {
    let exec = executor(1, 2000);
    // An induction answer returning an object that *prints* like the gold output is not a value.
    let r = exec.run(&Job::Induction {
        program: "class Liar:\n    def __repr__(self):\n        return '2'\n    def __eq__(self, o):\n        \
                  return True\ndef f(x):\n    return Liar()"
            .into(),
        pairs: vec![("1".into(), "2".into())],
    });
    assert_eq!(r.correct, Some(false), "{r:?}");
    // A subclass of int is not an int.
    let r = exec.run(&Job::Induction {
        program: "class I(int):\n    pass\ndef f(x):\n    return I(x + 1)".into(),
        pairs: vec![("1".into(), "2".into())],
    });
    assert_eq!(r.correct, Some(false), "{r:?}");
    assert_benign(&exec);
}

#[test]
fn gold_output_never_enters_the_job() {
    let exec = executor(1, 2000);
    // The program hunts the heap for the gold output; it is not there to find.
    let r = exec.run(&Job::Abduction {
        program: "import gc\ndef f(x):\n    for o in gc.get_objects():\n        if isinstance(o, (str, bytes)) and \
                  'gold-7c1e' in str(o):\n            return 'gold-7c1e-found'\n    for o in gc.get_objects():\n        \
                  if isinstance(o, dict):\n            for v in o.values():\n                \
                  if isinstance(v, str) and 'gold-7c1e' in v:\n                    return 'gold-7c1e-found'\n    return x"
            .into(),
        predicted_input: "'wrong'".into(),
        gold_output: "'gold-7c1e-found'".into(),
    });
    assert_eq!(r.correct, Some(false), "{r:?}");
    assert_eq!(r.output.as_deref(), Some("'wrong'"));
    assert_benign(&exec);
}

#[test]
fn hostile_job_does_not_delay_others_beyond_its_timeout() {
    let exec = executor(2, 1500);
    let mut jobs = vec![Job::Run {
        program: "def f(x):\n    while True:\n        pass".into(),
        input: "1".into(),
    }];
    for i in 0..200 {
        jobs.push(Job::Run {
            program: "def f(x):\n    return x * 2".into(),
            input: i.to_string(),
        });
    }
    let start = Instant::now();
    let results = exec.run_batch(&jobs);
    let took = start.elapsed();
    assert_eq!(results[0].status, Status::Timeout);
    for (i, r) in results[1..].iter().enumerate() {
        assert_eq!(
            r.output.as_deref(),
            Some((i * 2).to_string().as_str()),
            "{r:?}"
        );
    }
    // The other worker carried the benign jobs while one was stuck.
    assert!(took < Duration::from_millis(1500 + 2500), "took {took:?}");
}

#[test]
fn captured_stdout_does_not_leak_between_jobs() {
    let exec = executor(1, 2000);
    let r = run(
        &exec,
        "def f(x):\n    print('first-job-output')\n    return 1",
    );
    assert_eq!(r.stdout.as_deref(), Some("first-job-output\n"));
    let r = run(&exec, "def f(x):\n    return 2");
    assert_eq!(r.stdout, None, "{r:?}");
    assert_benign(&exec);
}
