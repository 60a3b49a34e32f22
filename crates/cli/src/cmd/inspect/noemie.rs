//! NOEMIE returns of any reference: files, findings with their severity, then the views — for
//! 580/576/900 payments and invoices with their state and amounts, for any other reference the
//! plain entity tree — and every entity field by field with the names of
//! `svoct_formats::noemie::layouts`.
//!
//! Two entries: [`detect`] builds the whole report (for an input found inside a message), and
//! [`stream`] writes it out as it walks the input, so that a large return costs about its own
//! size in memory: the entity streams are compacted inside the input buffer
//! ([`parse_owned`]), and invoices then payments are written as soon as each is complete (two
//! walks over the entities: one list is never held whole).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde_json::{Map, Value, json};
use svoct_formats::noemie::layouts::{H000, T999};
use svoct_formats::noemie::{
    Decoded, EntityNode, Invoice, InvoiceState, Noemie, NoemieFile, Part, PartState, Payment, Severity,
    TreeEvent, ViewItem, ViewKind, Want, entity_tree, parse, parse_owned,
};

use super::{Detected, Options, layout_text};

mod json;

const FORMAT: &str = "noemie";

/// NOEMIE inputs are recognised without reading them whole:
/// - packaging (a): 4 digits (the line length) then `000`;
/// - packaging (b): a `000` header whose reference (62-64) is three digits and whose 66-67 is
///   not `B2` (a B2 file has its norm at 62-65, `SV14`..., and always `B2` at 66-67).
pub(super) fn looks_like_noemie(bytes: &[u8]) -> bool {
    let lines =
        bytes.get(..4).is_some_and(|p| p.iter().all(u8::is_ascii_digit)) && bytes.get(4..7) == Some(b"000");
    let blocks = bytes.starts_with(b"000")
        && bytes
            .get(61..64)
            .is_some_and(|r| r.iter().all(u8::is_ascii_digit))
        && bytes.get(65..67).is_some_and(|v| v != b"B2");
    lines || blocks
}

/// The detector (the whole report in memory: used for inputs inside a message).
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if !looks_like_noemie(bytes) {
        return None;
    }
    let mut json_out = Vec::new();
    let mut text_out = Vec::new();
    let parsed = parse(bytes);
    let problem = match &parsed {
        Ok(n) => {
            let _ = write_json(n, &mut json_out);
            let _ = write_text(n, opts, &mut text_out);
            problem_of(n)
        }
        Err(e) => {
            let _ = write_structure_error(bytes.len(), &e.to_string(), true, &mut json_out);
            let _ = write_structure_error(bytes.len(), &e.to_string(), false, &mut text_out);
            Some(e.to_string())
        }
    };
    let mut json: Map<String, Value> = serde_json::from_slice(&json_out).unwrap_or_default();
    json.remove("format");
    json.remove("valid");
    Some(Detected {
        format: FORMAT,
        json,
        text: String::from_utf8_lossy(&text_out).into_owned(),
        problem,
    })
}

/// Inspect `bytes` and write the report (JSON or text) to `out` as it goes. Returns the
/// one-line reason when the input is invalid (a structure error, or any finding of severity
/// `error`).
pub fn stream(bytes: Vec<u8>, opts: &Options, json: bool, out: impl Write) -> io::Result<Option<String>> {
    let mut out = io::BufWriter::with_capacity(1 << 16, out);
    let len = bytes.len();
    let problem = match parse_owned(bytes) {
        Ok(n) => {
            if json {
                write_json(&n, &mut out)?;
            } else {
                write_text(&n, opts, &mut out)?;
            }
            problem_of(&n)
        }
        Err(e) => {
            write_structure_error(len, &e.to_string(), json, &mut out)?;
            Some(e.to_string())
        }
    };
    out.flush()?;
    Ok(problem)
}

/// Only errors make a NOEMIE input invalid; warnings and information do not.
fn problem_of(n: &Noemie) -> Option<String> {
    let errors: Vec<_> = n
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    errors.first().map(|f| {
        format!(
            "{} error finding(s); first: file {} at byte offset {}{}: {}",
            errors.len(),
            f.file,
            f.offset,
            f.field.map(|c| format!(", field {c}")).unwrap_or_default(),
            f.message
        )
    })
}

fn write_structure_error(len: usize, e: &str, json: bool, out: &mut impl Write) -> io::Result<()> {
    if json {
        let v = json!({
            "format": FORMAT,
            "valid": false,
            "reference": Value::Null,
            "file_count": 0,
            "findings": [{ "severity": "error", "kind": "structure", "message": e }],
        });
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)
    } else {
        writeln!(out, "{FORMAT}: {len} bytes, structure error: {e}")
    }
}

