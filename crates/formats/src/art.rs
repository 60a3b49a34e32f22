//! ART (*Accusé de Réception Technique*): the text receipt the OCT sends a PS for each message
//! it received. R6.2 fixes only the envelope (the mail engineer's part); the body is the
//! project's **provisional** format (`docs/formats/art.md`): human-readable French lines, then
//! a machine-readable block that the PS side parses back with [`Art::parse`].

use serde::Serialize;

use crate::arl::Stamp;
use crate::noemie::Ymd;

/// First line of the machine-readable block.
pub const BEGIN: &str = "-----BEGIN SVOCT ART 1-----";
/// Last line of the machine-readable block.
pub const END: &str = "-----END SVOCT ART-----";
/// Largest body accepted.
pub const MAX_BODY: usize = 1 << 20;
/// Most lots in one receipt.
pub const MAX_LOTS: usize = 10_000;

/// What the OCT did with the whole message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// `ACCEPTE`: decrypted and read; see the lots.
    Accepted,
    /// `REFUSE`: not processed at all (undecryptable, unreadable...).
    Refused,
}

/// What the OCT did with one lot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    /// `TRANSMIS`: forwarded to the destination named in the detail.
    Forwarded,
    /// `REFUSE`: not forwarded, for the reason in the detail.
    Refused,
}

/// One lot of the received file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtLot {
    /// Lot number as in the B2 lot (1-3 digits).
    pub number: String,
    pub date: Ymd,
    pub invoices: u32,
    pub status: LotStatus,
    /// Forwarded: the destination (e.g. `CPAM 751 (01 751)`); refused: the reason.
    pub detail: String,
}

/// One technical receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Art {
    /// The OCT's identifier (its recipient number).
    pub oct_id: String,
    pub ps_number: String,
    pub received: Stamp,
    /// The compostage of the received message's subject (19 characters).
    pub compostage: String,
    pub file_name: String,
    pub file_status: FileStatus,
    /// Why the whole file was refused, or a free note; may be empty.
    pub file_detail: String,
    pub lots: Vec<ArtLot>,
}

/// Why a body has no readable receipt, or a receipt cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtError {
    #[error("body of {len} bytes exceeds {MAX_BODY}")]
    TooLarge { len: usize },
    #[error("byte {offset}: body is not UTF-8")]
    NotUtf8 { offset: usize },
    #[error("no `{BEGIN}` block")]
    MissingBlock,
    #[error("no `{END}` line after the block")]
    UnterminatedBlock,
    #[error("line {line}: unexpected {found:?}")]
    UnexpectedLine { line: usize, found: String },
    #[error("line {line}: field {field}: {problem}")]
    Field {
        line: usize,
        field: &'static str,
        problem: String,
    },
    #[error("missing {0} line")]
    Missing(&'static str),
    #[error("FIN announces {stated} lots, {found} given")]
    LotCount { stated: usize, found: usize },
    #[error("more than {MAX_LOTS} lots")]
    TooManyLots,
}

/// Escape a free-text field of the machine block: `%`, `;`, CR and LF as `%XX`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            ';' => out.push_str("%3B"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

/// Reverse of [`escape`]; `None` on a malformed or unknown escape.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(rest.get(..i)?);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "3B" => ';',
            "0D" => '\r',
            "0A" => '\n',
            _ => return None,
        });
        rest = rest.get(i + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn fr_date(d: Ymd) -> String {
    format!("{:02}/{:02}/{:04}", d.day, d.month, d.year)
}

fn ymd8(d: Ymd) -> String {
    format!("{:04}{:02}{:02}", d.year, d.month, d.day)
}

fn parse_ymd8(s: &str) -> Option<Ymd> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d = Ymd::new(
        s.get(0..4)?.parse().ok()?,
        s.get(4..6)?.parse().ok()?,
        s.get(6..8)?.parse().ok()?,
    );
    d.is_valid().then_some(d)
}

fn parse_stamp(s: &str) -> Option<Stamp> {
    let date = parse_ymd8(s.get(0..8)?)?;
    let rest = s.get(8..)?;
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hour: u8 = rest.get(0..2)?.parse().ok()?;
    let minute: u8 = rest.get(2..4)?.parse().ok()?;
    (hour < 24 && minute < 60).then_some(Stamp { date, hour, minute })
}

