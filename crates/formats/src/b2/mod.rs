//! B2 invoice files: 128-byte records, lots, files; OCT single file; split by destination.
//!
//! A B2 *file* is a `000` header, lots, and a `999` trailer; a *lot* is a type 1 header, invoices,
//! and a type 6 trailer; an *invoice* is a type 2 record (plus 2S/2M/2P/2B/2C continuations), type 3
//! and 4 records, and one type 5 total (`shared/spec/formats.md` §2).
//!
//! Why it is shaped this way:
//! - **Zero-copy, byte-exact.** A lot is built and sealed on the PS workstation (R3.5): the OCT
//!   must forward it byte for byte. [`parse`] therefore borrows the input and every [`Lot`] keeps
//!   its exact bytes; [`split_by_destination`] hands out slices, never re-encoded records.
//! - **Structure vs content.** [`parse`] fails only on what makes the input unusable (length, record
//!   order, an invoice without its total) with a [`B2Error`] naming record index, byte offset and
//!   field. Everything else (digits, mandatory fields, totals, counts) is a [`Finding`] from
//!   [`validate`], so a caller can report all problems of a file at once.
//! - **Layouts as data.** Field positions live in [`layouts`] only.
//! - **Provisional choices** (norm values, what the `999` count includes, how a DRE lot is told
//!   apart, the routing key, R8.3 marking) are in `docs/formats/b2.md` and in this module only.

#![forbid(unsafe_code)]

mod build;
mod enriched;
pub mod layouts;
mod model;
mod recipient;
pub mod synth;
mod validate;

pub use build::{
    DestinationGroup, DirectFile, DirectFileParams, FileHeaderParams, SingleFileParams, build_direct_files,
    build_file, build_file_as, build_single_file, split_by_destination,
};
pub use enriched::{AmcGroup, AmcInvoice, EnrichedSplit, OCT_LOT_ORIGIN, build_amc_lot, split_enriched};
pub use layouts::{RecordType, layout_of};
pub use model::{B2Input, Destination, Invoice, Lot, LotKind, file_sender_number, parse};
pub use recipient::{RECIPIENT_WIDTH, RecipientNumber, trailer_matches};
pub use validate::{Finding, validate};

use crate::layout::FieldError;

/// Length of every B2 record, in bytes.
pub const RECORD_LEN: usize = 128;

/// Largest input [`parse`] accepts (1 GiB): bounds the lot and invoice tables it allocates.
pub const MAX_INPUT_LEN: usize = 1 << 30;

/// Most lots one file may carry: the `999` lot count has 3 digits.
pub const MAX_LOTS_PER_FILE: usize = 999;

/// Most invoices one lot may carry: the type 6 invoice count has 3 digits.
pub const MAX_INVOICES_PER_LOT: usize = 999;

/// `norm_version` (type 1 positions 82-87) of a DRE lot (provisional, see `docs/formats/b2.md`).
pub const DRE_NORM_VERSION: &str = "200506";

/// `norm_version` values known for FSE lots (provisional). Any other value reads as FSE too, but
/// [`validate`] reports it.
pub const FSE_NORM_VERSIONS: &[&str] = &["062005", "140700"];

