//! Readers for the evaluation sets (built in, or from a `--data` folder).

use anyhow::Result;
use azr_eval::DataSource;
use serde::Deserialize;

/// One CRUXEval problem: a function `f`, one input, and its output.
#[derive(Debug, Clone, Deserialize)]
pub struct CruxTask {
    pub id: String,
    pub code: String,
    pub input: String,
    pub output: String,
}

/// CRUXEval's 800 problems from `data` (`code/cruxeval.jsonl`).
pub fn load_cruxeval(data: &DataSource) -> Result<Vec<CruxTask>> {
    let (path, text) = data.read("code/cruxeval.jsonl")?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| {
                anyhow::anyhow!(
                    "{}: line {} is not a CRUXEval record: {e}",
                    path.display(),
                    n + 1
                )
            })
        })
        .collect()
}
