//! NOEMIE returns (RSP 580/576/900): files, payments, invoices with their state and amounts, and
//! every entity field by field with the names of `svoct_formats::noemie::layouts`.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::noemie::layouts::{H000, T999};
use svoct_formats::noemie::{Decoded, FindingKind, Noemie, NoemieReport, parse};

use super::{Detected, Options, layout_text, map_of};

const FORMAT: &str = "noemie";

/// NOEMIE inputs are recognised without reading them whole:
/// - packaging (a): 4 digits (the line length) then `000`;
/// - packaging (b): a `000` header whose reference (62-64) is three digits and whose 66-67 is
///   not `B2` (a B2 file has its norm at 62-65, `SV14`..., and always `B2` at 66-67).
fn looks_like_noemie(bytes: &[u8]) -> bool {
    let lines =
        bytes.get(..4).is_some_and(|p| p.iter().all(u8::is_ascii_digit)) && bytes.get(4..7) == Some(b"000");
    let blocks = bytes.starts_with(b"000")
        && bytes
            .get(61..64)
            .is_some_and(|r| r.iter().all(u8::is_ascii_digit))
        && bytes.get(65..67).is_some_and(|v| v != b"B2");
    lines || blocks
}

/// A finding that makes the input invalid (everything but informational ones).
fn is_problem(kind: FindingKind) -> bool {
    kind != FindingKind::UnexpectedForReference
}

/// The detector.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if !looks_like_noemie(bytes) {
        return None;
    }
    Some(match parse(bytes) {
        Ok(n) => report(&n, &n.report(), opts),
        Err(e) => {
            let mut j = Map::new();
            j.insert("reference".into(), Value::Null);
            j.insert("files".into(), 0.into());
            j.insert(
                "findings".into(),
                json!([{ "kind": "structure", "message": e.to_string() }]),
            );
            Detected {
                format: FORMAT,
                json: j,
                text: format!("{FORMAT}: {} bytes, structure error: {e}\n", bytes.len()),
                problem: Some(e.to_string()),
            }
        }
    })
}

fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

fn decoded(v: &Decoded) -> String {
    match v {
        Decoded::Blank => String::new(),
        Decoded::Text(t) => format!("{t:?}"),
        Decoded::Number(n) => n.to_string(),
        Decoded::Date { iso, .. } => iso.clone(),
        Decoded::Invalid => "(invalid)".into(),
    }
}

fn report(n: &Noemie, r: &NoemieReport, opts: &Options) -> Detected {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{FORMAT}: reference {}, packaging {:?}, {} file(s), {} payment(s), {} invoice(s), {} finding(s)",
        r.reference,
        r.packaging,
        r.files,
        r.payments.len(),
        r.invoices.len(),
        r.findings.len() + r.findings_suppressed
    );
    for f in &r.file_summaries {
        let _ = writeln!(
            text,
            "  file {} (offset {}): {} {} -> {} {}, id {:?}, {} entities, {} lot(s), amount {}",
            f.index,
            f.offset,
            f.sender_type,
            f.sender_number,
            f.recipient_type,
            f.recipient_number,
            f.file_id,
            f.entities,
            f.lots,
            euros(f.amount_cents)
        );
    }
    for (i, p) in r.payments.iter().enumerate() {
        let _ = writeln!(
            text,
            "  payment {i}: recipient {}, {} invoice(s), amount {}",
            p.settlement_recipient.as_deref().unwrap_or("?"),
            p.invoices.len(),
            euros(p.amount_cents)
        );
    }
    for inv in &r.invoices {
        let part = |p: &Option<svoct_formats::noemie::Part>| {
            p.as_ref().map_or_else(
                || "-".to_owned(),
                |p| {
                    format!(
                        "{:?} requested {} paid {}",
                        p.state,
                        euros(i64::try_from(p.requested_cents).unwrap_or(i64::MAX)),
                        euros(p.paid_cents)
                    )
                },
            )
        };
        let _ = writeln!(
            text,
            "  invoice {} (lot {}): {:?}; AMO {}; AMC {}; paid {}; {} reject(s)",
            inv.invoice_number,
            inv.lot_number,
            inv.state,
            part(&inv.amo),
            part(&inv.amc),
            euros(inv.paid_cents),
            inv.rejects.len()
        );
    }
    let mut shown = 0usize;
    'files: for file in &n.files {
        let _ = writeln!(
            text,
            "  file {} header (offset {}): {}",
            file.index, file.offset, H000.title
        );
        layout_text(&mut text, &H000, &file.header);
        let _ = writeln!(text, "  file {} entities:", file.index);
        for e in file.iter() {
            if shown >= opts.max_items {
                let _ = writeln!(text, "  ... more entities (--max-items)");
                break 'files;
            }
            shown += 1;
            let title = e.layout.map_or("(no layout)", |l| l.title);
            let _ = writeln!(text, "    entity {} {}: {title}", e.index, e.code_str());
            for f in e.fields() {
                if f.name == "end" || f.name.starts_with("filler") {
                    continue;
                }
                let _ = writeln!(
                    text,
                    "      {:<28} {:<16} {}",
                    f.name,
                    format!("{:?}", f.raw),
                    decoded(&f.value)
                );
            }
        }
        let _ = writeln!(
            text,
            "  file {} trailer (offset {}): {}",
            file.index, file.trailer_offset, T999.title
        );
        layout_text(&mut text, &T999, &file.trailer);
    }
    for f in &r.findings {
        let _ = writeln!(
            text,
            "  finding: file {} offset {}{}{}: {:?}: {}",
            f.file,
            f.offset,
            f.code
                .as_deref()
                .map(|c| format!(" entity {c}"))
                .unwrap_or_default(),
            f.field.map(|c| format!(" field {c}")).unwrap_or_default(),
            f.kind,
            f.message
        );
    }
    let problems: Vec<_> = r.findings.iter().filter(|f| is_problem(f.kind)).collect();
    let problem = problems.first().map(|f| {
        format!(
            "{} finding(s); first: file {} at byte offset {}{}: {}",
            problems.len() + r.findings_suppressed,
            f.file,
            f.offset,
            f.field.map(|c| format!(", field {c}")).unwrap_or_default(),
            f.message
        )
    });
    Detected {
        format: FORMAT,
        json: map_of(r),
        text,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_noemie_from_b2() {
        let mut b2 = b"000TP00000123456789".to_vec();
        b2.resize(128, b' ');
        b2[61..65].copy_from_slice(b"SV14");
        b2[65..67].copy_from_slice(b"B2");
        assert!(!looks_like_noemie(&b2));
        let mut blocks = b2.clone();
        blocks[61..65].copy_from_slice(b"580 ");
        blocks[65..67].copy_from_slice(b"01");
        assert!(looks_like_noemie(&blocks));
        // A B2 header whose norm happens to be digits is still B2 thanks to 66-67.
        let mut odd = b2.clone();
        odd[61..65].copy_from_slice(b"1234");
        assert!(!looks_like_noemie(&odd));
        assert!(looks_like_noemie(b"0128000CP"));
        assert!(!looks_like_noemie(b"0128001"));
        assert!(!looks_like_noemie(b"00"));
    }

    #[test]
    fn euros_are_signed() {
        assert_eq!(euros(-5), "-0.05");
        assert_eq!(euros(12345), "123.45");
        assert_eq!(euros(i64::MIN), "-92233720368547758.08");
    }
}
