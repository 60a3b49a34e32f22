//! ARL (provisional format, `docs/formats/arl.md`): the acknowledgement of one lot, its status and
//! reasons; records shown field by field with the names of `svoct_formats::arl`'s layouts.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::arl::{ARL_RECORD, Arl, MOT_RECORD, RECORD_LEN};

use super::{Detected, Options, layout_text, map_of};

const FORMAT: &str = "arl";

/// The records of the text: 128 bytes each, CRLF, LF or nothing between them.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let take = RECORD_LEN.min(rest.len());
        let (rec, tail) = rest.split_at(take);
        out.push(rec);
        rest = tail
            .strip_prefix(b"\r\n")
            .or_else(|| tail.strip_prefix(b"\n"))
            .unwrap_or(tail);
    }
    out
}

/// The detector.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if !bytes.starts_with(b"ARL") {
        return None;
    }
    let mut text = String::new();
    let (mut j, problem) = match Arl::parse(bytes) {
        Ok(arl) => {
            let _ = writeln!(
                text,
                "{FORMAT}: lot {} of {:?} from {} {} to PS {}: {:?}, {} reason(s)",
                arl.lot_number,
                arl.lot_date.yymmdd(),
                arl.sender_type,
                arl.sender_number,
                arl.ps_number,
                arl.status,
                arl.reasons.len()
            );
            let mut j = map_of(&arl);
            j.insert("reason_count".into(), arl.reasons.len().into());
            j.insert("findings".into(), Value::Array(Vec::new()));
            (j, None)
        }
        Err(e) => {
            let _ = writeln!(text, "{FORMAT}: {} bytes, error: {e}", bytes.len());
            let mut j = Map::new();
            j.insert(
                "findings".into(),
                json!([{ "code": "structure", "message": e.to_string() }]),
            );
            (j, Some(e.to_string()))
        }
    };
    let recs = records(bytes);
    for (i, rec) in recs.iter().enumerate().take(opts.max_items) {
        let layout = if rec.starts_with(b"ARL") {
            Some(&ARL_RECORD)
        } else if rec.starts_with(b"MOT") {
            Some(&MOT_RECORD)
        } else {
            None
        };
        let _ = writeln!(
            text,
            "  record {i} (offset ~{}): {}",
            i * (RECORD_LEN + 2),
            layout.map_or("(no layout)", |l| l.title)
        );
        if let Some(l) = layout {
            layout_text(&mut text, l, rec);
        }
    }
    j.insert("record_count".into(), recs.len().into());
    Some(Detected {
        format: FORMAT,
        json: j,
        text,
        problem,
    })
}
