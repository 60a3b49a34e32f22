//! NOEMIE builder: reference 580 returns, as the AM simulator sends them.
//!
//! The structure written (levels in parentheses) is the project's reading of a 580 return
//! (`docs/formats/noemie.md`, provisional):
//!
//! ```text
//! 000 header, reference "580 "
//! 040(02) settlement recipient, 071(02) accounting date and transfer label, 081(02) type 01
//!   080(03) lot                      -- one per run of invoices with the same lot
//!     102(04) invoice
//!       198(05) AMO part, 199(05) AMC part, 294(05) reject lines, 295(05) comments
//!     990(04) closes the invoice
//!   990(03) closes the lot
//! 990(02) closes the payment
//! 999 trailer
//! ```

use crate::layout::{FieldError, Layout};

use super::layouts::{E040, E071, E080, E081, E102, E198, E199, E294, E295, E990, H000, T999};
use super::reader::Packaging;
use super::view::{PartState, Ymd};

/// Longest line payload in packaging (a) (4-digit length prefix).
pub const LINE_MAX: usize = 9999;

/// Who sends the return to whom, and the payment it describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RspParams {
    /// Sender type (`CP` for a CPAM, `CT`...).
    pub sender_type: String,
    /// Sender number (up to 14 digits).
    pub sender_number: String,
    pub sender_program: String,
    /// Recipient type (`TP` for a health professional by default; the published list has no
    /// `PS` code).
    pub recipient_type: String,
    /// Recipient number: the PS number (up to 14 characters).
    pub recipient_number: String,
    /// File identification (up to 6 characters).
    pub file_id: String,
    pub created: Ymd,
    /// `' '`/`R` real, `T` test, `D` demo.
    pub flow_type: char,
    /// Settlement recipient (`040`, up to 15 digits).
    pub settlement_recipient: String,
    pub accounting_date: Ymd,
    /// `071` transfer label (up to 32 characters).
    pub transfer_label: String,
    /// `071` paying organisation (up to 10 characters).
    pub payer: String,
}

/// One AMO or AMC part as the insurer decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartOutcome {
    pub state: PartState,
    pub requested_cents: u64,
    pub paid_cents: i64,
    /// AMC part only: AMC organisation number (up to 10 digits).
    pub amc_number: String,
}

/// Which part a reject line is about (`294` position 97).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectPart {
    /// `O`: the mandatory part (or mandatory + complementary).
    Amo,
    /// `C`: the complementary part.
    Amc,
}

/// A reject line (`294`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectLine {
    /// Up to 4 characters.
    pub code: String,
    /// Up to 86 characters.
    pub label: String,
    pub part: RejectPart,
}

/// What happened to one invoice the simulator received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceOutcome {
    /// Lot number (up to 3 characters, as in the B2 lot).
    pub lot_number: String,
    pub lot_date: Ymd,
    /// Invoice number (up to 9 characters).
    pub invoice_number: String,
    /// `F` FSE, `D` DRE.
    pub invoice_type: char,
    pub billing_date: Option<Ymd>,
    pub amo: Option<PartOutcome>,
    pub amc: Option<PartOutcome>,
    pub rejects: Vec<RejectLine>,
    /// Comment lines (up to 128 characters each).
    pub comments: Vec<String>,
}

/// Why a return could not be built: a value that does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("entity {entity}, invoice {invoice:?}: {source}")]
    Field {
        entity: &'static str,
        /// Index of the invoice outcome concerned, if any.
        invoice: Option<usize>,
        #[source]
        source: FieldError,
    },
    #[error("entity {entity}, field {field}: text holds the `@` delimiter")]
    Delimiter {
        entity: &'static str,
        field: &'static str,
    },
    #[error("unknown field {field} in layout {entity}")]
    NoField {
        entity: &'static str,
        field: &'static str,
    },
}

struct Rec {
    layout: &'static Layout,
    bytes: Vec<u8>,
    invoice: Option<usize>,
}

impl Rec {
    fn new(layout: &'static Layout, level: Option<&str>, invoice: Option<usize>) -> Result<Rec, BuildError> {
        let mut r = Rec {
            layout,
            bytes: layout.blank(),
            invoice,
        };
        if let Some(l) = level {
            r.put("level", l)?;
        }
        Ok(r)
    }

