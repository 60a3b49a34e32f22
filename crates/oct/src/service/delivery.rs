//! Outbox delivery: where an outgoing message goes (hosted Maildirs, an `.eml` directory, the
//! SMTP relay) and what its attempt means for its outbox row.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use svoct_mail::transport::{
    DirTransport, Security, SmtpConfig, SmtpCredentials, SmtpEnvelope, SmtpTransport, Transport,
};

use super::{ServiceError, ServiceStats};
use crate::config::{Config, SmtpTls};
use crate::state::{DeliveryOutcome, Due, now_secs};

/// Where outgoing messages go.
pub struct Delivery {
    config: Arc<Config>,
    smtp: Option<SmtpTransport>,
    directory: Option<DirTransport>,
    /// Local Maildirs opened (and their folders created) once, by directory.
    maildirs:
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, Arc<svoct_mail::maildir::Maildir>>>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery").finish_non_exhaustive()
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Ok(String),
    Transient(String),
    Permanent(String),
    /// The relay refused the OCT's own credentials (`535`): the operator must fix
    /// `[delivery.smtp]`; the message is retried with backoff and never failed for it.
    AuthRejected(String),
}

/// How the stored error of an outbox row refused by the relay's login starts (the row itself
/// is marked by [`DeliveryOutcome::LoginRefused`]; the text tells the operator).
pub const AUTH_REJECTED: &str = "relay refused the OCT's SMTP login";

impl Delivery {
    /// Prepares the transports named by the configuration (no connection yet).
    pub fn new(config: Arc<Config>) -> Result<Delivery, ServiceError> {
        let smtp = match &config.delivery.smtp {
            None => None,
            Some(s) => {
                let mut c = SmtpConfig::plain(s.host.clone(), s.port);
                c.security = match s.tls {
                    SmtpTls::None => Security::None,
                    SmtpTls::Starttls => Security::StartTls,
                    SmtpTls::Implicit => Security::Implicit,
                };
                c.timeout = Duration::from_secs(s.timeout_secs.max(1));
                c.hello_name = Some(config.domain().to_owned());
                c.allow_plaintext_auth = s.allow_plaintext_auth;
                if let (Some(user), Some(pw)) = (&s.username, &s.password) {
                    c.credentials = Some(SmtpCredentials {
                        user: user.clone(),
                        password: pw.clone(),
                    });
                }
                Some(SmtpTransport::new(&c).map_err(|e| ServiceError::Smtp(e.to_string()))?)
            }
        };
        let directory = match &config.delivery.directory {
            None => None,
            Some(d) => Some(DirTransport::new(d.clone()).map_err(|e| ServiceError::Smtp(e.to_string()))?),
        };
        Ok(Delivery {
            config,
            smtp,
            directory,
            maildirs: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The Maildir at `dir`, created on first use (a failure is retried at the next delivery).
    fn maildir(
        &self,
        dir: &std::path::Path,
    ) -> Result<Arc<svoct_mail::maildir::Maildir>, svoct_mail::maildir::MaildirError> {
        let mut open = self
            .maildirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(md) = open.get(dir) {
            return Ok(md.clone());
        }
        // Delivery only writes; the size bound matters to readers.
        let md = Arc::new(svoct_mail::maildir::Maildir::create(dir, 1 << 30)?);
        open.insert(dir.to_path_buf(), md.clone());
        Ok(md)
    }

    /// Delivers rows for local mailboxes as one group (see [`super::send_once`]): one outcome per
    /// row, in order. `instance` ([`OctStore::instance_id`]) keeps the file names of two OCTs
    /// sharing a Maildir apart.
    pub fn deliver_local_group(&self, rows: &[&Due], instance: &str) -> Vec<Delivered> {
        use svoct_mail::maildir::{Maildir, Staged};
        let transient = |dir: &std::path::Path, e: &dyn std::fmt::Display| {
            Delivered::Transient(format!("Maildir {}: {e}", dir.display()))
        };
        let host = svoct_mail::maildir::name_host(self.config.domain());
        let mut results: Vec<Option<Delivered>> = vec![None; rows.len()];
        // 1. Every file written into tmp/, 2. all synced (a journalled file system commits
        // them together), 3. each moved into new/, 4. each new/ synced once.
        let mut staged: Vec<(usize, Arc<Maildir>, Staged, String)> = Vec::with_capacity(rows.len());
        for (i, d) in rows.iter().enumerate() {
            let Some(dir) = self.config.local_maildir(&d.rcpt) else {
                results[i] = Some(Delivered::Permanent(format!("{} is not a local mailbox", d.rcpt)));
                continue;
            };
            let md = match self.maildir(dir) {
                Ok(m) => m,
                Err(e) => {
                    results[i] = Some(transient(dir, &e));
                    continue;
                }
            };
            // Maildir-style: time first, so that readers sorting by name see queue order.
            let name = format!("{}.O{instance}Q{}.{host}", d.created, d.id);
            match md.stage(&name, &d.raw) {
                Ok(s) => staged.push((i, md, s, name)),
                Err(e) => {
                    self.forget_maildir(dir);
                    results[i] = Some(transient(dir, &e));
                }
            }
        }
        let mut placed: Vec<(usize, Arc<Maildir>, String)> = Vec::with_capacity(staged.len());
        let synced: Vec<_> = staged
            .into_iter()
            .filter_map(|(i, md, s, name)| match s.sync() {
                Ok(()) => Some((i, md, s, name)),
                Err(e) => {
                    results[i] = Some(transient(md.root(), &e));
                    None
                }
            })
            .collect();
        for (i, md, s, name) in synced {
            match s.place() {
                Ok(fresh) => {
                    placed.push((
                        i,
                        md,
                        if fresh {
                            format!("maildir {name}")
                        } else {
                            format!("maildir {name} (already there: written before a restart)")
                        },
                    ));
                }
                Err(e) => results[i] = Some(transient(md.root(), &e)),
            }
        }
        let mut synced_dirs: Vec<(Arc<Maildir>, Result<(), String>)> = Vec::new();
        for (i, md, answer) in placed {
            let outcome = match synced_dirs.iter().find(|(m, _)| Arc::ptr_eq(m, &md)) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = md.sync_new().map_err(|e| e.to_string());
                    synced_dirs.push((md.clone(), r.clone()));
                    r
                }
            };
            results[i] = Some(match outcome {
                Ok(()) => Delivered::Ok(answer),
                Err(e) => transient(md.root(), &e),
            });
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Delivered::Transient("not attempted".into())))
            .collect()
    }

