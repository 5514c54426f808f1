//! Scaffolded decoding: the environment finishes a response's structure, the model writes its
//! content.
//!
//! A small model often ends its turn (or runs out of its think budget) before it has opened an
//! answer: `f('a') returns 'a'</think>` and end of turn. Such a response carries no gradable
//! answer, so every response of a group gets the same format penalty and the group teaches
//! nothing. Here the environment appends what is missing for the role and lets the model go on:
//!
//! 1. `</think>` if the think block is still open;
//! 2. then `<answer>` and the role's opening fence ([`fence_tag`]): ```` ```output ```` for a
//!    deduction solver, ```` ```input ```` for an abduction solver and an induction proposer,
//!    ```` ```python ```` for an induction solver and the deduction/abduction proposers; in
//!    self-play a program's fence comes with `def f(`, the entry function the executor requires;
//! 3. the model continues for `answer_budget` tokens, until its closing fence;
//! 4. a proposer's answer holds several blocks ([`proposer_blocks`]: a program and its input, or
//!    the induction inputs and a message): after each closing fence the environment opens the
//!    next block the answer still lacks, and the model fills it, again for `answer_budget` tokens;
//! 5. at the end the environment closes what is still open (the fence, then `</answer>`).
//!
//! The model engine asks [`Scaffold::on_stop`] whenever a row would stop; the phases are:
//! the **think phase** (`think_budget` sampled tokens, until `</think>` or `<answer>`), then the
//! **answer phase** (the rest of `max_new_tokens`, until `</answer>`). Appended text is not a
//! policy sample: its tokens are masked out of the loss like the prompt's, and a scaffolded
//! response pays `rewards.scaffolded`, so that closing the structure unaided pays.
//!
//! Deliberate choices (the issue that asked for this leaves them open):
//! - The induction proposer's fence is `input` (its answer is N input blocks and a message).
//! - A proposer's blocks are opened one at a time, in the order [`proposer_blocks`] lists them,
//!   so that a small model that writes a program and then wanders off still states an input:
//!   its proposal can be validated, and valid and invalid proposals of one group differ in
//!   reward.
//! - `\nUser:` (plain rendering) ends a response like an end of turn.

use crate::parse::{
    fenced_blocks, tag, ThinkMode, ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN,
};
use crate::prompt::prefill;
use crate::task::{Group, Role, TaskType};

const FENCE: &str = "```";
/// What the plain rendering's next turn starts with: a response that writes it has ended.
pub const PLAIN_TURN: &str = "\nUser:";

/// The fence a role's answer opens with.
pub fn fence_tag(group: Group) -> &'static str {
    match (group.role, group.task_type) {
        (Role::Solve, TaskType::Deduction) => tag::OUTPUT,
        (Role::Solve, TaskType::Abduction) => tag::INPUT,
        (Role::Solve, TaskType::Induction) => tag::PYTHON,
        (Role::Propose, TaskType::Induction) => tag::INPUT,
        (Role::Propose, _) => tag::PYTHON,
    }
}

/// The fenced blocks of a proposer's answer, in order (what [`crate::extract::proposal`] reads):
/// a program and its input; for induction, `induction_inputs` inputs and a message.
pub fn proposer_blocks(task_type: TaskType, induction_inputs: usize) -> Vec<&'static str> {
    match task_type {
        TaskType::Induction => {
            let mut blocks = vec![tag::INPUT; induction_inputs.max(1)];
            blocks.push(tag::MESSAGE);
            blocks
        }
        TaskType::Deduction | TaskType::Abduction => vec![tag::PYTHON, tag::INPUT],
    }
}

/// Why a row would stop, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    EndOfTurn,
    /// One of the phase's stop strings was generated.
    Stop(String),
    /// The phase's token budget ran out.
    Budget,
}

/// Append `append` (may be empty) and sample on, for at most `budget` tokens, until a stop string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    pub append: String,
    pub budget: usize,
    pub stop_strings: Vec<String>,
}

/// Where a response stands structurally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    /// Inside the think block.
    InThink,
    /// Past the think block (or none expected), no `<answer>` yet.
    NoAnswer,
    /// In the last `<answer>`, no fence opened.
    AnswerNoFence,
    /// In the last `<answer>`, a fence open.
    FenceOpen,
    /// In the last `<answer>`, every fence closed, `</answer>` missing.
    FenceClosed,
    /// The last `<answer>` is closed.
    Closed,
}

