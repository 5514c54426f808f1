//! Response parsing: the format check, the last `<answer>` block, fenced blocks by tag, and the
//! per-group payloads.
//!
//! # The prefilled `<think>`
//! Both prompt renderings end with `<think>` (see [`crate::prompt`]), so the model's response text
//! starts *inside* the think block. Parsing takes [`ParseConfig::think_prefilled`] (default true)
//! and then checks `"<think>" + response`; a response that repeats `<think>` itself is accepted too.
//!
//! # Format rule (well-formed response)
//! After leading whitespace the text starts with `<think>`; the first `</think>` closes it; after
//! it, only whitespace, then `<answer>`; the **last** `<answer>` is closed by a `</answer>`; after
//! that `</answer>` only whitespace. The response must not include the end-of-sequence token (the
//! model crate strips special tokens when decoding).
//!
//! # Fenced blocks
//! Inside the answer, an opening fence is three backticks followed by a tag (`python`, `input`,
//! `output`, `message`; ASCII case-insensitive; `py` counts as `python`), optional spaces, then a
//! newline; the block ends at the next three backticks, wherever they are (so a code block may end
//! with ```` ``` ```` on its last code line). Blocks alternate open/close, so the body of an unknown
//! or untagged block is skipped rather than re-read as fences. An unclosed last block is ignored.
//! Nested fences are not supported: three backticks inside a program end its block.
//!
//! # Which block is used
//! The first block of the needed tag. Induction proposals need at least N input blocks: the first N
//! are used. Python and output blocks must not be empty; an input block may be empty (a call `f()`
//! with no arguments is a valid argument list); a message must not be empty.
//!
//! # Think modes ([`ThinkMode`])
//! `required` (the default): the rule above, `<think>` prefilled by the prompt. `optional`:
//! nothing is prefilled; a response may open with a think block (then the rule above holds) or
//! go straight to `<answer>`. `off`: nothing is prefilled and the response is the answer block
//! alone (after leading whitespace it starts with `<answer>`).
//!
//! # Strict here, lenient for rewards
//! This module is the **strict** reading: it is the `strict_format_rate` metric and the opt-in
//! reward `rewards.format = "strict"`. By default rewards come from [`crate::extract`], the
//! reference's lenient extraction (an unclosed final `<answer>` still answers, text after
//! `</answer>` is allowed, fallbacks when a fenced block is missing).
//!
//! Nothing here ever panics, whatever the text; functions return `Option`/`Result`.

use crate::task::{
    Group, InductionProposal, ProgramProposal, Proposal, Role, SolverAnswer, TaskType,
};
use std::borrow::Cow;

pub const THINK_OPEN: &str = "<think>";
pub const THINK_CLOSE: &str = "</think>";
pub const ANSWER_OPEN: &str = "<answer>";
pub const ANSWER_CLOSE: &str = "</answer>";
const FENCE: &str = "```";

/// Canonical fenced-block tags.
pub mod tag {
    pub const PYTHON: &str = "python";
    pub const INPUT: &str = "input";
    pub const OUTPUT: &str = "output";
    pub const MESSAGE: &str = "message";
}

/// Why a response's structure is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("response does not start with <think>")]
    MissingThink,
    #[error("<think> is never closed")]
    ThinkNotClosed,
    #[error("no <answer> block")]
    MissingAnswer,
    #[error("something other than whitespace between </think> and <answer>")]
    AnswerNotAfterThink,
    #[error("last <answer> is never closed")]
    AnswerNotClosed,
    #[error("text after the last </answer>")]
    TrailingText,
    #[error("text before <answer> where no think block is expected")]
    TextBeforeAnswer,
}

