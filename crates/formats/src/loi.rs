//! LOI (*Liste d'Opposition Incrémentale*): the dLOI request a PS sends and the increment file
//! it gets back, in the project's **provisional** text formats (`docs/formats/loi.md`; the
//! official ones are in a non-public annex), plus [`LoiState`], the pure in-memory list that
//! applies increments in version order. The SQLite LOI store reuses [`LoiState::check`] and
//! [`Increment::digest`].

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Largest file accepted.
pub const MAX_FILE: usize = 64 << 20;
/// Most additions + removals in one increment.
pub const MAX_ENTRIES: usize = 2_000_000;
/// Largest version number (12 digits).
pub const MAX_VERSION: u64 = 999_999_999_999;

/// A date and time to the second (`AAAAMMJJhhmmss`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl DateTime {
    fn is_valid(&self) -> bool {
        crate::noemie::Ymd::new(self.year, self.month, self.day).is_valid()
            && self.year <= 9999
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }

    fn format(&self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    fn parse(s: &str) -> Option<DateTime> {
        if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u16>().ok());
        let d = DateTime {
            year: n(0..4)?,
            month: n(4..6)? as u8,
            day: n(6..8)? as u8,
            hour: n(8..10)? as u8,
            minute: n(10..12)? as u8,
            second: n(12..14)? as u8,
        };
        d.is_valid().then_some(d)
    }
}

/// The dLOI request: "send me the increments after the version I have".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DloiRequest {
    pub ps_number: String,
    /// The list version the PS holds (0 = none yet).
    pub version: u64,
    pub at: DateTime,
}

/// An increment: the list goes from version `from` to `to` by these additions and removals of
/// card identifiers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Increment {
    pub from: u64,
    pub to: u64,
    pub at: DateTime,
    pub additions: Vec<String>,
    pub removals: Vec<String>,
}

/// Why a file is not a dLOI request or an increment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoiError {
    #[error("file of {len} bytes exceeds {MAX_FILE}")]
    TooLarge { len: usize },
    #[error("byte {offset}: not ASCII text")]
    NotText { offset: usize },
    #[error("line {line}: expected {expected}, found {found:?}")]
    Unexpected {
        line: usize,
        expected: &'static str,
        found: String,
    },
    #[error("line {line}: field {field}: {problem}")]
    Field {
        line: usize,
        field: &'static str,
        problem: &'static str,
    },
    #[error("line {line}: card {card} listed twice")]
    Duplicate { line: usize, card: String },
    #[error("FIN announces {stated_add} additions and {stated_del} removals, {add} and {del} given")]
    Count {
        stated_add: usize,
        stated_del: usize,
        add: usize,
        del: usize,
    },
    #[error("more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("the file ends before its FIN line")]
    Truncated,
}

