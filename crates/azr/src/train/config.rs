//! The run configuration: a TOML file with one section per stage. Built from a preset, then an
//! optional file, then `--set section.key=value` overrides, each layer over the previous one;
//! unknown keys are errors (a typo must not silently fall back to a default).

use std::path::Path;

use anyhow::{bail, Context, Result};
use azr_core::StepConfig;
use azr_model::TrainConfig;
use serde::{Deserialize, Serialize};

pub use crate::policy::Template;

/// Everything a run needs. `azr train --print-config` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    pub model: ModelSection,
    /// The response format (`think`: required, optional or off).
    #[serde(default)]
    pub format: FormatSection,
    pub run: RunSection,
    pub seeding: SeedingSection,
    /// The step's sizes and rewards (azr-core's own config: B, K, N, n, rewards).
    pub step: StepConfig,
    pub sampling: SamplingSection,
    pub optim: TrainConfig,
    pub executor: azr_exec::Limits,
    pub eval: EvalSection,
    /// The format warm-up before self-play (off unless `enabled`).
    #[serde(default)]
    pub warmup: azr_core::WarmupConfig,
    /// Where rollouts are generated: this process (default), or an SGLang, vLLM or llama.cpp
    /// server.
    #[serde(default)]
    pub rollout: azr_rollout::RolloutConfig,
    /// Run the executor's jobs on a SandboxFusion service (`url` empty: the local sandbox).
    #[serde(default)]
    pub sandboxfusion: azr_exec::FusionConfig,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A named model (`azr model list`), a GGUF file or a Hugging Face directory.
    pub name: String,
    pub template: Template,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSection {
    /// "required": the prompt prefills `<think>`, the response reasons, then answers;
    /// "optional": a think block is allowed, not needed; "off": the answer block alone (for
    /// the 135M model).
    pub think: azr_core::ThinkMode,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Training steps (after the seeding phase).
    pub steps: u64,
    /// Seeds generation, buffer sampling and everything else random.
    pub seed: u64,
    /// Write a checkpoint every this many steps (and always at the end and on Ctrl-C).
    pub checkpoint_every: u64,
    /// Checkpoints kept on disk (oldest removed first; at least 1).
    pub keep_checkpoints: usize,
    /// Buffer capacity per task type (oldest evicted when full).
    pub buffer_cap: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedingSection {
    /// Valid tasks each buffer should hold before training starts.
    pub target: usize,
    /// At most this many proposal rounds (a weak model may never reach the target).
    pub max_rounds: usize,
    /// And at most this many minutes.
    pub max_minutes: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSection {
    pub temperature: f32,
    pub top_p: f32,
    /// Longest response, in tokens (sampled and scaffold tokens together).
    pub max_new_tokens: usize,
    /// Prompts generated together in one batch.
    pub batch: usize,
    /// Sampled tokens before the environment closes a think block that is still open and opens
    /// the answer (0: no limit but max_new_tokens).
    #[serde(default)]
    pub think_budget: usize,
    /// Sampled tokens after the environment opened the answer.
    #[serde(default = "default_answer_budget")]
    pub answer_budget: usize,
}

fn default_answer_budget() -> usize {
    64
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Evaluate every this many steps (0: never).
    pub every: u64,
    /// Benchmarks (as `azr eval --bench`), parsed when the config loads: a typo must not
    /// surface hours into a run.
    pub bench: BenchList,
    /// Problems per benchmark (drawn with `run.seed`).
    pub limit: usize,
    /// The evaluation data folder, laid out like the repository's `data/`; empty (the
    /// default): the sets built into azr.
    #[serde(default)]
    pub data: String,
    pub max_tokens: usize,
    /// Tasks in the frozen in-distribution probe (0: none), solved every `every` steps.
    #[serde(default = "default_probe")]
    pub probe: usize,
}

fn default_probe() -> usize {
    128
}

/// A benchmark list as the user wrote it (`cruxeval`, `cruxeval-o, humaneval`, or empty for
/// none) and what it names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BenchList {
    text: String,
    ids: Vec<azr_eval::BenchmarkId>,
}

impl BenchList {
    pub fn ids(&self) -> &[azr_eval::BenchmarkId] {
        &self.ids
    }
}

impl TryFrom<String> for BenchList {
    type Error = String;
    fn try_from(text: String) -> std::result::Result<Self, String> {
        let ids =
            azr_eval::BenchmarkId::parse_list(&text).map_err(|e| format!("eval.bench: {e}"))?;
        Ok(BenchList { text, ids })
    }
}

impl From<BenchList> for String {
    fn from(b: BenchList) -> String {
        b.text
    }
}

/// The built-in presets, by name.
pub const PRESETS: &[(&str, &str)] = &[
    ("cpu", include_str!("presets/cpu.toml")),
    ("reference", include_str!("presets/reference.toml")),
    (
        "qwen-coder-0.5b",
        include_str!("presets/qwen-coder-0.5b.toml"),
    ),
];

impl RunConfig {
    /// The executor of a run: its `[executor]` limits, sandboxed unless `no_sandbox`.
    pub fn exec_config(&self, no_sandbox: bool) -> azr_exec::ExecConfig {
        let sandbox = if no_sandbox {
            azr_exec::SandboxMode::None
        } else {
            azr_exec::SandboxMode::Bubblewrap
        };
        azr_exec::ExecConfig {
            sandboxfusion: self.sandboxfusion.clone(),
            ..azr_exec::ExecConfig::with_limits(self.executor, sandbox)
        }
    }
}

/// Builds the effective config: `preset`, then `file`, then each `--set` override.
pub fn resolve(preset: &str, file: Option<&Path>, overrides: &[String]) -> Result<RunConfig> {
    let text = PRESETS
        .iter()
        .find(|(n, _)| *n == preset)
        .map(|(_, t)| *t)
        .with_context(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            format!("unknown preset {preset:?} (known: {})", names.join(", "))
        })?;
    let mut table: toml::Table =
        toml::from_str(text).context("a built-in preset is not valid TOML")?;
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let over: toml::Table = toml::from_str(&text)
            .with_context(|| format!("{} is not valid TOML", path.display()))?;
        merge(&mut table, over);
    }
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    from_table(table)
}

