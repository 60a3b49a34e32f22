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
    /// `REFUSE`: this lot was refused, for the reason in the detail.
    Refused,
    /// `NON_TRANSMIS`: not forwarded because the whole message was refused.
    NotForwarded,
    /// `DEJA_TRANSMIS`: a duplicate; the OCT had already forwarded this lot and did not forward
    /// it again (the detail says where and when).
    AlreadyForwarded,
}

impl LotStatus {
    fn code(self) -> &'static str {
        match self {
            LotStatus::Forwarded => "TRANSMIS",
            LotStatus::Refused => "REFUSE",
            LotStatus::NotForwarded => "NON_TRANSMIS",
            LotStatus::AlreadyForwarded => "DEJA_TRANSMIS",
        }
    }
}

/// One lot of the received file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtLot {
    /// Lot number as in the B2 lot (0-3 digits; empty when unreadable).
    pub number: String,
    /// Lot creation date, when readable.
    pub date: Option<Ymd>,
    /// `FSE`, `DRE`, or empty.
    pub kind: String,
    pub invoices: u32,
    pub status: LotStatus,
    /// Forwarded: the destination (e.g. `CPAM 751 (01 751)`); refused: the reason.
    pub detail: String,
}

/// A complementary (AMC) flow the OCT built from enriched invoices (R8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArtAmc {
    /// AMC organisation number.
    pub organisation: String,
    pub invoices: u32,
    /// Where the flow was sent.
    pub mailbox: String,
}

/// One technical receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Art {
    /// The OCT's identifier (its recipient number).
    pub oct_id: String,
    /// The PS number (the `exercice` of the received subject); may be empty when unreadable.
    pub ps_number: String,
    pub received: Stamp,
    /// The compostage of the received message's subject (19 characters), or empty.
    pub compostage: String,
    /// The file name of the received attachment, or empty.
    pub file_name: String,
    /// The received message's subject, as is (the PS's key to find it, R5.6).
    pub subject: String,
    /// The received message's `Content-Description` (`FACTURE/SV/ZK`...).
    pub profile: String,
    /// Invoices in the received file (0 when unreadable).
    pub invoices: u32,
    pub file_status: FileStatus,
    /// Why the whole file was refused, or a free note; may be empty.
    pub file_detail: String,
    pub lots: Vec<ArtLot>,
    pub amc: Vec<ArtAmc>,
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
    #[error("FIN announces {stated} lots and {stated_amc} AMC flows, {found} and {found_amc} given")]
    Count {
        stated: usize,
        stated_amc: usize,
        found: usize,
        found_amc: usize,
    },
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

fn bad(line: usize, field: &'static str, problem: &str) -> ArtError {
    ArtError::Field {
        line,
        field,
        problem: problem.into(),
    }
}

fn valid_lot_number(n: &str) -> bool {
    n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
}

impl Art {
    /// Write the body: human-readable lines, then the machine block. Lines end with CRLF.
    pub fn build(&self) -> Result<String, ArtError> {
        if self.lots.len() > MAX_LOTS || self.amc.len() > MAX_LOTS {
            return Err(ArtError::TooManyLots);
        }
        let r = self.received;
        if !r.date.is_valid() || r.hour > 23 || r.minute > 59 || r.date.year > 9999 {
            return Err(bad(0, "received", "not a valid time"));
        }
        for l in &self.lots {
            if !valid_lot_number(&l.number) {
                return Err(bad(0, "lot.number", "expected 0-3 digits"));
            }
            if l.date.is_some_and(|d| !d.is_valid() || d.year > 9999) {
                return Err(bad(0, "lot.date", "not a valid date"));
            }
        }
        let mut h = self.human_lines();
        h.push(String::new());
        h.extend(self.machine_lines());
        let mut out = h.join("\r\n");
        out.push_str("\r\n");
        if out.len() > MAX_BODY {
            return Err(ArtError::TooLarge { len: out.len() });
        }
        Ok(out)
    }

