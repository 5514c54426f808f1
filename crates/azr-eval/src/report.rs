//! Scores and outputs: pass@1 with its standard error per benchmark, the terminal table, the
//! JSON summary and the per-problem JSON Lines.
//!
//! Two verdicts per problem: **lenient** ([`ProblemRecord::correct`]: the answer, wherever the
//! extractor found it, is right) and **strict** ([`ProblemRecord::strict_correct`]: right, in
//! the strict think/answer format, and with no structure completed by the environment).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bench::{BenchmarkId, Category};

/// Why a problem was not solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// No answer could be found in the response.
    NoAnswer,
    /// An answer was found and checked, and it is wrong.
    Wrong,
    /// The answer's code raised, or could not run.
    Error,
    Timeout,
    Memory,
    OutputLimit,
    /// The answer's process was killed (a crash, a signal).
    Killed,
}

impl FailReason {
    pub fn name(self) -> &'static str {
        match self {
            FailReason::NoAnswer => "no_answer",
            FailReason::Wrong => "wrong",
            FailReason::Error => "error",
            FailReason::Timeout => "timeout",
            FailReason::Memory => "memory",
            FailReason::OutputLimit => "output_limit",
            FailReason::Killed => "killed",
        }
    }

    /// The reason an executor status stands for.
    pub fn from_status(status: azr_exec::Status) -> FailReason {
        use azr_exec::Status;
        match status {
            Status::Timeout => FailReason::Timeout,
            Status::Memory => FailReason::Memory,
            Status::OutputLimit => FailReason::OutputLimit,
            Status::Killed => FailReason::Killed,
            Status::Ok => FailReason::Wrong,
            Status::Error | Status::Rejected | Status::InvalidJob => FailReason::Error,
        }
    }
}

/// One problem's line in the per-problem JSONL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProblemRecord {
    pub benchmark: BenchmarkId,
    pub id: String,
    pub prompt: String,
    pub response: String,
    /// The answer taken from the response (code, literal, or math answer).
    pub extracted: Option<String>,
    /// The reference answer where there is a short one (CRUXEval output/input, math answer).
    pub reference: Option<String>,
    pub correct: bool,
    /// `None` when correct.
    pub reason: Option<FailReason>,
    /// What went wrong, in words: the failing input, the exception, the mismatch.
    pub detail: Option<String>,
    /// Whether the response kept the strict think/answer format.
    pub format_ok: bool,
    /// Whether the environment, not the model, completed the response's structure (see
    /// [`crate::eval::Generated`]). Absent (false) in files written before it existed.
    #[serde(default)]
    pub scaffolded: bool,
}

impl ProblemRecord {
    /// The strict verdict: correct, in the strict format, and not scaffolded.
    pub fn strict_correct(&self) -> bool {
        strict_correct(self.correct, self.format_ok, self.scaffolded)
    }
}

/// The strict verdict from its parts: `correct && format_ok && !scaffolded`.
pub fn strict_correct(correct: bool, format_ok: bool, scaffolded: bool) -> bool {
    correct && format_ok && !scaffolded
}

/// One benchmark's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSummary {
    pub benchmark: BenchmarkId,
    pub category: Category,
    /// Problems evaluated.
    pub n: usize,
    /// Problems answered correctly (the lenient verdict).
    pub correct: usize,
    /// correct / n (0 when n is 0): lenient pass@1.
    pub pass_at_1: f64,
    /// sqrt(p (1 - p) / n): the binomial standard error of pass@1.
    pub stderr: f64,
    /// Problems answered correctly in the strict format without scaffolding (the strict
    /// verdict). 0 in summaries written before it existed (their problems.jsonl still has what
    /// it takes to recompute it: `correct` and `format_ok`).
    #[serde(default)]
    pub strict_correct: usize,
    /// strict_correct / n: strict pass@1.
    #[serde(default)]
    pub strict_pass_at_1: f64,
    /// Problems in the benchmark file (n is smaller with a limit).
    pub total: usize,
}

impl BenchSummary {
    /// A summary with no strict verdicts (strict pass@1 0).
    pub fn new(benchmark: BenchmarkId, correct: usize, n: usize, total: usize) -> BenchSummary {
        BenchSummary::with_strict(benchmark, correct, 0, n, total)
    }

    /// A summary with `correct` lenient and `strict_correct` strict verdicts out of `n`.
    pub fn with_strict(
        benchmark: BenchmarkId,
        correct: usize,
        strict_correct: usize,
        n: usize,
        total: usize,
    ) -> BenchSummary {
        let (strict_pass_at_1, _) = pass_at_1(strict_correct, n);
        let (pass_at_1, stderr) = pass_at_1(correct, n);
        BenchSummary {
            benchmark,
            category: benchmark.category(),
            n,
            correct,
            pass_at_1,
            stderr,
            strict_correct,
            strict_pass_at_1,
            total,
        }
    }
}

/// pass@1 and its standard error for `correct` of `n` greedy answers.
pub fn pass_at_1(correct: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let p = correct as f64 / n as f64;
    (p, (p * (1.0 - p) / n as f64).sqrt())
}