    fn field(&self, name: &'static str) -> Result<&'static crate::layout::Field, BuildError> {
        self.layout.field(name).ok_or(BuildError::NoField {
            entity: self.layout.code,
            field: name,
        })
    }

    fn err(&self, source: FieldError) -> BuildError {
        BuildError::Field {
            entity: self.layout.code,
            invoice: self.invoice,
            source,
        }
    }

    fn put(&mut self, name: &'static str, value: &str) -> Result<&mut Rec, BuildError> {
        let f = self.field(name)?;
        if value.contains('@') {
            return Err(BuildError::Delimiter {
                entity: self.layout.code,
                field: name,
            });
        }
        f.put(&mut self.bytes, value).map_err(|e| self.err(e))?;
        Ok(self)
    }

    fn num(&mut self, name: &'static str, value: u64) -> Result<&mut Rec, BuildError> {
        let f = self.field(name)?;
        f.put_number(&mut self.bytes, value).map_err(|e| self.err(e))?;
        Ok(self)
    }

    fn signed(
        &mut self,
        amount: &'static str,
        sign: &'static str,
        value: i64,
    ) -> Result<&mut Rec, BuildError> {
        let abs = value.unsigned_abs();
        self.num(amount, abs)?;
        self.put(sign, if value < 0 { "N" } else { "P" })
    }
}

/// Builder state: entities written so far, lots and the file total.
struct Out {
    stream: Vec<Vec<u8>>,
    lots: u64,
    total: i64,
}

impl Out {
    fn push(&mut self, r: Rec) {
        self.stream.push(r.bytes);
    }
}

/// A group being built, for its `990`: count of the entities of the level directly below it,
/// and the amounts of every entity below it.
#[derive(Default, Clone, Copy)]
struct Group {
    count: u64,
    sum: i64,
}

fn close(out: &mut Out, level: &str, g: Group) -> Result<(), BuildError> {
    let mut r = Rec::new(&E990, Some(level), None)?;
    r.num("count", g.count)?.signed("amount_total", "sign", g.sum)?;
    out.push(r);
    Ok(())
}

/// Build a reference-580 return in packaging (a), with its `990` and `999` controls.
pub fn build_580(params: &RspParams, invoices: &[InvoiceOutcome]) -> Result<Vec<u8>, BuildError> {
    build_580_packaged(params, invoices, Packaging::Lines)
}

/// [`build_580`] in either packaging.
pub fn build_580_packaged(
    params: &RspParams,
    invoices: &[InvoiceOutcome],
    packaging: Packaging,
) -> Result<Vec<u8>, BuildError> {
    let mut out = Out {
        stream: Vec::with_capacity(invoices.len() * 6 + 8),
        lots: 0,
        total: 0,
    };
    let mut payment = Group::default();
    let mut r = Rec::new(&E040, None, None)?;
    r.put("settlement_recipient", &params.settlement_recipient)?;
    out.push(r);
    let mut r = Rec::new(&E071, None, None)?;
    r.put("accounting_date", &params.accounting_date.yymmdd())?
        .put("transfer_label_1", &params.transfer_label)?
        .put("payer", &params.payer)?;
    out.push(r);
    let mut r = Rec::new(&E081, None, None)?;
    r.put("return_type", "01")?;
    out.push(r);

    let mut i = 0;
    while let Some(first) = invoices.get(i) {
        let mut lot = Group::default();
        let mut r = Rec::new(&E080, Some("03"), Some(i))?;
        r.put("lot_date", &first.lot_date.yymmdd())?
            .put("lot_number", &format!("{:0>3}", first.lot_number))?;
        out.push(r);
        out.lots += 1;
        // The lots are the level directly below the payment.
        payment.count += 1;
        while let Some(inv) = invoices.get(i) {
            if inv.lot_number != first.lot_number || inv.lot_date != first.lot_date {
                break;
            }
            let g = invoice(&mut out, i, inv)?;
            // The 102s are the level directly below the lot; their parts only add amounts.
            lot.count += 1;
            lot.sum = lot.sum.saturating_add(g.sum);
            i += 1;
        }
        close(&mut out, "03", lot)?;
        payment.sum = payment.sum.saturating_add(lot.sum);
    }
    close(&mut out, "02", payment)?;
    out.total = payment.sum;

    let header = header_record(params)?;
    let records = data_records(&out.stream, packaging) + 2;
    let trailer = trailer_record(params, &out, records)?;
    Ok(package(&header, &out.stream, &trailer, packaging))
}

fn invoice(out: &mut Out, i: usize, inv: &InvoiceOutcome) -> Result<Group, BuildError> {
    let mut g = Group::default();
    let mut r = Rec::new(&E102, Some("04"), Some(i))?;
    r.put("invoice_number", &inv.invoice_number)?
        .put("lot_number", &format!("{:0>3}", inv.lot_number))?
        .put("lot_date", &inv.lot_date.yymmdd())?
        .put("invoice_type", &inv.invoice_type.to_string())?;
    if let Some(d) = inv.billing_date {
        r.put("billing_date", &d.yymmdd())?;
    }
    out.push(r);
    for (layout, part) in [(&E198, &inv.amo), (&E199, &inv.amc)] {
        let Some(p) = part else { continue };
        let mut r = Rec::new(layout, Some("05"), Some(i))?;
        r.num("requested", p.requested_cents)?
            .put("state", p.state.code())?
            .signed("paid", "paid_sign", p.paid_cents)?;
        if layout.code == "199" {
            r.put("amc_number", &p.amc_number)?;
        }
        out.push(r);
        g.count += 1;
        g.sum = g.sum.saturating_add(p.paid_cents);
    }
    for rej in &inv.rejects {
        let mut r = Rec::new(&E294, Some("05"), Some(i))?;
        r.put("code", &rej.code)?
            .put("label", &rej.label)?
            .put("reject_level", "F")?
            .put(
                "part",
                match rej.part {
                    RejectPart::Amo => "O",
                    RejectPart::Amc => "C",
                },
            )?;
        out.push(r);
        g.count += 1;
    }
    for c in &inv.comments {
        let mut r = Rec::new(&E295, Some("05"), Some(i))?;
        r.put("comment", c)?;
        out.push(r);
        g.count += 1;
    }
    close(out, "04", g)?;
    Ok(g)
}

fn header_record(p: &RspParams) -> Result<Vec<u8>, BuildError> {
    let mut r = Rec::new(&H000, None, None)?;
    r.put("sender_type", &p.sender_type)?
        .put("sender_number", &p.sender_number)?
        .put("sender_program", &p.sender_program)?
        .put("recipient_type", &p.recipient_type)?
        .put("recipient_number", &p.recipient_number)?
        .put("file_id", &p.file_id)?
        .put("created", &p.created.yymmdd())?
        .put("reference", "580")?
        .put("currency", "U")?
        .put("flow_type", &p.flow_type.to_string())?
        .num("record_length", 0)?;
    Ok(r.bytes)
}

fn trailer_record(p: &RspParams, out: &Out, records: u64) -> Result<Vec<u8>, BuildError> {
    let mut r = Rec::new(&T999, None, None)?;
    r.put("sender_type", &p.sender_type)?
        .put("sender_number", &p.sender_number)?
        .put("sender_program", &p.sender_program)?
        .put("recipient_type", &p.recipient_type)?
        .put("recipient_number", &p.recipient_number)?
        .put("file_id", &p.file_id)?
        .num("record_count", records)?
        .put("flow_type", &p.flow_type.to_string())?
        .num("lot_count", out.lots)?
        .signed("amount_total", "amount_sign", out.total)?;
    Ok(r.bytes)
}

/// How many data lines / blocks [`package`] writes for this stream (the `999` counts physical
/// records: these plus header and trailer).
fn data_records(stream: &[Vec<u8>], packaging: Packaging) -> u64 {
    match packaging {
        Packaging::Lines => {
            let (mut lines, mut len) = (0u64, 0usize);
            for e in stream {
                if len + e.len() > LINE_MAX && len > 0 {
                    lines += 1;
                    len = 0;
                }
                len += e.len();
            }
            lines + u64::from(len > 0)
        }
        Packaging::Blocks => {
            let size: usize = stream.iter().map(Vec::len).sum();
            size.div_ceil(127).max(1) as u64
        }
    }
}

fn package(header: &[u8], stream: &[Vec<u8>], trailer: &[u8], packaging: Packaging) -> Vec<u8> {
    let size: usize = stream.iter().map(Vec::len).sum();
    let mut v = Vec::with_capacity(size + size / 100 + 300);
    match packaging {
        Packaging::Lines => {
            let line = |v: &mut Vec<u8>, payload: &[u8]| {
                v.extend_from_slice(format!("{:04}", payload.len()).as_bytes());
                v.extend_from_slice(payload);
                v.extend_from_slice(b"\r\n");
            };
            line(&mut v, header);
            let mut buf: Vec<u8> = Vec::with_capacity(LINE_MAX);
            for e in stream {
                if buf.len() + e.len() > LINE_MAX && !buf.is_empty() {
                    line(&mut v, &buf);
                    buf.clear();
                }
                buf.extend_from_slice(e);
            }
            if !buf.is_empty() {
                line(&mut v, &buf);
            }
            line(&mut v, trailer);
        }
        Packaging::Blocks => {
            v.extend_from_slice(header);
            let flat: Vec<u8> = stream.concat();
            let mut chunks = flat.chunks(127).peekable();
            if chunks.peek().is_none() {
                v.push(b'1');
                v.extend_from_slice(&[b' '; 127]);
            }
            while let Some(c) = chunks.next() {
                v.push(if chunks.peek().is_none() { b'1' } else { b'0' });
                v.extend_from_slice(c);
                v.extend(std::iter::repeat_n(b' ', 127 - c.len()));
            }
            v.extend_from_slice(trailer);
        }
    }
    v
}