/// Why a response could not be turned into a proposal or a solver answer. Every variant means
/// "format broken" for the reward.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("answer has no ```{tag} block")]
    MissingBlock { tag: &'static str },
    #[error("answer has {found} ```{tag} blocks, {needed} needed")]
    TooFewBlocks {
        tag: &'static str,
        found: usize,
        needed: usize,
    },
    #[error("the ```{tag} block is empty")]
    EmptyBlock { tag: &'static str },
}

impl ParseError {
    /// Short stable name for metrics (`format.missing_think`, `missing_block.python`, ...).
    pub fn reason(&self) -> String {
        match self {
            ParseError::Format(f) => format!(
                "format.{}",
                match f {
                    FormatError::MissingThink => "missing_think",
                    FormatError::ThinkNotClosed => "think_not_closed",
                    FormatError::MissingAnswer => "missing_answer",
                    FormatError::AnswerNotAfterThink => "answer_not_after_think",
                    FormatError::AnswerNotClosed => "answer_not_closed",
                    FormatError::TrailingText => "trailing_text",
                    FormatError::TextBeforeAnswer => "text_before_answer",
                }
            ),
            ParseError::MissingBlock { tag } => format!("missing_block.{tag}"),
            ParseError::TooFewBlocks { tag, .. } => format!("too_few_blocks.{tag}"),
            ParseError::EmptyBlock { tag } => format!("empty_block.{tag}"),
        }
    }
}

/// Whether a response reasons in a `<think>` block before its answer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ThinkMode {
    /// The prompt prefills `<think>`; the response closes it, then answers.
    #[default]
    Required,
    /// Nothing prefilled; a think block first is allowed, not needed.
    Optional,
    /// Nothing prefilled; the response is the answer block alone (for very small models).
    Off,
}

impl ThinkMode {
    /// The prompt ends with `<think>`, so the response starts inside the think block.
    pub fn prefilled(self) -> bool {
        self == ThinkMode::Required
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ThinkMode::Required => "required",
            ThinkMode::Optional => "optional",
            ThinkMode::Off => "off",
        }
    }
}

/// How responses are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ParseConfig {
    pub think: ThinkMode,
    /// N: how many input blocks an induction proposal must contain.
    pub induction_inputs: usize,
}

impl ParseConfig {
    /// The prompt ended with `<think>`, so the response starts inside the think block.
    pub fn think_prefilled(&self) -> bool {
        self.think.prefilled()
    }
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            think: ThinkMode::Required,
            induction_inputs: 10,
        }
    }
}

/// One fenced block inside an answer. `tag` is as written (not lower-cased); `content` is the raw
/// text between the opening line and the closing fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FencedBlock<'a> {
    pub tag: &'a str,
    pub content: &'a str,
}

impl FencedBlock<'_> {
    /// Whether this block carries `wanted` (one of the [`tag`] constants).
    pub fn is(&self, wanted: &str) -> bool {
        self.tag.eq_ignore_ascii_case(wanted)
            || (wanted == tag::PYTHON && self.tag.eq_ignore_ascii_case("py"))
    }
}

/// The full text the format rule is checked on: the response with the prefilled `<think>` put
/// back in front.
pub fn full_text(response: &str, think_prefilled: bool) -> Cow<'_, str> {
    if think_prefilled {
        Cow::Owned(format!("{THINK_OPEN}{response}"))
    } else {
        Cow::Borrowed(response)
    }
}

/// Checks a full text (prefill included) against the strict rule of `mode`.
pub fn check_format_with(text: &str, mode: ThinkMode) -> Result<(), FormatError> {
    let starts_with_think = text.trim_start().starts_with(THINK_OPEN);
    match mode {
        ThinkMode::Required => check_format(text),
        ThinkMode::Optional if starts_with_think => check_format(text),
        ThinkMode::Optional | ThinkMode::Off => check_answer_only(text),
    }
}

/// The answer-only rule: whitespace, the answer block(s), the last one closed, nothing after.
fn check_answer_only(text: &str) -> Result<(), FormatError> {
    let t = text.trim_start();
    if !t.contains(ANSWER_OPEN) {
        return Err(FormatError::MissingAnswer);
    }
    if !t.starts_with(ANSWER_OPEN) {
        return Err(FormatError::TextBeforeAnswer);
    }
    closed_last_answer(t)
}

/// The last `<answer>` of `rest` is closed and only whitespace follows its `</answer>`.
fn closed_last_answer(rest: &str) -> Result<(), FormatError> {
    let Some(last_open) = rest.rfind(ANSWER_OPEN) else {
        return Err(FormatError::MissingAnswer);
    };
    let tail = &rest[last_open + ANSWER_OPEN.len()..];
    let Some(end) = tail.find(ANSWER_CLOSE) else {
        return Err(FormatError::AnswerNotClosed);
    };
    if !tail[end + ANSWER_CLOSE.len()..].trim().is_empty() {
        return Err(FormatError::TrailingText);
    }
    Ok(())
}

