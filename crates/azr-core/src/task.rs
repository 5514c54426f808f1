//! Task vocabulary: task types, roles, the six task-role groups, triplets, induction records and
//! the parsed forms of proposals and solver answers.
//!
//! All texts are kept exactly as written: an *input* is the literal text of the argument list as it
//! goes between the parentheses of `f(...)` (e.g. `'John', {'age': 20}`), an *output* is the `repr()`
//! text of the value `f` returned. Nothing here evaluates them.
//!
//! Deliberate deviations from the reference:
//! - The seed induction record carries ten (input, output) pairs of the identity program, so that the
//!   solver prompt built from it shows five pairs and hides five, like every proposed record
//!   (N = 10). The reference's seed is a single-pair record.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three kinds of reasoning task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskType {
    /// program + input -> output
    Deduction,
    /// program + output -> input
    Abduction,
    /// (input, output) pairs + message -> program
    Induction,
}

impl TaskType {
    /// All task types, in a fixed order.
    pub const ALL: [TaskType; 3] = [
        TaskType::Deduction,
        TaskType::Abduction,
        TaskType::Induction,
    ];

    /// Position of this type in [`TaskType::ALL`].
    pub fn index(self) -> usize {
        match self {
            TaskType::Deduction => 0,
            TaskType::Abduction => 1,
            TaskType::Induction => 2,
        }
    }

    /// Lower-case name (`"deduction"`, ...), the same as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Deduction => "deduction",
            TaskType::Abduction => "abduction",
            TaskType::Induction => "induction",
        }
    }
}

impl fmt::Display for TaskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which side of self-play a response was generated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Propose,
    Solve,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Propose, Role::Solve];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Propose => "propose",
            Role::Solve => "solve",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task-role group: TRR++ normalises advantages within each of the six groups separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Group {
    pub task_type: TaskType,
    pub role: Role,
}

impl Group {
    pub const PROPOSE_DEDUCTION: Group = Group::new(TaskType::Deduction, Role::Propose);
    pub const PROPOSE_ABDUCTION: Group = Group::new(TaskType::Abduction, Role::Propose);
    pub const PROPOSE_INDUCTION: Group = Group::new(TaskType::Induction, Role::Propose);
    pub const SOLVE_DEDUCTION: Group = Group::new(TaskType::Deduction, Role::Solve);
    pub const SOLVE_ABDUCTION: Group = Group::new(TaskType::Abduction, Role::Solve);
    pub const SOLVE_INDUCTION: Group = Group::new(TaskType::Induction, Role::Solve);

    /// The six groups; `ALL[g.index()] == g`.
    pub const ALL: [Group; 6] = [
        Group::PROPOSE_DEDUCTION,
        Group::PROPOSE_ABDUCTION,
        Group::PROPOSE_INDUCTION,
        Group::SOLVE_DEDUCTION,
        Group::SOLVE_ABDUCTION,
        Group::SOLVE_INDUCTION,
    ];

    pub const fn new(task_type: TaskType, role: Role) -> Group {
        Group { task_type, role }
    }

    /// Position of this group in [`Group::ALL`] (0..6), handy for per-group arrays.
    pub fn index(self) -> usize {
        let r = match self.role {
            Role::Propose => 0,
            Role::Solve => 3,
        };
        r + self.task_type.index()
    }

    /// Name used in logs and metrics, e.g. `propose_deduction`.
    pub fn name(self) -> &'static str {
        match (self.role, self.task_type) {
            (Role::Propose, TaskType::Deduction) => "propose_deduction",
            (Role::Propose, TaskType::Abduction) => "propose_abduction",
            (Role::Propose, TaskType::Induction) => "propose_induction",
            (Role::Solve, TaskType::Deduction) => "solve_deduction",
            (Role::Solve, TaskType::Abduction) => "solve_abduction",
            (Role::Solve, TaskType::Induction) => "solve_induction",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The identity program every buffer is seeded from.
pub const IDENTITY_PROGRAM: &str = "def f(a):\n    return a";

/// A deduction or abduction task: program, argument-list text, repr text of the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Triplet {
    pub program: String,
    pub input: String,
    pub output: String,
}

impl Triplet {
    pub fn new(
        program: impl Into<String>,
        input: impl Into<String>,
        output: impl Into<String>,
    ) -> Self {
        Triplet {
            program: program.into(),
            input: input.into(),
            output: output.into(),
        }
    }

