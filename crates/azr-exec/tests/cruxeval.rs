//! Validating all 800 CRUXEval programs reproduces the dataset's outputs (compared by value).

use std::path::Path;
use std::time::Duration;

use azr_exec::{compare_literals, ExecConfig, Executor, Job};
use serde::Deserialize;

#[derive(Deserialize)]
struct Record {
    id: String,
    code: String,
    input: String,
    output: String,
}

#[test]
fn all_800_programs_reproduce_their_outputs() {
    // The repository's copy (`data/` at the workspace root).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/code/cruxeval.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("CRUXEval data at {}: {e}", path.display()));
    let records: Vec<Record> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 800);
    let exec = Executor::new(ExecConfig {
        workers: 2,
        timeout: Duration::from_secs(10),
        ..ExecConfig::default()
    })
    .expect("the sandboxed executor starts");
    let jobs: Vec<Job> = records
        .iter()
        .map(|r| Job::Validate {
            program: r.code.clone(),
            input: r.input.clone(),
            literal_input: false,
            reads_input: false,
        })
        .collect();
    let results = exec.run_batch(&jobs);
    let mut failures = Vec::new();
    for (record, result) in records.iter().zip(&results) {
        match result.gold_output() {
            Some(gold) => {
                // Python `==` on the values, decided in Rust; a sandboxed literal_eval otherwise.
                let equal = compare_literals(gold, &record.output).unwrap_or_else(|| {
                    exec.run(&Job::Deduction {
                        predicted: gold.to_string(),
                        gold: record.output.clone(),
                    })
                    .is_correct()
                });
                if !equal {
                    failures.push(format!(
                        "{}: got {gold}, dataset says {}",
                        record.id, record.output
                    ));
                }
            }
            None => failures.push(format!(
                "{}: {:?} {:?}",
                record.id, result.rejection, result.error
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 800 differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
