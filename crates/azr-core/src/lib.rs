//! azr-core: Absolute Zero task logic (no model, no executor process management).
//!
//! - [`task`]: task types, roles, the six groups, triplets, induction records, parsed proposals.
//! - [`prompt`]: the prompts of the six groups and their plain / chat-template renderings.
//! - [`parse`]: format check, last `<answer>` block, fenced blocks, per-group payloads.
//! - [`validate`], [`induction`], [`reason`]: the validation pipeline from proposer text to a
//!   stored task or a rejection reason.
//! - [`extract`]: the reference's lenient answer extraction (what rewards read by default).
//! - [`scaffold`]: scaffolded decoding (the environment finishes a response's structure).
//! - [`score`]: solver answers checked by the executor.
//! - [`reward`]: solver and proposer rewards.
//! - [`trr`]: TRR++ advantages per task-role group.
//! - [`buffer`], [`store`], [`sample`]: task buffers, seeded sampling, JSONL checkpoints.
//! - [`policy`], [`step`], [`batch`], [`metrics`]: one self-play step with the policy as a
//!   parameter, its training batch and its metrics.
//! - [`probe`]: the frozen in-distribution probe (built at the start of a run, never trained on).
//! - [`seeding`]: the seeding phase's rounds (proposals only, before any update).
//! - [`warmup`]: the format warm-up (the model's own verified outputs, rewrapped into the exact
//!   format, for a cross-entropy fit before self-play).

pub mod batch;
pub mod buffer;
pub mod extract;
pub mod induction;
pub mod metrics;
pub mod parse;
pub mod policy;
pub mod probe;
pub mod prompt;
pub mod reason;
pub mod reward;
pub mod sample;
pub mod scaffold;
pub mod score;
pub mod seeding;
pub mod step;
pub mod store;
pub mod table;
pub mod task;
pub mod trr;
pub mod validate;
pub mod warmup;

pub use batch::{EstimatedTask, Outcome, Sample};
pub use buffer::{AddOutcome, BufferError, Entry, TaskBuffer};
pub use metrics::{GroupMetrics, ProposalMetrics, StepMetrics};
pub use parse::ThinkMode;
pub use parse::{
    parse_proposal, parse_response, parse_solver_answer, ParseConfig, ParseError, Parsed,
};
pub use policy::{GenRequest, Injected, Policy, PolicyError, Purpose, Response};
pub use prompt::{
    banned_headline, ChatMessage, ChatRole, ChatTemplate, PromptTask, Rendering, BANNED_SHOWN,
};
pub use reason::{Reason, Rejected};
pub use reward::{FormatReward, ProposerOutcome, RewardConfig, SolverOutcome};
pub use scaffold::{Continue, Ended, Scaffold};
pub use score::ScorePlan;
pub use seeding::{run_seeding_round, seeding_done, SeedingRound};
pub use step::{run_step, SolverTasks, StepConfig, StepError, StepOutput};
pub use store::{StoreError, TaskStore};
pub use task::{
    Group, InductionProposal, InductionRecord, IoPair, ProgramProposal, Proposal, Role,
    SolverAnswer, TaskType, Triplet, ValidTask,
};
pub use trr::{trr_advantages, Advantages, GroupStats, SequenceReward};
pub use validate::{validate_proposals, Proposed, ValidateConfig, Validated, ValidationPlan};
pub use warmup::WarmupConfig;
