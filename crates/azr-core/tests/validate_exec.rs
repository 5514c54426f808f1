//! The validation pipeline on the real sandboxed executor: proposer text in, stored task or
//! rejection reason out.

mod common;
use azr_core::validate::{validate_proposals, Proposed, ValidateConfig};
use azr_core::{InductionRecord, ParseConfig, Reason, TaskStore, TaskType, Triplet, ValidTask};
use azr_exec::Rejection;
use common::*;

const CFG: ValidateConfig = ValidateConfig {
    parse: ParseConfig {
        think: azr_core::parse::ThinkMode::Required,
        induction_inputs: 3,
    },
    min_message_words: 2,
    require_input_use: true,
};

fn program_response(program: &str, input: &str) -> String {
    format!("ok</think>\n<answer>\n```python\n{program}\n```\n```input\n{input}\n```\n</answer>")
}

fn induction_response(inputs: &[&str], message: &str) -> String {
    let blocks: String = inputs
        .iter()
        .map(|i| format!("```input\n{i}\n```\n"))
        .collect();
    format!("ok</think>\n<answer>\n{blocks}```message\n{message}\n```\n</answer>")
}

fn reason(v: &azr_core::Validated) -> Reason {
    v.as_ref().expect_err("expected a rejection").reason.clone()
}

#[test]
fn deduction_and_abduction_proposals() {
    let store = TaskStore::new(16, 0).unwrap();
    let responses = [
        program_response("def f(xs):\n    return sorted(xs)[::-1]", "[2, 9, 4]"),
        program_response("import random\ndef f(x):\n    return random.random()", "1"),
        program_response("c = [0]\ndef f(x):\n    c[0] += x\n    return c[0]", "5"),
        // valid program, input that is an expression: the solver could not read it
        program_response("def f(xs):\n    return len(xs)", "[1] * 3"),
        program_response("def f(x):\n    return 1 / x", "0"),
        // the identity seed: already stored
        program_response("def f(a):\n    return a", "'Hello World'"),
        "no tags at all".to_string(),
        "ok</think><answer>```python\ndef f(x):\n    return x\n```</answer>".to_string(),
        // any input solves it
        program_response("def f(list):\n    return [1, 2]", "[3]"),
    ];
    let items: Vec<Proposed<'_>> = responses
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 2 == 0 {
                Proposed::Deduction { response: r }
            } else {
                Proposed::Abduction { response: r }
            }
        })
        .collect();
    let v = validate_proposals(exec(), &items, &store, &CFG);
    assert_eq!(v.len(), items.len());
    assert_eq!(
        v[0],
        Ok(ValidTask::Deduction(Triplet::new(
            "def f(xs):\n    return sorted(xs)[::-1]",
            "[2, 9, 4]",
            "[9, 4, 2]"
        )))
    );
    assert_eq!(reason(&v[1]), Reason::Exec(Rejection::BannedModule));
    assert_eq!(reason(&v[2]), Reason::Exec(Rejection::Nondeterministic));
    assert_eq!(reason(&v[3]), Reason::Exec(Rejection::InputNotLiteral));
    assert_eq!(reason(&v[4]), Reason::Exec(Rejection::Error));
    let detail = v[4]
        .as_ref()
        .unwrap_err()
        .detail
        .clone()
        .unwrap_or_default();
    assert!(detail.contains("ZeroDivisionError"), "{detail}");
    assert_eq!(reason(&v[5]), Reason::Duplicate);
    assert_eq!(reason(&v[6]).name(), "parse.format.think_not_closed");
    assert_eq!(reason(&v[7]).name(), "parse.missing_block.input");
    assert!(reason(&v[6]).is_format_error() && !reason(&v[1]).is_format_error());
    assert_eq!(reason(&v[8]), Reason::Exec(Rejection::IgnoresInput));
}

