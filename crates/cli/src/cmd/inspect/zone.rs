//! SESAM-Vitale API memory zones: groups and fields, named where the annex (or the provisional
//! layout of `docs/formats/zone.md`) names them; lots embedded in groups 13/93 are parsed as B2.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::zone::{
    FileInfo, FileMessage, Group, LotInfo, Zone, field_name, group_name, ids, is_text, latin1,
};

use super::{Detected, Options, hex};

const FORMAT: &str = "ssv-zone";

/// Group identifiers are big-endian u16 values below a few thousand, so a zone starts with a
/// byte below 0x08; text formats (B2, NOEMIE, messages) never do.
fn looks_like_zone(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&b) if b < 0x08) && bytes.len() >= 3
}

/// Values longer than this are shown by length only in the text report.
const SHOW_MAX: usize = 80;

pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if !looks_like_zone(bytes) {
        return None;
    }
    let zone = match Zone::decode(bytes) {
        Ok(z) => z,
        Err(e) => {
            let mut j = Map::new();
            j.insert("group_count".into(), 0.into());
            j.insert(
                "findings".into(),
                json!([{ "code": "structure", "message": e.to_string() }]),
            );
            return Some(Detected {
                format: FORMAT,
                json: j,
                text: format!("{FORMAT}: {} bytes, structure error: {e}\n", bytes.len()),
                problem: Some(e.to_string()),
            });
        }
    };
    Some(report(&zone, bytes.len(), opts))
}

fn report(zone: &Zone<'_>, len: usize, opts: &Options) -> Detected {
    let mut findings: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut groups = Vec::new();
    let mut lot_count = 0usize;
    let mut invoice_count = 0usize;
    let mut occurrence = std::collections::HashMap::<u16, usize>::new();
    for (gi, g) in zone.groups().iter().enumerate() {
        let occ = occurrence.entry(g.id).or_insert(0);
        let this_occ = *occ;
        *occ += 1;
        // Typed checks of the named groups.
        let check = match g.id {
            ids::FILE_INFO_FSE | ids::FILE_INFO_DRE => FileInfo::read(g).err(),
            ids::FILE_MESSAGE => FileMessage::read(g).err(),
            ids::LOT_INFO_FSE | ids::LOT_INFO_DRE => match LotInfo::read(g) {
                Ok(info) => {
                    lot_count += 1;
                    lot_checks(&info, g.offset, &mut findings, &mut invoice_count);
                    None
                }
                Err(e) => Some(e),
            },
            _ => None,
        };
        if let Some(e) = check {
            findings.push(format!("group {} at offset {}: {e}", g.id, g.offset));
        }
        let show = gi < opts.max_items;
        if show {
            let _ = writeln!(
                text,
                "  group {} #{this_occ} (offset {}){}: {} fields",
                g.id,
                g.offset,
                group_name(g.id).map(|n| format!(" {n}")).unwrap_or_default(),
                g.field_count()
            );
        }
        let fields = group_fields(g, show.then_some(&mut text));
        if show {
            groups.push(json!({
                "id": g.id,
                "name": group_name(g.id),
                "occurrence": this_occ,
                "offset": g.offset,
                "fields": fields,
            }));
        }
    }
    let total = zone.groups().len();
    if total > opts.max_items {
        let _ = writeln!(text, "  ... {} more groups (--max-items)", total - opts.max_items);
    }
    for f in &findings {
        let _ = writeln!(text, "  finding: {f}");
    }
    let header = format!(
        "{FORMAT}: {len} bytes, {total} groups, {lot_count} lots, {invoice_count} invoices, {} findings\n",
        findings.len()
    );
    let problem = findings
        .first()
        .map(|f| format!("{} finding(s); first: {f}", findings.len()));
    let mut j = Map::new();
    j.insert("group_count".into(), total.into());
    j.insert("lot_count".into(), lot_count.into());
    j.insert("invoice_count".into(), invoice_count.into());
    j.insert("groups".into(), Value::Array(groups));
    j.insert("findings".into(), json!(findings));
    Detected {
        format: FORMAT,
        json: j,
        text: header + &text,
        problem,
    }
}

/// The fields of group `g` as JSON; each also as a line of `text` when given (the text report
/// shows the first groups only). The lot of a lot group is summarised as B2.
fn group_fields(g: &Group<'_>, mut text: Option<&mut String>) -> Vec<Value> {
    let mut fields = Vec::new();
    for (i, value) in g.fields().enumerate() {
        let n = i + 1;
        let name = field_name(g.id, n);
        let lot_field = matches!(g.id, ids::LOT_INFO_FSE | ids::LOT_INFO_DRE) && n == 9;
        let mut f = Map::new();
        f.insert("n".into(), n.into());
        f.insert("name".into(), name.into());
        f.insert("len".into(), value.len().into());
        if lot_field && !value.is_empty() {
            let (summary, _, _) = super::b2::lot_summary(value);
            f.insert("b2_lot".into(), summary);
        } else if is_text(value) {
            f.insert("text".into(), latin1(value).into());
        } else {
            f.insert("hex".into(), hex(value).into());
        }
        fields.push(Value::Object(f));
        if let Some(text) = text.as_deref_mut() {
            let shown = if lot_field && !value.is_empty() {
                format!("<B2 lot, {} bytes>", value.len())
            } else if value.len() > SHOW_MAX {
                format!("<{} bytes>", value.len())
            } else if is_text(value) {
                format!("{:?}", latin1(value))
            } else {
                format!("0x{}", hex(value))
            };
            let _ = writeln!(text, "    field {n:>2} {:<24} {shown}", name.unwrap_or(""));
        }
    }
    fields
}

/// A lot group: the embedded lot must parse and validate, and the invoice count field must match.
fn lot_checks(info: &LotInfo<'_>, offset: usize, findings: &mut Vec<String>, invoices: &mut usize) {
    let declared = std::str::from_utf8(info.invoice_count)
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    if info.lot.is_empty() {
        *invoices += declared.unwrap_or(0);
        return;
    }
    let (_, actual, msgs) = super::b2::lot_summary(info.lot);
    *invoices += actual;
    for m in msgs {
        findings.push(format!("lot in group at offset {offset}: {m}"));
    }
    if declared != Some(actual) {
        findings.push(format!(
            "group at offset {offset}: field 4 invoice_count {:?} but the lot holds {actual} invoices",
            latin1(info.invoice_count)
        ));
    }
}