/// The scaffold of one response: its role, the think mode and the budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaffold {
    pub group: Group,
    pub think: ThinkMode,
    /// Sampled tokens before the think phase ends (0: no separate limit).
    pub think_budget: usize,
    /// Sampled tokens after the environment opened the answer.
    pub answer_budget: usize,
    /// The plain rendering: `\nUser:` ends a response.
    pub plain: bool,
    /// Input blocks an induction proposal holds (`step.induction_inputs`).
    pub induction_inputs: usize,
    /// A program's fence comes with `def f(`: self-play programs must define `f`. Benchmarks
    /// name their own function (HumanEval, MBPP+), so their scaffold writes no header.
    pub entry_header: bool,
}

impl Scaffold {
    fn with_turn(&self, mut stops: Vec<String>) -> Vec<String> {
        if self.plain {
            stops.push(PLAIN_TURN.to_string());
        }
        stops
    }

    /// The think phase: its budget (`usize::MAX` when unlimited; the engine caps it) and stops.
    pub fn start(&self) -> (usize, Vec<String>) {
        let budget = if self.think_budget == 0 {
            usize::MAX
        } else {
            self.think_budget
        };
        let stops = vec![THINK_CLOSE.into(), ANSWER_OPEN.into(), ANSWER_CLOSE.into()];
        (budget, self.with_turn(stops))
    }

    /// The stops of the answer phase the model opened itself.
    fn answer_stops(&self) -> Vec<String> {
        self.with_turn(vec![ANSWER_CLOSE.into()])
    }

    /// What the environment writes to open a block: the fence, and for a program the header
    /// of the entry function (with `entry_header`), so the model writes parameters and body.
    fn open_block(&self, tag: &str) -> String {
        if self.entry_header && tag == tag::PYTHON {
            format!("{FENCE}{tag}\ndef f(")
        } else {
            format!("{FENCE}{tag}\n")
        }
    }

    /// The stops after the environment opened the answer and its fence.
    fn content_stops(&self) -> Vec<String> {
        self.with_turn(vec![FENCE.into(), ANSWER_CLOSE.into()])
    }

