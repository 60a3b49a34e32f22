//! Building files around lots (R3.1, R3.2) and splitting a file by destination (R8.2).
//!
//! Lots are always copied byte for byte: only the `000` and `999` records are written here.

use std::collections::HashMap;

use serde::Serialize;

use super::layouts::{
    F0_APPLICATION, F0_CREATION_DATE, F0_FILE_ID, F0_MESSAGE, F0_NORME, F0_RECEPTION_DATE,
    F0_RECIPIENT_NUMBER, F0_RECIPIENT_TYPE, F0_SENDER_NUMBER, F0_SENDER_TYPE, F9_APPLICATION, F9_FILE_ID,
    F9_LOTS, F9_RECIPIENT_NUMBER, F9_RECIPIENT_TYPE, F9_RECORDS, F9_SENDER_NUMBER, F9_SENDER_TYPE,
    FILE_HEADER, FILE_TRAILER,
};
use super::model::{B2Input, Destination, Lot, LotKind};
use super::recipient::RecipientNumber;
use super::{B2Error, MAX_LOTS_PER_FILE, RECORD_LEN};
use crate::layout::Field;

/// Default *Norme* (`000` positions 62-65) written by this crate (provisional, `docs/formats/b2.md`).
pub const DEFAULT_NORME: &str = "SV14";

/// Everything a `000` / `999` pair says, field by field. The lot-derived values (sender number,
/// lot and record counts) are not here: the builders take them from the lots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeaderParams {
    /// *Type d'émetteur* (`TP`, `TE`, `SI`, `OT`).
    pub sender_type: String,
    /// *Type de destinataire*.
    pub recipient_type: String,
    /// *N° de destinataire*: digits, or digits and capital letters (an association number), at
    /// most 14; written as [`RecipientNumber`] says (provisional).
    pub recipient_number: String,
    /// *Application* (2 characters).
    pub application: String,
    /// *Identification du fichier*: the file name, 6 characters, unique per file.
    pub file_id: String,
    /// *Date de création du fichier*, AAMMJJ.
    pub date: String,
    /// *Norme* (4 characters).
    pub norme: String,
    /// *Zone message* (up to 37 characters).
    pub message: String,
}

/// The inputs of the OCT single file agreed with the OCT (R3.2). The rest comes from the lots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SingleFileParams {
    /// *Type d'émetteur* of the lots' sender (`TP` for a libéral PS).
    pub sender_type: String,
    /// The OCT identifier (from its SIREN, or its association number): see [`RecipientNumber`].
    pub oct_id: String,
    /// The file name, 6 characters, different for every file.
    pub file_id: String,
    /// File date, AAMMJJ.
    pub date: String,
    /// The file message zone, chosen by the software (up to 37 characters).
    pub message: String,
}

impl SingleFileParams {
    /// The `000` / `999` values of an OCT single file: application `TO`, recipient type `OT`.
    pub fn header(&self) -> FileHeaderParams {
        FileHeaderParams {
            sender_type: self.sender_type.clone(),
            recipient_type: "OT".into(),
            recipient_number: self.oct_id.clone(),
            application: "TO".into(),
            file_id: self.file_id.clone(),
            date: self.date.clone(),
            norme: DEFAULT_NORME.into(),
            message: self.message.clone(),
        }
    }
}

fn put(rec: &mut [u8], record: usize, field: &Field, value: &str) -> Result<(), B2Error> {
    field.put(rec, value).map_err(|source| B2Error::Field {
        record,
        offset: record * RECORD_LEN,
        source,
    })
}

fn put_number(rec: &mut [u8], record: usize, field: &Field, value: u64) -> Result<(), B2Error> {
    field.put_number(rec, value).map_err(|source| B2Error::Field {
        record,
        offset: record * RECORD_LEN,
        source,
    })
}

/// The one sender of all lots (R3.2: the file's sender number equals the lots').
fn common_sender<'a>(lots: &[&Lot<'a>]) -> Result<&'a str, B2Error> {
    let first = lots.first().ok_or(B2Error::NoLots)?;
    let sender = first.sender();
    for (i, lot) in lots.iter().enumerate() {
        if lot.sender() != sender {
            return Err(B2Error::MixedSenders {
                lot: i,
                record: lot.first_record(),
                offset: lot.offset(),
                expected: sender.to_owned(),
                found: lot.sender().to_owned(),
            });
        }
    }
    Ok(sender)
}