fn check_id(field: &'static str, v: &str) -> Result<(), ArtError> {
    if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(ArtError::Field {
            line: 0,
            field,
            problem: "must be 1-64 printable ASCII characters without `;` or spaces".into(),
        });
    }
    Ok(())
}

impl Art {
    /// Write the body: human-readable lines, then the machine block. Lines end with CRLF.
    pub fn build(&self) -> Result<String, ArtError> {
        check_id("oct_id", &self.oct_id)?;
        check_id("ps_number", &self.ps_number)?;
        check_id("compostage", &self.compostage)?;
        check_id("file_name", &self.file_name)?;
        if self.lots.len() > MAX_LOTS {
            return Err(ArtError::TooManyLots);
        }
        let r = self.received;
        if !r.date.is_valid() || r.hour > 23 || r.minute > 59 || r.date.year > 9999 {
            return Err(ArtError::Field {
                line: 0,
                field: "received",
                problem: "not a valid time".into(),
            });
        }
        for l in &self.lots {
            if l.number.is_empty() || l.number.len() > 3 || !l.number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ArtError::Field {
                    line: 0,
                    field: "lot.number",
                    problem: format!("{:?} is not 1-3 digits", l.number),
                });
            }
            if !l.date.is_valid() || l.date.year > 9999 {
                return Err(ArtError::Field {
                    line: 0,
                    field: "lot.date",
                    problem: "not a valid date".into(),
                });
            }
        }
        let mut h: Vec<String> = vec![
            "ACCUSE DE RECEPTION TECHNIQUE".into(),
            String::new(),
            format!("Organisme concentrateur : {}", self.oct_id),
            format!("Professionnel de sante  : {}", self.ps_number),
            format!(
                "Message recu le {} a {:02}h{:02}, compostage {}",
                fr_date(r.date),
                r.hour,
                r.minute,
                self.compostage
            ),
        ];
        let detail = one_line(&self.file_detail);
        h.push(match (self.file_status, detail.is_empty()) {
            (FileStatus::Accepted, true) => format!("Fichier {} : accepte", self.file_name),
            (FileStatus::Accepted, false) => format!("Fichier {} : accepte ({detail})", self.file_name),
            (FileStatus::Refused, _) => format!("Fichier {} : REFUSE : {detail}", self.file_name),
        });
        if !self.lots.is_empty() {
            h.push(String::new());
            h.push(format!("{} lot(s) :", self.lots.len()));
        }
        for l in &self.lots {
            let what = match l.status {
                LotStatus::Forwarded => format!("transmis a {}", one_line(&l.detail)),
                LotStatus::Refused => format!("REFUSE : {}", one_line(&l.detail)),
            };
            h.push(format!(
                "  - lot {} du {}, {} facture(s) : {what}",
                l.number,
                fr_date(l.date),
                l.invoices
            ));
        }
        h.push(String::new());
        h.push(BEGIN.into());
        h.push("ART;1".into());
        h.push(format!("OCT;{}", self.oct_id));
        h.push(format!("PS;{}", self.ps_number));
        h.push(format!(
            "RECU;{}{:02}{:02};{};{}",
            ymd8(r.date),
            r.hour,
            r.minute,
            self.compostage,
            self.file_name
        ));
        h.push(format!(
            "FICHIER;{};{}",
            match self.file_status {
                FileStatus::Accepted => "ACCEPTE",
                FileStatus::Refused => "REFUSE",
            },
            escape(&self.file_detail)
        ));
        for l in &self.lots {
            h.push(format!(
                "LOT;{};{};{};{};{}",
                l.number,
                ymd8(l.date),
                match l.status {
                    LotStatus::Forwarded => "TRANSMIS",
                    LotStatus::Refused => "REFUSE",
                },
                l.invoices,
                escape(&l.detail)
            ));
        }
        h.push(format!("FIN;{}", self.lots.len()));
        h.push(END.into());
        let mut out = h.join("\r\n");
        out.push_str("\r\n");
        if out.len() > MAX_BODY {
            return Err(ArtError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// Read the machine block of a body (the human part is ignored; show the body as text).
    pub fn parse(body: &[u8]) -> Result<Art, ArtError> {
        if body.len() > MAX_BODY {
            return Err(ArtError::TooLarge { len: body.len() });
        }
        let text = std::str::from_utf8(body).map_err(|e| ArtError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l));
        lines
            .by_ref()
            .find(|(_, l)| l.trim_end() == BEGIN)
            .ok_or(ArtError::MissingBlock)?;
        let mut oct_id = None;
        let mut ps_number = None;
        let mut received = None;
        let mut file = None;
        let mut lots = Vec::new();
        let mut fin = None;
        let mut version_seen = false;
        let mut ended = false;
        for (n, line) in lines.by_ref() {
            // Only the markers are compared trimmed: free text keeps its trailing blanks.
            if line.trim_end() == END {
                ended = true;
                break;
            }
            if line.is_empty() {
                continue;
            }
            if fin.is_some() {
                return Err(ArtError::UnexpectedLine {
                    line: n,
                    found: line.chars().take(80).collect(),
                });
            }
            let parts: Vec<&str> = line.split(';').collect();
            let bad = |field: &'static str, problem: &str| ArtError::Field {
                line: n,
                field,
                problem: problem.into(),
            };
            let un = |field: &'static str, s: &str| unescape(s).ok_or_else(|| bad(field, "bad %XX escape"));
            match parts.as_slice() {
                ["ART", v] => {
                    if *v != "1" {
                        return Err(bad("version", "unsupported version"));
                    }
                    version_seen = true;
                }
                ["OCT", id] if !id.is_empty() => oct_id = Some(id.to_string()),
                ["PS", id] if !id.is_empty() => ps_number = Some(id.to_string()),
                ["RECU", stamp, comp, name] => {
                    let s = parse_stamp(stamp).ok_or_else(|| bad("received", "expected AAAAMMJJhhmm"))?;
                    received = Some((s, comp.to_string(), name.to_string()));
                }
                ["FICHIER", status, detail] => {
                    let st = match *status {
                        "ACCEPTE" => FileStatus::Accepted,
                        "REFUSE" => FileStatus::Refused,
                        _ => return Err(bad("file_status", "expected ACCEPTE or REFUSE")),
                    };
                    file = Some((st, un("file_detail", detail)?));
                }
                ["LOT", num, date, status, invoices, detail] => {
                    if lots.len() >= MAX_LOTS {
                        return Err(ArtError::TooManyLots);
                    }
                    if num.is_empty() || num.len() > 3 || !num.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad("lot.number", "expected 1-3 digits"));
                    }
                    let date = parse_ymd8(date).ok_or_else(|| bad("lot.date", "expected AAAAMMJJ"))?;
                    let status = match *status {
                        "TRANSMIS" => LotStatus::Forwarded,
                        "REFUSE" => LotStatus::Refused,
                        _ => return Err(bad("lot.status", "expected TRANSMIS or REFUSE")),
                    };
                    let invoices = invoices
                        .parse()
                        .ok()
                        .filter(|_| invoices.bytes().all(|b| b.is_ascii_digit()))
                        .ok_or_else(|| bad("lot.invoices", "expected a number"))?;
                    lots.push(ArtLot {
                        number: num.to_string(),
                        date,
                        invoices,
                        status,
                        detail: un("lot.detail", detail)?,
                    });
                }
                ["FIN", count] => {
                    let stated: usize = count.parse().map_err(|_| bad("count", "expected a number"))?;
                    if stated != lots.len() {
                        return Err(ArtError::LotCount {
                            stated,
                            found: lots.len(),
                        });
                    }
                    fin = Some(stated);
                }
                _ => {
                    return Err(ArtError::UnexpectedLine {
                        line: n,
                        found: line.chars().take(80).collect(),
                    });
                }
            }
        }
        if !ended {
            return Err(ArtError::UnterminatedBlock);
        }
        if !version_seen {
            return Err(ArtError::Missing("ART"));
        }
        fin.ok_or(ArtError::Missing("FIN"))?;
        let (received, compostage, file_name) = received.ok_or(ArtError::Missing("RECU"))?;
        let (file_status, file_detail) = file.ok_or(ArtError::Missing("FICHIER"))?;
        Ok(Art {
            oct_id: oct_id.ok_or(ArtError::Missing("OCT"))?,
            ps_number: ps_number.ok_or(ArtError::Missing("PS"))?,
            received,
            compostage,
            file_name,
            file_status,
            file_detail,
            lots,
        })
    }
}

/// Fuzz entry point: parse arbitrary bytes, rebuild what parses; must never panic.
pub fn fuzz_art(data: &[u8]) {
    if let Ok(a) = Art::parse(data) {
        let _ = a.build();
    }
}
