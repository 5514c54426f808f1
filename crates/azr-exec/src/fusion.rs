//! The executor on a SandboxFusion service (`POST /run_code`) instead of the local worker pool:
//! more throughput when a cluster runs one, **not** more isolation (SandboxFusion's default
//! configuration isolates nothing beyond its container).
//!
//! Each request becomes one Python script: the worker's own functions (the same static checks,
//! the same job code) and a few lines that run the request and print its reply on a line that
//! starts with a random marker. The script re-executes itself with the configured
//! `PYTHONHASHSEED` (SandboxFusion takes no environment). Verdicts stay here, in Rust: the
//! reply is a claimed value like a local job's, read by the same parser. The service runs up to
//! `max_concurrent` scripts at once for us; a 504 (the service's own queue timing out) is
//! retried.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::ExecConfig;
use crate::job::Status;
use crate::pool::PendingReplies;
use crate::proc::{parse_reply, worker_config, Reply, Request};
use crate::sandbox::WORKER_PY;

/// Where the service is, and how many scripts it runs for us at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FusionConfig {
    /// `http://host:8080` (the `/run_code` route is appended). Empty: the local pool.
    #[serde(default)]
    pub url: String,
    #[serde(default = "default_concurrency")]
    pub max_concurrent: usize,
}

fn default_concurrency() -> usize {
    32
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            url: String::new(),
            max_concurrent: default_concurrency(),
        }
    }
}

/// Tries of one script when the service answers 504.
const TRIES: usize = 3;

pub(crate) struct Fusion {
    agent: ureq::Agent,
    url: String,
    max_concurrent: usize,
    /// The worker's functions and this run's worker config, ready to prefix each script.
    prelude: String,
    /// stdout bytes read from one answer; more is `output_limit`.
    capture: usize,
}

impl Fusion {
    pub fn new(cfg: &ExecConfig, service: &FusionConfig) -> Result<Fusion, crate::ExecError> {
        if !service.url.starts_with("http://") && !service.url.starts_with("https://") {
            return Err(crate::ExecError::Config(format!(
                "sandboxfusion.url must be an http:// URL (got {:?})",
                service.url
            )));
        }
        if service.url.starts_with("https://") {
            return Err(crate::ExecError::Config(
                "sandboxfusion.url: https is not supported; reach the service over http inside \
                 the cluster"
                    .into(),
            ));
        }
        let functions = WORKER_PY
            .rsplit_once("\nmain()")
            .map_or(WORKER_PY, |(head, _)| head);
        let wire = worker_config(cfg, 0);
        let prelude = format!(
            "import os as _os, sys as _sys\n\
             if _os.environ.get('PYTHONHASHSEED') != '{seed}':\n    \
             _os.environ['PYTHONHASHSEED'] = '{seed}'\n    \
             _os.execv(_sys.executable, [_sys.executable] + _sys.argv)\n\
             {functions}\n\
             {REMOTE_MAIN}\n\
             _CFG = {cfg}\n",
            seed = cfg.hash_seed,
            cfg = py_string(&wire),
        );
        tracing::warn!(
            "the executor runs model-written code on the SandboxFusion service at {}: its default \
             configuration does not isolate (README \"Scaling out\")",
            service.url
        );
        Ok(Fusion {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .build(),
            url: format!("{}/run_code", service.url.trim_end_matches('/')),
            max_concurrent: service.max_concurrent.max(1),
            prelude,
            capture: cfg.capture_bytes as usize,
        })
    }

    /// Runs the requests on the service, `max_concurrent` at a time, from a thread of their
    /// own; the replies come back in order through [`PendingReplies`].
    pub fn submit(&self, requests: Vec<Request>) -> PendingReplies {
        let n = requests.len();
        let (tx, rx) = crossbeam_channel::unbounded();
        let (agent, url, prelude, capture) = (
            self.agent.clone(),
            self.url.clone(),
            self.prelude.clone(),
            self.capture,
        );
        let (queue_tx, queue) = crossbeam_channel::unbounded();
        for item in requests.into_iter().enumerate() {
            let _ = queue_tx.send(item);
        }
        drop(queue_tx);
        for _ in 0..self.max_concurrent.min(n) {
            let (agent, url, prelude, tx, queue) = (
                agent.clone(),
                url.clone(),
                prelude.clone(),
                tx.clone(),
                queue.clone(),
            );
            std::thread::spawn(move || {
                for (index, request) in queue.iter() {
                    let reply = run_one(&agent, &url, &prelude, capture, &request);
                    let _ = tx.send((index, reply, Instant::now()));
                }
            });
        }
        PendingReplies::new(rx, n)
    }
}

