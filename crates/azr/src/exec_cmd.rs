//! `azr exec`: JSON Lines in, JSON Lines out, one result per input line, in order.

use std::io::{BufRead, BufWriter, Write};

use anyhow::{Context, Result};
use azr_exec::{Executor, Job, JobResult, Status};
use serde_json::{json, Value};

/// Lines are executed in chunks so that a long input streams while the pool stays busy.
const CHUNK: usize = 256;

pub fn run(exec: &Executor, input: Box<dyn BufRead>, out: &mut dyn Write) -> Result<()> {
    let mut out = BufWriter::new(out);
    let mut lines = input.lines();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        for line in lines.by_ref().take(CHUNK) {
            chunk.push(line.context("reading input")?);
        }
        if chunk.is_empty() {
            break;
        }
        let parsed: Vec<(Value, Result<Job, String>)> =
            chunk.iter().map(|line| parse_line(line)).collect();
        let jobs: Vec<Job> = parsed
            .iter()
            .filter_map(|(_, job)| job.as_ref().ok().cloned())
            .collect();
        let mut results = exec.run_batch(&jobs).into_iter();
        for (id, job) in parsed {
            let result = match job {
                Ok(_) => results.next().expect("one result per job"),
                Err(why) => JobResult {
                    status: Status::InvalidJob,
                    output: None,
                    error: Some(why),
                    rejection: None,
                    correct: None,
                    stdout: None,
                    elapsed: Default::default(),
                },
            };
            serde_json::to_writer(&mut out, &result_line(id, &result))?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(())
}

fn result_line(id: Value, r: &JobResult) -> Value {
    let mut line = json!({
        "id": id,
        "status": r.status.name(),
        "output": r.output,
        "error": r.error,
        "ms": (r.elapsed.as_secs_f64() * 1e6).round() / 1e3,
    });
    if let Some(reason) = r.rejection {
        line["reason"] = json!(reason.name());
    }
    if let Some(correct) = r.correct {
        line["correct"] = json!(correct);
    }
    if let Some(stdout) = &r.stdout {
        line["stdout"] = json!(stdout);
    }
    line
}

/// Parses one input line into its id and job; a bad line gives an error for that line only.
fn parse_line(line: &str) -> (Value, Result<Job, String>) {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return (Value::Null, Err(format!("line is not JSON: {e}"))),
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    (id, job_from(&value))
}

fn job_from(v: &Value) -> Result<Job, String> {
    let obj = v.as_object().ok_or("line is not a JSON object")?;
    let text = |key: &str| -> Result<String, String> {
        match obj.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("field `{key}` must be a string")),
            None => Err(format!("field `{key}` is missing")),
        }
    };
    let kind = match obj.get("kind") {
        None => "run",
        Some(Value::String(k)) => k.as_str(),
        Some(_) => return Err("field `kind` must be a string".into()),
    };
    match kind {
        "run" => Ok(Job::Run {
            program: text("program")?,
            input: text("input")?,
        }),
        "validate" => Ok(Job::Validate {
            program: text("program")?,
            input: text("input")?,
            literal_input: obj
                .get("literal_input")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            reads_input: obj
                .get("reads_input")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        "deduction" => Ok(Job::Deduction {
            predicted: text("predicted")?,
            gold: text("gold_output")?,
        }),
        "abduction" => Ok(Job::Abduction {
            program: text("program")?,
            predicted_input: text("predicted")?,
            gold_output: text("gold_output")?,
        }),
        "induction" => {
            let pairs = obj
                .get("pairs")
                .and_then(Value::as_array)
                .ok_or("field `pairs` must be a list of [input, output] pairs")?
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(i), Value::String(o)]) => Ok((i.clone(), o.clone())),
                    _ => Err("each pair must be [input, output], two strings".to_string()),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Job::Induction {
                program: text("program")?,
                pairs,
            })
        }
        other => Err(format!(
            "unknown kind `{other}` (expected run, validate, deduction, abduction or induction)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind_and_reports_bad_lines() {
        let (id, job) = parse_line(r#"{"id": 7, "program": "def f(a): return a", "input": "1"}"#);
        assert_eq!(id, json!(7));
        assert!(matches!(job, Ok(Job::Run { .. })));
        let (_, job) = parse_line(
            r#"{"id": "x", "kind": "induction", "program": "p", "pairs": [["1", "2"]]}"#,
        );
        assert_eq!(
            job,
            Ok(Job::Induction {
                program: "p".into(),
                pairs: vec![("1".into(), "2".into())]
            })
        );
        let (_, job) = parse_line(r#"{"kind": "abduction", "program": "p", "predicted": "1"}"#);
        assert_eq!(job, Err("field `gold_output` is missing".into()));
        let (id, job) = parse_line("not json");
        assert_eq!(id, Value::Null);
        assert!(job.unwrap_err().starts_with("line is not JSON"));
        let (_, job) = parse_line(r#"{"kind": "teleport", "program": "p", "input": "1"}"#);
        assert!(job.unwrap_err().starts_with("unknown kind"));
        let (_, job) = parse_line(r#"{"program": 3, "input": "1"}"#);
        assert_eq!(job, Err("field `program` must be a string".into()));
    }
}