    /// The part of the body for a person (in French, like the annex's messages).
    fn human_lines(&self) -> Vec<String> {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                one_line(s)
            }
        };
        let r = self.received;
        let mut h: Vec<String> = vec![
            "ACCUSE DE RECEPTION TECHNIQUE".into(),
            String::new(),
            format!("Organisme concentrateur : {}", dash(&self.oct_id)),
            format!("Professionnel de sante  : {}", dash(&self.ps_number)),
            format!(
                "Message recu le {} a {:02}h{:02} : {}",
                fr_date(r.date),
                r.hour,
                r.minute,
                dash(&self.subject)
            ),
            format!(
                "Profil {}, fichier {}, {} facture(s), compostage {}",
                dash(&self.profile),
                dash(&self.file_name),
                self.invoices,
                dash(&self.compostage)
            ),
        ];
        let detail = one_line(&self.file_detail);
        h.push(match (self.file_status, detail.is_empty()) {
            (FileStatus::Accepted, true) => "Message accepte".into(),
            (FileStatus::Accepted, false) => format!("Message accepte ({detail})"),
            (FileStatus::Refused, _) => format!("Message REFUSE : {detail}"),
        });
        if !self.lots.is_empty() {
            h.push(String::new());
            h.push(format!("{} lot(s) :", self.lots.len()));
        }
        for l in &self.lots {
            let what = match l.status {
                LotStatus::Forwarded => format!("transmis a {}", one_line(&l.detail)),
                LotStatus::Refused => format!("REFUSE : {}", one_line(&l.detail)),
                LotStatus::NotForwarded => format!("non transmis : {}", one_line(&l.detail)),
                LotStatus::AlreadyForwarded => format!("doublon, non retransmis : {}", one_line(&l.detail)),
            };
            h.push(format!(
                "  - lot {} {} du {}, {} facture(s) : {what}",
                dash(&l.number),
                dash(&l.kind),
                l.date.map(fr_date).unwrap_or_else(|| "?".into()),
                l.invoices
            ));
        }
        if !self.amc.is_empty() {
            h.push(String::new());
            h.push(format!("{} flux complementaire(s) cree(s) :", self.amc.len()));
        }
        for a in &self.amc {
            h.push(format!(
                "  - AMC {}, {} facture(s), envoye a {}",
                dash(&a.organisation),
                a.invoices,
                dash(&a.mailbox)
            ));
        }
        h
    }

    /// The machine block, from `BEGIN` to `END`: what [`Art::parse`] reads.
    fn machine_lines(&self) -> Vec<String> {
        let r = self.received;
        let mut h = vec![
            BEGIN.to_string(),
            "ART;1".into(),
            format!("OCT;{}", escape(&self.oct_id)),
            format!("PS;{}", escape(&self.ps_number)),
            format!(
                "RECU;{}{:02}{:02};{};{}",
                ymd8(r.date),
                r.hour,
                r.minute,
                escape(&self.compostage),
                escape(&self.file_name)
            ),
            format!(
                "MESSAGE;{};{};{}",
                escape(&self.subject),
                escape(&self.profile),
                self.invoices
            ),
            format!(
                "FICHIER;{};{}",
                match self.file_status {
                    FileStatus::Accepted => "ACCEPTE",
                    FileStatus::Refused => "REFUSE",
                },
                escape(&self.file_detail)
            ),
        ];
        for l in &self.lots {
            h.push(format!(
                "LOT;{};{};{};{};{};{}",
                l.number,
                l.date.map(ymd8).unwrap_or_default(),
                escape(&l.kind),
                l.invoices,
                l.status.code(),
                escape(&l.detail)
            ));
        }
        for a in &self.amc {
            h.push(format!(
                "AMC;{};{};{}",
                escape(&a.organisation),
                a.invoices,
                escape(&a.mailbox)
            ));
        }
        h.push(format!("FIN;{};{}", self.lots.len(), self.amc.len()));
        h.push(END.into());
        h
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
        let mut block = Block::default();
        for (n, line) in lines.by_ref() {
            // Only the markers are compared trimmed: free text keeps its trailing blanks.
            if line.trim_end() == END {
                return block.finish();
            }
            if line.is_empty() {
                continue;
            }
            if block.fin {
                return Err(ArtError::UnexpectedLine {
                    line: n,
                    found: line.chars().take(80).collect(),
                });
            }
            block.line(n, line)?;
        }
        Err(ArtError::UnterminatedBlock)
    }
}

/// The lines of the machine block read so far.
#[derive(Default)]
struct Block {
    oct_id: Option<String>,
    ps_number: Option<String>,
    /// RECU: time, compostage, file name.
    received: Option<(Stamp, String, String)>,
    /// MESSAGE: subject, profile, invoice count.
    message: Option<(String, String, u32)>,
    /// FICHIER: status, detail.
    file: Option<(FileStatus, String)>,
    lots: Vec<ArtLot>,
    amc: Vec<ArtAmc>,
    version_seen: bool,
    /// FIN was read: only the end marker may follow.
    fin: bool,
}

/// The value of field `field` of line `n`, `%XX` escapes decoded.
fn unescaped(n: usize, field: &'static str, s: &str) -> Result<String, ArtError> {
    unescape(s).ok_or_else(|| bad(n, field, "bad %XX escape"))
}

/// A count of line `n`: 1 to 9 digits.
fn count(n: usize, field: &'static str, s: &str) -> Result<u32, ArtError> {
    if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(n, field, "expected a number"));
    }
    s.parse().map_err(|_| bad(n, field, "expected a number"))
}