/// The lines that run one request (`_REQ`) and print its reply after `_MARK`.
const REMOTE_MAIN: &str = r#"
def _remote_main(req, cfg, mark):
    cfg["banned"] = frozenset(cfg["banned"])
    cfg["forbidden_names"] = frozenset(cfg["forbidden_names"])
    cfg["forbidden_attrs"] = frozenset(cfg["forbidden_attrs"])
    sys.setrecursionlimit(cfg["recursion_limit"])
    out = os.fdopen(os.dup(1), "w")
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)  # the job's prints never reach the answer
    start = _now()
    try:
        prep = None if req["mode"] == "compare" else prepare(req, cfg)
        mem = req["mem_mb"] << 20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        reply = run_job(req, prep)
    except Rejected as r:
        reply = {"s": "rejected", "r": r.reason, "e": r.detail}
    except MemoryError:
        reply = {"s": "memory", "e": "MemoryError"}
    except BaseException as e:
        reply = {"s": "error", "e": _short(e)}
    head = '{"ms":%r}' % ((_now() - start) * 1000.0)
    out.write(mark + head + "\t" + encode_reply(reply).decode() + "\n")
    out.flush()
    os._exit(0)
"#;

/// A Python string literal of `text` (JSON strings are valid Python literals, escapes included).
fn py_string(text: &str) -> String {
    format!("__import__('json').loads({})", Value::String(text.into()))
}

fn run_one(agent: &ureq::Agent, url: &str, prelude: &str, capture: usize, req: &Request) -> Reply {
    let mark = format!("AZR-{:016x}:", rand_mark());
    let request = match serde_json::to_string(req) {
        Ok(r) => r,
        Err(e) => return Reply::failure(Status::InvalidJob, e.to_string()),
    };
    let code = format!(
        "{prelude}_remote_main(__import__('json').loads({}), _CFG, {})\n",
        Value::String(request),
        Value::String(mark.clone())
    );
    let body = json!({
        "code": code,
        "language": "python",
        "run_timeout": req.timeout,
        "compile_timeout": 10,
        "memory_limit_MB": req.mem_mb + 256,
    });
    let started = Instant::now();
    let mut last = String::new();
    for _ in 0..TRIES {
        // The service's own queue plus the job's deadline, and room for the transfer.
        let deadline = Duration::from_secs_f64(req.timeout + 30.0);
        match agent
            .post(url)
            .timeout(deadline)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
        {
            Ok(r) => {
                let text = r.into_string().unwrap_or_default();
                let mut reply = read_answer(&text, &mark, capture);
                if reply.ms == 0.0 {
                    reply.ms = started.elapsed().as_secs_f64() * 1000.0;
                }
                return reply;
            }
            Err(ureq::Error::Status(504, _)) => last = "HTTP 504 from SandboxFusion".into(),
            Err(ureq::Error::Status(code, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Reply::failure(
                    Status::Killed,
                    format!("SandboxFusion answered HTTP {code}: {}", cut(&text)),
                );
            }
            Err(e) => return Reply::failure(Status::Killed, format!("SandboxFusion: {e}")),
        }
    }
    Reply::failure(Status::Killed, format!("{last}, {TRIES} times"))
}

/// A `/run_code` answer: `{status, message, run_result: {status, stdout, stderr, return_code}}`.
fn read_answer(text: &str, mark: &str, capture: usize) -> Reply {
    let Ok(answer) = serde_json::from_str::<Value>(text) else {
        return Reply::failure(
            Status::Killed,
            format!(
                "SandboxFusion answered something that is not JSON: {}",
                cut(text)
            ),
        );
    };
    if answer["status"] == "SandboxError" {
        let message = answer["message"].as_str().unwrap_or("no message");
        return Reply::failure(Status::Killed, format!("SandboxFusion: {}", cut(message)));
    }
    let run = &answer["run_result"];
    if run["status"] == "TimeLimitExceeded" {
        return Reply::failure(Status::Timeout, "time limit exceeded".into());
    }
    let stdout = run["stdout"].as_str().unwrap_or("");
    if stdout.len() > capture {
        return Reply::failure(Status::OutputLimit, format!("stdout over {capture} bytes"));
    }
    // The last marked line.
    match stdout.lines().rev().find_map(|l| l.strip_prefix(mark)) {
        Some(line) => {
            parse_reply(line.as_bytes()).unwrap_or_else(|e| Reply::failure(Status::Error, e))
        }
        None => {
            let stderr = run["stderr"].as_str().unwrap_or("");
            let code = run["return_code"].as_i64().unwrap_or(0);
            let status = if stderr.contains("MemoryError") {
                Status::Memory
            } else {
                Status::Error
            };
            Reply::failure(
                status,
                format!(
                    "the job exited with code {code} before returning: {}",
                    cut(stderr)
                ),
            )
        }
    }
}

fn cut(text: &str) -> String {
    let t: String = text.chars().take(300).collect();
    t.trim().to_string()
}

/// A marker that sets our line apart from anything else on stdout. It is no secret (the job can
/// read its own script): a line the job forges with it is a claimed value like any other.
fn rand_mark() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}
