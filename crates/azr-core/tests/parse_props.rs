//! Property tests: response parsing never panics, whatever the text, and well-formed responses
//! parse back to exactly what was written.

use azr_core::parse::{
    self, check_format, check_format_with, fenced_blocks, last_answer, FormatError,
};
use azr_core::{
    parse_response, Group, ParseConfig, Parsed, ProgramProposal, Proposal, SolverAnswer,
};
use proptest::prelude::*;
use std::time::Instant;

const CFGS: [ParseConfig; 2] = [
    ParseConfig {
        think: azr_core::parse::ThinkMode::Required,
        induction_inputs: 2,
    },
    ParseConfig {
        think: azr_core::parse::ThinkMode::Optional,
        induction_inputs: 2,
    },
];

/// Runs every entry point on `text` and checks the structural invariants of the results.
fn exercise(text: &str) {
    for cfg in &CFGS {
        for g in Group::ALL {
            let r = parse_response(g, text, cfg);
            if let Ok(p) = &r {
                // a successful parse implies a well-formed full text
                let full = parse::full_text(text, cfg.think_prefilled());
                assert_eq!(check_format_with(&full, cfg.think), Ok(()));
                match p {
                    Parsed::Proposal(p) => assert_eq!(p.task_type(), g.task_type),
                    Parsed::Answer(a) => assert_eq!(a.task_type(), g.task_type),
                }
            }
        }
    }
    let _ = check_format(text);
    if let Some(a) = last_answer(text) {
        assert!(!a.contains("</answer>"));
        assert!(text.contains(&format!("<answer>{a}</answer>")));
        for b in fenced_blocks(a) {
            assert!(!b.content.contains("```"));
            assert!(!b.tag.contains("```"));
            assert!(a.contains(b.content));
        }
    }
    for b in fenced_blocks(text) {
        assert!(!b.content.contains("```"));
    }
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("<think>".to_string()),
        Just("</think>".to_string()),
        Just("<answer>".to_string()),
        Just("</answer>".to_string()),
        Just("<ans".to_string()),
        Just("wer>".to_string()),
        Just("</thi".to_string()),
        Just("```".to_string()),
        Just("```python\n".to_string()),
        Just("```input\n".to_string()),
        Just("```output\n".to_string()),
        Just("```message\n".to_string()),
        Just("```py".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        Just("😀".to_string()),
        Just("e\u{301}".to_string()),
        Just("日本".to_string()),
        Just("\u{0}".to_string()),
        "[a-z0-9'(),\\[\\] ]{0,8}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        exercise(&text);
    }

    #[test]
    fn tag_soup_never_panics(parts in prop::collection::vec(fragment(), 0..40)) {
        exercise(&parts.concat());
    }

    #[test]
    fn well_formed_round_trips(
        think in "[^<]{0,40}",
        body in "[a-z0-9+* ]{1,20}",
        input in "[^`<]{0,30}",
        output in "[^`<]{0,30}",
        ws in "[ \n]{0,3}",
    ) {
        let program = format!("def f(x):\n    return {body}");
        let response = format!(
            "{think}</think>{ws}<answer>\n```python\n{program}\n```\n```input\n{input}\n```\n\
             ```output\n{output}\n```\n</answer>{ws}"
        );
        let cfg = &CFGS[0];
        let want_input = input.trim().to_string();
        prop_assert_eq!(
            parse_response(Group::PROPOSE_DEDUCTION, &response, cfg),
            Ok(Parsed::Proposal(Proposal::Deduction(ProgramProposal {
                program: program.trim_end().to_string(),
                input: want_input.clone(),
            })))
        );
        prop_assert_eq!(
            parse_response(Group::SOLVE_ABDUCTION, &response, cfg),
            Ok(Parsed::Answer(SolverAnswer::Abduction(want_input)))
        );
        let out = parse_response(Group::SOLVE_DEDUCTION, &response, cfg);
        if output.trim().is_empty() {
            prop_assert!(out.is_err());
        } else {
            prop_assert_eq!(
                out,
                Ok(Parsed::Answer(SolverAnswer::Deduction(output.trim().to_string())))
            );
        }
        // the same response without the prefill misses its opening <think>
        prop_assert_eq!(
            check_format(&response),
            Err(FormatError::MissingThink)
        );
    }

    #[test]
    fn cutting_anywhere_never_panics(cut in 0usize..200) {
        // byte offsets that may fall inside multi-byte characters
        let text = "é😀</think><answer>```python\ndef f(s):\n    return s + '日本'\n```\n```input\n'ü'\n```</answer>";
        let at = (0..=cut.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        exercise(&text[..at]);
        exercise(&text[at..]);
    }
}

/// Deterministic xorshift, to build big inputs without a dependency.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn one_megabyte_inputs_are_fast_and_safe() {
    let pieces = [
        "<think>",
        "</think>",
        "<answer>",
        "</answer>",
        "```",
        "```input\n",
        "é",
        "😀",
        "日",
        "a",
        "\n",
        " ",
        "<",
        "`",
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut soup = String::new();
    while soup.len() < 1 << 20 {
        soup.push_str(pieces[(xorshift(&mut state) % pieces.len() as u64) as usize]);
    }
    let texts = [
        soup,
        "```".repeat(350_000),
        "<answer>".repeat(130_000),
        "<think>".repeat(150_000),
        format!(
            "</think><answer>{}</answer>",
            "```input\n1\n```\n".repeat(70_000)
        ),
        "😀".repeat(262_144),
        format!("</think><answer>```python\n{}", "x".repeat(1 << 20)),
    ];
    let start = Instant::now();
    for t in &texts {
        exercise(t);
    }
    // linear-time parsing: a quadratic scan over 1 MB would take minutes
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
    // the many-blocks case parses, taking the first N inputs
    let cfg = ParseConfig {
        think: azr_core::parse::ThinkMode::Required,
        induction_inputs: 10,
    };
    match parse_response(
        Group::PROPOSE_INDUCTION,
        &format!(
            "</think><answer>{}```message\nm\n```</answer>",
            "```input\n1\n```\n".repeat(50_000)
        ),
        &cfg,
    ) {
        Ok(Parsed::Proposal(Proposal::Induction(p))) => {
            assert_eq!(p.inputs, vec!["1"; 10]);
            assert_eq!(p.message, "m");
        }
        other => panic!("{other:?}"),
    }
}
