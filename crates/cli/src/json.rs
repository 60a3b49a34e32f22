//! The one way every `--json` output is written (docs/json.md): one compact JSON document per
//! command on one line, with the same names everywhere.
//!
//! The library's types keep the store's representation (epoch milliseconds in `*_ms`, a count
//! and a list both called `invoices` in different rows) because `ps export` and the store read
//! them back; what a script sees is fixed here, once, for every command.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Print `value` as the command's JSON output.
pub fn print(value: &impl Serialize) -> Result<(), serde_json::Error> {
    println!(
        "{}",
        serde_json::to_string(&normalize(serde_json::to_value(value)?))?
    );
    Ok(())
}

/// Every instant as RFC 3339 (UTC, offset `Z`), the form of every time in every output.
pub fn time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Keys whose value is a list in one object and was a count in another: a count is
/// `<singular>_count`, so that one key never holds both.
const COLLECTIONS: &[(&str, &str)] = &[
    ("invoices", "invoice_count"),
    ("lots", "lot_count"),
    ("files", "file_count"),
    ("messages", "message_count"),
    ("cards", "card_count"),
    ("insurer_notices", "insurer_notice_count"),
    ("deductions", "deduction_count"),
    ("flat_payments", "flat_payment_count"),
];

/// Apply the conventions to a whole document: `*_ms` epoch milliseconds become `*_at` RFC 3339
/// strings, integer `at` / `*_at` (epoch seconds) become RFC 3339 strings, counts are `*_count`.
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(normalize_object(map)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn normalize_object(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        let (key, value) = normalize_field(key, normalize(value));
        out.insert(key, value);
    }
    out
}

fn normalize_field(key: String, value: Value) -> (String, Value) {
    if let Some(stem) = key.strip_suffix("_ms")
        && (value.is_i64() || value.is_null())
    {
        let at = value
            .as_i64()
            .and_then(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok());
        return (
            format!("{stem}_at"),
            at.map_or(Value::Null, |t| Value::String(time(t))),
        );
    }
    if (key == "at" || key.ends_with("_at") || key == "next_attempt")
        && let Some(secs) = value.as_i64()
    {
        let at = OffsetDateTime::from_unix_timestamp(secs).ok();
        // `next_attempt` (the OCT's outbox rows) is a time like the others: named so.
        let key = if key == "next_attempt" {
            "next_attempt_at".to_owned()
        } else {
            key
        };
        return (key, at.map_or(Value::Null, |t| Value::String(time(t))));
    }
    if value.is_number()
        && let Some((_, count)) = COLLECTIONS.iter().find(|(list, _)| *list == key)
    {
        return ((*count).to_owned(), value);
    }
    (key, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_milliseconds_become_rfc3339_under_an_at_name() {
        // 1_796_198_266_818 ms is 2026-12-02T07:57:46.818Z (checked with `date -u -d @1796198266.818`).
        let v = normalize(json!({ "sent_ms": 1_796_198_266_818_i64, "arl_ms": null }));
        assert_eq!(
            v,
            json!({ "sent_at": "2026-12-02T07:57:46.818Z", "arl_at": null })
        );
    }

    #[test]
    fn epoch_seconds_at_become_rfc3339_and_strings_stay() {
        let v = normalize(json!([{ "received_at": 0, "created_at": "2026-01-01T00:00:00Z" }]));
        assert_eq!(
            v,
            json!([{ "received_at": "1970-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z" }])
        );
    }

    #[test]
    fn a_count_never_takes_the_name_of_a_list() {
        let v = normalize(json!({ "invoices": 3, "lots": ["001"], "totals": { "files": 2 } }));
        assert_eq!(
            v,
            json!({ "invoice_count": 3, "lots": ["001"], "totals": { "file_count": 2 } })
        );
    }
}
