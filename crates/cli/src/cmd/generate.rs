//! `svoct gen`: deterministic synthetic lots and files, for tests, demos and benchmarks.
//!
//! Wraps the seeded generator of `svoct_formats::b2::synth`: the same flags give the same bytes on
//! every machine once `--date` and `--first-lot` are given (by default they come from the clock,
//! so that unrelated test lots do not collide on number and date). Three output forms:
//! - `lots`: the bare sequence of lots (type 1 ... type 6), as a billing software hands them over;
//! - `single-file`: the OCT single file of R3.2 (`000`, lots, `999`);
//! - `zone`: the memory-zone form of the lot parameters, as the SESAM-Vitale API's lot formatting
//!   would return them (groups 12/13, 92/93 and 14; **provisional**, see `docs/formats/zone.md`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use svoct_formats::b2::synth::{SynthParams, generate_bytes};
use svoct_formats::b2::{B2Error, Lot, LotKind, SingleFileParams, build_single_file, parse};
use svoct_formats::zone::{FileInfo, FileMessage, Flow, LotInfo, ZoneBuf};

use crate::CmdResult;

/// Output form of `svoct gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Bare lots, concatenated.
    Lots,
    /// The OCT single file (`000` + lots + `999`).
    SingleFile,
    /// SESAM-Vitale API memory zone with the lot parameters (provisional layout).
    Zone,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of the generator: same seed and flags, same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of invoices in total (FSE + DRE).
    #[arg(long, default_value_t = 10)]
    pub invoices: usize,
    /// How many of the invoices are DRE instead of FSE (at most `--invoices`).
    #[arg(long, default_value_t = 0)]
    pub dre: usize,
    /// FSE invoices are enriched for the OCT's AMC split (contract type 99, R3.3).
    #[arg(long)]
    pub enriched: bool,
    /// Number of distinct destination organisations (1 to 900).
    #[arg(long, default_value_t = 1)]
    pub destinations: usize,
    /// The PS number + key, 9 digits.
    #[arg(long, default_value = "123456789")]
    pub ps: String,
    /// Output form.
    #[arg(long, value_enum, default_value_t = Format::Lots)]
    pub format: Format,
    /// The OCT identifier written as recipient of the single file: at most 14 digits (from the
    /// SIREN) or digits and capital letters (an association number, `W751234567`).
    #[arg(long, default_value = "12345678900017")]
    pub oct_id: String,
    /// Lot and file date, AAMMJJ. Default: today (UTC), so that unrelated test lots of
    /// different days never share a (number, date).
    #[arg(long)]
    pub date: Option<String>,
    /// Number of the first lot (1 to 999), the next ones following. Default: from the clock,
    /// 1 + the minute of the day (UTC) modulo 999, so that two runs minutes apart differ.
    #[arg(long)]
    pub first_lot: Option<u64>,
    /// Most invoices per lot (1 to 999).
    #[arg(long, default_value_t = 999)]
    pub lot_size: usize,
    /// Most acts per invoice (1 to 99).
    #[arg(long, default_value_t = 3)]
    pub max_acts: usize,
    /// File name (*identification du fichier*, 6 characters); derived from the seed if absent.
    #[arg(long)]
    pub file_id: Option<String>,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Errors of `svoct gen` that are about the flags rather than the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("--dre {dre} exceeds --invoices {invoices}")]
    TooManyDre { dre: usize, invoices: usize },
    #[error("--{flag} {value:?}: {why}")]
    BadFlag {
        flag: &'static str,
        value: String,
        why: &'static str,
    },
}

