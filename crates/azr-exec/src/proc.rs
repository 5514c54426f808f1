//! One worker process (a sandboxed `python3` running `worker.py`) and the line protocol to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::{Deserialize, Serialize};

use crate::config::{ExecConfig, SandboxMode};
use crate::job::Status;
use crate::sandbox::{self, PythonRuntime};
use crate::ExecError;

/// How long a fresh worker may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack on top of a job's own timeout before we stop trusting the worker and kill the sandbox.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(3);

/// A request in the worker's wire format.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Request {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    pub literal_input: bool,
    pub reads_input: bool,
    pub timeout: f64,
    pub mem_mb: u64,
    pub max_output: usize,
}

/// One job's reply: what its process claimed, completed by the worker's account of how it ended.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Reply {
    pub s: Status,
    #[serde(default)]
    pub o: Option<String>,
    #[serde(default)]
    pub lit: bool,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub r: Option<String>,
    #[serde(default)]
    pub eq: Option<bool>,
    /// Multi-call mode: one claimed value per input.
    #[serde(default)]
    pub outs: Option<Vec<Claimed>>,
    /// Captured stdout/stderr (from the worker's header, never from the job's result).
    #[serde(skip)]
    pub out: Option<String>,
    /// Wall time of the job (from the worker's header).
    #[serde(skip)]
    pub ms: f64,
}

/// Statuses a job process may claim for itself; anything else is no result at all.
const CLAIMABLE: [Status; 5] = [
    Status::Ok,
    Status::Error,
    Status::Rejected,
    Status::Memory,
    Status::OutputLimit,
];

/// The worker's own account of one job: the JSON before the tab of its reply line.
#[derive(Deserialize)]
struct Header {
    ms: f64,
    /// Set when the worker stopped the job (`timeout`, `output_limit`); its result is void.
    #[serde(default)]
    end: Option<Status>,
    #[serde(default)]
    e: Option<String>,
    /// The signal that ended the job process, if one did.
    #[serde(default)]
    sig: Option<i32>,
    #[serde(default)]
    signame: Option<String>,
    /// Non-zero exit status of the job process.
    #[serde(default)]
    code: Option<i32>,
    #[serde(default)]
    out: Option<String>,
}

/// Parses a reply line, `HEADER \t RESULT`: the header is the worker's (an unreadable one is a
/// broken worker); the result is whatever bytes the job process wrote, so a malformed one only
/// means the job returned nothing, and the way its process ended decides the status.
pub(crate) fn parse_reply(line: &[u8]) -> Result<Reply, String> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let (head, result) = match line.iter().position(|&b| b == b'\t') {
        Some(tab) => (&line[..tab], &line[tab + 1..]),
        None => (line, &[][..]),
    };
    let header: Header = serde_json::from_slice(head).map_err(|e| {
        format!(
            "unreadable reply from worker ({e}): {}",
            String::from_utf8_lossy(&head[..head.len().min(200)])
        )
    })?;
    let claimed = || {
        serde_json::from_slice::<Reply>(result)
            .ok()
            .filter(|r| CLAIMABLE.contains(&r.s))
    };
    let mut reply = match header.end {
        Some(end) => Reply::failure(end, header.e.unwrap_or_default()),
        None => claimed().unwrap_or_else(|| match header.sig {
            Some(sig) => {
                let status = match sig {
                    libc::SIGXCPU => Status::Timeout,
                    libc::SIGXFSZ => Status::OutputLimit,
                    _ => Status::Killed,
                };
                let name = header.signame.unwrap_or_else(|| sig.to_string());
                Reply::failure(status, format!("terminated by signal {name}"))
            }
            None => Reply::failure(
                Status::Error,
                format!(
                    "process exited with code {} before returning",
                    header.code.unwrap_or(0)
                ),
            ),
        }),
    };
    reply.ms = header.ms;
    reply.out = header.out;
    Ok(reply)
}

impl Reply {
    pub fn failure(status: Status, error: String) -> Reply {
        Reply {
            s: status,
            o: None,
            lit: false,
            e: Some(error),
            r: None,
            eq: None,
            outs: None,
            out: None,
            ms: 0.0,
        }
    }
}

/// One call's claimed value in multi-call mode: (repr or null, is a plain literal, error).
pub(crate) type Claimed = (Option<String>, bool, Option<String>);

