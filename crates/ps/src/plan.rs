//! Planning a sending: which files, for which recipient, protected how (R3).
//!
//! Pure logic, no I/O: lot files in, [`PlannedFile`]s out. Kept apart from the sending so that the
//! rules of the annex (one sender, R3.3 / R3.4 for contract type 99, the three options) are unit
//! tested without a server.
//!
//! | mode / option | files | recipient | protection |
//! |---|---|---|---|
//! | direct | one per (destination organisme, FSE/DRE) | the route's mailbox | the route's certificate, if any (`K`) |
//! | oct split (R3.1) | same files as direct | the OCT | the OCT's certificate (`K`; `ZK` only if configured) |
//! | oct single (R3.2) | one OCT single file | the OCT | the OCT's certificate |
//! | oct enriched (R3.3), `enriched_files = "single"` | one OCT single file, contract type 99 allowed | the OCT | the OCT's certificate |
//! | oct enriched (R3.3), `enriched_files = "per-destination"` | same files as direct, contract type 99 allowed | the OCT | the OCT's certificate |
//!
//! Compression: never in direct mode; in OCT mode as `[oct] compress` says, by default not for
//! `split` (it is the direct message, R3.1) and yes for the single file. The subject's
//! `exercice` is read from each built file's header (`000` 6-19), never from the configuration.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use svoct_formats::b2::{self, B2Input, Destination, DirectFileParams, Lot, LotKind, SingleFileParams};
use svoct_mail::subject::FileKind;

use crate::config::{Config, EnrichedFiles, Mode, OctSettings, SendOption};
use crate::error::PsError;

/// Largest lot file accepted (64 MiB: about 500,000 B2 records, far above any real lot).
pub const MAX_LOT_FILE: u64 = 64 * 1024 * 1024;

/// A lot file as read: a bare lot (or lots) or a framed file (`000` ... `999`).
#[derive(Clone, Debug)]
pub struct LotFile {
    /// Where it came from, for error messages.
    pub name: String,
    pub bytes: Vec<u8>,
}

impl LotFile {
    /// Reads a lot file, bounded by [`MAX_LOT_FILE`].
    pub fn read(path: &std::path::Path) -> Result<LotFile, PsError> {
        use std::io::Read;
        let name = path.display().to_string();
        let read_err = |source| PsError::Read {
            path: name.clone(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read_err)?;
        let size = f.metadata().map_err(read_err)?.len();
        if size > MAX_LOT_FILE {
            return Err(PsError::TooLarge {
                path: name,
                size,
                max: MAX_LOT_FILE,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        f.take(MAX_LOT_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_LOT_FILE {
            return Err(PsError::TooLarge {
                path: name,
                size: bytes.len() as u64,
                max: MAX_LOT_FILE,
            });
        }
        // A memory zone from the SESAM-Vitale API carries its lots in groups 13/93.
        let bytes = crate::zone_input::lots_of(&name, bytes)?;
        Ok(LotFile { name, bytes })
    }
}

/// Values that change from one sending to the next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanParams {
    /// File date, AAMMJJ.
    pub date: String,
    /// Number of the first file (file names are 6 digits, unique per file).
    pub first_file_number: u32,
}

/// One file to send in one message (R5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    /// `SV` (FSE, or mixed single file) or `DR` (DRE only).
    pub kind: FileKind,
    /// The recipient mailbox.
    pub to: String,
    /// Encrypt for this certificate; `None` sends the file as it is.
    pub certificate: Option<PathBuf>,
    /// Compress before encrypting (`ZK`).
    pub compress: bool,
    /// The 6-character file name written in the `000` record.
    pub file_id: String,
    /// The framed B2 file.
    pub bytes: Vec<u8>,
    /// Lots carried (number, date), for the journal.
    pub lots: Vec<svoct_store::Lot>,
    /// Invoice numbers carried, for the journal.
    pub invoices: Vec<String>,
    /// `exercice` of the subject: the file's sender number.
    pub exercice: String,
}

impl PlannedFile {
    /// Number of invoices in the file (`nnnnn` of the subject).
    pub fn invoice_count(&self) -> u32 {
        u32::try_from(self.invoices.len()).unwrap_or(u32::MAX)
    }
}

/// A parsed lot and the file it came from.
#[derive(Clone)]
struct Located<'a> {
    file: &'a str,
    lot: Lot<'a>,
}

fn lot_label(lot: &Lot<'_>) -> String {
    match lot.lot_number() {
        Some(n) => format!("{n:03}"),
        None => "(unnumbered)".into(),
    }
}

fn invoice_label(inv: &b2::Invoice<'_>) -> String {
    match inv.number() {
        Some(n) => format!("{n:09}"),
        None => "(unnumbered)".into(),
    }
}

/// Parses and checks every lot file: structure and validation findings, one sender (the
/// configured PS), and the rules of contract type 99 (R3.3, R3.4).
fn parse_all<'a>(config: &Config, files: &'a [LotFile]) -> Result<Vec<Located<'a>>, PsError> {
    let mut out = Vec::new();
    let mut invalid = None;
    for f in files {
        let input: B2Input<'a> = b2::parse(&f.bytes).map_err(|source| PsError::B2 {
            path: f.name.clone(),
            source,
        })?;
        let findings = b2::validate(&input);
        if let (None, Some(first)) = (&invalid, findings.first()) {
            invalid = Some(PsError::Invalid {
                path: f.name.clone(),
                record: first.record_index,
                offset: first.offset,
                field: first.field.map(|n| format!(" field {n}")).unwrap_or_default(),
                message: first.message.clone(),
                count: findings.len(),
            });
        }
        for lot in input.lots() {
            out.push(Located {
                file: &f.name,
                lot: lot.clone(),
            });
        }
    }
    if out.is_empty() {
        return Err(PsError::NoLots);
    }
    let expected = config.identity.ps_number.as_str();
    for l in &out {
        if l.lot.sender() != expected {
            return Err(PsError::WrongSender {
                path: l.file.to_owned(),
                lot: lot_label(&l.lot),
                offset: l.lot.offset(),
                expected: expected.to_owned(),
                found: l.lot.sender().to_owned(),
            });
        }
    }
    // The same invoice twice in one sending (a lot file given twice, a lot in two files).
    let mut seen: HashMap<(LotKind, u64), &str> = HashMap::new();
    for l in &out {
        for inv in l.lot.invoices() {
            if let Some(n) = inv.number()
                && let Some(first) = seen.insert((l.lot.kind(), n), l.file)
            {
                return Err(PsError::Rule {
                    path: l.file.to_owned(),
                    invoice: invoice_label(inv),
                    offset: inv.offset(),
                    rule: "one sending",
                    reason: format!(
                        "this {} invoice is also in {first}: a lot given twice?",
                        l.lot.kind()
                    ),
                });
            }
        }
    }
    // The annex's rules first, with their own words; then anything else the validator found.
    check_contract_99(config, &out)?;
    if let Some(e) = invalid {
        return Err(e);
    }
    Ok(out)
}

