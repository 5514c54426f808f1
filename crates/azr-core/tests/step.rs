//! One self-play step end to end on the real sandboxed executor, with a scripted policy: fixed,
//! hand-written responses chosen by looking at the prompt text. Every reward and every advantage
//! is checked against numbers computed by hand below.

mod common;
use azr_core::policy::{GenRequest, Policy, PolicyError, Purpose, Response};
use azr_core::reward::{ProposerOutcome, SolverOutcome};
use azr_core::{
    run_step, Group, InductionRecord, Outcome, Rendering, StepConfig, StepError, TaskBuffer,
    TaskStore, TaskType, Triplet, ValidTask,
};
use common::*;
use std::collections::VecDeque;

// ---- the scripted policy ---------------------------------------------------------------------

/// A response is taken from the first rule whose purpose matches and whose needle occurs in the
/// prompt, in script order. Prompts with identical text get the rule's responses in turn.
struct Rule {
    purpose: Purpose,
    needle: &'static str,
    responses: VecDeque<Response>,
}

#[derive(Default)]
struct Scripted {
    rules: Vec<Rule>,
    calls: Vec<Vec<GenRequest>>,
}

impl Scripted {
    fn rule(mut self, purpose: Purpose, needle: &'static str, rs: Vec<(String, usize)>) -> Self {
        self.rules.push(Rule {
            purpose,
            needle,
            responses: rs.into_iter().map(|(t, n)| Response::new(t, n)).collect(),
        });
        self
    }

    fn unused(&self) -> Vec<&'static str> {
        self.rules
            .iter()
            .filter(|r| !r.responses.is_empty())
            .map(|r| r.needle)
            .collect()
    }
}

impl Policy for Scripted {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        self.calls.push(requests.to_vec());
        requests
            .iter()
            .map(|req| {
                self.rules
                    .iter_mut()
                    .find(|r| {
                        r.purpose == req.purpose
                            && req.prompt.contains(r.needle)
                            && !r.responses.is_empty()
                    })
                    .and_then(|r| r.responses.pop_front())
                    .ok_or_else(|| format!("no scripted response for {:?}", req.prompt).into())
            })
            .collect()
    }
}

/// Every request answered with unparseable text, `tokens` tokens each; records the requests.
struct Garbage {
    tokens: usize,
    calls: Vec<Vec<GenRequest>>,
}

