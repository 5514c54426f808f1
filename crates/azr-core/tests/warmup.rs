//! The format warm-up on the real sandboxed executor: held prompts apart from the rounds' tasks,
//! verified responses kept and rewrapped into the strict format, unverified ones dropped.

mod common;
use azr_core::parse::{fenced_blocks, ThinkMode};
use azr_core::warmup::{rates, sample_and_judge, Plan, WarmupConfig};
use azr_core::{
    parse_response, GenRequest, Group, Injected, PolicyError, Rendering, Response, Role, TaskStore,
    TaskType,
};
use common::*;

fn wcfg() -> WarmupConfig {
    WarmupConfig {
        enabled: true,
        rounds: 1,
        batch: 4,
        held: 4,
        steps: 1,
        rows: 4,
        lr: 1e-5,
    }
}

/// The content of the first fenced block of `tag` in a prompt.
fn block<'a>(prompt: &'a str, tag: &str) -> &'a str {
    fenced_blocks(prompt)
        .into_iter()
        .find(|b| b.is(tag))
        .map(|b| b.content.trim())
        .unwrap_or_else(|| panic!("no {tag} block in {prompt}"))
}

/// Knows that every program is the identity (a store holding only the seeds): answers every
/// solver prompt correctly, proposes `f(a) = a * 2`. Every other response is scaffolded (the
/// environment closed its structure), and solve_deduction's third answer is wrong.
fn oracle(reqs: &[GenRequest]) -> Result<Vec<Response>, PolicyError> {
    let mut wrong = 0;
    Ok(reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let body = match (r.group.role, r.group.task_type) {
                (Role::Solve, TaskType::Deduction) => {
                    wrong += 1;
                    let input = block(&r.prompt, "input");
                    let out = if wrong == 3 { "'not it'" } else { input };
                    format!("```output\n{out}\n```")
                }
                (Role::Solve, TaskType::Abduction) => {
                    format!("```input\n{}\n```", block(&r.prompt, "output"))
                }
                (Role::Solve, TaskType::Induction) => {
                    "```python\ndef f(a):\n    return a\n```".to_string()
                }
                (Role::Propose, TaskType::Induction) => {
                    "```input\n1\n```\n```input\n'x'\n```\n```input\n[2]\n```\n```input\n3.5\n```\n\
                     ```message\nit gives back what it gets\n```"
                        .to_string()
                }
                (Role::Propose, _) => {
                    "```python\ndef f(a):\n    return a * 2\n```\n```input\n21\n```".to_string()
                }
            };
            let text = format!("trace it</think>\n<answer>\n{body}\n</answer>");
            let mut resp = Response::new(text, 10);
            resp.prompt_ids = vec![1, 2, 3];
            if i % 2 == 1 {
                resp.injected = vec![Injected {
                    token: 3,
                    text: "</think>".into(),
                }];
            }
            resp
        })
        .collect())
}

#[test]
fn held_prompts_are_apart_and_verified_responses_are_rewrapped() {
    let cfg = azr_core::StepConfig {
        proposer_batch: 4,
        think: ThinkMode::Required,
        ..config()
    };
    let mut store = TaskStore::new(64, 0).unwrap();
    let exec = exec();
    // A probe task: never a warm-up task.
    let mut probe = Vec::new();
    azr_core::probe::fill_derived(&mut probe, &store, exec, 2, 1);
    let w = wcfg();
    let mut plan = Plan::new(&mut store, exec, &probe, &w, &cfg, Rendering::Plain, 3).unwrap();

    let held = plan.held().to_vec();
    assert_eq!(held.len(), 6 * 4, "4 per role");
    let round = plan.round(&mut store, &w, &cfg, Rendering::Plain).unwrap();
    assert_eq!(round.len(), 6 * 4);
    // Deduction and abduction have derived pools: no held task is a round task, none a probe task.
    for g in [Group::SOLVE_DEDUCTION, Group::SOLVE_ABDUCTION] {
        for h in held.iter().filter(|p| p.group == g) {
            assert!(
                round.iter().all(|r| r.prompt != h.prompt),
                "held prompt reused: {}",
                h.prompt
            );
        }
    }
    for t in &probe {
        let asked = azr_core::PromptTask::solve(t).render_with(Rendering::Plain, cfg.think);
        assert!(
            held.iter().chain(&round).all(|p| p.prompt != asked),
            "{t:?}"
        );
    }
    // The induction pool is the seed alone: shared with the held prompts, and said so.
    assert_eq!(plan.shared_pools, vec![TaskType::Induction]);

    // Every solver prompt asks one of `solver_tasks`; a probe built after the warm-up, from
    // the same programs, asks none of them.
    let used = plan.solver_tasks();
    for p in held
        .iter()
        .chain(&round)
        .filter(|p| p.group.role == Role::Solve)
    {
        assert!(
            used.iter().any(|t| {
                azr_core::PromptTask::solve(t).render_with(Rendering::Plain, cfg.think) == p.prompt
            }),
            "{}",
            p.prompt
        );
    }
    let (after, proposed) = azr_core::probe::build(&store, exec, 8, 1, &used);
    assert_eq!((after.len(), proposed), (8, 0));
    assert!(after.iter().all(|t| !used.contains(t)), "{after:?}");
    // Excluded tasks the probe would have drawn are replaced by others.
    let (plain, _) = azr_core::probe::build(&store, exec, 8, 1, &[]);
    let (without, _) = azr_core::probe::build(&store, exec, 8, 1, &plain[..3]);
    assert_eq!(without.len(), 8);
    assert!(
        without.iter().all(|t| !plain[..3].contains(t)),
        "{without:?}"
    );
    assert!(
        plain[3..].iter().all(|t| without.contains(t)),
        "{without:?}"
    );

    let judged =
        sample_and_judge(&round, &mut oracle, exec, &store, &cfg, Rendering::Plain).unwrap();
    let r = rates(&judged);
    let ded = r["solve_deduction"];
    assert_eq!((ded.n, ded.verified), (4, 3), "{r:?}");
    for g in [
        "solve_abduction",
        "solve_induction",
        "propose_deduction",
        "propose_abduction",
    ] {
        assert_eq!(r[g].verified, 4, "{g}: {r:?}");
    }
    assert_eq!(r["propose_induction"].verified, 4, "{r:?}");
    // Scaffolded responses are not strict (every other one); the rest are.
    for (g, x) in &r {
        assert_eq!(x.strict, 2, "{g}: {r:?}");
    }
    let pcfg = cfg.parse_config();
    for j in &judged {
        match &j.example {
            None => assert!(!j.verified, "{j:?}"),
            Some(e) => {
                assert!(j.verified);
                assert_eq!(e.group, j.group);
                assert_eq!(e.prompt_ids, vec![1, 2, 3]);
                assert!(
                    e.response.starts_with("trace it\n</think>\n<answer>\n"),
                    "{e:?}"
                );
                assert!(parse_response(e.group, &e.response, &pcfg).is_ok(), "{e:?}");
            }
        }
    }
    assert_eq!(judged.iter().filter(|j| j.example.is_some()).count(), 23);
}
