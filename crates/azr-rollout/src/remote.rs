//! Rollouts on a serving engine over HTTP.
//! - SGLang, its native routes: `POST /generate` (a batch, token ids in, token ids and log-probs
//!   out), and after each update `POST /update_weights_from_disk`, or `/load_lora_adapter` and
//!   `/unload_lora_adapter`.
//! - vLLM, its OpenAI routes: `POST /v1/completions`, one request per row (its sampling
//!   parameters and seed are per request), sent together; `return_token_ids` for the ids. New
//!   weights only as LoRA adapters (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`): stock
//!   vLLM loads full weights only from a torch process.
//! - llama.cpp's `llama-server` in router mode: `POST /completion`, one request per row (token
//!   ids in, `tokens` and `completion_probabilities` out). New weights as a GGUF file written
//!   into the server's `--models-dir` (`azr-<version>.gguf`), then `GET /models?reload=1`,
//!   `POST /models/load` and, once loaded, `POST /models/unload` of the previous version.
//!
//! Scaffolded decoding works as on the local engine, one request per phase: a row that stops
//! (a stop string, its budget, the end of its turn) is asked [`Scaffold::on_stop`] how it goes
//! on, and its next request carries the prompt, every token so far and the appended text.
//!
//! The engine's log-probs are never trained on: the rows it returns carry them for the
//! mismatch metric only, and the trainer recomputes its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use azr_core::scaffold::{Ended, Scaffold};
use azr_core::{GenRequest, Policy, PolicyError, Response};
use azr_model::{row_seeds, GgufType, SamplingParams, Tokenizer, Trainer};
use serde_json::{json, Value};

use crate::config::{Engine, RolloutConfig, WeightsMode};
use crate::{finish_response, RowTokens};

/// Requests per row before it is cut where it stands: every phase of a scaffold ends with text
/// appended or the row done, so a row needs a handful; this bounds a misbehaving engine.
const MAX_ROUNDS: usize = 64;

/// Rows of a vLLM or llama-server round in flight at once (one request each).
const ROW_CONCURRENCY: usize = 64;

/// A connection to a serving engine and the weights it serves.
pub struct Remote {
    engine: Engine,
    agent: ureq::Agent,
    url: String,
    weights: WeightsMode,
    /// Where pushed weights are written (the engine reads them from there).
    dir: PathBuf,
    /// The version the engine serves since this run's last push.
    version: Option<u64>,
    /// llama-server: the base model's GGUF, whose metadata every pushed GGUF copies, and the
    /// type of the pushed matrices.
    template: Option<PathBuf>,
    gguf: GgufType,
    timeout: Duration,
}

