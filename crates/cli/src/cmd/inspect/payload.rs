//! Payload files of `svoct ps` (`<store>.payloads/<compostage>.payload`): one line of JSON saying
//! what a sent message carried (recipient, certificate, lots, invoices), then the file sent,
//! byte for byte. Support staff find them on disk; `inspect` shows the line and the file, so
//! that nobody needs to cut the first line off by hand.

use std::fmt::Write as _;

use serde_json::{Map, Value};
use svoct_ps::payload::PayloadMeta;

use super::{Detected, Options, to_json};

/// The metadata line is small; a first line longer than this is not a payload's.
const MAX_META_LINE: usize = 1 << 20;

pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    // Only the file itself: a payload inside a payload is hostile input, not something to recurse
    // into.
    if opts.depth > 0 || bytes.first() != Some(&b'{') {
        return None;
    }
    let head = bytes.get(..bytes.len().min(MAX_META_LINE))?;
    let nl = head.iter().position(|&b| b == b'\n')?;
    let meta: PayloadMeta = serde_json::from_slice(head.get(..nl)?).ok()?;
    let file = bytes.get(nl + 1..).unwrap_or_default();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "ps-payload: the file sent to {} ({}, {} lot(s), {} invoice(s), file {} bytes)",
        meta.to,
        meta.file_name,
        meta.lots.len(),
        meta.invoices.len(),
        file.len()
    );
    if let Some(cert) = &meta.certificate {
        let _ = writeln!(text, "  encrypted for: {}", cert.display());
    }
    let mut json = Map::new();
    json.insert("meta".into(), serde_json::to_value(&meta).unwrap_or(Value::Null));
    let (nested, problem) = match super::detect(file, &opts.nested()) {
        Some(d) => {
            let problem = d
                .problem
                .clone()
                .map(|p| format!("the file sent is an invalid {}: {p}", d.format));
            let _ = writeln!(text, "  the file sent:");
            for line in d.text.lines() {
                let _ = writeln!(text, "    {line}");
            }
            (to_json(d.format, d.problem.is_none(), d.json), problem)
        }
        None => {
            let reason = format!("the file sent ({} bytes) is of no known format", file.len());
            let _ = writeln!(text, "  {reason}");
            (
                serde_json::json!({ "format": "unknown", "valid": false, "length": file.len() }),
                Some(reason),
            )
        }
    };
    json.insert("file".into(), nested);
    Some(Detected {
        format: "ps-payload",
        json,
        text,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            max_items: 10,
            key: None,
            depth: 0,
        }
    }

    const META: &str = r#"{"kind":"SV","to":"oct@oct.invalid","certificate":null,"compress":false,"file_name":"000001.b2","exercice":"00000123456789","lots":[],"invoices":[]}"#;

    #[test]
    fn other_json_is_not_a_payload() {
        assert!(detect(b"{\"a\":1}\nrest", &opts()).is_none());
        assert!(detect(b"{ no line end", &opts()).is_none());
    }

    #[test]
    fn a_payload_inside_a_payload_is_not_opened_again() {
        let mut bytes = Vec::new();
        for _ in 0..10_000 {
            bytes.extend_from_slice(META.as_bytes());
            bytes.push(b'\n');
        }
        let d = detect(&bytes, &opts()).unwrap();
        assert_eq!(d.format, "ps-payload");
        assert_eq!(d.json["file"]["format"], "unknown");
        assert!(d.problem.unwrap().contains("no known format"));
    }
}
