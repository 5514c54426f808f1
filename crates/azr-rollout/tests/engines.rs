//! Contract tests of the remote back-ends against in-process stubs that speak the documented
//! JSON of SGLang's native routes (`/health`, `/generate`, `/update_weights_from_disk`,
//! `/load_lora_adapter`, `/unload_lora_adapter`) and of vLLM's OpenAI routes
//! (`/v1/completions`, `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`). Neither server can
//! run on these machines (CUDA; SGLang's CPU backend wants an AMX Xeon, vLLM's CPU wheels are not
//! on PyPI); the stubs check our requests field by field and answer as the servers document.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use azr_core::scaffold::Scaffold;
use azr_core::{GenRequest, Group, Policy, Purpose, ThinkMode};
use azr_exec::stub;
use azr_model::{LoraConfig, SamplingParams, TrainConfig, Trainer};
use azr_rollout::{Engine, Remote, RolloutConfig, WeightsMode};
use serde_json::{json, Value};

struct Stub {
    url: String,
    log: stub::Log,
    /// Answers to `/generate`, one per call, in order.
    generate: Arc<Mutex<VecDeque<Value>>>,
}

fn stub() -> Stub {
    let generate: Arc<Mutex<VecDeque<Value>>> = Arc::default();
    let scripted = generate.clone();
    let (url, log) = stub::serve(move |route, body| match route {
        "GET /health" => (200, json!({})),
        "POST /generate" => match scripted.lock().unwrap().pop_front() {
            Some(a) => (200, a),
            None => (500, json!({"error": "no scripted answer"})),
        },
        "POST /update_weights_from_disk" => {
            let path = body["model_path"].as_str().unwrap_or("");
            let ok = std::path::Path::new(path)
                .join("model.safetensors")
                .exists();
            (
                200,
                json!({"success": ok, "message": "loaded", "num_paused_requests": 0}),
            )
        }
        "POST /load_lora_adapter" | "POST /unload_lora_adapter" => {
            (200, json!({"success": true, "loaded_adapters": {}}))
        }
        _ => (404, json!({"detail": "Not Found"})),
    });
    Stub { url, log, generate }
}

fn config(url: &str, weights: WeightsMode) -> RolloutConfig {
    RolloutConfig {
        engine: Engine::Sglang,
        url: url.into(),
        weights,
        ..RolloutConfig::default()
    }
}

/// One `/generate` result as SGLang writes it: `[logprob, token_id, null]` per output token.
fn result(ids: &[u32], finish: Value, version: &str) -> Value {
    let lps: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| json!([-0.25 * (i + 1) as f64, t, null]))
        .collect();
    json!({
        "text": "",
        "meta_info": {
            "output_token_logprobs": lps,
            "finish_reason": finish,
            "weight_version": version,
            "prompt_tokens": 3,
            "completion_tokens": ids.len(),
        }
    })
}

struct Tiny {
    _dir: tempfile::TempDir,
    loaded: azr_model::LoadedModel,
}

fn tiny() -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    azr_model::tiny::write_tiny_model(dir.path(), "qwen2", false, 3, 256).unwrap();
    let loaded = azr_model::load(dir.path()).unwrap();
    Tiny { _dir: dir, loaded }
}

const EOS: u32 = 257;

fn params() -> SamplingParams {
    SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 64,
        stop_strings: Vec::new(),
        stop_token_ids: vec![EOS],
    }
}

fn scaffold() -> Scaffold {
    Scaffold {
        group: Group::SOLVE_DEDUCTION,
        think: ThinkMode::Required,
        think_budget: 8,
        answer_budget: 16,
        plain: false,
        induction_inputs: 4,
        entry_header: true,
    }
}

/// A trainer of rank-2 adapters on the tiny model.
fn lora_trainer(t: &Tiny) -> Trainer {
    let cfg = TrainConfig {
        lora: LoraConfig {
            rank: 2,
            ..LoraConfig::default()
        },
        ..TrainConfig::default()
    };
    Trainer::new(t.loaded.model.clone(), cfg).unwrap()
}

fn request(prompt: &str) -> GenRequest {
    GenRequest {
        prompt: prompt.into(),
        group: Group::SOLVE_DEDUCTION,
        purpose: Purpose::Rollout,
    }
}

