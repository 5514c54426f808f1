//! Seeding rounds on the real sandboxed executor, with scripted proposers: fixed, hand-written
//! responses chosen by the kind of proposer prompt. Counts are checked against the script.

mod common;
use azr_core::policy::{GenRequest, Policy, PolicyError, Purpose, Response};
use azr_core::{
    run_seeding_round, seeding_done, Group, InductionRecord, Rendering, Role, SeedingRound,
    StepConfig, StepError, TaskStore, TaskType, Triplet,
};
use common::*;
use std::collections::VecDeque;

// ---- the scripted proposers ------------------------------------------------------------------

const DEDUCTION: &str = "must predict the output";
const ABDUCTION: &str = "must find an input";
const INDUCTION: &str = "write 4 different inputs";

/// Answers each seeding request with the next response queued for its kind of proposer prompt
/// (by a needle in the prompt); any other request, or an exhausted queue, is an error.
#[derive(Default)]
struct Proposers {
    queues: Vec<(&'static str, VecDeque<Response>)>,
    calls: Vec<Vec<GenRequest>>,
}

impl Proposers {
    /// Queues `texts` for prompts containing `needle`; response k has k + 1 tokens.
    fn queue(mut self, needle: &'static str, texts: Vec<String>) -> Self {
        let rs = texts
            .into_iter()
            .enumerate()
            .map(|(k, t)| Response::new(t, k + 1))
            .collect();
        self.queues.push((needle, rs));
        self
    }

    fn all_used(&self) -> bool {
        self.queues.iter().all(|(_, q)| q.is_empty())
    }
}

impl Policy for Proposers {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        self.calls.push(requests.to_vec());
        requests
            .iter()
            .map(|req| {
                if req.purpose != Purpose::Seeding || req.group.role != Role::Propose {
                    return Err(format!("not a seeding proposer request: {:?}", req.group).into());
                }
                self.queues
                    .iter_mut()
                    .find(|(needle, q)| req.prompt.contains(needle) && !q.is_empty())
                    .and_then(|(_, q)| q.pop_front())
                    .ok_or_else(|| format!("no scripted response for {:?}", req.prompt).into())
            })
            .collect()
    }
}

// ---- response texts (the prompt prefills `<think>`) ----------------------------------------

fn answer(body: &str) -> String {
    format!("Let me think.</think>\n<answer>\n{body}\n</answer>")
}
fn propose(program: &str, input: &str) -> String {
    answer(&format!(
        "```python\n{program}\n```\n```input\n{input}\n```"
    ))
}
fn induce(inputs: &[&str], message: &str) -> String {
    let blocks: Vec<String> = inputs
        .iter()
        .map(|i| format!("```input\n{i}\n```"))
        .collect();
    answer(&format!(
        "{}\n```message\n{message}\n```",
        blocks.join("\n")
    ))
}
fn no_answer() -> String {
    "I am not sure what to write here.</think>\nSorry.".to_string()
}

const IDENTITY: &str = "def f(a):\n    return a";

/// `def f(a): return a + k`: a one-argument program every integer input is valid for.
fn plus(k: usize) -> String {
    format!("def f(a):\n    return a + {k}")
}
/// `def f(a): return a * k`.
fn times(k: usize) -> String {
    format!("def f(a):\n    return a * {k}")
}

fn sizes(store: &TaskStore) -> [usize; 3] {
    TaskType::ALL.map(|t| store.len(t))
}

