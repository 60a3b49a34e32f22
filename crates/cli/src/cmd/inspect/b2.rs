//! B2 files (`000` ... `999`) and bare lots: records through the layout tables, lots with their
//! destination and invoice count, and the validator's findings.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::b2::{B2Input, RECORD_LEN, RecordType, layout_of, parse, validate};

use super::{Detected, Options};

/// Format names.
const FILE: &str = "b2-file";
const LOTS: &str = "b2-lots";

/// B2 records are printable ASCII starting with their type digit: `000` for a file, `1` for a
/// bare sequence of lots. Anything else is not ours.
fn looks_like_b2(bytes: &[u8]) -> Option<&'static str> {
    let first = bytes.get(..RECORD_LEN.min(bytes.len()))?;
    if first.len() < 3 || !first.iter().all(|b| (0x20..0x7F).contains(b)) {
        return None;
    }
    if first.starts_with(b"000") {
        Some(FILE)
    } else if first.first() == Some(&b'1') {
        Some(LOTS)
    } else {
        None
    }
}

/// The detector.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    let format = looks_like_b2(bytes)?;
    Some(match parse(bytes) {
        Ok(input) => report(&input, opts),
        Err(e) => {
            let finding = json!({
                "record_index": e.record(),
                "offset": e.offset(),
                "field": Value::Null,
                "code": "structure",
                "message": e.to_string(),
            });
            let mut j = Map::new();
            j.insert("record_count".into(), (bytes.len() / RECORD_LEN).into());
            j.insert("lot_count".into(), 0.into());
            j.insert("invoice_count".into(), 0.into());
            j.insert("findings".into(), Value::Array(vec![finding]));
            Detected {
                format,
                json: j,
                text: format!("{format}: {} bytes, structure error: {e}\n", bytes.len()),
                problem: Some(e.to_string()),
            }
        }
    })
}

fn record_json(index: usize, rec: &[u8]) -> Value {
    let mut fields = Map::new();
    if let Some(layout) = layout_of(rec) {
        for f in layout.fields {
            let value = f
                .raw(rec)
                .map(|r| String::from_utf8_lossy(r).trim_end().to_owned())
                .unwrap_or_default();
            if f.name.starts_with("filler") && value.is_empty() {
                continue;
            }
            fields.insert(f.name.into(), value.into());
        }
    }
    json!({
        "index": index,
        "offset": index * RECORD_LEN,
        "type": RecordType::of(rec).name(),
        "layout": layout_of(rec).map(|l| l.code),
        "fields": fields,
    })
}

fn record_text(out: &mut String, index: usize, rec: &[u8]) {
    let _ = writeln!(
        out,
        "  record {index} (offset {}): {}",
        index * RECORD_LEN,
        RecordType::of(rec).name()
    );
    match layout_of(rec) {
        Some(layout) => {
            for f in layout.fields {
                let raw = f.raw(rec).unwrap_or_default();
                let value = String::from_utf8_lossy(raw);
                if f.name.starts_with("filler") && value.trim().is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "    {:>3}-{:<3} {:<28} {:?}  ({})",
                    f.from, f.to, f.name, value, f.label
                );
            }
        }
        None => {
            let _ = writeln!(out, "    (no layout) {:?}", String::from_utf8_lossy(rec));
        }
    }
}

fn report(input: &B2Input<'_>, opts: &Options) -> Detected {
    let format = if input.is_framed() { FILE } else { LOTS };
    let findings = validate(input);
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{format}: {} records, {} lots, {} invoices, {} findings",
        input.record_count(),
        input.lots().len(),
        input.invoice_count(),
        findings.len()
    );
    let mut lots = Vec::new();
    for (i, lot) in input.lots().iter().enumerate() {
        let dest = lot.destination();
        let _ = writeln!(
            text,
            "  lot {i}: number {}, {}, destination {dest}, {} invoices, date {}, record {} (offset {})",
            lot.lot_number().map_or_else(|| "?".into(), |n| n.to_string()),
            lot.kind(),
            lot.invoice_count(),
            lot.date(),
            lot.first_record(),
            lot.offset()
        );
        lots.push(json!({
            "index": i,
            "lot_number": lot.lot_number(),
            "kind": lot.kind(),
            "destination": dest,
            "invoice_count": lot.invoice_count(),
            "record_count": lot.record_count(),
            "date": lot.date(),
            "norm_version": lot.norm_version(),
            "offset": lot.offset(),
        }));
    }
    let mut records = Vec::new();
    let total = input.record_count();
    for (i, rec) in input
        .bytes()
        .chunks_exact(RECORD_LEN)
        .enumerate()
        .take(opts.max_items)
    {
        record_text(&mut text, i, rec);
        records.push(record_json(i, rec));
    }
    if total > opts.max_items {
        let _ = writeln!(
            text,
            "  ... {} more records (--max-items)",
            total - opts.max_items
        );
    }
    for f in &findings {
        let _ = writeln!(
            text,
            "  finding: record {} offset {} {}{}: {}",
            f.record_index,
            f.offset,
            f.code,
            f.field.map(|n| format!(" field {n}")).unwrap_or_default(),
            f.message
        );
    }
    let problem = findings.first().map(|f| {
        format!(
            "{} finding(s); first: record {} at byte offset {}{}: {} ({})",
            findings.len(),
            f.record_index,
            f.offset,
            f.field.map(|n| format!(", field {n}")).unwrap_or_default(),
            f.message,
            f.code
        )
    });
    let mut j = Map::new();
    j.insert("record_count".into(), total.into());
    j.insert("lot_count".into(), input.lots().len().into());
    j.insert("invoice_count".into(), input.invoice_count().into());
    if let Some(h) = input.file_header() {
        j.insert("file_header".into(), record_json(0, h));
    }
    if let Some(t) = input.file_trailer() {
        j.insert("file_trailer".into(), record_json(total.saturating_sub(1), t));
    }
    j.insert("lots".into(), Value::Array(lots));
    j.insert("records".into(), Value::Array(records));
    j.insert(
        "findings".into(),
        serde_json::to_value(&findings).unwrap_or(Value::Array(Vec::new())),
    );
    Detected {
        format,
        json: j,
        text,
        problem,
    }
}

/// Summary of an embedded lot, for the memory-zone inspector: invoice count, destination and
/// findings, or the structural error.
pub(super) fn lot_summary(lot: &[u8]) -> (Value, usize, Vec<String>) {
    match parse(lot) {
        Ok(input) => {
            let findings = validate(&input);
            let msgs: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "record {} offset {}: {} ({})",
                        f.record_index, f.offset, f.message, f.code
                    )
                })
                .collect();
            let dest = input.lots().first().map(|l| l.destination().to_string());
            (
                json!({
                    "lot_count": input.lots().len(),
                    "invoice_count": input.invoice_count(),
                    "destination": dest,
                    "findings": findings,
                }),
                input.invoice_count(),
                msgs,
            )
        }
        Err(e) => (json!({ "error": e.to_string() }), 0, vec![e.to_string()]),
    }
}