/// Frame lots into one B2 file with the given `000` / `999` values.
///
/// The sender number is the lots' PS number (all lots must share it), the `999` record count is
/// the number of records in the file *including* the `000` and `999` records (provisional), and
/// the lot count is the number of lots. Lot bytes are copied unchanged.
pub fn build_file(lots: &[&Lot<'_>], params: &FileHeaderParams) -> Result<Vec<u8>, B2Error> {
    check_lot_count(lots)?;
    frame(lots, params, common_sender(lots)?)
}

/// Frames whole lots given as bytes (as the PS sealed them, or marked for R8.3) into one file
/// like [`build_file`], with `sender_number` as the file's sender in the `000` and `999`: a
/// concentrator is the sender of the files it forwards, the lots stay its PS's (R8.2). The lots
/// must still share one PS number.
pub fn build_file_as(
    lots: &[&[u8]],
    params: &FileHeaderParams,
    sender_number: &str,
) -> Result<Vec<u8>, B2Error> {
    let joined = lots.concat();
    let input = super::model::parse(&joined)?;
    let refs: Vec<&Lot<'_>> = input.lots().iter().collect();
    check_lot_count(&refs)?;
    common_sender(&refs)?;
    frame(&refs, params, sender_number)
}

fn check_lot_count(lots: &[&Lot<'_>]) -> Result<(), B2Error> {
    if lots.len() > MAX_LOTS_PER_FILE {
        return Err(B2Error::TooMany {
            what: "lots in one file",
            count: lots.len(),
            max: MAX_LOTS_PER_FILE,
        });
    }
    Ok(())
}

/// The `000`, the lots byte for byte, the `999`, with `sender` as the file's sender number.
fn frame(lots: &[&Lot<'_>], params: &FileHeaderParams, sender: &str) -> Result<Vec<u8>, B2Error> {
    let body: usize = lots.iter().map(|l| l.bytes().len()).sum();
    let records = body / RECORD_LEN + 2;
    let recipient = RecipientNumber::new(&params.recipient_number)?;

    let mut h = FILE_HEADER.blank();
    put(&mut h, 0, &F0_SENDER_TYPE, &params.sender_type)?;
    put(&mut h, 0, &F0_SENDER_NUMBER, sender)?;
    put(&mut h, 0, &F0_RECIPIENT_TYPE, &params.recipient_type)?;
    put(&mut h, 0, &F0_RECIPIENT_NUMBER, &recipient.header_text())?;
    put(&mut h, 0, &F0_RECEPTION_DATE, "000000")?;
    put(&mut h, 0, &F0_APPLICATION, &params.application)?;
    put(&mut h, 0, &F0_FILE_ID, &params.file_id)?;
    put(&mut h, 0, &F0_CREATION_DATE, &params.date)?;
    put(&mut h, 0, &F0_NORME, &params.norme)?;
    put(&mut h, 0, &F0_MESSAGE, &params.message)?;

    let last = records - 1;
    let mut t = FILE_TRAILER.blank();
    put(&mut t, last, &F9_RECIPIENT_NUMBER, &recipient.trailer_digits())?;
    put(&mut t, last, &F9_SENDER_TYPE, &params.sender_type)?;
    put(&mut t, last, &F9_SENDER_NUMBER, sender)?;
    put(&mut t, last, &F9_RECIPIENT_TYPE, &params.recipient_type)?;
    put(&mut t, last, &F9_APPLICATION, &params.application)?;
    put(&mut t, last, &F9_FILE_ID, &params.file_id)?;
    put_number(&mut t, last, &F9_RECORDS, records as u64)?;
    put_number(&mut t, last, &F9_LOTS, lots.len() as u64)?;

    let mut out = Vec::with_capacity(body + 2 * RECORD_LEN);
    out.extend_from_slice(&h);
    for lot in lots {
        out.extend_from_slice(lot.bytes());
    }
    out.extend_from_slice(&t);
    Ok(out)
}

/// The OCT single file of R3.2: every lot (FSE, DRE or both), whatever its destination,
/// concatenated under one `000` header (application `TO`, recipient type `OT`, recipient number =
/// OCT identifier, the caller's file name and message zone) and one `999` trailer.
pub fn build_single_file(lots: &[Lot<'_>], params: &SingleFileParams) -> Result<Vec<u8>, B2Error> {
    let refs: Vec<&Lot<'_>> = lots.iter().collect();
    build_file(&refs, &params.header())
}

/// Parameters of direct-mode files (R3.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectFileParams {
    /// *Type d'émetteur* (`TP` for a libéral PS).
    pub sender_type: String,
    /// *Type de destinataire* of the AM organisation (provisional default `CA`).
    pub recipient_type: String,
    /// *Application* (provisional default `SV`).
    pub application: String,
    /// File names are `first_file_number`, `first_file_number + 1`, ..., as 6 digits.
    pub first_file_number: u32,
    /// File date, AAMMJJ.
    pub date: String,
    /// *Zone message*.
    pub message: String,
}

/// One direct-mode file: the lots of one (destination, kind) group, framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectFile {
    /// The grouping key.
    pub destination: Destination,
    /// FSE or DRE.
    pub kind: LotKind,
    /// The 6-character file name written in the `000` and `999` records.
    pub file_id: String,
    /// Number of lots in the file.
    pub lots: usize,
    /// Number of invoices in the file.
    pub invoices: usize,
    /// The file bytes.
    pub bytes: Vec<u8>,
}

/// Direct-mode files (R3.1, and the per-caisse variant of R3.3): one file per grouping key. The
/// CRF of the real API is not in the lots; its stand-in is (destination, FSE/DRE) (provisional).
/// The recipient number is pivot régime + pivot caisse + organisme, digits, zero-filled.
pub fn build_direct_files(lots: &[Lot<'_>], params: &DirectFileParams) -> Result<Vec<DirectFile>, B2Error> {
    let refs: Vec<&Lot<'_>> = lots.iter().collect();
    let groups = group(refs.iter().copied().enumerate());
    let mut files = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        let d = &g.destination;
        let recipient: String = format!("{:0>2}{:0>3}{:0>3}", d.regime, d.caisse, d.organisme)
            .chars()
            .map(|c| if c == ' ' { '0' } else { c })
            .collect();
        let number = u64::from(params.first_file_number) + i as u64;
        let file_id = format!("{:06}", number % 1_000_000);
        let header = FileHeaderParams {
            sender_type: params.sender_type.clone(),
            recipient_type: params.recipient_type.clone(),
            recipient_number: recipient,
            application: params.application.clone(),
            file_id: file_id.clone(),
            date: params.date.clone(),
            norme: DEFAULT_NORME.into(),
            message: params.message.clone(),
        };
        let members: Vec<&Lot<'_>> = g
            .lot_indices
            .iter()
            .filter_map(|&i| refs.get(i).copied())
            .collect();
        let bytes = build_file(&members, &header)?;
        files.push(DirectFile {
            destination: g.destination,
            kind: g.kind,
            file_id,
            lots: members.len(),
            invoices: g.invoices,
            bytes,
        });
    }
    Ok(files)
}

/// The lots of one destination after éclatement (R8.2): zero-copy slices of the input, each lot
/// byte-identical to what the PS sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DestinationGroup<'a> {
    /// The routing key.
    pub destination: Destination,
    /// FSE or DRE (they travel in different files).
    pub kind: LotKind,
    /// Indices of the lots in [`B2Input::lots`], in input order.
    pub lot_indices: Vec<usize>,
    /// The lots' exact bytes, in input order.
    #[serde(skip)]
    pub lots: Vec<&'a [u8]>,
    /// Number of invoices over the group's lots.
    pub invoices: usize,
}

fn group<'a, 'l>(lots: impl Iterator<Item = (usize, &'l Lot<'a>)>) -> Vec<DestinationGroup<'a>>
where
    'a: 'l,
{
    let mut groups: Vec<DestinationGroup<'a>> = Vec::new();
    let mut index: HashMap<(Destination, LotKind), usize> = HashMap::new();
    for (i, lot) in lots {
        let key = (lot.destination(), lot.kind());
        let g = match index.get(&key) {
            Some(&g) => g,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push(DestinationGroup {
                    destination: key.0,
                    kind: key.1,
                    lot_indices: Vec::new(),
                    lots: Vec::new(),
                    invoices: 0,
                });
                groups.len() - 1
            }
        };
        if let Some(g) = groups.get_mut(g) {
            g.lot_indices.push(i);
            g.lots.push(lot.bytes());
            g.invoices += lot.invoice_count();
        }
    }
    groups
}

/// Éclatement (R8.2): the lots of an input grouped by (destination, FSE/DRE), groups in order of
/// first appearance, lots in input order. Nothing is copied; seals are untouched (R3.5).
pub fn split_by_destination<'a>(input: &B2Input<'a>) -> Vec<DestinationGroup<'a>> {
    group(input.lots().iter().enumerate())
}