    /// The first block a proposer's last answer still lacks (closed blocks count; `py` is
    /// `python`, tags are case-insensitive); `None` for a solver or a complete answer.
    fn missing_block(&self, response: &str) -> Option<&'static str> {
        if self.group.role != Role::Propose {
            return None;
        }
        let body = response.rsplit_once(ANSWER_OPEN).map_or("", |(_, b)| b);
        let mut have: Vec<String> = fenced_blocks(body)
            .iter()
            .map(|b| match b.tag.to_ascii_lowercase() {
                t if t == "py" => tag::PYTHON.to_string(),
                t => t,
            })
            .collect();
        for need in proposer_blocks(self.group.task_type, self.induction_inputs) {
            match have.iter().position(|t| t == need) {
                Some(i) => {
                    have.remove(i);
                }
                None => return Some(need),
            }
        }
        None
    }

    /// Where `response` (the generated text, without the prompt's prefill) stands.
    pub fn structure(&self, response: &str) -> Structure {
        let full = format!("{}{response}", prefill(self.think));
        let trimmed = full.trim_start();
        let rest = if self.think != ThinkMode::Off && trimmed.starts_with(THINK_OPEN) {
            match trimmed.find(THINK_CLOSE) {
                Some(i) => &trimmed[i + THINK_CLOSE.len()..],
                None => return Structure::InThink,
            }
        } else {
            trimmed
        };
        let Some(open) = rest.rfind(ANSWER_OPEN) else {
            return Structure::NoAnswer;
        };
        let body = &rest[open + ANSWER_OPEN.len()..];
        if body.contains(ANSWER_CLOSE) {
            return Structure::Closed;
        }
        match body.matches(FENCE).count() {
            0 => Structure::AnswerNoFence,
            n if n % 2 == 1 => Structure::FenceOpen,
            _ => Structure::FenceClosed,
        }
    }

    /// What to do when the row would stop (see the module documentation); `None`: let it stop.
    pub fn on_stop(&self, response: &str, ended: &Ended) -> Option<Continue> {
        let structure = self.structure(response);
        if let Ended::Stop(s) = ended {
            // A checkpoint of the think phase: the model moved on by itself.
            let checkpoint = s == THINK_CLOSE || s == ANSWER_OPEN;
            if checkpoint && structure != Structure::Closed {
                return Some(Continue {
                    append: String::new(),
                    budget: usize::MAX,
                    stop_strings: self.answer_stops(),
                });
            }
        }
        let fence = self.open_block(fence_tag(self.group));
        let append = match structure {
            Structure::InThink => format!("{THINK_CLOSE}\n{ANSWER_OPEN}\n{fence}"),
            Structure::NoAnswer => format!("\n{ANSWER_OPEN}\n{fence}"),
            Structure::AnswerNoFence => format!("\n{fence}"),
            Structure::FenceClosed => match self.missing_block(response) {
                Some(next) => format!("\n{}", self.open_block(next)),
                None => return None,
            },
            Structure::FenceOpen | Structure::Closed => return None,
        };
        Some(Continue {
            append,
            budget: self.answer_budget,
            stop_strings: self.content_stops(),
        })
    }

    /// The text that closes what is still open at the end (empty when nothing is, or when the
    /// answer was never opened: there is nothing to close into an answer then).
    pub fn close(&self, response: &str) -> &'static str {
        match self.structure(response) {
            Structure::FenceOpen => "\n```\n</answer>",
            Structure::FenceClosed | Structure::AnswerNoFence => "\n</answer>",
            Structure::InThink | Structure::NoAnswer | Structure::Closed => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(group: Group, think: ThinkMode) -> Scaffold {
        Scaffold {
            group,
            think,
            think_budget: 100,
            answer_budget: 20,
            plain: true,
            induction_inputs: 2,
            entry_header: true,
        }
    }

    #[test]
    fn fences_by_role() {
        assert_eq!(fence_tag(Group::SOLVE_DEDUCTION), "output");
        assert_eq!(fence_tag(Group::SOLVE_ABDUCTION), "input");
        assert_eq!(fence_tag(Group::SOLVE_INDUCTION), "python");
        assert_eq!(fence_tag(Group::PROPOSE_DEDUCTION), "python");
        assert_eq!(fence_tag(Group::PROPOSE_ABDUCTION), "python");
        assert_eq!(fence_tag(Group::PROPOSE_INDUCTION), "input");
    }

    #[test]
    fn structure_of_responses() {
        use Structure::*;
        let s = sc(Group::SOLVE_DEDUCTION, ThinkMode::Required);
        for (text, want) in [
            ("I think", InThink),
            ("x</think>", NoAnswer),
            ("x</think>\n<answer>5", AnswerNoFence),
            ("x</think><answer>\n```output\n5", FenceOpen),
            ("x</think><answer>\n```output\n5\n```", FenceClosed),
            ("x</think><answer>\n```output\n5\n```</answer>", Closed),
            ("x</think><answer>1</answer> more <answer>", AnswerNoFence),
        ] {
            assert_eq!(s.structure(text), want, "{text:?}");
        }
        // optional: a think block only when the response opens one
        let o = sc(Group::SOLVE_DEDUCTION, ThinkMode::Optional);
        assert_eq!(o.structure("<think>hm"), InThink);
        assert_eq!(o.structure("the answer"), NoAnswer);
        assert_eq!(o.structure(" <answer>```output\n1"), FenceOpen);
        // off: `<think>` is just text
        let f = sc(Group::SOLVE_DEDUCTION, ThinkMode::Off);
        assert_eq!(f.structure("<think>hm"), NoAnswer);
    }

    #[test]
    fn what_is_appended() {
        let s = sc(Group::SOLVE_DEDUCTION, ThinkMode::Required);
        let eot = Ended::EndOfTurn;
        let c = s.on_stop("f returns 5", &eot).unwrap();
        assert_eq!(c.append, "</think>\n<answer>\n```output\n");
        assert_eq!(c.budget, 20);
        assert_eq!(c.stop_strings, vec!["```", "</answer>", "\nUser:"]);
        // the think budget ran out: same
        assert_eq!(s.on_stop("long thought", &Ended::Budget).unwrap(), c);
        let c = s.on_stop("x</think>", &eot).unwrap();
        assert_eq!(c.append, "\n<answer>\n```output\n");
        let c = s.on_stop("x</think><answer>", &eot).unwrap();
        assert_eq!(c.append, "\n```output\n");
        // a fence the model opened, or the environment's: nothing more, it is closed at the end
        assert_eq!(s.on_stop("x</think><answer>```output\n5", &eot), None);
        assert_eq!(s.on_stop("x</think><answer>```output\n5```", &eot), None);
        assert_eq!(
            s.on_stop("x</think><answer>```output\n5```</answer>", &eot),
            None
        );
        // the model closed the think block (or opened the answer) itself: the answer phase
        let c = s
            .on_stop("x</think>", &Ended::Stop("</think>".into()))
            .unwrap();
        assert_eq!(
            (c.append.as_str(), c.budget, c.stop_strings),
            ("", usize::MAX, vec!["</answer>".into(), "\nUser:".into()])
        );
        // the next plain turn ends a response like an end of turn
        let c = s
            .on_stop("x\nUser:", &Ended::Stop("\nUser:".into()))
            .unwrap();
        assert!(c.append.starts_with("</think>"));
        // a proposer's first block is opened like a solver's
        let p = sc(Group::PROPOSE_DEDUCTION, ThinkMode::Required);
        let c = p.on_stop("plan", &eot).unwrap();
        assert_eq!(c.append, "</think>\n<answer>\n```python\ndef f(");
        assert_eq!(c.stop_strings, vec!["```", "</answer>", "\nUser:"]);
        let i = sc(Group::PROPOSE_INDUCTION, ThinkMode::Off);
        assert_eq!(
            i.on_stop("", &eot).unwrap().append,
            "\n<answer>\n```input\n"
        );
    }

    #[test]
    fn a_proposers_blocks_are_opened_in_turn() {
        let fence = Ended::Stop("```".into());
        let next = |s: &Scaffold, text: &str| s.on_stop(text, &fence).map(|c| c.append);
        let p = sc(Group::PROPOSE_ABDUCTION, ThinkMode::Required);
        let program = "plan</think>\n<answer>\n```python\ndef f(x):\n    return x\n```";
        assert_eq!(next(&p, program).as_deref(), Some("\n```input\n"));
        // the model may write `py`, upper case, or the blocks in another order
        let py = "p</think><answer>```PY\ndef f(x): return x\n```";
        assert_eq!(next(&p, py).as_deref(), Some("\n```input\n"));
        let swapped = "p</think><answer>```input\n1\n```";
        assert_eq!(next(&p, swapped).as_deref(), Some("\n```python\ndef f("));
        // complete: nothing more, and the end closes the answer
        let done = format!("{program}\n```input\n3\n```");
        assert_eq!(next(&p, &done), None);
        assert_eq!(p.close(&done), "\n</answer>");
        let full = format!("<think>{done}{}", p.close(&done));
        let parsed = crate::parse::parse_proposal(
            TaskType::Abduction,
            &full,
            &crate::parse::ParseConfig::default(),
        );
        assert!(parsed.is_ok(), "{parsed:?}");
        // only blocks of the last answer count
        let again = format!("{done}</answer> <answer>```python\nx\n```");
        assert_eq!(next(&p, &again).as_deref(), Some("\n```input\n"));
        // induction: the inputs, then the message
        let i = sc(Group::PROPOSE_INDUCTION, ThinkMode::Off);
        let one = "<answer>\n```input\n1\n```";
        assert_eq!(next(&i, one).as_deref(), Some("\n```input\n"));
        let two = format!("{one}\n```input\n2\n```");
        assert_eq!(next(&i, &two).as_deref(), Some("\n```message\n"));
        assert_eq!(next(&i, &format!("{two}\n```message\nadd\n```")), None);
        // a solver stops at its closing fence
        let s = sc(Group::SOLVE_DEDUCTION, ThinkMode::Off);
        assert_eq!(next(&s, "<answer>\n```output\n1\n```"), None);
        // a benchmark's program names its own function: no header
        let b = Scaffold {
            entry_header: false,
            ..sc(Group::SOLVE_INDUCTION, ThinkMode::Required)
        };
        assert_eq!(
            b.on_stop("plan", &Ended::EndOfTurn).unwrap().append,
            "</think>\n<answer>\n```python\n"
        );
    }

    #[test]
    fn closing() {
        let s = sc(Group::SOLVE_ABDUCTION, ThinkMode::Required);
        assert_eq!(
            s.close("x</think><answer>\n```input\n'a'"),
            "\n```\n</answer>"
        );
        assert_eq!(
            s.close("x</think><answer>\n```input\n'a'\n```"),
            "\n</answer>"
        );
        assert_eq!(s.close("x</think><answer>'a'"), "\n</answer>");
        assert_eq!(s.close("x</think><answer>'a'</answer>"), "");
        assert_eq!(s.close("still thinking"), "");
        // a closed response passes the strict format check
        let text = "x</think><answer>\n```input\n'a'";
        let full = format!("<think>{text}{}", s.close(text));
        assert_eq!(crate::parse::check_format(&full), Ok(()));
    }
}
