//! dLOI request and LOI increment files (provisional formats, `docs/formats/loi.md`).

use std::fmt::Write as _;

use serde_json::{Map, json};
use svoct_formats::loi::{DloiRequest, Increment};

use super::{Detected, Options, map_of};

const REQUEST: &str = "dloi-request";
const INCREMENT: &str = "dloi-increment";

fn failed(format: &'static str, len: usize, e: &dyn std::fmt::Display) -> Detected {
    let mut j = Map::new();
    j.insert(
        "findings".into(),
        json!([{ "code": "structure", "message": e.to_string() }]),
    );
    Detected {
        format,
        json: j,
        text: format!("{format}: {len} bytes, error: {e}\n"),
        problem: Some(e.to_string()),
    }
}

/// The detector: `DLOI;` starts a request, `LOI;` an increment.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    if bytes.starts_with(b"DLOI;") {
        return Some(match DloiRequest::parse(bytes) {
            Ok(r) => {
                let mut j = map_of(&r);
                j.insert("at".into(), rfc3339(&r.at).into());
                j.insert("findings".into(), json!([]));
                Detected {
                    format: REQUEST,
                    json: j,
                    text: format!(
                        "{REQUEST}: PS {} holds version {}, asked at {:?}\n  ps_number {:?}\n  version {}\n",
                        r.ps_number, r.version, r.at, r.ps_number, r.version
                    ),
                    problem: None,
                }
            }
            Err(e) => failed(REQUEST, bytes.len(), &e),
        });
    }
    if !bytes.starts_with(b"LOI;") {
        return None;
    }
    Some(match Increment::parse(bytes) {
        Ok(inc) => {
            let mut text = format!(
                "{INCREMENT}: version {} -> {}, {} addition(s), {} removal(s), produced {:?}\n",
                inc.from,
                inc.to,
                inc.additions.len(),
                inc.removals.len(),
                inc.at
            );
            for (verb, cards) in [("AJOUT", &inc.additions), ("RETRAIT", &inc.removals)] {
                for c in cards.iter().take(opts.max_items) {
                    let _ = writeln!(text, "  {verb} {c}");
                }
                if cards.len() > opts.max_items {
                    let _ = writeln!(text, "  ... {} more (--max-items)", cards.len() - opts.max_items);
                }
            }
            let mut j = map_of(&inc);
            j.insert("at".into(), rfc3339(&inc.at).into());
            j.insert("addition_count".into(), inc.additions.len().into());
            j.insert("removal_count".into(), inc.removals.len().into());
            j.insert("digest".into(), format!("{:016x}", inc.digest()).into());
            j.insert("findings".into(), json!([]));
            Detected {
                format: INCREMENT,
                json: j,
                text,
                problem: None,
            }
        }
        Err(e) => failed(INCREMENT, bytes.len(), &e),
    })
}

/// The file's `DATE` as every time in a JSON output (docs/json.md): the provisional format's
/// `DATE` is UTC (docs/formats/loi.md), so the offset is `Z`.
fn rfc3339(at: &svoct_formats::loi::DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year, at.month, at.day, at.hour, at.minute, at.second
    )
}
