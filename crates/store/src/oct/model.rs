//! The rows and values that cross the [`OctStore`](super::OctStore) boundary: plain structs,
//! no SQL, no backend type.

use serde::Serialize;

/// What a processed message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An invoice file from a PS (forwarded per destination).
    Invoice,
    /// A return from AM relayed to a PS (ARL, RSP, dLOI increments).
    Relay,
    /// An ARL for a lot the OCT built itself (recorded, R4.2).
    OwnArl,
    /// A dLOI request from a PS (answered from the LOI source).
    LoiRequest,
    /// Could not even be classified.
    Unknown,
}

impl MessageKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageKind::Invoice => "invoice",
            MessageKind::Relay => "relay",
            MessageKind::OwnArl => "own_arl",
            MessageKind::LoiRequest => "loi_request",
            MessageKind::Unknown => "unknown",
        }
    }
}

/// What kind of message an outbox row carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutKind {
    /// A file forwarded to an AMO destination.
    Forward,
    /// The complementary flow to an AMC (R8.3).
    Amc,
    /// The OCT's text receipt to the PS.
    Art,
    /// A return relayed to a PS.
    Relay,
    /// dLOI increments answering a request.
    Loi,
}

impl OutKind {
    /// Stable name, stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            OutKind::Forward => "forward",
            OutKind::Amc => "amc",
            OutKind::Art => "art",
            OutKind::Relay => "relay",
            OutKind::Loi => "loi",
        }
    }
}

/// One message to send.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub message_id: String,
    pub kind: OutKind,
    pub mail_from: String,
    pub rcpt: String,
    pub raw: Vec<u8>,
}

/// A lot the OCT built itself, whose ARL the OCT handles (R4.2).
#[derive(Clone, Debug, Serialize)]
pub struct OwnLot {
    pub lot_number: String,
    pub lot_date: String,
    /// The file that carried it (an ARL names it), so that a PS lot with the same number and
    /// date, forwarded in another OCT file, is never taken for it.
    pub file_id: String,
    pub organisation: String,
    pub message_id: String,
}

/// An ARL for a lot the OCT built.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnArl {
    pub lot_number: String,
    pub lot_date: String,
    /// The file the ARL names; empty when it names none (then number and date decide).
    pub file_id: String,
    /// `positive` or `negative`.
    pub status: String,
    pub detail: String,
}

/// The ARL of an own lot: both `None` until an ARL arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnLotArl {
    /// `positive` or `negative`.
    pub status: Option<String>,
    pub detail: Option<String>,
}

/// A quarantine decision.
#[derive(Clone, Debug)]
pub struct QuarantineEntry {
    /// Stable reason code (`undecryptable`, `unknown_sender`, ...).
    pub code: String,
    /// Human explanation.
    pub reason: String,
    pub rcpt: Vec<String>,
    pub raw: Vec<u8>,
}

/// A lot an invoice message forwards, recorded in the processed index so that the same lot is
/// never forwarded again (see [`Claims`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LotClaim {
    /// SHA-256 (hex) of the lot's bytes as the PS sealed them: the lot's identity. They carry
    /// the PS number, the lot number and the lot date, so equal bytes are the same lot whatever
    /// file carries it.
    pub lot_hash: String,
    pub ps_number: String,
    pub lot_number: String,
    pub lot_date: String,
    /// The PS file that carried it (`000` *identification du fichier*), for the operator.
    pub file_id: String,
    /// Where it went (route label), told to the PS if the lot comes again.
    pub destination: String,
    /// The forwarded message that carries it.
    pub message_id: String,
}

/// The compostage of an accepted invoice message and the hash of its decrypted file: the annex
/// makes the compostage unique per message (R5.3), so one (sender, compostage) carries one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompostageClaim {
    /// The sender number (`exercice`), leading zeros removed.
    pub sender_number: String,
    pub compostage: String,
    /// SHA-256 (hex) of the decrypted, decompressed file.
    pub file_hash: String,
    /// The pipeline found no message under this compostage: if one was committed meanwhile,
    /// this message is processed again (and answered as the duplicate it is). `false`: it was
    /// found with this very file, and this message is that duplicate.
    pub first_use: bool,
}