#[test]
fn a_scaffolded_rollout_is_one_request_per_phase() {
    let t = tiny();
    let tk = &t.loaded.tokenizer;
    let s = stub();
    let run = tempfile::tempdir().unwrap();
    let engine = Remote::connect(&config(&s.url, WeightsMode::Full), run.path(), None).unwrap();
    let enc = |text: &str| tk.encode(text, false).unwrap();
    // Row 0 thinks past its budget; the environment closes the think block and opens the
    // answer; the model fills the fence and stops at its close. Row 1 ends its turn at once.
    s.generate.lock().unwrap().extend([
        json!([
            result(
                &enc("thinking"),
                json!({"type": "length", "length": 8}),
                "default"
            ),
            result(
                &[enc("ok"), vec![EOS]].concat(),
                json!({"type": "stop", "matched": EOS}),
                "default"
            ),
        ]),
        json!([
            result(
                &enc("3\n```"),
                json!({"type": "stop", "matched": "```"}),
                "default"
            ),
            result(
                &enc("7\n```"),
                json!({"type": "stop", "matched": "```"}),
                "default"
            ),
        ]),
    ]);
    let requests = [request("prompt one"), request("prompt two")];
    let mut policy = engine.policy(tk, params(), scaffold(), 42);
    let out = policy.generate(&requests).unwrap();

    let log = s.log.lock().unwrap().clone();
    let routes: Vec<&str> = log.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(routes, ["GET /health", "POST /generate", "POST /generate"]);
    let first = &log[1].1;
    assert_eq!(first["return_logprob"], json!(true));
    assert_eq!(first["logprob_start_len"], json!(-1));
    assert!(first.get("lora_path").is_none());
    assert_eq!(first["input_ids"][0], json!(enc("prompt one")));
    let p = &first["sampling_params"][0];
    assert_eq!(p["temperature"], json!(1.0));
    assert_eq!(p["top_p"], json!(1.0));
    assert_eq!(p["top_k"], json!(-1));
    assert_eq!(p["min_p"], json!(0.0));
    assert_eq!(p["max_new_tokens"], json!(8), "the think budget");
    assert_eq!(p["stop"], json!(["</think>", "<answer>", "</answer>"]));
    assert_eq!(p["stop_token_ids"], json!([EOS]));
    assert!(p["sampling_seed"].as_u64().is_some_and(|s| s < 1 << 63));
    assert_ne!(
        first["sampling_params"][0]["sampling_seed"], first["sampling_params"][1]["sampling_seed"],
        "rows have their own seeds"
    );

    // The second round carries each row's tokens so far and the appended text.
    let appended = "</think>\n<answer>\n```output\n";
    let second = &log[2].1;
    let row0: Vec<u32> = [enc("prompt one"), enc("thinking"), enc(appended)].concat();
    assert_eq!(second["input_ids"][0], json!(row0));
    // Row 1's end-of-turn token is replaced by the appended text.
    let row1: Vec<u32> = [enc("prompt two"), enc("ok"), enc(appended)].concat();
    assert_eq!(second["input_ids"][1], json!(row1));
    let p = &second["sampling_params"][0];
    assert_eq!(p["max_new_tokens"], json!(16), "the answer budget");
    assert_eq!(p["stop"], json!(["```", "</answer>"]));

    let r = &out[0];
    assert_eq!(
        r.text,
        "thinking</think>\n<answer>\n```output\n3\n```\n</answer>"
    );
    assert_eq!(r.prompt_ids, enc("prompt one"));
    assert_eq!(r.tokens, 8 + 5, "sampled tokens only");
    let sampled: Vec<bool> = [
        vec![true; 8],
        vec![false; enc(appended).len()],
        vec![true; 5],
        vec![false; enc("\n</answer>").len()],
    ]
    .concat();
    assert_eq!(r.sampled, sampled);
    assert_eq!(r.logprobs[0], -0.25);
    assert_eq!(r.logprobs[8], 0.0, "appended tokens carry no log-prob");
    assert_eq!(r.injected.len(), 2);
    assert_eq!(r.injected[0].text, appended);
    assert_eq!(
        out[1].text,
        "ok</think>\n<answer>\n```output\n7\n```\n</answer>"
    );
    assert_eq!(policy.tokens, 13 + 2 + 5);
}

