//! Retrieval (R4, R6, R7.3): POP3 with UIDL, or a Maildir directory; every message stored
//! durably in the inbox before it is deleted on the server, then recognised, opened and handed to
//! [`crate::reconcile::handle`]. What cannot be read is quarantined with a reason, never dropped.
//!
//! Only returns for this PS are retrieved ([`select`]): the headers are looked at first (POP3
//! `TOP n 0`, the Maildir file's head) and any other message is left on the server as it was
//! (not retrieved, not deleted, not marked read), since practices often share one mailbox.
//!
//! A crash at any point loses nothing: a message is deleted on the server only once stored
//! (`svoct_mail::pop3::retrieve`), a stored UIDL is never stored twice, and a stored message that
//! was not yet classified is classified on the next run.

use std::path::Path;

use svoct_mail::cms::PrivateKeyAndCert;
use svoct_mail::maildir::Maildir;
use svoct_mail::pop3::{
    Limits, Mailbox, MessageSink, Pop3Config, Pop3Security, Pop3Session, RetrievePolicy, retrieve_selected,
};
use svoct_mail::profile::{ParseLimits, Profile, parse_message_owned};
use svoct_mail::secret::Secret;
use svoct_store::{Direction, InboxId, InboxMessage, InboxState, NewEntry, Status, StoreError};

use crate::config::Tls;
use crate::error::PsError;
use crate::reconcile::{self, ClassifiedMessage, Disposition, ReturnKind};
use crate::send::Ps;

pub mod select;

/// What a fetch did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchReport {
    /// The mailbox, as named in the inbox (`pop3:user@host:port`, `maildir:/path`).
    pub source: String,
    /// Newly stored messages.
    pub stored: usize,
    /// Stored by an earlier, interrupted run; deleted on the server this time.
    pub already_had: usize,
    /// Left on the server because larger than `network.mailbox.max_message_bytes`.
    pub too_large: Vec<(String, u64)>,
    /// Messages left on the server untouched because they are not returns for this PS
    /// (counted only: their subjects are other people's mail).
    pub left: usize,
    /// Messages recognised and handed to the returns processing.
    pub classified: Vec<Handled>,
    /// Messages set aside, with the reason.
    pub quarantined: Vec<Handled>,
}

/// One message handled by [`Ps::process_inbox`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Handled {
    pub inbox_id: InboxId,
    pub subject: String,
    /// `ART`, `ARL`, `RSP`, `DLOI`, or the quarantine reason.
    pub what: String,
}

struct InboxSink<'a> {
    ps: &'a Ps,
    source: &'a str,
}

impl MessageSink for InboxSink<'_> {
    type Error = StoreError;
    fn has(&mut self, uidl: &str) -> Result<bool, StoreError> {
        self.ps.store().inbox().contains(self.source, uidl)
    }
    fn store(&mut self, uidl: &str, raw: &[u8]) -> Result<(), StoreError> {
        self.ps
            .store()
            .inbox()
            .store_if_new(self.source, uidl, raw)
            .map(|_| ())
    }
}