impl Block {
    /// Reads line `n` of the block (neither blank nor the end marker).
    fn line(&mut self, n: usize, line: &str) -> Result<(), ArtError> {
        let parts: Vec<&str> = line.split(';').collect();
        match parts.as_slice() {
            ["ART", v] => {
                if *v != "1" {
                    return Err(bad(n, "version", "unsupported version"));
                }
                self.version_seen = true;
            }
            ["OCT", id] => self.oct_id = Some(unescaped(n, "oct_id", id)?),
            ["PS", id] => self.ps_number = Some(unescaped(n, "ps_number", id)?),
            ["RECU", stamp, comp, name] => {
                let s = parse_stamp(stamp).ok_or_else(|| bad(n, "received", "expected AAAAMMJJhhmm"))?;
                self.received = Some((
                    s,
                    unescaped(n, "compostage", comp)?,
                    unescaped(n, "file_name", name)?,
                ));
            }
            ["MESSAGE", subject, profile, invoices] => {
                self.message = Some((
                    unescaped(n, "subject", subject)?,
                    unescaped(n, "profile", profile)?,
                    count(n, "invoices", invoices)?,
                ));
            }
            ["FICHIER", status, detail] => {
                let st = match *status {
                    "ACCEPTE" => FileStatus::Accepted,
                    "REFUSE" => FileStatus::Refused,
                    _ => return Err(bad(n, "file_status", "expected ACCEPTE or REFUSE")),
                };
                self.file = Some((st, unescaped(n, "file_detail", detail)?));
            }
            ["LOT", num, date, kind, invoices, status, detail] => {
                if self.lots.len() >= MAX_LOTS {
                    return Err(ArtError::TooManyLots);
                }
                self.lots
                    .push(parse_lot(n, [*num, *date, *kind, *invoices, *status, *detail])?);
            }
            ["AMC", org, invoices, mailbox] => {
                if self.amc.len() >= MAX_LOTS {
                    return Err(ArtError::TooManyLots);
                }
                self.amc.push(ArtAmc {
                    organisation: unescaped(n, "amc.organisation", org)?,
                    invoices: count(n, "amc.invoices", invoices)?,
                    mailbox: unescaped(n, "amc.mailbox", mailbox)?,
                });
            }
            ["FIN", l, a] => {
                let stated = count(n, "lots", l)? as usize;
                let stated_amc = count(n, "amc", a)? as usize;
                if stated != self.lots.len() || stated_amc != self.amc.len() {
                    return Err(ArtError::Count {
                        stated,
                        stated_amc,
                        found: self.lots.len(),
                        found_amc: self.amc.len(),
                    });
                }
                self.fin = true;
            }
            _ => {
                return Err(ArtError::UnexpectedLine {
                    line: n,
                    found: line.chars().take(80).collect(),
                });
            }
        }
        Ok(())
    }

    /// The ART, once the end marker is read: every mandatory line must have been seen.
    fn finish(self) -> Result<Art, ArtError> {
        if !self.version_seen {
            return Err(ArtError::Missing("ART"));
        }
        if !self.fin {
            return Err(ArtError::Missing("FIN"));
        }
        let (received, compostage, file_name) = self.received.ok_or(ArtError::Missing("RECU"))?;
        let (subject, profile, invoices) = self.message.ok_or(ArtError::Missing("MESSAGE"))?;
        let (file_status, file_detail) = self.file.ok_or(ArtError::Missing("FICHIER"))?;
        Ok(Art {
            oct_id: self.oct_id.ok_or(ArtError::Missing("OCT"))?,
            ps_number: self.ps_number.ok_or(ArtError::Missing("PS"))?,
            received,
            compostage,
            file_name,
            subject,
            profile,
            invoices,
            file_status,
            file_detail,
            lots: self.lots,
            amc: self.amc,
        })
    }
}

/// The fields of a `LOT;` line `n`: number, date, kind, invoices, status, detail.
fn parse_lot(n: usize, [num, date, kind, invoices, status, detail]: [&str; 6]) -> Result<ArtLot, ArtError> {
    if !valid_lot_number(num) {
        return Err(bad(n, "lot.number", "expected 0-3 digits"));
    }
    let date = if date.is_empty() {
        None
    } else {
        Some(parse_ymd8(date).ok_or_else(|| bad(n, "lot.date", "expected AAAAMMJJ"))?)
    };
    let status = match status {
        "TRANSMIS" => LotStatus::Forwarded,
        "REFUSE" => LotStatus::Refused,
        "NON_TRANSMIS" => LotStatus::NotForwarded,
        "DEJA_TRANSMIS" => LotStatus::AlreadyForwarded,
        _ => {
            return Err(bad(
                n,
                "lot.status",
                "expected TRANSMIS, REFUSE, NON_TRANSMIS or DEJA_TRANSMIS",
            ));
        }
    };
    Ok(ArtLot {
        number: num.to_string(),
        date,
        kind: unescaped(n, "lot.kind", kind)?,
        invoices: count(n, "lot.invoices", invoices)?,
        status,
        detail: unescaped(n, "lot.detail", detail)?,
    })
}

/// Fuzz entry point: parse arbitrary bytes, rebuild what parses; must never panic.
pub fn fuzz_art(data: &[u8]) {
    if let Ok(a) = Art::parse(data) {
        let _ = a.build();
    }
}
