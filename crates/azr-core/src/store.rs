//! The three task buffers and the RNG that samples from them, with checkpoint persistence.
//!
//! A checkpoint directory holds `deduction.jsonl`, `abduction.jsonl`, `induction.jsonl` (one
//! [`Entry`](crate::buffer::Entry) per line, oldest first) and `store.json` (format version,
//! capacity and the exact ChaCha8 RNG state), so a reloaded store samples exactly what the
//! original would have. Each file is written to a temporary name and renamed into place.
//!
//! Deliberate deviations from the reference:
//! - The induction proposer's programs are drawn uniformly from the *distinct* programs of the
//!   deduction and abduction buffers (a program stored in both counts once).
//! - The seed induction record has ten pairs (see [`crate::task`]).

use crate::buffer::{AddOutcome, BufferError, TaskBuffer};
use crate::sample;
use crate::task::{InductionRecord, TaskType, Triplet, ValidTask};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

/// Reference buffer cap.
pub const DEFAULT_CAP: usize = 16384;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("{0} is not a triplet task type")]
    NotTriplet(TaskType),
    #[error("store.json: {0}")]
    State(#[source] serde_json::Error),
    #[error("store.json: unsupported format version {0}")]
    Version(u32),
}

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    cap: usize,
    rng: ChaCha8Rng,
}

/// Deduction, abduction and induction buffers plus the sampling RNG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStore {
    pub deduction: TaskBuffer<Triplet>,
    pub abduction: TaskBuffer<Triplet>,
    pub induction: TaskBuffer<InductionRecord>,
    pub rng: ChaCha8Rng,
    /// Tasks held out of training (the probe's): never stored, never sampled. Not saved: the
    /// run re-applies [`hold_out`](Self::hold_out) from its probe file when it resumes.
    held: HashSet<ValidTask>,
}

impl TaskStore {
    /// Buffers of capacity `cap`, each seeded (at step 0) with its identity task; RNG from `seed`.
    pub fn new(cap: usize, seed: u64) -> Result<Self, StoreError> {
        let mut s = TaskStore {
            deduction: TaskBuffer::new(cap)?,
            abduction: TaskBuffer::new(cap)?,
            induction: TaskBuffer::new(cap)?,
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: HashSet::new(),
        };
        s.deduction.push(Triplet::identity_seed(), 0);
        s.abduction.push(Triplet::identity_seed(), 0);
        s.induction.push(InductionRecord::identity_seed(), 0);
        Ok(s)
    }

    /// The deduction or abduction buffer.
    pub fn triplets(&self, t: TaskType) -> Result<&TaskBuffer<Triplet>, StoreError> {
        match t {
            TaskType::Deduction => Ok(&self.deduction),
            TaskType::Abduction => Ok(&self.abduction),
            TaskType::Induction => Err(StoreError::NotTriplet(t)),
        }
    }

    /// Splits the borrow: the triplet buffer of `t` and the RNG.
    fn triplets_and_rng(
        &mut self,
        t: TaskType,
    ) -> Result<(&mut TaskBuffer<Triplet>, &mut ChaCha8Rng), StoreError> {
        match t {
            TaskType::Deduction => Ok((&mut self.deduction, &mut self.rng)),
            TaskType::Abduction => Ok((&mut self.abduction, &mut self.rng)),
            TaskType::Induction => Err(StoreError::NotTriplet(t)),
        }
    }

    /// Adds a validated deduction or abduction triplet.
    pub fn add_triplet(
        &mut self,
        t: TaskType,
        triplet: Triplet,
        step: u64,
    ) -> Result<AddOutcome, StoreError> {
        Ok(self.triplets_and_rng(t)?.0.push(triplet, step))
    }

    pub fn add_induction(&mut self, record: InductionRecord, step: u64) -> AddOutcome {
        self.induction.push(record, step)
    }

    /// Removes `tasks` from the buffers and refuses them from now on: a held-out task is never
    /// a solver task, a reference or a stored proposal (a re-proposal counts as a duplicate).
    pub fn hold_out(&mut self, tasks: &[ValidTask]) {
        for t in tasks {
            match t {
                ValidTask::Deduction(x) => self.deduction.remove(x),
                ValidTask::Abduction(x) => self.abduction.remove(x),
                ValidTask::Induction(x) => self.induction.remove(x),
            };
            self.held.insert(t.clone());
        }
    }

