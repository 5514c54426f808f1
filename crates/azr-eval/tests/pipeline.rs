//! The whole pipeline with scripted policies: select -> render -> generate -> extract -> check ->
//! report -> files. A policy that answers with the references (CRUXEval gold, canonical code,
//! math answers) must score exactly 1.0; one that answers math with a wrong number, 0.0. The
//! canonical runs double as the check that the MBPP+ expected outputs and the HumanEval harness
//! are right.

mod common;

use std::collections::HashMap;

use azr_core::PolicyError;
use azr_eval::select::select;
use azr_eval::{evaluate, prompt, Benchmark, BenchmarkId, EvalOptions, Generated, Report, Task};
use common::{executor, load, respond};

/// The response a perfect solver gives to a problem.
fn reference_answer(bench: BenchmarkId, task: &Task) -> String {
    match task {
        Task::Crux(t) if bench == BenchmarkId::CruxevalI => {
            respond(&format!("```input\n{}\n```", t.input))
        }
        Task::Crux(t) => respond(&format!("```output\n{}\n```", t.output)),
        Task::HumanEval(h) => respond(&format!("```python\n{}```", h.canonical_solution)),
        Task::Mbpp(m) => respond(&format!("```python\n{}```", m.canonical_solution)),
        Task::Math(m) => respond(&format!("The result is \\boxed{{{}}}", m.answer)),
    }
}

/// A scripted policy: prompt -> response, from a table built for the selected problems.
fn scripted(
    benchmarks: &[Benchmark],
    options: &EvalOptions<'_>,
    answer: impl Fn(BenchmarkId, &Task) -> String,
) -> impl FnMut(&[String]) -> Result<Vec<String>, PolicyError> {
    let mut table = HashMap::new();
    for b in benchmarks {
        for i in select(b.problems.len(), options.limit, options.sample_seed) {
            let p = &b.problems[i];
            table.insert(
                prompt::render(b.id, p, options.rendering),
                answer(b.id, &p.task),
            );
        }
    }
    move |prompts: &[String]| {
        prompts
            .iter()
            .map(|p| {
                table
                    .get(p)
                    .cloned()
                    .ok_or_else(|| PolicyError::from("unknown prompt"))
            })
            .collect()
    }
}

fn failures(report: &Report) -> Vec<String> {
    report
        .records
        .iter()
        .filter(|r| !r.correct)
        .map(|r| format!("{} {}: {:?} {:?}", r.benchmark, r.id, r.reason, r.detail))
        .collect()
}