    /// `def f(a):\n    return a` on `'Hello World'`.
    pub fn identity_seed() -> Self {
        Triplet::new(IDENTITY_PROGRAM, "'Hello World'", "'Hello World'")
    }
}

/// One (argument-list text, repr text of the result) pair of an induction record.
pub type IoPair = (String, String);

/// An induction task: a program, its (input, output) pairs and a natural-language message.
/// The solver sees the first half of the pairs (see [`InductionRecord::split`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InductionRecord {
    pub program: String,
    /// (argument-list text, repr text of the result), in the order the proposer wrote the inputs.
    pub pairs: Vec<IoPair>,
    pub message: String,
}

impl InductionRecord {
    /// Shown pairs (the first `len / 2`) and hidden pairs (the rest). With N = 10: five and five;
    /// with an odd count the hidden half gets the extra pair.
    pub fn split(&self) -> (&[IoPair], &[IoPair]) {
        self.pairs.split_at(self.pairs.len() / 2)
    }

    /// The identity program with ten literal inputs of different types.
    pub fn identity_seed() -> Self {
        let io = [
            "'Hello World'",
            "7",
            "[1, 2, 3]",
            "{'a': 1, 'b': 2}",
            "(4, 'x')",
            "True",
            "None",
            "-2.5",
            "'abc'",
            "[[0], []]",
        ];
        InductionRecord {
            program: IDENTITY_PROGRAM.to_string(),
            pairs: io.iter().map(|s| (s.to_string(), s.to_string())).collect(),
            message: "The function gives back its argument unchanged.".to_string(),
        }
    }
}

/// A task that passed validation, as the buffers store it and the solver is asked it: the
/// output of a triplet and every output of an induction record were computed by the executor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "task_type", rename_all = "lowercase")]
pub enum ValidTask {
    Deduction(Triplet),
    Abduction(Triplet),
    Induction(InductionRecord),
}

impl ValidTask {
    pub fn task_type(&self) -> TaskType {
        match self {
            ValidTask::Deduction(_) => TaskType::Deduction,
            ValidTask::Abduction(_) => TaskType::Abduction,
            ValidTask::Induction(_) => TaskType::Induction,
        }
    }

    /// The program of the task (for induction: the hidden program the solver must rewrite).
    pub fn program(&self) -> &str {
        match self {
            ValidTask::Deduction(t) | ValidTask::Abduction(t) => &t.program,
            ValidTask::Induction(r) => &r.program,
        }
    }

    /// A deduction or abduction task of `task_type` holding `triplet`; `None` for induction.
    pub fn from_triplet(task_type: TaskType, triplet: Triplet) -> Option<ValidTask> {
        match task_type {
            TaskType::Deduction => Some(ValidTask::Deduction(triplet)),
            TaskType::Abduction => Some(ValidTask::Abduction(triplet)),
            TaskType::Induction => None,
        }
    }

    /// The identity seed of `task_type` (the fallback when a buffer has nothing to give).
    pub fn identity_seed(task_type: TaskType) -> ValidTask {
        match task_type {
            TaskType::Deduction => ValidTask::Deduction(Triplet::identity_seed()),
            TaskType::Abduction => ValidTask::Abduction(Triplet::identity_seed()),
            TaskType::Induction => ValidTask::Induction(InductionRecord::identity_seed()),
        }
    }
}

/// A parsed deduction or abduction proposal: a program and one input for it. The output is not
/// part of a proposal: the executor computes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProgramProposal {
    pub program: String,
    pub input: String,
}

/// A parsed induction proposal: N inputs for the program that was shown, and a message.
/// The program is not part of the response: it came from the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InductionProposal {
    pub inputs: Vec<String>,
    pub message: String,
}

/// A parsed proposal of any task type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "task_type", rename_all = "lowercase")]
pub enum Proposal {
    Deduction(ProgramProposal),
    Abduction(ProgramProposal),
    Induction(InductionProposal),
}

impl Proposal {
    pub fn task_type(&self) -> TaskType {
        match self {
            Proposal::Deduction(_) => TaskType::Deduction,
            Proposal::Abduction(_) => TaskType::Abduction,
            Proposal::Induction(_) => TaskType::Induction,
        }
    }
}

/// A parsed solver answer: the payload of the block the task type asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "task_type", content = "answer", rename_all = "lowercase")]
pub enum SolverAnswer {
    /// Predicted output (repr text) — a deduction answer.
    Deduction(String),
    /// Predicted argument-list text — an abduction answer.
    Abduction(String),
    /// Program defining `f` — an induction answer.
    Induction(String),
}