impl Remote {
    /// Checks that the server answers (`GET /health`); `run_dir` holds the weights when
    /// `rollout.dir` is empty. `base_gguf` is the run's model as a GGUF file, which llama-server
    /// needs (the other engines take Hugging Face files).
    pub fn connect(cfg: &RolloutConfig, run_dir: &Path, base_gguf: Option<&Path>) -> Result<Self> {
        if cfg.engine == Engine::LlamaServer && base_gguf.is_none() {
            bail!(
                "rollout.engine = \"llama-server\" needs a GGUF model (model.name): its metadata \
                 and tokenizer are copied into the GGUF sent after each update"
            );
        }
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(cfg.timeout_s))
            .build();
        let dir = if cfg.dir.as_os_str().is_empty() {
            run_dir.join("engine-weights")
        } else {
            cfg.dir.clone()
        };
        let dir =
            std::path::absolute(&dir).with_context(|| format!("rollout.dir {}", dir.display()))?;
        let engine = Remote {
            engine: cfg.engine,
            agent,
            url: cfg.url.trim_end_matches('/').to_string(),
            weights: cfg.weights,
            dir,
            version: None,
            template: base_gguf.map(Path::to_path_buf),
            gguf: cfg.gguf,
            timeout: Duration::from_secs(cfg.timeout_s),
        };
        engine
            .agent
            .get(&format!("{}/health", engine.url))
            .call()
            .map_err(|e| http_error(&engine.url, "/health", e))?;
        Ok(engine)
    }

    /// The weights version the engine serves (the last push), if any.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    fn get(&self, route: &str) -> Result<Value> {
        let reply = self
            .agent
            .get(&format!("{}{route}", self.url))
            .call()
            .map_err(|e| http_error(&self.url, route, e))?;
        let text = reply
            .into_string()
            .with_context(|| format!("reading the answer of {}{route}", self.url))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}{route} did not answer JSON: {}", self.url, cut(&text)))
    }

    fn post(&self, route: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{route}", self.url);
        let reply = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string())
            .map_err(|e| http_error(&self.url, route, e))?;
        let text = reply
            .into_string()
            .with_context(|| format!("reading the answer of {url}"))?;
        // vLLM's adapter routes answer in plain text; a caller that needs JSON says so.
        Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A weights route: SGLang answers `{success, message}`; vLLM a sentence, HTTP 200 being
    /// its success.
    fn command(&self, route: &str, body: &Value) -> Result<()> {
        let reply = self.post(route, body)?;
        if self.engine == Engine::Vllm {
            return Ok(());
        }
        check_success(&reply, route)
    }

    /// Makes the engine serve the trainer's current weights as `version` (the run's step):
    /// writes them under the weights directory, atomically, and asks the engine to load them.
    /// Keeps the last two versions on disk.
    pub fn push(&mut self, trainer: &Trainer, tokenizer: &Tokenizer, version: u64) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let t0 = Instant::now();
        match self.weights {
            WeightsMode::Full if self.engine == Engine::Vllm => {
                bail!("vLLM takes LoRA adapters only (rollout.weights = \"lora\")")
            }
            _ if self.engine == Engine::LlamaServer => self.push_gguf(trainer, version)?,
            WeightsMode::Full => {
                let path = self.dir.join(format!("step-{version:06}"));
                if !path.exists() {
                    azr_model::checkpoint::create_dir_atomically(&path, |tmp| {
                        azr_model::checkpoint::write_hf_files(trainer.model(), tokenizer, tmp)
                    })?;
                }
                self.command(
                    "/update_weights_from_disk",
                    &json!({
                        "model_path": path.display().to_string(),
                        "weight_version": version.to_string(),
                        "flush_cache": true,
                    }),
                )?;
            }
            WeightsMode::Lora => {
                let path = self.dir.join(format!("adapter-{version:06}"));
                if !path.exists() {
                    trainer.save_adapter(&path)?;
                }
                let (load, unload) = match self.engine {
                    Engine::Vllm => ("/v1/load_lora_adapter", "/v1/unload_lora_adapter"),
                    Engine::Sglang | Engine::Local | Engine::LlamaServer => {
                        ("/load_lora_adapter", "/unload_lora_adapter")
                    }
                };
                let body = json!({"lora_name": version_name(version), "lora_path": path.display().to_string()});
                self.command(load, &body)?;
                if let Some(old) = self.version.filter(|&v| v != version) {
                    self.command(unload, &json!({"lora_name": version_name(old)}))?;
                }
            }
        }
        self.version = Some(version);
        self.prune(version)?;
        tracing::info!(
            "engine: weights of step {version} pushed ({:?}, {:.1} s)",
            self.weights,
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// llama-server's push: the weights as `azr-<version>.gguf` in its `--models-dir`, the
    /// model list reloaded, the new model loaded (waiting until it is), the previous one
    /// unloaded.
    fn push_gguf(&self, trainer: &Trainer, version: u64) -> Result<()> {
        let template = self
            .template
            .as_deref()
            .context("llama-server needs a GGUF template")?;
        let name = version_name(version);
        let path = self.dir.join(format!("{name}.gguf"));
        if !path.exists() {
            azr_model::write_gguf(trainer.model(), template, &path, self.gguf)?;
        }
        let status = |models: &Value| -> Option<(String, bool)> {
            let m = models["data"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == name.as_str())?;
            let st = &m["status"];
            Some((
                st["value"].as_str().unwrap_or("").to_string(),
                st["failed"].as_bool().unwrap_or(false),
            ))
        };
        let models = self.get("/models?reload=1")?;
        match status(&models) {
            None => bail!(
                "llama-server does not list {name} after reloading its models: was it started \
                 with --models-dir {}?",
                self.dir.display()
            ),
            // Loaded already (a resumed run), or being loaded (a request asked for it).
            Some((s, _)) if s != "unloaded" => {}
            Some(_) => {
                self.post("/models/load", &json!({"model": name}))?;
            }
        }
        let started = Instant::now();
        loop {
            match status(&self.get("/models")?) {
                Some((s, _)) if s == "loaded" => break,
                Some((_, true)) => bail!(
                    "llama-server failed to load {} (see its log)",
                    path.display()
                ),
                None => bail!("llama-server dropped {name} from its models while loading it"),
                Some(_) if started.elapsed() > self.timeout => bail!(
                    "llama-server did not load {name} within rollout.timeout_s ({} s)",
                    self.timeout.as_secs()
                ),
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        // Every other azr model goes, this run's previous version and a former run's alike:
        // the server's memory holds one policy.
        let models = self.get("/models")?;
        for m in models["data"].as_array().into_iter().flatten() {
            let id = m["id"].as_str().unwrap_or("");
            let running = !matches!(m["status"]["value"].as_str(), Some("unloaded") | None);
            if id != name && id.starts_with("azr-") && running {
                self.post("/models/unload", &json!({"model": id}))?;
            }
        }
        Ok(())
    }

    /// Removes pushed versions older than the one before `version` (an engine may still be
    /// reading that one).
    fn prune(&self, version: u64) -> Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let old = name
                .as_deref()
                .and_then(|n| {
                    n.strip_prefix("step-")
                        .or(n.strip_prefix("adapter-"))
                        .or(n.strip_prefix("azr-").and_then(|n| n.strip_suffix(".gguf")))
                })
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v + 1 < version);
            if old && path.is_dir() {
                std::fs::remove_dir_all(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            } else if old {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(())
    }

    /// A policy that samples from this engine; `scaffold` is the template of every row's
    /// scaffold (its group is each request's), `seed` the call's seed (see [`crate::call_seed`]).
    pub fn policy<'a>(
        &'a self,
        tokenizer: &'a Tokenizer,
        params: SamplingParams,
        scaffold: Scaffold,
        seed: u64,
    ) -> RemotePolicy<'a> {
        RemotePolicy {
            engine: self,
            tokenizer,
            params,
            scaffold,
            seed,
            calls: 0,
            secs: 0.0,
            tokens: 0,
            progress: None,
        }
    }
}

