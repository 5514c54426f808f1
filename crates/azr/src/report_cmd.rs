//! `azr report RUN_DIR`: PNG plots of a training run's main curves and a plain-text summary.
//!
//! Input is `RUN_DIR/metrics.jsonl`: one JSON object per training step with an integer `step`.
//! Every other field is read generically: nested objects are flattened into '/'-joined keys
//! (`groups/solve_deduction/accuracy`), numbers and bools become values, anything else is
//! ignored. Malformed lines are skipped with a warning naming the line.
//!
//! The curves, each drawn only when at least one key matches (x axis: step):
//! - `reward_mean.png`, `accuracy.png`, `format_error_rate.png`, `response_length.png`,
//!   `mean_solve_rate.png`: every key whose last segment is that name, one line per group
//!   (the key without that last segment, e.g. `solve_deduction`);
//! - `buffer_sizes.png`: every `buffer_sizes/*` key, one line per buffer;
//! - `train_loss.png`, `train_grad_norm.png`, `train_entropy.png`: those single keys under
//!   `train/`, one plot each (their scales differ);
//! - `timing.png`: every `timing/*` key, one line per phase.
//!
//! With task-by-task probe scores (`RUN_DIR/probe_scores.jsonl`) the summary ends with paired
//! comparisons: the first probed step against the last, and with `--against CONTROL`, the
//! control's probe against this run's at the last step both probed (McNemar's exact test and
//! the paired bootstrap interval, as `azr eval compare`).
//!
//! Text (titles, tick labels, legends) is drawn with the first TrueType font found under the
//! system font directories (DejaVu Sans preferred); without one the curves are still drawn, with
//! no text, and a warning says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use plotters::prelude::*;
use serde_json::Value;
use tracing::{info, warn};

use azr_core::probe::ProbeScore;

use crate::tensorboard::flatten_json;

#[derive(Args)]
pub struct ReportArgs {
    /// The run directory holding metrics.jsonl.
    pub run_dir: PathBuf,
    /// Where to write the PNG plots (default: RUN_DIR/plots).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A control run (same config and seeds, e.g. learning rate 0): its last probe is compared
    /// with this run's, task by task, at the last step both probed.
    #[arg(long, value_name = "RUN_DIR")]
    pub against: Option<PathBuf>,
}

/// Reads the metrics, writes the plots and prints the summary to stdout.
pub fn run(args: &ReportArgs) -> Result<()> {
    print!("{}", report(args)?);
    Ok(())
}