/// How the run was made, recorded in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub limit: Option<usize>,
    pub sample_seed: Option<u64>,
    /// `plain` or `chat`.
    pub rendering: String,
}

/// The paper's averages: code (HumanEval, MBPP+), math (the seven math sets), and their mean;
/// of lenient pass@1, and the same of strict pass@1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub code: Option<f64>,
    pub math: Option<f64>,
    /// Mean of the code and math averages, when both exist (the paper's "AVG").
    pub overall: Option<f64>,
    /// The same three of strict pass@1 (absent in summaries written before it existed).
    #[serde(default)]
    pub strict_code: Option<f64>,
    #[serde(default)]
    pub strict_math: Option<f64>,
    #[serde(default)]
    pub strict_overall: Option<f64>,
}

/// The result of an evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub info: RunInfo,
    pub benchmarks: Vec<BenchSummary>,
    pub averages: Averages,
    /// Every problem, benchmark by benchmark, in file order.
    #[serde(skip)]
    pub records: Vec<ProblemRecord>,
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

impl Report {
    pub fn new(
        info: RunInfo,
        benchmarks: Vec<BenchSummary>,
        records: Vec<ProblemRecord>,
    ) -> Report {
        let avg = |c: Category, score: fn(&BenchSummary) -> f64| {
            let xs: Vec<f64> = benchmarks
                .iter()
                .filter(|b| b.category == c && b.n > 0)
                .map(score)
                .collect();
            mean(&xs)
        };
        let both = |c: Option<f64>, m: Option<f64>| c.zip(m).map(|(c, m)| (c + m) / 2.0);
        let (code, math) = (
            avg(Category::Code, |b| b.pass_at_1),
            avg(Category::Math, |b| b.pass_at_1),
        );
        let (strict_code, strict_math) = (
            avg(Category::Code, |b| b.strict_pass_at_1),
            avg(Category::Math, |b| b.strict_pass_at_1),
        );
        Report {
            info,
            benchmarks,
            averages: Averages {
                code,
                math,
                overall: both(code, math),
                strict_code,
                strict_math,
                strict_overall: both(strict_code, strict_math),
            },
            records,
        }
    }

    pub fn summary(&self, benchmark: BenchmarkId) -> Option<&BenchSummary> {
        self.benchmarks.iter().find(|b| b.benchmark == benchmark)
    }

