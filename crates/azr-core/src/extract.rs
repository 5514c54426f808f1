//! Lenient extraction of answers from model responses: the reading the rewards use.
//!
//! This mirrors the AZR reference implementation's extraction, which accepts much more than the
//! well-formed think-then-answer shape. The strict parser ([`crate::parse`]) is unchanged: it
//! stays the strict-format metric and the opt-in strict reward.
//!
//! # The answer
//! The text after the **last** `<answer>`, cut at the first `</answer>` after it when there is
//! one. An unclosed final `<answer>` still yields its text, and text after `</answer>` is
//! allowed. No `<answer>` at all: no answer. Nothing else of the format is checked, so callers
//! pass the response with any prefilled `<think>` already in front (it changes nothing here).
//! The tags are matched exactly, as in [`crate::parse`].
//!
//! # Solver input (abduction) and output (deduction): the fallback chain
//! Tried in this order on the answer text. The first pattern that matches anywhere wins, and its
//! **last** match is used. Matches are found left to right without overlap, the way a regex scan
//! finds them, so a match that runs to the end of the text is the only one. Markers are ASCII
//! case-insensitive, and "whitespace" is Unicode whitespace (optional wherever it appears).
//! Written here for `input`; `output` swaps the word.
//! 1. A fence: ```` ```input ````, the body up to the next ```` ``` ````. The marker is matched
//!    as a prefix (```` ```inputs ```` counts too). An unclosed fence is no match, so an answer
//!    whose only fence is unclosed falls through to the next patterns.
//! 2. `# Input:`, the text up to a newline followed by ```` ``` ````, or up to the end.
//! 3. `input(`, the text up to the first `)`.
//! 4. `<input>`, the text up to `</input>`, or up to the end when it is not closed.
//! 5. `the input is`, the rest of the text, with one final `.` dropped (a single match, from the
//!    first occurrence).
//! 6. The whole answer text.
//!
//! The result is trimmed, and an empty result is no answer. One exception: an abduction answer
//! found by patterns 1-5 may be empty. It stands for the empty argument list of `f()`, which the
//! strict parser accepts as well.
//!
//! # Programs (the induction solver's answer, a proposer's program)
//! The first ```` ```python ```` (or ```` ```py ````) block, else the first untagged block (three
//! backticks directly followed by a newline). Blocks are read with [`crate::parse::fenced_blocks`],
//! so only closed blocks count. With no such block, an answer that defines a function itself
//! (a line starting with `def f`) is the program. The program is cleaned like the strict
//! parser's (leading blank lines and trailing whitespace removed); an empty program is none.
//!
//! # Proposals
//! Deduction and abduction: a program as above and an input from the first ```` ```input ````
//! fence (pattern 1), else the first `# Input:` match (pattern 2); the input may be empty.
//! Induction: the first N ```` ```input ```` fences (at least N are needed) and the first
//! ```` ```message ```` fence, which must not be empty.
//!
//! On a well-formed response with one block of each tag, whatever the strict parser accepts is
//! read the same here, and a block it rejects as empty gives nothing here either (see the tests).
//! Nothing here panics, whatever the text.

use crate::parse::{fenced_blocks, tag, ANSWER_CLOSE, ANSWER_OPEN};
use crate::task::{InductionProposal, ProgramProposal, Proposal, SolverAnswer, TaskType};

const FENCE: &str = "```";
const MESSAGE_FENCE: &str = "```message";

/// The markers of the fallback chain for one side (input or output), in lower case.
struct Markers {
    fence: &'static str,
    header: &'static str,
    call: &'static str,
    open: &'static str,
    close: &'static str,
    phrase: &'static str,
}

const INPUT: Markers = Markers {
    fence: "```input",
    header: "# input:",
    call: "input(",
    open: "<input>",
    close: "</input>",
    phrase: "the input is",
};

const OUTPUT: Markers = Markers {
    fence: "```output",
    header: "# output:",
    call: "output(",
    open: "<output>",
    close: "</output>",
    phrase: "the output is",
};