/// The name a pushed version is served under: a LoRA adapter's, or a llama-server model's.
fn version_name(version: u64) -> String {
    format!("azr-{version}")
}

fn check_success(reply: &Value, route: &str) -> Result<()> {
    if reply.get("success").and_then(Value::as_bool) == Some(true) {
        return Ok(());
    }
    let message = ["message", "error_message"]
        .iter()
        .find_map(|k| reply.get(*k).and_then(Value::as_str))
        .unwrap_or("no message");
    bail!("the engine refused {route}: {message}")
}

fn cut(text: &str) -> String {
    text.chars().take(300).collect()
}

fn http_error(base: &str, route: &str, e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, reply) => {
            let body = reply.into_string().unwrap_or_default();
            anyhow::anyhow!("{base}{route} answered HTTP {code}: {}", cut(&body))
        }
        ureq::Error::Transport(t) => anyhow::anyhow!(
            "cannot reach the engine at {base} ({route}): {t} (is the server up? rollout.url)"
        ),
    }
}

/// azr-core's [`Policy`] on a serving engine.
pub struct RemotePolicy<'a> {
    engine: &'a Remote,
    tokenizer: &'a Tokenizer,
    params: SamplingParams,
    scaffold: Scaffold,
    seed: u64,
    calls: u64,
    /// Time spent waiting for the engine, and tokens it sampled, since creation.
    pub secs: f64,
    pub tokens: usize,
    /// Told (rows finished, rows) as a call's rows finish, for a progress bar.
    pub progress: Option<Box<dyn Fn(usize, usize) + 'a>>,
}

