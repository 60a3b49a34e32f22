//! The sender: claims due outbox rows and delivers them, recording each outcome.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::delivery::delivery_outcome;
use super::{Delivery, ServiceError, ServiceStats, Shared, sleep_unless_stopped};
use crate::config::Config;
use crate::pipeline::ForwardFailure;
use crate::state::{DeliveryOutcome, Due, OctStore, OutKind, Outgoing, State, now_secs};

/// One sender step: claims up to `delivery.batch` due outbox rows (oldest first, one
/// transaction) and delivers them.
///
/// - Rows for mailboxes the operator hosts (`[[delivery.local]]`) are delivered as a group:
///   each file is written and synced under a name derived from its outbox row, each Maildir's
///   `new/` is synced once, then all outcomes are recorded in one transaction. The names make a
///   redelivery after a crash find the file already there and write nothing.
/// - Other rows (SMTP, `.eml` directory) go one at a time, each outcome recorded as soon as it
///   is known, so that a crash re-sends at most the one message in flight.
///
/// When `stop` is raised the rows not yet attempted go back in the queue. Returns `false` when
/// none was due.
pub fn send_once(
    state: &dyn OctStore,
    delivery: &Delivery,
    config: &Config,
    stats: &ServiceStats,
    stop: &AtomicBool,
) -> Result<bool, ServiceError> {
    let due = state.claim_due_batch(now_secs(), config.delivery.batch.max(1))?;
    if due.is_empty() {
        return Ok(false);
    }
    let (local, remote): (Vec<&Due>, Vec<&Due>) =
        due.iter().partition(|d| config.local_maildir(&d.rcpt).is_some());
    let mut rest: std::collections::VecDeque<i64> = local.iter().chain(&remote).map(|d| d.id).collect();
    if !local.is_empty() {
        if stop.load(Ordering::Relaxed) {
            state.unclaim(rest.make_contiguous())?;
            return Ok(true);
        }
        let instance = match state.instance_id() {
            Ok(i) => i,
            Err(e) => {
                let _ = state.unclaim(rest.make_contiguous());
                return Err(e.into());
            }
        };
        let outcomes: Vec<(i64, DeliveryOutcome)> = local
            .iter()
            .zip(delivery.deliver_local_group(&local, &instance))
            .map(|(d, delivered)| (d.id, delivery_outcome(d, delivered, config, stats)))
            .collect();
        let notices = failure_notices(state, config, &local, &outcomes);
        if let Err(e) = state.record_deliveries_with_notices(&outcomes, &notices) {
            // Delivered files stay; their redelivery finds them and writes nothing.
            let _ = state.unclaim(rest.make_contiguous());
            return Err(e.into());
        }
        rest.drain(..local.len());
    }
    for d in remote {
        if stop.load(Ordering::Relaxed) {
            state.unclaim(rest.make_contiguous())?;
            break;
        }
        let outcome = delivery_outcome(
            d,
            delivery.deliver_remote(&d.mail_from, &d.rcpt, &d.raw),
            config,
            stats,
        );
        let outcomes = [(d.id, outcome)];
        let notices = failure_notices(state, config, &[d], &outcomes);
        if let Err(e) = state.record_deliveries_with_notices(&outcomes, &notices) {
            // Rows still claimed go back in the queue; the one just delivered may be sent again
            // (the SMTP hop is at-least-once, Message-IDs are stable).
            let _ = state.unclaim(rest.make_contiguous());
            return Err(e.into());
        }
        rest.pop_front();
    }
    Ok(true)
}

/// The ARTs telling PSs that a file forwarded for them failed for good (issue 14, point 4): one
/// per `forward` row among `rows` whose outcome is [`DeliveryOutcome::Failed`], each under the
/// PS's spooled message. Queued with the failure in one transaction, so the notice is as
/// durable as the failure; its Message-ID derives from the failed row's, so a row requeued and
/// failed again is not reported twice. A notice that cannot be built (the sender was removed
/// from the configuration, the state cannot be read) is logged and the failure still recorded:
/// `svoct oct status` shows the failed row either way.
fn failure_notices(
    state: &dyn OctStore,
    config: &Config,
    rows: &[&Due],
    outcomes: &[(i64, DeliveryOutcome)],
) -> Vec<(String, Outgoing)> {
    let mut notices = Vec::new();
    for (d, (_, outcome)) in rows.iter().zip(outcomes) {
        let DeliveryOutcome::Failed { error } = outcome else {
            continue;
        };
        if d.kind != OutKind::Forward.as_str() {
            continue;
        }
        notices.extend(forward_failure_notice(
            state,
            config,
            d.id,
            &d.message_id,
            &d.rcpt,
            ForwardFailure::Refused(error),
        ));
    }
    notices
}