/// The answer text of a response: after the last `<answer>`, up to the first `</answer>` after it
/// when there is one. `None` when the response has no `<answer>`.
pub fn answer(response: &str) -> Option<&str> {
    let open = response.rfind(ANSWER_OPEN)?;
    let tail = &response[open + ANSWER_OPEN.len()..];
    Some(match tail.find(ANSWER_CLOSE) {
        Some(end) => &tail[..end],
        None => tail,
    })
}

/// A solver's answer to a task of `task_type`: the output (deduction) or input (abduction)
/// through the fallback chain, or the program (induction). `None` when there is nothing to
/// score.
pub fn solver_answer(task_type: TaskType, response: &str) -> Option<SolverAnswer> {
    let a = answer(response)?;
    match task_type {
        TaskType::Deduction => {
            let (text, _) = io_text(a, &OUTPUT);
            (!text.is_empty()).then(|| SolverAnswer::Deduction(text.to_string()))
        }
        TaskType::Abduction => {
            let (text, marked) = io_text(a, &INPUT);
            (marked || !text.is_empty()).then(|| SolverAnswer::Abduction(text.to_string()))
        }
        TaskType::Induction => program(a).map(SolverAnswer::Induction),
    }
}

/// A proposer's proposal of `task_type`; an induction proposal takes the first
/// `induction_inputs` inputs and needs at least that many. `None` when a part is missing.
pub fn proposal(task_type: TaskType, response: &str, induction_inputs: usize) -> Option<Proposal> {
    let a = answer(response)?;
    match task_type {
        TaskType::Deduction => program_proposal(a).map(Proposal::Deduction),
        TaskType::Abduction => program_proposal(a).map(Proposal::Abduction),
        TaskType::Induction => induction_proposal(a, induction_inputs).map(Proposal::Induction),
    }
}

fn program_proposal(a: &str) -> Option<ProgramProposal> {
    let program = program(a)?;
    let input = fence_matches(a, INPUT.fence)
        .first()
        .copied()
        .or_else(|| header_matches(a, INPUT.header).first().copied())?;
    Some(ProgramProposal {
        program,
        input: input.trim().to_string(),
    })
}

fn induction_proposal(a: &str, n: usize) -> Option<InductionProposal> {
    let inputs = fence_matches(a, INPUT.fence);
    if inputs.len() < n {
        return None;
    }
    let message = fence_matches(a, MESSAGE_FENCE).first()?.trim();
    if message.is_empty() {
        return None;
    }
    Some(InductionProposal {
        inputs: inputs
            .iter()
            .take(n)
            .map(|s| s.trim().to_string())
            .collect(),
        message: message.to_string(),
    })
}

/// The fallback chain: the trimmed text, and whether a pattern (not the whole answer) gave it.
fn io_text<'a>(a: &'a str, m: &Markers) -> (&'a str, bool) {
    let last = fence_matches(a, m.fence)
        .pop()
        .or_else(|| header_matches(a, m.header).pop())
        .or_else(|| call_matches(a, m.call).pop())
        .or_else(|| tag_matches(a, m.open, m.close).pop())
        .or_else(|| phrase_match(a, m.phrase));
    match last {
        Some(t) => (t.trim(), true),
        None => (a.trim(), false),
    }
}

/// Pattern 1: bodies of ```` ```tag ```` fences, up to the next three backticks (untrimmed).
fn fence_matches<'a>(text: &'a str, opener: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_ci(text, opener, pos) {
        let body = start + opener.len();
        let Some(end) = find_ci(text, FENCE, body) else {
            break; // no fence closes this one, nor any later one
        };
        out.push(&text[body..end]);
        pos = end + FENCE.len();
    }
    out
}

/// Pattern 2: after `# Input:` and whitespace, up to a newline followed by three backticks, or
/// up to the end.
fn header_matches<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_ci(text, header, pos) {
        let body = skip_whitespace(text, start + header.len());
        let end = find_ci(text, "\n```", body).unwrap_or(text.len());
        out.push(&text[body..end]);
        pos = end;
    }
    out
}