fn seed(round: u64, store: &mut TaskStore, policy: &mut Proposers) -> SeedingRound {
    run_seeding_round(round, store, policy, exec(), Rendering::Plain, &config())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn rejections(r: &SeedingRound, t: TaskType) -> Vec<(String, usize)> {
    r.proposals[t]
        .rejections
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

fn counts(r: &SeedingRound, t: TaskType) -> (usize, usize, usize) {
    let m = &r.proposals[t];
    (m.proposed, m.valid, m.added)
}

// ---- tests -----------------------------------------------------------------------------------

#[test]
fn valid_distinct_proposals_grow_every_buffer_until_done() {
    let mut store = TaskStore::new(64, 5).unwrap();
    assert_eq!(sizes(&store), [1, 1, 1]);
    assert!(!seeding_done(&store, 9));

    // Round 0: the only program to show an induction proposer is the identity.
    let mut policy = Proposers::default()
        .queue(
            DEDUCTION,
            (1..=4).map(|k| propose(&plus(k), &k.to_string())).collect(),
        )
        .queue(
            ABDUCTION,
            (1..=4).map(|k| propose(&times(k), "3")).collect(),
        )
        .queue(
            INDUCTION,
            (0..4)
                .map(|k| {
                    let first = k.to_string();
                    induce(
                        &[&first, "'a'", "[1]", "None"],
                        "Round one: returns its input.",
                    )
                })
                .collect(),
        );
    let r = seed(0, &mut store, &mut policy);
    assert!(policy.all_used());
    // The round records what each proposer saw and wrote, and its verdict.
    assert_eq!(r.responses.len(), policy.calls[0].len());
    for (resp, req) in r.responses.iter().zip(&policy.calls[0]) {
        assert_eq!(resp.prompt, req.prompt);
        assert_eq!(resp.group, req.group.name());
        assert!(!resp.verdict.is_empty());
    }

    // One generation call of 3B proposer requests, grouped by type, all for seeding.
    assert_eq!(policy.calls.len(), 1);
    let groups: Vec<Group> = policy.calls[0].iter().map(|q| q.group).collect();
    let want: Vec<Group> = [
        Group::PROPOSE_DEDUCTION,
        Group::PROPOSE_ABDUCTION,
        Group::PROPOSE_INDUCTION,
    ]
    .iter()
    .flat_map(|g| [*g; 4])
    .collect();
    assert_eq!(groups, want);
    assert!(policy.calls[0][8..]
        .iter()
        .all(|q| q.prompt.contains(IDENTITY)));

    assert_eq!(r.round, 0);
    assert_eq!(r.added, 12);
    for t in TaskType::ALL {
        assert_eq!(counts(&r, t), (4, 4, 4), "{t}");
        assert!(r.proposals[t].rejections.is_empty(), "{t}");
        // no solve rates while seeding
        assert!(r.proposals[t].solve_rate_histogram.is_empty(), "{t}");
        assert_eq!(r.proposals[t].estimate_samples, 0, "{t}");
    }
    assert_eq!(sizes(&store), [5, 5, 5]);
    assert_eq!(
        r.buffer_sizes.values().copied().collect::<Vec<_>>(),
        [5, 5, 5]
    );
    // tokens 1 + 2 + 3 + 4 per type; jobs: 4 + 4 + 4 x 4 validations
    assert_eq!(r.generated_tokens, 30);
    assert_eq!(r.executor_jobs, 24);
    // the executor's outputs, stored at step 0
    assert!(store.deduction.contains(&Triplet::new(plus(3), "3", "6")));
    assert!(store.abduction.contains(&Triplet::new(times(4), "3", "12")));
    let rec = InductionRecord {
        program: IDENTITY.into(),
        pairs: ["2", "'a'", "[1]", "None"]
            .iter()
            .map(|x| (x.to_string(), x.to_string()))
            .collect(),
        message: "Round one: returns its input.".into(),
    };
    assert!(store.induction.contains(&rec));
    assert!(store.deduction.entries().all(|e| e.added_at == 0));
    assert!(store.abduction.entries().all(|e| e.added_at == 0));
    assert!(store.induction.entries().all(|e| e.added_at == 0));
    assert!(seeding_done(&store, 5));
    assert!(!seeding_done(&store, 9));

    // Round 1: induction proposers now see 4 distinct programs of the 9 in the union (all take
    // one integer), so the same inputs and message make 4 new records.
    let mut policy = Proposers::default()
        .queue(DEDUCTION, (5..=8).map(|k| propose(&plus(k), "1")).collect())
        .queue(
            ABDUCTION,
            (5..=8).map(|k| propose(&times(k), "2")).collect(),
        )
        .queue(
            INDUCTION,
            vec![induce(&["1", "2", "3", "4"], "Round two: some arithmetic."); 4],
        );
    let r = seed(1, &mut store, &mut policy);
    assert!(policy.all_used());
    assert_eq!((r.round, r.added), (1, 12));
    assert_eq!(counts(&r, TaskType::Induction), (4, 4, 4));
    let shown: std::collections::HashSet<&str> = policy.calls[0][8..]
        .iter()
        .filter_map(|q| {
            store
                .program_union()
                .into_iter()
                .find(|p| q.prompt.contains(&format!("```python\n{p}\n```")))
        })
        .collect();
    assert_eq!(shown.len(), 4);
    assert_eq!(sizes(&store), [9, 9, 9]);
    assert!(seeding_done(&store, 9));
    assert!(!seeding_done(&store, 10));
    // the round's summary is what the trainer logs
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(serde_json::from_str::<SeedingRound>(&json).unwrap(), r);
}

#[test]
fn invalid_and_malformed_proposals_are_counted_by_reason_and_not_stored() {
    let mut store = TaskStore::new(64, 1).unwrap();
    let mut policy = Proposers::default()
        .queue(
            DEDUCTION,
            vec![
                propose(
                    "import random\ndef f(x):\n    return random.randint(0, x)",
                    "5",
                ),
                no_answer(),
                propose(&plus(1), "1"), // valid
                answer(&format!("```python\n{}\n```", plus(2))),
            ],
        )
        .queue(
            ABDUCTION,
            vec![
                propose("c = [0]\ndef f(x):\n    c[0] += x\n    return c[0]", "5"),
                propose(IDENTITY, "'Hello World'"), // the seed
                propose(&times(2), "4"),            // valid
                propose("def f(a):\n    return 1 / a", "0"),
            ],
        )
        .queue(
            INDUCTION,
            vec![
                induce(&["1", "2", "3", "4"], "lambda a: a"),
                induce(&["1", "[1,2]", "[1, 2]", "3"], "Gives back the input."),
                induce(&["1", "2", "[0] * 3", "4"], "Gives back the input."),
                induce(&["1", "2", "3", "4"], "Gives back the input."), // valid
            ],
        );
    let r = seed(0, &mut store, &mut policy);
    assert!(policy.all_used());

    let own = |v: &[(&str, usize)]| {
        v.iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rejections(&r, TaskType::Deduction),
        own(&[
            ("exec.banned_module", 1),
            ("parse.format.missing_answer", 1),
            ("parse.missing_block.input", 1),
        ])
    );
    assert_eq!(
        rejections(&r, TaskType::Abduction),
        own(&[
            ("duplicate", 1),
            ("exec.error", 1),
            ("exec.nondeterministic", 1),
        ])
    );
    assert_eq!(
        rejections(&r, TaskType::Induction),
        own(&[
            ("exec.input_not_literal", 1),
            ("message_has_code", 1),
            ("too_few_distinct_inputs", 1),
        ])
    );
    for t in TaskType::ALL {
        assert_eq!(counts(&r, t), (4, 1, 1), "{t}");
    }
    assert_eq!(r.added, 3);
    assert_eq!(sizes(&store), [2, 2, 2]);
    assert!(store.deduction.contains(&Triplet::new(plus(1), "1", "2")));
    assert!(store.abduction.contains(&Triplet::new(times(2), "4", "8")));
}

#[test]
fn duplicates_are_stored_once() {
    let mut store = TaskStore::new(64, 2).unwrap();
    let same_ind = induce(&["5", "6", "7", "8"], "Gives back the input.");
    let script = || {
        Proposers::default()
            .queue(DEDUCTION, vec![propose(&plus(9), "1"); 4])
            .queue(
                ABDUCTION,
                vec![
                    propose(&times(3), "1"),
                    propose(&times(3), "1"),
                    propose(IDENTITY, "'Hello World'"),
                    propose(&times(3), "2"), // same program, another input: another task
                ],
            )
            .queue(INDUCTION, vec![same_ind.clone(); 4])
    };
    let mut policy = script();
    let r = seed(0, &mut store, &mut policy);
    // identical proposals of one round: all valid, stored once
    assert_eq!(counts(&r, TaskType::Deduction), (4, 4, 1));
    assert_eq!(counts(&r, TaskType::Abduction), (4, 3, 2));
    assert_eq!(
        rejections(&r, TaskType::Abduction),
        [("duplicate".to_string(), 1)]
    );
    assert_eq!(counts(&r, TaskType::Induction), (4, 4, 1));
    assert_eq!(r.added, 4);
    assert_eq!(sizes(&store), [2, 3, 2]);

    // The same proposals again: now all already stored. Induction prompts may show other
    // programs now; the record is a duplicate only where the identity is shown again.
    let mut policy = script();
    let r = seed(1, &mut store, &mut policy);
    assert_eq!(counts(&r, TaskType::Deduction), (4, 0, 0));
    assert_eq!(
        rejections(&r, TaskType::Deduction),
        [("duplicate".to_string(), 4)]
    );
    assert_eq!(counts(&r, TaskType::Abduction), (4, 0, 0));
    assert_eq!(
        rejections(&r, TaskType::Abduction),
        [("duplicate".to_string(), 4)]
    );
    let identity_shown = policy.calls[0][8..]
        .iter()
        .filter(|q| q.prompt.contains(&format!("```python\n{IDENTITY}\n```")))
        .count();
    assert!(
        identity_shown >= 1,
        "refill shows every program at least once"
    );
    let ind = &r.proposals[TaskType::Induction];
    assert_eq!(
        ind.rejections.get("duplicate").copied().unwrap_or(0),
        identity_shown
    );
    assert_eq!(r.added, ind.added);
    assert_eq!(sizes(&store)[..2], [2, 3]);
}

#[test]
fn garbage_is_all_format_errors_and_errors_leave_the_store_alone() {
    let mut store = TaskStore::new(64, 3).unwrap();
    let mut garbage = |reqs: &[GenRequest]| -> Result<Vec<Response>, PolicyError> {
        Ok(reqs
            .iter()
            .map(|_| Response::sampled("I do not know.".into(), vec![1, 2], vec![-0.1, -0.2]))
            .collect())
    };
    let r = run_seeding_round(
        4,
        &mut store,
        &mut garbage,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((r.round, r.added, r.executor_jobs), (4, 0, 0));
    assert_eq!(r.generated_tokens, 24);
    for t in TaskType::ALL {
        assert_eq!(
            rejections(&r, t),
            [("parse.format.think_not_closed".to_string(), 4)]
        );
    }
    assert_eq!(sizes(&store), [1, 1, 1]);

    let mut short = |reqs: &[GenRequest]| -> Result<Vec<Response>, PolicyError> {
        Ok(vec![Response::new("x", 1); reqs.len() - 1])
    };
    let err = run_seeding_round(
        0,
        &mut store,
        &mut short,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            StepError::ResponseCount {
                purpose: Purpose::Seeding,
                expected: 12,
                got: 11
            }
        ),
        "{err}"
    );
    let mut failing =
        |_: &[GenRequest]| -> Result<Vec<Response>, PolicyError> { Err("model fell over".into()) };
    let err = run_seeding_round(
        0,
        &mut store,
        &mut failing,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "policy: model fell over");
    let bad = StepConfig {
        induction_inputs: 1,
        ..config()
    };
    let err =
        run_seeding_round(0, &mut store, &mut short, exec(), Rendering::Plain, &bad).unwrap_err();
    assert!(matches!(err, StepError::Config(_)), "{err}");
    assert_eq!(sizes(&store), [1, 1, 1]);
}