/// Parses a full config (as written into a run directory).
pub fn parse(text: &str, what: &str) -> Result<RunConfig> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{what} is not valid TOML"))?;
    from_table(table).with_context(|| format!("in {what}"))
}

/// Applies `--set` overrides to an existing config.
pub fn with_overrides(cfg: &RunConfig, overrides: &[String]) -> Result<RunConfig> {
    let mut table = toml::Table::try_from(cfg).context("serializing the config")?;
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    from_table(table)
}

/// Copies the settings other sections read into the step's config.
fn wire(mut cfg: RunConfig) -> RunConfig {
    cfg.step.think = cfg.format.think;
    cfg
}

pub fn to_toml(cfg: &RunConfig) -> Result<String> {
    toml::to_string_pretty(cfg).context("serializing the config")
}

fn from_table(table: toml::Table) -> Result<RunConfig> {
    let cfg: RunConfig = table
        .try_into()
        .map_err(|e: toml::de::Error| anyhow::anyhow!("invalid configuration: {}", e.message()))?;
    check(&cfg)?;
    Ok(wire(cfg))
}

// `!(x > 0.0)` on purpose: NaN must fail these checks too.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn check(c: &RunConfig) -> Result<()> {
    if c.step.batch == 0 {
        bail!("step.batch must be at least 1");
    }
    c.optim.lora.check().context("optim.lora")?;
    c.rollout.check(c.optim.lora.enabled())?;
    if c.step.learnability_samples == 0 {
        bail!("step.learnability_samples must be at least 1");
    }
    if c.step.induction_inputs < 2 {
        bail!("step.induction_inputs must be at least 2");
    }
    if c.sampling.max_new_tokens == 0 || c.sampling.batch == 0 {
        bail!("sampling.max_new_tokens and sampling.batch must be at least 1");
    }
    if c.sampling.answer_budget == 0 {
        bail!("sampling.answer_budget must be at least 1");
    }
    // Room for the scaffold (about 10 tokens) and the answer after the think budget.
    if c.sampling.think_budget > 0
        && c.sampling.think_budget + c.sampling.answer_budget + 16 > c.sampling.max_new_tokens
    {
        bail!(
            "sampling.think_budget ({}) + sampling.answer_budget ({}) + 16 scaffold tokens must \
             fit in sampling.max_new_tokens ({})",
            c.sampling.think_budget,
            c.sampling.answer_budget,
            c.sampling.max_new_tokens
        );
    }
    if !(c.sampling.temperature > 0.0) {
        bail!("sampling.temperature must be > 0 (self-play samples; greedy would collapse learnability)");
    }
    if !(c.sampling.top_p > 0.0 && c.sampling.top_p <= 1.0) {
        bail!("sampling.top_p must be in (0, 1]");
    }
    if c.run.checkpoint_every == 0 || c.run.keep_checkpoints == 0 {
        bail!("run.checkpoint_every and run.keep_checkpoints must be at least 1");
    }
    if c.run.buffer_cap == 0 {
        bail!("run.buffer_cap must be at least 1");
    }
    if !(c.seeding.max_minutes >= 0.0) {
        bail!("seeding.max_minutes must be >= 0");
    }
    if c.executor.timeout_ms == 0 || c.executor.memory_mb == 0 {
        bail!("executor.timeout_ms and executor.memory_mb must be positive");
    }
    let w = &c.warmup;
    if w.enabled && (w.rounds == 0 || w.batch == 0 || w.rows == 0) {
        bail!("warmup.rounds, warmup.batch and warmup.rows must be at least 1 when the warm-up is enabled");
    }
    if !(w.lr >= 0.0 && w.lr.is_finite()) {
        bail!("warmup.lr must be a finite number >= 0");
    }
    Ok(())
}