/// Pattern 3: between `input(` and the first `)` after it.
fn call_matches<'a>(text: &'a str, call: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_ci(text, call, pos) {
        let body = start + call.len();
        let Some(end) = find_ci(text, ")", body) else {
            break;
        };
        out.push(&text[body..end]);
        pos = end + 1;
    }
    out
}

/// Pattern 4: after `<input>`, up to `</input>` or, unclosed, up to the end.
fn tag_matches<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(start) = find_ci(text, open, pos) {
        let body = start + open.len();
        match find_ci(text, close, body) {
            Some(end) => {
                out.push(&text[body..end]);
                pos = end + close.len();
            }
            None => {
                out.push(&text[body..]);
                break;
            }
        }
    }
    out
}

/// Pattern 5: the rest of the text after the first `the input is`, less one final newline and
/// then one final `.` (the reference pattern ends in `\.?$`).
fn phrase_match<'a>(text: &'a str, phrase: &str) -> Option<&'a str> {
    let start = find_ci(text, phrase, 0)?;
    let rest = &text[skip_whitespace(text, start + phrase.len())..];
    let rest = rest.strip_suffix('\n').unwrap_or(rest);
    Some(rest.strip_suffix('.').unwrap_or(rest))
}

/// Rule for programs: see the module doc.
fn program(a: &str) -> Option<String> {
    let blocks = fenced_blocks(a);
    let block = blocks.iter().find(|b| b.is(tag::PYTHON)).or_else(|| {
        blocks
            .iter()
            .find(|b| b.tag.is_empty() && opens_on_newline(a, b.content))
    });
    let text = match block {
        Some(b) => b.content,
        None if a.lines().any(|l| l.starts_with("def f")) => a,
        None => return None,
    };
    let p = clean_program(text);
    (!p.is_empty()).then_some(p)
}

/// Whether the block whose body is `content` (a slice of `a`) opened with three backticks
/// directly followed by a newline.
fn opens_on_newline(a: &str, content: &str) -> bool {
    let at = (content.as_ptr() as usize).wrapping_sub(a.as_ptr() as usize);
    a.get(..at).is_some_and(|before| before.ends_with("```\n"))
}

/// Leading blank lines and trailing whitespace removed, indentation kept (as the strict parser).
fn clean_program(s: &str) -> String {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        if !line.trim().is_empty() {
            break;
        }
        start += line.len();
    }
    s[start..].trim_end().to_string()
}

/// First byte offset at or after `from` where `needle` (ASCII) occurs, ASCII case-insensitively.
/// A match consists of ASCII bytes only, so both of its ends are char boundaries.
fn find_ci(text: &str, needle: &str, from: usize) -> Option<usize> {
    let (hay, n) = (text.as_bytes(), needle.as_bytes());
    if n.is_empty() || from > hay.len() || hay.len() - from < n.len() {
        return None;
    }
    let first = n[0].to_ascii_lowercase();
    (from..=hay.len() - n.len()).find(|&i| {
        hay[i].to_ascii_lowercase() == first && hay[i..i + n.len()].eq_ignore_ascii_case(n)
    })
}