/// Checks the think-then-answer structure of a full text (prefill included).
pub fn check_format(text: &str) -> Result<(), FormatError> {
    let t = text.trim_start();
    let Some(after_open) = t.strip_prefix(THINK_OPEN) else {
        return Err(FormatError::MissingThink);
    };
    // A response that repeats the prefilled tag is accepted.
    let after_open = after_open
        .trim_start()
        .strip_prefix(THINK_OPEN)
        .unwrap_or(after_open);
    let Some(close) = after_open.find(THINK_CLOSE) else {
        return Err(FormatError::ThinkNotClosed);
    };
    let rest = &after_open[close + THINK_CLOSE.len()..];
    if !rest.contains(ANSWER_OPEN) {
        return Err(FormatError::MissingAnswer);
    }
    if !rest.trim_start().starts_with(ANSWER_OPEN) {
        return Err(FormatError::AnswerNotAfterThink);
    }
    closed_last_answer(rest)
}

/// The text inside the last `<answer>` block; `None` when there is no `<answer>` or the last one
/// is not closed.
pub fn last_answer(text: &str) -> Option<&str> {
    let open = text.rfind(ANSWER_OPEN)?;
    let tail = &text[open + ANSWER_OPEN.len()..];
    let end = tail.find(ANSWER_CLOSE)?;
    Some(&tail[..end])
}

/// All closed fenced blocks in `answer`, in order.
pub fn fenced_blocks(answer: &str) -> Vec<FencedBlock<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(k) = answer[pos..].find(FENCE) {
        // Every offset below is advanced over ASCII bytes only, so it stays a char boundary.
        let tag_start = pos + k + FENCE.len();
        let tag_len = answer[tag_start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'))
            .count();
        let tag_end = tag_start + tag_len;
        let after_tag = &answer[tag_end..];
        let spaces = after_tag
            .bytes()
            .take_while(|b| matches!(b, b' ' | b'\t' | b'\r'))
            .count();
        let body_start = if after_tag[spaces..].starts_with('\n') {
            tag_end + spaces + 1
        } else {
            tag_end
        };
        let Some(c) = answer[body_start..].find(FENCE) else {
            break; // unclosed block: ignored
        };
        out.push(FencedBlock {
            tag: &answer[tag_start..tag_end],
            content: &answer[body_start..body_start + c],
        });
        pos = body_start + c + FENCE.len();
    }
    out
}

/// Contents of all blocks carrying `wanted`, in order.
pub fn blocks_with_tag<'a>(answer: &'a str, wanted: &str) -> Vec<&'a str> {
    fenced_blocks(answer)
        .into_iter()
        .filter(|b| b.is(wanted))
        .map(|b| b.content)
        .collect()
}

/// Program text: trailing whitespace and leading blank lines removed, indentation kept.
fn clean_program(s: &str) -> String {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if line.trim().is_empty() {
            start += line.len();
        } else {
            break;
        }
    }
    s[start..].trim_end().to_string()
}

/// The format-checked answer text of a response.
fn checked_answer(text: &str, mode: ThinkMode) -> Result<&str, ParseError> {
    check_format_with(text, mode)?;
    last_answer(text).ok_or(ParseError::Format(FormatError::AnswerNotClosed))
}

fn first_block<'a>(answer: &'a str, wanted: &'static str) -> Result<&'a str, ParseError> {
    blocks_with_tag(answer, wanted)
        .into_iter()
        .next()
        .ok_or(ParseError::MissingBlock { tag: wanted })
}

fn program_block(answer: &str) -> Result<String, ParseError> {
    let p = clean_program(first_block(answer, tag::PYTHON)?);
    if p.is_empty() {
        return Err(ParseError::EmptyBlock { tag: tag::PYTHON });
    }
    Ok(p)
}