/// A round's answer for one row: its new token ids, their log-probs, and why it stopped.
type Answer = (Vec<u32>, Vec<f32>, Ended);

/// A `/v1/completions` answer: `choices[0].token_ids` (with `return_token_ids`), their
/// log-probs in `choices[0].logprobs.token_logprobs`, and `finish_reason` with `stop_reason` (the
/// matched stop string, a stop token id, or null for the end of the turn).
fn read_vllm_answer(reply: &Value) -> Result<Answer> {
    let choice = reply.pointer("/choices/0").with_context(|| {
        format!(
            "/v1/completions answered without choices: {}",
            cut(&reply.to_string())
        )
    })?;
    let ids: Vec<u32> = choice
        .get("token_ids")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .context("a /v1/completions choice has no token_ids (return_token_ids)")?;
    let logprobs: Vec<f32> = choice
        .pointer("/logprobs/token_logprobs")
        .and_then(Value::as_array)
        .context("a /v1/completions choice has no logprobs.token_logprobs")?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    if logprobs.len() != ids.len() {
        bail!(
            "/v1/completions gave {} token ids but {} log-probs",
            ids.len(),
            logprobs.len()
        );
    }
    let ended = match choice.get("finish_reason").and_then(Value::as_str) {
        Some("length") => Ended::Budget,
        Some("stop") => match choice.get("stop_reason") {
            Some(Value::String(s)) => Ended::Stop(s.clone()),
            _ => Ended::EndOfTurn,
        },
        other => bail!("/v1/completions finished a row with {other:?} (aborted by the engine?)"),
    };
    Ok((ids, logprobs, ended))
}