/// Deep-merges `over` into `base` (tables merge key by key; other values replace).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `section.key=value`: the value is read as TOML (`3`, `1e-6`, `true`, `"text"`), and as a
/// plain string when it is not valid TOML (`model.name=qwen2.5-coder-0.5b`).
fn apply_override(table: &mut toml::Table, text: &str) -> Result<()> {
    let (path, raw) = text
        .split_once('=')
        .with_context(|| format!("--set {text:?}: expected section.key=value"))?;
    let keys: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {text:?}: empty key");
    }
    let raw = raw.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.into()),
    };
    let (last, parents) = keys.split_last().context("empty key")?;
    let mut cur = table;
    for k in parents {
        cur = match cur.get_mut(*k) {
            Some(toml::Value::Table(t)) => t,
            Some(_) => bail!("--set {text:?}: {k} is not a section"),
            None => bail!("--set {text:?}: unknown section {k}"),
        };
    }
    match cur.get(*last) {
        None => bail!("--set {text:?}: unknown key {last} (see azr train --print-config)"),
        Some(old) => {
            // An integer where the config holds a float is what users mean (`lr=0` etc).
            let value = match (old, value) {
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
                (_, v) => v,
            };
            cur.insert(last.to_string(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_round_trips() {
        for (name, _) in PRESETS {
            let cfg = resolve(name, None, &[]).unwrap();
            assert_eq!(
                parse(&to_toml(&cfg).unwrap(), "round trip").unwrap(),
                cfg,
                "{name}"
            );
        }
    }

    /// `--set` changes only keys a preset names, so every preset names every key.
    #[test]
    fn every_key_can_be_set_in_every_preset() {
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                match v {
                    toml::Value::Table(sub) => keys(sub, &format!("{prefix}{k}."), out),
                    _ => out.push(format!("{prefix}{k}")),
                }
            }
        }
        for (name, text) in PRESETS {
            let mut all = Vec::new();
            let cfg = resolve(name, None, &[]).unwrap();
            keys(
                &toml::from_str(&to_toml(&cfg).unwrap()).unwrap(),
                "",
                &mut all,
            );
            let preset: toml::Table = toml::from_str(text).unwrap();
            let mut named = Vec::new();
            keys(&preset, "", &mut named);
            let missing: Vec<&String> = all.iter().filter(|k| !named.contains(k)).collect();
            assert!(missing.is_empty(), "{name} does not name {missing:?}");
        }
    }

    #[test]
    fn overrides_apply_and_typos_are_errors() {
        let cfg = resolve(
            "cpu",
            None,
            &[
                "run.steps=7".into(),
                "optim.optimizer.lr=1e-5".into(),
                "model.name=qwen2.5-coder-0.5b".into(),
                "optim.optimizer.weight_decay=0".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.run.steps, 7);
        assert_eq!(cfg.optim.optimizer.lr, 1e-5);
        assert_eq!(cfg.model.name, "qwen2.5-coder-0.5b");
        assert_eq!(cfg.optim.optimizer.weight_decay, 0.0);
        let err = resolve("cpu", None, &["run.stepz=7".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown key stepz"), "{err}");
        let err = resolve("cpu", None, &["run.steps=many".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("invalid"), "{err:#}");
        let err = resolve("cpu", None, &["step.batch=0".into()]).unwrap_err();
        assert!(err.to_string().contains("step.batch"), "{err}");
        let err = resolve("cpu", None, &["eval.bench=cruxeval-0".into()]).unwrap_err();
        assert!(err.to_string().contains("eval.bench"), "{err}");
        let err = resolve("cpu", None, &["model.template=chta".into()]).unwrap_err();
        assert!(err.to_string().contains("`chat`"), "{err}");
        let cfg = resolve("cpu", None, &["model.template=plain".into()]).unwrap();
        assert_eq!(cfg.model.template, Template::Plain);
        assert!(resolve("gpu-please", None, &[]).is_err());
    }

    #[test]
    fn lora_is_set_from_the_command_line() {
        let cfg = resolve(
            "cpu",
            None,
            &[
                "optim.lora.rank=8".into(),
                r#"optim.lora.targets=["q_proj", "v_proj"]"#.into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.optim.lora.rank, 8);
        assert_eq!(cfg.optim.lora.targets.names(), ["q_proj", "v_proj"]);
        assert!(!resolve("cpu", None, &[]).unwrap().optim.lora.enabled());
        let err = resolve("cpu", None, &[r#"optim.lora.targets=["qkv"]"#.into()]).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown LoRA target"),
            "{err:#}"
        );
        let err = resolve(
            "cpu",
            None,
            &["optim.lora.rank=4".into(), "optim.lora.targets=[]".into()],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("optim.lora"), "{err:#}");
    }

    #[test]
    fn a_file_overlays_the_preset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.toml");
        std::fs::write(
            &path,
            "[run]\nsteps = 42\n[sampling]\nmax_new_tokens = 299\n",
        )
        .unwrap();
        let cfg = resolve("cpu", Some(&path), &["run.steps=43".into()]).unwrap();
        assert_eq!(cfg.run.steps, 43);
        assert_eq!(cfg.sampling.max_new_tokens, 299);
        let base = resolve("cpu", None, &[]).unwrap();
        assert_eq!(cfg.step, base.step);
        std::fs::write(&path, "[run]\nsteps = 42\nbogus = 1\n").unwrap();
        assert!(resolve("cpu", Some(&path), &[]).is_err());
    }
}
