//! R8.3: the OCT's split of enriched FSE (contract type 99) into an AMO lot and AMC data.
//!
//! Provisional (`docs/formats/b2.md`): the AMO lot is the PS's lot with one byte changed per
//! split invoice, type 5 position 90 set to `A`; nothing else moves, the seal zones (97-128 of
//! types 5 and 6) included, since the OCT never re-signs (R3.5). The AMC side is handed over as
//! data (per AMC organisation number, the invoices with their amounts and their exact records);
//! [`build_amc_lot`] frames the selected invoices into a lot of the concentrator's complementary
//! flow.

use serde::Serialize;

use super::layouts::{
    F1_DATE, F1_LOT_NUMBER, F1_ORIGIN, F2_MEMBER, F5_OCT_SPLIT, F6_ACTS, F6_AMC, F6_AMO, F6_BILLED,
    F6_INVOICES, F6_LOT_NUMBER, F6_SEAL, F6_TYPE2, F6_TYPE5, RecordType, invoice_continuation,
};
use super::model::{Lot, LotKind};
use super::{B2Error, RECORD_LEN};

/// What the OCT needs from one invoice of an enriched FSE to build the complementary flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmcInvoice<'a> {
    /// *N° facture*.
    pub invoice_number: u64,
    /// Record index of the invoice's type 2 record in the input.
    pub record: usize,
    /// Byte offset of the invoice's type 2 record in the input.
    pub offset: usize,
    /// *Destinataire du règlement* (`00` or `05`).
    pub settlement: String,
    /// *N° d'adhérent* (type 2 positions 105-112).
    pub member_number: String,
    /// Type 5 *Total des montants facturés*, in cents.
    pub total_billed: u64,
    /// Type 5 *Total remboursable par la Caisse*, in cents.
    pub total_amo: u64,
    /// Type 5 *Total remboursable par l'organisme complémentaire*, in cents.
    pub total_amc: u64,
    /// The 2M record (AMC routing data), if the invoice has one.
    #[serde(skip)]
    pub amc_record: Option<&'a [u8]>,
    /// The invoice's exact records, type 2 to type 5, as the PS sealed them.
    #[serde(skip)]
    pub bytes: &'a [u8],
}

/// The invoices of one AMC organisation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AmcGroup<'a> {
    /// *N° d'organisme complémentaire* (type 2 positions 119-128).
    pub amc_number: String,
    /// Its invoices, in lot order.
    pub invoices: Vec<AmcInvoice<'a>>,
}

/// The result of [`split_enriched`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrichedSplit<'a> {
    /// The lot to forward to the AMO: the input lot with type 5 position 90 = `A` on every
    /// split invoice.
    pub amo_lot: Vec<u8>,
    /// How many invoices were marked.
    pub marked: usize,
    /// The complementary data, one group per AMC organisation, in order of first appearance.
    pub amc: Vec<AmcGroup<'a>>,
}

/// Split an enriched FSE lot (R8.3): every invoice with contract type `99` is marked as split
/// by an OCT in the AMO lot and its data goes to its AMC organisation's group. Invoices without
/// contract type 99 stay as they are. A lot without any is returned unchanged with no AMC group.
///
/// Refused with [`B2Error::NotEnrichable`]: a DRE lot; an invoice with contract type 99 whose
/// settlement is not `00`/`05` (R3.3), that is split at the source (R3.4), that is already
/// marked, or that has no AMC organisation number.
pub fn split_enriched<'a>(lot: &Lot<'a>) -> Result<EnrichedSplit<'a>, B2Error> {
    let refuse = |record: usize, field: &'static str, reason: &'static str| B2Error::NotEnrichable {
        record,
        offset: record * RECORD_LEN,
        field,
        reason,
    };
    if lot.kind() == LotKind::Dre {
        return Err(refuse(
            lot.first_record(),
            "norm_version",
            "a DRE lot is not an enriched FSE",
        ));
    }
    let mut amo_lot = lot.bytes().to_vec();
    let mut marked = 0;
    let mut amc: Vec<AmcGroup<'a>> = Vec::new();
    for inv in lot.invoices() {
        if inv.contract_type() != "99" {
            continue;
        }
        let first = inv.first_record();
        if !matches!(inv.settlement(), "00" | "05") {
            return Err(refuse(
                first,
                "settlement",
                "contract type 99 needs settlement 00 or 05 (R3.3)",
            ));
        }
        if inv.ps_split().is_some() {
            return Err(refuse(
                first,
                "ps_split",
                "contract type 99 forbids a split at the source (R3.4)",
            ));
        }
        let amc_number = inv.amc_number();
        if amc_number.is_empty() {
            return Err(refuse(
                first,
                "amc_number",
                "contract type 99 without an AMC organisation number",
            ));
        }
        let total_index = first + inv.records().len().saturating_sub(1);
        if inv.split_by_oct() {
            return Err(refuse(
                total_index,
                "oct_split",
                "the invoice is already marked as split by an OCT",
            ));
        }
        // The mark: one byte of the type 5 record, at its offset relative to the lot.
        let at = (total_index * RECORD_LEN + F5_OCT_SPLIT.range().start).checked_sub(lot.offset());
        match at.and_then(|at| amo_lot.get_mut(at)) {
            Some(b) => *b = b'A',
            None => {
                return Err(refuse(
                    total_index,
                    "oct_split",
                    "the invoice total lies outside the lot",
                ));
            }
        }
        marked += 1;
        let amc_record = inv.records().find(|r| {
            RecordType::of(r) == RecordType::InvoiceHeader && invoice_continuation(r) == Some(b'M')
        });
        let item = AmcInvoice {
            invoice_number: inv.number().unwrap_or(0),
            record: first,
            offset: inv.offset(),
            settlement: inv.settlement().to_owned(),
            member_number: F2_MEMBER.str(inv.header()).unwrap_or("").to_owned(),
            total_billed: inv.total_billed().unwrap_or(0),
            total_amo: inv.total_amo().unwrap_or(0),
            total_amc: inv.total_amc().unwrap_or(0),
            amc_record,
            bytes: inv.bytes(),
        };
        match amc.iter_mut().find(|g| g.amc_number == amc_number) {
            Some(g) => g.invoices.push(item),
            None => amc.push(AmcGroup {
                amc_number: amc_number.to_owned(),
                invoices: vec![item],
            }),
        }
    }
    Ok(EnrichedSplit { amo_lot, marked, amc })
}

