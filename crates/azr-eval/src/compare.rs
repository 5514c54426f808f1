//! Two evaluation runs compared on the problems they share: pass@1 of each, the difference,
//! McNemar's exact test and a paired bootstrap interval of the difference, per benchmark and
//! per verdict (lenient and strict, see [`crate::report`]).
//!
//! The runs are paired problem by problem (benchmark + id), so the test and the interval use
//! only what differs between them: the discordant problems, b (right in A, wrong in B) and c
//! (wrong in A, right in B).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::bench::BenchmarkId;
use crate::report::{ProblemRecord, Report};

/// Bootstrap resamples of [`compare`] by default.
pub const DEFAULT_RESAMPLES: usize = 10_000;
/// Bootstrap seed of [`compare`] by default.
pub const DEFAULT_SEED: u64 = 0;

/// McNemar's exact two-sided p-value for `b` and `c` discordant pairs: the binomial test of
/// min(b, c) out of b + c at p = 1/2, `min(1, 2 sum_{k<=min(b,c)} C(b+c, k) / 2^(b+c))`; 1 when
/// there is no discordant pair. Summed in log space, so b + c may be large.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    let m = b.min(c);
    if n == 0 || 2 * m == n {
        // No discordant pair, or a tie: the tail holds at least half the mass.
        return 1.0;
    }
    // ln(C(n, k) / 2^n) for k = 0..=m, built up term by term.
    let mut log_terms = Vec::with_capacity(m + 1);
    let mut log_term = -(n as f64) * std::f64::consts::LN_2;
    log_terms.push(log_term);
    for k in 1..=m {
        log_term += ((n - k + 1) as f64).ln() - (k as f64).ln();
        log_terms.push(log_term);
    }
    // Below n / 2 the terms grow with k: the last is the largest.
    let max = log_term;
    let sum: f64 = log_terms.iter().map(|t| (t - max).exp()).sum();
    (2.0 * (max + sum.ln()).exp()).min(1.0)
}

/// The paired bootstrap percentile interval (95%) of pass@1(B) - pass@1(A): the shared problems
/// (`a[i]`, `b[i]`: the two verdicts on problem i) resampled with replacement `resamples` times
/// by a ChaCha8 stream seeded with `seed`. (0, 0) for no problems or no resamples.
pub fn paired_bootstrap(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "paired verdicts");
    let n = a.len();
    if n == 0 || resamples == 0 {
        return (0.0, 0.0);
    }
    // B's verdict minus A's is -1 on the b problems (right in A only), +1 on the c problems
    // (right in B only), 0 elsewhere: only which kind each draw lands on matters, so the
    // problems are laid out as b, then c, then the concordant ones, and a draw is an index.
    let count = |x: bool, y: bool| a.iter().zip(b).filter(|&(&p, &q)| p == x && q == y).count();
    let (only_a, only_b) = (count(true, false), count(false, true));
    let observed = (only_b as f64 - only_a as f64) / n as f64;
    let mut diffs: Vec<f64> = if only_a + only_b == 0 || only_a == n || only_b == n {
        // Every resample has the observed difference.
        vec![observed; resamples]
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (n64, edge) = (n as u64, (only_a + only_b) as u64);
        (0..resamples)
            .map(|_| {
                let mut s = 0i64;
                for _ in 0..n {
                    // A uniform index in 0..n (multiply-shift; the bias, n / 2^64, is nil).
                    let i = ((u128::from(rng.next_u64()) * u128::from(n64)) >> 64) as u64;
                    if i < edge {
                        s += if i < only_a as u64 { -1 } else { 1 };
                    }
                }
                s as f64 / n as f64
            })
            .collect()
    };
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    (at(0.025), at(0.975))
}

/// Two verdicts per problem on the same problems, compared: what a [`PairedRow`] holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Paired {
    pub n: usize,
    pub pass_at_1_a: f64,
    pub pass_at_1_b: f64,
    /// pass_at_1_b - pass_at_1_a.
    pub diff: f64,
    /// Right in A, wrong in B.
    pub b: usize,
    /// Wrong in A, right in B.
    pub c: usize,
    /// McNemar's exact two-sided p-value ([`mcnemar_exact`]).
    pub p_value: f64,
    /// The paired bootstrap 95% interval of `diff` ([`paired_bootstrap`]).
    pub ci_low: f64,
    pub ci_high: f64,
}