/// The ART telling a PS that forward row `id` (`message_id`, to `rcpt`) will never be
/// delivered, for `failure`, with the spooled message it is queued under; `None` (logged) when it
/// cannot be built. The one builder of this notice, for a permanent failure
/// ([`failure_notices`]) and an operator's abandon ([`abandon`]).
fn forward_failure_notice(
    state: &dyn OctStore,
    config: &Config,
    id: i64,
    message_id: &str,
    rcpt: &str,
    failure: ForwardFailure<'_>,
) -> Option<(String, Outgoing)> {
    let origin = match state.forward_origin(id) {
        Ok(Some(o)) => o,
        Ok(None) => return None,
        Err(e) => {
            tracing::error!(message_id = %message_id, error = %e, "cannot read where a failed forward comes from: the PS is not told");
            return None;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let sender = match state.practice_find(&origin.mail_from) {
        Ok(Some(p)) => crate::practices::sender_of(&p.fields),
        Ok(None) => {
            tracing::error!(message_id = %message_id, spool_id = %origin.spool_id, from = %origin.mail_from, "a failed forward's PS is no longer a registered practice: the PS is not told");
            return None;
        }
        Err(e) => {
            tracing::error!(message_id = %message_id, error = %e, "cannot read the practice of a failed forward: the PS is not told");
            return None;
        }
    };
    match crate::pipeline::forward_failure_art(config, &sender, &origin, rcpt, failure, now) {
        Ok(art) => {
            // The compostage names the PS's message in its own software: the ART's key.
            let compostage = origin.summary["receipt"]["compostage"]
                .as_str()
                .unwrap_or_default();
            tracing::warn!(message_id = %message_id, spool_id = %origin.spool_id, art = %art.message_id, %compostage, "forward failed for good: the PS is sent an ART");
            Some((origin.spool_id, art))
        }
        Err(e) => {
            tracing::error!(message_id = %message_id, spool_id = %origin.spool_id, error = %e, "cannot build the ART of a failed forward: the PS is not told");
            None
        }
    }
}

/// What [`abandon`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Abandoned {
    /// The Message-ID of the ART queued to the PS (a forward whose origin is known and whose
    /// sender is still configured); `None` for another kind of row.
    pub art: Option<String>,
}

/// Abandons outbox row `row` on an operator's word (`svoct oct queue delete`): it is marked
/// `deleted` and never sent. When it forwards a PS's lots, the PS gets the ART a failed
/// forward produces, worded as the operator's abandon (not as a refusal by the server), queued in the same transaction through
/// [`OctStore::record_deliveries_with_notices`] as the senders do. A row that is not waiting
/// (being sent, sent, already deleted) is an error and nothing is recorded.
pub fn abandon(
    state: &dyn OctStore,
    config: &Config,
    row: &crate::state::QueueRow,
    reason: &str,
) -> Result<Abandoned, ServiceError> {
    let notice = if row.row.kind == OutKind::Forward.as_str() {
        forward_failure_notice(
            state,
            config,
            row.row.id,
            &row.row.message_id,
            &row.row.rcpt,
            ForwardFailure::Abandoned(reason),
        )
    } else {
        None
    };
    let art = notice.as_ref().map(|(_, o)| o.message_id.clone());
    let outcome = DeliveryOutcome::Abandoned {
        reason: reason.to_owned(),
    };
    state.record_deliveries_with_notices(&[(row.row.id, outcome)], notice.as_slice())?;
    tracing::warn!(id = row.row.id, message_id = %row.row.message_id, spool_id = %row.row.spool_id, reason = %reason, art = ?art, "outbox row abandoned by the operator");
    Ok(Abandoned { art })
}

/// How long an idle sender waits before looking at the outbox again without being woken
/// (retries that became due, rows queued by another process).
const SENDER_IDLE: Duration = Duration::from_millis(200);

/// A sender thread: delivers the outbox until `stop`, woken by the workers.
pub(super) fn run(shared: &Shared) {
    let mut state = None;
    while !shared.stop.load(Ordering::Relaxed) {
        // The configuration and delivery of this step (a reload applies from the next one);
        // `paths.state` needs a restart to change.
        let live = shared.live();
        let config = &*live.config;
        if state.is_none() {
            match State::open_gated(&config.paths.state, shared.gate.clone())
                .and_then(|s| s.relax_durability().map(|()| s))
            {
                Ok(s) => state = Some(s),
                Err(e) => tracing::error!(error = %e, "sender cannot open the state database"),
            }
        }
        let Some(s) = state.as_ref() else {
            sleep_unless_stopped(&shared.stop, Duration::from_secs(1));
            continue;
        };
        let seen = shared.signal.generation();
        match send_once(s, &live.delivery, config, &shared.stats, &shared.stop) {
            Ok(true) => {}
            Ok(false) => shared.signal.wait(seen, SENDER_IDLE),
            Err(e) => {
                tracing::error!(error = %e, "sender step failed; retrying");
                sleep_unless_stopped(&shared.stop, Duration::from_secs(1));
            }
        }
    }
}
