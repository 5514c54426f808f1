//! Prompts for the six task-role groups, and their two renderings.
//!
//! The wording is ours. Every prompt carries: the `<think>`/`<answer>` contract, the fenced blocks
//! the answer must contain (one compact skeleton of the answer), and what the group needs — K
//! reference triplets (deduction/abduction proposers), the program rules with the banned-module
//! list (proposers), the number N of inputs and the message (induction proposer), the shown
//! pairs and message (induction solver). Texts are short on purpose: the default model has 135M
//! parameters and a small context.
//!
//! Renderings:
//! - [`Rendering::Plain`] (base models): a one-line transcript preamble with the contract,
//!   `User: instruction`, then `Assistant: <think>`.
//! - [`Rendering::Chat`] (instruct models): one user message (contract + instruction) passed to
//!   the model's chat template, which must return the text up to and including the start of the
//!   assistant turn; `<think>` is appended after it.
//!
//! With `format.think = "required"` (the default, [`ThinkMode::Required`]) both renderings end
//! with the prefilled `<think>`, so a response starts inside the think block. With `optional`
//! the contract allows a think block and nothing is prefilled; with `off` it asks for the answer
//! block alone and nothing is prefilled.

use crate::parse::ThinkMode;
use crate::task::{Group, InductionRecord, IoPair, Triplet, ValidTask};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// How many entries of [`azr_exec::config::BANNED_MODULES`] the proposer prompts name.
///
/// That list is the only banned-module list: it is what validation enforces. It opens with the
/// reference's twelve modules and `os`, `sys` — the ones a model actually reaches for — and goes on
/// with about forty more (files, processes, networking, introspection). Naming all of them would
/// cost a 135M model ~120 prompt tokens for nothing, so the prompt names this headline and
/// summarises the rest in words. If the executor's list is reordered, the golden prompt files show it.
pub const BANNED_SHOWN: usize = 14;

/// The banned modules the proposer prompts name: the first [`BANNED_SHOWN`] of the executor's list.
pub fn banned_headline() -> &'static [&'static str] {
    let all = azr_exec::config::BANNED_MODULES;
    &all[..BANNED_SHOWN.min(all.len())]
}

/// The text every rendered prompt ends with (the start of the think block).
pub const PREFILL: &str = "<think>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: ChatRole,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: ChatRole, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// A model's chat template: messages in, prompt text out (ending where the assistant's reply
/// starts, i.e. with the generation prompt added).
pub trait ChatTemplate {
    fn apply(&self, messages: &[ChatMessage]) -> String;
}

impl<F: Fn(&[ChatMessage]) -> String> ChatTemplate for F {
    fn apply(&self, messages: &[ChatMessage]) -> String {
        self(messages)
    }
}

/// How a prompt is turned into model input text.
#[derive(Clone, Copy)]
pub enum Rendering<'a> {
    Plain,
    Chat(&'a dyn ChatTemplate),
}

/// What a prompt is about: one variant per task-role group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptTask<'a> {
    ProposeDeduction {
        references: &'a [Triplet],
    },
    ProposeAbduction {
        references: &'a [Triplet],
    },
    ProposeInduction {
        program: &'a str,
        n_inputs: usize,
    },
    SolveDeduction {
        program: &'a str,
        input: &'a str,
    },
    SolveAbduction {
        program: &'a str,
        output: &'a str,
    },
    SolveInduction {
        shown: &'a [IoPair],
        message: &'a str,
    },
}

/// Opening of the plain rendering (third person: the text is a transcript).
const PLAIN_CONTRACT: &str = "User gives a task and Assistant solves it. Assistant reasons step \
by step inside <think> </think>, then gives only the final answer inside <answer> </answer>.";

/// Opening of the chat message (second person: the model is addressed).
const CHAT_CONTRACT: &str = "Reason step by step inside <think> </think>, then give only the \
final answer inside <answer> </answer>.";

const PLAIN_CONTRACT_OPTIONAL: &str = "User gives a task and Assistant solves it. Assistant may \
reason step by step inside <think> </think> first, then gives the final answer inside <answer> \
</answer>.";