impl Policy for Garbage {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        self.calls.push(requests.to_vec());
        Ok(requests
            .iter()
            .map(|_| Response::new("I do not know.", self.tokens))
            .collect())
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
fn output(o: &str) -> String {
    answer(&format!("```output\n{o}\n```"))
}
fn input(i: &str) -> String {
    answer(&format!("```input\n{i}\n```"))
}
fn python(p: &str) -> String {
    answer(&format!("```python\n{p}\n```"))
}
/// No answer block at all: a format error.
fn no_answer() -> String {
    "I am not sure what to write here.</think>\nSorry.".to_string()
}

const SORTED: &str = "def f(xs):\n    return sorted(xs)";
const ADD: &str = "def f(a, b):\n    return a + b";
const MUL: &str = "def f(a, b):\n    return a * b";
const UPREV: &str = "def f(s):\n    return s.upper()[::-1]";
const IDENTITY: &str = "def f(a):\n    return a";

fn script() -> Scripted {
    use Purpose::{Learnability as L, Rollout as R};
    // Learnability samples have 7 tokens each: they are never trained on, so the number must
    // not show up anywhere in the batch.
    let l = |v: Vec<String>| v.into_iter().map(|t| (t, 7)).collect::<Vec<_>>();
    Scripted::default()
        // propose deduction: (response, tokens)
        .rule(
            R,
            "must predict the output",
            vec![
                (propose(SORTED, "[3, 1, 2]"), 2), // PD1 valid, gold [1, 2, 3]
                (
                    propose(
                        "import random\ndef f(x):\n    return random.randint(0, x)",
                        "5",
                    ),
                    1,
                ), // PD2 banned module
                (no_answer(), 1),                  // PD3 malformed
                (propose(ADD, "2, 3"), 4),         // PD4 valid, gold 5
            ],
        )
        // propose abduction
        .rule(
            R,
            "must find an input",
            vec![
                (propose(MUL, "6, 7"), 1), // PA1 valid, gold 42
                (
                    propose("c = [0]\ndef f(x):\n    c[0] += x\n    return c[0]", "5"),
                    1,
                ), // PA2 nondeterministic
                (propose(IDENTITY, "'Hello World'"), 1), // PA3 duplicate of the seed
                (propose(UPREV, "'abc'"), 1), // PA4 valid, gold 'CBA'
            ],
        )
        // propose induction (the only program in the buffers is the identity)
        .rule(
            R,
            "write 4 different inputs",
            vec![
                (
                    induce(&["1", "'a'", "[2, 3]", "None"], "It returns what it gets."),
                    5,
                ), // PI1 valid
                (induce(&["1", "2", "3", "4"], "lambda a: a"), 1), // PI2 code in the message
                (
                    induce(&["1", "2", "[0] * 3", "4"], "Gives back the input."),
                    1,
                ), // PI3 input not literal
                (
                    induce(&["1", "[1,2]", "[1, 2]", "3"], "Gives back the input."),
                    1,
                ), // PI4 only 3 distinct inputs
            ],
        )
        // solve deduction: the identity seed on 'Hello World'
        .rule(
            R,
            "Predict what `f` returns",
            vec![
                (output("'Hello World'"), 2),   // correct
                (output("\"Hello World\""), 2), // correct: same str value
                (output("'hello world'"), 2),   // wrong
                (no_answer(), 2),               // format error
            ],
        )
        // solve abduction: the identity seed, output 'Hello World'
        .rule(
            R,
            "Find an input for which",
            vec![
                (input("'Hello World'"), 1),      // correct
                (input("a='Hello World'"), 1),    // correct: any input that gives the output
                (input("'Hello'"), 1),            // wrong
                (input("str('Hello World')"), 1), // wrong: not a literal
            ],
        )
        // solve induction: the seed record (hidden: True, None, -2.5, 'abc', [[0], []])
        .rule(
            R,
            "Write a Python function `f`",
            vec![
                (python(IDENTITY), 1),                             // correct
                (python("def f(x):\n    y = x\n    return y"), 1), // correct
                (python("def f(a):\n    return str(a)"), 2),       // wrong
                (answer("```python\n\n```"), 4),                   // format: empty block
            ],
        )
        // learnability samples, by the program (or message) their prompt shows
        .rule(
            L,
            "return sorted(xs)",
            l(vec![
                output("[1, 2, 3]"),
                output("[1,2,3]"),
                output("[3, 2, 1]"),
                no_answer(),
            ]), // 2 of 4
        )
        .rule(
            L,
            "return a + b",
            l(vec![output("5"), output("5.0"), output("5"), output("5")]), // 4 of 4 (5 == 5.0)
        )
        .rule(
            L,
            "return a * b",
            l(vec![
                input("6, 7"),
                input("7, 6"),
                input("2, 21"),
                input("1, 1"),
            ]), // 3 of 4
        )
        .rule(
            L,
            "s.upper()[::-1]",
            l(vec![
                input("'cba'"),
                input("'CBA'"),
                input("len('abc')"),
                no_answer(),
            ]), // 0 of 4
        )
        .rule(
            L,
            "It returns what it gets.",
            l(vec![
                python(IDENTITY),
                python("def f(x):\n    return 1"),
                python("def f(x):\n    return str(x)"),
                no_answer(),
            ]), // 1 of 4
        )
}

/// TRR++: A = (R - mean) / sqrt(var + 1e-8).
fn adv(deviation: f64, var: f64) -> f64 {
    deviation / (var + 1e-8).sqrt()
}

fn close(got: f64, want: f64, what: &str) {
    assert!((got - want).abs() < 1e-12, "{what}: got {got}, want {want}");
}

#[test]
fn scripted_step_rewards_and_advantages() {
    let mut store = TaskStore::new(64, 7).unwrap();
    let mut policy = script();
    let out = run_step(
        1,
        &mut store,
        &mut policy,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(policy.unused().is_empty(), "unused: {:?}", policy.unused());

    // Two generation calls: the 24 rollouts, then 5 valid proposals x 4 learnability samples.
    assert_eq!(policy.calls.len(), 2);
    assert_eq!(policy.calls[0].len(), 24);
    assert!(policy.calls[0]
        .iter()
        .all(|r| r.purpose == Purpose::Rollout));
    assert_eq!(policy.calls[1].len(), 20);
    assert!(policy.calls[1]
        .iter()
        .all(|r| r.purpose == Purpose::Learnability && r.group.role == azr_core::Role::Solve));

    // The batch: only the 24 rollouts, grouped in Group::ALL order, B = 4 each.
    let s = &out.samples;
    assert_eq!(s.len(), 24);
    for (k, g) in Group::ALL.iter().enumerate() {
        assert!(s[4 * k..4 * k + 4].iter().all(|x| x.group == *g), "{g}");
    }
    assert!(
        s.iter().all(|x| x.tokens != 7),
        "a learnability sample leaked"
    );
    assert!(s
        .iter()
        .zip(&policy.calls[0])
        .all(|(x, r)| x.prompt == r.prompt));

    let rewards: Vec<f64> = s.iter().map(|x| x.reward).collect();
    #[rustfmt::skip]
    let want_rewards = [
        // propose deduction: PD1 s = 2/4 -> 1 - 0.5 = 0.5; banned -1; format -1; PD4 s = 4/4 -> 0
        0.5, -1.0, -1.0, 0.0,
        // propose abduction: PA1 s = 3/4 -> 0.25; nondeterministic -1; duplicate -1; PA4 s = 0 -> 0
        0.25, -1.0, -1.0, 0.0,
        // propose induction: PI1 s = 1/4 -> 0.75; code in message, non-literal input,
        // duplicate inputs: -1 each
        0.75, -1.0, -1.0, -1.0,
        // solve deduction: correct, correct, wrong, format
        1.0, 1.0, -0.5, -1.0,
        // solve abduction: correct, correct, wrong, wrong (not literal)
        1.0, 1.0, -0.5, -0.5,
        // solve induction: correct, correct, wrong, format
        1.0, 1.0, -0.5, -1.0,
    ];
    assert_eq!(rewards, want_rewards);

    // Advantages, group by group (token-weighted mean, unbiased variance over tokens).
    let a: Vec<f64> = s.iter().map(|x| x.advantage).collect();
    let check = |range: std::ops::Range<usize>, dev: [f64; 4], var: f64, name: &str| {
        for (i, d) in range.zip(dev) {
            close(a[i], adv(d, var), &format!("{name} #{i}"));
        }
    };
    // PD: R = [0.5, -1, -1, 0], tokens [2, 1, 1, 4], T = 8
    //   mean = (2*0.5 - 1 - 1 + 4*0)/8 = -1/8 = -0.125
    //   dev  = [0.625, -0.875, -0.875, 0.125]
    //   var  = (2*0.390625 + 0.765625 + 0.765625 + 4*0.015625)/7 = 2.375/7
    check(0..4, [0.625, -0.875, -0.875, 0.125], 2.375 / 7.0, "PD");
    // PA: R = [0.25, -1, -1, 0], tokens all 1, T = 4
    //   mean = -1.75/4 = -0.4375, dev = [0.6875, -0.5625, -0.5625, 0.4375]
    //   var  = (0.47265625 + 2*0.31640625 + 0.19140625)/3 = 1.296875/3
    check(
        4..8,
        [0.6875, -0.5625, -0.5625, 0.4375],
        1.296875 / 3.0,
        "PA",
    );
    // PI: R = [0.75, -1, -1, -1], tokens [5, 1, 1, 1], T = 8
    //   mean = (3.75 - 3)/8 = 0.09375, dev = [0.65625, -1.09375 x3]
    //   var  = (5*0.4306640625 + 3*1.1962890625)/7 = 5.7421875/7 = 0.8203125
    check(
        8..12,
        [0.65625, -1.09375, -1.09375, -1.09375],
        0.8203125,
        "PI",
    );
    // SD: R = [1, 1, -0.5, -1], tokens all 2, T = 8
    //   mean = 2*(1 + 1 - 0.5 - 1)/8 = 0.125, dev = [0.875, 0.875, -0.625, -1.125]
    //   var  = 2*(0.765625 + 0.765625 + 0.390625 + 1.265625)/7 = 6.375/7
    //   (7 = T - 1 counts tokens, not sequences: 4 sequences of equal length still give /7)
    check(12..16, [0.875, 0.875, -0.625, -1.125], 6.375 / 7.0, "SD");
    // SA: R = [1, 1, -0.5, -0.5], tokens all 1, T = 4
    //   mean = 0.25, dev = [0.75, 0.75, -0.75, -0.75], var = 4*0.5625/3 = 0.75
    check(16..20, [0.75, 0.75, -0.75, -0.75], 0.75, "SA");
    // SI: R = [1, 1, -0.5, -1], tokens [1, 1, 2, 4], T = 8
    //   mean = (1 + 1 - 1 - 4)/8 = -0.375, dev = [1.375, 1.375, -0.125, -0.625]
    //   var  = (1.890625 + 1.890625 + 2*0.015625 + 4*0.390625)/7 = 5.375/7
    check(20..24, [1.375, 1.375, -0.125, -0.625], 5.375 / 7.0, "SI");

    // Outcomes and rejection reasons of the proposers.
    let reasons: Vec<Option<&str>> = s[..12]
        .iter()
        .map(|x| match &x.outcome {
            Outcome::Propose { reason, .. } => reason.as_deref(),
            Outcome::Solve { .. } => Some("not a proposer"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            None,
            Some("exec.banned_module"),
            Some("parse.format.missing_answer"),
            None,
            None,
            Some("exec.nondeterministic"),
            Some("duplicate"),
            None,
            None,
            Some("message_has_code"),
            Some("exec.input_not_literal"),
            Some("too_few_distinct_inputs"),
        ]
    );
    assert_eq!(
        s[2].outcome,
        Outcome::Propose {
            outcome: ProposerOutcome::FormatError,
            reason: Some("parse.format.missing_answer".into()),
            detail: None
        }
    );
    let Outcome::Propose { detail, .. } = &s[10].outcome else {
        panic!()
    };
    assert!(
        detail.as_deref().unwrap_or("").starts_with("input 3:"),
        "{detail:?}"
    );
    assert_eq!(
        s[23].outcome,
        Outcome::Solve {
            outcome: SolverOutcome::FormatError
        }
    );

    // The valid proposals, their gold outputs and solve counts.
    let tasks: Vec<(ValidTask, usize)> = out
        .tasks
        .iter()
        .map(|t| (t.task.clone(), t.solved))
        .collect();
    let pi1 = InductionRecord {
        program: IDENTITY.into(),
        pairs: ["1", "'a'", "[2, 3]", "None"]
            .iter()
            .map(|x| (x.to_string(), x.to_string()))
            .collect(),
        message: "It returns what it gets.".into(),
    };
    assert_eq!(
        tasks,
        vec![
            (
                ValidTask::Deduction(Triplet::new(SORTED, "[3, 1, 2]", "[1, 2, 3]")),
                2
            ),
            (ValidTask::Deduction(Triplet::new(ADD, "2, 3", "5")), 4),
            (ValidTask::Abduction(Triplet::new(MUL, "6, 7", "42")), 3),
            (
                ValidTask::Abduction(Triplet::new(UPREV, "'abc'", "'CBA'")),
                0
            ),
            (ValidTask::Induction(pi1.clone()), 1),
        ]
    );
    assert!(out.tasks.iter().all(|t| t.added && t.attempts == 4));

    // Buffers: the seeds plus this step's valid proposals, stored at step 1.
    assert_eq!(store.deduction.len(), 3);
    assert_eq!(store.abduction.len(), 3);
    assert_eq!(store.induction.len(), 2);
    assert!(store.induction.contains(&pi1));
    assert!(store.deduction.entries().skip(1).all(|e| e.added_at == 1));

    // Metrics.
    let m = &out.metrics;
    assert_eq!(m.step, 1);
    assert_eq!(m.generated, 44);
    // validation: 3 (PD) + 4 (PA) + 4 + 4 (PI1, PI3); scoring: 3 + 4 + 3; learnability: 3 + 4 + 4 + 3 + 3
    assert_eq!(m.executor_jobs, 15 + 10 + 17);
    assert_eq!(m.seed_fallbacks, 0);
    assert_eq!(m.extreme_reward, 0.0);
    let g = |group: Group| &m.groups[group];
    let summary = |group: Group| {
        let x = g(group);
        (
            x.count,
            x.successes,
            x.format_errors,
            x.accuracy,
            x.format_error_rate,
        )
    };
    assert_eq!(summary(Group::PROPOSE_DEDUCTION), (4, 2, 1, 0.5, 0.25));
    assert_eq!(summary(Group::PROPOSE_ABDUCTION), (4, 2, 0, 0.5, 0.0));
    assert_eq!(summary(Group::PROPOSE_INDUCTION), (4, 1, 0, 0.25, 0.0));
    assert_eq!(summary(Group::SOLVE_DEDUCTION), (4, 2, 1, 0.5, 0.25));
    assert_eq!(summary(Group::SOLVE_ABDUCTION), (4, 2, 0, 0.5, 0.0));
    assert_eq!(summary(Group::SOLVE_INDUCTION), (4, 2, 1, 0.5, 0.25));
    // per-sequence reward mean of PD: (0.5 - 1 - 1 + 0)/4 = -0.375; token-weighted: -0.125
    close(g(Group::PROPOSE_DEDUCTION).reward_mean, -0.375, "PD mean");
    close(
        g(Group::PROPOSE_DEDUCTION).token_reward_mean,
        -0.125,
        "PD token mean",
    );
    close(
        g(Group::PROPOSE_DEDUCTION).token_reward_std,
        (2.375f64 / 7.0).sqrt(),
        "PD token std",
    );
    assert_eq!(g(Group::SOLVE_INDUCTION).tokens, 8);

    let p = |t: TaskType| &m.proposals[t];
    let rej = |t: TaskType| {
        p(t).rejections
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rej(TaskType::Deduction),
        [
            ("exec.banned_module", 1),
            ("parse.format.missing_answer", 1)
        ]
    );
    assert_eq!(
        rej(TaskType::Abduction),
        [("duplicate", 1), ("exec.nondeterministic", 1)]
    );
    assert_eq!(
        rej(TaskType::Induction),
        [
            ("exec.input_not_literal", 1),
            ("message_has_code", 1),
            ("too_few_distinct_inputs", 1)
        ]
    );
    // histogram index = solved of 4
    assert_eq!(p(TaskType::Deduction).solve_rate_histogram, [0, 0, 1, 0, 1]);
    assert_eq!(p(TaskType::Abduction).solve_rate_histogram, [1, 0, 0, 1, 0]);
    assert_eq!(p(TaskType::Induction).solve_rate_histogram, [0, 1, 0, 0, 0]);
    assert_eq!(
        (p(TaskType::Deduction).valid, p(TaskType::Deduction).extreme),
        (2, 1)
    );
    close(
        p(TaskType::Abduction).mean_solve_rate,
        (0.75 + 0.0) / 2.0,
        "PA solve rate",
    );
    // learnability format errors: PD1, PA4, PI1 each had one
    assert_eq!(p(TaskType::Deduction).estimate_format_errors, 1);
    assert_eq!(p(TaskType::Induction).estimate_samples, 4);
    assert_eq!(
        m.buffer_sizes.values().copied().collect::<Vec<_>>(),
        [3, 3, 2] // abduction, deduction, induction
    );
    // the metrics serialise (the trainer logs them as JSON)
    assert!(serde_json::to_string(m)
        .unwrap()
        .contains("\"solve_rate_histogram\""));
}

/// Split rollouts (proposers, then solvers, validation in between) make three generation calls
/// and the very same step: same samples, rewards, advantages, tasks, metrics and buffers.
#[test]
fn split_rollouts_give_the_same_step() {
    let run = |split: bool| {
        let mut store = TaskStore::new(64, 7).unwrap();
        let mut policy = script();
        let cfg = StepConfig {
            split_rollouts: split,
            ..config()
        };
        let out = run_step(1, &mut store, &mut policy, exec(), Rendering::Plain, &cfg)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.unused().is_empty(), "unused: {:?}", policy.unused());
        let sizes: Vec<usize> = policy.calls.iter().map(Vec::len).collect();
        (sizes, out, store)
    };
    let (sizes_one, mut one, store_one) = run(false);
    let (sizes_split, mut split, store_split) = run(true);
    assert_eq!(sizes_one, [24, 20]);
    assert_eq!(sizes_split, [12, 12, 20]);
    for out in [&one, &split] {
        assert!(out.executor.busy_secs > 0.0);
        assert!(out.executor.wait_secs >= 0.0);
    }
    one.executor = Default::default();
    split.executor = Default::default();
    assert_eq!(one, split);
    assert_eq!(store_one, store_split);
}

#[test]
fn next_step_solves_the_newest_tasks_first_and_garbage_gets_zero_advantage() {
    let mut store = TaskStore::new(64, 3).unwrap();
    // as if step 1 had stored two deduction tasks
    for t in [
        Triplet::new(SORTED, "[2, 1]", "[1, 2]"),
        Triplet::new(ADD, "1, 1", "2"),
    ] {
        store.add(ValidTask::Deduction(t), 1);
    }
    let mut policy = Garbage {
        tokens: 3,
        calls: vec![],
    };
    let out = run_step(
        2,
        &mut store,
        &mut policy,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // no valid proposal: no learnability call
    assert_eq!(policy.calls.len(), 1);
    let solve_ded: Vec<&GenRequest> = policy.calls[0]
        .iter()
        .filter(|r| r.group == Group::SOLVE_DEDUCTION)
        .collect();
    assert_eq!(solve_ded.len(), 4);
    // added at step 1 = the previous step: first, in insertion order; then the seed; then refill
    assert!(solve_ded[0].prompt.contains("sorted(xs)"));
    assert!(solve_ded[1].prompt.contains("a + b"));
    assert!(solve_ded[2].prompt.contains("return a\n"));
    // every proposer: -1 (format); every solver: -1 (format); all equal -> A = 0 exactly
    assert!(out
        .samples
        .iter()
        .all(|s| s.reward == -1.0 && s.advantage == 0.0));
    assert!(out.tasks.is_empty());
    assert_eq!(
        out.metrics.proposals[TaskType::Deduction].rejections["parse.format.think_not_closed"],
        4
    );
    assert_eq!(out.metrics.executor_jobs, 0);
    assert_eq!(store.deduction.len(), 3);
}

#[test]
fn empty_buffers_fall_back_to_the_seeds() {
    let mut store = TaskStore::new(8, 0).unwrap();
    store.deduction = TaskBuffer::new(8).unwrap();
    store.abduction = TaskBuffer::new(8).unwrap();
    store.induction = TaskBuffer::new(8).unwrap();
    let mut policy = Garbage {
        tokens: 0,
        calls: vec![],
    };
    let cfg = StepConfig {
        batch: 2,
        ..config()
    };
    let out = run_step(1, &mut store, &mut policy, exec(), Rendering::Plain, &cfg)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.samples.len(), 12);
    // 2 deduction + 2 abduction reference sets, 2 induction programs, 3 x 2 solver tasks
    assert_eq!(out.metrics.seed_fallbacks, 12);
    let reqs = &policy.calls[0];
    assert!(reqs[0].prompt.contains("'Hello World'"));
    assert!(reqs[4].prompt.contains(IDENTITY));
    // zero-token responses: A = 0, never NaN
    assert!(out.samples.iter().all(|s| s.advantage == 0.0));
    assert_eq!(out.metrics.groups[Group::SOLVE_ABDUCTION].tokens, 0);
    assert_eq!(store.len(TaskType::Deduction), 0);
}

#[test]
fn policy_and_config_errors_are_errors() {
    let mut store = TaskStore::new(8, 0).unwrap();
    let mut short = |reqs: &[GenRequest]| -> Result<Vec<Response>, PolicyError> {
        Ok(vec![Response::new("x", 1); reqs.len() - 1])
    };
    let err = run_step(
        1,
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
                expected: 24,
                got: 23,
                ..
            }
        ),
        "{err}"
    );
    let mut failing =
        |_: &[GenRequest]| -> Result<Vec<Response>, PolicyError> { Err("model fell over".into()) };
    let err = run_step(
        1,
        &mut store,
        &mut failing,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "policy: model fell over");
    for bad in [
        StepConfig {
            learnability_samples: 0,
            ..config()
        },
        StepConfig {
            induction_inputs: 1,
            ..config()
        },
        StepConfig {
            rewards: azr_core::RewardConfig {
                extreme: f64::NAN,
                ..Default::default()
            },
            ..config()
        },
    ] {
        let err = run_step(1, &mut store, &mut short, exec(), Rendering::Plain, &bad).unwrap_err();
        assert!(matches!(err, StepError::Config(_)), "{err}");
    }
    // buffers untouched by the failed steps
    assert_eq!(store.deduction.len(), 1);
}