fn program_proposal(answer: &str) -> Result<ProgramProposal, ParseError> {
    Ok(ProgramProposal {
        program: program_block(answer)?,
        input: first_block(answer, tag::INPUT)?.trim().to_string(),
    })
}

fn induction_proposal(answer: &str, n: usize) -> Result<InductionProposal, ParseError> {
    let inputs = blocks_with_tag(answer, tag::INPUT);
    if inputs.len() < n {
        return Err(ParseError::TooFewBlocks {
            tag: tag::INPUT,
            found: inputs.len(),
            needed: n,
        });
    }
    let message = first_block(answer, tag::MESSAGE)?.trim().to_string();
    if message.is_empty() {
        return Err(ParseError::EmptyBlock { tag: tag::MESSAGE });
    }
    Ok(InductionProposal {
        inputs: inputs
            .into_iter()
            .take(n)
            .map(|s| s.trim().to_string())
            .collect(),
        message,
    })
}

/// Parses a proposer response of `task_type`.
pub fn parse_proposal(
    task_type: TaskType,
    response: &str,
    cfg: &ParseConfig,
) -> Result<Proposal, ParseError> {
    let text = full_text(response, cfg.think_prefilled());
    let answer = checked_answer(&text, cfg.think)?;
    Ok(match task_type {
        TaskType::Deduction => Proposal::Deduction(program_proposal(answer)?),
        TaskType::Abduction => Proposal::Abduction(program_proposal(answer)?),
        TaskType::Induction => {
            Proposal::Induction(induction_proposal(answer, cfg.induction_inputs)?)
        }
    })
}

/// Parses a solver response of `task_type`: an output block (deduction), an input block
/// (abduction) or a python block (induction).
pub fn parse_solver_answer(
    task_type: TaskType,
    response: &str,
    cfg: &ParseConfig,
) -> Result<SolverAnswer, ParseError> {
    let text = full_text(response, cfg.think_prefilled());
    let answer = checked_answer(&text, cfg.think)?;
    Ok(match task_type {
        TaskType::Deduction => {
            let o = first_block(answer, tag::OUTPUT)?.trim();
            if o.is_empty() {
                return Err(ParseError::EmptyBlock { tag: tag::OUTPUT });
            }
            SolverAnswer::Deduction(o.to_string())
        }
        TaskType::Abduction => {
            SolverAnswer::Abduction(first_block(answer, tag::INPUT)?.trim().to_string())
        }
        TaskType::Induction => SolverAnswer::Induction(program_block(answer)?),
    })
}

/// A parsed response of any group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Proposal(Proposal),
    Answer(SolverAnswer),
}

