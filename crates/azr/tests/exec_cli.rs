//! `azr exec` end to end: the README's example file, a malformed line, and standard input.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn azr() -> Command {
    Command::new(env!("CARGO_BIN_EXE_azr"))
}

fn lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[test]
fn example_file_gives_one_result_per_line_in_order() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/jobs.jsonl");
    let out = azr()
        .args(["exec", example, "--timeout-ms", "1000", "--quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = lines(&out.stdout);
    let got: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("run-1", "ok"),
        ("validate-ok", "ok"),
        ("validate-banned", "rejected"),
        ("validate-nondeterministic", "rejected"),
        ("deduction", "ok"),
        ("abduction", "ok"),
        ("induction", "ok"),
        ("hostile-loop", "timeout"),
        ("hostile-fork-bomb", "timeout"),
        ("hostile-read-host-file", "error"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(results[1]["output"], "832040");
    assert_eq!(results[2]["reason"], "banned_module");
    assert_eq!(results[3]["reason"], "nondeterministic");
    for r in &results[4..7] {
        assert_eq!(r["correct"], true, "{r}");
    }
    // Every line carries the documented fields.
    for r in &results {
        for key in ["id", "status", "output", "error", "ms"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
}

#[test]
fn malformed_lines_do_not_stop_the_run() {
    let mut child = azr()
        .args(["exec", "-", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = concat!(
        "{\"id\": 1, \"program\": \"def f(x):\\n    return x + 1\", \"input\": \"1\"}\n",
        "{this is not json\n",
        "{\"id\": 3, \"kind\": \"deduction\", \"predicted\": \"[1,2]\"}\n",
        "{\"id\": 4, \"kind\": \"deduction\", \"predicted\": \"[1,2]\", \"gold_output\": \"[1, 2]\"}\n",
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let results = lines(&out.stdout);
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["output"], "2");
    assert_eq!(results[1]["status"], "invalid_job");
    assert_eq!(results[2]["status"], "invalid_job");
    assert_eq!(results[2]["error"], "field `gold_output` is missing");
    assert_eq!(results[3]["correct"], true);
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = azr()
        .args(["exec", "/nonexistent/jobs.jsonl"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: opening /nonexistent/jobs.jsonl"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