/// One plot: which keys it draws.
enum Curve {
    /// Keys whose last '/'-segment is this name; one line per group.
    Suffix(&'static str),
    /// Keys under this prefix; one line per key.
    Prefix(&'static str),
    /// This one key.
    Exact(&'static str),
}

const CURVES: &[Curve] = &[
    Curve::Suffix("reward_mean"),
    Curve::Suffix("accuracy"),
    Curve::Suffix("format_error_rate"),
    Curve::Suffix("strict_format_rate"),
    Curve::Suffix("scaffolded_rate"),
    Curve::Exact("zero_variance_groups"),
    Curve::Exact("nonzero_advantage_fraction"),
    Curve::Prefix("probe"),
    Curve::Suffix("response_length"),
    Curve::Suffix("mean_solve_rate"),
    Curve::Prefix("buffer_sizes"),
    Curve::Exact("train/loss"),
    Curve::Exact("train/grad_norm"),
    Curve::Exact("train/entropy"),
    Curve::Exact("peak_rss_mib"),
    Curve::Prefix("timing"),
];

impl Curve {
    fn file_name(&self) -> String {
        let (Curve::Suffix(name) | Curve::Prefix(name) | Curve::Exact(name)) = self;
        format!("{}.png", name.replace('/', "_"))
    }

    fn title(&self) -> String {
        match self {
            Curve::Suffix(name) => format!("*/{name}"),
            Curve::Prefix(name) => format!("{name}/*"),
            Curve::Exact(name) => name.to_string(),
        }
    }

    /// The matching keys of `series`, in key order, each with its legend label.
    fn select<'a>(&self, series: &'a Series) -> Vec<(&'a str, String)> {
        let mut lines: Vec<(&str, String)> = series
            .keys()
            .filter_map(|key| {
                let label = match self {
                    Curve::Suffix(name) if key == name => Some(key.clone()),
                    Curve::Suffix(name) => key
                        .strip_suffix(name)
                        .and_then(|rest| rest.strip_suffix('/'))
                        .map(str::to_string),
                    Curve::Prefix(name) => key
                        .strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix('/'))
                        .map(str::to_string),
                    Curve::Exact(name) => (key == name).then(|| key.clone()),
                };
                label.map(|l| (key.as_str(), l))
            })
            .collect();
        strip_common_segments(&mut lines);
        lines
    }
}

/// Drops the leading '/'-segments all labels share (`groups/a`, `groups/b` -> `a`, `b`), as
/// long as every label keeps at least one segment.
fn strip_common_segments(lines: &mut [(&str, String)]) {
    if lines.len() < 2 {
        return;
    }
    let split: Vec<Vec<&str>> = lines.iter().map(|(_, l)| l.split('/').collect()).collect();
    let shortest = split.iter().map(Vec::len).min().unwrap_or(0);
    let common = (0..shortest.saturating_sub(1))
        .take_while(|&i| split.iter().all(|s| s[i] == split[0][i]))
        .count();
    if common == 0 {
        return;
    }
    let stripped: Vec<String> = split.iter().map(|s| s[common..].join("/")).collect();
    for ((_, label), new) in lines.iter_mut().zip(stripped) {
        *label = new;
    }
}

/// Key -> (step, value) points, sorted by step.
type Series = BTreeMap<String, Vec<(f64, f64)>>;

struct Metrics {
    series: Series,
    steps: BTreeSet<i64>,
    skipped: usize,
}

/// The most malformed lines warned about one by one.
const MAX_LINE_WARNINGS: usize = 10;

fn read_metrics(path: &Path) -> Result<Metrics> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut metrics = Metrics {
        series: Series::new(),
        steps: BTreeSet::new(),
        skipped: 0,
    };
    for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(&line) {
            Ok((step, values)) => {
                metrics.steps.insert(step);
                for (key, value) in values {
                    let points = metrics.series.entry(key).or_default();
                    points.push((step as f64, value));
                }
            }
            Err(e) => {
                metrics.skipped += 1;
                if metrics.skipped <= MAX_LINE_WARNINGS {
                    warn!(
                        "{}: skipping malformed line {}: {e:#}",
                        path.display(),
                        index + 1
                    );
                }
            }
        }
    }
    if metrics.skipped > MAX_LINE_WARNINGS {
        warn!(
            "{}: skipped {} malformed lines in all",
            path.display(),
            metrics.skipped
        );
    }
    if metrics.steps.is_empty() {
        bail!(
            "{}: no valid metrics line (each line must be a JSON object with an integer \"step\")",
            path.display()
        );
    }
    for points in metrics.series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(metrics)
}

/// The step and the flattened values of one metrics line.
fn parse_line(line: &[u8]) -> Result<(i64, Vec<(String, f64)>)> {
    let mut value: Value = serde_json::from_slice(line).context("not JSON")?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| anyhow!("not a JSON object"))?;
    let step = object
        .remove("step")
        .and_then(|s| s.as_i64())
        .ok_or_else(|| anyhow!("no integer \"step\""))?;
    let mut values = Vec::new();
    flatten_json("", &value, &mut values);
    Ok((step, values))
}

/// Does the work of [`run`] and returns the summary.
fn report(args: &ReportArgs) -> Result<String> {
    let path = args.run_dir.join("metrics.jsonl");
    let metrics = read_metrics(&path)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join("plots"));
    std::fs::create_dir_all(&out)
        .with_context(|| format!("creating the plot directory {}", out.display()))?;
    let text = font_available();

    let mut plotted: Vec<&str> = Vec::new();
    let mut files = Vec::new();
    for curve in CURVES {
        let lines = curve.select(&metrics.series);
        if lines.is_empty() {
            continue;
        }
        let file = out.join(curve.file_name());
        let data: Vec<(&str, &[(f64, f64)])> = lines
            .iter()
            .map(|(key, label)| (label.as_str(), metrics.series[*key].as_slice()))
            .collect();
        draw_plot(&file, &curve.title(), &data, text)?;
        info!("wrote {}", file.display());
        plotted.extend(lines.iter().map(|(key, _)| *key));
        files.push(file);
    }
    if files.is_empty() {
        warn!(
            "{}: none of the known curves found, so no plots (see `azr report --help`)",
            path.display()
        );
    }
    let mut text = summary(&path, &metrics, &plotted, &files);
    text += &probe_section(&args.run_dir, args.against.as_deref())?;
    Ok(text)
}

