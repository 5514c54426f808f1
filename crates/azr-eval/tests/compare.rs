//! `compare` on two evaluation folders written by `Report::write_files`: problems paired by
//! benchmark and id, discordant counts per verdict, unshared problems counted, errors named.

use std::path::Path;

use azr_eval::compare::{compare_dirs, mcnemar_exact, CompareError, Scoring};
use azr_eval::{BenchSummary, BenchmarkId, ProblemRecord, Report, RunInfo};

/// A record with a lenient verdict, the format check and the scaffolding flag.
fn record(
    benchmark: BenchmarkId,
    id: &str,
    correct: bool,
    format_ok: bool,
    scaffolded: bool,
) -> ProblemRecord {
    ProblemRecord {
        benchmark,
        id: id.into(),
        prompt: format!("prompt {id}"),
        response: format!("response {id}"),
        extracted: None,
        reference: None,
        correct,
        reason: None,
        detail: None,
        format_ok,
        scaffolded,
    }
}

fn write_run(dir: &Path, records: Vec<ProblemRecord>) {
    let mut ids: Vec<BenchmarkId> = records.iter().map(|r| r.benchmark).collect();
    ids.dedup();
    let summaries = ids
        .iter()
        .map(|&id| {
            let of = || records.iter().filter(move |r| r.benchmark == id);
            let correct = of().filter(|r| r.correct).count();
            let strict = of().filter(|r| r.strict_correct()).count();
            BenchSummary::with_strict(id, correct, strict, of().count(), 1000)
        })
        .collect();
    let info = RunInfo {
        limit: Some(10),
        sample_seed: Some(1),
        rendering: "plain".into(),
    };
    std::fs::create_dir_all(dir).unwrap();
    Report::new(info, summaries, records)
        .write_files(&dir.join("summary.json"), &dir.join("problems.jsonl"))
        .unwrap();
}

#[test]
fn two_folders_compared_on_shared_problems() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    use BenchmarkId::{Gsm8k, HumanEval, Math500};

    // gsm8k, shared ids 0..8 (A also has 8 and 9, B has 10):
    //   0,1: right in both, formatted            (lenient and strict concordant)
    //   2:   right in both, B scaffolded          (strict: A right, B wrong)
    //   3:   right in A, wrong in B               (lenient b, strict b)
    //   4,5,6: wrong in A, right in B, formatted  (lenient c, strict c)
    //   7:   wrong in A, right in B, unformatted  (lenient c only)
    let mut a = vec![
        record(Gsm8k, "0", true, true, false),
        record(Gsm8k, "1", true, true, false),
        record(Gsm8k, "2", true, true, false),
        record(Gsm8k, "3", true, true, false),
    ];
    let mut b = vec![
        record(Gsm8k, "0", true, true, false),
        record(Gsm8k, "1", true, true, false),
        record(Gsm8k, "2", true, true, true),
        record(Gsm8k, "3", false, true, false),
    ];
    for id in ["4", "5", "6"] {
        a.push(record(Gsm8k, id, false, true, false));
        b.push(record(Gsm8k, id, true, true, false));
    }
    a.push(record(Gsm8k, "7", false, true, false));
    b.push(record(Gsm8k, "7", true, false, false));
    a.push(record(Gsm8k, "8", true, true, false));
    a.push(record(Gsm8k, "9", true, true, false));
    b.push(record(Gsm8k, "10", true, true, false));
    // humaneval only in A; math500 shared, one problem, both wrong.
    a.push(record(HumanEval, "HumanEval/0", true, true, false));
    a.push(record(Math500, "m", false, false, false));
    b.push(record(Math500, "m", false, true, false));
    write_run(&dir_a, a);
    write_run(&dir_b, b);

    let cmp = compare_dirs(&dir_a, &dir_b, 2000, 3).unwrap();
    let rows: Vec<_> = cmp
        .rows
        .iter()
        .map(|r| (r.benchmark, r.scoring, r.n, r.b, r.c))
        .collect();
    assert_eq!(
        rows,
        [
            (Gsm8k, Scoring::Lenient, 8, 1, 4),
            (Gsm8k, Scoring::Strict, 8, 2, 3),
            (Math500, Scoring::Lenient, 1, 0, 0),
            (Math500, Scoring::Strict, 1, 0, 0),
        ]
    );
    let lenient = &cmp.rows[0];
    assert_eq!((lenient.pass_at_1_a, lenient.pass_at_1_b), (0.5, 0.875));
    assert!((lenient.diff - 0.375).abs() < 1e-12);
    assert_eq!(lenient.p_value, mcnemar_exact(1, 4));
    assert!(lenient.ci_low <= lenient.diff && lenient.diff <= lenient.ci_high);
    let strict = &cmp.rows[1];
    assert_eq!((strict.pass_at_1_a, strict.pass_at_1_b), (0.5, 0.625));
    let math = &cmp.rows[2];
    assert_eq!((math.p_value, math.ci_low, math.ci_high), (1.0, 0.0, 0.0));

    assert_eq!(cmp.only_a.get(&Gsm8k), Some(&2));
    assert_eq!(cmp.only_a.get(&HumanEval), Some(&1));
    assert_eq!(cmp.only_b.get(&Gsm8k), Some(&1));
    assert_eq!(cmp.only_b.len(), 1);
    assert_eq!(
        cmp.unshared_line(),
        "not compared: 3 problems only in A (humaneval 1, gsm8k 2), 1 only in B (gsm8k 1)"
    );
    let table = cmp.table();
    assert!(
        table.contains("gsm8k          lenient      8    50.00%    87.50%  +37.50%     1     4"),
        "{table}"
    );
    let json = serde_json::to_value(&cmp).unwrap();
    assert_eq!(json["rows"][1]["scoring"], "strict");
    assert_eq!(json["only_a"]["humaneval"], 1);

    // Same seed, same numbers.
    assert_eq!(compare_dirs(&dir_a, &dir_b, 2000, 3).unwrap(), cmp);
}

#[test]
fn unreadable_folders_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_run(
        &dir_a,
        vec![record(BenchmarkId::Gsm8k, "0", true, true, false)],
    );

    let missing = tmp.path().join("missing");
    let err = compare_dirs(&dir_a, &missing, 10, 0).unwrap_err();
    assert!(matches!(err, CompareError::NotAFolder(_)), "{err}");
    assert!(err.to_string().ends_with("missing: not a folder"), "{err}");

    std::fs::create_dir_all(&dir_b).unwrap();
    let err = compare_dirs(&dir_a, &dir_b, 10, 0).unwrap_err();
    assert!(err.to_string().contains("summary.json"), "{err}");

    std::fs::copy(dir_a.join("summary.json"), dir_b.join("summary.json")).unwrap();
    let good = std::fs::read_to_string(dir_a.join("problems.jsonl")).unwrap();
    std::fs::write(dir_b.join("problems.jsonl"), format!("{good}not json\n")).unwrap();
    let err = compare_dirs(&dir_a, &dir_b, 10, 0).unwrap_err();
    assert!(err.to_string().contains("problems.jsonl line 2"), "{err}");

    write_run(
        &dir_b,
        vec![record(BenchmarkId::Gsm8k, "1", true, true, false)],
    );
    let err = compare_dirs(&dir_a, &dir_b, 10, 0).unwrap_err();
    assert!(
        matches!(err, CompareError::NoShared { a: 1, b: 1 }),
        "{err}"
    );
}