#[test]
fn induction_proposals() {
    let store = TaskStore::new(16, 0).unwrap();
    let program = "def f(n):\n    return n * n if n >= 0 else 1 // n";
    let responses = [
        induction_response(&["3", "-0", "12"], "Squares the number."),
        // the third input raises: one invalid input invalidates the proposal
        induction_response(&["3", "4", "-1 if False else 0"], "Squares the number."),
        induction_response(&["3", "4", "-2"], "Squares the number."),
        induction_response(&["3", "4", "5"], "def f(n): n*n"),
        induction_response(&["3", "4", "5"], "n"),
        induction_response(&["3", " 3", "4"], "Squares the number."),
        induction_response(&["3", "4"], "Squares the number."),
    ];
    let items: Vec<Proposed<'_>> = responses
        .iter()
        .map(|r| Proposed::Induction {
            program,
            response: r,
        })
        .collect();
    let v = validate_proposals(exec(), &items, &store, &CFG);
    assert_eq!(
        v[0],
        Ok(ValidTask::Induction(InductionRecord {
            program: program.into(),
            pairs: vec![
                ("3".into(), "9".into()),
                ("-0".into(), "0".into()),
                ("12".into(), "144".into())
            ],
            message: "Squares the number.".into(),
        }))
    );
    // an expression input is not literal
    assert_eq!(reason(&v[1]), Reason::Exec(Rejection::InputNotLiteral));
    // f(-2) = 1 // -2 = -1: the other branch, still valid
    assert!(v[2].is_ok(), "{:?}", v[2]);
    assert_eq!(reason(&v[3]), Reason::MessageHasCode("def"));
    assert_eq!(
        reason(&v[4]),
        Reason::MessageTooShort {
            words: 1,
            needed: 2
        }
    );
    assert_eq!(
        reason(&v[5]),
        Reason::TooFewDistinctInputs {
            distinct: 2,
            needed: 3
        }
    );
    assert_eq!(reason(&v[6]).name(), "parse.too_few_blocks.input");

    // A runtime error on one input: the reason names the executor's rejection, the detail the
    // input (1-based) that failed.
    let failing = "def f(n):\n    return 10 // n";
    let r = induction_response(&["1", "2", "0"], "Divides ten by it.");
    let v = validate_proposals(
        exec(),
        &[Proposed::Induction {
            program: failing,
            response: &r,
        }],
        &store,
        &CFG,
    );
    let rej = v[0].as_ref().unwrap_err();
    assert_eq!(rej.reason, Reason::Exec(Rejection::Error));
    assert!(
        rej.detail.as_deref().unwrap_or("").starts_with("input 3:"),
        "{rej:?}"
    );
}

#[test]
fn stored_induction_record_is_a_duplicate() {
    let mut store = TaskStore::new(16, 0).unwrap();
    let program = "def f(a):\n    return a";
    let r = induction_response(&["1", "'x'", "[]"], "Gives back its argument.");
    let item = [Proposed::Induction {
        program,
        response: &r,
    }];
    let v = validate_proposals(exec(), &item, &store, &CFG);
    let task = v[0].clone().unwrap();
    assert_eq!(task.task_type(), TaskType::Induction);
    store.add(task, 1);
    let v = validate_proposals(exec(), &item, &store, &CFG);
    assert_eq!(reason(&v[0]), Reason::Duplicate);
}

/// The probe fills from the identity seeds alone (a model that proposed nothing), every task
/// validated by the executor, and scores strict and lenient answers apart.
#[test]
fn probe_fills_from_derived_inputs_and_scores_both_ways() {
    use azr_core::probe;
    let store = TaskStore::new(16, 0).unwrap();
    let exec = exec();
    let mut tasks = probe::from_seeding(&store, 12);
    assert!(tasks.is_empty());
    probe::fill_derived(&mut tasks, &store, exec, 12, 7);
    assert_eq!(tasks.len(), 12);
    let distinct: std::collections::HashSet<_> = tasks.iter().collect();
    assert_eq!(distinct.len(), 12);
    for t in &tasks {
        let (ValidTask::Deduction(x) | ValidTask::Abduction(x)) = t else {
            panic!("{t:?}");
        };
        // the identity program: the executor's output is the input's value
        assert_eq!(x.output, x.input, "{t:?}");
        assert_ne!(x.input, "'Hello World'");
    }
    // Answers: the first strict and right, the second right but scaffolded, the third right
    // with a broken format, the rest wrong.
    let answer = |t: &ValidTask, right: bool| {
        let (tag, value) = match t {
            ValidTask::Deduction(x) => {
                ("output", if right { x.output.clone() } else { "0".into() })
            }
            ValidTask::Abduction(x) => ("input", if right { x.input.clone() } else { "0".into() }),
            _ => unreachable!(),
        };
        format!("ok</think><answer>\n```{tag}\n{value}\n```\n</answer>")
    };
    let texts: Vec<String> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let a = answer(t, i < 3);
            if i == 2 {
                a.replace("</answer>", "</answer> trailing")
            } else {
                a
            }
        })
        .collect();
    let responses: Vec<(&str, bool)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i == 1))
        .collect();
    let cfg = ParseConfig {
        think: azr_core::parse::ThinkMode::Required,
        induction_inputs: 3,
    };
    let s = probe::score(&tasks, &responses, exec, &cfg);
    assert_eq!((s.n, s.strict, s.lenient), (12, 1, 3));
    let at = |c: &[bool]| {
        c.iter()
            .enumerate()
            .filter(|(_, c)| **c)
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(&s.strict_correct), [0]);
    assert_eq!(at(&s.lenient_correct), [0, 1, 2]);
}