#[test]
fn same_store_same_step() {
    let run = |seed: u64| {
        let mut store = TaskStore::new(64, seed).unwrap();
        for i in 0..10 {
            let t = Triplet::new(
                format!("def f(a):\n    return a + {i}"),
                "1",
                (1 + i).to_string(),
            );
            store.add(ValidTask::Deduction(t.clone()), 1);
            store.add(ValidTask::Abduction(t), 1);
        }
        let mut policy = Garbage {
            tokens: 2,
            calls: vec![],
        };
        let out = run_step(
            3,
            &mut store,
            &mut policy,
            exec(),
            Rendering::Plain,
            &config(),
        )
        .unwrap();
        (policy.calls, out, store)
    };
    let (calls_a, mut out_a, store_a) = run(11);
    let (calls_b, mut out_b, store_b) = run(11);
    assert_eq!(calls_a, calls_b);
    // everything but the executor's wall-clock times
    out_a.executor = Default::default();
    out_b.executor = Default::default();
    assert_eq!(out_a, out_b);
    assert_eq!(store_a, store_b);
    // another seed draws other references
    let (calls_c, _, _) = run(12);
    assert_ne!(calls_a, calls_c);
}

/// Wraps a policy and replaces each of its responses with `Response::sampled`: the k-th response
/// it ever returns gets token ids `1000 k + j` and log-probs `-(k + j / 1000)`, j < its token
/// count, so every response's vectors are distinct and the token counts are unchanged.
struct Numbered<P> {
    inner: P,
    returned: Vec<Vec<Response>>,
}

