//! What the pipeline sends: outgoing messages with deterministic Message-IDs, the ART, the
//! subjects and `000` / `999` of the files the OCT writes.

use svoct_formats::art::{Art, ArtLot, FileStatus, LotStatus};
use svoct_formats::b2::{self, FileHeaderParams, LotKind};
use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::profile::{self, Mailbox, MessageHeaders, Profile, Protect};
use svoct_mail::subject::{
    FileKind, InvoiceSubject, MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, SpecVersion, Subject,
};
use time::OffsetDateTime;

use super::{
    Env, OCT_FILE_APPLICATION, OCT_FILE_NORME, Pipeline, PipelineError, message_id, primitive, yymmdd,
};
use crate::config::{Config, Sender};
use crate::receipt::Receipt;
use crate::state::{ForwardOrigin, OutKind, Outgoing};

/// One message the OCT sends: its subject, profile and attachment.
pub(super) struct Letter<'f> {
    pub(super) subject: Subject,
    pub(super) profile: Profile,
    pub(super) file_name: String,
    pub(super) file: &'f [u8],
    /// Encrypt for this certificate (when the profile allows it).
    pub(super) cert: Option<&'f RecipientCert>,
    pub(super) date: OffsetDateTime,
}

/// Accumulates outgoing messages with their deterministic Message-IDs.
pub(super) struct Out<'c> {
    pub(super) config: &'c Config,
    pub(super) digest: String,
    pub(super) spool_id: String,
    pub(super) list: Vec<Outgoing>,
}

impl Out<'_> {
    fn next_id(&self, kind: OutKind) -> String {
        message_id(
            &self.digest,
            &self.spool_id,
            self.list.len(),
            kind,
            self.config.domain(),
        )
    }

    pub(super) fn push(
        &mut self,
        kind: OutKind,
        to: &str,
        letter: Letter<'_>,
    ) -> Result<String, PipelineError> {
        let id = self.next_id(kind);
        self.push_as(id, kind, to, letter)
    }

    /// Like [`Out::push`], under the Message-ID `id`.
    pub(super) fn push_as(
        &mut self,
        id: String,
        kind: OutKind,
        to: &str,
        letter: Letter<'_>,
    ) -> Result<String, PipelineError> {
        let Letter {
            subject,
            profile,
            file_name,
            file,
            cert,
            date,
        } = letter;
        let build = |e: profile::ProfileError| PipelineError::Build(e.to_string());
        let envelope = MessageHeaders {
            from: Mailbox::new(&self.config.oct.address).map_err(build)?,
            to: Mailbox::new(to).map_err(build)?,
            subject,
            profile,
            file_name,
            date,
            message_id: Some(id.clone()),
        };
        let certs: Vec<RecipientCert>;
        let protect = match cert {
            Some(c) if profile.allows_protection() => {
                certs = vec![c.clone()];
                Protect::Encrypt {
                    recipients: &certs,
                    cipher: CmsCipher::default(),
                    compress: false,
                }
            }
            _ => Protect::None,
        };
        let raw = profile::build_message(&envelope, file, protect).map_err(build)?;
        self.list.push(Outgoing {
            message_id: id.clone(),
            kind,
            mail_from: self.config.oct.address.clone(),
            rcpt: to.to_owned(),
            raw,
        });
        Ok(id)
    }
}

/// What a received message said about itself, echoed in its ART (R5.6: the PS finds its
/// message by it).
pub(super) struct Echo {
    pub(super) compostage: String,
    pub(super) file_name: String,
    pub(super) subject: String,
    pub(super) profile: String,
}

/// Who a file the OCT writes is addressed to (`000` / `999` recipient fields).
pub(super) struct Addressee<'r> {
    pub(super) recipient_type: &'r str,
    /// Digits only (an AMC organisation number, a route's recipient).
    pub(super) recipient_number: String,
}