/// *Origine du fichier* (type 1 positions 11-16) of the lots an OCT builds itself (the AMC
/// complementary flow), so they can be told from the PS's (provisional).
pub const OCT_LOT_ORIGIN: &str = "OCT";

/// Builds an OCT lot of the complementary flow (R8.3, **provisional**): the PS's lot header with
/// lot number `number`, origin [`OCT_LOT_ORIGIN`] and date `date` (AAMMJJ; the lot is the OCT's:
/// its ARL is matched by this number and date, R4.2); the invoices of `lot` at `invoice_indices`
/// exactly as sealed (an index out of range is skipped); a lot trailer recomputed over them
/// whose seal zone is blank (the OCT cannot seal, and never re-signs the PS's seals, R3.5).
pub fn build_amc_lot(
    lot: &Lot<'_>,
    invoice_indices: &[usize],
    number: u32,
    date: &str,
) -> Result<Vec<u8>, B2Error> {
    let header_record = lot.first_record();
    let trailer_record = header_record + lot.record_count().saturating_sub(1);
    let at = |record: usize| {
        move |source| B2Error::Field {
            record,
            offset: record * RECORD_LEN,
            source,
        }
    };
    let mut header = lot.header().to_vec();
    F1_LOT_NUMBER
        .put_number(&mut header, u64::from(number))
        .map_err(at(header_record))?;
    F1_ORIGIN
        .put(&mut header, OCT_LOT_ORIGIN)
        .map_err(at(header_record))?;
    F1_DATE.put(&mut header, date).map_err(at(header_record))?;
    let mut trailer = lot.trailer().to_vec();
    let (mut n, mut acts, mut type2, mut billed, mut amo, mut amc) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut body = Vec::new();
    for inv in invoice_indices.iter().filter_map(|&k| lot.invoices().get(k)) {
        body.extend_from_slice(inv.bytes());
        n += 1;
        acts += u64::from(inv.act_records());
        type2 += u64::from(inv.type2_records());
        billed = billed.saturating_add(inv.total_billed().unwrap_or(0));
        amo = amo.saturating_add(inv.total_amo().unwrap_or(0));
        amc = amc.saturating_add(inv.total_amc().unwrap_or(0));
    }
    for (field, value) in [
        (&F6_INVOICES, n),
        (&F6_ACTS, acts),
        (&F6_TYPE2, type2),
        (&F6_TYPE5, n),
        (&F6_BILLED, billed),
        (&F6_AMO, amo),
        (&F6_AMC, amc),
        (&F6_LOT_NUMBER, u64::from(number)),
    ] {
        field
            .put_number(&mut trailer, value)
            .map_err(at(trailer_record))?;
    }
    if let Some(seal) = trailer.get_mut(F6_SEAL.range()) {
        seal.fill(b' ');
    }
    let mut out = header;
    out.extend_from_slice(&body);
    out.extend_from_slice(&trailer);
    Ok(out)
}