/// What an invoice message takes in the processed index. Committed with its outbox rows; a
/// claim another message already holds (a lot already forwarded, a compostage already used for
/// another file) makes the whole message a [`Commit::Conflict`]: nothing of it is recorded and
/// the worker processes it again, now seeing the other message's rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    pub compostage: Option<CompostageClaim>,
    pub lots: Vec<LotClaim>,
    /// DRE and contract-99 invoices of the forwarded lots (R3.4).
    pub invoices: Vec<InvoiceClaim>,
}

/// What an invoice is for R3.4: a DRE, or an FSE with contract type 99 (the OCT splits it and
/// claims the complementary part itself). One invoice number of one PS may be one or the other,
/// never both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceNature {
    Dre,
    Contract99,
}

impl InvoiceNature {
    /// Stable name, stored.
    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceNature::Dre => "dre",
            InvoiceNature::Contract99 => "contract99",
        }
    }

    /// The nature that excludes this one.
    pub fn other(self) -> InvoiceNature {
        match self {
            InvoiceNature::Dre => InvoiceNature::Contract99,
            InvoiceNature::Contract99 => InvoiceNature::Dre,
        }
    }

    /// How the ART names it (French).
    pub fn label(self) -> &'static str {
        match self {
            InvoiceNature::Dre => "DRE",
            InvoiceNature::Contract99 => "FSE de type de contrat 99",
        }
    }
}

/// An invoice a forwarded lot carries as DRE or contract-99 FSE, recorded so that the other
/// nature of the same invoice is refused later (R3.4). Committed with the lot's [`LotClaim`];
/// the other nature already recorded for the same PS and number makes the message a
/// [`Commit::Conflict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvoiceClaim {
    /// PS number, leading zeros removed.
    pub ps_number: String,
    /// *N° facture* as a number (type 2 positions 27-35).
    pub invoice_number: u64,
    pub nature: InvoiceNature,
    /// The lot that carries it ([`LotClaim::lot_hash`]).
    pub lot_hash: String,
    /// Where the lot went (route label), told to the PS.
    pub destination: String,
}

/// An invoice found in the index of R3.4.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenInvoice {
    /// Route label its lot was forwarded to.
    pub destination: String,
    /// When it was committed (seconds since the epoch).
    pub at: i64,
}

/// A lot found in the processed index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenLot {
    /// Route label it was forwarded to.
    pub destination: String,
    /// When it was committed (seconds since the epoch).
    pub at: i64,
    pub message_id: String,
}

/// What [`OctStore::commit_batch`](super::OctStore::commit_batch) did with one processed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Recorded with everything it produced.
    Recorded,
    /// The spooled message was already committed: nothing changed.
    AlreadyProcessed,
    /// One of its [`Claims`] is held by another message (committed earlier, or earlier in the
    /// same batch): nothing of it was recorded; process it again.
    Conflict,
}

/// Everything one spooled message produced, committed atomically by [`OctStore::commit`](super::OctStore::commit).
#[derive(Clone, Debug)]
pub struct Processed {
    pub spool_id: String,
    pub digest: String,
    pub kind: MessageKind,
    pub mail_from: String,
    pub subject: String,
    /// JSON summary (lots and their fate), shown by `status` and `quarantine show`.
    pub summary: serde_json::Value,
    pub outgoing: Vec<Outgoing>,
    pub own_lots: Vec<OwnLot>,
    /// ARL received for lots the OCT built (R4.2).
    pub own_arls: Vec<OwnArl>,
    pub quarantine: Option<QuarantineEntry>,
    /// When this is the retry of a quarantined message: its quarantine id, marked `retried` in
    /// the same transaction.
    pub retried_quarantine: Option<i64>,
    /// The lots it forwards and the compostage it uses (accepted invoice messages only).
    pub claims: Claims,
}

