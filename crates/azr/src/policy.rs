//! The model behind azr-core and azr-eval: how prompts reach it ([`rendering`], through its chat
//! template or as plain text), and the two adapters, [`ModelPolicy`] (azr-core's [`Policy`]:
//! prompts in, sampled responses with prompt ids, token ids, sampling log-probs and the
//! sampled-token mask out, in length-sorted batches with scaffolded decoding,
//! [`azr_core::scaffold`]) and [`GreedyEval`] (azr-eval's `Generate`, for `azr eval`, the
//! in-run evaluation and the probe).

use std::time::Instant;

use anyhow::Context;
use azr_core::prompt::{ChatMessage, ChatRole, ChatTemplate, Rendering};
use azr_core::scaffold::{Ended, Scaffold};
use azr_core::{GenRequest, Policy, PolicyError, Response, ThinkMode};
use azr_model::{
    generate_steered, row_seeds, FinishReason, Model, Phase, SamplingParams, Steer, Tokenizer,
};
use azr_rollout::{finish_response, RowTokens};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

/// How prompts reach the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Template {
    /// The model's chat template when it has one, else plain.
    Auto,
    /// The model's chat template (an error when it has none).
    Chat,
    /// "User: ... Assistant:" text.
    Plain,
}

/// azr-core's prompts rendered through a tokenizer's chat template.
pub struct ChatBridge<'a>(pub &'a Tokenizer);

impl ChatTemplate for ChatBridge<'_> {
    /// (Checked at start-up by [`rendering`]: a template that renders "hi" renders these too,
    /// so an error here renders as empty text.)
    fn apply(&self, messages: &[ChatMessage]) -> String {
        self.0
            .apply_chat_template(messages, true)
            .unwrap_or_default()
    }
}

/// The rendering `template` asks for, checked against the model: a chat template that does not
/// render fails here, clearly, rather than on every prompt.
pub fn rendering<'a>(
    template: Template,
    chat: &'a ChatBridge<'a>,
) -> anyhow::Result<Rendering<'a>> {
    let has = chat.0.chat_template().is_some();
    match (template, has) {
        (Template::Plain, _) | (Template::Auto, false) => Ok(Rendering::Plain),
        (Template::Chat, false) => {
            anyhow::bail!("the chat template was asked for, but the model has none")
        }
        _ => {
            chat.0
                .apply_chat_template(&[ChatMessage::new(ChatRole::User, "hi")], true)
                .context("the model's chat template does not render (use the plain template: model.template = \"plain\", or azr eval --plain)")?;
            Ok(Rendering::Chat(chat))
        }
    }
}

/// Per-call seeds: every (step, call) pair gets its own, so a resumed run samples what the
/// uninterrupted one would have.
pub fn call_seed(run_seed: u64, step: u64, call: u64) -> u64 {
    row_seeds(run_seed ^ step.rotate_left(24) ^ call.rotate_left(48), 1)[0]
}

/// How responses are scaffolded.
#[derive(Clone, Copy, Debug)]
pub struct ScaffoldConfig {
    pub think: ThinkMode,
    pub think_budget: usize,
    pub answer_budget: usize,
    /// The plain rendering (a response also ends at `\nUser:`).
    pub plain: bool,
    /// Input blocks an induction proposal holds (its scaffold opens that many).
    pub induction_inputs: usize,
    /// Programs open with `def f(` (self-play; not benchmarks, which name their function).
    pub entry_header: bool,
}

impl ScaffoldConfig {
    pub fn scaffold(&self, group: azr_core::Group) -> Scaffold {
        Scaffold {
            group,
            think: self.think,
            think_budget: self.think_budget,
            answer_budget: self.answer_budget,
            plain: self.plain,
            induction_inputs: self.induction_inputs,
            entry_header: self.entry_header,
        }
    }
}