#[derive(Serialize)]
struct WorkerConfig<'a> {
    banned: &'a [String],
    forbidden_names: &'a [String],
    forbidden_attrs: &'a [String],
    job_uid: u32,
    max_program_chars: usize,
    max_procs: u64,
    capture_bytes: u64,
    return_stdout: usize,
    recursion_limit: u32,
    kill_all: bool,
}

/// The first line a worker reads: its lists and limits, as JSON.
pub(crate) fn worker_config(cfg: &ExecConfig, job_uid: u32) -> String {
    let wire = WorkerConfig {
        banned: &cfg.banned_modules,
        forbidden_names: &cfg.forbidden_names,
        forbidden_attrs: &cfg.forbidden_attrs,
        job_uid,
        max_program_chars: cfg.max_program_chars,
        max_procs: cfg.max_procs,
        capture_bytes: cfg.capture_bytes,
        return_stdout: cfg.return_stdout_bytes,
        recursion_limit: cfg.recursion_limit,
        kill_all: cfg.sandbox == SandboxMode::Bubblewrap,
    };
    serde_json::to_string(&wire).expect("config serializes")
}

#[derive(Deserialize)]
struct Ready {
    ready: bool,
}

pub(crate) enum CallError {
    /// No reply within the job's timeout plus grace: the sandbox was killed.
    Hung,
    /// The worker exited (or its pipe broke) before replying.
    Died(String),
}

pub(crate) struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Option<Vec<u8>>>,
    stderr_tail: Arc<Mutex<String>>,
}

impl WorkerProc {
    pub fn spawn(
        cfg: &ExecConfig,
        py: &PythonRuntime,
        bwrap: Option<&std::path::Path>,
        job_uid: u32,
    ) -> Result<WorkerProc, ExecError> {
        let mut cmd = sandbox::worker_command(cfg, py, bwrap);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that killing the sandbox cannot hit the caller.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| ExecError::Spawn(format!("cannot start worker: {e}")))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");

