//! Content checks of a parsed B2 input: fields, invoice structure, lot totals, file counts.

use serde::Serialize;

use super::layouts::{
    ALL, F0_APPLICATION, F0_FILE_ID, F0_RECIPIENT_NUMBER, F0_RECIPIENT_TYPE, F0_SENDER_NUMBER,
    F0_SENDER_TYPE, F1_LOT_NUMBER, F1_NORM_VERSION, F1_PS, F4_AMOUNT_AMC, F4_AMOUNT_AMO, F4_AMOUNT_BILLED,
    F5_ACT_COUNT, F5_AMC, F5_AMO, F5_BILLED, F6_ACTS, F6_AMC, F6_AMO, F6_BILLED, F6_INVOICES, F6_LOT_NUMBER,
    F6_PS, F6_TYPE2, F6_TYPE5, F9_APPLICATION, F9_FILE_ID, F9_LOTS, F9_RECIPIENT_NUMBER, F9_RECIPIENT_TYPE,
    F9_RECORDS, F9_SENDER_NUMBER, F9_SENDER_TYPE, FI_INVOICE, FI_PS, RecordType, layout_index,
};
use super::model::{B2Input, Invoice, Lot};
use super::{DRE_NORM_VERSION, FSE_NORM_VERSIONS, RECORD_LEN};
use crate::layout::{Field, FieldProblem, Kind, Layout, Req, parse_digits};

/// One problem found by [`validate`]: where (record index, byte offset, field) and what (a
/// stable machine `code` plus a human `message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// 0-based index of the record at fault.
    pub record_index: usize,
    /// Byte offset in the input: of the field (or of the exact byte) when known, else of the record.
    pub offset: usize,
    /// Machine name of the field at fault, when one is.
    pub field: Option<&'static str>,
    /// Stable code, e.g. `field.not_digits`, `invoice.act_count`, `lot.total_billed`.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

/// Index of the base type 4 table in [`ALL`].
const ACT_4_INDEX: usize = 9;

struct Sink {
    out: Vec<Finding>,
    fast: Vec<FastCheck>,
}

/// A layout compiled to bit masks over the 128 positions, so that a valid record is checked with
/// one pass over its bytes and a few mask operations instead of field by field. Only a record
/// that fails it goes through [`Layout::check`], which produces the findings: the result is the
/// same, only faster.
struct FastCheck {
    /// Positions of mandatory digits fields: must all be digits.
    digits: u128,
    /// Optional digits fields: all digits or all spaces.
    optional_digits: Vec<u128>,
    /// Mandatory text fields (not fillers): not all spaces.
    mandatory_text: Vec<u128>,
    /// Fixed values: 0-based start and the bytes.
    fixed: Vec<(usize, &'static [u8])>,
}

fn span(f: &Field) -> u128 {
    let len = f.len() as u32;
    let ones = if len >= 128 { u128::MAX } else { (1u128 << len) - 1 };
    ones << (u32::from(f.from) - 1)
}

impl FastCheck {
    fn new(layout: &Layout) -> FastCheck {
        let mut c = FastCheck {
            digits: 0,
            optional_digits: Vec::new(),
            mandatory_text: Vec::new(),
            fixed: Vec::new(),
        };
        for f in layout.fields {
            if let Some(v) = f.fixed {
                c.fixed.push((f.range().start, v.as_bytes()));
                continue;
            }
            match (f.kind, f.req) {
                (Kind::Digits, Req::Mandatory) => c.digits |= span(f),
                (Kind::Digits, Req::Optional) => c.optional_digits.push(span(f)),
                (Kind::Text, Req::Mandatory) if !f.name.starts_with("filler") => {
                    c.mandatory_text.push(span(f))
                }
                (Kind::Text, _) => {}
            }
        }
        c
    }