/// A `/completion` answer: every sampled token in `tokens` (a matched stop string's
/// tokens included), their log-probs in `completion_probabilities`, and `stop_type`.
fn read_llama_answer(reply: &Value, pushed: Option<&str>) -> Result<Answer> {
    if let (Some(served), Some(pushed)) = (reply["model"].as_str(), pushed) {
        if served != pushed {
            bail!("llama-server sampled with {served:?}, not the pushed {pushed:?}");
        }
    }
    let ids: Vec<u32> = serde_json::from_value(reply["tokens"].clone()).with_context(|| {
        format!(
            "a /completion answer has no tokens (return_tokens): {}",
            cut(&reply.to_string())
        )
    })?;
    // llama.cpp lists a log-prob for each token but those that end inside a UTF-8 character
    // and a matched stop string's (the whole field is absent when none is left): the list
    // is a subsequence of the tokens, matched by id; the missing are NaN, which the
    // mismatch metric skips.
    let probs: &[Value] = reply["completion_probabilities"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut probs = probs.iter().peekable();
    let logprobs: Vec<f32> = ids
        .iter()
        .map(
            |&id| match probs.next_if(|p| p["id"].as_u64() == Some(u64::from(id))) {
                Some(p) => p["logprob"].as_f64().unwrap_or(f64::NAN) as f32,
                None => f32::NAN,
            },
        )
        .collect();
    if probs.next().is_some() {
        bail!("/completion gave log-probs for tokens it did not return");
    }
    let ended = match reply["stop_type"].as_str() {
        Some("eos") => Ended::EndOfTurn,
        Some("limit") => Ended::Budget,
        Some("word") => Ended::Stop(reply["stopping_word"].as_str().unwrap_or("").to_string()),
        other => bail!("/completion finished a row with stop_type {other:?}"),
    };
    Ok((ids, logprobs, ended))
}

/// One row between requests.
struct Row {
    prompt: Vec<u32>,
    scaffold: Scaffold,
    out: RowTokens,
    seed: u64,
    budget: usize,
    stops: Vec<String>,
    done: bool,
}

impl RemotePolicy<'_> {
    fn sampling_params(&self, row: &Row, round: usize) -> Value {
        let room = self.params.max_new_tokens - row.out.ids.len();
        json!({
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "top_k": if self.params.top_k == 0 { -1 } else { self.params.top_k as i64 },
            "min_p": 0.0,
            "max_new_tokens": row.budget.min(room),
            "stop": row.stops,
            "stop_token_ids": self.params.stop_token_ids,
            "skip_special_tokens": false,
            "no_stop_trim": true,
            // Python ints are unbounded, the engine's seed tensors are int64.
            "sampling_seed": (row.seed.wrapping_add(round as u64)) >> 1,
        })
    }

    /// One `/generate` round for the rows not done yet.
    fn round(&self, rows: &mut [Row], round: usize) -> Result<()> {
        let live: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].done).collect();
        let answers = match self.engine.engine {
            Engine::Vllm => self.row_round(
                rows,
                &live,
                "/v1/completions",
                |row| self.vllm_body(row, round),
                read_vllm_answer,
            )?,
            Engine::LlamaServer => self.row_round(
                rows,
                &live,
                "/completion",
                |row| self.llama_body(row, round),
                |reply| read_llama_answer(reply, self.engine.version.map(version_name).as_deref()),
            )?,
            Engine::Sglang | Engine::Local => self.sglang_round(rows, &live, round)?,
        };
        for (&i, (ids, logprobs, ended)) in live.iter().zip(answers) {
            self.advance(&mut rows[i], ids, logprobs, ended)?;
        }
        Ok(())
    }

    /// One `/generate` request for the live rows, each with its own sampling parameters.
    fn sglang_round(&self, rows: &[Row], live: &[usize], round: usize) -> Result<Vec<Answer>> {
        let input_ids: Vec<Vec<u32>> = live
            .iter()
            .map(|&i| [rows[i].prompt.as_slice(), rows[i].out.ids.as_slice()].concat())
            .collect();
        let params: Vec<Value> = live
            .iter()
            .map(|&i| self.sampling_params(&rows[i], round))
            .collect();
        let mut body = json!({
            "input_ids": input_ids,
            "sampling_params": params,
            "return_logprob": true,
            "logprob_start_len": -1,
        });
        if let (WeightsMode::Lora, Some(v)) = (self.engine.weights, self.engine.version) {
            body["lora_path"] = json!(vec![version_name(v); live.len()]);
        }
        let reply = self.engine.post("/generate", &body)?;
        let answers = reply.as_array().with_context(|| {
            format!(
                "/generate answered {} instead of a list",
                cut(&reply.to_string())
            )
        })?;
        if answers.len() != live.len() {
            bail!(
                "/generate answered {} results for {} prompts",
                answers.len(),
                live.len()
            );
        }
        answers.iter().map(|a| self.read_answer(a)).collect()
    }

    /// One request to `route` per live row, `ROW_CONCURRENCY` at a time (vLLM and llama-server
    /// take one seed per request).
    fn row_round(
        &self,
        rows: &[Row],
        live: &[usize],
        route: &str,
        body: impl Fn(&Row) -> Value,
        read: impl Fn(&Value) -> Result<Answer>,
    ) -> Result<Vec<Answer>> {
        let mut answers = Vec::with_capacity(live.len());
        for chunk in live.chunks(ROW_CONCURRENCY) {
            let replies: Vec<Result<Value>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|&i| {
                        let body = body(&rows[i]);
                        let engine = self.engine;
                        s.spawn(move || engine.post(route, &body))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join()
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("a request thread panicked")))
                    })
                    .collect()
            });
            for reply in replies {
                answers.push(read(&reply?)?);
            }
        }
        Ok(answers)
    }

    fn vllm_body(&self, row: &Row, round: usize) -> Value {
        let p = self.sampling_params(row, round);
        let model = match self.engine.version {
            Some(v) => version_name(v),
            None => String::new(),
        };
        let prompt = [row.prompt.as_slice(), row.out.ids.as_slice()].concat();
        json!({
            "model": model,
            "prompt": prompt,
            "n": 1,
            "max_tokens": p["max_new_tokens"],
            "temperature": p["temperature"],
            "top_p": p["top_p"],
            "top_k": p["top_k"],
            "min_p": p["min_p"],
            "stop": p["stop"],
            "stop_token_ids": p["stop_token_ids"],
            "seed": p["sampling_seed"],
            "logprobs": 1,
            "return_token_ids": true,
            "include_stop_str_in_output": true,
            "skip_special_tokens": false,
        })
    }

    /// A `/completion` request in llama.cpp's own terms. Its default samplers are not neutral
    /// (top-k 40, min-p 0.05, a repetition penalty): the chain is named, with only the ones our
    /// parameters describe. `n_probs: 1` returns each sampled token's log-prob, from the plain
    /// softmax of the logits (before temperature and truncation), as the trainer computes it.
    fn llama_body(&self, row: &Row, round: usize) -> Value {
        let p = self.sampling_params(row, round);
        let prompt = [row.prompt.as_slice(), row.out.ids.as_slice()].concat();
        // A 32-bit seed; 0xFFFFFFFF means "random" to llama.cpp.
        let seed = p["sampling_seed"].as_u64().unwrap_or(0) % u64::from(u32::MAX);
        json!({
            "model": self.engine.version.map(version_name).unwrap_or_default(),
            "prompt": prompt,
            "n_predict": p["max_new_tokens"],
            "seed": seed,
            "temperature": p["temperature"],
            "top_k": self.params.top_k,
            "top_p": p["top_p"],
            "min_p": 0.0,
            "samplers": ["top_k", "top_p", "temperature"],
            "stop": p["stop"],
            "n_probs": 1,
            "post_sampling_probs": false,
            "return_tokens": true,
            "cache_prompt": true,
        })
    }

    /// A result's tokens, log-probs and why it ended; a stale weights version is an error.
    fn read_answer(&self, answer: &Value) -> Result<Answer> {
        let meta = answer
            .get("meta_info")
            .context("a /generate result has no meta_info")?;
        if let (Some(served), Some(v)) = (
            meta.get("weight_version").and_then(Value::as_str),
            self.engine.version,
        ) {
            if served != v.to_string() && self.engine.weights == WeightsMode::Full {
                bail!(
                    "the engine sampled with weights {served:?}, not the pushed step {v}: is \
                     another trainer updating it?"
                );
            }
        }
        let pairs = meta
            .get("output_token_logprobs")
            .and_then(Value::as_array)
            .context(
                "a /generate result has no meta_info.output_token_logprobs (return_logprob)",
            )?;
        let mut ids = Vec::with_capacity(pairs.len());
        let mut logprobs = Vec::with_capacity(pairs.len());
        for p in pairs {
            let (Some(lp), Some(id)) = (
                p.get(0).and_then(Value::as_f64),
                p.get(1).and_then(Value::as_u64),
            ) else {
                bail!("an output_token_logprobs entry is not [logprob, token_id, ...]: {p}");
            };
            ids.push(id as u32);
            logprobs.push(lp as f32);
        }
        let reason = meta.get("finish_reason").unwrap_or(&Value::Null);
        let ended = match reason.get("type").and_then(Value::as_str) {
            Some("length") => Ended::Budget,
            Some("stop") => match reason.get("matched") {
                Some(Value::String(s)) => Ended::Stop(s.clone()),
                _ => Ended::EndOfTurn,
            },
            _ => bail!("/generate finished a row with {reason} (aborted by the engine?)"),
        };
        Ok((ids, logprobs, ended))
    }

    /// Adds a round's tokens to a row and decides, as the local engine does, whether and how it
    /// goes on.
    fn advance(
        &self,
        row: &mut Row,
        ids: Vec<u32>,
        logprobs: Vec<f32>,
        ended: Ended,
    ) -> Result<()> {
        let sampled = ids.len();
        row.out.ids.extend(ids);
        row.out.logprobs.extend(logprobs);
        row.out
            .sampled
            .resize(row.out.sampled.len() + sampled, true);
        let max = self.params.max_new_tokens;
        let eos = matches!(ended, Ended::EndOfTurn)
            && row
                .out
                .ids
                .last()
                .is_some_and(|t| self.params.stop_token_ids.contains(t));
        let kept = row.out.ids.len() - usize::from(eos);
        row.done = true;
        if row.out.ids.len() >= max {
            return Ok(());
        }
        let text = self.tokenizer.decode(&row.out.ids[..kept], true)?;
        let Some(next) = row.scaffold.on_stop(&text, &ended) else {
            return Ok(());
        };
        let append = if next.append.is_empty() {
            Vec::new()
        } else {
            self.tokenizer.encode(&next.append, false)?
        };
        let room = max.saturating_sub(kept + append.len());
        if room < 1 || next.budget == 0 {
            return Ok(());
        }
        if eos {
            // The end-of-turn token is not kept: the appended text takes its place.
            row.out.ids.pop();
            row.out.logprobs.pop();
            row.out.sampled.pop();
        }
        if append.is_empty() && eos {
            return Ok(());
        }
        for t in append {
            row.out.ids.push(t);
            row.out.logprobs.push(0.0);
            row.out.sampled.push(false);
        }
        row.budget = next.budget.min(room);
        row.stops = next.stop_strings;
        row.done = false;
        Ok(())
    }
}