impl Pipeline<'_> {
    /// The receipt of a message from `sender`, nothing read from its file yet.
    pub(super) fn receipt(&self, sender: &Sender, echo: Echo, env: &dyn Env) -> Receipt {
        Receipt {
            oct_id: self.config.oct.identifier.clone(),
            ps_number: sender.ps_number.clone(),
            received: Some(env.now()),
            compostage: echo.compostage,
            file_name: echo.file_name,
            subject: echo.subject,
            profile: echo.profile,
            sender_number: String::new(),
            invoices: 0,
            accepted: false,
            reason: None,
            lots: Vec::new(),
            amc: Vec::new(),
        }
    }

    pub(super) fn push_art(
        &self,
        out: &mut Out<'_>,
        sender: &Sender,
        receipt: &Receipt,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let now = env.now();
        let subject = Subject::Return(return_subject(ReturnKind::Art, sender, now)?);
        let category = profile::PsCategory::from_code(&sender.category).unwrap_or(profile::PsCategory::Xx);
        let file_name = format!("ART{}.txt", out.spool_id);
        let art = receipt.render();
        let letter = Letter {
            subject,
            profile: Profile::Art(category),
            file_name,
            file: &art,
            cert: None,
            date: now,
        };
        out.push(OutKind::Art, sender.return_mailbox(), letter)?;
        Ok(())
    }

    pub(super) fn invoice_subject(
        &self,
        kind: LotKind,
        invoices: usize,
        env: &mut dyn Env,
    ) -> Result<Subject, PipelineError> {
        let build = |e: String| PipelineError::Build(e);
        let version = SpecVersion::new(&self.config.oct.spec_version).map_err(|e| build(e.to_string()))?;
        let exercice = PartyNumber::new(&self.config.oct.sender_number).map_err(|e| build(e.to_string()))?;
        let count = u32::try_from(invoices).unwrap_or(u32::MAX);
        let s = InvoiceSubject::new(file_kind(kind), version, exercice, env.compostage()?, count)
            .map_err(|e| build(e.to_string()))?;
        Ok(Subject::Invoice(s))
    }

    /// Frames lots into a file with the OCT as sender (`OT` + the OCT's sender number).
    pub(super) fn build_oct_file(
        &self,
        lots: &[&[u8]],
        to: &Addressee<'_>,
        file_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, PipelineError> {
        let params = FileHeaderParams {
            sender_type: self.config.oct.sender_type.clone(),
            recipient_type: to.recipient_type.to_owned(),
            recipient_number: to.recipient_number.clone(),
            application: OCT_FILE_APPLICATION.into(),
            file_id: file_id.to_owned(),
            date: yymmdd(now),
            norme: OCT_FILE_NORME.into(),
            message: String::new(),
        };
        b2::build_file_as(lots, &params, &self.config.oct.sender_number)
            .map_err(|e| PipelineError::Build(e.to_string()))
    }
}

/// The subject `KIND/<PS number>/<now>` of a return the OCT sends `sender` (ART, dLOI answer).
pub(super) fn return_subject(
    kind: ReturnKind,
    sender: &Sender,
    now: OffsetDateTime,
) -> Result<ReturnSubject, PipelineError> {
    let build = |e: String| PipelineError::Build(e);
    let ps_number = PartyNumber::new(&sender.ps_number).map_err(|e| build(e.to_string()))?;
    let timestamp = MinuteStamp::new(primitive(now))
        .ok_or_else(|| build("the clock is out of the 4-digit year range".into()))?;
    Ok(ReturnSubject {
        kind,
        ps_number,
        timestamp,
    })
}

pub(super) fn file_kind(kind: LotKind) -> FileKind {
    match kind {
        LotKind::Fse => FileKind::Fse,
        LotKind::Dre => FileKind::Dre,
    }
}