    /// Whether an identical task is stored in its buffer or held out.
    pub fn contains(&self, task: &ValidTask) -> bool {
        if self.held.contains(task) {
            return true;
        }
        match task {
            ValidTask::Deduction(t) => self.deduction.contains(t),
            ValidTask::Abduction(t) => self.abduction.contains(t),
            ValidTask::Induction(r) => self.induction.contains(r),
        }
    }

    /// Adds a validated task to its buffer.
    pub fn add(&mut self, task: ValidTask, step: u64) -> AddOutcome {
        self.add_with(task, step, None)
    }

    /// Adds a validated task with its measured solve rate (`solved` of `attempts`).
    pub fn add_measured(
        &mut self,
        task: ValidTask,
        step: u64,
        solved: usize,
        attempts: usize,
    ) -> AddOutcome {
        self.add_with(task, step, Some((solved, attempts)))
    }

    fn add_with(
        &mut self,
        task: ValidTask,
        step: u64,
        solved: Option<(usize, usize)>,
    ) -> AddOutcome {
        if self.held.contains(&task) {
            return AddOutcome::Duplicate;
        }
        match task {
            ValidTask::Deduction(t) => self.deduction.push_measured(t, step, solved),
            ValidTask::Abduction(t) => self.abduction.push_measured(t, step, solved),
            ValidTask::Induction(r) => self.induction.push_measured(r, step, solved),
        }
    }

    /// Tasks in the buffer of `t`.
    pub fn len(&self, t: TaskType) -> usize {
        match t {
            TaskType::Deduction => self.deduction.len(),
            TaskType::Abduction => self.abduction.len(),
            TaskType::Induction => self.induction.len(),
        }
    }

    /// `min(k, len)` distinct reference triplets for a deduction/abduction proposer prompt.
    pub fn references(&mut self, t: TaskType, k: usize) -> Result<Vec<Triplet>, StoreError> {
        let (b, rng) = self.triplets_and_rng(t)?;
        Ok(b.sample_distinct(k, rng))
    }

    /// `k` deduction/abduction solver tasks, newest first (added at `new_since` or later);
    /// with `informative`, tasks with a solve rate in (0, 1) before those.
    pub fn solver_triplets(
        &mut self,
        t: TaskType,
        k: usize,
        new_since: u64,
        informative: bool,
    ) -> Result<Vec<Triplet>, StoreError> {
        let (b, rng) = self.triplets_and_rng(t)?;
        Ok(if informative {
            b.sample_informative_first(k, new_since, rng)
        } else {
            b.sample_newest_first(k, new_since, rng)
        })
    }

    /// `k` induction solver tasks, as [`solver_triplets`](Self::solver_triplets).
    pub fn solver_induction(
        &mut self,
        k: usize,
        new_since: u64,
        informative: bool,
    ) -> Vec<InductionRecord> {
        if informative {
            self.induction
                .sample_informative_first(k, new_since, &mut self.rng)
        } else {
            self.induction
                .sample_newest_first(k, new_since, &mut self.rng)
        }
    }

    /// Distinct programs of the deduction buffer then the abduction buffer, first occurrence order.
    pub fn program_union(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        self.deduction
            .entries()
            .chain(self.abduction.entries())
            .map(|e| e.task.program.as_str())
            .filter(|p| seen.insert(*p))
            .collect()
    }

    /// `k` programs for induction proposer prompts, uniform over [`program_union`](Self::program_union),
    /// without replacement, refilled when `k` exceeds it. Exactly `k` while any program exists.
    pub fn induction_programs(&mut self, k: usize) -> Vec<String> {
        let union: Vec<String> = self.program_union().into_iter().map(String::from).collect();
        sample::refill(union.len(), k, &mut self.rng)
            .into_iter()
            .filter_map(|i| union.get(i).cloned())
            .collect()
    }

