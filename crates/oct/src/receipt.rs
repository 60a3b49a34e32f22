//! What the OCT tells the PS about one received message: the content of the ART (R6.2).
//!
//! The pipeline fills a [`Receipt`] (what was received, and what became of every lot); this
//! module is the only place that turns it into the ART text file, in the shared provisional
//! format of [`svoct_formats::art`] (`docs/formats/art.md`), which the PS side parses back.

use serde::Serialize;
use svoct_formats::arl::Stamp;
use svoct_formats::art::{Art, ArtAmc, ArtLot, FileStatus, LotStatus};
use svoct_formats::noemie::Ymd;
use time::{Date, Month, OffsetDateTime, UtcOffset};

/// What became of one lot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LotFate {
    /// Forwarded to an AMO destination.
    Forwarded {
        /// Mailbox it was sent to.
        to: String,
        /// Label of the route (organisation or régime + caisse).
        destination: String,
        /// Invoices marked as split by the OCT (R8.3), 0 when none.
        split_invoices: usize,
    },
    /// Refused: not forwarded.
    Refused { reason: String },
    /// Nothing was forwarded because the whole message was refused.
    NotForwarded { reason: String },
    /// Not forwarded again: the OCT already forwarded this very lot (a replayed or retried
    /// message, or the lot resent in another file).
    AlreadyForwarded {
        /// Label of the route it went to.
        destination: String,
        /// When it was first processed (seconds since the epoch).
        at: i64,
    },
}

impl LotFate {
    /// The ART status and detail text of this fate (French, no accents).
    fn status_and_detail(&self) -> (LotStatus, String) {
        match self {
            LotFate::Forwarded {
                to,
                destination,
                split_invoices,
            } => (
                LotStatus::Forwarded,
                if *split_invoices > 0 {
                    format!("{destination} {to} ({split_invoices} factures eclatees)")
                } else {
                    format!("{destination} {to}")
                },
            ),
            LotFate::Refused { reason } => (LotStatus::Refused, reason.clone()),
            LotFate::NotForwarded { reason } => (LotStatus::NotForwarded, reason.clone()),
            LotFate::AlreadyForwarded { destination, at } => (
                LotStatus::AlreadyForwarded,
                format!("deja transmis a {destination} {}", paris_text(*at)),
            ),
        }
    }
}

/// `t` in Europe/Paris local time: UTC+2 from the last Sunday of March at 01:00 UTC to the last
/// Sunday of October at 01:00 UTC (the EU rule, in force since 1996), UTC+1 otherwise. The ART
/// speaks to a French practice in its own time (`docs/formats/art.md`).
pub fn paris(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let summer = match (
        last_sunday_0100_utc(utc.year(), Month::March),
        last_sunday_0100_utc(utc.year(), Month::October),
    ) {
        (Some(start), Some(end)) => utc >= start && utc < end,
        _ => false,
    };
    let hours = if summer { 2 } else { 1 };
    UtcOffset::from_hms(hours, 0, 0).map_or(utc, |o| utc.to_offset(o))
}

/// 01:00 UTC on the last Sunday of `month` (March or October: both have 31 days).
fn last_sunday_0100_utc(year: i32, month: Month) -> Option<OffsetDateTime> {
    let last = Date::from_calendar_date(year, month, 31).ok()?;
    let back = last.weekday().number_days_from_sunday();
    let sunday = last.checked_sub(time::Duration::days(i64::from(back)))?;
    Some(sunday.with_hms(1, 0, 0).ok()?.assume_utc())
}

