//! CRUXEval (`code/cruxeval.jsonl`): 800 functions `f` with one input and its output. The same
//! problems serve CRUXEval-O (predict the output) and CRUXEval-I (find an input).

use std::path::Path;

use azr_core::Triplet;
use serde::Deserialize;

use super::{lines, parse_line, read_text, DataError, Problem, Task};

#[derive(Deserialize)]
struct Row {
    id: String,
    code: String,
    input: String,
    output: String,
}

pub fn load(path: &Path) -> Result<Vec<Problem>, DataError> {
    parse(path, &read_text(path)?)
}

/// Parses the file's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Problem>, DataError> {
    lines(text)
        .map(|(n, line)| {
            let row: Row = parse_line(path, n, line)?;
            Ok(Problem {
                id: row.id,
                task: Task::Crux(Triplet::new(row.code, row.input, row.output)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_rows_and_names_the_bad_line() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            f,
            r#"{{"code": "def f(x):\n    return x", "input": "1", "output": "1", "id": "sample_0"}}"#
        )
        .unwrap();
        writeln!(f).unwrap();
        writeln!(
            f,
            r#"{{"code": "def f(x): pass", "input": "1", "id": "sample_1"}}"#
        )
        .unwrap();
        let err = load(f.path()).unwrap_err().to_string();
        assert!(err.contains(":3:") && err.contains("output"), "{err}");
        let mut g = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            g,
            r#"{{"code": "def f(x):\n    return x", "input": "1", "output": "1", "id": "sample_0"}}"#
        )
        .unwrap();
        let problems = load(g.path()).unwrap();
        assert_eq!(problems[0].id, "sample_0");
        assert_eq!(
            problems[0].task,
            Task::Crux(Triplet::new("def f(x):\n    return x", "1", "1"))
        );
        let missing = load(Path::new("/nonexistent/cruxeval.jsonl")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/cruxeval.jsonl"));
    }
}