pub struct ModelPolicy<'a> {
    pub model: &'a Model,
    pub tokenizer: &'a Tokenizer,
    pub params: SamplingParams,
    pub scaffold: ScaffoldConfig,
    /// Rows generated together.
    pub batch: usize,
    pub run_seed: u64,
    /// The step (or seeding round) this policy serves; with `calls`, picks the seeds.
    pub step: u64,
    pub calls: u64,
    /// Time spent generating, and tokens generated, since creation.
    pub secs: f64,
    pub tokens: usize,
    pub bar: ProgressBar,
}

/// The scaffolds of one generation batch, as the engine's [`Steer`].
struct Rows(Vec<Scaffold>);

impl Steer for Rows {
    fn start(&self, row: usize) -> Phase {
        let (budget, stop_strings) = self.0[row].start();
        Phase {
            budget,
            stop_strings,
        }
    }

    fn on_stop(&self, row: usize, text: &str, reason: &FinishReason) -> Option<(String, Phase)> {
        let ended = match reason {
            FinishReason::Eos => Ended::EndOfTurn,
            FinishReason::Stop(s) => Ended::Stop(s.clone()),
            FinishReason::Length => Ended::Budget,
        };
        let c = self.0[row].on_stop(text, &ended)?;
        Some((
            c.append,
            Phase {
                budget: c.budget,
                stop_strings: c.stop_strings,
            },
        ))
    }
}

/// Generates scaffolded responses for already tokenized prompts (one scaffold per row): the
/// engine's output plus what closes the structure at the end, as [`Response`]s.
pub fn generate_scaffolded(
    model: &Model,
    tokenizer: &Tokenizer,
    prompts: &[Vec<u32>],
    scaffolds: Vec<Scaffold>,
    params: &SamplingParams,
    seeds: &[u64],
) -> anyhow::Result<Vec<Response>> {
    let rows = Rows(scaffolds);
    let (gens, _) = generate_steered(model, tokenizer, prompts, params, seeds, &rows)?;
    gens.into_iter()
        .zip(prompts)
        .zip(&rows.0)
        .map(|((g, prompt), sc)| {
            let row = RowTokens {
                ids: g.tokens,
                logprobs: g.logprobs,
                sampled: g.sampled,
            };
            finish_response(tokenizer, sc, prompt.clone(), row)
        })
        .collect()
}

impl Policy for ModelPolicy<'_> {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        let started = Instant::now();
        let seeds = row_seeds(
            call_seed(self.run_seed, self.step, self.calls),
            requests.len(),
        );
        self.calls += 1;
        let context = self.model.config().max_position_embeddings;
        let mut prompts = Vec::with_capacity(requests.len());
        for r in requests {
            let ids = self.tokenizer.encode(&r.prompt, false)?;
            if ids.is_empty() {
                return Err("a prompt tokenized to nothing".into());
            }
            if ids.len() + self.params.max_new_tokens > context {
                return Err(format!(
                    "a {:?} prompt of {} tokens plus {} new tokens exceeds the model's context of \
                     {context} (lower sampling.max_new_tokens or step.references)",
                    r.group,
                    ids.len(),
                    self.params.max_new_tokens
                )
                .into());
            }
            prompts.push(ids);
        }
        // Similar lengths together: less padding. Seeds stay with their rows, so the order
        // changes nothing in what each row samples.
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| prompts[i].len());
        let mut out: Vec<Option<Response>> = vec![None; requests.len()];
        self.bar.set_length(requests.len() as u64);
        self.bar.set_position(0);
        for chunk in order.chunks(self.batch.max(1)) {
            let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| prompts[i].clone()).collect();
            let row_seeds: Vec<u64> = chunk.iter().map(|&i| seeds[i]).collect();
            let scaffolds = chunk
                .iter()
                .map(|&i| self.scaffold.scaffold(requests[i].group))
                .collect();
            let responses = generate_scaffolded(
                self.model,
                self.tokenizer,
                &rows,
                scaffolds,
                &self.params,
                &row_seeds,
            )?;
            for (&i, r) in chunk.iter().zip(responses) {
                self.tokens += r.tokens;
                out[i] = Some(r);
            }
            self.bar.inc(chunk.len() as u64);
        }
        self.secs += started.elapsed().as_secs_f64();
        out.into_iter()
            .map(|r| r.ok_or_else(|| PolicyError::from("a row was not generated")))
            .collect()
    }
}