/// A card identifier: 1 to 24 characters among `0-9` and `A-Z`.
pub fn valid_card(s: &str) -> bool {
    (1..=24).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

fn valid_ps(s: &str) -> bool {
    (1..=14).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn parse_version(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Lines of an ASCII text file (CRLF or LF), numbered from 1; the last empty line dropped.
fn lines(input: &[u8]) -> Result<Vec<(usize, &str)>, LoiError> {
    if input.len() > MAX_FILE {
        return Err(LoiError::TooLarge { len: input.len() });
    }
    if let Some(offset) = input
        .iter()
        .position(|&b| !(b.is_ascii_graphic() || matches!(b, b' ' | b'\r' | b'\n')))
    {
        return Err(LoiError::NotText { offset });
    }
    let text = std::str::from_utf8(input).map_err(|e| LoiError::NotText {
        offset: e.valid_up_to(),
    })?;
    let mut v: Vec<(usize, &str)> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .collect();
    if v.last().is_some_and(|(_, l)| l.is_empty()) {
        v.pop();
    }
    Ok(v)
}

struct Cursor<'a> {
    lines: std::vec::IntoIter<(usize, &'a str)>,
}

impl<'a> Cursor<'a> {
    /// The next line, split on `;`, whose first field must be `key`.
    fn expect(&mut self, key: &'static str, n: usize) -> Result<(usize, Vec<&'a str>), LoiError> {
        let (line, text) = self.lines.next().ok_or(LoiError::Truncated)?;
        let parts: Vec<&str> = text.split(';').collect();
        if parts.first() != Some(&key) || parts.len() != n {
            return Err(LoiError::Unexpected {
                line,
                expected: key,
                found: text.chars().take(80).collect(),
            });
        }
        Ok((line, parts))
    }

    /// The `AJOUT` and `RETRAIT` lines up to `FIN`, which must count them: (additions,
    /// removals), each card at most once.
    fn entries(&mut self) -> Result<(Vec<String>, Vec<String>), LoiError> {
        let mut additions = Vec::new();
        let mut removals = Vec::new();
        let mut seen = BTreeSet::new();
        loop {
            let (line, text) = self.lines.next().ok_or(LoiError::Truncated)?;
            let parts: Vec<&str> = text.split(';').collect();
            match parts.as_slice() {
                [op @ ("AJOUT" | "RETRAIT"), card] => {
                    if !valid_card(card) {
                        return Err(LoiError::Field {
                            line,
                            field: "card",
                            problem: "expected 1-24 characters 0-9 A-Z",
                        });
                    }
                    if !seen.insert(*card) {
                        return Err(LoiError::Duplicate {
                            line,
                            card: card.to_string(),
                        });
                    }
                    if *op == "AJOUT" {
                        additions.push(card.to_string());
                    } else {
                        removals.push(card.to_string());
                    }
                }
                ["FIN", a, d] => {
                    let stated_add = field(a.parse().ok(), line, "additions", "expected a number")?;
                    let stated_del = field(d.parse().ok(), line, "removals", "expected a number")?;
                    if stated_add != additions.len() || stated_del != removals.len() {
                        return Err(LoiError::Count {
                            stated_add,
                            stated_del,
                            add: additions.len(),
                            del: removals.len(),
                        });
                    }
                    return Ok((additions, removals));
                }
                _ => {
                    return Err(LoiError::Unexpected {
                        line,
                        expected: "AJOUT, RETRAIT or FIN",
                        found: text.chars().take(80).collect(),
                    });
                }
            }
        }
    }
}

fn field<T>(v: Option<T>, line: usize, field: &'static str, problem: &'static str) -> Result<T, LoiError> {
    v.ok_or(LoiError::Field { line, field, problem })
}

impl DloiRequest {
    /// Parse a dLOI request file.
    pub fn parse(input: &[u8]) -> Result<DloiRequest, LoiError> {
        let mut c = Cursor {
            lines: lines(input)?.into_iter(),
        };
        c.expect("DLOI", 2).and_then(|(l, p)| {
            field(
                (p.get(1) == Some(&"1")).then_some(()),
                l,
                "format",
                "unsupported version",
            )
        })?;
        let (l, p) = c.expect("PS", 2)?;
        let ps = p.get(1).copied().unwrap_or("");
        field(
            valid_ps(ps).then_some(()),
            l,
            "ps_number",
            "expected 1-14 letters or digits",
        )?;
        let (l, p) = c.expect("VERSION", 2)?;
        let version = field(
            p.get(1).and_then(|s| parse_version(s)),
            l,
            "version",
            "expected 1-12 digits",
        )?;
        let (l, p) = c.expect("DATE", 2)?;
        let at = field(
            p.get(1).and_then(|s| DateTime::parse(s)),
            l,
            "date",
            "expected AAAAMMJJhhmmss",
        )?;
        c.expect("FIN", 1)?;
        if let Some((line, text)) = c.lines.next() {
            return Err(LoiError::Unexpected {
                line,
                expected: "end of file",
                found: text.chars().take(80).collect(),
            });
        }
        Ok(DloiRequest {
            ps_number: ps.to_string(),
            version,
            at,
        })
    }

    /// Write the request (CRLF lines).
    pub fn build(&self) -> Result<Vec<u8>, LoiError> {
        if !valid_ps(&self.ps_number) {
            return Err(LoiError::Field {
                line: 2,
                field: "ps_number",
                problem: "expected 1-14 letters or digits",
            });
        }
        if self.version > MAX_VERSION {
            return Err(LoiError::Field {
                line: 3,
                field: "version",
                problem: "more than 12 digits",
            });
        }
        if !self.at.is_valid() {
            return Err(LoiError::Field {
                line: 4,
                field: "date",
                problem: "not a valid date and time",
            });
        }
        Ok(format!(
            "DLOI;1\r\nPS;{}\r\nVERSION;{}\r\nDATE;{}\r\nFIN\r\n",
            self.ps_number,
            self.version,
            self.at.format()
        )
        .into_bytes())
    }
}

impl Increment {
    /// Parse an increment file.
    pub fn parse(input: &[u8]) -> Result<Increment, LoiError> {
        let all = lines(input)?;
        if all.len() > MAX_ENTRIES + 5 {
            return Err(LoiError::TooManyEntries);
        }
        let mut c = Cursor {
            lines: all.into_iter(),
        };
        c.expect("LOI", 2).and_then(|(l, p)| {
            field(
                (p.get(1) == Some(&"1")).then_some(()),
                l,
                "format",
                "unsupported version",
            )
        })?;
        let (l, p) = c.expect("DE", 2)?;
        let from = field(
            p.get(1).and_then(|s| parse_version(s)),
            l,
            "from",
            "expected 1-12 digits",
        )?;
        let (l, p) = c.expect("A", 2)?;
        let to = field(
            p.get(1).and_then(|s| parse_version(s)),
            l,
            "to",
            "expected 1-12 digits",
        )?;
        field(
            (to > from).then_some(()),
            l,
            "to",
            "must be greater than the from version",
        )?;
        let (l, p) = c.expect("DATE", 2)?;
        let at = field(
            p.get(1).and_then(|s| DateTime::parse(s)),
            l,
            "date",
            "expected AAAAMMJJhhmmss",
        )?;
        let (additions, removals) = c.entries()?;
        if let Some((line, text)) = c.lines.next() {
            return Err(LoiError::Unexpected {
                line,
                expected: "end of file",
                found: text.chars().take(80).collect(),
            });
        }
        Ok(Increment {
            from,
            to,
            at,
            additions,
            removals,
        })
    }

    /// Write the increment (CRLF lines): additions first, then removals, each in the given
    /// order.
    pub fn build(&self) -> Result<Vec<u8>, LoiError> {
        if self.from > MAX_VERSION || self.to > MAX_VERSION || self.to <= self.from {
            return Err(LoiError::Field {
                line: 3,
                field: "to",
                problem: "versions must be at most 12 digits and to > from",
            });
        }
        if !self.at.is_valid() {
            return Err(LoiError::Field {
                line: 4,
                field: "date",
                problem: "not a valid date and time",
            });
        }
        if self.additions.len() + self.removals.len() > MAX_ENTRIES {
            return Err(LoiError::TooManyEntries);
        }
        let mut out = format!(
            "LOI;1\r\nDE;{}\r\nA;{}\r\nDATE;{}\r\n",
            self.from,
            self.to,
            self.at.format()
        );
        let mut seen = BTreeSet::new();
        for (i, (op, card)) in self
            .additions
            .iter()
            .map(|c| ("AJOUT", c))
            .chain(self.removals.iter().map(|c| ("RETRAIT", c)))
            .enumerate()
        {
            let line = i + 5;
            if !valid_card(card) {
                return Err(LoiError::Field {
                    line,
                    field: "card",
                    problem: "expected 1-24 characters 0-9 A-Z",
                });
            }
            if !seen.insert(card.as_str()) {
                return Err(LoiError::Duplicate {
                    line,
                    card: card.clone(),
                });
            }
            out.push_str(op);
            out.push(';');
            out.push_str(card);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "FIN;{};{}\r\n",
            self.additions.len(),
            self.removals.len()
        ));
        Ok(out.into_bytes())
    }

    /// A stable 64-bit fingerprint (FNV-1a) of the increment's content, used to recognise the
    /// same increment applied twice. Independent of the file's line ends.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for &b in bytes {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        eat(self.from.to_string().as_bytes());
        eat(self.to.to_string().as_bytes());
        eat(self.at.format().as_bytes());
        for c in &self.additions {
            eat(b"+");
            eat(c.as_bytes());
        }
        for c in &self.removals {
            eat(b"-");
            eat(c.as_bytes());
        }
        h
    }
}

/// What applying an increment did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Applied {
    /// The list moved from `from` to `to`.
    Applied {
        from: u64,
        to: u64,
        added: usize,
        removed: usize,
        /// Additions of cards already in the list (no change).
        already_listed: usize,
        /// Removals of cards not in the list (no change).
        not_listed: usize,
    },
    /// This very increment was applied before: nothing changed.
    AlreadyApplied { from: u64, to: u64 },
}