/// A quarantined message an operator asked to retry.
#[derive(Clone, Debug)]
pub struct RetryItem {
    pub id: i64,
    pub spool_id: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub raw: Vec<u8>,
}

/// An outbox row due for delivery.
#[derive(Clone, Debug)]
pub struct Due {
    pub id: i64,
    pub message_id: String,
    pub kind: String,
    pub mail_from: String,
    pub rcpt: String,
    pub raw: Vec<u8>,
    pub attempts: u32,
    /// When the row was queued (seconds since the epoch).
    pub created: i64,
    /// The spooled message that produced it: the key of every log line about it.
    pub spool_id: String,
}

/// What became of one delivery attempt, recorded by [`OctStore::record_deliveries`](super::OctStore::record_deliveries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered: the row is `sent`.
    Sent,
    /// Transient failure: pending again from `at` (seconds since the epoch).
    Retry { at: i64, error: String },
    /// Permanent failure, or retries exhausted: the row is `failed`.
    Failed { error: String },
    /// The relay refused the OCT's own SMTP login: not the message's fault, so the row is
    /// pending again from `at` and never failed for it; it is marked
    /// ([`OutboxRow::login_refused`]) so that `svoct oct status` raises an alert.
    LoginRefused { at: i64, error: String },
    /// Abandoned by an operator (`svoct oct queue delete`): the row is `deleted`, never sent.
    /// Only a row waiting in the queue (pending, held, failed) can be abandoned; another is a
    /// [`StoreError::NotQueued`](crate::StoreError::NotQueued) and nothing is recorded.
    Abandoned { reason: String },
}

/// The processed message a forwarded file comes from ([`OctStore::forward_origin`](super::OctStore::forward_origin)).
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardOrigin {
    /// The forwarded file's Message-ID.
    pub message_id: String,
    /// The PS's spooled message.
    pub spool_id: String,
    /// The PS's address (envelope sender of its message).
    pub mail_from: String,
    /// The processing summary recorded with it (its receipt under `receipt`); `Null` when it
    /// does not parse.
    pub summary: serde_json::Value,
    /// (lot number, lot date `AAMMJJ`) of the PS lots the file carries, in order.
    pub lots: Vec<(String, String)>,
    /// The label of the route the file went to (`CPAM 751 (01 751)`); empty when unknown.
    pub destination: String,
}

/// A quarantined message, as listed.
#[derive(Clone, Debug, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub spool_id: String,
    pub code: String,
    pub reason: String,
    pub mail_from: String,
    pub rcpt: Vec<String>,
    pub subject: String,
    pub state: String,
    pub at: i64,
    pub bytes: usize,
}

/// Where an outbox row is in its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting to be delivered (from its `next_attempt`).
    Pending,
    /// Claimed by a sender (back to `pending` after a crash).
    Sending,
    Sent,
    /// Failed permanently or out of retries (`svoct oct requeue` puts it back).
    Failed,
    /// Held by an operator (`svoct oct queue hold`): never claimed until released.
    Held,
    /// Abandoned by an operator (`svoct oct queue delete`): never sent.
    Deleted,
}