/// [`Paired`] for the verdicts `a[i]`, `b[i]` on problem i (at least one problem).
pub fn paired(a: &[bool], b: &[bool], resamples: usize, seed: u64) -> Paired {
    assert_eq!(a.len(), b.len(), "paired verdicts");
    let n = a.len();
    let count = |v: &[bool]| v.iter().filter(|&&x| x).count();
    let (pass_a, pass_b) = (count(a) as f64 / n as f64, count(b) as f64 / n as f64);
    let discordant =
        |x: bool, y: bool| a.iter().zip(b).filter(|&(&p, &q)| p == x && q == y).count();
    let (only_a, only_b) = (discordant(true, false), discordant(false, true));
    let (ci_low, ci_high) = paired_bootstrap(a, b, resamples, seed);
    Paired {
        n,
        pass_at_1_a: pass_a,
        pass_at_1_b: pass_b,
        diff: pass_b - pass_a,
        b: only_a,
        c: only_b,
        p_value: mcnemar_exact(only_a, only_b),
        ci_low,
        ci_high,
    }
}

/// Which verdict a row scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// [`ProblemRecord::correct`].
    Lenient,
    /// [`ProblemRecord::strict_correct`].
    Strict,
}

impl Scoring {
    pub const BOTH: [Scoring; 2] = [Scoring::Lenient, Scoring::Strict];

    pub fn name(self) -> &'static str {
        match self {
            Scoring::Lenient => "lenient",
            Scoring::Strict => "strict",
        }
    }

    fn verdict(self, r: &ProblemRecord) -> bool {
        match self {
            Scoring::Lenient => r.correct,
            Scoring::Strict => r.strict_correct(),
        }
    }
}

/// One benchmark under one verdict, on the problems both runs have.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedRow {
    pub benchmark: BenchmarkId,
    pub scoring: Scoring,
    /// Shared problems.
    pub n: usize,
    pub pass_at_1_a: f64,
    pub pass_at_1_b: f64,
    /// pass_at_1_b - pass_at_1_a.
    pub diff: f64,
    /// Right in A, wrong in B.
    pub b: usize,
    /// Wrong in A, right in B.
    pub c: usize,
    /// McNemar's exact two-sided p-value ([`mcnemar_exact`]).
    pub p_value: f64,
    /// The paired bootstrap 95% interval of `diff` ([`paired_bootstrap`]).
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The comparison of two runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Benchmark by benchmark (A's order), lenient then strict.
    pub rows: Vec<PairedRow>,
    /// Problems only in A, per benchmark (benchmarks with none left out).
    pub only_a: BTreeMap<BenchmarkId, usize>,
    /// Problems only in B, per benchmark.
    pub only_b: BTreeMap<BenchmarkId, usize>,
    pub resamples: usize,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{}: not a folder", .0.display())]
    NotAFolder(PathBuf),
    #[error("reading {0}")]
    Read(String),
    #[error("{run}: problem {benchmark} {id} appears twice")]
    Duplicate {
        run: &'static str,
        benchmark: BenchmarkId,
        id: String,
    },
    #[error("the two runs share no problem (A has {a}, B has {b}; matched by benchmark and id)")]
    NoShared { a: usize, b: usize },
}

