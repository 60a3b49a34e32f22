//! Invoice messages (R8.1-R8.3): open the B2, authorise the sender, check the compostage, then
//! hand the lots to [`super::lots`] and [`super::forward`]; accept with an ART, or refuse the
//! whole message with one.

use serde_json::json;
use svoct_formats::PaddedNumber;
use svoct_formats::b2::{self, B2Input};
use svoct_mail::profile::{ParsedMessage, PlainFileFacts};

use super::lots::lot_line;
use super::out::{Echo, Out};
use super::relay::Opening;
use super::{Env, Halt, Pipeline, PipelineError, Refusal, RefusalCode, Work, content_hash, same_number};
use crate::config::Sender;
use crate::receipt::{LotFate, Receipt};
use crate::state::{CompostageClaim, Processed};

/// An invoice message of a registered sender on its way through the steps: what they read and
/// fill.
pub(super) struct Run<'r, 'c> {
    pub(super) sender: &'r Sender,
    /// What the ART will say; the steps fill the lots' fates.
    pub(super) receipt: Receipt,
    pub(super) result: &'r mut Processed,
    pub(super) out: &'r mut Out<'c>,
    /// The time the files the OCT builds are dated with.
    pub(super) now: time::OffsetDateTime,
}

/// The file of an accepted message, as the compostage check saw it.
struct FileUse {
    /// [`content_hash`] of the decrypted file.
    hash: String,
    /// The same file was already received under this compostage (a replayed message).
    duplicate: bool,
}

impl Pipeline<'_> {
    /// Processes an invoice message: accepted (with an ART), or refused (quarantined, with an ART
    /// saying why; no ART when the sender is unknown, the address is not trusted).
    pub(super) fn invoice(&self, work: Work<'_, '_>, env: &mut dyn Env) -> Result<(), Halt> {
        // Unknown sender: no ART (the address is not trusted), quarantined for the operator.
        let sender = work.registered_sender("the From address ")?;
        // Suspended: refused like any refused invoice, with an ART saying why.
        let suspended = work.suspension();
        let Work {
            parsed, result, out, ..
        } = work;
        let echo = Echo {
            compostage: parsed.subject.fields().compostage.unwrap_or_default(),
            file_name: parsed.headers.file_name.clone().unwrap_or_default(),
            subject: parsed.subject.to_string(),
            profile: parsed.profile_name(),
        };
        let mut run = Run {
            sender,
            receipt: self.receipt(sender, echo, env),
            result,
            out,
            now: env.now(),
        };
        let accepted = match suspended {
            Ok(()) => self.accept_invoice(&mut run, parsed, env),
            Err(r) => Err(r.into()),
        };
        match accepted {
            Ok((file, forwarded)) => Ok(self.accepted(run, &file, forwarded, env)?),
            Err(Halt::Refused(r)) => {
                self.refused(run, &r, env)?;
                Err(r.into())
            }
            Err(failed) => Err(failed),
        }
    }

    /// The steps, in order; the first refusal stops them.
    fn accept_invoice(
        &self,
        run: &mut Run<'_, '_>,
        parsed: &ParsedMessage,
        env: &mut dyn Env,
    ) -> Result<(FileUse, Vec<serde_json::Value>), Halt> {
        // R8.1: decrypt (and decompress) with the OCT's key.
        let opened = self.open(parsed, Opening::Invoice)?;
        let input = read_b2(&opened.bytes)?;
        describe(&mut run.receipt, &input);
        check_subject(parsed, &input)?;
        authorise(run.sender, &input)?;
        self.annex_rules(&input)?;
        let file = check_compostage(run.sender, &run.receipt.compostage, &opened.bytes, env)?;
        if file.duplicate {
            run.receipt.reason = Some(
                "doublon : ce message (meme compostage, meme fichier) a deja ete recu ; \
                 rien n'est transmis une seconde fois"
                    .into(),
            );
        }
        let lot_problems = super::lots::triage(&input)?;
        let plan = self.plan_lots(&input, &lot_problems, run, env)?;
        let forwarded = self.forward(&plan, run, env)?;
        self.amc_flow(&plan, run, env)?;
        Ok((file, forwarded))
    }

    /// R3.2: a single file names its OCT; R3.4: DRE and contract 99 exclude each other.
    fn annex_rules(&self, input: &B2Input<'_>) -> Result<(), Refusal> {
        if let Some(reason) = crate::fidelity::other_oct(input, &self.config.oct.identifier) {
            return Err(Refusal::new(RefusalCode::OtherOct, reason));
        }
        if let Some(reason) = crate::fidelity::exclusivity_in_file(input) {
            return Err(Refusal::new(RefusalCode::Exclusivity, reason));
        }
        Ok(())
    }

    /// Everything went through: the ART says so, the compostage is claimed.
    fn accepted(
        &self,
        mut run: Run<'_, '_>,
        file: &FileUse,
        forwarded: Vec<serde_json::Value>,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        run.receipt.accepted = true;
        self.push_art(run.out, run.sender, &run.receipt, env)?;
        if !run.receipt.compostage.is_empty() {
            run.result.claims.compostage = Some(CompostageClaim {
                sender_number: PaddedNumber::new(&run.sender.sender_number).to_string(),
                compostage: run.receipt.compostage.clone(),
                file_hash: file.hash.clone(),
                first_use: !file.duplicate,
            });
        }
        let already = run
            .receipt
            .lots
            .iter()
            .filter(|l| matches!(l.fate, LotFate::AlreadyForwarded { .. }))
            .count();
        run.result.summary = json!({
            "forwarded": forwarded, "already_forwarded_lots": already,
            "duplicate_message": file.duplicate, "receipt": run.receipt,
        });
        Ok(())
    }

    /// The whole message is refused: no lot is forwarded, the ART says why.
    fn refused(&self, mut run: Run<'_, '_>, r: &Refusal, env: &mut dyn Env) -> Result<(), PipelineError> {
        run.receipt.reason = Some(r.reason.clone());
        for l in &mut run.receipt.lots {
            if !matches!(l.fate, LotFate::Refused { .. }) {
                l.fate = LotFate::NotForwarded {
                    reason: r.reason.clone(),
                };
            }
        }
        self.push_art(run.out, run.sender, &run.receipt, env)?;
        run.result.summary = json!({ "refused": r.code, "reason": r.reason, "receipt": run.receipt });
        Ok(())
    }
}

