//! `azr bench ...`: throughput and latency tables, each with its anchor measured in the same run.

mod exec;
mod generate;
mod rollout;
mod train;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The executor on CRUXEval: validations/s, deduction and abduction checks/s, latency, a
    /// hostile mixed workload, and a fresh-python3-per-job baseline.
    Exec(exec::ExecBenchArgs),
    /// Batched generation: prefill and decode tokens/s at several batch sizes, peak RSS.
    Generate(generate::GenerateBenchArgs),
    /// One recorded self-play step's rollouts replayed (its prompts, its response lengths):
    /// rollouts per hour with shared prefills, against the same engine without them.
    Rollout(rollout::RolloutBenchArgs),
    /// One policy-gradient update: tokens/s and peak RSS at several batch shapes, with a
    /// PyTorch anchor on the same model and batch.
    Train(train::TrainBenchArgs),
}

pub fn run(which: BenchCommand) -> Result<()> {
    match which {
        BenchCommand::Exec(args) => exec::run(&args),
        BenchCommand::Generate(args) => generate::run(&args),
        BenchCommand::Rollout(args) => rollout::run(&args),
        BenchCommand::Train(args) => train::run(&args),
    }
}

/// Renders rows as an aligned plain-text table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(header.to_vec());
    out.push_str(&line(widths.iter().map(|_| "---").collect()).replace(' ', "-"));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The q-quantile (0..=1) of a list of numbers.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    v[idx]
}

/// Peak resident set size of this process, in MiB (VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets VmHWM to the current RSS, so each measurement reports its own peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
