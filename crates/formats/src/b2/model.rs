//! The borrowing model of a B2 input and its parser.

use std::fmt;

use super::layouts::{
    F0_SENDER_NUMBER, F1_DATE, F1_DEST_ORG, F1_LOT_NUMBER, F1_NORM_VERSION, F1_PIVOT_CAISSE, F1_PIVOT_REGIME,
    F1_PS, F2_AMC, F2_CAISSE, F2_CENTRE, F2_CONTRACT, F2_PS_SPLIT, F2_REGIME, F2_SETTLEMENT, F5_AMC, F5_AMO,
    F5_BILLED, F5_OCT_SPLIT, FI_INVOICE, RecordType, invoice_continuation,
};
use super::{B2Error, DRE_NORM_VERSION, MAX_INPUT_LEN, RECORD_LEN};
use crate::layout::Field;

/// A parsed B2 input: a framed file (`000` ... `999`) or a bare sequence of lots. Borrows the
/// input; nothing is copied.
#[derive(Clone, Debug)]
pub struct B2Input<'a> {
    bytes: &'a [u8],
    header: Option<&'a [u8]>,
    trailer: Option<&'a [u8]>,
    lots: Vec<Lot<'a>>,
}

impl<'a> B2Input<'a> {
    /// The whole input.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The `000` record of a framed file.
    pub fn file_header(&self) -> Option<&'a [u8]> {
        self.header
    }
    /// The `999` record of a framed file.
    pub fn file_trailer(&self) -> Option<&'a [u8]> {
        self.trailer
    }
    /// True for a `000` ... `999` file, false for a bare sequence of lots.
    pub fn is_framed(&self) -> bool {
        self.header.is_some()
    }
    /// The lots, in input order.
    pub fn lots(&self) -> &[Lot<'a>] {
        &self.lots
    }
    /// Number of 128-byte records in the input.
    pub fn record_count(&self) -> usize {
        self.bytes.len() / RECORD_LEN
    }
    /// Number of invoices over all lots.
    pub fn invoice_count(&self) -> usize {
        self.lots.iter().map(|l| l.invoices.len()).sum()
    }
    /// The file's sender number: see [`file_sender_number`].
    pub fn sender_number(&self) -> &'a str {
        file_sender_number(self.bytes).unwrap_or("")
    }
}

/// The sender number of a B2 file, read from its first record: the `000` *Numéro d'émetteur*
/// (positions 6-19) of a framed file, the first lot's PS number (type 1 positions 2-10) of bare
/// lots. It is the `exercice` of the file's subject (R5.3). `None` when the first record is
/// neither, or the field is not ASCII.
pub fn file_sender_number(file: &[u8]) -> Option<&str> {
    let first = file.get(..RECORD_LEN)?;
    match RecordType::of(first) {
        RecordType::FileHeader => F0_SENDER_NUMBER.str(first),
        RecordType::LotHeader => F1_PS.str(first),
        _ => None,
    }
}

/// FSE or DRE, as told by the lot header's norm version (provisional: `docs/formats/b2.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LotKind {
    /// Feuille de soins électronique, for the AMO.
    Fse,
    /// Demande de remboursement électronique, for the AMC.
    Dre,
}

impl fmt::Display for LotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LotKind::Fse => "FSE",
            LotKind::Dre => "DRE",
        })
    }
}

/// Where a lot goes: the routing key of the éclatement (R8.2) and of direct-mode grouping (R3.1).
/// Made of type 1 positions 17-19 (organisme destinataire), 89-90 (pivot grand régime) and 91-93
/// (pivot caisse), kept as the raw text of those fields (trailing spaces removed).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Destination {
    /// *N° d'organisme destinataire* (positions 17-19).
    pub organisme: String,
    /// *Grand régime de la caisse pivot* (positions 89-90).
    pub regime: String,
    /// *N° de la caisse pivot* (positions 91-93).
    pub caisse: String,
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.organisme, self.regime, self.caisse)
    }
}

/// One lot: type 1, invoices, type 6. Keeps its exact bytes.
#[derive(Clone, Debug)]
pub struct Lot<'a> {
    bytes: &'a [u8],
    offset: usize,
    invoices: Vec<Invoice<'a>>,
}

fn text<'a>(field: &Field, record: &'a [u8]) -> &'a str {
    field.str(record).unwrap_or("")
}

