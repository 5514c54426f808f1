//! A worker killed from outside is replaced; the job it was running gets an error result, and
//! the jobs of its batch that had not started run on the replacement.
//! (Its own test binary: it kills this process's bwrap children, which must all be its own.)

use std::time::Duration;

use azr_exec::{ExecConfig, Executor, Job, Status};

fn bwrap_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..."
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        if comm.ends_with("(bwrap") && ppid == me {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn killed_worker_is_replaced() {
    let exec = Executor::new(ExecConfig {
        workers: 1,
        timeout: Duration::from_secs(5),
        ..ExecConfig::default()
    })
    .expect("the sandboxed executor starts");
    let job = |x: u32| Job::Run {
        program: "import time\ndef f(x, s):\n    time.sleep(s)\n    return x".into(),
        input: format!("{x}, 0"),
    };
    assert_eq!(exec.run(&job(1)).output.as_deref(), Some("1"));
    let pids = bwrap_children();
    assert_eq!(pids.len(), 1, "one worker sandbox: {pids:?}");
    std::thread::scope(|s| {
        // One batch (a single worker takes the whole queue): the jobs queued behind the one
        // whose worker dies never ran, and must run on the replacement, not fail with it.
        let slow = s.spawn(|| {
            exec.run_batch(&[
                Job::Run {
                    program: "import time\ndef f(x):\n    time.sleep(3)\n    return x".into(),
                    input: "2".into(),
                },
                job(7),
                job(8),
            ])
        });
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: plain syscall on a pid we just found as our own child.
        unsafe { libc::kill(pids[0], libc::SIGKILL) };
        let r = slow.join().unwrap();
        assert_eq!(r[0].status, Status::Killed, "{:?}", r[0]);
        assert_eq!(r[1].output.as_deref(), Some("7"), "{:?}", r[1]);
        assert_eq!(r[2].output.as_deref(), Some("8"), "{:?}", r[2]);
    });
    // The next jobs run on a fresh worker.
    for x in 3..6 {
        assert_eq!(
            exec.run(&job(x)).output.as_deref(),
            Some(x.to_string().as_str())
        );
    }
    let after = bwrap_children();
    assert_eq!(after.len(), 1);
    assert_ne!(after, pids);
}
