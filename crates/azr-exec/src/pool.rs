//! The worker pool: N long-lived sandboxed workers fed from one queue.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::{ExecConfig, SandboxMode};
use crate::job::Status;
use crate::proc::{CallError, Reply, Request, WorkerProc};
use crate::sandbox::{self, PythonRuntime};
use crate::ExecError;

struct Task {
    request: Request,
    /// The reply, its index in the batch, and when it was sent.
    reply: Sender<(usize, Reply, Instant)>,
    index: usize,
}

/// Requests on the pool ([`Pool::submit`]); [`PendingReplies::wait`] collects their replies.
pub(crate) struct PendingReplies {
    replies: Receiver<(usize, Reply, Instant)>,
    n: usize,
}

impl PendingReplies {
    pub fn new(replies: Receiver<(usize, Reply, Instant)>, n: usize) -> Self {
        PendingReplies { replies, n }
    }

    /// Blocks until every request has its reply; returns them in request order, and when the
    /// last one arrived (`None` for no requests).
    pub fn wait(self) -> (Vec<Reply>, Option<Instant>) {
        let mut replies: Vec<Option<Reply>> = vec![None; self.n];
        let mut last = None;
        for (index, reply, at) in self.replies.iter() {
            replies[index] = Some(reply);
            last = last.max(Some(at));
        }
        let replies = replies
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Reply::failure(Status::Killed, "no reply from pool".into()))
            })
            .collect();
        (replies, last)
    }
}

struct Shared {
    cfg: ExecConfig,
    python: PythonRuntime,
    bwrap: Option<PathBuf>,
}

pub(crate) struct Pool {
    queue: Option<Sender<Task>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn start(cfg: ExecConfig) -> Result<Pool, ExecError> {
        if cfg.workers == 0 {
            return Err(ExecError::Config("at least one worker is needed".into()));
        }
        let bwrap = match cfg.sandbox {
            SandboxMode::Bubblewrap => Some(sandbox::find_bwrap()?),
            SandboxMode::None => {
                tracing::warn!(
                    "running model-written code WITHOUT a sandbox (--no-sandbox): it can read and \
                     write your files and use the network; use this for trusted code only"
                );
                None
            }
        };
        let python = PythonRuntime::discover(cfg.python.as_deref())?;
        let shared = Arc::new(Shared { cfg, python, bwrap });
        // Distinct unprivileged uids per worker (and per pool, by pid), so that one worker's jobs
        // never share RLIMIT_NPROC accounting or signal permissions with another's.
        static POOLS: AtomicU32 = AtomicU32::new(0);
        let slot = POOLS.fetch_add(1, Ordering::Relaxed) % 64;
        let uid_base = 100_000 + (std::process::id() % 20_000) * 4096 + slot * 64;
        let (queue, tasks) = crossbeam_channel::unbounded::<Task>();
        let mut threads = Vec::with_capacity(shared.cfg.workers);
        let mut started = Vec::with_capacity(shared.cfg.workers);
        for index in 0..shared.cfg.workers {
            let shared = Arc::clone(&shared);
            let tasks = tasks.clone();
            let uid = uid_base + index as u32;
            let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
            started.push(ready_rx);
            // Each worker is spawned by its own long-lived thread: bwrap's --die-with-parent
            // fires when the *thread* that spawned it exits, not only the process.
            let handle = std::thread::Builder::new()
                .name(format!("azr-exec-{index}"))
                .spawn(move || {
                    let proc = WorkerProc::spawn(
                        &shared.cfg,
                        &shared.python,
                        shared.bwrap.as_deref(),
                        uid,
                    );
                    let proc = match proc {
                        Ok(p) => {
                            let _ = ready_tx.send(Ok(()));
                            Some(p)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    worker_loop(&shared, tasks, proc, uid)
                })
                .map_err(|e| ExecError::Spawn(format!("cannot start pool thread: {e}")))?;
            threads.push(handle);
        }
        drop(tasks);
        let pool = Pool {
            queue: Some(queue),
            threads,
        };
        // A broken sandbox is reported at once, clearly, instead of failing every job.
        for ready in started {
            match ready.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e), // dropping `pool` stops the other workers
                Err(_) => return Err(ExecError::Spawn("a pool thread died while starting".into())),
            }
        }
        Ok(pool)
    }