    /// True when `rec` has no problem `Layout::check` would report.
    #[inline]
    fn passes(&self, rec: &[u8]) -> bool {
        let Ok(rec) = <&[u8; RECORD_LEN]>::try_from(rec) else {
            return false;
        };
        // Printable ASCII everywhere (the tables cover all 128 positions).
        let Some((digit, space)) = scan(rec) else {
            return false;
        };
        (digit & self.digits) == self.digits
            && self
                .optional_digits
                .iter()
                .all(|&m| (digit & m) == m || (space & m) == m)
            && self.mandatory_text.iter().all(|&m| (space & m) != m)
            && self
                .fixed
                .iter()
                .all(|&(at, v)| rec.get(at..at + v.len()) == Some(v))
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Gather the high bit of each byte of `x` (byte i → bit i). The multiplier puts byte i's bit at
/// position 56 + i without two partial products ever meeting, so no carry disturbs the result.
#[inline]
fn pack(x: u64) -> u64 {
    ((x & HI) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

/// One pass over a record, eight bytes at a time: `None` if a byte is not printable ASCII
/// (0x20-0x7E), else the masks (bit i set when byte i is an ASCII digit / a space).
#[inline]
fn scan(rec: &[u8; RECORD_LEN]) -> Option<(u128, u128)> {
    let mut bad = 0u64;
    let mut digit = [0u64; 2];
    let mut space = [0u64; 2];
    for (half, block) in rec.chunks_exact(64).enumerate() {
        let (mut dm, mut sm) = (0u64, 0u64);
        for (j, chunk) in block.chunks_exact(8).enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let w = u64::from_le_bytes(word);
            // >= 0x80, == 0x7F, < 0x20. Lanes are exact when no byte is >= 0x80; when one is,
            // the first term alone makes `bad` non-zero, whatever the carries did to the others.
            bad |= (w | w.wrapping_add(LO) | !w.wrapping_add(0x60 * LO)) & HI;
            // Digit: b + 0x50 reaches 0x80 (b >= '0') and b + 0x46 does not (b <= '9').
            let d = w.wrapping_add(0x50 * LO) & !w.wrapping_add(0x46 * LO);
            // Space: the byte of w ^ 0x20.. is zero.
            let x = w ^ (0x20 * LO);
            let z = !(((x & !HI).wrapping_add(!HI)) | x);
            dm |= pack(d) << (8 * j);
            sm |= pack(z) << (8 * j);
        }
        if let (Some(d), Some(s)) = (digit.get_mut(half), space.get_mut(half)) {
            *d = dm;
            *s = sm;
        }
    }
    let digit = u128::from(digit[0]) | (u128::from(digit[1]) << 64);
    let space = u128::from(space[0]) | (u128::from(space[1]) << 64);
    (bad == 0).then_some((digit, space))
}

impl Sink {
    fn push(&mut self, record: usize, field: Option<&Field>, code: &'static str, message: String) {
        let offset = record * RECORD_LEN + field.map_or(0, |f| f.range().start);
        self.out.push(Finding {
            record_index: record,
            offset,
            field: field.map(|f| f.name),
            code,
            message,
        });
    }

    /// Compare a counted/summed value with what a field says.
    fn expect(&mut self, record: usize, rec: &[u8], field: &Field, code: &'static str, actual: u64) {
        // Unreadable numbers are already reported by the field checks.
        if let Some(written) = field.raw(rec).and_then(parse_digits)
            && written != actual
        {
            self.push(
                record,
                Some(field),
                code,
                format!(
                    "{} ({}-{}) says {written}, the content gives {actual}",
                    field.label, field.from, field.to
                ),
            );
        }
    }
}

fn num(field: &Field, rec: &[u8]) -> u64 {
    field.raw(rec).and_then(parse_digits).unwrap_or(0)
}

/// Check every record of a parsed input and the consistency between records.
///
/// Reports, in input order: a lot without invoices, a type 2 continuation after the acts;
/// field problems from the layout tables (digits, mandatory, fixed
/// values, non-ASCII bytes; records without a table are only checked to be printable ASCII);
/// invoice consistency (type 5 act count == type 4 records, type 5 amounts == sums of the base
/// type 4 amounts, same invoice number and PS number in every record, R3.3/R3.4 rules for
/// contract type 99); lot totals in type 6 (invoice, act, type 2, type 5 counts and the three
/// amounts, lot number, sender); file trailer counts and repeated fields; one sender in every lot.
pub fn validate(input: &B2Input<'_>) -> Vec<Finding> {
    let mut sink = Sink {
        out: Vec::new(),
        fast: ALL.iter().map(|l| FastCheck::new(l)).collect(),
    };
    if let Some(h) = input.file_header() {
        check_fields(&mut sink, 0, h);
    }
    let mut first_sender: Option<&[u8]> = None;
    for lot in input.lots() {
        let sender = F1_PS.raw(lot.header()).unwrap_or(&[]);
        match first_sender {
            None => first_sender = Some(sender),
            Some(s) if s != sender => sink.push(
                lot.first_record(),
                Some(&F1_PS),
                "lot.mixed_senders",
                format!(
                    "lot sender {} differs from the first lot's {}",
                    String::from_utf8_lossy(sender),
                    String::from_utf8_lossy(s)
                ),
            ),
            Some(_) => {}
        }
        validate_lot(&mut sink, lot);
    }
    if let (Some(h), Some(t)) = (input.file_header(), input.file_trailer()) {
        let last = input.record_count().saturating_sub(1);
        check_fields(&mut sink, last, t);
        validate_file(&mut sink, input, h, t, last, first_sender);
    }
    sink.out
}

fn check_fields(sink: &mut Sink, record: usize, rec: &[u8]) {
    let index = layout_index(rec);
    if let Some(fast) = index.and_then(|i| sink.fast.get(i))
        && fast.passes(rec)
    {
        return;
    }
    let Some(layout) = index.and_then(|i| ALL.get(i)) else {
        if let Some(pos) = rec.iter().position(|b| !b.is_ascii() || b.is_ascii_control()) {
            sink.out.push(Finding {
                record_index: record,
                offset: record * RECORD_LEN + pos,
                field: None,
                code: "record.not_ascii",
                message: format!("byte {pos} of the record is not printable ASCII"),
            });
        }
        return;
    };
    for err in layout.check(rec) {
        let base = record * RECORD_LEN;
        let (code, offset) = match err.problem {
            FieldProblem::NotAscii { at } => ("field.not_ascii", base + at),
            FieldProblem::NotDigits => ("field.not_digits", base + usize::from(err.from) - 1),
            FieldProblem::Missing => ("field.missing", base + usize::from(err.from) - 1),
            FieldProblem::NotFixed { .. } => ("field.fixed", base + usize::from(err.from) - 1),
            _ => ("field.invalid", base + usize::from(err.from) - 1),
        };
        sink.out.push(Finding {
            record_index: record,
            offset,
            field: Some(err.field),
            code,
            message: format!("{} record: {err}", layout.code),
        });
    }
}

#[derive(Default)]
struct Sums {
    acts: u64,
    type2: u64,
    billed: u64,
    amo: u64,
    amc: u64,
}

fn validate_lot(sink: &mut Sink, lot: &Lot<'_>) {
    let first = lot.first_record();
    let header = lot.header();
    check_fields(sink, first, header);
    if let Some(v) = F1_NORM_VERSION.raw(header)
        && v.iter().all(u8::is_ascii_digit)
        && v != DRE_NORM_VERSION.as_bytes()
        && !FSE_NORM_VERSIONS.iter().any(|k| k.as_bytes() == v)
    {
        sink.push(
            first,
            Some(&F1_NORM_VERSION),
            "lot.norm_version",
            format!(
                "norm version {} is neither a known FSE version ({}) nor the DRE version {DRE_NORM_VERSION}; read as FSE",
                String::from_utf8_lossy(v),
                FSE_NORM_VERSIONS.join(", ")
            ),
        );
    }
    if lot.invoices().is_empty() {
        sink.push(first, None, "lot.empty", "the lot holds no invoice".into());
    }
    let ps = F1_PS.raw(header).unwrap_or(&[]);
    let mut sums = Sums::default();
    for inv in lot.invoices() {
        validate_invoice(sink, inv, ps, &mut sums);
    }
    let t_index = first + lot.record_count().saturating_sub(1);
    let t = lot.trailer();
    check_fields(sink, t_index, t);
    if F6_PS.raw(t) != Some(ps) {
        sink.push(
            t_index,
            Some(&F6_PS),
            "lot.ps_mismatch",
            "the lot trailer's PS number differs from the lot header's".into(),
        );
    }
    if F6_LOT_NUMBER.raw(t) != F1_LOT_NUMBER.raw(header) {
        sink.push(
            t_index,
            Some(&F6_LOT_NUMBER),
            "lot.number_mismatch",
            "the lot trailer's lot number differs from the lot header's".into(),
        );
    }
    let n = lot.invoice_count() as u64;
    sink.expect(t_index, t, &F6_INVOICES, "lot.invoice_count", n);
    sink.expect(t_index, t, &F6_ACTS, "lot.act_count", sums.acts);
    sink.expect(t_index, t, &F6_TYPE2, "lot.type2_count", sums.type2);
    sink.expect(t_index, t, &F6_TYPE5, "lot.type5_count", n);
    sink.expect(t_index, t, &F6_BILLED, "lot.total_billed", sums.billed);
    sink.expect(t_index, t, &F6_AMO, "lot.total_amo", sums.amo);
    sink.expect(t_index, t, &F6_AMC, "lot.total_amc", sums.amc);
}

fn validate_invoice(sink: &mut Sink, inv: &Invoice<'_>, ps: &[u8], sums: &mut Sums) {
    let first = inv.first_record();
    let number = FI_INVOICE.raw(inv.header()).unwrap_or(&[]);
    let (mut billed, mut amo, mut amc) = (0u64, 0u64, 0u64);
    let mut body_seen = false;
    for (i, rec) in inv.records().enumerate() {
        let index = first + i;
        check_fields(sink, index, rec);
        let kind = RecordType::of(rec);
        match kind {
            RecordType::Line | RecordType::Act => body_seen = true,
            RecordType::InvoiceHeader if body_seen => sink.push(
                index,
                None,
                "invoice.order",
                "an invoice header continuation (type 2) after the invoice's type 3/4 records".into(),
            ),
            _ => {}
        }
        if kind != RecordType::Line {
            if FI_PS.raw(rec) != Some(ps) {
                sink.push(
                    index,
                    Some(&FI_PS),
                    "invoice.ps_mismatch",
                    "the record's PS number differs from the lot header's".into(),
                );
            }
            if FI_INVOICE.raw(rec) != Some(number) {
                sink.push(
                    index,
                    Some(&FI_INVOICE),
                    "invoice.number_mismatch",
                    "the record's invoice number differs from the invoice header's".into(),
                );
            }
        }
        // Amounts of base type 4 records only: the 4x variants carry no such fields.
        if kind == RecordType::Act && layout_index(rec) == Some(ACT_4_INDEX) {
            billed = billed.saturating_add(num(&F4_AMOUNT_BILLED, rec));
            amo = amo.saturating_add(num(&F4_AMOUNT_AMO, rec));
            amc = amc.saturating_add(num(&F4_AMOUNT_AMC, rec));
        }
    }
    let t_index = first + inv.records().len().saturating_sub(1);
    let t = inv.total();
    sink.expect(
        t_index,
        t,
        &F5_ACT_COUNT,
        "invoice.act_count",
        u64::from(inv.act_records()),
    );
    sink.expect(t_index, t, &F5_BILLED, "invoice.total_billed", billed);
    sink.expect(t_index, t, &F5_AMO, "invoice.total_amo", amo);
    sink.expect(t_index, t, &F5_AMC, "invoice.total_amc", amc);

    if inv.contract_type() == "99" {
        let settlement = inv.settlement();
        if settlement != "00" && settlement != "05" {
            sink.push(
                first,
                Some(&super::layouts::F2_SETTLEMENT),
                "invoice.enriched_settlement",
                format!(
                    "contract type 99 (enriched FSE) allows settlement 00 or 05 only, found {settlement:?} (R3.3)"
                ),
            );
        }
        if let Some(flag) = inv.ps_split() {
            sink.push(
                first,
                Some(&super::layouts::F2_PS_SPLIT),
                "invoice.exclusive_split",
                format!(
                    "contract type 99 forbids a split at the source, found flag {:?} (R3.4)",
                    char::from(flag)
                ),
            );
        }
    }

    sums.acts += u64::from(inv.act_records());
    sums.type2 += u64::from(inv.type2_records());
    sums.billed = sums.billed.saturating_add(num(&F5_BILLED, t));
    sums.amo = sums.amo.saturating_add(num(&F5_AMO, t));
    sums.amc = sums.amc.saturating_add(num(&F5_AMC, t));
}

fn validate_file(
    sink: &mut Sink,
    input: &B2Input<'_>,
    h: &[u8],
    t: &[u8],
    last: usize,
    sender: Option<&[u8]>,
) {
    sink.expect(
        last,
        t,
        &F9_RECORDS,
        "file.record_count",
        input.record_count() as u64,
    );
    sink.expect(last, t, &F9_LOTS, "file.lot_count", input.lots().len() as u64);
    let pairs: [(&Field, &Field); 5] = [
        (&F0_SENDER_TYPE, &F9_SENDER_TYPE),
        (&F0_SENDER_NUMBER, &F9_SENDER_NUMBER),
        (&F0_RECIPIENT_TYPE, &F9_RECIPIENT_TYPE),
        (&F0_APPLICATION, &F9_APPLICATION),
        (&F0_FILE_ID, &F9_FILE_ID),
    ];
    for (hf, tf) in pairs {
        if hf.raw(h) != tf.raw(t) {
            sink.push(
                last,
                Some(tf),
                "file.trailer_mismatch",
                format!("the file trailer's {} differs from the file header's", tf.label),
            );
        }
    }
    // The recipient number is text in 000 and digits in 999 (an association number keeps its
    // letters in 000 only): compare them under the mapping of `RecipientNumber`.
    let hr = F0_RECIPIENT_NUMBER.str(h).unwrap_or("").trim();
    let tr = F9_RECIPIENT_NUMBER.str(t).unwrap_or("").trim();
    if !super::recipient::trailer_matches(hr, tr) {
        sink.push(
            last,
            Some(&F9_RECIPIENT_NUMBER),
            "file.trailer_mismatch",
            format!("the file trailer's recipient number {tr:?} differs from the header's {hr:?}"),
        );
    }
    // R3.2 binds the PS's own single file; a file whose sender type is `OT` is one an OCT
    // forwards (sender = the OCT), so its sender number is not a PS number.
    let forwarded_by_oct = F0_SENDER_TYPE.raw(h) == Some(b"OT".as_slice());
    if !forwarded_by_oct
        && let (Some(lot_sender), Some(file_sender)) = (
            sender.and_then(parse_digits),
            F0_SENDER_NUMBER.raw(h).and_then(parse_digits),
        )
        && lot_sender != file_sender
    {
        sink.push(
            0,
            Some(&F0_SENDER_NUMBER),
            "file.sender_mismatch",
            format!("the file sender {file_sender} differs from the lots' PS number {lot_sender} (R3.2)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn valid_record(layout: &Layout) -> Vec<u8> {
        let mut r = layout.blank();
        for f in layout.fields {
            if f.fixed.is_none() && f.kind == Kind::Text && f.req == Req::Mandatory {
                let _ = f.put(&mut r, "X");
            }
        }
        r
    }

    /// A single file whose 000 sender number is not the lots' PS: R3.2 flags it when the sender
    /// type is a PS's (`TP`), not when it is `OT` (a file an OCT forwards, sender = the OCT).
    #[test]
    fn sender_mismatch_is_skipped_only_for_oct_forwarded_files() {
        let p = crate::b2::synth::SynthParams {
            invoices: 3,
            ..Default::default()
        };
        let file = crate::b2::SingleFileParams {
            sender_type: "TP".into(),
            oct_id: "12345678901234".into(),
            file_id: "F00001".into(),
            date: "261126".into(),
            message: String::new(),
        };
        let clean = crate::b2::synth::generate_single_file(&p, &file).unwrap();
        let codes = |sender_type: &str| -> Vec<&'static str> {
            let mut bytes = clean.clone();
            F0_SENDER_NUMBER
                .put(&mut bytes[..RECORD_LEN], "99999999999999")
                .unwrap();
            F0_SENDER_TYPE.put(&mut bytes[..RECORD_LEN], sender_type).unwrap();
            let last = bytes.len() - RECORD_LEN;
            F9_SENDER_NUMBER
                .put(&mut bytes[last..], "99999999999999")
                .unwrap();
            F9_SENDER_TYPE.put(&mut bytes[last..], sender_type).unwrap();
            let input = crate::b2::parse(&bytes).unwrap();
            validate(&input).into_iter().map(|f| f.code).collect()
        };
        let unchanged: Vec<_> = validate(&crate::b2::parse(&clean).unwrap())
            .into_iter()
            .map(|f| f.code)
            .collect();
        assert!(unchanged.is_empty(), "{unchanged:?}");
        assert_eq!(codes("TP"), vec!["file.sender_mismatch"]);
        assert!(codes("OT").is_empty(), "{:?}", codes("OT"));
    }

    #[test]
    fn fast_path_accepts_valid_records_of_every_layout() {
        for (i, l) in ALL.iter().enumerate() {
            let r = valid_record(l);
            assert!(l.check(&r).is_empty(), "{}: {:?}", l.code, l.check(&r));
            assert!(FastCheck::new(l).passes(&r), "{}", l.code);
            assert_eq!(layout_index(&r), Some(i), "{}", l.code);
        }
    }

    fn naive(rec: &[u8; RECORD_LEN]) -> Option<(u128, u128)> {
        if !rec.iter().all(|&b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        let mut d = 0u128;
        let mut s = 0u128;
        for (i, &b) in rec.iter().enumerate() {
            d |= u128::from(b.is_ascii_digit()) << i;
            s |= u128::from(b == b' ') << i;
        }
        Some((d, s))
    }

    proptest! {
        /// The word-at-a-time scan equals the obvious byte loop, on any bytes.
        #[test]
        fn scan_equals_the_byte_loop(bytes in prop::collection::vec(prop_oneof![0x1eu8..0x80, any::<u8>()], 128)) {
            let rec: [u8; RECORD_LEN] = bytes.try_into().unwrap();
            prop_assert_eq!(scan(&rec), naive(&rec));
        }

        /// The fast path says "clean" exactly when the field-by-field check finds nothing.
        #[test]
        fn fast_path_agrees_with_layout_check(
            which in 0usize..13,
            edits in prop::collection::vec((0usize..128, prop::sample::select(vec![b' ', b'0', b'7', b'A', 0xE9, 0x00, b'X', b'~', 0x7f])), 0..4),
        ) {
            let l = ALL[which];
            let mut r = valid_record(l);
            for (at, b) in edits {
                r[at] = b;
            }
            prop_assert_eq!(FastCheck::new(l).passes(&r), l.check(&r).is_empty());
        }
    }
}
