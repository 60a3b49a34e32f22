//! ART technical receipts (provisional body, `docs/formats/art.md`): the machine block parsed,
//! the human lines shown as written.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use svoct_formats::art::{Art, BEGIN, MAX_BODY};

use super::{Detected, Options, contains, map_of};

const FORMAT: &str = "art";

/// The fixed first line the project writes.
const TITLE: &[u8] = b"ACCUSE DE RECEPTION TECHNIQUE";

/// The detector: the body starts with the title or holds the machine block's first line.
pub fn detect(bytes: &[u8], _opts: &Options) -> Option<Detected> {
    let head = bytes.get(..MAX_BODY.min(bytes.len())).unwrap_or(bytes);
    if !(bytes.starts_with(TITLE) || contains(head, BEGIN.as_bytes())) {
        return None;
    }
    let mut text = String::new();
    let (j, problem) = match Art::parse(bytes) {
        Ok(art) => {
            let _ = writeln!(
                text,
                "{FORMAT}: OCT {}, PS {}, subject {:?}, profile {}, {} invoice(s), file {:?}, {} lot(s), {} AMC flow(s)",
                art.oct_id,
                art.ps_number,
                art.subject,
                art.profile,
                art.invoices,
                art.file_status,
                art.lots.len(),
                art.amc.len()
            );
            for l in &art.lots {
                let _ = writeln!(
                    text,
                    "  lot {:?} {} {} invoice(s): {:?} {}",
                    l.number, l.kind, l.invoices, l.status, l.detail
                );
            }
            for a in &art.amc {
                let _ = writeln!(
                    text,
                    "  AMC {} {} invoice(s) -> {}",
                    a.organisation, a.invoices, a.mailbox
                );
            }
            let mut j = map_of(&art);
            j.insert("lot_count".into(), art.lots.len().into());
            j.insert("amc_count".into(), art.amc.len().into());
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
    let _ = writeln!(text, "  body:");
    for line in String::from_utf8_lossy(head).lines() {
        let _ = writeln!(text, "    {line}");
    }
    Some(Detected {
        format: FORMAT,
        json: j,
        text,
        problem,
    })
}
