//! The math benchmarks (`math/*.jsonl`). Each file names its fields its own way:
//!
//! | benchmark | question | reference answer | id |
//! |---|---|---|---|
//! | gsm8k | `question` | `answer`, after the final `####` | `idx` |
//! | math500 | `problem` | `answer` | `unique_id` |
//! | aime24, aime25 | `problem` | `answer` (a string) | `id` |
//! | amc23 | `question` | `answer` (a float: `27.0`) | `id` |
//! | minerva | `problem` | the last `\boxed{}` of `solution` | `idx` |
//! | olympiadbench | `question` | `final_answer` (a list, joined with `, `); `error` is a tolerance | `id` |

use std::path::Path;

use serde_json::Value;

use super::{lines, parse_line, read_text, DataError, MathProblem, Problem, Task};
use crate::bench::BenchmarkId;
use crate::math::last_boxed;

pub fn load(id: BenchmarkId, path: &Path) -> Result<Vec<Problem>, DataError> {
    parse(id, path, &read_text(path)?)
}

/// Parses the file's text; `path` names it in errors.
pub fn parse(id: BenchmarkId, path: &Path, text: &str) -> Result<Vec<Problem>, DataError> {
    lines(text)
        .map(|(n, line)| {
            let row: Value = parse_line(path, n, line)?;
            let problem = parse_row(id, &row).map_err(|m| DataError::line(path, n, m))?;
            let pid = ["id", "idx", "unique_id"]
                .iter()
                .find_map(|k| scalar_text(row.get(*k)?))
                .unwrap_or_else(|| format!("line{n}"));
            Ok(Problem {
                id: pid,
                task: Task::Math(problem),
            })
        })
        .collect()
}

fn parse_row(id: BenchmarkId, row: &Value) -> Result<MathProblem, String> {
    let field = |k: &str| -> Result<&Value, String> {
        row.get(k)
            .filter(|v| !v.is_null())
            .ok_or_else(|| format!("missing field `{k}`"))
    };
    let text = |k: &str| -> Result<String, String> {
        field(k)?
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("field `{k}` is not a string"))
    };
    let mut tolerance = None;
    let (question, answer) = match id {
        BenchmarkId::Gsm8k => {
            let full = text("answer")?;
            let (_, last) = full
                .rsplit_once("####")
                .ok_or("`answer` has no `####` line")?;
            (text("question")?, last.trim().to_string())
        }
        BenchmarkId::Math500 | BenchmarkId::Aime24 | BenchmarkId::Aime25 => {
            let answer = scalar_text(field("answer")?).ok_or("`answer` is not a scalar")?;
            (text("problem")?, answer)
        }
        BenchmarkId::Amc23 => {
            let q = text("question").or_else(|_| text("problem"))?;
            let answer = scalar_text(field("answer")?).ok_or("`answer` is not a scalar")?;
            (q, answer)
        }
        BenchmarkId::Minerva => {
            let solution = text("solution")?;
            let answer = last_boxed(&solution).ok_or("`solution` has no \\boxed{} answer")?;
            (text("problem")?, answer.trim().to_string())
        }
        BenchmarkId::OlympiadBench => {
            let parts: Vec<String> = match field("final_answer")? {
                Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
                other => scalar_text(other).into_iter().collect(),
            };
            if parts.is_empty() {
                return Err("`final_answer` is empty".into());
            }
            tolerance = row.get("error").and_then(|e| match e {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            });
            (text("question")?, parts.join(", "))
        }
        other => return Err(format!("{other} is not a math benchmark")),
    };
    if answer.trim().is_empty() {
        return Err("the reference answer is empty".into());
    }
    Ok(MathProblem {
        question,
        answer,
        tolerance: tolerance.filter(|t| t.is_finite() && *t >= 0.0),
    })
}

/// A string, or a number written the way a person would (`27.0` -> `27`).
fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(id: BenchmarkId, row: Value) -> Result<String, String> {
        parse_row(id, &row).map(|p| p.answer)
    }

    #[test]
    fn each_file_format_gives_its_answer() {
        let gsm = json!({"question": "q", "answer": "a #### b\n#### 1,234"});
        assert_eq!(answer(BenchmarkId::Gsm8k, gsm).unwrap(), "1,234");
        let amc = json!({"question": "q", "answer": 27.0});
        assert_eq!(answer(BenchmarkId::Amc23, amc).unwrap(), "27");
        let amc_frac = json!({"question": "q", "answer": 2.5});
        assert_eq!(answer(BenchmarkId::Amc23, amc_frac).unwrap(), "2.5");
        let aime = json!({"problem": "q", "answer": "025"});
        assert_eq!(answer(BenchmarkId::Aime24, aime).unwrap(), "025");
        let minerva =
            json!({"problem": "q", "solution": "so $\\boxed{1}$ then \\boxed{\\frac{1}{2}} cm"});
        assert_eq!(
            answer(BenchmarkId::Minerva, minerva).unwrap(),
            "\\frac{1}{2}"
        );
        let ob = json!({"question": "q", "final_answer": ["$69$", "$84$"], "error": "1e-1"});
        let p = parse_row(BenchmarkId::OlympiadBench, &ob).unwrap();
        assert_eq!((p.answer.as_str(), p.tolerance), ("$69$, $84$", Some(0.1)));
        // the wrong field names fail with the field's name
        let e = answer(
            BenchmarkId::Math500,
            json!({"question": "q", "answer": "1"}),
        )
        .unwrap_err();
        assert!(e.contains("problem"), "{e}");
        let e = answer(
            BenchmarkId::Gsm8k,
            json!({"question": "q", "answer": "no marker"}),
        )
        .unwrap_err();
        assert!(e.contains("####"), "{e}");
        let e = answer(
            BenchmarkId::Minerva,
            json!({"problem": "q", "solution": "none"}),
        )
        .unwrap_err();
        assert!(e.contains("boxed"), "{e}");
    }
}
