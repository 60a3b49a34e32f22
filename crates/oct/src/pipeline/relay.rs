//! Returns from AM (ARL, RSP, dLOI increments) relayed to the PS the message names (R8.4), ARL
//! for the OCT's own lots (R4.2), and dLOI requests answered from the LOI source; and the
//! opening of an attachment with the OCT's key, which invoices share.

use serde_json::json;
use svoct_mail::profile::{OpenedAttachment, ParsedMessage, Profile};
use svoct_mail::subject::{ReturnKind, Subject};

use super::out::{Letter, return_subject};
use super::{Env, Halt, Pipeline, Refusal, RefusalCode, Work, same_number};
use crate::state::{MessageKind, OutKind, OwnArl, Processed};

/// What an attachment being opened is, for the wording of the refusal (the ART of an invoice
/// speaks French to the PS; the others are read by the operator).
#[derive(Clone, Copy, Debug)]
pub(super) enum Opening {
    Invoice,
    Return,
    Request,
}

impl Pipeline<'_> {
    /// Decrypts (and decompresses) the attachment with the OCT's key (R8.1).
    pub(super) fn open(&self, parsed: &ParsedMessage, what: Opening) -> Result<OpenedAttachment, Refusal> {
        parsed.open(Some(&self.keys.oct), &self.limits).map_err(|e| {
            let reason = match what {
                Opening::Invoice => {
                    format!("la piece jointe n'a pas pu etre ouverte avec la cle de cet OCT : {e}")
                }
                Opening::Return => format!("the return could not be opened: {e}"),
                Opening::Request => format!("the request could not be opened: {e}"),
            };
            Refusal::new(RefusalCode::Undecryptable, reason)
        })
    }

    /// Relays a return from an AM mailbox to the PS it names.
    pub(super) fn relay(&self, work: Work<'_, '_>, env: &mut dyn Env) -> Result<(), Halt> {
        let Work {
            parsed, result, out, ..
        } = work;
        let from = result.mail_from.clone();
        let from = from.as_str();
        if !self.is_am_mailbox(from) {
            return Err(Refusal::new(
                RefusalCode::UnknownSender,
                format!("{from} is not an AM mailbox of the routing table: returns are relayed from AM only"),
            )
            .into());
        }
        let Subject::Return(subject) = &parsed.subject else {
            return Err(
                Refusal::new(RefusalCode::ProfileMismatch, "a return without a return subject").into(),
            );
        };
        let opened = self.open(parsed, Opening::Return)?;
        let recipient = subject.ps_number.as_str();
        if parsed.description.profile == Profile::Arl
            && self.own_arl(result, from, recipient, &opened.bytes, env)?
        {
            return Ok(());
        }
        if let Some(header_ps) =
            crate::relay_formats::recipient_in_file(parsed.description.profile, &opened.bytes)
            && !same_number(&header_ps, recipient)
        {
            return Err(Refusal::new(
                RefusalCode::ProfileMismatch,
                format!("the subject names PS {recipient} but the file names {header_ps}"),
            )
            .into());
        }
        let Some(practice) = self.practices.by_ps_number(recipient) else {
            return Err(Refusal::new(
                RefusalCode::NoRoute,
                format!("no registered PS with number {recipient}"),
            )
            .into());
        };
        // Suspended or not: what AM pays or says about the practice's claims must reach it.
        let cert = Self::practice_cert(practice)?;
        let ps = &practice.sender;
        let name = parsed
            .headers
            .file_name
            .clone()
            .filter(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\')
            })
            .unwrap_or_else(|| format!("{}{}.dat", subject.kind.keyword(), out.spool_id));
        let letter = Letter {
            subject: parsed.subject.clone(),
            profile: parsed.description.profile,
            file_name: name,
            file: &opened.bytes,
            cert,
            date: env.now(),
        };
        let id = out.push(OutKind::Relay, ps.return_mailbox(), letter)?;
        result.summary =
            json!({ "relayed": parsed.profile_name(), "to": ps.return_mailbox(), "message_id": id });
        Ok(())
    }

    /// Whether `address` is the mailbox of an AMO route or of an AMC.
    fn is_am_mailbox(&self, address: &str) -> bool {
        self.config
            .routes
            .iter()
            .map(|r| r.mailbox.as_str())
            .chain(self.config.amc.iter().map(|a| a.mailbox.as_str()))
            .any(|m| m.eq_ignore_ascii_case(address))
    }

    /// R4.2: an ARL for a lot the OCT built (matched by lot number, date and the OCT file that
    /// carried it) is handled here, never relayed (`Ok(true)`). An ARL addressed to the OCT, or
    /// from an AMC that is not also an AMO route (the OCT sends AMCs only its own lots), for a
    /// lot the OCT did not build is set aside. `Ok(false)`: an ARL for the PS, to relay.
    fn own_arl(
        &self,
        result: &mut Processed,
        from: &str,
        recipient: &str,
        bytes: &[u8],
        env: &mut dyn Env,
    ) -> Result<bool, Halt> {
        let from_amc = self
            .config
            .amc
            .iter()
            .any(|a| a.mailbox.eq_ignore_ascii_case(from));
        let from_amo = self
            .config
            .routes
            .iter()
            .any(|r| r.mailbox.eq_ignore_ascii_case(from));
        let addressed_to_oct = same_number(recipient, &self.config.oct.sender_number);
        let facts = crate::relay_formats::arl_facts(bytes);
        if let Some(f) = &facts
            && env.is_own_lot(&f.lot_number, &f.lot_date, &f.file_id)?
        {
            result.kind = MessageKind::OwnArl;
            result.own_arls.push(OwnArl {
                lot_number: f.lot_number.clone(),
                lot_date: f.lot_date.clone(),
                file_id: f.file_id.clone(),
                status: f.status.clone(),
                detail: f.detail.clone(),
            });
            result.summary = json!({ "own_arl": facts });
            return Ok(true);
        }
        if addressed_to_oct || (from_amc && !from_amo) {
            result.kind = MessageKind::OwnArl;
            return Err(Refusal::new(
                RefusalCode::UnknownLot,
                "an ARL for the OCT's own flows names a lot the OCT did not build",
            )
            .into());
        }
        Ok(false)
    }

    /// Answers a dLOI request of a registered sender with the increments it lacks.
    pub(super) fn loi_request(&self, work: Work<'_, '_>, env: &mut dyn Env) -> Result<(), Halt> {
        let sender = work.registered_sender("")?;
        work.suspension()?;
        let cert = work.sender.map_or(Ok(None), Self::practice_cert)?;
        let Work {
            parsed, result, out, ..
        } = work;
        if let Subject::DloiRequest(s) = &parsed.subject
            && !same_number(s.exercice.as_str(), &sender.sender_number)
        {
            return Err(Refusal::new(
                RefusalCode::NotAuthorised,
                format!(
                    "{} is registered for sender number {}, not {}",
                    sender.address, sender.sender_number, s.exercice
                ),
            )
            .into());
        }
        let opened = self.open(parsed, Opening::Request)?;
        let Some(source) = &self.config.loi.source else {
            return Err(
                Refusal::new(RefusalCode::NoLoiSource, "this OCT has no LOI source configured").into(),
            );
        };
        let answer = crate::relay_formats::loi_answer(&opened.bytes, || env.loi_files(source))
            .map_err(|reason| Refusal::new(RefusalCode::InvalidLoiRequest, reason))?;
        let now = env.now();
        let subject = return_subject(ReturnKind::LoiIncrement, sender, now)?;
        let mut id = Vec::new();
        for (k, inc) in answer.increments.iter().enumerate() {
            let letter = Letter {
                subject: Subject::Return(subject.clone()),
                profile: Profile::DloiIncrement,
                file_name: format!("LOI{}-{k}.dat", out.spool_id),
                file: inc,
                cert,
                date: now,
            };
            id.push(out.push(OutKind::Loi, sender.return_mailbox(), letter)?);
        }
        result.summary = json!({ "loi": answer.summary, "to": sender.return_mailbox(), "message_ids": id });
        Ok(())
    }
}