pub fn run(args: Args) -> CmdResult {
    let bytes = generate(&args)?;
    match &args.out {
        Some(path) => {
            // Generated files look like real claims: owner only, as every data file.
            svoct_mail::fsx::create_data_file(path)
                .and_then(|mut f| f.write_all(&bytes))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_digits(flag: &'static str, value: &str, max: usize) -> Result<(), GenError> {
    if value.is_empty() || value.len() > max || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GenError::BadFlag {
            flag,
            value: value.to_owned(),
            why: "expected ASCII digits of the right length",
        });
    }
    Ok(())
}

/// `--date`, or today (UTC) as AAMMJJ.
fn date_or_today(args: &Args) -> String {
    args.date.clone().unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        format!(
            "{:02}{:02}{:02}",
            now.year().rem_euclid(100),
            u8::from(now.month()),
            now.day()
        )
    })
}

/// `--first-lot`, or 1 + the minute of the day (UTC) modulo 999.
fn first_lot_or_clock(args: &Args) -> Result<u64, GenError> {
    match args.first_lot {
        Some(n) if (1..=999).contains(&n) => Ok(n),
        Some(n) => Err(GenError::BadFlag {
            flag: "first-lot",
            value: n.to_string(),
            why: "expected 1 to 999",
        }),
        None => {
            let now = time::OffsetDateTime::now_utc();
            let minute = u64::from(now.hour()) * 60 + u64::from(now.minute());
            Ok(1 + minute % 999)
        }
    }
}

/// The bytes `svoct gen` writes for these arguments.
pub fn generate(args: &Args) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    if args.dre > args.invoices {
        return Err(GenError::TooManyDre {
            dre: args.dre,
            invoices: args.invoices,
        }
        .into());
    }
    if args.invoices == 0 && args.format != Format::Zone {
        return Err(GenError::BadFlag {
            flag: "invoices",
            value: "0".into(),
            why: "a lot holds at least one invoice",
        }
        .into());
    }
    check_digits("ps", &args.ps, 9)?;
    if svoct_formats::b2::RecipientNumber::new(&args.oct_id).is_err() {
        return Err(GenError::BadFlag {
            flag: "oct-id",
            value: args.oct_id.clone(),
            why: "expected 1 to 14 digits (SIREN-based) or digits and capital letters (association number)",
        }
        .into());
    }
    let date = date_or_today(args);
    let first_lot = first_lot_or_clock(args)?;
    check_digits("date", &date, 6)?;
    if date.len() != 6 {
        return Err(GenError::BadFlag {
            flag: "date",
            value: date.clone(),
            why: "expected AAMMJJ",
        }
        .into());
    }
    let file_id = file_id_of(args)?;
    let lots = synth_lots(args, &date, first_lot)?;
    let file = SingleFileParams {
        sender_type: "TP".into(),
        oct_id: args.oct_id.clone(),
        file_id,
        date,
        message: format!("SVOCT GEN SEED {}", args.seed),
    };
    match args.format {
        Format::Lots => Ok(lots),
        Format::SingleFile => {
            let input = parse(&lots)?;
            Ok(build_single_file(input.lots(), &file)?)
        }
        Format::Zone => {
            let input = if lots.is_empty() {
                None
            } else {
                Some(parse(&lots)?)
            };
            let lots = input.as_ref().map(|i| i.lots()).unwrap_or_default();
            Ok(zone_of(lots, &file, &args.ps)?)
        }
    }
}

/// `--file-id`, or `G` and the last 5 digits of the seed.
fn file_id_of(args: &Args) -> Result<String, GenError> {
    let file_id = args
        .file_id
        .clone()
        .unwrap_or_else(|| format!("G{:05}", args.seed % 100_000));
    if file_id.is_empty() || file_id.len() > 6 || !file_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(GenError::BadFlag {
            flag: "file-id",
            value: file_id,
            why: "expected 1 to 6 letters or digits",
        });
    }
    Ok(file_id)
}