const CHAT_CONTRACT_OPTIONAL: &str = "You may reason step by step inside <think> </think> \
first; then give the final answer inside <answer> </answer>.";

const PLAIN_CONTRACT_OFF: &str = "User gives a task and Assistant solves it. Assistant gives \
only the final answer, inside <answer> </answer>, with no explanation.";

const CHAT_CONTRACT_OFF: &str = "Give only the final answer, inside <answer> </answer>, with \
no explanation.";

/// The plain and chat contracts of a think mode.
fn contracts(think: ThinkMode) -> (&'static str, &'static str) {
    match think {
        ThinkMode::Required => (PLAIN_CONTRACT, CHAT_CONTRACT),
        ThinkMode::Optional => (PLAIN_CONTRACT_OPTIONAL, CHAT_CONTRACT_OPTIONAL),
        ThinkMode::Off => (PLAIN_CONTRACT_OFF, CHAT_CONTRACT_OFF),
    }
}

/// What a rendered prompt of `think` mode ends with: `<think>` when it is prefilled.
pub fn prefill(think: ThinkMode) -> &'static str {
    if think.prefilled() {
        PREFILL
    } else {
        ""
    }
}

const INPUT_RULE: &str = "An input is the argument list of `f`, written exactly as it goes \
between the parentheses of f(...), using literals only, e.g. `'abc', [1, 2]`.";

fn program_rules() -> String {
    format!(
        "Rules:\n\
         - The program defines a function `f`; imports, helpers and classes may come before it.\n\
         - Same input, same result: no randomness, clock, files, network, input() or print.\n\
         - Do not import {}, nor any module for files, processes, networking or introspection.\n\
         - `f` returns plain data: numbers, strings, lists, tuples, dicts, sets, booleans or None.\n\
         - {INPUT_RULE}",
        banned_headline().join(", ")
    )
}

fn block(out: &mut String, tag: &str, body: &str) {
    let _ = write!(out, "```{tag}\n{body}\n```\n");
}

fn references(out: &mut String, refs: &[Triplet]) {
    if refs.is_empty() {
        return;
    }
    out.push_str("\nExisting tasks (make yours different):\n");
    for (i, t) in refs.iter().enumerate() {
        let _ = writeln!(out, "Task {}:", i + 1);
        block(out, "python", &t.program);
        block(out, "input", &t.input);
        block(out, "output", &t.output);
    }
}

const PROGRAM_INPUT_SKELETON: &str =
    "<answer>\n```python\ndef f(...):\n    ...\n```\n```input\n...\n```\n</answer>";

fn propose_program(goal: &str, refs: &[Triplet]) -> String {
    let mut s = format!(
        "Create a new task for another model: a Python program and one input for it. {goal}\n\n{}\n",
        program_rules()
    );
    references(&mut s, refs);
    s.push_str("\nAnswer with one python block and one input block:\n");
    s.push_str(PROGRAM_INPUT_SKELETON);
    s
}

