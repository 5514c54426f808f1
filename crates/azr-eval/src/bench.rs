//! The benchmarks `azr eval` knows: names, categories and data file names.

use serde::{Deserialize, Serialize};

/// One benchmark of the paper's table (plus CRUXEval, which the paper tracks during training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BenchmarkId {
    #[serde(rename = "cruxeval-o")]
    CruxevalO,
    #[serde(rename = "cruxeval-i")]
    CruxevalI,
    #[serde(rename = "humaneval")]
    HumanEval,
    #[serde(rename = "mbppplus")]
    MbppPlus,
    #[serde(rename = "gsm8k")]
    Gsm8k,
    #[serde(rename = "math500")]
    Math500,
    #[serde(rename = "aime24")]
    Aime24,
    #[serde(rename = "aime25")]
    Aime25,
    #[serde(rename = "amc23")]
    Amc23,
    #[serde(rename = "minerva")]
    Minerva,
    #[serde(rename = "olympiadbench")]
    OlympiadBench,
}

/// Which average of the paper's table a benchmark counts towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// CRUXEval: in-distribution for self-play, reported apart from the code/math averages.
    Reasoning,
    Code,
    Math,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown benchmark {0:?} (known: {known}; also `all`, `code`, `math`, `cruxeval`)", known = BenchmarkId::ALL.map(|b| b.name()).join(", "))]
pub struct UnknownBenchmark(pub String);

impl BenchmarkId {
    pub const ALL: [BenchmarkId; 11] = [
        BenchmarkId::CruxevalO,
        BenchmarkId::CruxevalI,
        BenchmarkId::HumanEval,
        BenchmarkId::MbppPlus,
        BenchmarkId::Gsm8k,
        BenchmarkId::Math500,
        BenchmarkId::Aime24,
        BenchmarkId::Aime25,
        BenchmarkId::Amc23,
        BenchmarkId::Minerva,
        BenchmarkId::OlympiadBench,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            BenchmarkId::CruxevalO => "cruxeval-o",
            BenchmarkId::CruxevalI => "cruxeval-i",
            BenchmarkId::HumanEval => "humaneval",
            BenchmarkId::MbppPlus => "mbppplus",
            BenchmarkId::Gsm8k => "gsm8k",
            BenchmarkId::Math500 => "math500",
            BenchmarkId::Aime24 => "aime24",
            BenchmarkId::Aime25 => "aime25",
            BenchmarkId::Amc23 => "amc23",
            BenchmarkId::Minerva => "minerva",
            BenchmarkId::OlympiadBench => "olympiadbench",
        }
    }

    pub fn category(self) -> Category {
        match self {
            BenchmarkId::CruxevalO | BenchmarkId::CruxevalI => Category::Reasoning,
            BenchmarkId::HumanEval | BenchmarkId::MbppPlus => Category::Code,
            _ => Category::Math,
        }
    }

    /// The data file relative to the data folder (the repository's `data/`, built in; see
    /// [`crate::data::DataSource`]). `None` for HumanEval, which comes from PyPI (see
    /// [`crate::data::humaneval`]).
    pub fn relative_path(self) -> Option<&'static str> {
        Some(match self {
            BenchmarkId::CruxevalO | BenchmarkId::CruxevalI => "code/cruxeval.jsonl",
            BenchmarkId::MbppPlus => "code/mbppplus.jsonl",
            BenchmarkId::HumanEval => return None,
            BenchmarkId::Gsm8k => "math/gsm8k.jsonl",
            BenchmarkId::Math500 => "math/math500.jsonl",
            BenchmarkId::Aime24 => "math/aime24.jsonl",
            BenchmarkId::Aime25 => "math/aime25.jsonl",
            BenchmarkId::Amc23 => "math/amc23.jsonl",
            BenchmarkId::Minerva => "math/minerva_math.jsonl",
            BenchmarkId::OlympiadBench => "math/olympiadbench.jsonl",
        })
    }

    /// Parses a comma-separated list (`cruxeval-o,math500`); `all`, `code`, `math` and
    /// `cruxeval` name groups. Duplicates are dropped, order is kept.
    pub fn parse_list(list: &str) -> Result<Vec<BenchmarkId>, UnknownBenchmark> {
        let mut out: Vec<BenchmarkId> = Vec::new();
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let group: Vec<BenchmarkId> = match word.to_ascii_lowercase().as_str() {
                "all" => BenchmarkId::ALL.to_vec(),
                "cruxeval" => vec![BenchmarkId::CruxevalO, BenchmarkId::CruxevalI],
                "code" => vec![BenchmarkId::HumanEval, BenchmarkId::MbppPlus],
                "math" => BenchmarkId::ALL
                    .into_iter()
                    .filter(|b| b.category() == Category::Math)
                    .collect(),
                w => vec![w.parse()?],
            };
            for b in group {
                if !out.contains(&b) {
                    out.push(b);
                }
            }
        }
        Ok(out)
    }
}

impl std::str::FromStr for BenchmarkId {
    type Err = UnknownBenchmark;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let alias = match lower.as_str() {
            "mbpp+" | "mbpp" => "mbppplus",
            "humaneval+" | "human-eval" => "humaneval",
            "minerva_math" | "minerva-math" => "minerva",
            "cruxeval_o" => "cruxeval-o",
            "cruxeval_i" => "cruxeval-i",
            other => other,
        };
        BenchmarkId::ALL
            .into_iter()
            .find(|b| b.name() == alias)
            .ok_or_else(|| UnknownBenchmark(s.to_string()))
    }
}

impl std::fmt::Display for BenchmarkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_groups_expand() {
        for b in BenchmarkId::ALL {
            assert_eq!(b.name().parse::<BenchmarkId>().unwrap(), b);
            let json = serde_json::to_string(&b).unwrap();
            assert_eq!(json, format!("\"{}\"", b.name()));
        }
        assert_eq!(
            BenchmarkId::parse_list("math500, cruxeval,math500").unwrap(),
            vec![
                BenchmarkId::Math500,
                BenchmarkId::CruxevalO,
                BenchmarkId::CruxevalI
            ]
        );
        assert_eq!(BenchmarkId::parse_list("all").unwrap().len(), 11);
        assert_eq!(BenchmarkId::parse_list("math").unwrap().len(), 7);
        assert_eq!(
            BenchmarkId::parse_list("MBPP+").unwrap(),
            vec![BenchmarkId::MbppPlus]
        );
        let err = BenchmarkId::parse_list("cruxeval-o,mmlu").unwrap_err();
        assert_eq!(err.0, "mmlu");
        assert!(err.to_string().contains("olympiadbench"));
    }

    #[test]
    fn every_file_benchmark_is_built_in() {
        let built_in: Vec<&str> = crate::data::embedded::files().collect();
        for b in BenchmarkId::ALL {
            match b.relative_path() {
                Some(rel) => assert!(built_in.contains(&rel), "{b}: {rel} is not built in"),
                None => assert_eq!(b, BenchmarkId::HumanEval),
            }
        }
        assert_eq!(
            BenchmarkId::Minerva.relative_path(),
            Some("math/minerva_math.jsonl")
        );
    }
}