/// The records of `report` by (benchmark, id), and their order.
fn index<'a>(
    report: &'a Report,
    run: &'static str,
) -> Result<HashMap<(BenchmarkId, &'a str), &'a ProblemRecord>, CompareError> {
    let mut map = HashMap::with_capacity(report.records.len());
    for r in &report.records {
        if map.insert((r.benchmark, r.id.as_str()), r).is_some() {
            return Err(CompareError::Duplicate {
                run,
                benchmark: r.benchmark,
                id: r.id.clone(),
            });
        }
    }
    Ok(map)
}

/// Compares run `a` with run `b` (their per-problem records) on the problems both have.
pub fn compare(
    a: &Report,
    b: &Report,
    resamples: usize,
    seed: u64,
) -> Result<Comparison, CompareError> {
    let map_a = index(a, "A")?;
    let map_b = index(b, "B")?;
    // Shared problems per benchmark, in A's order.
    let mut shared: Vec<(BenchmarkId, Vec<(&ProblemRecord, &ProblemRecord)>)> = Vec::new();
    let mut only_a = BTreeMap::new();
    for ra in &a.records {
        match map_b.get(&(ra.benchmark, ra.id.as_str())) {
            Some(rb) => match shared.iter_mut().find(|(id, _)| *id == ra.benchmark) {
                Some((_, pairs)) => pairs.push((ra, rb)),
                None => shared.push((ra.benchmark, vec![(ra, rb)])),
            },
            None => *only_a.entry(ra.benchmark).or_insert(0) += 1,
        }
    }
    let mut only_b = BTreeMap::new();
    for rb in &b.records {
        if !map_a.contains_key(&(rb.benchmark, rb.id.as_str())) {
            *only_b.entry(rb.benchmark).or_insert(0) += 1;
        }
    }
    if shared.is_empty() {
        return Err(CompareError::NoShared {
            a: a.records.len(),
            b: b.records.len(),
        });
    }
    let mut rows = Vec::new();
    for (benchmark, pairs) in &shared {
        for scoring in Scoring::BOTH {
            let va: Vec<bool> = pairs.iter().map(|(x, _)| scoring.verdict(x)).collect();
            let vb: Vec<bool> = pairs.iter().map(|(_, y)| scoring.verdict(y)).collect();
            let p = paired(&va, &vb, resamples, seed);
            rows.push(PairedRow {
                benchmark: *benchmark,
                scoring,
                n: p.n,
                pass_at_1_a: p.pass_at_1_a,
                pass_at_1_b: p.pass_at_1_b,
                diff: p.diff,
                b: p.b,
                c: p.c,
                p_value: p.p_value,
                ci_low: p.ci_low,
                ci_high: p.ci_high,
            });
        }
    }
    Ok(Comparison {
        rows,
        only_a,
        only_b,
        resamples,
        seed,
    })
}

/// Reads the evaluation folder `dir` (`summary.json` and `problems.jsonl`).
pub fn read_dir(dir: &Path) -> Result<Report, CompareError> {
    if !dir.is_dir() {
        return Err(CompareError::NotAFolder(dir.to_path_buf()));
    }
    Report::read_files(&dir.join("summary.json"), &dir.join("problems.jsonl"))
        .map_err(CompareError::Read)
}

/// [`compare`] on two evaluation folders.
pub fn compare_dirs(
    a: &Path,
    b: &Path,
    resamples: usize,
    seed: u64,
) -> Result<Comparison, CompareError> {
    compare(&read_dir(a)?, &read_dir(b)?, resamples, seed)
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn signed_percent(x: f64) -> String {
    // No "-0.00%".
    let x = if (100.0 * x).abs() < 0.005 { 0.0 } else { x };
    format!("{:+.2}%", 100.0 * x)
}

/// 4 decimals, or 2 significant digits below 0.0001.
pub fn p_value(p: f64) -> String {
    if p >= 1e-4 || p == 0.0 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// "3 problems only in A (humaneval 1, gsm8k 2)", or "0 problems only in A".
fn counts(m: &BTreeMap<BenchmarkId, usize>, what: &str) -> String {
    let total: usize = m.values().sum();
    if m.is_empty() {
        return format!("0 {what}");
    }
    let each: Vec<String> = m.iter().map(|(b, n)| format!("{} {n}", b.name())).collect();
    format!("{total} {what} ({})", each.join(", "))
}

impl Comparison {
    /// The problems that are in one run only, in one line.
    pub fn unshared_line(&self) -> String {
        format!(
            "not compared: {}, {}",
            counts(&self.only_a, "problems only in A"),
            counts(&self.only_b, "only in B")
        )
    }

    /// The terminal table, with the unshared line and a legend.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<14} {:<8} {:>5} {:>9} {:>9} {:>8} {:>5} {:>5} {:>9}  {}\n",
            "benchmark",
            "verdict",
            "n",
            "pass@1 A",
            "pass@1 B",
            "B - A",
            "b",
            "c",
            "McNemar p",
            "95% CI of B - A"
        );
        for r in &self.rows {
            s.push_str(&format!(
                "{:<14} {:<8} {:>5} {:>9} {:>9} {:>8} {:>5} {:>5} {:>9}  [{}, {}]\n",
                r.benchmark.name(),
                r.scoring.name(),
                r.n,
                percent(r.pass_at_1_a),
                percent(r.pass_at_1_b),
                signed_percent(r.diff),
                r.b,
                r.c,
                p_value(r.p_value),
                signed_percent(r.ci_low),
                signed_percent(r.ci_high),
            ));
        }
        s.push_str(&self.unshared_line());
        s.push('\n');
        s.push_str(&format!(
            "b: right in A, wrong in B; c: wrong in A, right in B. p: McNemar's exact test; \
             CI: paired bootstrap, {} resamples, seed {}.\n\
             lenient: the answer is right; strict: right, in the think/answer format, not \
             scaffolded.\n",
            self.resamples, self.seed
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BenchSummary, RunInfo};

    fn close(x: f64, y: f64, tol: f64) -> bool {
        (x - y).abs() <= tol * y.abs().max(1e-300)
    }

    #[test]
    fn mcnemar_hand_worked_values() {
        assert!(close(mcnemar_exact(1, 5), 0.21875, 1e-12));
        assert!(close(mcnemar_exact(5, 1), 0.21875, 1e-12));
        assert!(close(mcnemar_exact(0, 6), 0.03125, 1e-12));
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert!(close(mcnemar_exact(10, 0), 2.0 / 1024.0, 1e-12));
        // A single discordant pair: 2 * 1/2 = 1.
        assert!(close(mcnemar_exact(1, 0), 1.0, 1e-12));
    }

    #[test]
    fn mcnemar_large_counts() {
        // python3: from fractions import Fraction; from math import comb
        // float(2 * Fraction(sum(comb(100, k) for k in range(41)), 2**100))
        assert!(close(mcnemar_exact(40, 60), 0.05688793364098079, 1e-10));
        // Same with n = 2100, k <= 1000: 2^-2100 underflows f64, the log-space sum does not.
        assert!(close(mcnemar_exact(1000, 1100), 0.030720707864242296, 1e-9));
        let p = mcnemar_exact(0, 3000);
        assert!((0.0..1e-300).contains(&p), "{p}");
    }

    #[test]
    fn bootstrap_degenerate_and_mixed() {
        let v = [true, false, true, true, false];
        assert_eq!(paired_bootstrap(&v, &v, 1000, 1), (0.0, 0.0));
        assert_eq!(
            paired_bootstrap(&[false; 7], &[true; 7], 1000, 1),
            (1.0, 1.0)
        );
        assert_eq!(paired_bootstrap(&[], &[], 1000, 1), (0.0, 0.0));

        // 40 problems: 10 right in both, 4 only A, 12 only B, 14 in neither: diff = +0.2.
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (x, y, k) in [
            (true, true, 10),
            (true, false, 4),
            (false, true, 12),
            (false, false, 14),
        ] {
            a.resize(a.len() + k, x);
            b.resize(b.len() + k, y);
        }
        let (lo, hi) = paired_bootstrap(&a, &b, DEFAULT_RESAMPLES, 7);
        assert!(lo < 0.2 && 0.2 < hi, "({lo}, {hi})");
        assert!(lo > -0.2 && hi < 0.6, "({lo}, {hi})");
        assert_eq!(paired_bootstrap(&a, &b, DEFAULT_RESAMPLES, 7), (lo, hi));
    }

    fn record(benchmark: BenchmarkId, id: &str, correct: bool, format_ok: bool) -> ProblemRecord {
        ProblemRecord {
            benchmark,
            id: id.into(),
            prompt: String::new(),
            response: String::new(),
            extracted: None,
            reference: None,
            correct,
            reason: None,
            detail: None,
            format_ok,
            scaffolded: false,
        }
    }

    fn report(records: Vec<ProblemRecord>) -> Report {
        let info = RunInfo {
            limit: None,
            sample_seed: None,
            rendering: "plain".into(),
        };
        let summaries = vec![BenchSummary::new(BenchmarkId::Gsm8k, 0, 0, 0)];
        Report::new(info, summaries, records)
    }

    #[test]
    fn no_shared_problem_and_duplicates_are_errors() {
        let a = report(vec![record(BenchmarkId::Gsm8k, "1", true, true)]);
        let b = report(vec![record(BenchmarkId::Math500, "1", true, true)]);
        let err = compare(&a, &b, 10, 0).unwrap_err();
        assert!(
            matches!(err, CompareError::NoShared { a: 1, b: 1 }),
            "{err}"
        );
        let twice = report(vec![
            record(BenchmarkId::Gsm8k, "1", true, true),
            record(BenchmarkId::Gsm8k, "1", false, true),
        ]);
        let err = compare(&a, &twice, 10, 0).unwrap_err();
        assert_eq!(err.to_string(), "B: problem gsm8k 1 appears twice");
    }
}
