//! Query files: plain text (one query a line), TSV (`id<TAB>query`), or JSONL with a `query`
//! (or `q`) field. Blank lines and lines starting with `#` are skipped.

use std::path::Path;

use anyhow::Context;

/// Reads the queries of a file, in order.
pub fn load_queries(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading queries from {}", path.display()))?;
    let mut queries = Vec::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let query = if line.starts_with('{') {
            let value: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: invalid JSON", path.display(), no + 1))?;
            value
                .get("query")
                .or_else(|| value.get("q"))
                .and_then(|q| q.as_str())
                .with_context(|| format!("{}:{}: no \"query\" field", path.display(), no + 1))?
                .to_string()
        } else if let Some((_, q)) = line.split_once('\t') {
            q.to_string()
        } else {
            line.to_string()
        };
        queries.push(query);
    }
    Ok(queries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_three_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q");
        std::fs::write(
            &p,
            "# comment\nplain query\n12\tweb server\n{\"query\":\"json q\"}\n\n",
        )
        .unwrap();
        assert_eq!(
            load_queries(&p).unwrap(),
            ["plain query", "web server", "json q"]
        );
    }
}