impl<'a> Lot<'a> {
    /// The lot's exact bytes, type 1 to type 6 inclusive.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Byte offset of the lot header in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Record index of the lot header in the input.
    pub fn first_record(&self) -> usize {
        self.offset / RECORD_LEN
    }
    /// Number of records in the lot.
    pub fn record_count(&self) -> usize {
        self.bytes.len() / RECORD_LEN
    }
    /// The type 1 record.
    pub fn header(&self) -> &'a [u8] {
        self.bytes.get(..RECORD_LEN).unwrap_or(&[])
    }
    /// The type 6 record.
    pub fn trailer(&self) -> &'a [u8] {
        let start = self.bytes.len().saturating_sub(RECORD_LEN);
        self.bytes.get(start..).unwrap_or(&[])
    }
    /// The invoices, in lot order.
    pub fn invoices(&self) -> &[Invoice<'a>] {
        &self.invoices
    }
    /// The sender: *N° partenaire de santé + clé* (type 1 positions 2-10), as written.
    pub fn sender(&self) -> &'a str {
        text(&F1_PS, self.header())
    }
    /// *N° de lot* (type 1 positions 20-22); `None` if not digits.
    pub fn lot_number(&self) -> Option<u32> {
        F1_LOT_NUMBER.number(self.header()).ok().map(|n| n as u32)
    }
    /// *Date de création du lot* (type 1 positions 72-77, AAMMJJ), as written.
    pub fn date(&self) -> &'a str {
        text(&F1_DATE, self.header())
    }
    /// *Numéro de version de norme* (type 1 positions 82-87), as written.
    pub fn norm_version(&self) -> &'a str {
        text(&F1_NORM_VERSION, self.header())
    }
    /// FSE or DRE: DRE when the norm version is [`DRE_NORM_VERSION`], FSE otherwise (provisional).
    pub fn kind(&self) -> LotKind {
        if F1_NORM_VERSION.raw(self.header()) == Some(DRE_NORM_VERSION.as_bytes()) {
            LotKind::Dre
        } else {
            LotKind::Fse
        }
    }
    /// The routing key: organisme destinataire + pivot régime and caisse.
    pub fn destination(&self) -> Destination {
        let h = self.header();
        Destination {
            organisme: text(&F1_DEST_ORG, h).to_owned(),
            regime: text(&F1_PIVOT_REGIME, h).to_owned(),
            caisse: text(&F1_PIVOT_CAISSE, h).to_owned(),
        }
    }
    /// Number of invoices (type 2 ... type 5 groups) found in the lot.
    pub fn invoice_count(&self) -> usize {
        self.invoices.len()
    }
}

/// One invoice: a type 2 record, its continuations and acts, and its type 5 total.
#[derive(Clone, Copy, Debug)]
pub struct Invoice<'a> {
    bytes: &'a [u8],
    offset: usize,
    type2_records: u32,
    act_records: u32,
    line_records: u32,
}