/// Write a JSON key and value, preceded by a comma.
fn field(out: &mut impl Write, key: &str, value: &impl serde::Serialize) -> io::Result<()> {
    write!(out, ",\"{key}\":")?;
    serde_json::to_writer(&mut *out, value).map_err(io::Error::from)
}

/// The report as one JSON object, written as it is walked.
fn write_json(n: &Noemie, out: &mut impl Write) -> io::Result<()> {
    let summaries: Vec<_> = n
        .files
        .iter()
        .map(svoct_formats::noemie::FileSummary::of)
        .collect();
    write!(
        out,
        "{{\"format\":\"{FORMAT}\",\"valid\":{}",
        problem_of(n).is_none()
    )?;
    field(out, "reference", &n.references())?;
    field(out, "packaging", &n.packaging)?;
    // Written here, not through `crate::json::print`: the same names (docs/json.md).
    field(out, "file_count", &n.files.len())?;
    // One summary per file, small: through the same naming pass as every other output.
    let summaries = serde_json::to_value(&summaries).map(crate::json::normalize)?;
    field(out, "file_summaries", &summaries)?;
    field(out, "findings", &n.findings)?;
    field(out, "findings_suppressed", &n.findings_suppressed)?;
    // Invoices, then payments: two walks, so that neither list is ever held whole.
    for (key, want) in [
        (
            "invoices",
            Want {
                invoices: true,
                payments: false,
            },
        ),
        (
            "payments",
            Want {
                invoices: false,
                payments: true,
            },
        ),
    ] {
        write!(out, ",\"{key}\":[")?;
        let mut first = true;
        let mut result = Ok(());
        // Each item is written into one reused buffer (by hand: `json`, without serde), then
        // written in one call.
        let mut item_json = Vec::with_capacity(1024);
        n.walk_view_ref(want, |item| {
            if result.is_err() {
                return;
            }
            item_json.clear();
            if !first {
                item_json.push(b',');
            }
            first = false;
            match &item {
                ViewItem::Invoice(inv) => json::invoice(&mut item_json, inv),
                ViewItem::Payment(p) => json::payment(&mut item_json, p),
            }
            result = out.write_all(&item_json);
        });
        result?;
        write!(out, "]")?;
    }
    write!(out, ",\"entities\":[")?;
    let mut first = true;
    for f in n
        .files
        .iter()
        .filter(|f| ViewKind::of(&f.reference()) == ViewKind::EntityTree)
    {
        write_tree(f, &mut first, out)?;
    }
    writeln!(out, "]}}")
}

/// The entity tree of one file as nested JSON nodes (`children` arrays), written as walked.
fn write_tree(f: &NoemieFile, first: &mut bool, out: &mut impl Write) -> io::Result<()> {
    let mut result = Ok(());
    let comma = |out: &mut dyn Write, first: &mut bool| {
        let sep: &[u8] = if *first { b"" } else { b"," };
        *first = false;
        out.write_all(sep)
    };
    let mut firsts: Vec<bool> = vec![*first];
    entity_tree(f, |ev| {
        if result.is_err() {
            return;
        }
        result = (|| -> io::Result<()> {
            match ev {
                TreeEvent::Open(e) | TreeEvent::Control(e) => {
                    if let Some(top) = firsts.last_mut() {
                        comma(out, top)?;
                    }
                    let node = serde_json::to_vec(&EntityNode::of(f, &e))?;
                    if matches!(ev, TreeEvent::Open(_)) {
                        // Leave the (empty) children array open: `...,"children":[`.
                        out.write_all(node.get(..node.len().saturating_sub(2)).unwrap_or(&node))?;
                        firsts.push(true);
                    } else {
                        out.write_all(&node)?;
                    }
                }
                TreeEvent::Close => {
                    firsts.pop();
                    out.write_all(b"]}")?;
                }
            }
            Ok(())
        })();
    });
    *first = firsts.first().copied().unwrap_or(false);
    result
}

