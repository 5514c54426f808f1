//! `azr train` with `rollout.engine = "sglang"`, end to end, against a stand-in for an SGLang
//! server (SGLang cannot run on these machines): a stub that speaks SGLang's routes and samples
//! with our own engine on whatever weights it was last told to load from disk. What it shows:
//! every rollout comes from the engine, the engine is sent the trainer's weights after every
//! update (its log-probs agree with the trainer's), and the run resumes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use azr_model::{FinishReason, LoadedModel, SamplingParams};
use serde_json::{json, Value};

mod common;
use common::{metrics, run_azr, tiny_args};

/// The weights the stand-in serves and their version.
struct Served {
    model: LoadedModel,
    version: String,
}

fn engine(base: &Path) -> (String, azr_exec::stub::Log) {
    let served = Arc::new(Mutex::new(Served {
        model: azr_model::load(base).unwrap(),
        version: "default".into(),
    }));
    azr_exec::stub::serve(move |route, body| {
        let mut s = served.lock().unwrap();
        match route {
            "GET /health" => (200, json!({})),
            "POST /update_weights_from_disk" => {
                let path = PathBuf::from(body["model_path"].as_str().unwrap_or(""));
                match azr_model::load(&path) {
                    Ok(m) => {
                        s.model = m;
                        s.version = body["weight_version"].as_str().unwrap_or("").into();
                        (200, json!({"success": true, "message": "ok"}))
                    }
                    Err(e) => (200, json!({"success": false, "message": e.to_string()})),
                }
            }
            "POST /generate" => (200, generate(&s, body)),
            _ => (404, json!({"detail": "Not Found"})),
        }
    })
}

/// One result per row, sampled as SGLang would with the row's own parameters and seed.
fn generate(s: &Served, body: &Value) -> Value {
    let rows = body["input_ids"].as_array().unwrap();
    let params = body["sampling_params"].as_array().unwrap();
    assert_eq!(body["return_logprob"], json!(true));
    let results: Vec<Value> = rows
        .iter()
        .zip(params)
        .map(|(ids, p)| {
            let ids: Vec<u32> = serde_json::from_value(ids.clone()).unwrap();
            let sp = SamplingParams {
                temperature: p["temperature"].as_f64().unwrap() as f32,
                top_p: p["top_p"].as_f64().unwrap() as f32,
                top_k: 0,
                max_new_tokens: p["max_new_tokens"].as_u64().unwrap() as usize,
                stop_strings: serde_json::from_value(p["stop"].clone()).unwrap(),
                stop_token_ids: serde_json::from_value(p["stop_token_ids"].clone()).unwrap(),
            };
            let seed = p["sampling_seed"].as_u64().unwrap();
            let m = &s.model;
            let g = azr_model::generate(&m.model, Some(&m.tokenizer), &[ids], &sp, &[seed])
                .unwrap()
                .remove(0);
            let finish = match &g.finish {
                FinishReason::Eos => json!({"type": "stop", "matched": g.tokens.last()}),
                FinishReason::Stop(text) => json!({"type": "stop", "matched": text}),
                FinishReason::Length => json!({"type": "length", "length": g.tokens.len()}),
            };
            let lps: Vec<Value> = g
                .tokens
                .iter()
                .zip(&g.logprobs)
                .map(|(t, lp)| json!([lp, t, null]))
                .collect();
            json!({"text": "", "meta_info": {
                "output_token_logprobs": lps,
                "finish_reason": finish,
                "weight_version": s.version,
            }})
        })
        .collect();
    json!(results)
}

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let mut t: Vec<(String, Vec<f32>)> =
        candle_core::safetensors::load(path, &candle_core::Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

#[test]
fn self_play_with_rollouts_on_an_sglang_server() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-model");
    azr_model::tiny::write_tiny_model(&model, "qwen2", true, 3, 8192).unwrap();
    let (url, log) = engine(&model);
    let run = dir.path().join("run");
    let mut args: Vec<String> = ["train", "--out"]
        .iter()
        .map(|s| s.to_string())
        .chain([run.display().to_string()])
        .chain(tiny_args(&model))
        .collect();
    for kv in [
        "rollout.engine=sglang".to_string(),
        format!("rollout.url={url}"),
    ] {
        args.extend(["--set".to_string(), kv]);
    }
    run_azr(&args);

    // Weights went out before seeding (version 0) and after the first step's update (1); the
    // engine sampled everything, with the weights it had last been sent.
    let pushed: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == "POST /update_weights_from_disk")
        .map(|(_, b)| b["weight_version"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(pushed, ["0", "1"]);
    let lines = metrics(&run);
    assert_eq!(lines.len(), 2);
    for line in &lines {
        let m = &line["engine_logprob_mismatch"];
        assert!(m["tokens"].as_u64().unwrap() > 0, "{m}");
        // Same weights, same precision: only kernel rounding apart. Stale weights (the
        // update's lr is 1e-3) would be far off.
        assert!(m["mean_abs"].as_f64().unwrap() < 1e-3, "{m}");
    }
    assert!(
        lines[0]["train"]["grad_norm"].as_f64().is_some(),
        "the first step updates"
    );
    // The engine's copy of step 1's weights is the trainer's checkpoint of step 1.
    let ckpt = run.join("checkpoints/step-000001/model/model.safetensors");
    let served = run.join("engine-weights/step-000001/model.safetensors");
    assert_eq!(tensors(&ckpt), tensors(&served));

    // A resumed run sends its weights again before it samples.
    let resume = [
        "train".to_string(),
        "--resume".into(),
        run.display().to_string(),
        "--set".into(),
        "run.steps=3".into(),
    ];
    run_azr(&resume);
    let pushed = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, _)| r == "POST /update_weights_from_disk")
        .count();
    assert_eq!(pushed, 3);
    assert_eq!(metrics(&run).len(), 3);
}