#[test]
fn reference_answers_score_one_and_wrong_numbers_zero() {
    let exec = executor(10);
    let ids = [
        BenchmarkId::CruxevalO,
        BenchmarkId::CruxevalI,
        BenchmarkId::HumanEval,
        BenchmarkId::MbppPlus,
        BenchmarkId::Gsm8k,
        BenchmarkId::Math500,
        BenchmarkId::Aime24,
        BenchmarkId::Aime25,
        BenchmarkId::Amc23,
        BenchmarkId::Minerva,
        BenchmarkId::OlympiadBench,
    ];
    let benchmarks: Vec<Benchmark> = ids.iter().map(|&id| load(id)).collect();
    let options = EvalOptions {
        limit: Some(40),
        sample_seed: Some(7),
        batch_size: 8,
        ..EvalOptions::default()
    };
    let mut perfect = scripted(&benchmarks, &options, reference_answer);
    let mut batches = 0;
    let mut counting = |prompts: &[String]| {
        batches += 1;
        assert!(prompts.len() <= 8);
        perfect(prompts)
    };
    let report = evaluate(&benchmarks, &mut counting, &exec, &options).unwrap();
    assert_eq!(failures(&report), Vec::<String>::new());
    for (b, id) in report.benchmarks.iter().zip(ids) {
        assert_eq!(b.benchmark, id);
        assert_eq!(b.n, 40.min(b.total), "{id}");
        assert_eq!((b.pass_at_1, b.stderr), (1.0, 0.0), "{id}");
    }
    assert_eq!(report.averages.overall, Some(1.0));
    let expected_batches: usize = report.benchmarks.iter().map(|b| b.n.div_ceil(8)).sum();
    assert_eq!(batches, expected_batches);

    // The per-problem file says what was asked, answered and decided.
    let dir = tempfile::tempdir().unwrap();
    let (summary, problems) = (
        dir.path().join("eval.json"),
        dir.path().join("problems.jsonl"),
    );
    report.write_files(&summary, &problems).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&problems)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        report.benchmarks.iter().map(|b| b.n).sum::<usize>()
    );
    let first = &lines[0];
    assert_eq!(first["benchmark"], "cruxeval-o");
    assert!(first["prompt"].as_str().unwrap().ends_with("<think>"));
    assert_eq!(first["correct"], true);
    assert_eq!(first["format_ok"], true);
    assert_eq!(first["scaffolded"], false);
    // Every reference answer is in the strict format: strict pass@1 is 1 too.
    for b in &report.benchmarks {
        assert_eq!(
            (b.strict_correct, b.strict_pass_at_1),
            (b.n, 1.0),
            "{}",
            b.benchmark
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(json["benchmarks"][3]["benchmark"], "mbppplus");
    assert_eq!(json["info"]["sample_seed"], 7);

    // Math answered with a wrong number, CRUXEval-O with a wrong literal: exactly 0.
    let wrong_ids = [
        BenchmarkId::CruxevalO,
        BenchmarkId::Gsm8k,
        BenchmarkId::Math500,
        BenchmarkId::OlympiadBench,
    ];
    let wrong_benchmarks: Vec<Benchmark> = wrong_ids.iter().map(|&id| load(id)).collect();
    let mut wrong = scripted(&wrong_benchmarks, &options, |_, task| match task {
        Task::Math(_) => respond("\\boxed{-987654321}"),
        _ => respond("```output\n'not the output at all'\n```"),
    });
    let report = evaluate(&wrong_benchmarks, &mut wrong, &exec, &options).unwrap();
    for b in &report.benchmarks {
        assert_eq!((b.pass_at_1, b.stderr), (0.0, 0.0), "{}", b.benchmark);
    }
    let r = &report.records[45];
    assert_eq!(r.benchmark, BenchmarkId::Gsm8k);
    assert_eq!(r.extracted.as_deref(), Some("-987654321"));
    assert_eq!(r.reason, Some(azr_eval::FailReason::Wrong));
}

#[test]
fn policy_errors_and_short_answers_are_reported() {
    let exec = executor(5);
    let benchmarks = vec![load(BenchmarkId::Amc23)];
    let options = EvalOptions {
        limit: Some(3),
        ..EvalOptions::default()
    };
    let mut short = |prompts: &[String]| -> Result<Vec<String>, PolicyError> {
        Ok(vec![String::new(); prompts.len() - 1])
    };
    let err = evaluate(&benchmarks, &mut short, &exec, &options).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the policy returned 2 responses for 3 prompts on amc23"
    );
    let mut failing =
        |_: &[String]| -> Result<Vec<String>, PolicyError> { Err("out of memory".into()) };
    let err = evaluate(&benchmarks, &mut failing, &exec, &options).unwrap_err();
    assert_eq!(err.to_string(), "the policy failed on amc23: out of memory");
}

#[test]
fn scaffolded_or_unformatted_answers_count_leniently_but_not_strictly() {
    let exec = executor(5);
    let benchmarks = vec![load(BenchmarkId::Gsm8k)];
    let options = EvalOptions {
        limit: Some(3),
        ..EvalOptions::default()
    };
    let mut formatted = scripted(&benchmarks, &options, reference_answer);
    let mut bare = scripted(&benchmarks, &options, |_, task| match task {
        Task::Math(m) => format!("So the result is \\boxed{{{}}}", m.answer),
        _ => unreachable!("math only"),
    });
    // Problem 0: right and formatted, but the environment closed the think block for it;
    // problem 1: right, no think/answer format; problem 2: right and formatted, unaided.
    let mut policy = |prompts: &[String]| -> Result<Vec<Generated>, PolicyError> {
        let (formatted, bare) = (formatted(prompts)?, bare(prompts)?);
        Ok(formatted
            .into_iter()
            .zip(bare)
            .enumerate()
            .map(|(i, (f, b))| Generated {
                text: if i == 1 { b } else { f },
                scaffolded: i == 0,
            })
            .collect())
    };
    let report = evaluate(&benchmarks, &mut policy, &exec, &options).unwrap();
    let s = &report.benchmarks[0];
    assert_eq!((s.n, s.correct, s.strict_correct), (3, 3, 1));
    assert_eq!((s.pass_at_1, s.strict_pass_at_1), (1.0, 1.0 / 3.0));
    let r = &report.records;
    assert!(r.iter().all(|r| r.correct));
    assert_eq!(
        r.iter()
            .map(|r| (r.format_ok, r.scaffolded, r.strict_correct()))
            .collect::<Vec<_>>(),
        [
            (true, true, false),
            (false, false, false),
            (true, false, true)
        ]
    );
    assert!(report
        .table()
        .contains("gsm8k               3  100.00%   0.00%   33.33%*"));
}