#[test]
fn full_weights_are_pushed_from_disk_and_stale_rollouts_refused() {
    let t = tiny();
    let tk = &t.loaded.tokenizer;
    let s = stub();
    let run = tempfile::tempdir().unwrap();
    let mut engine = Remote::connect(&config(&s.url, WeightsMode::Full), run.path(), None).unwrap();
    let trainer = Trainer::new(t.loaded.model.clone(), TrainConfig::default()).unwrap();
    for version in [3, 4, 5] {
        engine.push(&trainer, tk, version).unwrap();
    }
    assert_eq!(engine.version(), Some(5));
    let log = s.log.lock().unwrap().clone();
    let pushes: Vec<&Value> = log
        .iter()
        .filter(|(r, _)| r == "POST /update_weights_from_disk")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(pushes.len(), 3);
    let dir = run.path().join("engine-weights");
    assert_eq!(
        pushes[2],
        &json!({
            "model_path": std::path::absolute(dir.join("step-000005")).unwrap().display().to_string(),
            "weight_version": "5",
            "flush_cache": true,
        })
    );
    // The last two versions stay: an engine may still read the one before.
    let mut kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-000004", "step-000005"]);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(dir.join("step-000005").join(f).exists(), "{f}");
    }

    // An answer sampled with other weights than the pushed ones is an error.
    s.generate.lock().unwrap().push_back(json!([result(
        &tk.encode("x", false).unwrap(),
        json!({"type": "length", "length": 1}),
        "4"
    )]));
    let mut policy = engine.policy(tk, params(), scaffold(), 1);
    let err = policy.generate(&[request("p")]).unwrap_err().to_string();
    assert!(err.contains("not the pushed step 5"), "{err}");
}

#[test]
fn lora_adapters_are_loaded_by_name_and_rollouts_ask_for_them() {
    let t = tiny();
    let tk = &t.loaded.tokenizer;
    let s = stub();
    let run = tempfile::tempdir().unwrap();
    let mut engine = Remote::connect(&config(&s.url, WeightsMode::Lora), run.path(), None).unwrap();
    let trainer = lora_trainer(&t);
    engine.push(&trainer, tk, 0).unwrap();
    engine.push(&trainer, tk, 1).unwrap();
    let enc = |text: &str| tk.encode(text, false).unwrap();
    s.generate.lock().unwrap().extend([
        json!([result(
            &enc("x"),
            json!({"type": "length", "length": 1}),
            "default"
        )]),
        json!([result(
            &enc("1\n```"),
            json!({"type": "stop", "matched": "```"}),
            "default"
        )]),
    ]);
    let mut policy = engine.policy(tk, params(), scaffold(), 1);
    policy.generate(&[request("p")]).unwrap();

    let log = s.log.lock().unwrap().clone();
    let adapter = std::path::absolute(run.path().join("engine-weights/adapter-000001")).unwrap();
    let calls: Vec<(&str, &Value)> = log[1..].iter().map(|(r, b)| (r.as_str(), b)).collect();
    assert_eq!(calls[0].0, "POST /load_lora_adapter");
    assert_eq!(calls[1].0, "POST /load_lora_adapter");
    assert_eq!(
        calls[1].1,
        &json!({"lora_name": "azr-1", "lora_path": adapter.display().to_string()})
    );
    assert_eq!(
        calls[2],
        ("POST /unload_lora_adapter", &json!({"lora_name": "azr-0"}))
    );
    assert_eq!(calls[3].0, "POST /generate");
    assert_eq!(calls[3].1["lora_path"], json!(["azr-1"]));
    assert_eq!(calls[4].1["lora_path"], json!(["azr-1"]));
    for f in ["adapter_model.safetensors", "adapter_config.json"] {
        assert!(adapter.join(f).exists(), "{f}");
    }
}

#[test]
fn an_engine_that_is_not_there_is_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let run = tempfile::tempdir().unwrap();
    let err = match Remote::connect(&config(&url, WeightsMode::Full), run.path(), None) {
        Ok(_) => panic!("connected to nothing"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot reach the engine") && err.contains(&url),
        "{err}"
    );
    assert!(config("https://x", WeightsMode::Full).check(false).is_err());
    assert!(config("http://x", WeightsMode::Lora).check(false).is_err());
    assert!(config("http://x", WeightsMode::Lora).check(true).is_ok());
}

