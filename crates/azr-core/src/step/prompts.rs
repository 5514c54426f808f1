//! Building a step's prompts from the buffers: proposer prompts (with the program an induction
//! proposer is shown) and the solver tasks, with the identity seed standing in for an empty
//! buffer. RNG draws happen in a fixed order (deduction references, abduction references,
//! induction programs, then solver tasks per type), so a step is reproducible from the store.

use super::{StepConfig, StepError};
use crate::prompt::{PromptTask, Rendering};
use crate::store::TaskStore;
use crate::task::{TaskType, Triplet, ValidTask, IDENTITY_PROGRAM};
use crate::validate::Proposed;

/// A proposer prompt and, for induction, the program it shows.
#[derive(Debug, Clone)]
pub(crate) struct ProposerPrompt {
    pub task_type: TaskType,
    pub program: Option<String>,
    pub prompt: String,
}

impl ProposerPrompt {
    pub fn proposed<'a>(&'a self, response: &'a str) -> Proposed<'a> {
        match (self.task_type, &self.program) {
            (TaskType::Deduction, _) => Proposed::Deduction { response },
            (TaskType::Abduction, _) => Proposed::Abduction { response },
            (TaskType::Induction, program) => Proposed::Induction {
                program: program.as_deref().unwrap_or(IDENTITY_PROGRAM),
                response,
            },
        }
    }
}

pub(crate) fn proposer_prompts(
    store: &mut TaskStore,
    cfg: &StepConfig,
    rendering: Rendering<'_>,
    fallbacks: &mut usize,
) -> Result<Vec<ProposerPrompt>, StepError> {
    let b = cfg.proposers();
    let mut out = Vec::with_capacity(3 * b);
    for t in [TaskType::Deduction, TaskType::Abduction] {
        for _ in 0..b {
            let mut refs = store.references(t, cfg.references)?;
            if refs.is_empty() && cfg.references > 0 {
                refs.push(Triplet::identity_seed());
                *fallbacks += 1;
            }
            let task = match t {
                TaskType::Deduction => PromptTask::ProposeDeduction { references: &refs },
                _ => PromptTask::ProposeAbduction { references: &refs },
            };
            out.push(ProposerPrompt {
                task_type: t,
                program: None,
                prompt: task.render_with(rendering, cfg.think),
            });
        }
    }
    let mut programs = store.induction_programs(b);
    if programs.len() < b {
        *fallbacks += b - programs.len();
        programs.resize(b, IDENTITY_PROGRAM.to_string());
    }
    for program in programs {
        let prompt = PromptTask::ProposeInduction {
            program: &program,
            n_inputs: cfg.induction_inputs,
        }
        .render_with(rendering, cfg.think);
        out.push(ProposerPrompt {
            task_type: TaskType::Induction,
            program: Some(program),
            prompt,
        });
    }
    Ok(out)
}

/// B solver tasks per type (newest first, or informative first); the identity seed when a
/// buffer is empty.
pub(crate) fn solver_tasks(
    store: &mut TaskStore,
    cfg: &StepConfig,
    step: u64,
    fallbacks: &mut usize,
) -> Result<Vec<ValidTask>, StepError> {
    let (b, since) = (cfg.batch, step.saturating_sub(1));
    let informative = cfg.solver_tasks == super::SolverTasks::Informative;
    let mut out = Vec::with_capacity(3 * b);
    for t in TaskType::ALL {
        let mut tasks: Vec<ValidTask> = match t {
            TaskType::Induction => store
                .solver_induction(b, since, informative)
                .into_iter()
                .map(ValidTask::Induction)
                .collect(),
            _ => store
                .solver_triplets(t, b, since, informative)?
                .into_iter()
                .filter_map(|x| ValidTask::from_triplet(t, x))
                .collect(),
        };
        if tasks.len() < b {
            *fallbacks += b - tasks.len();
            tasks.resize(b, ValidTask::identity_seed(t));
        }
        out.extend(tasks);
    }
    Ok(out)
}