impl OutboxState {
    /// Stable name, stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
            OutboxState::Held => "held",
            OutboxState::Deleted => "deleted",
        }
    }

    /// The state named `name` ([`OutboxState::as_str`]).
    pub fn parse(name: &str) -> Option<OutboxState> {
        [
            OutboxState::Pending,
            OutboxState::Sending,
            OutboxState::Sent,
            OutboxState::Failed,
            OutboxState::Held,
            OutboxState::Deleted,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for OutboxState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An outbox row as shown by `status`.
#[derive(Clone, Debug, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub spool_id: String,
    pub kind: String,
    pub rcpt: String,
    pub state: OutboxState,
    pub attempts: u32,
    pub next_attempt: i64,
    pub last_error: Option<String>,
    /// Its last attempt failed on the relay's refusal of the OCT's login
    /// ([`DeliveryOutcome::LoginRefused`]).
    #[serde(skip)]
    pub login_refused: bool,
}

/// Counters and queue depths for `svoct oct status`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Processed messages by kind and outcome (`invoice/processed`, `relay/quarantined`...).
    pub processed: std::collections::BTreeMap<String, u64>,
    /// Outbox rows by state (`pending`, `sent`, `failed`).
    pub outbox: std::collections::BTreeMap<String, u64>,
    /// Outbox rows by kind (`forward`, `art`, ...).
    pub outbox_by_kind: std::collections::BTreeMap<String, u64>,
    /// Quarantine rows by state (`held`, `retry`, `retried`, `purged`: content removed).
    pub quarantine: std::collections::BTreeMap<String, u64>,
    /// Bytes of quarantined content held (bounded by `quarantine.max_bytes`).
    pub quarantine_bytes: u64,
    /// Lots the OCT built, and how many have an ARL.
    pub own_lots: u64,
    pub own_lots_acknowledged: u64,
}

/// The recorded outcome of a committed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessedOutcome {
    /// `processed` or `quarantined`.
    pub outcome: String,
    pub reason: Option<String>,
}

/// An outbox row's identity and state, for tests and audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub message_id: String,
    /// [`OutKind::as_str`].
    pub kind: String,
    pub rcpt: String,
    pub state: OutboxState,
}

/// A quarantined message with its content and the processing summary.
#[derive(Clone, Debug)]
pub struct QuarantinedMessage {
    pub row: QuarantineRow,
    /// Empty once purged.
    pub raw: Vec<u8>,
    /// JSON summary recorded with it (`Null` when none).
    pub summary: serde_json::Value,
}

/// How much the quarantine keeps (from the OCT's `[quarantine]` settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuarantineBound {
    /// Bytes of content held at most; the oldest contents go first.
    pub max_bytes: u64,
    /// Purged rows (metadata only) kept at most; the oldest are deleted first.
    pub max_purged_rows: u64,
}

/// Why the quarantine's content was removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurgeCause {
    /// The quarantine held more than its bound.
    Bound,
    /// Older than the retention period.
    Retention,
    /// Dropped by an operator (`svoct oct quarantine drop`), for the reason given.
    Dropped,
}

impl PurgeCause {
    /// Stable name, stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PurgeCause::Bound => "bound",
            PurgeCause::Retention => "retention",
            PurgeCause::Dropped => "dropped",
        }
    }
}

/// A quarantined message whose content was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purged {
    pub id: i64,
    pub spool_id: String,
    pub code: String,
    pub reason: String,
    pub mail_from: String,
    pub bytes: u64,
    pub cause: PurgeCause,
}

/// Why and when a quarantined message's content was removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeRecord {
    /// [`PurgeCause::as_str`].
    pub cause: String,
    pub bytes: u64,
    /// Seconds since the epoch.
    pub at: i64,
}

/// An outbox row as the operator's queue shows it (`svoct oct queue list|show`): the row as
/// `status` shows it, and what the operator needs besides: when it was queued, the message it
/// came from, its size, and why it was abandoned.
#[derive(Clone, Debug, Serialize)]
pub struct QueueRow {
    /// `row.spool_id` links to the processed message (`svoct oct trace`).
    #[serde(flatten)]
    pub row: OutboxRow,
    /// When it was queued, seconds since the epoch.
    pub created_at: i64,
    /// The envelope sender of the message it came from (the PS, an insurer for a relayed
    /// return); `None` when that message is not recorded.
    pub origin_from: Option<String>,
    pub origin_subject: Option<String>,
    /// Size of the message to send.
    pub bytes: u64,
    /// Why and when an operator abandoned it (`deleted` rows).
    pub abandoned_reason: Option<String>,
    pub abandoned_at: Option<i64>,
}
