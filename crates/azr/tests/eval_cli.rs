//! `azr eval` on the real default model, a few problems: the run completes and writes its files,
//! from any directory (the data is built in). And `--data DIR` reads DIR instead.

use std::process::Command;

use serde_json::Value;

#[test]
fn tiny_eval_on_the_default_model_writes_summary_and_problems() {
    let out_dir = tempfile::tempdir().unwrap();
    // An empty working directory: nothing but the binary provides the data.
    let cwd = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_azr"))
        .current_dir(cwd.path())
        .args([
            "eval",
            "--bench",
            "cruxeval-o,gsm8k",
            "--limit",
            "2",
            "--max-tokens",
            "16",
        ])
        .arg("--out")
        .arg(out_dir.path())
        .arg("--quiet")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cruxeval-o") && stdout.contains("gsm8k"),
        "{stdout}"
    );

    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("summary.json")).unwrap(),
    )
    .unwrap();
    let text = summary.to_string();
    assert!(
        text.contains("cruxeval-o") && text.contains("gsm8k"),
        "{text}"
    );
    let problems = std::fs::read_to_string(out_dir.path().join("problems.jsonl")).unwrap();
    let lines: Vec<Value> = problems
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "2 problems x 2 benchmarks");
    for line in &lines {
        assert!(
            line["prompt"]
                .as_str()
                .is_some_and(|p| p.contains("<answer>")),
            "{line}"
        );
        assert!(line["response"].is_string(), "{line}");
        assert!(line["correct"].is_boolean(), "{line}");
    }
}

/// `--data DIR` replaces the built-in sets: a folder with a two-problem gsm8k file gives exactly
/// those two problems (a tiny random model answers; only the problems matter here).
#[test]
fn data_flag_reads_the_given_folder() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny-model");
    azr_model::tiny::write_tiny_model(&model, "qwen2", true, 3, 8192).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("math")).unwrap();
    std::fs::write(
        data.join("math/gsm8k.jsonl"),
        concat!(
            r#"{"question":"What is 2+2?","answer":"2+2=4\n#### 4","idx":"own-1"}"#,
            "\n",
            r#"{"question":"What is 3*3?","answer":"3*3=9\n#### 9","idx":"own-2"}"#,
            "\n"
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_azr"))
        .args(["--quiet", "eval", "--bench", "gsm8k", "--max-tokens", "4"])
        .arg("--model")
        .arg(&model)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let problems = std::fs::read_to_string(out_dir.join("problems.jsonl")).unwrap();
    let rows: Vec<Value> = problems
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, ["own-1", "own-2"], "{problems}");

    // A folder without the file is an error naming the file, before any model is loaded.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_azr"))
        .args(["eval", "--bench", "gsm8k", "--model", "/nonexistent-model"])
        .arg("--data")
        .arg(&empty)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&empty.join("math/gsm8k.jsonl").display().to_string()),
        "{stderr}"
    );
}