    /// Writes the checkpoint files into `dir` (created if missing).
    pub fn save(&self, dir: &Path) -> Result<(), StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        write_atomic(dir, "deduction.jsonl", |w| {
            self.deduction.write_jsonl(w, "deduction.jsonl")
        })?;
        write_atomic(dir, "abduction.jsonl", |w| {
            self.abduction.write_jsonl(w, "abduction.jsonl")
        })?;
        write_atomic(dir, "induction.jsonl", |w| {
            self.induction.write_jsonl(w, "induction.jsonl")
        })?;
        let state = State {
            version: FORMAT_VERSION,
            cap: self.deduction.cap(),
            rng: self.rng.clone(),
        };
        write_atomic(dir, "store.json", |w| {
            serde_json::to_writer_pretty(&mut *w, &state).map_err(|source| BufferError::Json {
                what: "store.json".into(),
                line: 1,
                source,
            })?;
            w.flush().map_err(|e| io(Path::new("store.json"), e))
        })
    }

    /// Reloads what [`save`](Self::save) wrote: same tasks, same order, same RNG state.
    pub fn load(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("store.json");
        let f = File::open(&path).map_err(|e| io(&path, e))?;
        let state: State = serde_json::from_reader(BufReader::new(f)).map_err(StoreError::State)?;
        if state.version != FORMAT_VERSION {
            return Err(StoreError::Version(state.version));
        }
        Ok(TaskStore {
            deduction: read(dir, "deduction.jsonl", state.cap)?,
            abduction: read(dir, "abduction.jsonl", state.cap)?,
            induction: read(dir, "induction.jsonl", state.cap)?,
            rng: state.rng,
            held: HashSet::new(),
        })
    }
}

fn io(path: &Path, source: std::io::Error) -> BufferError {
    BufferError::Io {
        what: path.display().to_string(),
        source,
    }
}

fn read<T: crate::buffer::Task>(
    dir: &Path,
    name: &str,
    cap: usize,
) -> Result<TaskBuffer<T>, BufferError> {
    let path = dir.join(name);
    let f = File::open(&path).map_err(|e| io(&path, e))?;
    TaskBuffer::read_jsonl(BufReader::new(f), cap, name)
}

