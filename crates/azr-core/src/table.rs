//! Tables with one value per task type ([`PerTask`]) or per task-role group ([`PerGroup`]):
//! indexed by the type itself, complete by construction, and written as a JSON map keyed by
//! name in alphabetical order (`"abduction"`, `"deduction"`, `"induction"`), as the metrics
//! files always were.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::task::{Group, TaskType};

/// A closed set of keys: [`TaskType`] or [`Group`].
pub trait Key: Copy + 'static {
    /// Every key; `ALL[k.index()] == k`.
    const ALL: &'static [Self];
    fn index(self) -> usize;
    fn name(self) -> &'static str;
}

impl Key for TaskType {
    const ALL: &'static [Self] = &TaskType::ALL;
    fn index(self) -> usize {
        TaskType::index(self)
    }
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Key for Group {
    const ALL: &'static [Self] = &Group::ALL;
    fn index(self) -> usize {
        Group::index(self)
    }
    fn name(self) -> &'static str {
        Group::name(self)
    }
}

/// One `T` per key of `K`.
#[derive(Clone, PartialEq)]
pub struct Table<K, T> {
    values: Vec<T>,
    keys: PhantomData<K>,
}

/// One value per task type.
pub type PerTask<T> = Table<TaskType, T>;
/// One value per task-role group.
pub type PerGroup<T> = Table<Group, T>;

impl<K: Key, T> Table<K, T> {
    pub fn from_fn(f: impl FnMut(K) -> T) -> Self {
        Table {
            values: K::ALL.iter().copied().map(f).collect(),
            keys: PhantomData,
        }
    }

    /// Every key and its value, by name (the order of the written map).
    pub fn iter(&self) -> impl Iterator<Item = (K, &T)> {
        Self::by_name().into_iter().map(move |k| (k, &self[k]))
    }

    /// Every value, by its key's name.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.iter().map(|(_, v)| v)
    }

    /// How many keys (and values) the table has.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Never: every key has a value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn map<U>(&self, mut f: impl FnMut(K, &T) -> U) -> Table<K, U> {
        Table::from_fn(|k| f(k, &self[k]))
    }

    /// The keys sorted by name: the order of the written map.
    fn by_name() -> Vec<K> {
        let mut keys = K::ALL.to_vec();
        keys.sort_by_key(|k| k.name());
        keys
    }
}

impl<K: Key, T: Default> Default for Table<K, T> {
    fn default() -> Self {
        Table::from_fn(|_| T::default())
    }
}

impl<K: Key, T> Index<K> for Table<K, T> {
    type Output = T;
    fn index(&self, k: K) -> &T {
        &self.values[k.index()]
    }
}

impl<K: Key, T> IndexMut<K> for Table<K, T> {
    fn index_mut(&mut self, k: K) -> &mut T {
        &mut self.values[k.index()]
    }
}

/// As a map by name, like the JSON: `{"abduction": 1, "deduction": 2, "induction": 0}`.
impl<K: Key, T: std::fmt::Debug> std::fmt::Debug for Table<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k.name(), v)))
            .finish()
    }
}

impl<K: Key, T: Serialize> Serialize for Table<K, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k.name(), v)?;
        }
        map.end()
    }
}

impl<'de, K: Key, T: Deserialize<'de>> Deserialize<'de> for Table<K, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut map = BTreeMap::<String, T>::deserialize(d)?;
        let mut values = Vec::with_capacity(K::ALL.len());
        for k in K::ALL {
            values.push(
                map.remove(k.name())
                    .ok_or_else(|| D::Error::custom(format!("missing `{}`", k.name())))?,
            );
        }
        if let Some(extra) = map.keys().next() {
            return Err(D::Error::custom(format!("unknown key `{extra}`")));
        }
        Ok(Table {
            values,
            keys: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_by_name_in_alphabetical_order_and_read_back() {
        let t = PerTask::from_fn(|k| k.as_str().len() + k.index());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"abduction":10,"deduction":9,"induction":11}"#);
        assert_eq!(serde_json::from_str::<PerTask<usize>>(&json).unwrap(), t);
        let g = PerGroup::from_fn(|g| g.index());
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(
            json,
            r#"{"propose_abduction":1,"propose_deduction":0,"propose_induction":2,"solve_abduction":4,"solve_deduction":3,"solve_induction":5}"#
        );
        assert_eq!(g[Group::SOLVE_ABDUCTION], 4);
        assert_eq!(
            format!("{t:?}"),
            r#"{"abduction": 10, "deduction": 9, "induction": 11}"#
        );
    }

    #[test]
    fn a_missing_or_unknown_key_is_an_error() {
        let e = serde_json::from_str::<PerTask<u8>>(r#"{"abduction":1,"deduction":2}"#);
        assert!(e.unwrap_err().to_string().contains("missing `induction`"));
        let e = serde_json::from_str::<PerTask<u8>>(
            r#"{"abduction":1,"deduction":2,"induction":3,"seduction":4}"#,
        );
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("unknown key `seduction`"));
    }
}