impl<P: Policy> Policy for Numbered<P> {
    fn generate(&mut self, requests: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
        let start = self.returned.iter().map(Vec::len).sum::<usize>();
        let out: Vec<Response> = self
            .inner
            .generate(requests)?
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let k = start + i;
                let ids = (0..r.tokens).map(|j| (1000 * k + j) as u32).collect();
                let lps = (0..r.tokens)
                    .map(|j| -(k as f32 + j as f32 / 1000.0))
                    .collect();
                Response::sampled(r.text, ids, lps)
            })
            .collect();
        self.returned.push(out.clone());
        Ok(out)
    }
}

#[test]
fn samples_carry_the_sampled_token_ids_and_logprobs_in_order() {
    let mut plain_store = TaskStore::new(64, 7).unwrap();
    let plain = run_step(
        1,
        &mut plain_store,
        &mut script(),
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut store = TaskStore::new(64, 7).unwrap();
    let mut policy = Numbered {
        inner: script(),
        returned: vec![],
    };
    let out = run_step(
        1,
        &mut store,
        &mut policy,
        exec(),
        Rendering::Plain,
        &config(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // the rollouts, then the learnability samples
    assert_eq!(policy.returned.len(), 2);
    let rollouts = &policy.returned[0];
    assert_eq!((out.samples.len(), rollouts.len()), (24, 24));
    for (i, (s, r)) in out.samples.iter().zip(rollouts).enumerate() {
        assert_eq!(s.response, r.text, "#{i}");
        assert_eq!(s.token_ids, r.token_ids, "#{i}");
        assert_eq!(s.logprobs, r.logprobs, "#{i}");
        assert_eq!(s.tokens, s.token_ids.len(), "#{i}");
        assert!(!s.token_ids.is_empty(), "#{i}");
        // the i-th rollout, first token: id 1000 i, log-prob -i
        assert_eq!(
            (s.token_ids[0], s.logprobs[0]),
            ((1000 * i) as u32, -(i as f32))
        );
    }
    // no learnability sample's tokens reach the batch
    let learn: Vec<u32> = policy.returned[1]
        .iter()
        .flat_map(|r| r.token_ids.iter().copied())
        .collect();
    assert_eq!(learn.len(), 20 * 7);
    assert!(out
        .samples
        .iter()
        .all(|s| s.token_ids.iter().all(|t| !learn.contains(t))));
    // everything else is what the same step gives without the vectors (outcome details are
    // left out: an executor message may name a memory address)
    let key = |s: &azr_core::Sample| {
        (
            s.group,
            s.prompt.clone(),
            s.response.clone(),
            s.tokens,
            s.reward,
            s.advantage,
            s.outcome.is_success(),
        )
    };
    assert!(out
        .samples
        .iter()
        .map(key)
        .eq(plain.samples.iter().map(key)));
    assert_eq!((&out.tasks, &out.metrics), (&plain.tasks, &plain.metrics));
    assert!(plain.samples.iter().all(|s| s.token_ids.is_empty()));
    // a sample serialises with its vectors and reads back equal
    let json = serde_json::to_string(&out.samples[5]).unwrap();
    assert!(json.contains("\"token_ids\":[5000"), "{json}");
    assert_eq!(
        serde_json::from_str::<azr_core::Sample>(&json).unwrap(),
        out.samples[5]
    );
    let plain_json = serde_json::to_string(&plain.samples[5]).unwrap();
    assert!(!plain_json.contains("token_ids") && !plain_json.contains("logprobs"));
}