/// A crude, bounded look at one header of a message that does not parse, for the journal.
fn raw_header(raw: &[u8], name: &str) -> Option<String> {
    let head = raw.get(..raw.len().min(64 * 1024))?;
    let text = String::from_utf8_lossy(head);
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    text.get(..end)?.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

impl Ps {
    /// Retrieves from the configured mailbox (`[network.mailbox]`: POP3, or `maildir`), then
    /// processes what was stored.
    pub fn fetch(&self) -> Result<FetchReport, PsError> {
        let settings = self.config().network.mailbox.clone().ok_or_else(|| {
            PsError::Other("no [network.mailbox] in the configuration: nowhere to fetch from".into())
        })?;
        let max = settings.max_message_bytes;
        if let Some(dir) = &settings.maildir {
            let source = format!("maildir:{}", dir.display());
            let mut md = Maildir::open(dir, max).map_err(|e| PsError::Mailbox {
                source_name: source.clone(),
                message: e.to_string(),
            })?;
            return self.fetch_from(&mut md, &source, max);
        }
        let host = settings.host.clone().unwrap_or_else(|| "127.0.0.1".into());
        let port = settings.port.unwrap_or(match settings.tls {
            Tls::Implicit => 995,
            _ => 110,
        });
        let user = settings
            .username
            .clone()
            .ok_or_else(|| PsError::Other("network.mailbox.username is required for POP3".into()))?;
        let password = settings
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .ok_or_else(|| PsError::Other("network.mailbox.password is required for POP3".into()))?;
        let source = format!("pop3:{user}@{host}:{port}");
        let mut cfg = Pop3Config::plain(host, port, user, Secret::new(password));
        cfg.security = match settings.tls {
            Tls::None => Pop3Security::None,
            Tls::Starttls => Pop3Security::StartTls,
            Tls::Implicit => Pop3Security::Implicit,
        };
        cfg.allow_plaintext_auth = settings.allow_plaintext_auth;
        cfg.timeout = std::time::Duration::from_secs(settings.timeout_secs.max(1));
        cfg.limits = Limits {
            max_message: max,
            ..Limits::default()
        };
        let mut session = Pop3Session::connect(&cfg).map_err(|e| PsError::Mailbox {
            source_name: source.clone(),
            message: e.to_string(),
        })?;
        self.fetch_from(&mut session, &source, max)
    }

    /// Retrieves every return for this PS from `mailbox` into the inbox (stored, then deleted
    /// there; other messages are left as they were), then processes the inbox. On a mailbox error, what was stored stays stored and is processed.
    pub fn fetch_from<M: Mailbox>(
        &self,
        mailbox: &mut M,
        source: &str,
        max_message_bytes: u64,
    ) -> Result<FetchReport, PsError> {
        let mut sink = InboxSink { ps: self, source };
        let policy = RetrievePolicy {
            max_size: max_message_bytes,
            delete: true,
        };
        let filter = select::ReturnFilter::for_config(self.config());
        let retrieved = retrieve_selected(mailbox, &mut sink, policy, &mut |head| {
            filter.verdict(head).take()
        });
        // Process whatever is stored, even if the session failed half-way.
        let (classified, quarantined) = self.process_inbox()?;
        let r = retrieved.map_err(|e| PsError::Mailbox {
            source_name: source.to_owned(),
            message: e.to_string(),
        })?;
        let inbox = self.store().inbox();
        for uidl in r.stored.iter().chain(&r.already_had) {
            inbox.mark_deleted_on_server(source, uidl)?;
        }
        tracing::info!(
            source,
            stored = r.stored.len(),
            already_had = r.already_had.len(),
            too_large = r.too_large.len(),
            left = r.left.len(),
            classified = classified.len(),
            quarantined = quarantined.len(),
            "mailbox retrieved"
        );
        Ok(FetchReport {
            source: source.to_owned(),
            stored: r.stored.len(),
            already_had: r.already_had.len(),
            too_large: r.too_large,
            left: r.left.len(),
            classified,
            quarantined,
        })
    }

    fn decryption_key(&self) -> Result<Option<PrivateKeyAndCert>, PsError> {
        match &self.config().decryption {
            None => Ok(None),
            Some(d) => PrivateKeyAndCert::from_files(&d.key, &d.certificate)
                .map(Some)
                .map_err(|source| PsError::Crypto {
                    what: "PS decryption key",
                    path: d.key.clone(),
                    source,
                }),
        }
    }

    /// Recognises, opens and hands to [`reconcile::handle`] every stored message not yet
    /// classified. Returns (classified, quarantined).
    pub fn process_inbox(&self) -> Result<(Vec<Handled>, Vec<Handled>), PsError> {
        let inbox = self.store().inbox();
        // Listed without their bytes, then read one at a time: a mailbox of large returns
        // holds one of them in memory, not all.
        let pending: Vec<InboxId> = inbox
            .list_state(InboxState::New)?
            .into_iter()
            .filter(|m| m.classification.is_none())
            .map(|m| m.id)
            .collect();
        if pending.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        // The key is loaded only when there is something to open; a bad key file is an error
        // for the whole run (nothing is quarantined because of our own configuration).
        let key = self.decryption_key()?;
        let mailbox = self.config().network.mailbox.as_ref();
        let limits = ParseLimits {
            max_message_bytes: usize::try_from(mailbox.map_or(64 * 1024 * 1024, |m| m.max_message_bytes))
                .unwrap_or(usize::MAX),
            max_decompressed: mailbox.map_or(ParseLimits::default().max_decompressed, |m| {
                m.max_decompressed_bytes
            }),
        };
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for id in pending {
            let Some(m) = inbox.get(id)? else { continue };
            // What the journal needs of a message that does not open: `raw_header` reads no
            // further than its first 64 KiB. The rest of the raw message goes with `classify`.
            let head = m
                .raw
                .get(..m.raw.len().min(64 * 1024))
                .unwrap_or_default()
                .to_vec();
            match self.classify(m, key.as_ref(), &limits) {
                Ok(mut c) => {
                    let subject = c.subject.to_string();
                    match reconcile::handle(self.store(), self.config(), &mut c) {
                        Ok(d) => {
                            inbox.classify(id, c.kind.name())?;
                            if d == Disposition::Processed {
                                inbox.mark_processed(id)?;
                            }
                            self.journal_in(&c.profile, &subject, &c, Status::Received, None)?;
                            tracing::info!(
                                inbox = id.0, subject = %subject, kind = c.kind.name(),
                                "return received and processed"
                            );
                            ok.push(Handled {
                                inbox_id: id,
                                subject,
                                what: c.kind.name().to_owned(),
                            });
                        }
                        Err(reason) => {
                            let reason = format!("returns processing: {reason}");
                            inbox.quarantine(id, &reason)?;
                            tracing::warn!(inbox = id.0, subject = %subject, reason = %reason, "quarantined");
                            self.journal_in(&c.profile, &subject, &c, Status::Quarantined, Some(&reason))?;
                            bad.push(Handled {
                                inbox_id: id,
                                subject,
                                what: reason,
                            });
                        }
                    }
                }
                Err(reason) => {
                    inbox.quarantine(id, &reason)?;
                    tracing::warn!(inbox = id.0, reason = %reason, "quarantined");
                    let subject = raw_header(&head, "Subject").unwrap_or_default();
                    self.store()
                        .journal()
                        .insert(&NewEntry {
                            direction: Direction::In,
                            profile: raw_header(&head, "Content-Description")
                                .unwrap_or_else(|| "unknown".into()),
                            subject: subject.clone(),
                            compostage: None,
                            message_id: raw_header(&head, "Message-ID"),
                            file_name: None,
                            lots: Vec::new(),
                            invoices: Vec::new(),
                            status: Status::Quarantined,
                        })
                        .and_then(|e| {
                            self.store()
                                .journal()
                                .set_outcome(e, Status::Quarantined, Some(&reason))
                        })?;
                    bad.push(Handled {
                        inbox_id: id,
                        subject,
                        what: reason,
                    });
                }
            }
        }
        Ok((ok, bad))
    }

    fn journal_in(
        &self,
        profile: &str,
        subject: &str,
        c: &ClassifiedMessage,
        status: Status,
        reason: Option<&str>,
    ) -> Result<(), PsError> {
        let j = self.store().journal();
        let id = j.insert(&NewEntry {
            direction: Direction::In,
            profile: profile.to_owned(),
            subject: subject.to_owned(),
            compostage: None,
            message_id: c.message_id.clone(),
            file_name: c.file_name.clone(),
            lots: Vec::new(),
            invoices: Vec::new(),
            status,
        })?;
        if let Some(r) = reason {
            j.set_outcome(id, status, Some(r))?;
        }
        Ok(())
    }

    /// Recognises and opens one stored message; `Err` is the quarantine reason. The raw message
    /// is dropped once parsed, and a plain attachment becomes the file without a copy: at most
    /// the raw message and its decoded attachment exist at once, then the file alone.
    fn classify(
        &self,
        m: InboxMessage,
        key: Option<&PrivateKeyAndCert>,
        limits: &ParseLimits,
    ) -> Result<ClassifiedMessage, String> {
        // The message's buffer becomes the attachment (decoded in place): one buffer of the
        // message's size, not the message and its file side by side.
        let parsed =
            parse_message_owned(m.raw, limits).map_err(|e| format!("not a known message profile: {e}"))?;
        self.check_sender(parsed.headers.from.as_deref())?;
        let kind = match parsed.description.profile {
            Profile::Art(_) => ReturnKind::Art,
            Profile::Arl => ReturnKind::Arl,
            Profile::Rsp => ReturnKind::Rsp,
            Profile::DloiIncrement => ReturnKind::Dloi,
            Profile::Invoice(_) | Profile::DloiRequest => {
                return Err(format!(
                    "profile {} is sent by a PS, not to one",
                    parsed.profile_name()
                ));
            }
        };
        let encrypted = parsed.profile_name().ends_with("/K") || parsed.profile_name().ends_with("/ZK");
        if encrypted && key.is_none() {
            return Err(format!(
                "{} is encrypted and no [decryption] key is configured",
                parsed.profile_name()
            ));
        }
        let subject = parsed.subject.clone();
        let profile = parsed.profile_name();
        let message_id = parsed.headers.message_id.clone();
        let file_name = parsed.headers.file_name.clone();
        let opened = parsed
            .into_opened(key, limits)
            .map_err(|e| format!("cannot open the attachment: {e}"))?;
        Ok(ClassifiedMessage {
            inbox_id: m.id,
            kind,
            subject,
            profile,
            message_id,
            file_name,
            file: opened.bytes,
        })
    }

    /// Returns are applied only from whom they may come ([`crate::config::Config::return_senders`]):
    /// a forged positive ARL or "paid" RSP from anyone else would hide a real rejection. `Err` is
    /// the reason the message is set aside with.
    fn check_sender(&self, from: Option<&str>) -> Result<(), String> {
        let allowed = self.config().return_senders();
        let address = from.map(address_of).unwrap_or_default();
        if !address.is_empty() && allowed.contains(&address) {
            return Ok(());
        }
        let shown = if address.is_empty() {
            "no sender address".to_owned()
        } else {
            format!("sender {address}")
        };
        Err(format!(
            "{shown} is not one this PS takes returns from ({}); add it to [returns] senders if it \
             is genuine",
            if allowed.is_empty() {
                "none configured".to_owned()
            } else {
                allowed.join(", ")
            }
        ))
    }

    /// Received messages in a state (`new` = kept, not yet processed), oldest first.
    pub fn inbox(&self, state: InboxState) -> Result<Vec<InboxMessage>, PsError> {
        Ok(self.store().inbox().with_state(state)?)
    }
}

/// The address of a `From` header, lower case: the part between `<` and `>` when there is one
/// (`"Name" <a@b>`), the whole value otherwise.
fn address_of(from: &str) -> String {
    let inner = match (from.rfind('<'), from.rfind('>')) {
        (Some(open), Some(close)) if open < close => from.get(open + 1..close).unwrap_or(""),
        _ => from,
    };
    inner.trim().to_ascii_lowercase()
}

/// For tests and embedders: a Maildir as the mailbox, by path.
pub fn maildir_source(path: &Path) -> String {
    format!("maildir:{}", path.display())
}