impl Policy for RemotePolicy<'_> {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        let started = Instant::now();
        let seeds = row_seeds(self.seed ^ self.calls.rotate_left(32), requests.len());
        self.calls += 1;
        let mut rows = Vec::with_capacity(requests.len());
        for (r, seed) in requests.iter().zip(seeds) {
            let prompt = self.tokenizer.encode(&r.prompt, false)?;
            if prompt.is_empty() {
                return Err("a prompt tokenized to nothing".into());
            }
            let scaffold = Scaffold {
                group: r.group,
                ..self.scaffold
            };
            let (budget, stops) = scaffold.start();
            rows.push(Row {
                prompt,
                scaffold,
                out: RowTokens::default(),
                seed,
                budget: budget.min(self.params.max_new_tokens),
                stops,
                done: self.params.max_new_tokens == 0,
            });
        }
        let report = |rows: &[Row]| {
            if let Some(progress) = &self.progress {
                progress(rows.iter().filter(|r| r.done).count(), rows.len());
            }
        };
        report(&rows);
        for round in 0..MAX_ROUNDS {
            if rows.iter().all(|r| r.done) {
                break;
            }
            self.round(&mut rows, round)?;
            report(&rows);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let r = finish_response(self.tokenizer, &row.scaffold, row.prompt, row.out)?;
            self.tokens += r.tokens;
            out.push(r);
        }
        self.secs += started.elapsed().as_secs_f64();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape llama-server answers in when a token ends inside a UTF-8 character (11: no
    /// log-prob) and a stop string matched (13: its log-prob dropped).
    #[test]
    fn llama_log_probs_are_matched_to_tokens_by_id() {
        let reply = json!({
            "model": "azr-3", "tokens": [10, 11, 12, 13], "stop_type": "word",
            "stopping_word": "</answer>",
            "completion_probabilities": [{"id": 10, "logprob": -0.5}, {"id": 12, "logprob": -1.5}],
        });
        let (ids, lps, ended) = read_llama_answer(&reply, Some("azr-3")).unwrap();
        assert_eq!(ids, [10, 11, 12, 13]);
        assert_eq!(lps[0], -0.5);
        assert!(lps[1].is_nan());
        assert_eq!(lps[2], -1.5);
        assert!(lps[3].is_nan());
        assert_eq!(ended, Ended::Stop("</answer>".into()));
        let err = read_llama_answer(&reply, Some("azr-4")).unwrap_err();
        assert!(err.to_string().contains("not the pushed"), "{err}");
        let stray = json!({"tokens": [10], "stop_type": "eos",
            "completion_probabilities": [{"id": 11, "logprob": -0.5}]});
        assert!(read_llama_answer(&stray, None).is_err());
    }
}
