//! What `svoct oct trace` shows of one spooled message (issue 14 point 1): read from what the
//! processed index, the outbox and the quarantine already keep. The reception itself (client
//! address, size, time of arrival) and the PS's own Message-ID are not stored in the state
//! database: they are in the service's "message received" log line, keyed by the same spool id.

use serde::Serialize;

use super::model::LotClaim;

/// The whole story of one spooled message.
#[derive(Clone, Debug, Serialize)]
pub struct MessageTrace {
    pub spool_id: String,
    /// The processing record; `None` when only other tables name the spool id (not expected).
    pub processed: Option<TraceProcessed>,
    /// The compostage it used, when it was an accepted invoice message.
    pub compostage: Option<TraceCompostage>,
    /// The lots it forwarded (processed index).
    pub lots: Vec<LotClaim>,
    pub quarantine: Option<TraceQuarantine>,
    /// Every outgoing message it produced (forwards, ARTs, relayed returns...), oldest first.
    pub outbox: Vec<TraceOutbox>,
}

/// The `processed` row of a message.
#[derive(Clone, Debug, Serialize)]
pub struct TraceProcessed {
    /// When it was processed (seconds since the epoch).
    pub at: i64,
    pub kind: String,
    /// `processed` or `quarantined`.
    pub outcome: String,
    pub reason: Option<String>,
    pub mail_from: String,
    pub subject: String,
    /// The pipeline's JSON summary (lots and their fate).
    pub summary: serde_json::Value,
}

/// The compostage an accepted invoice message took.
#[derive(Clone, Debug, Serialize)]
pub struct TraceCompostage {
    pub sender_number: String,
    pub compostage: String,
}

/// The quarantine row of a refused message (its content is not part of the trace).
#[derive(Clone, Debug, Serialize)]
pub struct TraceQuarantine {
    pub id: i64,
    pub code: String,
    pub reason: String,
    pub state: String,
    pub at: i64,
}

/// One outbox row a message produced.
#[derive(Clone, Debug, Serialize)]
pub struct TraceOutbox {
    pub id: i64,
    pub message_id: String,
    /// `forward`, `amc`, `art`, `relay`, `loi`.
    pub kind: String,
    pub rcpt: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: Option<String>,
    /// When it was queued (seconds since the epoch).
    #[serde(rename = "created_at")]
    pub created: i64,
    /// When it was delivered.
    #[serde(rename = "sent_at")]
    pub sent: Option<i64>,
}