/// R3.3 and R3.4 for invoices with contract type 99 (the OCT may split them).
fn check_contract_99(config: &Config, lots: &[Located<'_>]) -> Result<(), PsError> {
    let enriched = config.mode == Mode::Oct
        && config
            .oct
            .as_ref()
            .is_some_and(|o| o.option == SendOption::Enriched);
    // Invoice numbers that travel as DRE: a contract-99 FSE must not have one (R3.4).
    let dre: HashSet<u64> = lots
        .iter()
        .filter(|l| l.lot.kind() == LotKind::Dre)
        .flat_map(|l| l.lot.invoices().iter().filter_map(|i| i.number()))
        .collect();
    for l in lots.iter().filter(|l| l.lot.kind() == LotKind::Fse) {
        for inv in l.lot.invoices() {
            if inv.contract_type() != "99" {
                continue;
            }
            let err = |rule, reason: String| PsError::Rule {
                path: l.file.to_owned(),
                invoice: invoice_label(inv),
                offset: inv.offset(),
                rule,
                reason,
            };
            if !enriched {
                return Err(err(
                    "R3.3",
                    "contract type 99 lets an OCT split the FSE: it is sent only in OCT mode \
                     with option `enriched` (svoct ps oct set --option enriched; svoct ps mode oct)"
                        .into(),
                ));
            }
            let settlement = inv.settlement();
            if settlement != "00" && settlement != "05" {
                return Err(err(
                    "R3.3",
                    format!(
                        "settlement recipient (positions 115-116) is {settlement:?}; with contract \
                         type 99 only 00 (no third-party payment) or 05 (third party on the AMO \
                         part) are allowed"
                    ),
                ));
            }
            if let Some(flag) = inv.ps_split() {
                return Err(err(
                    "R3.4",
                    format!(
                        "the source-split flag (position 46) is {:?}; contract type 99 gives the \
                         split to the OCT, so the PS cannot split at the source as well",
                        char::from(flag)
                    ),
                ));
            }
            if inv.number().is_some_and(|n| dre.contains(&n)) {
                return Err(err(
                    "R3.4",
                    "a DRE for the same invoice is in this sending; contract type 99 forbids \
                     creating both an FSE and a DRE for one invoice"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

fn journal_lots(lots: &[&Lot<'_>]) -> Vec<svoct_store::Lot> {
    lots.iter()
        .map(|l| svoct_store::Lot {
            number: lot_label(l),
            date: l.date().to_owned(),
        })
        .collect()
}

fn invoice_numbers(lots: &[&Lot<'_>]) -> Vec<String> {
    lots.iter()
        .flat_map(|l| l.invoices().iter().map(invoice_label))
        .collect()
}

fn file_kind(kind: LotKind) -> FileKind {
    match kind {
        LotKind::Fse => FileKind::Fse,
        LotKind::Dre => FileKind::Dre,
    }
}

fn b2_err(path: &str) -> impl FnOnce(b2::B2Error) -> PsError + '_ {
    move |source| PsError::B2 {
        path: path.to_owned(),
        source,
    }
}

/// Plans the files of one sending in the configured mode and option, numbering them from
/// `params.first_file_number`.
pub fn plan(config: &Config, files: &[LotFile], params: &PlanParams) -> Result<Vec<PlannedFile>, PsError> {
    let first = u64::from(params.first_file_number);
    plan_numbered(config, files, &params.date, &mut |_| Ok(first))
}

/// Plans the files of one sending, asking `reserve` for the numbers once it knows how many files
/// there are: `reserve(count)` returns the first of `count` numbers nobody else will use (the
/// store's counter, see `Journal::reserve_file_numbers`). File names are the number modulo
/// 1 000 000, as 6 digits.
pub fn plan_numbered(
    config: &Config,
    files: &[LotFile],
    date: &str,
    reserve: &mut dyn FnMut(u32) -> Result<u64, PsError>,
) -> Result<Vec<PlannedFile>, PsError> {
    let lots = parse_all(config, files)?;
    let all_names = files
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let oct = match config.mode {
        Mode::Direct => None,
        Mode::Oct => Some(config.oct.as_ref().ok_or_else(|| {
            PsError::Other("mode is `oct` but no OCT is configured: run `svoct ps oct set`".into())
        })?),
    };
    // R3.2, and the first form of R3.3 ("concaténation"): one OCT single file. Otherwise one
    // file per (destination, kind): direct mode, R3.1, and the second form of R3.3.
    let single = oct.is_some_and(|o| match o.option {
        SendOption::Single => true,
        SendOption::Enriched => o.enriched_files == EnrichedFiles::Single,
        SendOption::Split => false,
    });
    // The enriched single file holds FSE lots only (R3.3: "lots de FSE enrichies"); DRE lots
    // of the same sending travel in their own single file (R3.2).
    let singles = single_file_groups(oct, &lots);
    let count = if single {
        u32::try_from(singles.len()).unwrap_or(u32::MAX)
    } else {
        // The builder makes one file per (destination, kind).
        let keys: HashSet<(Destination, LotKind)> =
            lots.iter().map(|l| (l.lot.destination(), l.lot.kind())).collect();
        u32::try_from(keys.len()).unwrap_or(u32::MAX)
    };
    let params = PlanParams {
        date: date.to_owned(),
        first_file_number: u32::try_from(reserve(count)? % 1_000_000).unwrap_or(0),
    };
    match oct {
        Some(oct) if single => {
            let mut out = Vec::with_capacity(singles.len());
            for (k, group) in singles.iter().enumerate() {
                let numbered = PlanParams {
                    date: params.date.clone(),
                    first_file_number: params
                        .first_file_number
                        .wrapping_add(u32::try_from(k).unwrap_or(0))
                        % 1_000_000,
                };
                out.extend(plan_single(config, oct, group, &numbered, &all_names)?);
            }
            Ok(out)
        }
        _ => plan_per_destination(config, oct, &lots, &params, &all_names),
    }
}

/// The lots of each OCT single file of a sending: all of them in one file (R3.2), except with
/// option `enriched`, where FSE lots (enriched or not) make the enriched file and DRE lots, if
/// any, a second single file (`docs/formats/messages.md`, "Single files").
fn single_file_groups<'a>(oct: Option<&OctSettings>, lots: &[Located<'a>]) -> Vec<Vec<Located<'a>>> {
    let enriched = oct.is_some_and(|o| o.option == SendOption::Enriched);
    if !enriched {
        return vec![lots.to_vec()];
    }
    let (fse, dre): (Vec<Located<'a>>, Vec<Located<'a>>) =
        lots.iter().cloned().partition(|l| l.lot.kind() == LotKind::Fse);
    [fse, dre].into_iter().filter(|g| !g.is_empty()).collect()
}

/// The file's sender number (`000` positions 6-19): the `exercice` of its subject (R5.3), read
/// from the bytes that travel so that the subject and the file cannot disagree.
fn file_sender_number(bytes: &[u8], names: &str) -> Result<String, PsError> {
    b2::file_sender_number(bytes).map(str::to_owned).ok_or_else(|| {
        PsError::Other(format!(
            "internal: the file built from {names} has no sender number"
        ))
    })
}

/// R3.2 (and R3.3, first form): every lot in one file under the OCT header.
fn plan_single(
    config: &Config,
    oct: &OctSettings,
    lots: &[Located<'_>],
    params: &PlanParams,
    all_names: &str,
) -> Result<Vec<PlannedFile>, PsError> {
    let all: Vec<Lot<'_>> = lots.iter().map(|l| l.lot.clone()).collect();
    let file_id = format!("{:06}", params.first_file_number % 1_000_000);
    let bytes = b2::build_single_file(
        &all,
        &SingleFileParams {
            sender_type: config.identity.sender_type.clone(),
            oct_id: oct.identifier.clone(),
            file_id: file_id.clone(),
            date: params.date.clone(),
            message: oct.message_zone.clone(),
        },
    )
    .map_err(b2_err(all_names))?;
    let refs: Vec<&Lot<'_>> = all.iter().collect();
    Ok(vec![PlannedFile {
        // R5: the single file travels under `SV…` / `FACTURE/SV` whatever its lots, DRE-only
        // included (its header is the OCT's, not a direct-mode DRE file's).
        kind: FileKind::Fse,
        to: oct.address.clone(),
        certificate: Some(oct.certificate.clone()),
        compress: oct.compresses(),
        file_id,
        exercice: file_sender_number(&bytes, all_names)?,
        bytes,
        lots: journal_lots(&refs),
        invoices: invoice_numbers(&refs),
    }])
}

/// One file per (destination, kind), framed as in direct mode: to the route in direct mode; to
/// the OCT, encrypted for it, with option `split` (R3.1) or `enriched` per destination (R3.3).
fn plan_per_destination(
    config: &Config,
    oct: Option<&OctSettings>,
    lots: &[Located<'_>],
    params: &PlanParams,
    all_names: &str,
) -> Result<Vec<PlannedFile>, PsError> {
    let all: Vec<Lot<'_>> = lots.iter().map(|l| l.lot.clone()).collect();
    let built = b2::build_direct_files(
        &all,
        &DirectFileParams {
            sender_type: config.identity.sender_type.clone(),
            recipient_type: "CA".into(),
            application: "SV".into(),
            first_file_number: params.first_file_number,
            date: params.date.clone(),
            message: String::new(),
        },
    )
    .map_err(b2_err(all_names))?;
    // The same grouping as the builder: (destination, kind) in order of first appearance.
    let mut members: HashMap<(Destination, LotKind), Vec<&Located<'_>>> = HashMap::new();
    for l in lots {
        let key = (l.lot.destination(), l.lot.kind());
        members.entry(key).or_default().push(l);
    }
    let mut out = Vec::with_capacity(built.len());
    for file in built {
        let key = (file.destination.clone(), file.kind);
        let group = members.get(&key).cloned().unwrap_or_default();
        let first = group.first().ok_or_else(|| {
            PsError::Other(format!(
                "internal: file {} for {} has no lots",
                file.file_id, file.destination
            ))
        })?;
        let (to, certificate, compress) = match oct {
            Some(oct) => (
                oct.address.clone(),
                Some(oct.certificate.clone()),
                oct.compresses(),
            ),
            None => {
                let route = config
                    .direct
                    .routes
                    .get(&file.destination.organisme)
                    .ok_or_else(|| PsError::NoRoute {
                        organisme: file.destination.organisme.clone(),
                        lot: lot_label(&first.lot),
                        path: first.file.to_owned(),
                    })?;
                (route.mailbox.clone(), route.certificate.clone(), false)
            }
        };
        let refs: Vec<&Lot<'_>> = group.iter().map(|l| &l.lot).collect();
        out.push(PlannedFile {
            kind: file_kind(file.kind),
            to,
            certificate,
            compress,
            file_id: file.file_id,
            exercice: file_sender_number(&file.bytes, all_names)?,
            bytes: file.bytes,
            lots: journal_lots(&refs),
            invoices: invoice_numbers(&refs),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
