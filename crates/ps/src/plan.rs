//! Planning a sending: which files, for which recipient, protected how (R3).
//!
//! Pure logic, no I/O: lot files in, [`PlannedFile`]s out. Kept apart from the sending so that the
//! rules of the annex (one sender, R3.3 / R3.4 for contract type 99, the three options) are unit
//! tested without a server.
//!
//! | mode / option | files | recipient | protection |
//! |---|---|---|---|
//! | direct | one per (destination organisme, FSE/DRE) | the route's mailbox | the route's certificate, if any (`K`) |
//! | oct split (R3.1) | same files as direct | the OCT | the OCT's certificate (`K` or `ZK`) |
//! | oct single (R3.2) | one OCT single file | the OCT | the OCT's certificate |
//! | oct enriched (R3.3) | one OCT single file, contract type 99 allowed | the OCT | the OCT's certificate |

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use svoct_formats::b2::{self, B2Input, Destination, DirectFileParams, Lot, LotKind, SingleFileParams};
use svoct_mail::subject::FileKind;

use crate::config::{Config, Mode, SendOption};
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
    let exercice = config.identity.ps_number.clone();
    let oct = match config.mode {
        Mode::Direct => None,
        Mode::Oct => Some(config.oct.as_ref().ok_or_else(|| {
            PsError::Other("mode is `oct` but no OCT is configured: run `svoct ps oct set`".into())
        })?),
    };
    let single = matches!(
        oct.map(|o| o.option),
        Some(SendOption::Single | SendOption::Enriched)
    );
    let count = if single {
        1
    } else {
        // The builder makes one file per (destination, kind).
        let keys: std::collections::HashSet<(Destination, LotKind)> =
            lots.iter().map(|l| (l.lot.destination(), l.lot.kind())).collect();
        u32::try_from(keys.len()).unwrap_or(u32::MAX)
    };
    let first_file_number = u32::try_from(reserve(count)? % 1_000_000).unwrap_or(0);
    let params = PlanParams {
        date: date.to_owned(),
        first_file_number,
    };
    match oct.map(|o| (o, o.option)) {
        Some((oct, SendOption::Single | SendOption::Enriched)) => {
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
            .map_err(b2_err(&all_names))?;
            let refs: Vec<&Lot<'_>> = all.iter().collect();
            let kind = if all.iter().all(|l| l.kind() == LotKind::Dre) {
                FileKind::Dre
            } else {
                FileKind::Fse
            };
            Ok(vec![PlannedFile {
                kind,
                to: oct.address.clone(),
                certificate: Some(oct.certificate.clone()),
                compress: oct.compress,
                file_id,
                bytes,
                lots: journal_lots(&refs),
                invoices: invoice_numbers(&refs),
                exercice,
            }])
        }
        split => {
            // Direct mode, or R3.1: the direct-mode files, addressed to the OCT.
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
            .map_err(b2_err(&all_names))?;
            // The same grouping as the builder: (destination, kind) in order of first appearance.
            let mut members: HashMap<(Destination, LotKind), Vec<&Located<'_>>> = HashMap::new();
            for l in &lots {
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
                let (to, certificate, compress) = match split {
                    Some((oct, _)) => (oct.address.clone(), Some(oct.certificate.clone()), oct.compress),
                    None => {
                        let route =
                            config
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
                    bytes: file.bytes,
                    lots: journal_lots(&refs),
                    invoices: invoice_numbers(&refs),
                    exercice: exercice.clone(),
                });
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests;