/// Why an increment cannot be applied; the list is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("gap: the list is at version {current}, the increment starts at {from}")]
    Gap { current: u64, from: u64 },
    #[error(
        "stale: the list is at version {current}, the increment goes {from} -> {to} (replay of an unknown increment)"
    )]
    Stale { current: u64, from: u64, to: u64 },
    #[error("conflict: an increment {from} -> {to} with different content was already applied")]
    Conflict { from: u64, to: u64 },
}

/// The opposition list in memory: its version, its cards, and which increments made it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoiState {
    pub version: u64,
    pub cards: BTreeSet<String>,
    /// `from` -> (`to`, digest) of every increment applied.
    pub applied: BTreeMap<u64, (u64, u64)>,
}

impl LoiState {
    /// An empty list at version 0.
    pub fn new() -> LoiState {
        LoiState::default()
    }

    /// Decide what applying `inc` would do, without changing anything: `Ok(None)` = apply it,
    /// `Ok(Some(AlreadyApplied))` = no-op, `Err` = refuse. The SQLite store calls this too.
    pub fn check(&self, inc: &Increment) -> Result<Option<Applied>, ApplyError> {
        if let Some(&(to, digest)) = self.applied.get(&inc.from) {
            return if to == inc.to && digest == inc.digest() {
                Ok(Some(Applied::AlreadyApplied {
                    from: inc.from,
                    to: inc.to,
                }))
            } else if to == inc.to {
                Err(ApplyError::Conflict {
                    from: inc.from,
                    to: inc.to,
                })
            } else {
                Err(ApplyError::Stale {
                    current: self.version,
                    from: inc.from,
                    to: inc.to,
                })
            };
        }
        if inc.from > self.version {
            return Err(ApplyError::Gap {
                current: self.version,
                from: inc.from,
            });
        }
        if inc.from < self.version {
            return Err(ApplyError::Stale {
                current: self.version,
                from: inc.from,
                to: inc.to,
            });
        }
        Ok(None)
    }

