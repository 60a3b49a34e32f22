//! Human output helpers shared by the `svoct ps` subcommands.

use svoct_ps::config::{EnrichedFiles, Mode, SendOption};

/// `{"a": {"b": 1}}` -> `[("a.b", "1")]`, in key order, so a configuration reads like the TOML.
pub fn flatten(value: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(String::new(), value, &mut out);
    out
}

fn walk(prefix: String, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(key, v, out);
            }
        }
        serde_json::Value::Null => {}
        other => out.push((prefix, other.to_string())),
    }
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Direct => "direct",
        Mode::Oct => "oct",
    }
}

pub fn option_name(option: SendOption, files: EnrichedFiles) -> &'static str {
    match (option, files) {
        (SendOption::Split, _) => "split",
        (SendOption::Single, _) => "single",
        (SendOption::Enriched, EnrichedFiles::Single) => "enriched, one single file",
        (SendOption::Enriched, EnrichedFiles::PerDestination) => "enriched, one file per destination",
    }
}

/// A plain text table: a header row and left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
        let mut parts = Vec::new();
        for (i, cell) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            parts.push(format!("{cell:<w$}"));
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied(), &mut out);
    for row in rows {
        line(&mut row.iter().map(String::as_str), &mut out);
    }
    out
}