impl<'a> Invoice<'a> {
    /// The invoice's exact bytes, type 2 to type 5 inclusive.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Byte offset of the type 2 record in the input.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Record index of the type 2 record in the input.
    pub fn first_record(&self) -> usize {
        self.offset / RECORD_LEN
    }
    /// The records of the invoice, each 128 bytes.
    pub fn records(&self) -> std::slice::ChunksExact<'a, u8> {
        self.bytes.chunks_exact(RECORD_LEN)
    }
    /// The type 2 record.
    pub fn header(&self) -> &'a [u8] {
        self.bytes.get(..RECORD_LEN).unwrap_or(&[])
    }
    /// The type 5 record.
    pub fn total(&self) -> &'a [u8] {
        let start = self.bytes.len().saturating_sub(RECORD_LEN);
        self.bytes.get(start..).unwrap_or(&[])
    }
    /// Number of type 2 records, continuations included.
    pub fn type2_records(&self) -> u32 {
        self.type2_records
    }
    /// Number of type 4 records (any variant).
    pub fn act_records(&self) -> u32 {
        self.act_records
    }
    /// Number of type 3 records.
    pub fn line_records(&self) -> u32 {
        self.line_records
    }
    /// *N° facture* (type 2 positions 27-35); `None` if not digits.
    pub fn number(&self) -> Option<u64> {
        FI_INVOICE.number(self.header()).ok()
    }
    /// *Destinataire du règlement* (type 2 positions 115-116): `00`, `05`, `15`, `25`, ...
    pub fn settlement(&self) -> &'a str {
        text(&F2_SETTLEMENT, self.header())
    }
    /// *Type de contrat* (type 2 positions 117-118); `99` lets the OCT split (R3.3).
    pub fn contract_type(&self) -> &'a str {
        text(&F2_CONTRACT, self.header())
    }
    /// *N° d'organisme complémentaire* (type 2 positions 119-128).
    pub fn amc_number(&self) -> &'a str {
        text(&F2_AMC, self.header())
    }
    /// *Top éclatement des flux par le PS* (type 2 position 46): `E`, `F` or blank.
    pub fn ps_split(&self) -> Option<u8> {
        F2_PS_SPLIT
            .raw(self.header())
            .and_then(|r| r.first().copied())
            .filter(|&b| b != b' ')
    }
    /// Grand régime, caisse and centre of the insured (type 2 positions 49-57).
    pub fn insured_fund(&self) -> (&'a str, &'a str, &'a str) {
        let h = self.header();
        (text(&F2_REGIME, h), text(&F2_CAISSE, h), text(&F2_CENTRE, h))
    }
    /// *Total des montants facturés* (type 5 positions 58-65), in cents.
    pub fn total_billed(&self) -> Option<u64> {
        F5_BILLED.number(self.total()).ok()
    }
    /// *Total remboursable par la Caisse* (type 5 positions 66-73), in cents.
    pub fn total_amo(&self) -> Option<u64> {
        F5_AMO.number(self.total()).ok()
    }
    /// *Total remboursable par l'organisme complémentaire* (type 5 positions 82-89), in cents.
    pub fn total_amc(&self) -> Option<u64> {
        F5_AMC.number(self.total()).ok()
    }
    /// True when type 5 position 90 is `A`: already split by an OCT (R8.3).
    pub fn split_by_oct(&self) -> bool {
        F5_OCT_SPLIT.raw(self.total()) == Some(b"A")
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    /// Index of the next record.
    next: usize,
    count: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a [u8]> {
        if self.next >= self.count {
            return None;
        }
        let start = self.next * RECORD_LEN;
        self.bytes.get(start..start + RECORD_LEN)
    }
}

fn found_name(rec: Option<&[u8]>) -> &'static str {
    match rec {
        None => "the end of the input",
        Some(r) => RecordType::of(r).name(),
    }
}

fn unknown(record: usize, rec: &[u8], context: &'static str) -> B2Error {
    B2Error::UnknownRecordType {
        record,
        offset: record * RECORD_LEN,
        found: String::from_utf8_lossy(rec.get(..3).unwrap_or(rec)).into_owned(),
        context,
    }
}

/// Parse a framed B2 file (`000` ... `999`) or a bare sequence of lots.
///
/// Fails with a [`B2Error`] on structure only: empty input, a length that is not a multiple of
/// 128, unknown record types, records out of place, an invoice without its type 5, a lot without
/// its type 6, a `000` without `999`. Field contents are left to [`validate`](super::validate).
/// Record types 3 and 4 of any variant, and type 2 continuations, are kept as they are.
pub fn parse(bytes: &[u8]) -> Result<B2Input<'_>, B2Error> {
    if bytes.is_empty() {
        return Err(B2Error::Empty);
    }
    if bytes.len() > MAX_INPUT_LEN {
        return Err(B2Error::TooLarge {
            len: bytes.len(),
            max: MAX_INPUT_LEN,
        });
    }
    let tail = bytes.len() % RECORD_LEN;
    if tail != 0 {
        let record = bytes.len() / RECORD_LEN;
        return Err(B2Error::Truncated {
            len: bytes.len(),
            record,
            offset: record * RECORD_LEN,
            tail,
        });
    }
    let count = bytes.len() / RECORD_LEN;
    let mut cur = Cursor {
        bytes,
        next: 0,
        count,
    };
    let first = cur.peek().unwrap_or(&[]);
    let (header, trailer) = if RecordType::of(first) == RecordType::FileHeader {
        let last_index = count - 1;
        let last = bytes.get(last_index * RECORD_LEN..).unwrap_or(&[]);
        if count < 2 || RecordType::of(last) != RecordType::FileTrailer {
            return Err(B2Error::FileWithoutTrailer {
                record: last_index,
                offset: last_index * RECORD_LEN,
                found: if count < 2 {
                    "the file header itself"
                } else {
                    found_name(Some(last))
                },
            });
        }
        cur.next = 1;
        cur.count = last_index;
        (Some(first), Some(last))
    } else {
        (None, None)
    };

    let mut lots = Vec::new();
    while let Some(rec) = cur.peek() {
        let index = cur.next;
        match RecordType::of(rec) {
            RecordType::LotHeader => lots.push(parse_lot(&mut cur)?),
            RecordType::Unknown => {
                return Err(unknown(index, rec, "where a lot header (type 1) was expected"));
            }
            other => {
                return Err(B2Error::Unexpected {
                    record: index,
                    offset: index * RECORD_LEN,
                    found: other.name(),
                    expected: "a lot header (type 1)",
                });
            }
        }
    }
    Ok(B2Input {
        bytes,
        header,
        trailer,
        lots,
    })
}