    /// Apply an increment in version order. A gap or an unknown older increment is refused and
    /// the list left unchanged; re-applying an increment already applied is a reported no-op.
    pub fn apply(&mut self, inc: &Increment) -> Result<Applied, ApplyError> {
        if let Some(noop) = self.check(inc)? {
            return Ok(noop);
        }
        let (mut added, mut removed, mut already_listed, mut not_listed) = (0, 0, 0, 0);
        for c in &inc.additions {
            if self.cards.insert(c.clone()) {
                added += 1;
            } else {
                already_listed += 1;
            }
        }
        for c in &inc.removals {
            if self.cards.remove(c) {
                removed += 1;
            } else {
                not_listed += 1;
            }
        }
        self.applied.insert(inc.from, (inc.to, inc.digest()));
        let from = self.version;
        self.version = inc.to;
        Ok(Applied::Applied {
            from,
            to: inc.to,
            added,
            removed,
            already_listed,
            not_listed,
        })
    }

    /// Whether a card is opposed.
    pub fn is_opposed(&self, card: &str) -> bool {
        self.cards.contains(card)
    }
}

/// Fuzz entry point: parse arbitrary bytes as a request and as an increment, rebuild and apply
/// what parses; must never panic.
pub fn fuzz_loi(data: &[u8]) {
    if let Ok(r) = DloiRequest::parse(data) {
        let _ = r.build();
    }
    if let Ok(i) = Increment::parse(data) {
        let _ = i.build();
        let mut s = LoiState {
            version: i.from,
            ..LoiState::default()
        };
        let _ = s.apply(&i);
        let _ = s.apply(&i);
    }
}