    /// The summary as JSON (without the per-problem records).
    pub fn summary_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The terminal table: benchmark, n, lenient pass@1 and its standard error, strict pass@1
    /// (all in percent), then the averages.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<15} {:>5} {:>8} {:>7} {:>8}\n",
            "benchmark", "n", "pass@1", "s.e.", "strict"
        );
        for b in &self.benchmarks {
            let limited = if b.n < b.total { "*" } else { "" };
            s.push_str(&format!(
                "{:<15} {:>5} {:>7.2}% {:>6.2}% {:>7.2}%{limited}\n",
                b.benchmark.name(),
                b.n,
                100.0 * b.pass_at_1,
                100.0 * b.stderr,
                100.0 * b.strict_pass_at_1,
            ));
        }
        let a = &self.averages;
        for (name, lenient, strict) in [
            ("code avg", a.code, a.strict_code),
            ("math avg", a.math, a.strict_math),
            ("avg", a.overall, a.strict_overall),
        ] {
            if let Some(v) = lenient {
                let strict = strict.map_or(String::new(), |v| format!("{:>7.2}%", 100.0 * v));
                s.push_str(&format!(
                    "{name:<15} {:>5} {:>7.2}% {:>7} {strict}\n",
                    "",
                    100.0 * v,
                    ""
                ));
            }
        }
        if self.benchmarks.iter().any(|b| b.n < b.total) {
            s.push_str("* a subset (--limit) of the benchmark\n");
        }
        s.push_str(
            "pass@1: the answer is right (lenient); strict: right, in the think/answer format, \
             not scaffolded\n",
        );
        s
    }

    /// One JSON line per problem.
    pub fn write_jsonl(&self, mut w: impl Write) -> std::io::Result<()> {
        for r in &self.records {
            serde_json::to_writer(&mut w, r)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }

    /// Reads what [`Report::write_files`] wrote (also files written before the strict
    /// verdicts existed); errors name the file, and the line for the JSONL.
    pub fn read_files(summary: &Path, problems: &Path) -> Result<Report, String> {
        let text =
            std::fs::read_to_string(summary).map_err(|e| format!("{}: {e}", summary.display()))?;
        let mut report: Report =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", summary.display()))?;
        let text = std::fs::read_to_string(problems)
            .map_err(|e| format!("{}: {e}", problems.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str(line)
                .map_err(|e| format!("{} line {}: {e}", problems.display(), i + 1))?;
            report.records.push(record);
        }
        Ok(report)
    }

    /// Writes the JSON summary and the per-problem JSONL; errors name the file.
    pub fn write_files(&self, summary: &Path, problems: &Path) -> Result<(), String> {
        fn io(p: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
            move |e| format!("{}: {e}", p.display())
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(summary, text + "\n").map_err(io(summary))?;
        let f = std::fs::File::create(problems).map_err(io(problems))?;
        self.write_jsonl(std::io::BufWriter::new(f))
            .map_err(io(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_at_1_and_standard_error() {
        assert_eq!(pass_at_1(0, 0), (0.0, 0.0));
        assert_eq!(pass_at_1(10, 10), (1.0, 0.0));
        assert_eq!(pass_at_1(0, 10), (0.0, 0.0));
        let (p, se) = pass_at_1(1, 4);
        assert_eq!(p, 0.25);
        assert!((se - (0.25f64 * 0.75 / 4.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn strict_verdict() {
        assert!(strict_correct(true, true, false));
        assert!(!strict_correct(true, false, false));
        assert!(!strict_correct(true, true, true));
        assert!(!strict_correct(false, true, false));
    }

    #[test]
    fn table_json_and_jsonl() {
        let info = RunInfo {
            limit: Some(4),
            sample_seed: None,
            rendering: "plain".into(),
        };
        let record = ProblemRecord {
            benchmark: BenchmarkId::Gsm8k,
            id: "0".into(),
            prompt: "p".into(),
            response: "r".into(),
            extracted: Some("3".into()),
            reference: Some("4".into()),
            correct: false,
            reason: Some(FailReason::Wrong),
            detail: None,
            format_ok: false,
            scaffolded: true,
        };
        let report = Report::new(
            info,
            vec![
                BenchSummary::with_strict(BenchmarkId::HumanEval, 1, 0, 2, 164),
                BenchSummary::with_strict(BenchmarkId::Gsm8k, 1, 1, 4, 4),
                BenchSummary::with_strict(BenchmarkId::Math500, 3, 2, 4, 500),
            ],
            vec![record.clone()],
        );
        assert_eq!(report.averages.code, Some(0.5));
        assert_eq!(report.averages.math, Some(0.5));
        assert_eq!(report.averages.overall, Some(0.5));
        assert_eq!(report.averages.strict_code, Some(0.0));
        assert_eq!(report.averages.strict_math, Some(0.375));
        assert_eq!(report.averages.strict_overall, Some(0.1875));
        let table = report.table();
        assert!(
            table.contains("humaneval           2   50.00%  35.36%    0.00%*"),
            "{table}"
        );
        assert!(
            table.contains("gsm8k               4   25.00%  21.65%   25.00%\n"),
            "{table}"
        );
        assert!(
            table.contains("math avg                50.00%           37.50%\n"),
            "{table}"
        );
        assert!(table.contains("code avg") && table.contains("--limit"));
        let json = report.summary_json();
        assert_eq!(json["benchmarks"][0]["benchmark"], "humaneval");
        assert_eq!(json["benchmarks"][2]["pass_at_1"], 0.75);
        assert_eq!(json["benchmarks"][2]["strict_pass_at_1"], 0.5);
        assert_eq!(json["benchmarks"][2]["strict_correct"], 2);
        assert_eq!(json["info"]["limit"], 4);
        assert!(json.get("records").is_none());
        let mut out = Vec::new();
        report.write_jsonl(&mut out).unwrap();
        let line: ProblemRecord = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
        assert_eq!(line, record);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\"reason\":\"wrong\""));
    }

    #[test]
    fn files_written_before_strict_scoring_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let (summary, problems) = (
            dir.path().join("summary.json"),
            dir.path().join("problems.jsonl"),
        );
        std::fs::write(
            &summary,
            r#"{"info": {"limit": 2, "sample_seed": null, "rendering": "plain"},
                "benchmarks": [{"benchmark": "gsm8k", "category": "math", "n": 2, "correct": 1,
                                "pass_at_1": 0.5, "stderr": 0.35, "total": 1319}],
                "averages": {"code": null, "math": 0.5, "overall": null}}"#,
        )
        .unwrap();
        std::fs::write(
            &problems,
            concat!(
                r#"{"benchmark":"gsm8k","id":"0","prompt":"p","response":"r","extracted":"4","#,
                r#""reference":"4","correct":true,"reason":null,"detail":null,"format_ok":true}"#,
                "\n\n",
                r#"{"benchmark":"gsm8k","id":"1","prompt":"p","response":"r","extracted":null,"#,
                r#""reference":"4","correct":false,"reason":"no_answer","detail":null,"#,
                r#""format_ok":false}"#,
                "\n"
            ),
        )
        .unwrap();
        let report = Report::read_files(&summary, &problems).unwrap();
        let b = &report.benchmarks[0];
        assert_eq!(
            (b.correct, b.strict_correct, b.strict_pass_at_1),
            (1, 0, 0.0)
        );
        assert_eq!(report.averages.strict_math, None);
        assert_eq!(report.records.len(), 2);
        assert!(!report.records[0].scaffolded && report.records[0].strict_correct());

        std::fs::write(&problems, "{\"benchmark\": \"gsm8k\"\n").unwrap();
        let err = Report::read_files(&summary, &problems).unwrap_err();
        assert!(err.contains("problems.jsonl line 1: "), "{err}");
        let err = Report::read_files(&dir.path().join("none.json"), &problems).unwrap_err();
        assert!(err.contains("none.json: "), "{err}");
    }
}