/// A structural problem that makes a B2 input unusable. Every variant names where it is: the
/// 0-based record index and byte offset, and the field when one is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum B2Error {
    /// Nothing to parse.
    #[error("empty input: a B2 file or lot holds at least one 128-byte record")]
    Empty,
    /// More than [`MAX_INPUT_LEN`] bytes.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Input length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length is not a multiple of 128: the last record is truncated.
    #[error(
        "input length {len} is not a multiple of 128: record {record} at byte offset {offset} \
         has only {tail} bytes"
    )]
    Truncated {
        /// Input length in bytes.
        len: usize,
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// Bytes of the truncated last record.
        tail: usize,
    },
    /// A record whose type (field `record_type`, positions 1-3) is none of the B2 types.
    #[error(
        "record {record} at byte offset {offset}: unknown record type {found:?} in field \
         record_type, {context}"
    )]
    UnknownRecordType {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// The first three bytes, lossily decoded.
        found: String,
        /// Where the record was met.
        context: &'static str,
    },
    /// A known record type in a place where it cannot be.
    #[error(
        "record {record} at byte offset {offset}: {found} where {expected} was expected \
         (field record_type)"
    )]
    Unexpected {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// What was found.
        found: &'static str,
        /// What was expected there.
        expected: &'static str,
    },
    /// An invoice that is not closed by a type 5 record.
    #[error(
        "invoice starting at record {record} (byte offset {offset}) has no invoice total \
         (type 5): record {at} is {found}"
    )]
    InvoiceWithoutTotal {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// The record index where a type 5 was expected at the latest.
        at: usize,
        /// What was found.
        found: &'static str,
    },
    /// A lot that is not closed by a type 6 record.
    #[error(
        "lot starting at record {record} (byte offset {offset}) has no lot trailer (type 6): \
         record {at} is {found}"
    )]
    LotWithoutTrailer {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// Record index where it was expected at the latest.
        at: usize,
        /// What was found.
        found: &'static str,
    },
    /// A file that starts with `000` but does not end with `999`.
    #[error("file header without file trailer: last record {record} at byte offset {offset} is {found}")]
    FileWithoutTrailer {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// What was found.
        found: &'static str,
    },
    /// A field could not be read or written.
    #[error("record {record} at byte offset {offset}: {source}")]
    Field {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// The field problem.
        #[source]
        source: FieldError,
    },
    /// Lots of different senders where one sender is required (R3.2).
    #[error(
        "lot {lot} (record {record}, byte offset {offset}): sender {found} differs from {expected} \
         (field ps_number)"
    )]
    MixedSenders {
        /// 0-based index of the lot at fault.
        lot: usize,
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// What was expected there.
        expected: String,
        /// What was found.
        found: String,
    },
    /// More lots than a file can count, or more invoices than a lot can count.
    #[error("{what}: {count} exceeds the maximum of {max}")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An operation that needs lots got none.
    #[error("no lot to build a file from")]
    NoLots,
    /// R8.3 refused: the lot or invoice cannot be split by the OCT.
    #[error("record {record} at byte offset {offset}: cannot split enriched FSE: {reason} (field {field})")]
    NotEnrichable {
        /// 0-based index of the record at fault.
        record: usize,
        /// Byte offset of that record in the input.
        offset: usize,
        /// Machine name of the field at fault.
        field: &'static str,
        /// Why the split is refused.
        reason: &'static str,
    },
    /// A recipient number (`000`/`999` positions 28-41) that cannot be written (see
    /// [`RecipientNumber`]).
    #[error("recipient number {value:?} (field recipient_number, positions 28-41): {reason}")]
    BadRecipient {
        /// The value given (at most 40 characters of it).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl B2Error {
    /// The 0-based index of the record at fault, when there is one.
    pub fn record(&self) -> Option<usize> {
        self.location().map(|(record, _)| record)
    }

    /// The byte offset of the record at fault, when there is one.
    pub fn offset(&self) -> Option<usize> {
        self.location().map(|(_, offset)| offset)
    }

    /// Record index and byte offset together: every located variant carries both, so one
    /// match keeps [`B2Error::record`] and [`B2Error::offset`] in step when variants are added.
    fn location(&self) -> Option<(usize, usize)> {
        match self {
            B2Error::Empty
            | B2Error::TooLarge { .. }
            | B2Error::TooMany { .. }
            | B2Error::NoLots
            | B2Error::BadRecipient { .. } => None,
            B2Error::Truncated { record, offset, .. }
            | B2Error::UnknownRecordType { record, offset, .. }
            | B2Error::Unexpected { record, offset, .. }
            | B2Error::InvoiceWithoutTotal { record, offset, .. }
            | B2Error::LotWithoutTrailer { record, offset, .. }
            | B2Error::FileWithoutTrailer { record, offset, .. }
            | B2Error::Field { record, offset, .. }
            | B2Error::MixedSenders { record, offset, .. }
            | B2Error::NotEnrichable { record, offset, .. } => Some((*record, *offset)),
        }
    }
}

/// Parse and validate, ignoring the result: the entry point of the fuzz target. Must never panic.
pub fn fuzz_parse(data: &[u8]) {
    if let Ok(input) = parse(data) {
        let _ = validate(&input);
        let _ = split_by_destination(&input);
        for lot in input.lots() {
            let _ = split_enriched(lot);
        }
    }
}