impl SolverAnswer {
    pub fn task_type(&self) -> TaskType {
        match self {
            SolverAnswer::Deduction(_) => TaskType::Deduction,
            SolverAnswer::Abduction(_) => TaskType::Abduction,
            SolverAnswer::Induction(_) => TaskType::Induction,
        }
    }

    pub fn text(&self) -> &str {
        match self {
            SolverAnswer::Deduction(s)
            | SolverAnswer::Abduction(s)
            | SolverAnswer::Induction(s) => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_index_matches_all() {
        for (i, g) in Group::ALL.iter().enumerate() {
            assert_eq!(g.index(), i, "{g}");
        }
        let names: std::collections::HashSet<_> = Group::ALL.iter().map(|g| g.name()).collect();
        assert_eq!(names.len(), 6);
    }

    #[test]
    fn serde_forms() {
        let g = Group::SOLVE_ABDUCTION;
        let j = serde_json::to_string(&g).unwrap();
        assert_eq!(j, r#"{"task_type":"abduction","role":"solve"}"#);
        assert_eq!(serde_json::from_str::<Group>(&j).unwrap(), g);

        let t = Triplet::identity_seed();
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(
            j,
            r#"{"program":"def f(a):\n    return a","input":"'Hello World'","output":"'Hello World'"}"#
        );
        assert_eq!(serde_json::from_str::<Triplet>(&j).unwrap(), t);

        let r = InductionRecord {
            program: "def f(x):\n    return x + 1".into(),
            pairs: vec![("1".into(), "2".into())],
            message: "adds one".into(),
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"program":"def f(x):\n    return x + 1","pairs":[["1","2"]],"message":"adds one"}"#
        );
        assert_eq!(serde_json::from_str::<InductionRecord>(&j).unwrap(), r);

        let p = Proposal::Abduction(ProgramProposal {
            program: "def f(a):\n    return a".into(),
            input: "1".into(),
        });
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(
            j,
            r#"{"task_type":"abduction","program":"def f(a):\n    return a","input":"1"}"#
        );
        assert_eq!(serde_json::from_str::<Proposal>(&j).unwrap(), p);

        let v = ValidTask::Deduction(Triplet::identity_seed());
        let j = serde_json::to_string(&v).unwrap();
        assert_eq!(
            j,
            r#"{"task_type":"deduction","program":"def f(a):\n    return a","input":"'Hello World'","output":"'Hello World'"}"#
        );
        assert_eq!(serde_json::from_str::<ValidTask>(&j).unwrap(), v);
        for t in TaskType::ALL {
            assert_eq!(ValidTask::identity_seed(t).task_type(), t);
            assert_eq!(ValidTask::identity_seed(t).program(), IDENTITY_PROGRAM);
        }
        assert_eq!(
            ValidTask::from_triplet(TaskType::Induction, Triplet::identity_seed()),
            None
        );

        let a = SolverAnswer::Deduction("[1, 2]".into());
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(j, r#"{"task_type":"deduction","answer":"[1, 2]"}"#);
        assert_eq!(serde_json::from_str::<SolverAnswer>(&j).unwrap(), a);
    }

    #[test]
    fn seeds_are_identity() {
        let t = Triplet::identity_seed();
        assert_eq!(t.program, "def f(a):\n    return a");
        assert_eq!(t.input, "'Hello World'");
        assert_eq!(t.output, "'Hello World'");
        let r = InductionRecord::identity_seed();
        assert_eq!(r.program, t.program);
        assert_eq!(r.pairs.len(), 10);
        assert!(r.pairs.iter().all(|(i, o)| i == o));
        let (shown, hidden) = r.split();
        assert_eq!((shown.len(), hidden.len()), (5, 5));
        assert_eq!(shown[0].0, "'Hello World'");
    }

    #[test]
    fn split_odd_gives_hidden_the_extra() {
        let r = InductionRecord {
            program: String::new(),
            pairs: (0..3).map(|i| (i.to_string(), i.to_string())).collect(),
            message: String::new(),
        };
        let (s, h) = r.split();
        assert_eq!((s.len(), h.len()), (1, 2));
        assert_eq!(s[0].0, "0");
        let empty = InductionRecord { pairs: vec![], ..r };
        assert_eq!(empty.split().0.len() + empty.split().1.len(), 0);
    }
}