/// `le JJ/MM/AAAA a HHhMM (heure de Paris)` for a time in seconds since the epoch (empty when
/// out of range).
pub fn paris_text(at: i64) -> String {
    OffsetDateTime::from_unix_timestamp(at)
        .map(|t| {
            let t = paris(t);
            format!(
                "le {:02}/{:02}/{:04} a {:02}h{:02} (heure de Paris)",
                t.day(),
                u8::from(t.month()),
                t.year(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// One lot line of the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LotLine {
    /// *N° de lot* (3 digits) as read, empty when unreadable.
    pub number: String,
    /// *Date de création du lot* (AAMMJJ) as read.
    pub date: String,
    /// `FSE` or `DRE`.
    pub kind: String,
    /// Invoices in the lot.
    pub invoices: usize,
    #[serde(flatten)]
    pub fate: LotFate,
}

/// The complementary flow built for one AMC (R8.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmcLine {
    /// AMC organisation number.
    pub organisation: String,
    /// Mailbox the complementary flow went to.
    pub to: String,
    /// Invoices in it.
    pub invoices: usize,
}

/// Everything the ART says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The OCT identifier (`oct.identifier`).
    pub oct_id: String,
    /// The PS number of the registered sender.
    pub ps_number: String,
    /// When the OCT processed the message.
    #[serde(skip)]
    pub received: Option<OffsetDateTime>,
    /// The compostage of the received subject, when it has one.
    pub compostage: String,
    /// The attachment's file name, when given.
    pub file_name: String,
    /// The subject of the message received (the PS's key to find it, R5.6).
    pub subject: String,
    /// `FACTURE/SV/ZK`, ...
    pub profile: String,
    /// Sender number of the file, when read.
    pub sender_number: String,
    /// Invoices in the file, when read.
    pub invoices: usize,
    /// Accepted (everything processed) or refused (quarantined: nothing forwarded).
    pub accepted: bool,
    /// Why the message was refused, when it was.
    pub reason: Option<String>,
    pub lots: Vec<LotLine>,
    pub amc: Vec<AmcLine>,
}

/// `t` as an ART's `RECU` stamp: local time of the practice (Europe/Paris), like every time the
/// ART shows.
pub(crate) fn art_stamp(t: OffsetDateTime) -> Stamp {
    let at = paris(t);
    Stamp {
        date: Ymd::new(
            u16::try_from(at.year()).unwrap_or(2000),
            u8::from(at.month()),
            at.day(),
        ),
        hour: at.hour(),
        minute: at.minute(),
    }
}

/// `AAMMJJ` as a date of this century.
pub(crate) fn ymd6(s: &str) -> Option<Ymd> {
    if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u16>().ok());
    let d = Ymd::new(
        2000 + n(0..2)?,
        u8::try_from(n(2..4)?).ok()?,
        u8::try_from(n(4..6)?).ok()?,
    );
    d.is_valid().then_some(d)
}

impl Receipt {
    /// The shared ART model of this receipt.
    pub fn to_art(&self) -> Art {
        let u32_of = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Art {
            oct_id: self.oct_id.clone(),
            ps_number: self.ps_number.clone(),
            received: art_stamp(self.received.unwrap_or_else(OffsetDateTime::now_utc)),
            compostage: self.compostage.clone(),
            file_name: self.file_name.clone(),
            subject: self.subject.clone(),
            profile: self.profile.clone(),
            invoices: u32_of(self.invoices),
            file_status: if self.accepted {
                FileStatus::Accepted
            } else {
                FileStatus::Refused
            },
            file_detail: self.reason.clone().unwrap_or_default(),
            lots: self
                .lots
                .iter()
                .map(|l| {
                    let (status, detail) = l.fate.status_and_detail();
                    ArtLot {
                        number: l.number.clone(),
                        date: ymd6(&l.date),
                        kind: l.kind.clone(),
                        invoices: u32_of(l.invoices),
                        status,
                        detail,
                    }
                })
                .collect(),
            amc: self
                .amc
                .iter()
                .map(|a| ArtAmc {
                    organisation: a.organisation.clone(),
                    invoices: u32_of(a.invoices),
                    mailbox: a.to.clone(),
                })
                .collect(),
        }
    }

    /// The ART text file in the shared format; should the receipt hold a value that format
    /// cannot carry, the plain fallback of [`Receipt::render_plain`] is sent instead, so that a
    /// PS always gets an answer.
    pub fn render(&self) -> Vec<u8> {
        match self.to_art().build() {
            Ok(text) => text.into_bytes(),
            Err(e) => {
                tracing::warn!(error = %e, "ART in the shared format refused; sending the plain form");
                self.render_plain()
            }
        }
    }

    /// A plain-text form: human-readable lines, then one line per lot
    /// `LOT;<number>;<date>;<kind>;<invoices>;<status>;<detail>` and per AMC flow
    /// `AMC;<organisation>;<invoices>;<mailbox>`, CRLF line ends, ASCII only.
    pub fn render_plain(&self) -> Vec<u8> {
        let mut out = String::new();
        let clean = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii() && !c.is_ascii_control() && c != ';' {
                        c
                    } else {
                        ' '
                    }
                })
                .collect()
        };
        let mut line = |s: String| {
            out.push_str(&s);
            out.push_str("\r\n");
        };
        line("ACCUSE DE RECEPTION TECHNIQUE".into());
        line(format!("MESSAGE;{}", clean(&self.subject)));
        line(format!("PROFIL;{}", clean(&self.profile)));
        if !self.sender_number.is_empty() {
            line(format!("EMETTEUR;{}", clean(&self.sender_number)));
        }
        line(format!("FACTURES;{}", self.invoices));
        match (&self.accepted, &self.reason) {
            (true, _) => line("STATUT;ACCEPTE".into()),
            (false, Some(r)) => line(format!("STATUT;REFUSE;{}", clean(r))),
            (false, None) => line("STATUT;REFUSE".into()),
        }
        for l in &self.lots {
            let (status, detail) = l.fate.status_and_detail();
            let status = match status {
                LotStatus::Forwarded => "TRANSMIS",
                LotStatus::Refused => "REFUSE",
                LotStatus::NotForwarded => "NON TRANSMIS",
                LotStatus::AlreadyForwarded => "DEJA TRANSMIS",
            };
            line(format!(
                "LOT;{};{};{};{};{};{}",
                clean(&l.number),
                clean(&l.date),
                clean(&l.kind),
                l.invoices,
                status,
                clean(&detail)
            ));
        }
        for a in &self.amc {
            line(format!(
                "AMC;{};{};{}",
                clean(&a.organisation),
                a.invoices,
                clean(&a.to)
            ));
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UTC `y-m-d h:mi` as an [`OffsetDateTime`].
    fn utc(y: i32, m: Month, d: u8, h: u8, mi: u8, s: u8) -> OffsetDateTime {
        Date::from_calendar_date(y, m, d)
            .expect("date")
            .with_hms(h, mi, s)
            .expect("time")
            .assume_utc()
    }

    /// (local hour, minute, offset hours) in Paris.
    fn local(t: OffsetDateTime) -> (u8, u8, u8, i8) {
        let p = paris(t);
        (p.day(), p.hour(), p.minute(), p.offset().whole_hours())
    }

    #[test]
    fn paris_time_changes_on_the_last_sundays_of_march_and_october_at_0100_utc() {
        // Hand-computed: in 2026 the last Sunday of March is the 29th, of October the 25th
        // (1 March 2026 is a Sunday; 1 October 2026 a Thursday).
        assert_eq!(local(utc(2026, Month::March, 29, 0, 59, 59)), (29, 1, 59, 1));
        assert_eq!(local(utc(2026, Month::March, 29, 1, 0, 0)), (29, 3, 0, 2));
        assert_eq!(local(utc(2026, Month::October, 25, 0, 59, 59)), (25, 2, 59, 2));
        assert_eq!(local(utc(2026, Month::October, 25, 1, 0, 0)), (25, 2, 0, 1));
        // 2027: 31 March is a Wednesday, so the 28th; 31 October is a Sunday itself.
        assert_eq!(local(utc(2027, Month::March, 28, 0, 30, 0)), (28, 1, 30, 1));
        assert_eq!(local(utc(2027, Month::March, 28, 1, 30, 0)), (28, 3, 30, 2));
        assert_eq!(local(utc(2027, Month::October, 31, 0, 30, 0)), (31, 2, 30, 2));
        assert_eq!(local(utc(2027, Month::October, 31, 1, 30, 0)), (31, 2, 30, 1));
        // Winter and summer, across midnight.
        assert_eq!(local(utc(2026, Month::December, 31, 23, 30, 0)).3, 1);
        assert_eq!(paris(utc(2026, Month::December, 31, 23, 30, 0)).year(), 2027);
        assert_eq!(local(utc(2026, Month::July, 14, 22, 15, 0)), (15, 0, 15, 2));
        // The ART's wording: 2 December 2026 06:40 UTC is 07:40 in Paris.
        assert_eq!(
            paris_text(1_796_193_600),
            "le 02/12/2026 a 07h40 (heure de Paris)"
        );
    }

    #[test]
    fn the_art_stamp_is_paris_time() {
        let r = Receipt {
            oct_id: "1".into(),
            ps_number: "123456789".into(),
            received: Some(utc(2026, Month::June, 30, 22, 5, 0)),
            compostage: String::new(),
            file_name: String::new(),
            subject: String::new(),
            profile: String::new(),
            sender_number: String::new(),
            invoices: 0,
            accepted: false,
            reason: None,
            lots: vec![],
            amc: vec![],
        };
        let text = String::from_utf8(r.render()).expect("utf-8");
        assert!(text.contains("RECU;202607010005;"), "{text}");
    }

    #[test]
    fn renders_every_lot_with_its_fate() {
        let r = Receipt {
            oct_id: "12345678900000".into(),
            ps_number: "123456789".into(),
            received: None,
            compostage: "2026112610101000001".into(),
            file_name: "F1.B2".into(),
            subject: "SV140700/123/20261126101010000001/00003".into(),
            profile: "FACTURE/SV/K".into(),
            sender_number: "123".into(),
            invoices: 3,
            accepted: true,
            reason: None,
            lots: vec![
                LotLine {
                    number: "001".into(),
                    date: "261126".into(),
                    kind: "FSE".into(),
                    invoices: 2,
                    fate: LotFate::Forwarded {
                        to: "cpam@am".into(),
                        destination: "organisation 011".into(),
                        split_invoices: 0,
                    },
                },
                LotLine {
                    number: "002".into(),
                    date: "261126".into(),
                    kind: "FSE".into(),
                    invoices: 1,
                    fate: LotFate::Refused {
                        reason: "totals; wrong\r\nline".into(),
                    },
                },
                LotLine {
                    number: "003".into(),
                    date: "261126".into(),
                    kind: "FSE".into(),
                    invoices: 4,
                    fate: LotFate::AlreadyForwarded {
                        destination: "organisation 011".into(),
                        // 2 December 2026, 06:40 UTC.
                        at: 1_796_193_600,
                    },
                },
            ],
            amc: vec![],
        };
        let text = String::from_utf8(r.render_plain()).expect("ascii");
        assert!(
            text.contains(
                "LOT;003;261126;FSE;4;DEJA TRANSMIS;deja transmis a organisation 011 le 02/12/2026 a 07h40 (heure de Paris)\r\n"
            ),
            "{text}"
        );
        let art = Art::parse(&r.render()).expect("shared format");
        assert_eq!(art.lots[2].status, LotStatus::AlreadyForwarded);
        assert!(text.contains("STATUT;ACCEPTE\r\n"));
        assert!(text.contains("LOT;001;261126;FSE;2;TRANSMIS;organisation 011 cpam@am\r\n"));
        // Separators and line breaks inside a reason cannot break the line structure.
        assert!(
            text.contains("LOT;002;261126;FSE;1;REFUSE;totals  wrong  line\r\n"),
            "{text}"
        );
    }
}