fn euros(cents: i64) -> String {
    let mut line = Vec::new();
    push_euros(&mut line, cents);
    String::from_utf8(line).unwrap_or_default()
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

/// Append the decimal digits of `v` (the report lines are written for every invoice and
/// payment of a large return: no formatting machinery, no allocation).
fn push_u64(line: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    line.extend_from_slice(&digits[i..]);
}

/// Append a signed integer.
fn push_i64(line: &mut Vec<u8>, v: i64) {
    if v < 0 {
        line.push(b'-');
    }
    push_u64(line, v.unsigned_abs());
}

/// Append cents as signed euros: `-0.05`, `123.45`.
fn push_euros(line: &mut Vec<u8>, cents: i64) {
    if cents < 0 {
        line.push(b'-');
    }
    let abs = cents.unsigned_abs();
    push_u64(line, abs / 100);
    line.push(b'.');
    let c = (abs % 100) as u8;
    line.extend_from_slice(&[b'0' + c / 10, b'0' + c % 10]);
}

/// The names the human report gives the states (their `Debug` names, which the report has
/// always printed).
fn part_state_name(s: PartState) -> &'static str {
    match s {
        PartState::Paid => "Paid",
        PartState::Rejected => "Rejected",
        PartState::Deferred => "Deferred",
        PartState::NotProcessed => "NotProcessed",
        PartState::Unknown => "Unknown",
    }
}

fn invoice_state_name(s: InvoiceState) -> &'static str {
    match s {
        InvoiceState::Paid => "Paid",
        InvoiceState::Rejected => "Rejected",
        InvoiceState::Deferred => "Deferred",
        InvoiceState::Partial => "Partial",
        InvoiceState::NotProcessed => "NotProcessed",
    }
}

/// One line per invoice, written into `line` (cleared first).
fn invoice_line(line: &mut Vec<u8>, inv: &Invoice<Cow<'_, str>>) {
    let part = |line: &mut Vec<u8>, p: &Option<Part<Cow<'_, str>>>| match p {
        None => line.push(b'-'),
        Some(p) => {
            line.extend_from_slice(part_state_name(p.state).as_bytes());
            line.extend_from_slice(b" requested ");
            push_euros(line, i64::try_from(p.requested_cents).unwrap_or(i64::MAX));
            line.extend_from_slice(b" paid ");
            push_euros(line, p.paid_cents);
        }
    };
    line.clear();
    line.extend_from_slice(b"  invoice ");
    line.extend_from_slice(inv.invoice_number.as_bytes());
    line.extend_from_slice(b" (lot ");
    line.extend_from_slice(inv.lot_number.as_bytes());
    line.extend_from_slice(b"): ");
    line.extend_from_slice(invoice_state_name(inv.state).as_bytes());
    line.extend_from_slice(b"; AMO ");
    part(line, &inv.amo);
    line.extend_from_slice(b"; AMC ");
    part(line, &inv.amc);
    line.extend_from_slice(b"; paid ");
    push_euros(line, inv.paid_cents);
    line.extend_from_slice(b"; ");
    push_u64(line, inv.rejects.len() as u64);
    line.extend_from_slice(b" reject(s)\n");
}

/// One line per payment, written into `line` (cleared first).
fn payment_line(line: &mut Vec<u8>, i: usize, p: &Payment<Cow<'_, str>>) {
    line.clear();
    line.extend_from_slice(b"  payment ");
    push_u64(line, i as u64);
    line.extend_from_slice(b": recipient ");
    line.extend_from_slice(p.settlement_recipient.as_deref().unwrap_or("?").as_bytes());
    line.extend_from_slice(b", ");
    push_u64(line, p.invoices.len() as u64);
    line.extend_from_slice(b" invoice(s), amount ");
    push_euros(line, p.amount_cents);
    line.push(b'\n');
}

/// The human report: summary, findings, views (streamed), then up to `--max-items` entities
/// field by field.
fn write_text(n: &Noemie, opts: &Options, out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{FORMAT}: reference {}, packaging {:?}, {} file(s), {} finding(s)",
        n.references(),
        n.packaging,
        n.files.len(),
        n.findings.len() + n.findings_suppressed
    )?;
    for f in n.files.iter().map(svoct_formats::noemie::FileSummary::of) {
        writeln!(
            out,
            "  file {} (offset {}): reference {} ({:?} view) {} {} -> {} {}, id {:?}, {} entities, {} records, {} lot(s), amount {}",
            f.index,
            f.offset,
            f.reference,
            f.view,
            f.sender_type,
            f.sender_number,
            f.recipient_type,
            f.recipient_number,
            f.file_id,
            f.entities,
            f.records,
            f.lots,
            euros(f.amount_cents)
        )?;
    }
    for f in &n.findings {
        writeln!(
            out,
            "  {:?}: file {} offset {}{}{}: {:?}: {}",
            f.severity,
            f.file,
            f.offset,
            f.code
                .as_deref()
                .map(|c| format!(" entity {c}"))
                .unwrap_or_default(),
            f.field.map(|c| format!(" field {c}")).unwrap_or_default(),
            f.kind,
            f.message
        )?;
    }
    let (mut payments, mut invoices) = (0usize, 0usize);
    let mut result = Ok(());
    let mut line = Vec::with_capacity(256);
    // Only what the lines show is read from the entities.
    n.walk_summaries(|item| {
        if result.is_ok() {
            match item {
                ViewItem::Invoice(inv) => {
                    invoices += 1;
                    invoice_line(&mut line, &inv);
                }
                ViewItem::Payment(p) => {
                    payments += 1;
                    payment_line(&mut line, payments - 1, &p);
                }
            }
            result = out.write_all(&line);
        }
    });
    result?;
    writeln!(out, "  {payments} payment(s), {invoices} invoice(s)")?;
    for f in n
        .files
        .iter()
        .filter(|f| ViewKind::of(&f.reference()) == ViewKind::EntityTree)
    {
        write_tree_text(f, opts, out)?;
    }
    write_entities(n, opts, out)
}

