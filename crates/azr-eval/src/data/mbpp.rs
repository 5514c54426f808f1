//! MBPP+ (`code/mbppplus.jsonl`): 378 problems with base and plus inputs.
//!
//! The inputs stay raw JSON (see [`super::jsonscan`]); everything else is parsed with serde.
//! Expected outputs are not in the file: they are computed by running the canonical solution in
//! the sandbox (see [`crate::code::mbpp`]).

use std::path::Path;

use serde::Deserialize;

use super::jsonscan::{array_items, object_members};
use super::{lines, read_text, DataError, MbppProblem, Problem, Task};

#[derive(Deserialize)]
struct Row {
    task_id: String,
    prompt: String,
    entry_point: String,
    canonical_solution: String,
    #[serde(default)]
    atol: Option<f64>,
}

pub fn load(path: &Path) -> Result<Vec<Problem>, DataError> {
    parse(path, &read_text(path)?)
}

/// Parses the file's text; `path` names it in errors.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Problem>, DataError> {
    lines(text)
        .map(|(n, line)| parse_row(line).map_err(|m| DataError::line(path, n, m)))
        .collect()
}

fn parse_row(line: &str) -> Result<Problem, String> {
    let members = object_members(line).map_err(|e| e.to_string())?;
    let mut fields = serde_json::Map::new();
    let mut base = None;
    let mut plus = None;
    for (key, span) in members {
        let raw = &line[span];
        match key.as_str() {
            "base_input" => base = Some(split_inputs(raw, "base_input")?),
            "plus_input" => plus = Some(split_inputs(raw, "plus_input")?),
            "task_id" | "prompt" | "entry_point" | "canonical_solution" | "atol" => {
                let value: serde_json::Value =
                    serde_json::from_str(raw).map_err(|e| format!("{key}: {e}"))?;
                fields.insert(key, value);
            }
            _ => {} // contract, assertion: not used
        }
    }
    let row: Row =
        serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| e.to_string())?;
    let base = base.ok_or("missing field `base_input`")?;
    let plus = plus.ok_or("missing field `plus_input`")?;
    let atol = row.atol.unwrap_or(0.0);
    if !atol.is_finite() || atol < 0.0 {
        return Err(format!("bad atol {atol}"));
    }
    let n_base = base.len();
    Ok(Problem {
        id: row.task_id.clone(),
        task: Task::Mbpp(Box::new(MbppProblem {
            task_id: row.task_id,
            prompt: row.prompt,
            entry_point: row.entry_point,
            canonical_solution: row.canonical_solution,
            inputs: base.into_iter().chain(plus).collect(),
            n_base,
            atol,
            expected: Default::default(),
        })),
    })
}

/// The inputs of one field: each must be a JSON array (an argument list).
fn split_inputs(raw: &str, field: &str) -> Result<Vec<String>, String> {
    // One problem (Mbpp/793) has `"plus_input": {}`: no plus inputs.
    if raw.trim() == "{}" {
        return Ok(Vec::new());
    }
    let items = array_items(raw).map_err(|e| format!("{field}: {e}"))?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            if item.starts_with('[') {
                Ok(item.to_string())
            } else {
                Err(format!("{field}[{i}] is not an argument list: {item}"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_inputs_raw_and_parses_the_rest() {
        let line = r#"{"task_id": "Mbpp/7", "prompt": "\"\"\"\nDo it.\n\"\"\"\n", "entry_point": "g", "canonical_solution": "\ndef g(a):\n    return a\n", "base_input": [[1], [NaN]], "atol": 0.0001, "plus_input": [[123456789012345678901234567890], [-Infinity]], "contract": "", "assertion": "assert g(1) == 1"}"#;
        let p = parse_row(line).unwrap();
        let Task::Mbpp(m) = p.task else { panic!() };
        assert_eq!(p.id, "Mbpp/7");
        assert_eq!(m.number(), Some(7));
        assert_eq!(m.entry_point, "g");
        assert_eq!(m.n_base, 2);
        assert_eq!(
            m.inputs,
            vec![
                "[1]",
                "[NaN]",
                "[123456789012345678901234567890]",
                "[-Infinity]"
            ]
        );
        assert_eq!(m.atol, 0.0001);
        let no_plus = line.replace(r#""plus_input""#, r#""other""#);
        assert!(parse_row(&no_plus).unwrap_err().contains("plus_input"));
        let empty = line.replace("[[123456789012345678901234567890], [-Infinity]]", "{}");
        let Task::Mbpp(e) = parse_row(&empty).unwrap().task else {
            panic!()
        };
        assert_eq!(e.inputs.len(), 2);
        let not_list = line.replace("[[1], [NaN]]", "[1]");
        assert!(parse_row(&not_list).unwrap_err().contains("base_input[0]"));
    }
}