/// One probe score per probed step, in step order, read from `RUN_DIR/probe_scores.jsonl`;
/// empty when the run has no probe.
fn read_probe_scores(run_dir: &Path) -> Result<Vec<(u64, ProbeScore)>> {
    let path = run_dir.join("probe_scores.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut scores = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        #[derive(serde::Deserialize)]
        struct Line {
            step: u64,
            score: ProbeScore,
        }
        let l: Line = serde_json::from_str(line)
            .with_context(|| format!("{} line {}", path.display(), i + 1))?;
        // A resumed run may probe a step twice; the last write is the one its curves show.
        scores.insert(l.step, l.score);
    }
    Ok(scores.into_iter().collect())
}

/// The paired probe comparisons: this run's first probed step against its last, and with
/// `against`, the control's probe against this run's at the last step both probed.
fn probe_section(run_dir: &Path, against: Option<&Path>) -> Result<String> {
    let scores = read_probe_scores(run_dir)?;
    let paired = |s: &ProbeScore| s.n > 0 && s.lenient_correct.len() == s.n;
    let mut out = String::new();
    if let (Some(a), Some(b)) = (scores.first(), scores.last()) {
        if a.0 != b.0 && paired(&a.1) && paired(&b.1) {
            out += &format!(
                "\nprobe, step {} -> step {} (paired, {} tasks):\n",
                a.0, b.0, a.1.n
            );
            out += &paired_lines(&a.1, &b.1);
        }
    }
    let Some(control) = against else {
        return Ok(out);
    };
    let read = |dir: &Path| {
        let p = dir.join("probe.jsonl");
        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    if read(run_dir)? != read(control)? {
        bail!(
            "{} and {} probe different tasks (their probe.jsonl differ): run both with the same \
             config and seeds",
            run_dir.display(),
            control.display()
        );
    }
    let control_scores = read_probe_scores(control)?;
    let common = scores.iter().rev().find_map(|(step, s)| {
        let c = control_scores.iter().find(|(cs, _)| cs == step)?;
        (paired(s) && paired(&c.1)).then_some((*step, &c.1, s))
    });
    let Some((step, c, s)) = common else {
        bail!(
            "{} and {} have no probed step in common with task-by-task scores",
            run_dir.display(),
            control.display()
        );
    };
    out += &format!(
        "\nprobe at step {step}, control {} -> this run (paired, {} tasks):\n",
        control.display(),
        s.n
    );
    out += &paired_lines(c, s);
    Ok(out)
}

/// Lenient and strict rows: accuracy A -> B, the difference, the discordant counts, McNemar's
/// exact p-value and the paired bootstrap 95% interval.
fn paired_lines(a: &ProbeScore, b: &ProbeScore) -> String {
    use azr_eval::compare::{p_value, paired, DEFAULT_RESAMPLES, DEFAULT_SEED};
    let mut out = String::new();
    for (name, x, y) in [
        ("lenient", &a.lenient_correct, &b.lenient_correct),
        ("strict", &a.strict_correct, &b.strict_correct),
    ] {
        let p = paired(x, y, DEFAULT_RESAMPLES, DEFAULT_SEED);
        out += &format!(
            "  {name:<8} {:6.2}% -> {:6.2}%  diff {:+6.2}  (lost {}, gained {})  \
             McNemar p = {}  95% CI [{:+.2}, {:+.2}]\n",
            100.0 * p.pass_at_1_a,
            100.0 * p.pass_at_1_b,
            100.0 * p.diff,
            p.b,
            p.c,
            p_value(p.p_value),
            100.0 * p.ci_low,
            100.0 * p.ci_high,
        );
    }
    out
}

fn summary(path: &Path, metrics: &Metrics, plotted: &[&str], files: &[PathBuf]) -> String {
    let mut s = format!("metrics: {}\n", path.display());
    let (first, last) = (
        metrics.steps.first().copied().unwrap_or_default(),
        metrics.steps.last().copied().unwrap_or_default(),
    );
    s += &format!(
        "steps: {} (step {first} to {last}), {} keys",
        metrics.steps.len(),
        metrics.series.len()
    );
    if metrics.skipped > 0 {
        let plural = if metrics.skipped == 1 { "" } else { "s" };
        s += &format!(", {} malformed line{plural} skipped", metrics.skipped);
    }
    s += "\n";
    if !plotted.is_empty() {
        let width = plotted.iter().map(|k| k.len()).max().unwrap_or(0);
        s += &format!("\n{:<width$}  {:>12}  {:>12}\n", "key", "first", "last");
        for key in plotted {
            let points = &metrics.series[*key];
            let (Some(a), Some(b)) = (points.first(), points.last()) else {
                continue;
            };
            s += &format!("{key:<width$}  {:>12}  {:>12}\n", num(a.1), num(b.1));
        }
    }
    s += "\nplots:\n";
    if files.is_empty() {
        s += "  (none: no known curve in the metrics)\n";
    }
    for file in files {
        s += &format!("  {}\n", file.display());
    }
    s
}

/// A value for the summary table: at most 4 decimals (`0.25`, `12`), very small or large
/// values in scientific notation.
fn num(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e9) {
        return format!("{x:.3e}");
    }
    let fixed = format!("{x:.4}");
    fixed
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 600;

/// Draws one PNG with one line per (label, points); `text` says whether a font is registered
/// (without one, no title, tick labels or legend are drawn).
fn draw_plot(path: &Path, title: &str, lines: &[(&str, &[(f64, f64)])], text: bool) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let points = lines.iter().flat_map(|(_, p)| p.iter());
    let (x, y) = (
        padded_range(points.clone().map(|p| p.0), 0.0),
        padded_range(points.map(|p| p.1), 0.05),
    );

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder
            .caption(title, ("sans-serif", 26))
            .x_label_area_size(45)
            .y_label_area_size(80);
    }
    let mut chart = builder
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(|e| err(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        // Steps are whole numbers: label only the ticks that are (a short run gets ticks at
        // fractions, which printed as 2.5999999999999996).
        mesh.x_desc("step").x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-6 {
                format!("{}", x.round() as i64)
            } else {
                String::new()
            }
        });
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| err(&e))?;

    for (i, (label, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // a single point would draw no line: mark the points instead
        let marker = if points.len() == 1 { 4 } else { 0 };
        let series = chart
            .draw_series(
                LineSeries::new(points.iter().copied(), color.stroke_width(2)).point_size(marker),
            )
            .map_err(|e| err(&e))?;
        if text && lines.len() > 1 {
            series.label(*label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && lines.len() > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// (min, max) of `values` widened by `pad` of the span on each side; a single value gets a
/// span of its own so the axis is never empty.
fn padded_range(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let half = (lo.abs() * 0.1).max(0.5);
        return (lo - half, hi + half);
    }
    let margin = (hi - lo) * pad;
    (lo - margin, hi + margin)
}

/// Registers a system TrueType font as plotters' "sans-serif" on first use; false (with one
/// warning) when there is none.
fn font_available() -> bool {
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let roots = ["/usr/share/fonts", "/usr/local/share/fonts"].map(Path::new);
        let Some(path) = find_font(&roots) else {
            warn!(
                "no TrueType font under /usr/share/fonts: plots are drawn without text \
                 (install one, e.g. apt-get install fonts-dejavu-core)"
            );
            return false;
        };
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!("reading font {}: {e}: plots have no text", path.display());
                return false;
            }
        };
        // plotters keeps registered fonts for the whole process
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        match plotters::style::register_font("sans-serif", FontStyle::Normal, bytes) {
            Ok(()) => true,
            Err(_) => {
                warn!(
                    "{} is not a usable font: plots have no text",
                    path.display()
                );
                false
            }
        }
    })
}

