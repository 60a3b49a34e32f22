//! Messages (`.eml`): profile, subject fields, the headers that matter, the envelope, and, with a
//! key, the opened attachment inspected as its own format. A B2 attachment is checked against the
//! subject (invoice count, `exercice`) through [`B2Facts`].

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::b2;
use svoct_mail::profile::{B2Facts, Finding, MessageReport, Severity, inspect_message};
use svoct_mail::subject::Subject;

use super::{Detected, Options, detect as detect_any, map_of, to_json};

const FORMAT: &str = "message";

/// Longest header block looked at to recognise a message.
const SNIFF: usize = 64 * 1024;

/// A message starts with a header line (`Name: value`, the name printable ASCII without a colon)
/// and its header block (up to the first blank line) has a `Subject` or `Content-Type` header.
/// B2, NOEMIE, ARL, ART and dLOI files never start with `name:`.
pub(super) fn looks_like_message(bytes: &[u8]) -> bool {
    let head = bytes.get(..SNIFF.min(bytes.len())).unwrap_or(bytes);
    let first_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Some(colon) = first_line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = first_line.get(..colon).unwrap_or_default();
    if name.is_empty() || !name.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return false;
    }
    // The header block, lower-cased, with a leading line end so every header starts with `\n`.
    let mut block = vec![b'\n'];
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        block.extend(line.iter().map(u8::to_ascii_lowercase));
        block.push(b'\n');
    }
    super::contains(&block, b"\nsubject:") || super::contains(&block, b"\ncontent-type:")
}

/// The detector.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if !looks_like_message(bytes) {
        return None;
    }
    let key = if opts.depth == 0 {
        opts.key.as_deref()
    } else {
        None
    };
    let mut report = inspect_message(bytes, key);
    let attachment = report
        .attachment_bytes
        .take()
        .filter(|_| opts.depth == 0)
        .map(|a| attachment(&a, &mut report, opts));
    Some(render(&report, attachment))
}

/// The opened attachment: run every detector on it, and check a B2 file against the subject.
fn attachment(bytes: &[u8], report: &mut MessageReport, opts: &Options) -> (Value, String) {
    let nested = detect_any(bytes, &opts.nested());
    let subject = report
        .headers
        .subject
        .as_deref()
        .and_then(|s| s.parse::<Subject>().ok());
    if let (Ok(input), Some(subject)) = (b2::parse(bytes), &subject)
        && nested.as_ref().is_some_and(|d| d.format.starts_with("b2"))
    {
        report.check_file(subject, &B2Facts::of(&input));
    }
    match nested {
        Some(d) => {
            if let Some(problem) = &d.problem {
                report.findings.push(Finding {
                    severity: Severity::Error,
                    code: "attachment",
                    message: format!("attachment is an invalid {}: {problem}", d.format),
                });
            }
            let text = d.text.clone();
            (to_json(d.format, d.problem.is_none(), d.json), text)
        }
        None => {
            report.findings.push(Finding {
                severity: Severity::Warning,
                code: "attachment",
                message: format!("attachment of {} bytes is of no known format", bytes.len()),
            });
            (
                json!({ "format": "unknown", "valid": false, "length": bytes.len() }),
                format!("unknown format, {} bytes\n", bytes.len()),
            )
        }
    }
}

fn render(report: &MessageReport, attachment: Option<(Value, String)>) -> Detected {
    let mut j: Map<String, Value> = map_of(report);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "message: profile {}, {} finding(s)",
        report.profile.as_deref().unwrap_or("(unknown)"),
        report.findings.len()
    );
    if let Some(s) = &report.subject {
        let _ = writeln!(text, "  subject {:?} ({})", s.text, s.shape);
        if let Ok(Value::Object(fields)) = serde_json::to_value(s) {
            for (name, value) in fields {
                if name != "text" && name != "shape" {
                    let _ = writeln!(text, "    {name:<14} {value}");
                }
            }
        }
    }
    if let Ok(Value::Object(headers)) = serde_json::to_value(&report.headers) {
        let _ = writeln!(text, "  headers");
        for (name, value) in headers {
            let _ = writeln!(text, "    {name:<26} {value}");
        }
    }
    if let Some(n) = report.transported_bytes {
        let _ = writeln!(text, "  attachment as transported: {n} bytes");
    }
    if let Some(e) = &report.encryption {
        let _ = writeln!(
            text,
            "  encrypted: {} ({}), {} recipient(s)",
            e.algorithm.as_deref().unwrap_or("unsupported algorithm"),
            e.algorithm_oid,
            e.recipients
        );
    }
    if let Some(c) = &report.compression {
        let _ = writeln!(text, "  compressed: {}", c.name());
    }
    if let Some(n) = report.attachment_len {
        let _ = writeln!(text, "  attachment opened: {n} bytes");
    }
    for f in &report.findings {
        let _ = writeln!(text, "  finding: {:?} {}: {}", f.severity, f.code, f.message);
    }
    if let Some((value, nested_text)) = attachment {
        let _ = writeln!(text, "  attachment content:");
        for line in nested_text.lines() {
            let _ = writeln!(text, "    {line}");
        }
        j.insert("attachment".into(), value);
    }
    let problem = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Error)
        .map(|f| {
            let errors = report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count();
            format!("{errors} error(s); first: {}: {}", f.code, f.message)
        });
    Detected {
        format: FORMAT,
        json: j,
        text,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_messages_and_not_text_formats() {
        assert!(looks_like_message(b"From: a@b\r\nSubject: x\r\n\r\nbody"));
        assert!(looks_like_message(
            b"Return-Path: <a@b>\nContent-Type: text/plain\n\n"
        ));
        // The subject must be in the header block, not in the body.
        assert!(!looks_like_message(b"From: a@b\r\n\r\nSubject: x\r\n"));
        assert!(!looks_like_message(b"DLOI;1\r\nPS;1\r\n"));
        assert!(!looks_like_message(
            b"ACCUSE DE RECEPTION TECHNIQUE\r\n\r\nOrganisme : X\r\n"
        ));
        assert!(!looks_like_message(b"000TP000000123456789"));
        assert!(!looks_like_message(b""));
        assert!(!looks_like_message(b": no name\r\nSubject: x\r\n"));
    }
}