    /// Queues every request and returns at once.
    pub fn submit(&self, requests: Vec<Request>) -> PendingReplies {
        let n = requests.len();
        let (tx, rx) = crossbeam_channel::unbounded();
        let queue = self.queue.as_ref().expect("pool is running");
        for (index, request) in requests.into_iter().enumerate() {
            let task = Task {
                request,
                reply: tx.clone(),
                index,
            };
            if let Err(e) = queue.send(task) {
                let task = e.into_inner();
                let _ = tx.send((
                    task.index,
                    Reply::failure(Status::Killed, "pool is shut down".into()),
                    Instant::now(),
                ));
            }
        }
        PendingReplies { replies: rx, n }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue = None; // closes the queue; each thread ends after its current task
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Most jobs one worker takes from the queue at once. A batch is one request line: the worker
/// parses and compiles all of it before its first fork, which saves a copy-on-write fault for
/// every page that work touches, once per job (see `answer_batch` in worker.py).
const MAX_BATCH: usize = 8;

/// Takes the next batch: the first task blocks, then as many more as keep the queue shared
/// fairly among the workers (a short queue is not swallowed by one worker), at most `MAX_BATCH`.
fn next_batch(tasks: &Receiver<Task>, workers: usize) -> Option<Vec<Task>> {
    let first = tasks.recv().ok()?;
    let fair_share = tasks.len() / workers.max(1);
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH.min(1 + fair_share) {
        match tasks.try_recv() {
            Ok(task) => batch.push(task),
            Err(_) => break,
        }
    }
    Some(batch)
}

fn worker_loop(shared: &Shared, tasks: Receiver<Task>, mut proc: Option<WorkerProc>, uid: u32) {
    let mut failures = 0u32;
    while let Some(batch) = next_batch(&tasks, shared.cfg.workers) {
        let mut pending = &batch[..];
        while let Some(first) = pending.first() {
            if proc.is_none() {
                match WorkerProc::spawn(&shared.cfg, &shared.python, shared.bwrap.as_deref(), uid) {
                    Ok(p) => {
                        failures = 0;
                        proc = Some(p);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::error!("worker start failed ({failures} in a row): {e}");
                        let _ = first.reply.send((
                            first.index,
                            Reply::failure(Status::Killed, e.to_string()),
                            Instant::now(),
                        ));
                        pending = &pending[1..];
                        // Back off so that a persistently broken sandbox does not spin.
                        std::thread::sleep(Duration::from_millis(
                            100 * u64::from(failures.min(20)),
                        ));
                        continue;
                    }
                }
            }
            let worker = proc.as_mut().expect("spawned above");
            let requests: Vec<&Request> = pending.iter().map(|t| &t.request).collect();
            let (replies, error) = worker.call_batch(&requests);
            let answered = replies.len();
            for (task, reply) in pending.iter().zip(replies) {
                let _ = task.reply.send((task.index, reply, Instant::now()));
            }
            pending = &pending[answered..];
            let Some(error) = error else { break };
            // The job at the front of `pending` broke its worker; the ones after it never ran
            // and go to the fresh worker.
            proc = None;
            let Some(task) = pending.first() else { break };
            let reply = match error {
                CallError::Hung => {
                    tracing::warn!("worker missed its deadline; killing its sandbox");
                    Reply::failure(
                        Status::Timeout,
                        format!(
                            "no answer within {:.3} s; sandbox killed",
                            task.request.timeout
                        ),
                    )
                }
                CallError::Died(why) => {
                    tracing::warn!("worker died during a job: {why}");
                    Reply::failure(Status::Killed, format!("the job's worker died: {why}"))
                }
            };
            let _ = task.reply.send((task.index, reply, Instant::now()));
            pending = &pending[1..];
        }
    }
}