/// Parses a response generated for `group`.
pub fn parse_response(
    group: Group,
    response: &str,
    cfg: &ParseConfig,
) -> Result<Parsed, ParseError> {
    match group.role {
        Role::Propose => parse_proposal(group.task_type, response, cfg).map(Parsed::Proposal),
        Role::Solve => parse_solver_answer(group.task_type, response, cfg).map(Parsed::Answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: ParseConfig = ParseConfig {
        think: ThinkMode::Required,
        induction_inputs: 3,
    };

    #[test]
    fn format_rule() {
        use FormatError::*;
        let ok = [
            "<think>x</think><answer>y</answer>",
            "  <think>\nx\n</think>\n\n<answer>y</answer>\n  ",
            "<think><think>x</think><answer>a</answer> <answer>b</answer>",
            "<think></think><answer></answer>",
        ];
        for t in ok {
            assert_eq!(check_format(t), Ok(()), "{t:?}");
        }
        let bad = [
            ("", MissingThink),
            ("x<think>a</think><answer>b</answer>", MissingThink),
            ("<answer>b</answer>", MissingThink),
            ("<think>a<answer>b</answer>", ThinkNotClosed),
            ("<think>a</think>", MissingAnswer),
            (
                "<think>a</think> so <answer>b</answer>",
                AnswerNotAfterThink,
            ),
            ("<think>a</think><answer>b", AnswerNotClosed),
            (
                "<think>a</think><answer>b</answer><answer>c",
                AnswerNotClosed,
            ),
            ("<think>a</think><answer>b</answer> more", TrailingText),
            ("<think>a</think><answer>b</answer></answer>", TrailingText),
        ];
        for (t, e) in bad {
            assert_eq!(check_format(t), Err(e), "{t:?}");
        }
    }

    #[test]
    fn last_answer_takes_last_block() {
        assert_eq!(
            last_answer("<answer>a</answer><answer>b</answer>"),
            Some("b")
        );
        assert_eq!(last_answer("<answer>a</answer><answer>b"), None);
        assert_eq!(last_answer("no tags"), None);
        assert_eq!(last_answer("<answer></answer>"), Some(""));
        assert_eq!(last_answer("<answer>é</answer>x</answer>"), Some("é"));
    }

    #[test]
    fn fences() {
        let a = "intro\n```python\ndef f(a):\n    return a\n```\n```input\n'x'\n```\n```Input  \n2\n```";
        let b = fenced_blocks(a);
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].tag, "python");
        assert_eq!(b[0].content, "def f(a):\n    return a\n");
        assert_eq!(blocks_with_tag(a, tag::INPUT), vec!["'x'\n", "2\n"]);
        // the body of an unknown block is skipped, not searched for tags
        let a = "```text\nsee input below\n```\n```output\n5\n```";
        let b = fenced_blocks(a);
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].tag, b[0].content), ("text", "see input below\n"));
        assert_eq!(blocks_with_tag(a, tag::OUTPUT), vec!["5\n"]);
        // fences strictly alternate open/close: "```input" here is a closing fence + text
        let a = "```\n```input\n```\n```output\n5\n```";
        let b = fenced_blocks(a);
        assert_eq!(
            b,
            vec![
                FencedBlock {
                    tag: "",
                    content: ""
                };
                2
            ]
        );
        assert!(blocks_with_tag(a, tag::INPUT).is_empty());
        // closing fence on the code line; unclosed final block ignored; py alias
        let a = "```py\nreturn 1```\n```output\n3";
        assert_eq!(blocks_with_tag(a, tag::PYTHON), vec!["return 1"]);
        assert_eq!(blocks_with_tag(a, tag::OUTPUT), Vec::<&str>::new());
        // same-line body
        assert_eq!(
            blocks_with_tag("```input 'a' ```", tag::INPUT),
            vec![" 'a' "]
        );
    }

    #[test]
    fn proposals() {
        let r = "reasoning</think>\n<answer>\n```python\n\nimport math\ndef f(x):\n    return math.floor(x)\n\n```\n```input\n 2.5 \n```\n</answer>";
        let p = parse_proposal(TaskType::Deduction, r, &CFG).unwrap();
        assert_eq!(
            p,
            Proposal::Deduction(ProgramProposal {
                program: "import math\ndef f(x):\n    return math.floor(x)".into(),
                input: "2.5".into()
            })
        );
        let p = parse_proposal(TaskType::Abduction, r, &CFG).unwrap();
        assert_eq!(p.task_type(), TaskType::Abduction);

        let no_input = "t</think><answer>```python\ndef f(): return 1\n```</answer>";
        assert_eq!(
            parse_proposal(TaskType::Deduction, no_input, &CFG),
            Err(ParseError::MissingBlock { tag: "input" })
        );
        let empty_prog = "t</think><answer>```python\n \n```\n```input\n\n```</answer>";
        assert_eq!(
            parse_proposal(TaskType::Deduction, empty_prog, &CFG),
            Err(ParseError::EmptyBlock { tag: "python" })
        );
        // an empty input block is a valid (empty) argument list
        let empty_input =
            "t</think><answer>```python\ndef f(): return 1\n```\n```input\n```</answer>";
        assert_eq!(
            parse_proposal(TaskType::Deduction, empty_input, &CFG),
            Ok(Proposal::Deduction(ProgramProposal {
                program: "def f(): return 1".into(),
                input: String::new()
            }))
        );
        // think optional: nothing prefilled; a think block the response opens itself, or none
        let cfg = ParseConfig {
            think: ThinkMode::Optional,
            ..CFG
        };
        assert_eq!(
            parse_proposal(TaskType::Deduction, r, &cfg),
            Err(ParseError::Format(FormatError::TextBeforeAnswer))
        );
        assert!(parse_proposal(TaskType::Deduction, &format!("<think>{r}"), &cfg).is_ok());
        let answer_only = &r[r.find("<answer>").unwrap()..];
        assert!(parse_proposal(TaskType::Deduction, answer_only, &cfg).is_ok());
        // think off: the answer block alone
        let off = ParseConfig {
            think: ThinkMode::Off,
            ..CFG
        };
        assert!(parse_proposal(TaskType::Deduction, answer_only, &off).is_ok());
        assert_eq!(
            parse_proposal(TaskType::Deduction, &format!("<think>{r}"), &off),
            Err(ParseError::Format(FormatError::TextBeforeAnswer))
        );
        assert_eq!(
            parse_proposal(TaskType::Deduction, "```python\nx\n```", &off),
            Err(ParseError::Format(FormatError::MissingAnswer))
        );
    }

    #[test]
    fn induction_proposal_needs_n_inputs_and_message() {
        let mk = |n: usize, msg: &str| {
            let mut s = String::from("t</think><answer>");
            for i in 0..n {
                s += &format!("```input\n{i}\n```\n");
            }
            s += msg;
            s += "</answer>";
            s
        };
        let ok = parse_proposal(TaskType::Induction, &mk(4, "```message\n hint \n```"), &CFG);
        assert_eq!(
            ok,
            Ok(Proposal::Induction(InductionProposal {
                inputs: vec!["0".into(), "1".into(), "2".into()],
                message: "hint".into()
            }))
        );
        assert_eq!(
            parse_proposal(TaskType::Induction, &mk(2, "```message\nhint\n```"), &CFG),
            Err(ParseError::TooFewBlocks {
                tag: "input",
                found: 2,
                needed: 3
            })
        );
        assert_eq!(
            parse_proposal(TaskType::Induction, &mk(3, ""), &CFG),
            Err(ParseError::MissingBlock { tag: "message" })
        );
        assert_eq!(
            parse_proposal(TaskType::Induction, &mk(3, "```message\n\n```"), &CFG),
            Err(ParseError::EmptyBlock { tag: "message" })
        );
    }

    #[test]
    fn solver_answers() {
        let d = "t</think><answer>```output\n[1, 2]\n```</answer>";
        assert_eq!(
            parse_solver_answer(TaskType::Deduction, d, &CFG),
            Ok(SolverAnswer::Deduction("[1, 2]".into()))
        );
        let a = "t</think><answer>```input\n'a', 3\n```</answer>";
        assert_eq!(
            parse_solver_answer(TaskType::Abduction, a, &CFG),
            Ok(SolverAnswer::Abduction("'a', 3".into()))
        );
        let i = "t</think><answer>```python\ndef f(x):\n    return x\n```</answer>";
        assert_eq!(
            parse_solver_answer(TaskType::Induction, i, &CFG),
            Ok(SolverAnswer::Induction("def f(x):\n    return x".into()))
        );
        assert_eq!(
            parse_solver_answer(TaskType::Deduction, a, &CFG),
            Err(ParseError::MissingBlock { tag: "output" })
        );
        assert_eq!(
            parse_solver_answer(
                TaskType::Deduction,
                "t</think><answer>```output\n  \n```</answer>",
                &CFG
            ),
            Err(ParseError::EmptyBlock { tag: "output" })
        );
        // the first block of the tag is used
        let two = "t</think><answer>```output\n1\n```\n```output\n2\n```</answer>";
        assert_eq!(
            parse_solver_answer(TaskType::Deduction, two, &CFG),
            Ok(SolverAnswer::Deduction("1".into()))
        );
        // only the last answer block counts
        let last =
            "t</think><answer>```output\n1\n```</answer>\n<answer>```output\n9\n```</answer>";
        assert_eq!(
            parse_response(Group::SOLVE_DEDUCTION, last, &CFG),
            Ok(Parsed::Answer(SolverAnswer::Deduction("9".into())))
        );
        assert_eq!(
            parse_response(
                Group::SOLVE_DEDUCTION,
                "t</think><answer>9</answer> x",
                &CFG
            )
            .unwrap_err()
            .reason(),
            "format.trailing_text"
        );
    }
}