        let (tx, replies) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("azr-exec-reader".into())
            .spawn(move || {
                let mut reader = BufReader::with_capacity(1 << 16, stdout);
                loop {
                    // Bytes, not a String: a job's result part may be anything.
                    let mut line = Vec::new();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => {
                            let _ = tx.send(None);
                            return;
                        }
                        Ok(_) => {
                            if tx.send(Some(line)).is_err() {
                                return;
                            }
                        }
                    }
                }
            })
            .map_err(|e| ExecError::Spawn(format!("cannot start reader thread: {e}")))?;
        let stderr_tail = Arc::new(Mutex::new(String::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::Builder::new()
            .name("azr-exec-stderr".into())
            .spawn(move || {
                let mut stderr = stderr;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    tail.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if tail.len() > 8192 {
                        let cut = tail.len() - 4096;
                        let cut = (cut..tail.len())
                            .find(|i| tail.is_char_boundary(*i))
                            .unwrap_or(0);
                        tail.drain(..cut);
                    }
                }
            })
            .map_err(|e| ExecError::Spawn(format!("cannot start stderr thread: {e}")))?;

        let mut worker = WorkerProc {
            child,
            stdin,
            replies,
            stderr_tail,
        };
        let line = worker_config(cfg, job_uid);
        let ready = worker
            .send_line(&line)
            .and_then(|_| worker.recv(START_TIMEOUT));
        match ready {
            Ok(line) if serde_json::from_slice::<Ready>(&line).is_ok_and(|r| r.ready) => Ok(worker),
            Ok(line) => Err(ExecError::Spawn(format!(
                "worker sent {:?} instead of its ready line",
                String::from_utf8_lossy(&line)
            ))),
            Err(err) => {
                let reason = match err {
                    CallError::Hung => "it did not start in time".to_string(),
                    CallError::Died(why) => why,
                };
                worker.kill();
                std::thread::sleep(Duration::from_millis(50));
                Err(ExecError::Spawn(format!(
                    "the sandboxed worker failed to start ({reason}); its stderr: {}",
                    worker.stderr_tail().trim()
                )))
            }
        }
    }

    fn send_line(&mut self, line: &str) -> Result<(), CallError> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.stdin
            .write_all(&buf)
            .and_then(|_| self.stdin.flush())
            .map_err(|e| CallError::Died(format!("worker pipe closed: {e}")))
    }

    fn recv(&mut self, limit: Duration) -> Result<Vec<u8>, CallError> {
        match self.replies.recv_timeout(limit) {
            Ok(Some(line)) => Ok(line),
            Ok(None) | Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(CallError::Died(format!("worker exited ({status})")))
            }
            Err(RecvTimeoutError::Timeout) => Err(CallError::Hung),
        }
    }

    /// Sends a batch of requests as one line and collects their replies, which the worker streams
    /// back one line per job, in order. Each reply may take its own job's timeout plus a grace
    /// period. On a failure the replies so far are returned with the error, which belongs to the
    /// next job; the jobs after it never ran.
    pub fn call_batch(&mut self, requests: &[&Request]) -> (Vec<Reply>, Option<CallError>) {
        let line = serde_json::to_string(requests).expect("requests serialize");
        if let Err(e) = self.send_line(&line) {
            return (Vec::new(), Some(e));
        }
        let mut replies = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            let mut limit = Duration::from_secs_f64(request.timeout) + BACKSTOP_GRACE;
            if i == 0 {
                // The worker parses and compiles the whole batch before the first job starts.
                limit += BACKSTOP_GRACE * (requests.len() as u32 - 1);
            }
            let reply = self
                .recv(limit)
                .and_then(|line| parse_reply(&line).map_err(CallError::Died));
            match reply {
                Ok(reply) => replies.push(reply),
                Err(e) => return (replies, Some(e)),
            }
        }
        (replies, None)
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills the whole sandbox: bwrap's group; `--die-with-parent` takes the PID namespace down.
    pub fn kill(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: plain syscall; the group was created by `process_group(0)` at spawn.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_reply;
    use crate::job::Status;

    #[test]
    fn a_valid_claim_is_completed_by_the_header() {
        let r =
            parse_reply(b"{\"ms\":1.5,\"out\":\"hi\"}\t{\"s\":\"ok\",\"o\":\"3\",\"lit\":true}\n")
                .unwrap();
        assert_eq!((r.s, r.o.as_deref(), r.lit), (Status::Ok, Some("3"), true));
        assert_eq!((r.ms, r.out.as_deref()), (1.5, Some("hi")));
    }

    #[test]
    fn a_job_cannot_claim_its_time_output_or_a_worker_status() {
        let r = parse_reply(b"{\"ms\":2.0}\t{\"s\":\"ok\",\"o\":\"1\",\"ms\":0,\"out\":\"x\"}\n")
            .unwrap();
        assert_eq!((r.ms, r.out), (2.0, None));
        // `timeout` is the worker's to say; claimed by the job it is no result at all.
        let r = parse_reply(b"{\"ms\":2.0}\t{\"s\":\"timeout\"}\n").unwrap();
        assert_eq!(r.s, Status::Error);
        assert_eq!(
            r.e.as_deref(),
            Some("process exited with code 0 before returning")
        );
    }

    #[test]
    fn without_a_readable_result_the_way_the_process_ended_decides() {
        for (result, sig, status) in [
            (&b"\xff\xfe garbage"[..], 11, Status::Killed),
            (b"", 24, Status::Timeout),
            (b"{\"s\":", 25, Status::OutputLimit),
        ] {
            let mut line =
                format!("{{\"ms\":1,\"sig\":{sig},\"signame\":\"SIGX\"}}\t").into_bytes();
            line.extend_from_slice(result);
            line.push(b'\n');
            let r = parse_reply(&line).unwrap();
            assert_eq!(r.s, status, "{line:?}");
            assert_eq!(r.e.as_deref(), Some("terminated by signal SIGX"));
        }
        let r = parse_reply(b"{\"ms\":1,\"code\":70}\t\n").unwrap();
        assert_eq!(
            r.e.as_deref(),
            Some("process exited with code 70 before returning")
        );
    }

    #[test]
    fn a_job_the_worker_stopped_has_no_result() {
        let r = parse_reply(b"{\"ms\":5000,\"end\":\"timeout\",\"e\":\"late\"}\t{\"s\":\"ok\"}\n")
            .unwrap();
        assert_eq!((r.s, r.e.as_deref()), (Status::Timeout, Some("late")));
    }

    #[test]
    fn an_unreadable_header_is_a_broken_worker() {
        assert!(parse_reply(b"Traceback (most recent call last):\n").is_err());
    }
}