impl PromptTask<'_> {
    /// The solver prompt of a validated task.
    pub fn solve(task: &ValidTask) -> PromptTask<'_> {
        match task {
            ValidTask::Deduction(t) => PromptTask::solve_deduction(t),
            ValidTask::Abduction(t) => PromptTask::solve_abduction(t),
            ValidTask::Induction(r) => PromptTask::solve_induction(r),
        }
    }

    /// Solver prompt for a deduction task.
    pub fn solve_deduction(t: &Triplet) -> PromptTask<'_> {
        PromptTask::SolveDeduction {
            program: &t.program,
            input: &t.input,
        }
    }

    /// Solver prompt for an abduction task.
    pub fn solve_abduction(t: &Triplet) -> PromptTask<'_> {
        PromptTask::SolveAbduction {
            program: &t.program,
            output: &t.output,
        }
    }

    /// Solver prompt for an induction task: shows the first half of the pairs.
    pub fn solve_induction(r: &InductionRecord) -> PromptTask<'_> {
        PromptTask::SolveInduction {
            shown: r.split().0,
            message: &r.message,
        }
    }

    pub fn group(&self) -> Group {
        match self {
            PromptTask::ProposeDeduction { .. } => Group::PROPOSE_DEDUCTION,
            PromptTask::ProposeAbduction { .. } => Group::PROPOSE_ABDUCTION,
            PromptTask::ProposeInduction { .. } => Group::PROPOSE_INDUCTION,
            PromptTask::SolveDeduction { .. } => Group::SOLVE_DEDUCTION,
            PromptTask::SolveAbduction { .. } => Group::SOLVE_ABDUCTION,
            PromptTask::SolveInduction { .. } => Group::SOLVE_INDUCTION,
        }
    }

    /// The task instruction (the user's words), without the contract or any rendering.
    pub fn instruction(&self) -> String {
        match *self {
            PromptTask::ProposeDeduction { references } => propose_program(
                "The other model will see the program and the input and must predict the \
                 output, so make the program take real reasoning to trace.",
                references,
            ),
            PromptTask::ProposeAbduction { references } => propose_program(
                "The other model will see the program and its output and must find an input \
                 that gives that output, so make the input hard to work out backwards.",
                references,
            ),
            PromptTask::ProposeInduction { program, n_inputs } => {
                let mut s = String::from("Here is a Python program:\n");
                block(&mut s, "python", program);
                let _ = write!(
                    s,
                    "Create a task for another model: write {n_inputs} different inputs for `f` \
                     and a message. The other model will see some inputs with their outputs and \
                     your message, and must rewrite `f`. Pick inputs that together show what `f` \
                     does. The message is a short hint in plain words, with no code.\n\
                     {INPUT_RULE}\n\n\
                     Answer with {n_inputs} input blocks and one message block:\n\
                     <answer>\n```input\n...\n```\n(one input block per input)\n\
                     ```message\n...\n```\n</answer>"
                );
                s
            }
            PromptTask::SolveDeduction { program, input } => {
                let mut s = String::from("Predict what `f` returns for this input.\n");
                block(&mut s, "python", program);
                block(&mut s, "input", input);
                s.push_str(
                    "Answer with one output block: the returned value as a Python literal, as repr() \
                     shows it:\n\
                     <answer>\n```output\n...\n```\n</answer>",
                );
                s
            }
            PromptTask::SolveAbduction { program, output } => {
                let mut s = String::from("Find an input for which `f` returns this output.\n");
                block(&mut s, "python", program);
                block(&mut s, "output", output);
                let _ = write!(
                    s,
                    "{INPUT_RULE} Any input that gives this output is accepted.\n\
                     Answer with one input block:\n\
                     <answer>\n```input\n...\n```\n</answer>"
                );
                s
            }
            PromptTask::SolveInduction { shown, message } => {
                let mut s = String::from(
                    "Write a Python function `f` that maps each input below to its output. \
                     More hidden inputs will be checked too.\n",
                );
                let _ = writeln!(s, "Hint: {message}");
                for (i, o) in shown {
                    let _ = writeln!(s, "f({i}) -> {o}");
                }
                s.push_str("Answer with one python block:\n");
                s.push_str("<answer>\n```python\ndef f(...):\n    ...\n```\n</answer>");
                s
            }
        }
    }

    /// The full model input in the chosen rendering, ending with [`PREFILL`].
    pub fn render(&self, rendering: Rendering<'_>) -> String {
        self.render_with(rendering, ThinkMode::Required)
    }

    /// The full model input in the chosen rendering, with the contract of `think` and its
    /// prefill ([`prefill`]).
    pub fn render_with(&self, rendering: Rendering<'_>, think: ThinkMode) -> String {
        let instruction = self.instruction();
        let (plain, chat) = contracts(think);
        match rendering {
            Rendering::Plain if think.prefilled() => {
                format!("{plain}\n\nUser: {instruction}\n\nAssistant: {PREFILL}")
            }
            Rendering::Plain => format!("{plain}\n\nUser: {instruction}\n\nAssistant:"),
            Rendering::Chat(template) => {
                let msg = ChatMessage {
                    role: ChatRole::User,
                    content: format!("{chat}\n\n{instruction}"),
                };
                let mut s = template.apply(std::slice::from_ref(&msg));
                s.push_str(prefill(think));
                s
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Triplet;

    #[test]
    fn groups() {
        let refs = [Triplet::identity_seed()];
        let rec = InductionRecord::identity_seed();
        let t = Triplet::identity_seed();
        let tasks = [
            PromptTask::ProposeDeduction { references: &refs },
            PromptTask::ProposeAbduction { references: &refs },
            PromptTask::ProposeInduction {
                program: &t.program,
                n_inputs: 10,
            },
            PromptTask::solve_deduction(&t),
            PromptTask::solve_abduction(&t),
            PromptTask::solve_induction(&rec),
        ];
        for (task, g) in tasks.iter().zip(Group::ALL) {
            assert_eq!(task.group(), g);
        }
        for ty in crate::task::TaskType::ALL {
            let v = ValidTask::identity_seed(ty);
            assert_eq!(
                PromptTask::solve(&v).group(),
                Group::new(ty, crate::task::Role::Solve)
            );
        }
    }

    #[test]
    fn elements_present() {
        let refs = [
            Triplet::identity_seed(),
            Triplet::new("def f(x):\n    return x[::-1]", "'abc'", "'cba'"),
        ];
        for task in [
            PromptTask::ProposeDeduction { references: &refs },
            PromptTask::ProposeAbduction { references: &refs },
        ] {
            let s = task.instruction();
            for m in banned_headline() {
                assert!(s.contains(m), "{m}");
            }
            // the headline comes from the executor's (enforced) list
            assert_eq!(banned_headline().len(), BANNED_SHOWN);
            assert!(banned_headline()
                .iter()
                .all(|m| azr_exec::config::BANNED_MODULES.contains(m)));
            assert!(s.contains("Task 2:\n```python\ndef f(x):\n    return x[::-1]\n```\n```input\n'abc'\n```\n```output\n'cba'\n```"));
            assert!(s.contains("```python\n") && s.contains("```input\n"));
            assert!(s.contains("<answer>") && s.contains("</answer>"));
        }
        let s = PromptTask::ProposeInduction {
            program: "def f(a):\n    return a",
            n_inputs: 7,
        }
        .instruction();
        assert!(s.contains("write 7 different inputs"));
        assert!(s.contains("Answer with 7 input blocks"));
        assert!(s.contains("```message"));
        let rec = InductionRecord::identity_seed();
        let s = PromptTask::solve_induction(&rec).instruction();
        assert!(s.contains("Hint: The function gives back its argument unchanged."));
        // shown pairs: the first five; hidden ones never appear
        assert!(s.contains("f(7) -> 7\n") && s.contains("f((4, 'x')) -> (4, 'x')\n"));
        assert!(!s.contains("True") && !s.contains("None") && !s.contains("-2.5"));
        let t = Triplet::new("def f(a):\n    return a", "'in'", "'OUT'");
        let s = PromptTask::solve_deduction(&t).instruction();
        assert!(s.contains("'in'") && !s.contains("'OUT'") && s.contains("```output"));
        let s = PromptTask::solve_abduction(&t).instruction();
        assert!(!s.contains("'in'") && s.contains("'OUT'") && s.contains("```input"));
    }

    #[test]
    fn renderings_end_with_prefill() {
        let t = Triplet::identity_seed();
        let task = PromptTask::solve_deduction(&t);
        let plain = task.render(Rendering::Plain);
        assert!(plain.starts_with(PLAIN_CONTRACT));
        assert!(plain.ends_with("\n\nAssistant: <think>"));
        let template = |m: &[ChatMessage]| {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].role, ChatRole::User);
            format!("[U]{}[A]", m[0].content)
        };
        let chat = task.render(Rendering::Chat(&template));
        assert_eq!(
            chat,
            format!("[U]{CHAT_CONTRACT}\n\n{}[A]<think>", task.instruction())
        );
        // optional / off: their own contract, nothing prefilled
        let off = task.render_with(Rendering::Plain, ThinkMode::Off);
        assert!(off.starts_with(PLAIN_CONTRACT_OFF) && off.ends_with("\n\nAssistant:"));
        let opt = task.render_with(Rendering::Chat(&template), ThinkMode::Optional);
        assert_eq!(
            opt,
            format!("[U]{CHAT_CONTRACT_OPTIONAL}\n\n{}[A]", task.instruction())
        );
    }
}
