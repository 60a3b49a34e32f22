//! The import file of `svoct oct ps import`: a header line naming the columns `address`,
//! `sender_number`, `ps_number` (required), `category`, `mailbox`, `certificate` (optional, any
//! order), then one practice per line. Tolerant of what spreadsheets write: a UTF-8 BOM, CRLF
//! line ends, `;` or `,` as separator (the header's decides), fields in double quotes (`""` for
//! a quote inside), blank lines. Every problem is reported with its line number.

use std::collections::HashMap;
use std::fmt;

use svoct_formats::PaddedNumber;

use crate::config::Sender;

/// A bad line of an import file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CsvProblem {
    /// 1-based, the header being line 1.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for CsvProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const COLUMNS: [&str; 6] = [
    "address",
    "sender_number",
    "ps_number",
    "category",
    "mailbox",
    "certificate",
];

/// Splits one line at `sep`, outside double quotes. `Err` for an unterminated quote.
fn fields(line: &str, sep: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            (c, false) if c == sep => out.push(std::mem::take(&mut cur).trim().to_owned()),
            (c, _) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur.trim().to_owned());
    Ok(out)
}

/// The column of each name of [`COLUMNS`] in the header.
fn header(line: &str, sep: char) -> Result<HashMap<&'static str, usize>, String> {
    let names = fields(line, sep)?;
    let mut at = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(format!(
                "unknown column {name:?} (the columns are {})",
                COLUMNS.join(",")
            ));
        };
        if at.insert(*known, i).is_some() {
            return Err(format!("column {name} appears twice"));
        }
    }
    for required in &COLUMNS[..3] {
        if !at.contains_key(required) {
            return Err(format!("the header has no {required} column"));
        }
    }
    Ok(at)
}

/// The practices of an import file, with their line numbers; every bad line otherwise. The
/// values are checked by [`super::problems`], not here.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Sender)>, Vec<CsvProblem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((first, head)) = lines.next() else {
        return Err(vec![CsvProblem {
            line: 1,
            message: "empty file: a header line is expected".into(),
        }]);
    };
    let sep = if head.contains(';') { ';' } else { ',' };
    let columns = header(head, sep).map_err(|message| vec![CsvProblem { line: first, message }])?;
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (line, text) in lines {
        match fields(text, sep) {
            Ok(values) if values.len() != columns.len() => {
                bad.push(CsvProblem {
                    line,
                    message: format!("{} field(s), the header has {}", values.len(), columns.len()),
                });
            }
            Ok(values) => rows.push((line, sender(&columns, &values))),
            Err(message) => bad.push(CsvProblem { line, message }),
        }
    }
    if bad.is_empty() { Ok(rows) } else { Err(bad) }
}

fn sender(columns: &HashMap<&'static str, usize>, values: &[String]) -> Sender {
    let get = |name: &str| {
        columns
            .get(name)
            .and_then(|&i| values.get(i))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    Sender {
        address: get("address").unwrap_or_default().to_owned(),
        sender_number: get("sender_number").unwrap_or_default().to_owned(),
        ps_number: get("ps_number").unwrap_or_default().to_owned(),
        category: get("category").unwrap_or("XX").to_owned(),
        mailbox: get("mailbox").map(str::to_owned),
        certificate: get("certificate").map(Into::into),
    }
}

/// Lines that repeat an address, sender number or PS number of an earlier line of the file.
pub(super) fn duplicates(rows: &[(usize, Sender)]) -> Vec<CsvProblem> {
    let mut seen: HashMap<(&str, String), usize> = HashMap::new();
    let mut bad = Vec::new();
    for (line, s) in rows {
        let keys = [
            ("address", s.address.to_ascii_lowercase()),
            (
                "sender number",
                PaddedNumber::new(&s.sender_number).significant().to_owned(),
            ),
            (
                "PS number",
                PaddedNumber::new(&s.ps_number).significant().to_owned(),
            ),
        ];
        for (what, key) in keys {
            if key.is_empty() {
                continue;
            }
            if let Some(first) = seen.insert((what, key), *line) {
                bad.push(CsvProblem {
                    line: *line,
                    message: format!("same {what} as line {first}"),
                });
            }
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_crlf_semicolons_and_quotes() {
        let text = "\u{feff}ps_number;address;sender_number;mailbox\r\n\
                    123456789;\"dr.a@ps.example\";00000123456789;\"box \"\"a\"\"@ps\"\r\n\
                    \r\n\
                    987654321;b@ps.example;987654321;\r\n";
        let rows = parse_csv(text).unwrap();
        assert_eq!(rows.len(), 2);
        let (line, a) = &rows[0];
        assert_eq!(*line, 2);
        assert_eq!(a.address, "dr.a@ps.example");
        assert_eq!(a.sender_number, "00000123456789");
        assert_eq!(a.category, "XX");
        assert_eq!(a.mailbox.as_deref(), Some("box \"a\"@ps"));
        assert_eq!(rows[1].0, 4);
        assert_eq!(rows[1].1.mailbox, None);
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = "address,sender_number,ps_number\na@ps,1,11\nb@ps,2\n\"c@ps,3,33\n";
        let bad = parse_csv(text).unwrap_err();
        let lines: Vec<usize> = bad.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4]);
        assert!(
            parse_csv("address,number\n").unwrap_err()[0]
                .message
                .contains("unknown column")
        );
        assert!(
            parse_csv("address,ps_number\n").unwrap_err()[0]
                .message
                .contains("sender_number")
        );
        assert_eq!(parse_csv("").unwrap_err()[0].line, 1);
    }

    #[test]
    fn duplicates_within_the_file() {
        let rows = parse_csv("address,sender_number,ps_number\na@ps,1,11\nA@PS,2,22\nc@ps,3,011\n").unwrap();
        let bad = duplicates(&rows);
        assert_eq!(
            bad.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "line 3: same address as line 2",
                "line 4: same PS number as line 2"
            ]
        );
    }
}