fn read_b2(bytes: &[u8]) -> Result<B2Input<'_>, Refusal> {
    b2::parse(bytes).map_err(|e| {
        Refusal::new(
            RefusalCode::CorruptFile,
            format!("le fichier B2 est inexploitable : {e}"),
        )
    })
}

/// What the receipt says of the file before any decision: its sender, its invoices, its lots.
fn describe(receipt: &mut Receipt, input: &B2Input<'_>) {
    receipt.sender_number = input.sender_number().to_owned();
    receipt.invoices = input.invoice_count();
    receipt.lots = input.lots().iter().map(lot_line).collect();
}

/// Profile check: the subject against the file (R5.3).
fn check_subject(parsed: &ParsedMessage, input: &B2Input<'_>) -> Result<(), Refusal> {
    let facts = PlainFileFacts {
        invoice_count: u32::try_from(input.invoice_count()).unwrap_or(u32::MAX),
        sender_number: input.sender_number().to_owned(),
    };
    parsed.check_file(&facts).map_err(|e| {
        Refusal::new(
            RefusalCode::ProfileMismatch,
            format!("l'objet du message ne correspond pas au fichier : {e}"),
        )
    })
}

/// Authorisation: this address may send files of this sender number only, and lots of this PS
/// only.
fn authorise(sender: &Sender, input: &B2Input<'_>) -> Result<(), Refusal> {
    let file_sender = input.sender_number();
    if !same_number(file_sender, &sender.sender_number) {
        return Err(Refusal::new(
            RefusalCode::NotAuthorised,
            format!(
                "{} est enregistre pour le numero d'emetteur {}, pas {}",
                sender.address, sender.sender_number, file_sender
            ),
        ));
    }
    match input
        .lots()
        .iter()
        .find(|l| !same_number(l.sender(), &sender.ps_number))
    {
        Some(lot) => Err(Refusal::new(
            RefusalCode::NotAuthorised,
            format!(
                "le lot a l'octet {} est celui du PS {}, pas du PS enregistre {}",
                lot.offset(),
                lot.sender(),
                sender.ps_number
            ),
        )),
        None => Ok(()),
    }
}

/// One compostage, one file (R5.3): the same file again is a duplicate (its lots already
/// forwarded are reported, not forwarded again); another file under a compostage already used
/// is refused, so the PS sends it again with a new one (two workstations of one practice can
/// draw the same).
fn check_compostage(
    sender: &Sender,
    compostage: &str,
    file: &[u8],
    env: &mut dyn Env,
) -> Result<FileUse, Halt> {
    let hash = content_hash(file);
    let sender_key = PaddedNumber::new(&sender.sender_number).to_string();
    let duplicate = match compostage {
        "" => false,
        c => match env.compostage_file(&sender_key, c)? {
            Some(h) if h != hash => {
                return Err(Refusal::new(
                    RefusalCode::CompostageReused,
                    format!(
                        "le compostage {c} a deja ete utilise pour un autre fichier de ce PS : \
                         renvoyez ce fichier avec un nouveau compostage"
                    ),
                )
                .into());
            }
            Some(_) => true,
            None => false,
        },
    };
    Ok(FileUse { hash, duplicate })
}
