//! One task buffer: insertion-ordered, deduplicated, capped, with seeded sampling and JSON Lines
//! persistence. [`crate::store::TaskStore`] holds the three buffers and the RNG.
//!
//! Deliberate deviations from the reference:
//! - When full, the **oldest** task is evicted to make room (the reference drops the new one).
//! - Identical tasks (all fields equal, texts compared exactly) are stored once; a duplicate add
//!   changes nothing (its original step is kept).
//! - Sampling asked for more tasks than the buffer holds refills by resampling (rounds without
//!   replacement) instead of failing; it returns fewer only when the buffer is empty.
//! - Every sampler takes the RNG explicitly; indices come from [`crate::sample`].

use crate::sample;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::io::{BufRead, Write};

/// What a buffer can hold.
pub trait Task: Clone + Eq + Hash + Serialize + DeserializeOwned {}
impl<T: Clone + Eq + Hash + Serialize + DeserializeOwned> Task for T {}

/// A stored task with the step at which it was added (seeds: step 0). One JSONL line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<T> {
    pub added_at: u64,
    pub task: T,
    /// The measured solve rate: (solved, attempts) of the learnability samples when it was
    /// proposed (none for seeds and seeding-phase tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solved: Option<(usize, usize)>,
}

impl<T> Entry<T> {
    /// A solve rate strictly between 0 and 1: answers to it can disagree.
    pub fn informative(&self) -> bool {
        matches!(self.solved, Some((s, n)) if s > 0 && s < n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// Added, and the oldest task was evicted to make room.
    AddedEvicting,
    /// Already present: nothing changed.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("buffer capacity must be at least 1")]
    ZeroCapacity,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} line {line}: {source}")]
    Json {
        what: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what} line {line}: duplicate task")]
    DuplicateLine { what: String, line: usize },
    #[error("{what}: more than {cap} tasks")]
    OverCapacity { what: String, cap: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskBuffer<T: Task> {
    cap: usize,
    entries: VecDeque<Entry<T>>,
    seen: HashSet<T>,
}

impl<T: Task> TaskBuffer<T> {
    /// An empty buffer holding at most `cap` tasks.
    pub fn new(cap: usize) -> Result<Self, BufferError> {
        if cap == 0 {
            return Err(BufferError::ZeroCapacity);
        }
        Ok(TaskBuffer {
            cap,
            entries: VecDeque::new(),
            seen: HashSet::new(),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, task: &T) -> bool {
        self.seen.contains(task)
    }

    /// Entries oldest first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &Entry<T>> + '_ {
        self.entries.iter()
    }

    /// Adds `task` (added at `step`) unless an identical one is present; evicts the oldest when
    /// full.
    pub fn push(&mut self, task: T, step: u64) -> AddOutcome {
        self.push_measured(task, step, None)
    }

    /// [`push`](Self::push) with the task's measured solve rate (solved, attempts).
    pub fn push_measured(
        &mut self,
        task: T,
        step: u64,
        solved: Option<(usize, usize)>,
    ) -> AddOutcome {
        if self.seen.contains(&task) {
            return AddOutcome::Duplicate;
        }
        let mut outcome = AddOutcome::Added;
        if self.entries.len() >= self.cap {
            if let Some(old) = self.entries.pop_front() {
                self.seen.remove(&old.task);
            }
            outcome = AddOutcome::AddedEvicting;
        }
        self.seen.insert(task.clone());
        self.entries.push_back(Entry {
            added_at: step,
            task,
            solved,
        });
        outcome
    }

    /// Removes `task`; whether it was present.
    pub fn remove(&mut self, task: &T) -> bool {
        if !self.seen.remove(task) {
            return false;
        }
        self.entries.retain(|e| &e.task != task);
        true
    }

    fn get(&self, i: usize) -> Option<T> {
        self.entries.get(i).map(|e| e.task.clone())
    }

    fn pick(&self, idx: impl IntoIterator<Item = usize>) -> Vec<T> {
        idx.into_iter().filter_map(|i| self.get(i)).collect()
    }

    /// `min(k, len)` distinct tasks, uniformly without replacement (for the proposer's reference
    /// triplets, where showing one task twice would add nothing).
    pub fn sample_distinct<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> Vec<T> {
        self.pick(sample::distinct(self.len(), k, rng))
    }

    /// Exactly `k` tasks while the buffer is non-empty: uniform without replacement, refilled by
    /// further rounds when `k > len`.
    pub fn sample<R: Rng + ?Sized>(&self, k: usize, rng: &mut R) -> Vec<T> {
        self.pick(sample::refill(self.len(), k, rng))
    }

    /// Solver sampling: first the tasks added at step `new_since` or later (all of them in
    /// insertion order if they fit, else `k` of them uniformly), then uniformly without
    /// replacement from the other tasks, then — only if `k` exceeds the buffer — further uniform
    /// rounds over the whole buffer. Exactly `k` tasks while the buffer is non-empty.
    pub fn sample_newest_first<R: Rng + ?Sized>(
        &self,
        k: usize,
        new_since: u64,
        rng: &mut R,
    ) -> Vec<T> {
        let (new, old): (Vec<usize>, Vec<usize>) =
            (0..self.len()).partition(|&i| self.entries[i].added_at >= new_since);
        let mut idx: Vec<usize> = if new.len() > k {
            sample::distinct(new.len(), k, rng)
                .into_iter()
                .map(|j| new[j])
                .collect()
        } else {
            new
        };
        let want_old = k - idx.len();
        idx.extend(
            sample::distinct(old.len(), want_old, rng)
                .into_iter()
                .map(|j| old[j]),
        );
        let missing = k - idx.len();
        idx.extend(sample::refill(self.len(), missing, rng));
        self.pick(idx)
    }

    /// Solver sampling that prefers informative tasks ([`Entry::informative`]): up to `k` of
    /// them uniformly without replacement, the rest as [`sample_newest_first`](Self::sample_newest_first).
    pub fn sample_informative_first<R: Rng + ?Sized>(
        &self,
        k: usize,
        new_since: u64,
        rng: &mut R,
    ) -> Vec<T> {
        let informative: Vec<usize> = (0..self.len())
            .filter(|&i| self.entries[i].informative())
            .collect();
        let idx: Vec<usize> = sample::distinct(informative.len(), k, rng)
            .into_iter()
            .map(|j| informative[j])
            .collect();
        let mut out = self.pick(idx);
        let rest = k - out.len();
        if rest > 0 {
            out.extend(self.sample_newest_first(rest, new_since, rng));
        }
        out
    }

    /// Writes one JSON object per line (`{"added_at":..,"task":{..}}`), oldest first.
    pub fn write_jsonl<W: Write>(&self, mut w: W, what: &str) -> Result<(), BufferError> {
        let io = |source| BufferError::Io {
            what: what.to_string(),
            source,
        };
        for (n, e) in self.entries.iter().enumerate() {
            serde_json::to_writer(&mut w, e).map_err(|source| BufferError::Json {
                what: what.to_string(),
                line: n + 1,
                source,
            })?;
            w.write_all(b"\n").map_err(io)?;
        }
        w.flush().map_err(io)
    }

    /// Reads what [`write_jsonl`](Self::write_jsonl) wrote: same order, same contents. Blank lines
    /// are skipped; a duplicate task or more than `cap` tasks is an error.
    pub fn read_jsonl<R: BufRead>(r: R, cap: usize, what: &str) -> Result<Self, BufferError> {
        let mut buf = TaskBuffer::new(cap)?;
        for (n, line) in r.lines().enumerate() {
            let line = line.map_err(|source| BufferError::Io {
                what: what.to_string(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let e: Entry<T> = serde_json::from_str(&line).map_err(|source| BufferError::Json {
                what: what.to_string(),
                line: n + 1,
                source,
            })?;
            if buf.len() >= cap {
                return Err(BufferError::OverCapacity {
                    what: what.to_string(),
                    cap,
                });
            }
            if buf.push_measured(e.task, e.added_at, e.solved) == AddOutcome::Duplicate {
                return Err(BufferError::DuplicateLine {
                    what: what.to_string(),
                    line: n + 1,
                });
            }
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Triplet;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;

    fn t(i: usize) -> Triplet {
        Triplet::new(
            format!("def f(a):\n    return a + {i}"),
            "1",
            (1 + i).to_string(),
        )
    }

    fn filled(n: usize, cap: usize) -> TaskBuffer<Triplet> {
        let mut b = TaskBuffer::new(cap).unwrap();
        for i in 0..n {
            b.push(t(i), i as u64);
        }
        b
    }

    #[test]
    fn zero_capacity_is_an_error() {
        assert!(matches!(
            TaskBuffer::<Triplet>::new(0),
            Err(BufferError::ZeroCapacity)
        ));
    }

    #[test]
    fn dedup_and_eviction() {
        let mut b = TaskBuffer::new(3).unwrap();
        assert_eq!(b.push(t(0), 0), AddOutcome::Added);
        assert_eq!(b.push(t(0), 5), AddOutcome::Duplicate);
        assert_eq!(b.len(), 1);
        assert_eq!(b.entries().next().unwrap().added_at, 0);
        assert_eq!(b.push(t(1), 1), AddOutcome::Added);
        assert_eq!(b.push(t(2), 1), AddOutcome::Added);
        assert_eq!(b.push(t(3), 2), AddOutcome::AddedEvicting);
        let tasks: Vec<_> = b.entries().map(|e| e.task.clone()).collect();
        assert_eq!(tasks, vec![t(1), t(2), t(3)]);
        assert!(!b.contains(&t(0)));
        // an evicted task may come back, as the newest
        assert_eq!(b.push(t(0), 3), AddOutcome::AddedEvicting);
        let tasks: Vec<_> = b.entries().map(|e| e.task.clone()).collect();
        assert_eq!(tasks, vec![t(2), t(3), t(0)]);
        // a triplet differing in any field is a different task
        let mut u = t(2);
        u.output.push(' ');
        assert_eq!(b.push(u, 4), AddOutcome::AddedEvicting);
    }

    #[test]
    fn sample_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let empty = TaskBuffer::<Triplet>::new(4).unwrap();
        assert!(empty.sample(3, &mut rng).is_empty());
        assert!(empty.sample_newest_first(3, 0, &mut rng).is_empty());
        assert!(empty.sample_distinct(3, &mut rng).is_empty());
        let b = filled(5, 10);
        let s = b.sample(3, &mut rng);
        assert_eq!(s.len(), 3);
        assert_eq!(s.iter().collect::<HashSet<_>>().len(), 3);
        let s = b.sample(12, &mut rng);
        assert_eq!(s.len(), 12);
        // the first round covers all five tasks
        assert_eq!(s[..5].iter().collect::<HashSet<_>>().len(), 5);
        assert_eq!(b.sample_distinct(12, &mut rng).len(), 5);
        assert_eq!(b.sample(0, &mut rng).len(), 0);
    }

    #[test]
    fn newest_first() {
        // tasks 0..6 added at steps 0..6; "new" = added at step >= 4: tasks 4, 5
        let b = filled(6, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let s = b.sample_newest_first(4, 4, &mut rng);
        assert_eq!(s.len(), 4);
        assert_eq!(&s[..2], &[t(4), t(5)]);
        let rest: HashSet<_> = s[2..].iter().cloned().collect();
        assert_eq!(rest.len(), 2);
        assert!(rest.is_subset(&(0..4).map(t).collect()));
        // more new tasks than asked: k of the new ones only
        let s = b.sample_newest_first(2, 1, &mut rng);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x != &t(0)));
        assert_ne!(s[0], s[1]);
        // nothing new: plain uniform
        let s = b.sample_newest_first(6, 100, &mut rng);
        assert_eq!(s.iter().collect::<HashSet<_>>().len(), 6);
        // more than the buffer holds: new first, then every old one, then refill
        let s = b.sample_newest_first(9, 5, &mut rng);
        assert_eq!(s.len(), 9);
        assert_eq!(s[0], t(5));
        assert_eq!(s[..6].iter().collect::<HashSet<_>>().len(), 6);
    }

    #[test]
    fn jsonl_round_trip() {
        let mut b = filled(4, 4);
        b.push(t(9), 7); // evicts t(0)
        let mut out = Vec::new();
        b.write_jsonl(&mut out, "mem").unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.starts_with(r#"{"added_at":1,"task":{"program":"def f(a):\n    return a + 1","input":"1","output":"2"}}"#));
        let back = TaskBuffer::<Triplet>::read_jsonl(&out[..], 4, "mem").unwrap();
        assert_eq!(back, b);
        // same RNG state -> same samples from the reloaded buffer
        let s1 = b.sample(7, &mut ChaCha8Rng::seed_from_u64(4));
        let s2 = back.sample(7, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(s1, s2);
    }

    #[test]
    fn jsonl_errors() {
        let line = r#"{"added_at":0,"task":{"program":"p","input":"i","output":"o"}}"#;
        let dup = format!("{line}\n\n{line}\n");
        assert!(matches!(
            TaskBuffer::<Triplet>::read_jsonl(dup.as_bytes(), 5, "x"),
            Err(BufferError::DuplicateLine { line: 3, .. })
        ));
        let bad = format!("{line}\nnot json\n");
        let err = TaskBuffer::<Triplet>::read_jsonl(bad.as_bytes(), 5, "x").unwrap_err();
        assert!(err.to_string().starts_with("x line 2:"), "{err}");
        let two = format!("{line}\n{}\n", line.replace("\"p\"", "\"q\""));
        assert!(matches!(
            TaskBuffer::<Triplet>::read_jsonl(two.as_bytes(), 1, "x"),
            Err(BufferError::OverCapacity { cap: 1, .. })
        ));
    }

    #[test]
    fn informative_tasks_come_first_and_rates_persist() {
        let mut b = TaskBuffer::new(10).unwrap();
        b.push(t(0), 0);
        b.push_measured(t(1), 1, Some((0, 4)));
        b.push_measured(t(2), 1, Some((2, 4)));
        b.push_measured(t(3), 2, Some((4, 4)));
        b.push_measured(t(4), 2, Some((1, 4)));
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let s = b.sample_informative_first(2, 2, &mut rng);
        let got: HashSet<_> = s.into_iter().collect();
        assert_eq!(got, HashSet::from([t(2), t(4)]));
        // more than the informative ones: the rest newest first
        let s = b.sample_informative_first(4, 2, &mut rng);
        assert_eq!(s.len(), 4);
        assert!(s[..2].iter().all(|x| *x == t(2) || *x == t(4)));
        assert!(s[2..].contains(&t(3)));
        let mut text = Vec::new();
        b.write_jsonl(&mut text, "test").unwrap();
        let back = TaskBuffer::<Triplet>::read_jsonl(&text[..], 10, "test").unwrap();
        assert_eq!(back, b);
        assert_eq!(back.entries().nth(2).unwrap().solved, Some((2, 4)));
    }
}