/// Greedy decoding for evaluations (`azr eval`, the in-training eval, the probe), scaffolded
/// like training's rollouts where the benchmark has a role: CRUXEval-O is a deduction solver's
/// task, CRUXEval-I an abduction solver's, the code benchmarks answer with a python block (the
/// induction solver's fence). Math answers are not scaffolded.
pub struct GreedyEval<'a> {
    pub model: &'a Model,
    pub tokenizer: &'a Tokenizer,
    pub max_new_tokens: usize,
    /// None: no scaffolding at all (what the model writes by itself).
    pub scaffold: Option<ScaffoldConfig>,
    pub batch: usize,
}

impl GreedyEval<'_> {
    fn params(&self) -> SamplingParams {
        SamplingParams {
            stop_token_ids: self.model.config().eos_token_ids.clone(),
            ..SamplingParams::greedy(self.max_new_tokens)
        }
    }

    /// Greedy responses to `prompts`, scaffolded as `group`'s (unscaffolded when None).
    pub fn respond(
        &self,
        group: Option<azr_core::Group>,
        prompts: &[String],
    ) -> anyhow::Result<Vec<Response>> {
        let ids = prompts
            .iter()
            .map(|p| self.tokenizer.encode(p, false))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.batch.max(1)) {
            let seeds = row_seeds(0, chunk.len());
            match (group, self.scaffold) {
                (Some(g), Some(sc)) => {
                    let scaffolds = chunk.iter().map(|_| sc.scaffold(g)).collect();
                    out.extend(generate_scaffolded(
                        self.model,
                        self.tokenizer,
                        chunk,
                        scaffolds,
                        &self.params(),
                        &seeds,
                    )?);
                }
                _ => {
                    let params = SamplingParams {
                        stop_strings: vec![azr_core::parse::ANSWER_CLOSE.into()],
                        ..self.params()
                    };
                    let gens = azr_model::generate(
                        self.model,
                        Some(self.tokenizer),
                        chunk,
                        &params,
                        &seeds,
                    )?;
                    for (g, prompt) in gens.into_iter().zip(chunk) {
                        out.push(Response {
                            text: self.tokenizer.decode(&g.tokens, true)?,
                            prompt_ids: prompt.clone(),
                            ..Response::sampled(String::new(), g.tokens, g.logprobs)
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The solver role whose scaffold fits a benchmark's answers.
fn benchmark_group(b: azr_eval::BenchmarkId) -> Option<azr_core::Group> {
    use azr_eval::BenchmarkId::*;
    match b {
        CruxevalO => Some(azr_core::Group::SOLVE_DEDUCTION),
        CruxevalI => Some(azr_core::Group::SOLVE_ABDUCTION),
        HumanEval | MbppPlus => Some(azr_core::Group::SOLVE_INDUCTION),
        _ => None,
    }
}

impl azr_eval::Generate for GreedyEval<'_> {
    fn generate(&mut self, prompts: &[String]) -> Result<Vec<azr_eval::Generated>, PolicyError> {
        self.generate_with(None, prompts)
    }

    fn generate_for(
        &mut self,
        benchmark: azr_eval::BenchmarkId,
        prompts: &[String],
    ) -> Result<Vec<azr_eval::Generated>, PolicyError> {
        self.generate_with(benchmark_group(benchmark), prompts)
    }
}

impl GreedyEval<'_> {
    fn generate_with(
        &mut self,
        group: Option<azr_core::Group>,
        prompts: &[String],
    ) -> Result<Vec<azr_eval::Generated>, PolicyError> {
        Ok(self
            .respond(group, prompts)?
            .into_iter()
            .map(|r| azr_eval::Generated {
                scaffolded: r.scaffolded(),
                text: r.text,
            })
            .collect())
    }
}