fn parse_lot<'a>(cur: &mut Cursor<'a>) -> Result<Lot<'a>, B2Error> {
    let start = cur.next;
    cur.next += 1;
    let mut invoices = Vec::new();
    loop {
        let index = cur.next;
        let rec = cur.peek();
        match rec.map(RecordType::of) {
            Some(RecordType::InvoiceHeader) if rec.and_then(invoice_continuation).is_none() => {
                invoices.push(parse_invoice(cur)?);
            }
            Some(RecordType::LotTrailer) => {
                cur.next += 1;
                let bytes = cur
                    .bytes
                    .get(start * RECORD_LEN..cur.next * RECORD_LEN)
                    .unwrap_or(&[]);
                return Ok(Lot {
                    bytes,
                    offset: start * RECORD_LEN,
                    invoices,
                });
            }
            Some(RecordType::Unknown) => {
                return Err(unknown(
                    index,
                    rec.unwrap_or(&[]),
                    "inside a lot, where an invoice header (type 2) or lot trailer (type 6) was expected",
                ));
            }
            Some(RecordType::InvoiceHeader) => {
                return Err(B2Error::Unexpected {
                    record: index,
                    offset: index * RECORD_LEN,
                    found: "invoice header continuation (2S/2M/2P/2B/2C)",
                    expected: "an invoice header (type 2) or lot trailer (type 6)",
                });
            }
            Some(other @ (RecordType::Line | RecordType::Act | RecordType::InvoiceTotal)) => {
                return Err(B2Error::Unexpected {
                    record: index,
                    offset: index * RECORD_LEN,
                    found: other.name(),
                    expected: "an invoice header (type 2) or lot trailer (type 6)",
                });
            }
            _ => {
                return Err(B2Error::LotWithoutTrailer {
                    record: start,
                    offset: start * RECORD_LEN,
                    at: index,
                    found: found_name(rec),
                });
            }
        }
    }
}

fn parse_invoice<'a>(cur: &mut Cursor<'a>) -> Result<Invoice<'a>, B2Error> {
    let start = cur.next;
    cur.next += 1;
    let mut type2_records = 1u32;
    let mut act_records = 0u32;
    let mut line_records = 0u32;
    loop {
        let index = cur.next;
        let rec = cur.peek();
        match rec.map(RecordType::of) {
            Some(RecordType::InvoiceHeader) if rec.and_then(invoice_continuation).is_some() => {
                type2_records += 1;
            }
            Some(RecordType::Act) => act_records += 1,
            Some(RecordType::Line) => line_records += 1,
            Some(RecordType::InvoiceTotal) => {
                cur.next += 1;
                let bytes = cur
                    .bytes
                    .get(start * RECORD_LEN..cur.next * RECORD_LEN)
                    .unwrap_or(&[]);
                return Ok(Invoice {
                    bytes,
                    offset: start * RECORD_LEN,
                    type2_records,
                    act_records,
                    line_records,
                });
            }
            Some(RecordType::Unknown) => {
                return Err(unknown(index, rec.unwrap_or(&[]), "inside an invoice"));
            }
            _ => {
                return Err(B2Error::InvoiceWithoutTotal {
                    record: start,
                    offset: start * RECORD_LEN,
                    at: index,
                    found: found_name(rec),
                });
            }
        }
        cur.next += 1;
    }
}