/// Digits of `s`, in order: the recipient number the OCT writes.
pub(super) fn digits_only(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Longest server answer (or operator's reason) quoted in a "forward failed" ART (a real
/// answer is one line).
const MAX_ANSWER: usize = 500;

/// Why a forwarded file will never reach its destination: what the ART of
/// [`forward_failure_art`] tells the PS. Each cause has its own wording, so that the PS (and
/// its support) never reads an operator's decision as the insurer's refusal.
#[derive(Clone, Copy, Debug)]
pub enum ForwardFailure<'a> {
    /// The destination's server refused it for good (a permanent `5xx`, or retries
    /// exhausted): its answer.
    Refused(&'a str),
    /// The OCT's operator abandoned it (`svoct oct queue delete`): the operator's reason.
    Abandoned(&'a str),
}

impl ForwardFailure<'_> {
    /// The detail of the file and of its lots: the destination, then the cause. `text` (the
    /// server's answer or the operator's reason) is scrubbed of the OCT's SMTP credentials,
    /// folded to one line and cut at [`MAX_ANSWER`] characters.
    fn reason(self, config: &Config, destination: &str) -> String {
        let (text, wording) = match self {
            ForwardFailure::Refused(answer) => (answer, "echouee, refus definitif du serveur"),
            ForwardFailure::Abandoned(reason) => (reason, "abandonnee par l'OCT"),
        };
        let smtp = config.delivery.smtp.as_ref();
        let secrets: Vec<&svoct_mail::secret::Secret> =
            smtp.and_then(|s| s.password.as_ref()).into_iter().collect();
        let text = svoct_mail::secret::scrub_reply(text, smtp.and_then(|s| s.username.as_deref()), &secrets);
        let text: String = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(MAX_ANSWER)
            .collect();
        format!("transmission a {} {wording} : {text}", destination.trim())
    }
}

/// The ART telling the PS that a file the OCT forwarded for it (its first ART said `TRANSMIS`)
/// will never reach the destination (`failure`: refused for good by the destination's server,
/// or abandoned by the operator): the lots it carried are `REFUSE` with the destination and the
/// cause, the file `REFUSE` so that the PS side marks its message as needing attention
/// (`docs/formats/art.md`, "Forward failed"). It echoes the PS's compostage, subject and file
/// name from the first receipt. The quoted text is scrubbed of the OCT's SMTP credentials once
/// more before it goes to the PS. Its Message-ID derives from the failed row's, so the outbox never
/// queues it twice. `sender` is the practice that sent the message (the caller looks it up in
/// the practices: it may have been added after the service started).
pub fn forward_failure_art(
    config: &Config,
    sender: &Sender,
    origin: &ForwardOrigin,
    to: &str,
    failure: ForwardFailure<'_>,
    now: OffsetDateTime,
) -> Result<Outgoing, PipelineError> {
    let receipt = origin.summary.get("receipt").unwrap_or(&serde_json::Value::Null);
    let text = |k: &str| receipt.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let reason = failure.reason(config, &format!("{} {to}", origin.destination));
    let art = Art {
        oct_id: config.oct.identifier.clone(),
        ps_number: sender.ps_number.clone(),
        received: crate::receipt::art_stamp(now),
        compostage: text("compostage"),
        file_name: text("file_name"),
        subject: text("subject"),
        profile: text("profile"),
        invoices: receipt
            .get("invoices")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        file_status: FileStatus::Refused,
        // Not "send them again": the OCT's processed index still holds these lots as forwarded,
        // so the same lots sent again would be answered DEJA_TRANSMIS; the operator's
        // `outbox requeue` (after fixing the route) is what forwards them.
        file_detail: format!(
            "{reason} ; {} lot(s) annonce(s) transmis ne l'ont pas ete : contactez votre OCT avant tout renvoi",
            origin.lots.len()
        ),
        lots: origin
            .lots
            .iter()
            .map(|(number, date)| failed_lot(receipt, number, date, &reason))
            .collect(),
        amc: Vec::new(),
    };
    let body = art.build().map_err(|e| PipelineError::Build(e.to_string()))?;
    let category = profile::PsCategory::from_code(&sender.category).unwrap_or(profile::PsCategory::Xx);
    let digest = super::content_hash(origin.message_id.as_bytes());
    let id = format!(
        "{}.{}-failed@{}",
        digest.get(..32).unwrap_or(&digest),
        OutKind::Art.as_str(),
        config.domain()
    );
    let mut out = Out {
        config,
        digest: String::new(),
        spool_id: origin.spool_id.clone(),
        list: Vec::new(),
    };
    let letter = Letter {
        subject: Subject::Return(return_subject(ReturnKind::Art, sender, now)?),
        profile: Profile::Art(category),
        file_name: format!("ART{}E.txt", origin.spool_id),
        file: body.as_bytes(),
        cert: None,
        date: now,
    };
    out.push_as(id, OutKind::Art, sender.return_mailbox(), letter)?;
    out.list
        .pop()
        .ok_or_else(|| PipelineError::Build("the ART was not built".into()))
}

/// The ART line of a lot the failed file carried: kind and invoices from the first receipt.
fn failed_lot(receipt: &serde_json::Value, number: &str, date: &str, reason: &str) -> ArtLot {
    let line = receipt.get("lots").and_then(|l| l.as_array()).and_then(|lots| {
        lots.iter().find(|l| {
            l.get("number").and_then(|v| v.as_str()) == Some(number)
                && l.get("date").and_then(|v| v.as_str()) == Some(date)
        })
    });
    let field = |k: &str| line.and_then(|l| l.get(k));
    ArtLot {
        number: number.to_owned(),
        date: crate::receipt::ymd6(date),
        kind: field("kind").and_then(|v| v.as_str()).unwrap_or("").to_owned(),
        invoices: field("invoices")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        status: LotStatus::Refused,
        detail: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[oct]
identifier = "OCT12345678901"
sender_number = "12345678901234"
address = "oct@oct.example"

[paths]
spool = "spool"
state = "state.sqlite"

[keys]
private_key = "oct.key"
certificate = "oct.crt"

[[sender]]
address = "ps1@ps.example"
mailbox = "retours@ps.example"
sender_number = "00000123456789"
ps_number = "123456789"
category = "ER"

[[route]]
organisation = "011"
mailbox = "cpam@am.example"
plaintext = true

[delivery.smtp]
host = "127.0.0.1"
port = 2526
username = "oct"
password = "hunter2"
allow_plaintext_auth = true
"#;

    fn origin() -> ForwardOrigin {
        ForwardOrigin {
            message_id: "abc.forward@oct.example".into(),
            spool_id: "42".into(),
            mail_from: "ps1@ps.example".into(),
            summary: serde_json::json!({ "receipt": {
                "compostage": "2026070111550000042", "file_name": "F00042.B2",
                "subject": "SV140700/123456789/2026070111550000042/00015", "profile": "FACTURE/SV/ER",
                "invoices": 15,
                "lots": [
                    { "number": "001", "date": "260630", "kind": "FSE", "invoices": 12,
                      "status": "forwarded", "to": "cpam@am.example", "destination": "CPAM 011" },
                    { "number": "002", "date": "260630", "kind": "DRE", "invoices": 3,
                      "status": "forwarded", "to": "other@am.example", "destination": "CPAM 099" }
                ]
            }}),
            lots: vec![("001".into(), "260630".into())],
            destination: "organisation 011".into(),
        }
    }

    #[test]
    fn the_forward_failed_art_names_the_lots_the_answer_and_the_compostage_in_paris_time() {
        let config = Config::parse(CONFIG).expect("config");
        // 10:05 UTC in July is 12:05 in Paris (summer time).
        let now = OffsetDateTime::from_unix_timestamp(1_782_900_300).expect("time");
        let answer = "550 5.1.1 <cpam@am.example>: unknown user (AUTH PLAIN was b2N0AGh1bnRlcjI= hunter2)";
        let art = || {
            let sender = &config.senders[0];
            forward_failure_art(
                &config,
                sender,
                &origin(),
                "cpam@am.example",
                ForwardFailure::Refused(answer),
                now,
            )
            .expect("ART")
        };
        let out = art();
        assert_eq!(out.kind, OutKind::Art);
        assert_eq!(out.rcpt, "retours@ps.example", "to the PS's return mailbox");
        let again = art();
        assert_eq!(
            out.message_id, again.message_id,
            "derived from the failed row: queued once"
        );
        let parsed = profile::parse_message(&out.raw, &profile::ParseLimits::default()).expect("parses");
        let text = String::from_utf8(parsed.attachment.clone()).expect("ASCII");
        assert!(
            !text.contains("hunter2") && !text.contains("b2N0AGh1bnRlcjI="),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ACCUSE DE RECEPTION TECHNIQUE");
        assert!(
            lines.contains(
                &"Message recu le 01/07/2026 a 12h05 : SV140700/123456789/2026070111550000042/00015"
            ),
            "{text}"
        );
        assert!(text.contains(
            "Message REFUSE : transmission a organisation 011 cpam@am.example echouee, refus definitif du serveur : 550 5.1.1 <cpam@am.example>: unknown user"
        ), "{text}");
        assert!(text.contains(
            "1 lot(s) annonce(s) transmis ne l'ont pas ete : contactez votre OCT avant tout renvoi"
        ));
        let art = Art::parse(&parsed.attachment).expect("machine block");
        assert_eq!(art.compostage, "2026070111550000042");
        assert_eq!(art.file_status, FileStatus::Refused);
        assert_eq!(art.lots.len(), 1, "only the lots of the failed file");
        assert_eq!(
            (art.lots[0].number.as_str(), art.lots[0].kind.as_str()),
            ("001", "FSE")
        );
        assert_eq!(
            (art.lots[0].invoices, art.lots[0].status),
            (12, LotStatus::Refused)
        );
    }

    #[test]
    fn an_operators_abandon_has_its_own_wording_not_the_servers_refusal() {
        let config = Config::parse(CONFIG).expect("config");
        let now = OffsetDateTime::from_unix_timestamp(1_782_900_300).expect("time");
        // A long reason on several lines: folded to one line and cut at 500 characters.
        let reason = format!("insurer closed;\nsee ticket {}", "x".repeat(600));
        let sender = &config.senders[0];
        let out = forward_failure_art(
            &config,
            sender,
            &origin(),
            "cpam@am.example",
            ForwardFailure::Abandoned(&reason),
            now,
        )
        .expect("ART");
        let parsed = profile::parse_message(&out.raw, &profile::ParseLimits::default()).expect("parses");
        let text = String::from_utf8(parsed.attachment.clone()).expect("ASCII");
        assert!(!text.contains("refus definitif"), "{text}");
        let art = Art::parse(&parsed.attachment).expect("machine block");
        assert_eq!(art.file_status, FileStatus::Refused);
        let quoted = format!("insurer closed; see ticket {}", "x".repeat(600));
        let quoted: String = quoted.chars().take(500).collect();
        let expected =
            format!("transmission a organisation 011 cpam@am.example abandonnee par l'OCT : {quoted}");
        assert!(
            art.file_detail.starts_with(&format!("{expected} ; 1 lot(s)")),
            "{}",
            art.file_detail
        );
        assert_eq!(art.lots.len(), 1);
        assert_eq!(art.lots[0].status, LotStatus::Refused);
        assert_eq!(art.lots[0].detail, expected);
    }
}