/// vLLM: one `/v1/completions` request per row (sent together, so the stub answers by the
/// prompt it is given), the adapter of the last push selected as the request's model, and the
/// ids and log-probs read from `token_ids` and `logprobs.token_logprobs`.
#[test]
fn vllm_rows_are_one_completion_each_and_select_the_pushed_adapter() {
    let t = tiny();
    let tk = &t.loaded.tokenizer;
    let enc = |text: &str| tk.encode(text, false).unwrap();
    let appended = "</think>\n<answer>\n```output\n";
    let choice = |text: &str, finish: &str, stop: Value| {
        let ids = enc(text);
        let lps: Vec<f64> = (0..ids.len()).map(|i| -0.5 - i as f64).collect();
        json!({"id": "cmpl-1", "object": "text_completion", "model": "azr-1", "choices": [{
            "index": 0, "text": text, "token_ids": ids, "finish_reason": finish,
            "stop_reason": stop, "logprobs": {"token_logprobs": lps, "tokens": [], "top_logprobs": []},
        }]})
    };
    let mut answers = std::collections::HashMap::new();
    for (prompt, answer) in [("prompt one", "3"), ("prompt two", "4")] {
        answers.insert(enc(prompt), choice("thinking", "length", Value::Null));
        let second = [enc(prompt), enc("thinking"), enc(appended)].concat();
        answers.insert(
            second,
            choice(&format!("{answer}\n```"), "stop", json!("```")),
        );
    }
    let (url, log) = stub::serve(move |route, body| match route {
        "GET /health" => (200, Value::Null),
        // vLLM answers these two in plain text.
        "POST /v1/load_lora_adapter" | "POST /v1/unload_lora_adapter" => {
            (200, json!("Success: LoRA adapter loaded"))
        }
        "POST /v1/completions" => {
            let prompt: Vec<u32> = serde_json::from_value(body["prompt"].clone()).unwrap();
            match answers.get(&prompt) {
                Some(a) => (200, a.clone()),
                None => (400, json!({"error": "unexpected prompt"})),
            }
        }
        _ => (404, json!({"detail": "Not Found"})),
    });
    let run = tempfile::tempdir().unwrap();
    let cfg = RolloutConfig {
        engine: Engine::Vllm,
        ..config(&url, WeightsMode::Lora)
    };
    assert!(
        RolloutConfig {
            weights: WeightsMode::Full,
            ..cfg.clone()
        }
        .check(true)
        .unwrap_err()
        .to_string()
        .contains("lora"),
        "vLLM takes no full weights"
    );
    let mut engine = Remote::connect(&cfg, run.path(), None).unwrap();
    let trainer = lora_trainer(&t);
    engine.push(&trainer, tk, 0).unwrap();
    engine.push(&trainer, tk, 1).unwrap();
    let mut policy = engine.policy(tk, params(), scaffold(), 7);
    let out = policy
        .generate(&[request("prompt one"), request("prompt two")])
        .unwrap();
    assert_eq!(
        out[0].text,
        "thinking</think>\n<answer>\n```output\n3\n```\n</answer>"
    );
    assert_eq!(
        out[1].text,
        "thinking</think>\n<answer>\n```output\n4\n```\n</answer>"
    );
    assert_eq!(out[0].logprobs[..2], [-0.5, -1.5]);

    let log = log.lock().unwrap().clone();
    let adapter = std::path::absolute(run.path().join("engine-weights/adapter-000001")).unwrap();
    assert_eq!(
        log[2],
        (
            "POST /v1/load_lora_adapter".to_string(),
            json!({"lora_name": "azr-1", "lora_path": adapter.display().to_string()})
        )
    );
    assert_eq!(
        log[3],
        (
            "POST /v1/unload_lora_adapter".to_string(),
            json!({"lora_name": "azr-0"})
        )
    );
    let completions: Vec<&Value> = log
        .iter()
        .filter(|(r, _)| r == "POST /v1/completions")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(completions.len(), 4, "two rows, two phases each");
    for b in &completions {
        assert_eq!(b["model"], json!("azr-1"));
        assert_eq!(b["n"], json!(1));
        assert_eq!(b["return_token_ids"], json!(true));
        assert_eq!(b["logprobs"], json!(1));
        assert_eq!(b["top_k"], json!(-1));
        assert_eq!(b["stop_token_ids"], json!([EOS]));
        assert!(b["seed"].as_u64().is_some());
    }
    let first: Vec<&&Value> = completions
        .iter()
        .filter(|b| b["max_tokens"] == json!(8))
        .collect();
    assert_eq!(
        first.len(),
        2,
        "the think budget, in both rows' first request"
    );
    assert_ne!(first[0]["seed"], first[1]["seed"]);
}
