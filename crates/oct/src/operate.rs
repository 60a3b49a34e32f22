//! The operator's actions and look-ups, shared by the CLI (`svoct oct queue`, `quarantine`,
//! `trace`) and the web console (`crate::http`): one implementation, so that a button does what
//! the command does. Each function acts on the state database only; a running service acts on
//! what changed at its next poll.

use crate::config::Config;
use crate::service::{Abandoned, ServiceError};
use crate::state::{MessageTrace, OctStore, Purged, QueueRow, StateError, now_secs};

/// Why an operator's action was not done.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    /// The reason an action needs was empty.
    #[error("{0} needs a reason that says why (--reason on the command line)")]
    NoReason(&'static str),
    /// Nothing with that id in the state that the action applies to.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Service(#[from] ServiceError),
}

/// Whitespace (newlines of multi-line SMTP answers included) folded to single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A delivery error as shown to the operator. Errors are scrubbed before they are stored;
/// scrubbing again with the configured login also cleans rows a version without scrubbing
/// stored.
pub fn scrub_error(config: &Config, error: &str) -> String {
    let smtp = config.delivery.smtp.as_ref();
    let user = smtp.and_then(|s| s.username.as_deref());
    let secrets: Vec<&svoct_mail::secret::Secret> =
        smtp.and_then(|s| s.password.as_ref()).into_iter().collect();
    svoct_mail::secret::scrub_reply(error, user, &secrets)
}

/// [`scrub_error`] on an optional stored error.
pub fn scrub(config: &Config, error: &mut Option<String>) {
    if let Some(e) = error.as_mut() {
        *e = scrub_error(config, e);
    }
}

fn scrubbed(config: &Config, mut rows: Vec<QueueRow>) -> Vec<QueueRow> {
    for r in &mut rows {
        scrub(config, &mut r.row.last_error);
    }
    rows
}

/// Every outgoing message not yet delivered, oldest first, errors scrubbed (`queue list`).
pub fn queue_list(config: &Config, state: &dyn OctStore) -> Result<Vec<QueueRow>, OperateError> {
    Ok(scrubbed(config, state.queue_list()?))
}

/// One outgoing message whatever its state, error scrubbed (`queue show`).
pub fn queue_get(config: &Config, state: &dyn OctStore, id: i64) -> Result<QueueRow, OperateError> {
    scrubbed(config, state.queue_get(id)?.into_iter().collect())
        .pop()
        .ok_or_else(|| {
            OperateError::NotFound(format!("no outgoing message #{id} (see `svoct oct queue list`)"))
        })
}

/// Abandons a queued message for good (`queue delete`); a forward's PS is sent an ART.
/// Returns the row as it was and what was queued for the PS.
pub fn queue_delete(
    config: &Config,
    state: &dyn OctStore,
    id: i64,
    reason: &str,
) -> Result<(QueueRow, Abandoned, String), OperateError> {
    let reason = one_line(reason);
    if reason.is_empty() {
        return Err(OperateError::NoReason("queue delete"));
    }
    let row = queue_get(config, state, id)?;
    let done = crate::service::abandon(state, config, &row, &reason)?;
    Ok((row, done, reason))
}

/// Drops a quarantined message's content for good, keeping its row with the reason
/// (`quarantine drop`). Returns the reason as recorded.
pub fn quarantine_drop(
    state: &dyn OctStore,
    id: i64,
    reason: &str,
) -> Result<(Purged, String), OperateError> {
    let reason = one_line(reason);
    if reason.is_empty() {
        return Err(OperateError::NoReason("quarantine drop"));
    }
    match state.quarantine_drop(id, &reason, now_secs())? {
        Some(dropped) => Ok((dropped, reason)),
        None => Err(OperateError::NotFound(format!(
            "no quarantined message #{id} holding its content (see `svoct oct quarantine list --all`)"
        ))),
    }
}

/// Marks a quarantined message for processing again (`quarantine retry`): the running
/// service's workers take marked entries at their next poll.
pub fn quarantine_retry(state: &dyn OctStore, id: i64) -> Result<(), OperateError> {
    if state.quarantine_request_retry(id)? {
        Ok(())
    } else {
        Err(OperateError::NotFound(format!(
            "no quarantined message #{id} waiting (see `svoct oct quarantine list`)"
        )))
    }
}

/// The messages a trace query finds, at most `limit`, with their errors scrubbed.
#[derive(Debug)]
pub struct TraceFound {
    pub messages: Vec<MessageTrace>,
    /// More messages match than were read.
    pub truncated: bool,
}

/// Finds messages by spool id, compostage, PS number, lot number or outgoing Message-ID
/// (`svoct oct trace`, the console's trace and PS pages), oldest first.
pub fn trace(
    config: &Config,
    state: &dyn OctStore,
    query: &str,
    limit: usize,
) -> Result<TraceFound, OperateError> {
    let mut ids = state.trace_find(query.trim(), limit.saturating_add(1))?;
    let truncated = ids.len() > limit;
    ids.truncate(limit);
    let mut messages = Vec::with_capacity(ids.len());
    for id in &ids {
        if let Some(mut t) = state.trace(id)? {
            for row in &mut t.outbox {
                scrub(config, &mut row.last_error);
            }
            messages.push(t);
        }
    }
    Ok(TraceFound { messages, truncated })
}

/// A duration as an operator reads it: `45s`, `12m05s`, `3h20m`, `2d04h`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// The next attempt of a queued message in words (only pending rows have one); `time` writes
/// an instant (the CLI in local time, the console in UTC).
pub fn next_attempt(r: &QueueRow, now: i64, time: impl Fn(i64) -> String) -> String {
    use crate::state::OutboxState as S;
    match r.row.state {
        S::Pending if r.row.next_attempt <= now => "now".to_owned(),
        S::Pending => format!(
            "{} (in {})",
            time(r.row.next_attempt),
            age(r.row.next_attempt - now)
        ),
        S::Sending => "in progress".to_owned(),
        S::Held => "none (held)".to_owned(),
        S::Failed => "none (failed: `svoct oct outbox requeue`)".to_owned(),
        S::Sent | S::Deleted => "none".to_owned(),
    }
}

/// The name of where an outgoing message goes, for metrics labels and the console's summaries:
/// the route's or AMC's organisation for a configured mailbox, `ps` for the rest (ARTs and
/// returns to practices). Never an address: labels are not the place for who a PS is.
pub fn destination(config: &Config, rcpt: &str) -> String {
    let same = |m: &str| m.eq_ignore_ascii_case(rcpt);
    if let Some(r) = config.routes.iter().find(|r| same(&r.mailbox)) {
        let parts: Vec<&str> = [&r.organisation, &r.regime, &r.caisse]
            .into_iter()
            .filter_map(|p| p.as_deref())
            .collect();
        return if parts.is_empty() {
            "route".to_owned()
        } else {
            format!("route {}", parts.join("/"))
        };
    }
    if let Some(a) = config.amc.iter().find(|a| same(&a.mailbox)) {
        return format!("amc {}", a.organisation);
    }
    "ps".to_owned()
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_like_an_operator_writes_them() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(45), "45s");
        assert_eq!(age(725), "12m05s");
        assert_eq!(age(12_000), "3h20m");
        assert_eq!(age(187_200), "2d04h");
    }
}