/// Plain, widely installed sans-serif fonts, best first.
const PREFERRED_FONTS: &[&str] = &[
    "DejaVuSans.ttf",
    "LiberationSans-Regular.ttf",
    "NotoSans-Regular.ttf",
    "FreeSans.ttf",
    "Arial.ttf",
];

/// The first preferred font under `roots`, else any `*Sans*.ttf`, else any `.ttf`.
fn find_font(roots: &[&Path]) -> Option<PathBuf> {
    let mut all = Vec::new();
    for root in roots {
        collect_ttf(root, 0, &mut all);
    }
    all.sort();
    let name = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string()
    };
    PREFERRED_FONTS
        .iter()
        .find_map(|want| all.iter().find(|p| name(p) == *want))
        .or_else(|| all.iter().find(|p| name(p).contains("Sans")))
        .or_else(|| all.first())
        .cloned()
}

fn collect_ttf(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    const MAX_DEPTH: usize = 6;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth < MAX_DEPTH {
                collect_ttf(&path, depth + 1, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ttf"))
        {
            out.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

    fn line(step: i64, scale: f64) -> String {
        serde_json::json!({
            "step": step,
            "groups": {
                "propose_deduction": {"reward_mean": 0.1 * scale, "accuracy": 0.5, "format_error_rate": 0.2},
                "solve_deduction": {"reward_mean": -0.2 * scale, "accuracy": 0.25 * scale, "format_error_rate": 0.0, "token_reward_mean": 3.0},
            },
            "buffer_sizes": {"deduction": 10 * step, "abduction": 5},
            "train": {"loss": 1.0 / scale, "grad_norm": 2.5},
            "timing": {"generate": 1.5, "train": 0.5},
            "note": "ignored",
        })
        .to_string()
    }

    fn is_png(path: &Path) -> bool {
        std::fs::read(path).is_ok_and(|b| b.starts_with(PNG_SIGNATURE))
    }

    #[test]
    fn plots_and_summary() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{}\n{}\n{{\"step\": 2, \"groups\": \n{}\n",
            line(0, 1.0),
            line(1, 2.0),
            line(2, 3.0)
        );
        std::fs::write(dir.path().join("metrics.jsonl"), text).unwrap();
        let args = ReportArgs {
            run_dir: dir.path().to_path_buf(),
            out: None,
            against: None,
        };
        let summary = report(&args).unwrap();
        assert!(summary.contains("steps: 3 (step 0 to 2)"), "{summary}");
        assert!(summary.contains("1 malformed line skipped"), "{summary}");
        assert!(
            summary.contains("groups/solve_deduction/accuracy"),
            "{summary}"
        );
        assert!(!summary.contains("token_reward_mean"), "{summary}");
        let plots = dir.path().join("plots");
        for name in [
            "reward_mean.png",
            "accuracy.png",
            "format_error_rate.png",
            "buffer_sizes.png",
            "train_loss.png",
            "train_grad_norm.png",
            "timing.png",
        ] {
            let path = plots.join(name);
            assert!(is_png(&path), "{} is not a PNG", path.display());
            assert!(summary.contains(&path.display().to_string()), "{summary}");
        }
        // no key for these curves
        assert!(!plots.join("train_entropy.png").exists());
        assert!(!plots.join("response_length.png").exists());
        run(&args).unwrap();
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let args = ReportArgs {
            run_dir: dir.path().join("no-such-run"),
            out: None,
            against: None,
        };
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(err.contains("no-such-run/metrics.jsonl"), "{err}");
    }

    #[test]
    fn no_valid_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "garbage\n{\"no_step\": 1}\n[1]\n{\"step\": 1.5}\n").unwrap();
        let args = ReportArgs {
            run_dir: dir.path().to_path_buf(),
            out: Some(dir.path().join("elsewhere")),
            against: None,
        };
        let err = format!("{:#}", run(&args).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("no valid metrics line"), "{err}");
    }

    /// Writes a run with one metrics line, the probe file and one probe score per (step, lenient).
    fn probe_run(dir: &Path, probe: &str, scores: &[(u64, &[bool])]) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), line(0, 1.0) + "\n").unwrap();
        std::fs::write(dir.join("probe.jsonl"), probe).unwrap();
        let lines: Vec<String> = scores
            .iter()
            .map(|(step, lenient)| {
                let right = lenient.iter().filter(|c| **c).count();
                let score = ProbeScore {
                    n: lenient.len(),
                    strict: 0,
                    lenient: right,
                    strict_accuracy: 0.0,
                    lenient_accuracy: right as f64 / lenient.len() as f64,
                    strict_correct: vec![false; lenient.len()],
                    lenient_correct: lenient.to_vec(),
                };
                serde_json::json!({"step": step, "score": score}).to_string()
            })
            .collect();
        std::fs::write(dir.join("probe_scores.jsonl"), lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn probe_is_compared_task_by_task() {
        let dir = tempfile::tempdir().unwrap();
        let (run_dir, control) = (dir.path().join("run"), dir.path().join("control"));
        let (t, f) = (true, false);
        // 10 tasks: the run gains 6 and loses 1 between step 0 and step 4
        let start = [t, t, f, f, f, f, f, f, f, f];
        let end = [f, t, t, t, t, t, t, t, f, f];
        probe_run(&run_dir, "tasks\n", &[(0, &start), (2, &start), (4, &end)]);
        probe_run(
            &control,
            "tasks\n",
            &[(0, &start), (4, &start), (6, &start)],
        );
        let args = ReportArgs {
            run_dir: run_dir.clone(),
            out: None,
            against: Some(control.clone()),
        };
        let text = report(&args).unwrap();
        assert!(
            text.contains("probe, step 0 -> step 4 (paired, 10 tasks)"),
            "{text}"
        );
        // 20% -> 70%, discordant 1 and 6: McNemar p = 2 * (1 + 7) / 2^7 = 0.125
        let row =
            "lenient   20.00% ->  70.00%  diff +50.00  (lost 1, gained 6)  McNemar p = 0.1250";
        assert_eq!(text.matches(row).count(), 2, "{text}");
        assert!(text.contains("probe at step 4, control"), "{text}");
        assert!(text.contains("strict     0.00% ->   0.00%  diff  +0.00  (lost 0, gained 0)  McNemar p = 1.0000  95% CI [+0.00, +0.00]"), "{text}");

        // A control that probed other tasks is refused.
        std::fs::write(control.join("probe.jsonl"), "other\n").unwrap();
        let err = format!("{:#}", report(&args).unwrap_err());
        assert!(err.contains("probe different tasks"), "{err}");
    }

    #[test]
    fn draws_without_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.png");
        let a = [(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)];
        let b = [(1.0, 7.0)];
        draw_plot(&path, "t", &[("a", &a), ("b", &b)], false).unwrap();
        assert!(is_png(&path));
    }

    #[test]
    fn labels_drop_shared_segments() {
        let series: Series = [
            "groups/a/accuracy",
            "groups/b/accuracy",
            "accuracy",
            "x/acc",
        ]
        .into_iter()
        .map(|k| (k.to_string(), vec![(0.0, 0.0)]))
        .collect();
        let labels = |curve: Curve| -> Vec<String> {
            curve.select(&series).into_iter().map(|(_, l)| l).collect()
        };
        assert_eq!(
            labels(Curve::Suffix("accuracy")),
            ["accuracy", "groups/a", "groups/b"]
        );
        assert_eq!(
            labels(Curve::Prefix("groups")),
            ["a/accuracy", "b/accuracy"]
        );
        assert_eq!(labels(Curve::Exact("x/acc")), ["x/acc"]);
    }

    #[test]
    fn numbers_in_summary() {
        assert_eq!(num(0.25), "0.25");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-1.5), "-1.5");
        assert_eq!(num(1.0e-4), "1.000e-4");
    }

    #[test]
    fn finds_preferred_font() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("truetype/x");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["Zed.ttf", "SomeSans-Bold.ttf", "DejaVuSans.ttf"] {
            std::fs::write(sub.join(name), b"").unwrap();
        }
        let found = find_font(&[dir.path()]).unwrap();
        assert_eq!(found.file_name().unwrap(), "DejaVuSans.ttf");
        std::fs::remove_file(sub.join("DejaVuSans.ttf")).unwrap();
        let found = find_font(&[dir.path()]).unwrap();
        assert_eq!(found.file_name().unwrap(), "SomeSans-Bold.ttf");
        assert!(find_font(&[&dir.path().join("none")]).is_none());
    }
}