fn write_atomic(
    dir: &Path,
    name: &str,
    body: impl FnOnce(&mut BufWriter<File>) -> Result<(), BufferError>,
) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    let mut w = BufWriter::new(f);
    body(&mut w)?;
    let f = w.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    let dest = dir.join(name);
    std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(i: usize) -> Triplet {
        Triplet::new(
            format!("def f(a):\n    return a * {i}"),
            "2",
            (2 * i).to_string(),
        )
    }

    #[test]
    fn seeded_with_identity() {
        let s = TaskStore::new(8, 0).unwrap();
        assert_eq!(s.deduction.len(), 1);
        assert_eq!(s.abduction.len(), 1);
        assert_eq!(s.induction.len(), 1);
        assert!(s.deduction.contains(&Triplet::identity_seed()));
        assert!(s.abduction.contains(&Triplet::identity_seed()));
        assert!(s.induction.contains(&InductionRecord::identity_seed()));
        assert!(matches!(
            TaskStore::new(0, 0),
            Err(StoreError::Buffer(BufferError::ZeroCapacity))
        ));
    }

    #[test]
    fn valid_task_add_and_contains() {
        let mut s = TaskStore::new(8, 0).unwrap();
        for t in TaskType::ALL {
            assert!(s.contains(&ValidTask::identity_seed(t)));
            assert_eq!(s.len(t), 1);
        }
        let d = ValidTask::Deduction(trip(3));
        assert!(!s.contains(&d));
        assert_eq!(s.add(d.clone(), 2), AddOutcome::Added);
        assert!(s.contains(&d));
        // the same triplet is a different task in the other buffer
        assert!(!s.contains(&ValidTask::Abduction(trip(3))));
        assert_eq!(s.add(d, 3), AddOutcome::Duplicate);
        assert_eq!(s.len(TaskType::Deduction), 2);
    }

    #[test]
    fn triplet_type_checks() {
        let mut s = TaskStore::new(8, 0).unwrap();
        assert!(matches!(
            s.add_triplet(TaskType::Induction, trip(1), 1),
            Err(StoreError::NotTriplet(TaskType::Induction))
        ));
        assert!(s.references(TaskType::Induction, 2).is_err());
        assert_eq!(
            s.add_triplet(TaskType::Abduction, trip(1), 1).unwrap(),
            AddOutcome::Added
        );
        assert_eq!(s.abduction.len(), 2);
        assert_eq!(s.deduction.len(), 1);
    }

    #[test]
    fn same_seed_same_samples() {
        let mk = |seed| {
            let mut s = TaskStore::new(64, seed).unwrap();
            for i in 0..20 {
                s.add_triplet(TaskType::Deduction, trip(i), 1).unwrap();
            }
            s
        };
        let (mut a, mut b, mut c) = (mk(5), mk(5), mk(6));
        let ra = a.references(TaskType::Deduction, 6).unwrap();
        assert_eq!(ra, b.references(TaskType::Deduction, 6).unwrap());
        assert_ne!(ra, c.references(TaskType::Deduction, 6).unwrap());
        assert_eq!(
            a.solver_triplets(TaskType::Deduction, 10, 2, false)
                .unwrap(),
            b.solver_triplets(TaskType::Deduction, 10, 2, false)
                .unwrap()
        );
    }

    #[test]
    fn reference_count_is_bounded_by_buffer() {
        let mut s = TaskStore::new(8, 1).unwrap();
        assert_eq!(
            s.references(TaskType::Deduction, 6).unwrap(),
            vec![Triplet::identity_seed()]
        );
        // solver sampling never returns fewer than asked
        let tasks = s.solver_triplets(TaskType::Abduction, 5, 1, false).unwrap();
        assert_eq!(tasks, vec![Triplet::identity_seed(); 5]);
        assert_eq!(s.solver_induction(3, 1, false).len(), 3);
    }

    #[test]
    fn induction_programs_from_union() {
        let mut s = TaskStore::new(8, 2).unwrap();
        s.add_triplet(TaskType::Deduction, trip(1), 1).unwrap();
        s.add_triplet(TaskType::Abduction, trip(2), 1).unwrap();
        // same program as trip(1) with another input: counted once
        let mut same = trip(1);
        same.input = "3".into();
        same.output = "3".into();
        s.add_triplet(TaskType::Abduction, same, 1).unwrap();
        let union = s.program_union();
        assert_eq!(
            union,
            vec![
                "def f(a):\n    return a",
                "def f(a):\n    return a * 1",
                "def f(a):\n    return a * 2"
            ]
        );
        let progs = s.induction_programs(3);
        assert_eq!(progs.len(), 3);
        assert_eq!(progs.iter().collect::<HashSet<_>>().len(), 3);
        assert_eq!(s.induction_programs(7).len(), 7);
    }

    #[test]
    fn save_and_load_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = TaskStore::new(4, 42).unwrap();
        for i in 0..6 {
            s.add_triplet(TaskType::Deduction, trip(i), i as u64)
                .unwrap();
        }
        s.add_induction(
            InductionRecord {
                program: "def f(x):\n    return -x".into(),
                pairs: vec![("1".into(), "-1".into()), ("'é😀'".into(), "'x'".into())],
                message: "négation\nline two".into(),
            },
            3,
        );
        // advance the RNG so its state is not the initial one
        s.references(TaskType::Deduction, 2).unwrap();
        s.save(dir.path()).unwrap();
        let mut back = TaskStore::load(dir.path()).unwrap();
        assert_eq!(back, s);
        let order: Vec<_> = back.deduction.entries().map(|e| e.task.clone()).collect();
        assert_eq!(order, (2..6).map(trip).collect::<Vec<_>>());
        // identical future samples
        assert_eq!(
            back.solver_triplets(TaskType::Deduction, 6, 5, false)
                .unwrap(),
            s.solver_triplets(TaskType::Deduction, 6, 5, false).unwrap()
        );
        assert_eq!(back.induction_programs(4), s.induction_programs(4));
        assert_eq!(back.rng, s.rng);
        // saving again over the old checkpoint works and leaves no temporary files
        back.save(dir.path()).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "abduction.jsonl",
                "deduction.jsonl",
                "induction.jsonl",
                "store.json"
            ]
        );
    }

    #[test]
    fn load_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(TaskStore::load(dir.path()).is_err());
        TaskStore::new(4, 0).unwrap().save(dir.path()).unwrap();
        let p = dir.path().join("store.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("\"version\": 1", "\"version\": 99")).unwrap();
        assert!(matches!(
            TaskStore::load(dir.path()),
            Err(StoreError::Version(99))
        ));
    }
}