    fn forget_maildir(&self, dir: &std::path::Path) {
        self.maildirs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(dir);
    }

    /// Delivers one message for a mailbox the operator does not host: into the `.eml`
    /// directory when one is configured, by SMTP otherwise. Hosted mailboxes
    /// (`[[delivery.local]]`) go through [`Delivery::deliver_local_group`].
    pub fn deliver_remote(&self, from: &str, rcpt: &str, raw: &[u8]) -> Delivered {
        let envelope = SmtpEnvelope::new(from, rcpt);
        let transport: &dyn Transport = match (&self.directory, &self.smtp) {
            (Some(d), _) => d,
            (None, Some(s)) => s,
            (None, None) => {
                return Delivered::Permanent(format!(
                    "no delivery for {rcpt}: not a local mailbox and no [delivery.smtp] configured"
                ));
            }
        };
        match transport.send(&envelope, raw) {
            Ok(ok) => Delivered::Ok(ok.answer),
            Err(e) if e.is_auth_rejected() => Delivered::AuthRejected(e.to_string()),
            Err(e) if e.is_permanent() => Delivered::Permanent(e.to_string()),
            Err(e) => Delivered::Transient(e.to_string()),
        }
    }
}

pub(super) fn delivery_outcome(
    due: &Due,
    delivered: Delivered,
    config: &Config,
    stats: &ServiceStats,
) -> DeliveryOutcome {
    // Since the row was queued: what an operator compares with the insurer's own logs.
    let delay_secs = now_secs().saturating_sub(due.created).max(0);
    match delivered {
        Delivered::Ok(answer) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            stats.metrics.delivery("delivered");
            tracing::info!(spool_id = %due.spool_id, message_id = %due.message_id, kind = %due.kind, rcpt = %due.rcpt, delay_secs, answer = ?answer, "delivered");
            DeliveryOutcome::Sent
        }
        Delivered::Transient(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            let attempts = due.attempts.saturating_add(1);
            if attempts >= config.retry.max_attempts {
                stats.metrics.delivery("failed");
                tracing::warn!(spool_id = %due.spool_id, message_id = %due.message_id, kind = %due.kind, rcpt = %due.rcpt, attempts, delay_secs, %error, "delivery failed: retries exhausted");
                DeliveryOutcome::Failed { error }
            } else {
                stats.metrics.delivery("deferred");
                let delay = config.retry.backoff(attempts);
                let at = now_secs().saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
                tracing::warn!(spool_id = %due.spool_id, message_id = %due.message_id, kind = %due.kind, rcpt = %due.rcpt, attempts, delay_secs, retry_in_secs = delay.as_secs(), %error, "delivery deferred");
                DeliveryOutcome::Retry { at, error }
            }
        }
        Delivered::Permanent(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            stats.metrics.delivery("failed");
            tracing::warn!(spool_id = %due.spool_id, message_id = %due.message_id, kind = %due.kind, rcpt = %due.rcpt, delay_secs, %error, "delivery failed permanently");
            DeliveryOutcome::Failed { error }
        }
        Delivered::AuthRejected(error) => {
            stats.delivery_failures.fetch_add(1, Ordering::Relaxed);
            stats.metrics.delivery("login_refused");
            // Not the message's fault: retried with backoff however many times it takes (the
            // attempt count still grows the delay), never marked failed.
            let attempts = due.attempts.saturating_add(1);
            let delay = config.retry.backoff(attempts);
            let at = now_secs().saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
            tracing::warn!(
                spool_id = %due.spool_id, message_id = %due.message_id, rcpt = %due.rcpt, attempts, retry_in_secs = delay.as_secs(), %error,
                "the relay refused the OCT's SMTP login: fix [delivery.smtp] username/password; delivery deferred"
            );
            DeliveryOutcome::LoginRefused {
                at,
                error: format!("{AUTH_REJECTED}: {error}"),
            }
        }
    }
}