/// The entity tree of a file with no payment view, one indented line per entity (at most
/// `--max-items`).
fn write_tree_text(f: &NoemieFile, opts: &Options, out: &mut impl Write) -> io::Result<()> {
    writeln!(out, "  file {} entity tree:", f.index)?;
    let (mut depth, mut shown) = (0usize, 0usize);
    let mut result = Ok(());
    entity_tree(f, |ev| {
        let e = match ev {
            TreeEvent::Close => {
                depth = depth.saturating_sub(1);
                return;
            }
            TreeEvent::Open(e) | TreeEvent::Control(e) => e,
        };
        if result.is_ok() && shown < opts.max_items {
            shown += 1;
            let title = e.layout.map_or("(no layout)", |l| l.title);
            let pad = "  ".repeat(depth.min(40));
            result = writeln!(out, "    {pad}{} {title} (entity {})", e.code_str(), e.index);
        }
        if matches!(ev, TreeEvent::Open(_)) {
            depth += 1;
        }
    });
    result?;
    if shown >= opts.max_items && f.entities.len() > shown {
        writeln!(out, "    ... more entities (--max-items)")?;
    }
    Ok(())
}

/// Header, entities (at most `--max-items` over all files) and trailer, field by field.
fn write_entities(n: &Noemie, opts: &Options, out: &mut impl Write) -> io::Result<()> {
    let mut shown = 0usize;
    for file in &n.files {
        let mut text = String::new();
        let _ = writeln!(
            text,
            "  file {} header (offset {}): {}",
            file.index, file.offset, H000.title
        );
        layout_text(&mut text, &H000, &file.header);
        let _ = writeln!(text, "  file {} entities:", file.index);
        out.write_all(text.as_bytes())?;
        for e in file.iter() {
            if shown >= opts.max_items {
                writeln!(out, "  ... more entities (--max-items)")?;
                return Ok(());
            }
            shown += 1;
            let title = e.layout.map_or("(no layout)", |l| l.title);
            let level = e.entity.level.map_or_else(|| "??".into(), |l| format!("{l:02}"));
            writeln!(
                out,
                "    entity {} {} level {level}: {title}",
                e.index,
                e.code_str()
            )?;
            if e.layout.is_none() {
                writeln!(out, "      raw {:?}", String::from_utf8_lossy(e.raw))?;
            }
            for f in e.fields() {
                if f.name == "end" || f.name.starts_with("filler") {
                    continue;
                }
                writeln!(
                    out,
                    "      {:<28} {:<16} {}",
                    f.name,
                    format!("{:?}", f.raw),
                    decoded(&f.value)
                )?;
            }
        }
        let mut text = String::new();
        let _ = writeln!(
            text,
            "  file {} trailer (offset {}): {}",
            file.index, file.trailer_offset, T999.title
        );
        layout_text(&mut text, &T999, &file.trailer);
        out.write_all(text.as_bytes())?;
    }
    Ok(())
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
        assert_eq!(euros(0), "0.00");
        assert_eq!(euros(100), "1.00");
        assert_eq!(euros(i64::MAX), "92233720368547758.07");
    }

    #[test]
    fn state_names_are_the_debug_names() {
        use PartState as P;
        for s in [P::Paid, P::Rejected, P::Deferred, P::NotProcessed, P::Unknown] {
            assert_eq!(part_state_name(s), format!("{s:?}"));
        }
        use InvoiceState as I;
        for s in [I::Paid, I::Rejected, I::Deferred, I::Partial, I::NotProcessed] {
            assert_eq!(invoice_state_name(s), format!("{s:?}"));
        }
    }
}