/// The lots, concatenated: the FSE invoices, then the DRE ones.
fn synth_lots(args: &Args, date: &str, first_lot: u64) -> Result<Vec<u8>, B2Error> {
    let base = SynthParams {
        seed: args.seed,
        invoices: 0,
        fse: false,
        dre: false,
        destinations: args.destinations.clamp(1, 900),
        enriched: args.enriched,
        date: date.to_owned(),
        ps_number: args.ps.clone(),
        first_lot,
        max_acts: args.max_acts,
        lot_size: args.lot_size,
        ..SynthParams::default()
    };
    // FSE and DRE are generated apart so that any split of the invoices can be asked for; the
    // DRE stream gets its own seed so that invoice numbers do not repeat the FSE ones.
    let mut lots = Vec::new();
    let fse = args.invoices - args.dre;
    if fse > 0 {
        lots.extend(generate_bytes(&SynthParams {
            invoices: fse,
            fse: true,
            ..base.clone()
        })?);
    }
    if args.dre > 0 {
        lots.extend(generate_bytes(&SynthParams {
            seed: args.seed ^ 0x5EED_D2E0_D2E0_D2E0,
            invoices: args.dre,
            dre: true,
            ..base.clone()
        })?);
    }
    Ok(lots)
}

/// Subject prefix of a lot's flow (public API data: `SVvvvvvv` for FSE, `DRvvvvvv` for DRE).
fn subject_prefix(flow: Flow) -> &'static str {
    match flow {
        Flow::Fse => "SV140700",
        Flow::Dre => "DR140700",
    }
}

/// The memory zone of the lot parameters (provisional layout, `docs/formats/zone.md`): for each
/// flow present, its file group (12 or 92) then one lot group (13 or 93) per lot; then group 14.
pub fn zone_of(
    lots: &[Lot<'_>],
    file: &SingleFileParams,
    ps: &str,
) -> Result<Vec<u8>, svoct_formats::zone::ZoneError> {
    let created = format!("20{}0000", file.date);
    let sender_number = format!("{ps:0>14}");
    // As the `000` header writes it (zone fields carry their length: no trailing blanks).
    let recipient_number = svoct_formats::b2::RecipientNumber::new(&file.oct_id)
        .map(|r| r.header_text().trim_end().to_owned())
        .unwrap_or_else(|_| file.oct_id.clone());
    let mut zone = ZoneBuf::new();
    for flow in [Flow::Fse, Flow::Dre] {
        let kind = match flow {
            Flow::Fse => LotKind::Fse,
            Flow::Dre => LotKind::Dre,
        };
        let of_flow: Vec<&Lot<'_>> = lots.iter().filter(|l| l.kind() == kind).collect();
        if of_flow.is_empty() {
            continue;
        }
        zone.push(
            FileInfo {
                flow,
                sender_type: file.sender_type.as_bytes(),
                file_name: file.file_id.as_bytes(),
                created: created.as_bytes(),
                sender_number: sender_number.as_bytes(),
                application: b"TO",
                recipient_type: b"OT",
                recipient_number: recipient_number.as_bytes(),
            }
            .to_buf(),
        );
        for lot in of_flow {
            let number = lot.lot_number().map(|n| format!("{n:03}")).unwrap_or_default();
            let dest = lot.destination();
            let lot_created = format!("20{}0000", lot.date());
            let count = lot.invoice_count().to_string();
            let mailbox = format!("cpam{}@synthetic.invalid", dest.organisme);
            let crf = format!("{}{}{}", dest.organisme, dest.regime, dest.caisse);
            zone.push(
                LotInfo {
                    flow,
                    lot_number: number.as_bytes(),
                    created: lot_created.as_bytes(),
                    destination: dest.organisme.as_bytes(),
                    invoice_count: count.as_bytes(),
                    subject_prefix: subject_prefix(flow).as_bytes(),
                    mailbox: mailbox.as_bytes(),
                    spec_version: b"140700",
                    crf: crf.as_bytes(),
                    lot: lot.bytes(),
                }
                .to_buf(),
            );
        }
    }
    let first_flow = match lots.first().map(Lot::kind) {
        Some(LotKind::Dre) => Flow::Dre,
        _ => Flow::Fse,
    };
    zone.push(
        FileMessage {
            subject_prefix: subject_prefix(first_flow).as_bytes(),
            message_zone: file.message.as_bytes(),
        }
        .to_buf(),
    );
    zone.encode()
}