/// The offset after the whitespace that starts at `from` (a char boundary).
fn skip_whitespace(text: &str, from: usize) -> usize {
    let rest = &text[from..];
    from + (rest.len() - rest.trim_start().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_proposal, parse_solver_answer, ParseConfig, ParseError};
    use proptest::prelude::*;

    /// (task type, word, capitalised word) for the two sides of the fallback chain.
    const SIDES: [(TaskType, &str, &str); 2] = [
        (TaskType::Abduction, "input", "Input"),
        (TaskType::Deduction, "output", "Output"),
    ];

    /// The solver's answer text for an answer block holding `answer_text`.
    fn solve(task_type: TaskType, answer_text: &str) -> Option<String> {
        let response = format!("<think>t</think>\n<answer>{answer_text}</answer>");
        solver_answer(task_type, &response).map(|a| {
            assert_eq!(a.task_type(), task_type);
            a.text().to_string()
        })
    }

    /// Checks each (answer text, expected) case on both sides; `{w}`/`{W}` stand for the word.
    fn check_both(cases: &[(&str, Option<&str>)]) {
        for (task_type, w, cap) in SIDES {
            for (text, want) in cases {
                let text = text.replace("{w}", w).replace("{W}", cap);
                let want = want.map(|s| s.replace("{w}", w).replace("{W}", cap));
                assert_eq!(solve(task_type, &text), want, "{task_type}: {text:?}");
            }
        }
    }

    fn cfg(n: usize) -> ParseConfig {
        ParseConfig {
            induction_inputs: n,
            ..ParseConfig::default()
        }
    }

    #[test]
    fn answer_is_after_the_last_open_tag() {
        let r = "<think>t</think><answer>a</answer>\n<answer>b</answer>";
        assert_eq!(answer(r), Some("b"));
        assert_eq!(answer("<answer></answer>"), Some(""));
        assert_eq!(answer("<answer>é</answer>x</answer>"), Some("é"));
        // tags are matched exactly
        assert_eq!(answer("<ANSWER>x</ANSWER>"), None);
    }

    #[test]
    fn unclosed_final_answer_still_answers() {
        assert_eq!(answer("<think>t</think><answer>b"), Some("b"));
        assert_eq!(
            answer("<answer>a</answer><answer>```output\n3"),
            Some("```output\n3")
        );
        assert_eq!(
            solver_answer(TaskType::Deduction, "<answer>```output\n3\n```"),
            Some(SolverAnswer::Deduction("3".into()))
        );
    }

    #[test]
    fn text_after_the_answer_is_allowed() {
        assert_eq!(answer("<answer>a</answer> trailing </answer>"), Some("a"));
        assert_eq!(
            solver_answer(
                TaskType::Abduction,
                "<think>t</think><answer>```input\n1, 2\n```</answer>\nDone."
            ),
            Some(SolverAnswer::Abduction("1, 2".into()))
        );
    }

    #[test]
    fn no_answer_tag_is_no_answer() {
        for t in [
            "",
            "<think>t</think>```output\n1\n```",
            "answer: 3",
            "</answer>",
        ] {
            assert_eq!(answer(t), None, "{t:?}");
            for task_type in TaskType::ALL {
                assert_eq!(solver_answer(task_type, t), None);
                assert_eq!(proposal(task_type, t, 1), None);
            }
        }
    }

    #[test]
    fn empty_is_no_answer() {
        check_both(&[("", None), ("  \n ", None)]);
        // an explicit empty output is no answer (no fall-through to later patterns) ...
        assert_eq!(
            solve(TaskType::Deduction, "```output\n\n``` the output is 3"),
            None
        );
        // ... while an explicit empty input is the argument list of `f()`
        for text in [
            "```input\n```",
            "# Input:",
            "input()",
            "<input> </input>",
            "the input is.",
        ] {
            assert_eq!(
                solve(TaskType::Abduction, text),
                Some(String::new()),
                "{text:?}"
            );
        }
        for t in TaskType::ALL {
            assert_eq!(solver_answer(t, "<answer></answer>"), None);
        }
    }

    #[test]
    fn pattern_1_fenced_block() {
        check_both(&[
            ("```{w}\n'a', 1\n```", Some("'a', 1")),
            (
                "Reasoning...\n```{W}  \n  [1, 2]  \n```\nSo that is it.",
                Some("[1, 2]"),
            ),
            ("```{w} 5```", Some("5")),
            ("```{w}\n(\n  1,\n  2\n)\n```", Some("(\n  1,\n  2\n)")),
            // wins over every later pattern, wherever they are
            (
                "# {W}: 9\n<{w}>8</{w}> {w}(7) ```{w}\n1\n``` the {w} is 6",
                Some("1"),
            ),
            // unclosed: falls through to the next patterns
            ("# {W}: 7\n```{w}\n5", Some("7")),
            ("```{w}\n5", Some("```{w}\n5")),
        ]);
    }

    #[test]
    fn pattern_2_header() {
        check_both(&[
            ("# {W}: 'x'", Some("'x'")),
            ("# {w}:\n  5, 6  \n", Some("5, 6")),
            ("# {W}: 5\n```python\nprint(1)\n```", Some("5")),
            ("# {W}: 1\n```\n# {W}: 2", Some("2")),
            // a match runs up to a fence or the end, so a second header inside it is body text
            ("# {W}: 1\n# {W}: 2", Some("1\n# {W}: 2")),
            (
                "# {W}: 1 and {w}(2) <{w}>3</{w}>",
                Some("1 and {w}(2) <{w}>3</{w}>"),
            ),
        ]);
    }

    #[test]
    fn pattern_3_call() {
        check_both(&[
            ("call it as {w}(3, 'a') please", Some("3, 'a'")),
            ("{W}(4)", Some("4")),
            ("{w}(1) then {w}(2)", Some("2")),
            // the first `)` closes
            ("{w}((1, 2))", Some("(1, 2")),
            ("{w}(1) <{w}>2</{w}> the {w} is 3", Some("1")),
            // unclosed: no match, falls through
            ("{w}(1 <{w}>2", Some("2")),
        ]);
    }

    #[test]
    fn pattern_4_tag() {
        check_both(&[
            ("<{w}>\n 5 \n</{w}>", Some("5")),
            ("<{W}>3</{W}> and more", Some("3")),
            ("<{w}>1</{w}><{w}>2</{w}>", Some("2")),
            ("<{w}> 5 \n", Some("5")),
            ("<{w}>1</{w}> the {w} is 2", Some("1")),
        ]);
    }

    #[test]
    fn pattern_5_phrase() {
        check_both(&[
            ("So the {w} is 42.", Some("42")),
            ("The {W} is [1, 2]", Some("[1, 2]")),
            ("the {w} is\n'a'.\n", Some("'a'")),
            ("the {w} is 1..", Some("1.")),
            // the single match starts at the first occurrence
            ("the {w} is 1, or the {w} is 2", Some("1, or the {w} is 2")),
        ]);
    }

    #[test]
    fn pattern_6_whole_answer() {
        check_both(&[
            ("  [1, 2]  ", Some("[1, 2]")),
            ("\n'hello'\n", Some("'hello'")),
            ("```python\nx\n```", Some("```python\nx\n```")),
        ]);
    }

    #[test]
    fn last_match_wins() {
        check_both(&[
            ("```{w}\n1\n```\ntext\n```{w}\n2\n```", Some("2")),
            ("```{w}\n1\n```\n```{w}\n2\n```\n```{w}\n3", Some("2")),
            ("<{w}>1</{w}> <{w}>2", Some("2")),
        ]);
        // only the last <answer> is read
        let r = "<answer>```output\n1\n```</answer><answer>```output\n2\n```</answer>";
        assert_eq!(
            solver_answer(TaskType::Deduction, r),
            Some(SolverAnswer::Deduction("2".into()))
        );
    }

    #[test]
    fn program_rules() {
        let prog = |a: &str| solve(TaskType::Induction, a);
        let f = "def f(x):\n    return x";
        assert_eq!(
            prog(&format!("```python\n\n{f}\n  \n```")).as_deref(),
            Some(f)
        );
        assert_eq!(prog(&format!("```py\n{f}\n```")).as_deref(), Some(f));
        assert_eq!(prog(&format!("```PYTHON\n{f}```")).as_deref(), Some(f));
        assert_eq!(prog(&format!("```\n{f}\n```")).as_deref(), Some(f));
        // the first python block, before an earlier untagged one and later python ones
        let a = format!("```\nx = 1\n```\n```python\n{f}\n```\n```python\ny\n```");
        assert_eq!(prog(&a).as_deref(), Some(f));
        // an untagged block must open with a newline right after the backticks
        assert_eq!(prog("```  \nx = 1\n```"), None);
        assert_eq!(prog("```text\nx = 1\n```"), None);
        // a bare definition
        assert_eq!(prog(&format!("\n\n{f}  \n")).as_deref(), Some(f));
        assert_eq!(
            prog(&format!("import math\n{f}\n")).as_deref(),
            Some(format!("import math\n{f}").as_str())
        );
        // none
        assert_eq!(prog("return x"), None);
        assert_eq!(prog("    def f(x): pass"), None);
        assert_eq!(prog(""), None);
        assert_eq!(prog("```python\n \n```\ndef f(x): pass"), None);
    }

    #[test]
    fn deduction_and_abduction_proposals() {
        let r = "<think>t</think><answer>\n```python\n\nimport math\ndef f(x):\n    return math.floor(x)\n\n```\n```input\n 2.5 \n```\n```input\n9\n```\n</answer>";
        let want = ProgramProposal {
            program: "import math\ndef f(x):\n    return math.floor(x)".into(),
            input: "2.5".into(),
        };
        assert_eq!(
            proposal(TaskType::Deduction, r, 3),
            Some(Proposal::Deduction(want.clone()))
        );
        assert_eq!(
            proposal(TaskType::Abduction, r, 3),
            Some(Proposal::Abduction(want))
        );
        // `# Input:` fallback (its first match), an unclosed answer
        let r = "<answer>```python\ndef f(a, b): return a\n```\n# Input: 1, 2\n```\n# Input: 3";
        assert_eq!(
            proposal(TaskType::Deduction, r, 3),
            Some(Proposal::Deduction(ProgramProposal {
                program: "def f(a, b): return a".into(),
                input: "1, 2".into(),
            }))
        );
        // a bare program (the whole answer, the input line included)
        let r = "<answer>def f(a, b):\n    return a + b\n# Input: 1, 2\n</answer>";
        assert_eq!(
            proposal(TaskType::Abduction, r, 3),
            Some(Proposal::Abduction(ProgramProposal {
                program: "def f(a, b):\n    return a + b\n# Input: 1, 2".into(),
                input: "1, 2".into(),
            }))
        );
        // an empty input is the empty argument list
        let r = "<answer>```python\ndef f(): return 1\n```\n```input\n```</answer>";
        assert_eq!(
            proposal(TaskType::Abduction, r, 3),
            Some(Proposal::Abduction(ProgramProposal {
                program: "def f(): return 1".into(),
                input: String::new(),
            }))
        );
        // missing parts
        let no_input = "<answer>```python\ndef f(): return 1\n```</answer>";
        assert_eq!(proposal(TaskType::Deduction, no_input, 3), None);
        let no_program = "<answer>```input\n1\n```</answer>";
        assert_eq!(proposal(TaskType::Abduction, no_program, 3), None);
    }

    #[test]
    fn induction_proposals() {
        let mk = |n: usize, msg: &str| {
            let mut s = String::from("<think>t</think><answer>");
            for i in 0..n {
                s += &format!("```input\n{i}\n```\n");
            }
            s + msg
        };
        let want = Some(Proposal::Induction(InductionProposal {
            inputs: vec!["0".into(), "1".into(), "2".into()],
            message: "hint".into(),
        }));
        assert_eq!(
            proposal(
                TaskType::Induction,
                &mk(4, "```message\n hint \n```</answer>"),
                3
            ),
            want
        );
        // unclosed answer, message first
        let r = format!(
            "<answer>```message\nhint\n```\n{}",
            &mk(3, "")["<think>t</think><answer>".len()..]
        );
        assert_eq!(proposal(TaskType::Induction, &r, 3), want);
        assert_eq!(
            proposal(TaskType::Induction, &mk(2, "```message\nhint\n```"), 3),
            None
        );
        assert_eq!(
            proposal(TaskType::Induction, &mk(3, "the message is hint"), 3),
            None
        );
        assert_eq!(
            proposal(TaskType::Induction, &mk(3, "```message\n \n```"), 3),
            None
        );
        assert_eq!(
            proposal(TaskType::Induction, &mk(3, "```message\nhint"), 3),
            None
        );
    }

    #[test]
    fn non_ascii_next_to_every_pattern() {
        check_both(&[
            ("é```{w}é\n'ñ'\n```é", Some("é\n'ñ'")),
            ("日本# {W}:😀\n```", Some("😀")),
            ("😀{w}(ü, 'ß')😀", Some("ü, 'ß'")),
            ("ü<{w}>中文</{w}>ü", Some("中文")),
            ("ü<{w}>中文", Some("中文")),
            ("Ünd the {w} is 'é'.", Some("'é'")),
            ("\u{a0}é\u{3000}", Some("é")),
            // non-ASCII look-alikes are not the markers
            ("the {w} İs 1", Some("the {w} İs 1")),
            ("<{w}\u{301}>1</{w}>", Some("<{w}\u{301}>1</{w}>")),
        ]);
        assert_eq!(
            solve(
                TaskType::Induction,
                "é```python\ndef f(s):\n    return s + '日本'\n```é"
            )
            .as_deref(),
            Some("def f(s):\n    return s + '日本'")
        );
        assert_eq!(
            solve(TaskType::Induction, "😀\ndef f(): return 'ü'").as_deref(),
            Some("😀\ndef f(): return 'ü'")
        );
        assert_eq!(find_ci("éINPUT(", "input(", 0), Some(2));
        assert_eq!(find_ci("\u{212a}", "k", 0), None); // the Kelvin sign
                                                       // every prefix and suffix of a text holding every marker next to multi-byte characters
        let text = "é<think>😀</think>ü<answer>日```pythoné\ndef f(s):\n    return 'ß'```ü\n```é\nx\n```\
                    ```inputé\n'ü'\n```😀```outputß\n1\n```中```message\né\n```# Input:é# Output:ü\n```\
                    input(é)output(ü)<input>é</input><output>ü</output>the input isé.the output isü.\n\
                    def fé</answer>ü<answer>é";
        for (i, _) in text.char_indices().chain([(text.len(), ' ')]) {
            exercise(&text[..i]);
            exercise(&text[i..]);
        }
    }

    /// Runs every entry point on `text`.
    fn exercise(text: &str) {
        let _ = answer(text);
        for t in TaskType::ALL {
            let _ = solver_answer(t, text);
            for n in [0, 1, 2] {
                let _ = proposal(t, text, n);
            }
        }
    }

    /// On a well-formed `response` (the prefilled `<think>` left out, as the strict parser takes
    /// it): where strict parsing succeeds, extraction from the full text gives the same; where it
    /// rejects an empty block or too few blocks, extraction gives nothing. A missing block is not
    /// compared: extraction then falls back by design. Neither is the abduction solver's answer
    /// when there are several input blocks: strict takes the first, extraction the last.
    fn agree(response: &str, n: usize, input_blocks: usize) {
        fn check<T: std::fmt::Debug + PartialEq>(
            lenient: Option<T>,
            strict: Result<T, ParseError>,
            what: &str,
        ) {
            match strict {
                Ok(x) => assert_eq!(lenient, Some(x), "{what}"),
                Err(ParseError::EmptyBlock { .. } | ParseError::TooFewBlocks { .. }) => {
                    assert_eq!(lenient, None, "{what}")
                }
                Err(ParseError::MissingBlock { .. }) => {}
                Err(e) => panic!("not well-formed: {e} {what}"),
            }
        }
        let full = format!("<think>{response}");
        for t in TaskType::ALL {
            if t != TaskType::Abduction || input_blocks == 1 {
                let what = format!("solver {t}: {response:?}");
                check(
                    solver_answer(t, &full),
                    parse_solver_answer(t, response, &cfg(n)),
                    &what,
                );
            }
            let what = format!("proposal {t}, n = {n}: {response:?}");
            check(
                proposal(t, &full, n),
                parse_proposal(t, response, &cfg(n)),
                &what,
            );
        }
    }

    /// A well-formed response holding every kind of block.
    fn well_formed(
        think: &str,
        prose: &str,
        program: &str,
        io: &[&str],
        output: &str,
        message: &str,
    ) -> String {
        let mut a = format!("{prose}\n```python\n{program}\n```\n");
        for i in io {
            a += &format!("```input\n{i}\n```\n");
        }
        a += &format!("```output\n{output}\n```\n{prose}\n```message\n{message}\n```");
        format!("{think}</think>\n<answer>{a}</answer>\n")
    }

    #[test]
    fn agrees_with_strict_parsing_on_well_formed_responses() {
        let f = "def f(x):\n    return x";
        let cases = [
            (well_formed("t", "", f, &["1"], "1", "m"), 1),
            (
                well_formed(
                    "reasoning\nmore",
                    "Here:",
                    f,
                    &["'a', {'b': 2}", "3"],
                    "'a'",
                    "id",
                ),
                2,
            ),
            (
                well_formed("", "", "\n\n  def f():\n    return 1\n  ", &[""], "", ""),
                1,
            ),
            (
                well_formed(
                    "é",
                    "ü",
                    "def f(s): return s + 'é'",
                    &["'日本'"],
                    "'日本é'",
                    "😀",
                ),
                1,
            ),
            (well_formed("t", "", "  ", &[], " ", "m"), 0),
        ];
        for (r, inputs) in &cases {
            for n in 0..3 {
                agree(r, n, *inputs);
            }
        }
        // the strict parser's own examples
        agree("t</think><answer>```output\n[1, 2]\n```</answer>", 1, 0);
        agree("t</think><answer>```input\n'a', 3\n```</answer>", 1, 1);
        agree(
            "t</think><answer>```py\ndef f(x):\n    return x\n```</answer>",
            1,
            0,
        );
        // spot-check the agreement is not vacuous
        let full = format!("<think>{}", cases[1].0);
        assert_eq!(
            solver_answer(TaskType::Deduction, &full),
            Some(SolverAnswer::Deduction("'a'".into()))
        );
        assert_eq!(
            proposal(TaskType::Induction, &full, 2),
            Some(Proposal::Induction(InductionProposal {
                inputs: vec!["'a', {'b': 2}".into(), "3".into()],
                message: "id".into(),
            }))
        );
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("<answer>".to_string()),
            Just("</answer>".to_string()),
            Just("```".to_string()),
            Just("```python\n".to_string()),
            Just("```input".to_string()),
            Just("```output\n".to_string()),
            Just("```message\n".to_string()),
            Just("# Input:".to_string()),
            Just("# output:".to_string()),
            Just("input(".to_string()),
            Just("OUTPUT(".to_string()),
            Just(")".to_string()),
            Just("<input>".to_string()),
            Just("</output>".to_string()),
            Just("the input is".to_string()),
            Just("The output is".to_string()),
            Just("def f".to_string()),
            Just(".\n".to_string()),
            Just("é".to_string()),
            Just("😀".to_string()),
            Just("\u{a0}".to_string()),
            "[a-z0-9'(), \n]{0,6}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn tag_soup_never_panics(parts in prop::collection::vec(fragment(), 0..30)) {
            exercise(&parts.concat());
        }

        #[test]
        fn agreement_on_random_contents(
            think in "[^<`]{0,30}",
            prose in "[^<`]{0,20}",
            program in "[^<`]{0,30}",
            io in prop::collection::vec("[^<`]{0,12}", 0..4),
            output in "[^<`]{0,12}",
            message in "[^<`]{0,12}",
            n in 0usize..4,
        ) {
            let io: Vec<&str> = io.iter().map(String::as_str).collect();
            agree(&well_formed(&think, &prose, &program, &io, &output, &message), n, io.len());
        }
    }
}
