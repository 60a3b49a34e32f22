//! What the returns say, for people: every lot and invoice with its state
//! ([`returns_view`], `svoct ps returns`), and the worklists ([`status`], `svoct ps status`).
//!
//! Why worklists: a missing ARL or RSP is silence, and silence is what costs a practice its
//! money; the lists name what to chase (no ARL after `arl_days`, no RSP `rsp_days` after a
//! positive ARL), what to redo (negative lots, rejected invoices) and what came in (paid per
//! day). Both views first register any sent message not yet reconciled, so they are never
//! behind the journal.

use serde::Serialize;
use svoct_formats::PaddedNumber;
use svoct_store::reconciliation::{DayTotal, InvoiceRow, LotRow, ReturnNote, UnmatchedReturn};
use svoct_store::statement::{LineKind, PaymentLineRow};
use time::OffsetDateTime;

use svoct_store::{Direction, InboxState, Status};

use crate::error::PsError;
use crate::reconcile::sync_sent;
use crate::send::Ps;

/// Every sent lot and invoice with its state, the returns that name nothing sent, and the
/// recorded notes (ARTs, NOEMIE findings).
#[derive(Clone, Debug, Serialize)]
pub struct ReturnsView {
    /// Sent lots, oldest first, each with its ARL state (`awaiting`, `positive`, `negative`).
    pub lots: Vec<LotRow>,
    /// Sent invoices, oldest first, each with its payment state (`awaiting`, `paid`,
    /// `rejected`, `deferred`, `partial`, `not_processed`), amount, date and reasons.
    pub invoices: Vec<InvoiceRow>,
    /// Returns for lots or invoices never sent (kept, reported).
    pub unmatched: Vec<UnmatchedReturn>,
    pub notes: Vec<ReturnNote>,
    /// Every ART received, with its text (R4.5).
    pub arts: Vec<ArtView>,
    /// Payments and deductions that belong to no invoice (576 `261`/`262` and `250`), oldest
    /// first.
    pub payment_lines: Vec<PaymentLineRow>,
    /// Rejects and notices of the insurers (900, and notices attached to no invoice).
    pub insurer_notices: Vec<PaymentLineRow>,
    pub totals: Totals,
    /// What a [`ReturnsFilter`] kept, before paging (everything when unfiltered).
    pub page: Page,
}

/// Which lots and invoices `svoct ps returns` shows, and which page of them. Every condition
/// given must hold; totals always count the whole store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReturnsFilter {
    /// States to keep (any of): a lot's ARL state (`awaiting`, `positive`, `negative`) or an
    /// invoice's payment state (`awaiting`, `paid`, `rejected`, `deferred`, `partial`,
    /// `not_processed`). A lot is kept when its state is listed, an invoice likewise.
    pub states: Vec<String>,
    /// Sent on or after this day (UTC).
    pub since: Option<time::Date>,
    /// Sent on or before this day (UTC).
    pub until: Option<time::Date>,
    /// Lot number (leading zeros optional).
    pub lot: Option<String>,
    /// Invoice number (leading zeros optional); lots are then those of the matching invoices.
    pub invoice: Option<String>,
    /// Rows skipped in each list, then at most `limit` rows (`None`: all).
    pub offset: usize,
    pub limit: Option<usize>,
}

/// The states a [`ReturnsFilter`] accepts.
pub const FILTER_STATES: &[&str] = &[
    "awaiting",
    "positive",
    "negative",
    "paid",
    "rejected",
    "deferred",
    "partial",
    "not_processed",
];

/// How many rows matched the filter, before paging.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Page {
    pub offset: usize,
    pub limit: Option<usize>,
    pub lots_matching: usize,
    pub invoices_matching: usize,
}

/// Lot and invoice numbers as the filter and the journal write them: padding aside.
fn same_number(a: &str, b: &str) -> bool {
    PaddedNumber::new(a).is(b)
}

impl ReturnsFilter {
    /// `Err` names a state that is not one of [`FILTER_STATES`].
    pub fn check(&self) -> Result<(), PsError> {
        match self.states.iter().find(|s| !FILTER_STATES.contains(&s.as_str())) {
            Some(bad) => Err(PsError::Other(format!(
                "unknown state {bad:?}: expected one of {}",
                FILTER_STATES.join(", ")
            ))),
            None => Ok(()),
        }
    }

    fn sent_in_range(&self, sent_ms: i64) -> bool {
        let day_ms = |d: time::Date| {
            i64::try_from(d.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        };
        self.since.is_none_or(|d| sent_ms >= day_ms(d))
            && self
                .until
                .is_none_or(|d| sent_ms < day_ms(d).saturating_add(DAY_MS))
    }

    fn state_ok(&self, state: &str) -> bool {
        self.states.is_empty() || self.states.iter().any(|s| s == state)
    }

    /// Keeps the matching lots and invoices of `v`, then one page of each.
    pub fn apply(&self, v: &mut ReturnsView) {
        v.invoices.retain(|i| {
            self.state_ok(i.state.as_str())
                && self.sent_in_range(i.sent_ms)
                && self
                    .lot
                    .as_deref()
                    .is_none_or(|l| i.lot_number.as_deref().is_some_and(|n| same_number(n, l)))
                && self.invoice.as_deref().is_none_or(|n| same_number(&i.number, n))
        });
        let invoice_lots: Vec<(i64, Option<String>, Option<String>)> = v
            .invoices
            .iter()
            .map(|i| (i.entry.0, i.lot_number.clone(), i.lot_date.clone()))
            .collect();
        v.lots.retain(|l| {
            self.state_ok(l.arl.as_str())
                && self.sent_in_range(l.sent_ms)
                && self.lot.as_deref().is_none_or(|n| same_number(&l.number, n))
                && (self.invoice.is_none()
                    || invoice_lots.iter().any(|(e, n, d)| {
                        *e == l.entry.0
                            && n.as_deref().is_some_and(|n| same_number(n, &l.number))
                            && d.as_deref() == Some(l.date.as_str())
                    }))
        });
        v.page = Page {
            offset: self.offset,
            limit: self.limit,
            lots_matching: v.lots.len(),
            invoices_matching: v.invoices.len(),
        };
        let page = |len: usize| {
            let start = self.offset.min(len);
            (
                start,
                self.limit.map_or(len, |l| start.saturating_add(l).min(len)),
            )
        };
        let (a, b) = page(v.lots.len());
        v.lots = v.lots.drain(a..b).collect();
        let (a, b) = page(v.invoices.len());
        v.invoices = v.invoices.drain(a..b).collect();
    }
}

/// An ART as the PS is shown it: the text as received, always; the machine block as an extra.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArtView {
    pub inbox: svoct_store::InboxId,
    pub received_ms: i64,
    /// The compostage of the message it acknowledges, when the ART names it.
    pub compostage: Option<String>,
    /// One line: the machine block's verdict, or the text's first line.
    pub summary: String,
    pub text: String,
    /// The machine-readable block (`docs/formats/art.md`) as JSON, when the ART has one.
    pub structured: Option<serde_json::Value>,
}

/// The ARTs among the notes. Notes recorded before the text was kept (a structured ART) show
/// their summary as text.
pub fn arts_of(notes: &[ReturnNote]) -> Vec<ArtView> {
    notes
        .iter()
        .filter(|n| n.kind == "ART")
        .map(|n| {
            let (text, structured) = match &n.detail {
                serde_json::Value::String(t) => (t.clone(), None),
                d if d.get("text").is_some() => (
                    d["text"].as_str().unwrap_or_default().to_owned(),
                    d.get("structured").filter(|s| !s.is_null()).cloned(),
                ),
                d => (n.summary.clone(), Some(d.clone())),
            };
            ArtView {
                inbox: n.inbox,
                received_ms: n.received_ms,
                compostage: n.compostage.clone(),
                summary: n.summary.clone(),
                text,
                structured,
            }
        })
        .collect()
}

/// Counts by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub lots: usize,
    pub lots_awaiting_arl: usize,
    pub lots_positive: usize,
    pub lots_negative: usize,
    pub invoices: usize,
    pub invoices_awaiting: usize,
    pub invoices_paid: usize,
    pub invoices_rejected: usize,
    pub invoices_deferred: usize,
    pub invoices_partial: usize,
    pub invoices_not_processed: usize,
    /// Signed sum of paid invoice amounts, in cents.
    pub paid_cents: i64,
    /// Flat and one-off payments (576 `261`) and their sum.
    pub flat_payments: usize,
    pub flat_paid_cents: i64,
    /// Deductions (576 `250`) and their signed sum (negative when withheld).
    pub deductions: usize,
    pub deducted_cents: i64,
    /// What the returns pay in all: invoices + flat payments + deductions.
    pub net_paid_cents: i64,
    pub insurer_notices: usize,
    pub unmatched_returns: usize,
}

/// Why something needs a human now, in the order `svoct ps status` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// The OCT refused the message, or a lot of it (its ART says why).
    RefusedByOct,
    /// A lot with a negative ARL: the insurer refused it.
    NegativeArl,
    /// An invoice rejected (or partly) by the insurer.
    RejectedInvoice,
    /// A message that did not leave: deferred, failed, or pending after a crash.
    NotSent,
    /// A received message set aside (quarantined), with the reason.
    SetAside,
}

/// One thing that needs a human now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attention {
    pub kind: AttentionKind,
    /// The journal entry concerned (inbox id for [`AttentionKind::SetAside`]).
    pub entry: Option<i64>,
    /// What it is: a subject, a lot, an invoice.
    pub what: String,
    /// Why, in the words of whoever said so (ART, ARL, RSP, the server, the retrieval).
    pub reason: String,
}

/// The worklists.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// What needs a human now, most urgent kind first: refused by the OCT, negative ARL,
    /// rejected invoices, not sent, set aside. The waiting worklists follow.
    pub needs_attention: Vec<Attention>,
    /// The thresholds used (days).
    pub arl_days: u32,
    pub rsp_days: u32,
    /// Lots sent more than `arl_days` ago with no ARL.
    pub lots_without_arl: Vec<LotRow>,
    /// Invoices without RSP more than `rsp_days` after their lot's positive ARL.
    pub invoices_without_rsp: Vec<InvoiceRow>,
    /// Lots with a negative ARL not sent again: to resend.
    pub lots_to_resend: Vec<LotRow>,
    /// Rejected or partly rejected invoices not sent again: to correct and resend.
    pub invoices_to_correct: Vec<InvoiceRow>,
    /// Returns for lots or invoices never sent.
    pub unmatched: Vec<UnmatchedReturn>,
    /// Paid totals per accounting day (invoices, flat payments, deductions).
    pub paid_per_day: Vec<DayTotal>,
    /// Payments and deductions that belong to no invoice (576).
    pub payment_lines: Vec<PaymentLineRow>,
    /// Rejects and notices of the insurers (900).
    pub insurer_notices: Vec<PaymentLineRow>,
    /// Every ART received, with its text.
    pub arts: Vec<ArtView>,
}

/// Every lot and invoice with its state (what `svoct ps returns` and `svoct demo` print).
pub fn returns_view(ps: &Ps) -> Result<ReturnsView, PsError> {
    let store = ps.store();
    sync_sent(store, ps.config())?;
    let r = store.returns();
    let lots = r.lots()?;
    let invoices = r.invoices()?;
    let unmatched = r.unmatched()?;
    let notes = r.notes()?;
    let payment_lines = r.payment_lines(&[LineKind::FlatPayment, LineKind::Deduction])?;
    let insurer_notices = r.payment_lines(&[LineKind::Notice])?;
    let mut t = Totals {
        lots: lots.len(),
        invoices: invoices.len(),
        unmatched_returns: unmatched.len(),
        insurer_notices: insurer_notices.len(),
        ..Totals::default()
    };
    for l in &payment_lines {
        let a = l.line.amount_cents;
        match l.line.kind {
            LineKind::FlatPayment => {
                t.flat_payments += 1;
                t.flat_paid_cents = t.flat_paid_cents.saturating_add(a);
            }
            LineKind::Deduction => {
                t.deductions += 1;
                t.deducted_cents = t.deducted_cents.saturating_add(a);
            }
            LineKind::Notice => {}
        }
    }
    for l in &lots {
        match l.arl {
            svoct_store::ArlState::Awaiting => t.lots_awaiting_arl += 1,
            svoct_store::ArlState::Positive => t.lots_positive += 1,
            svoct_store::ArlState::Negative => t.lots_negative += 1,
        }
    }
    for i in &invoices {
        use svoct_store::PaymentState as S;
        match i.state {
            S::Awaiting => t.invoices_awaiting += 1,
            S::Paid => t.invoices_paid += 1,
            S::Rejected => t.invoices_rejected += 1,
            S::Deferred => t.invoices_deferred += 1,
            S::Partial => t.invoices_partial += 1,
            S::NotProcessed => t.invoices_not_processed += 1,
        }
        if matches!(i.state, S::Paid | S::Partial) {
            t.paid_cents = t.paid_cents.saturating_add(i.paid_cents);
        }
    }
    t.net_paid_cents = t
        .paid_cents
        .saturating_add(t.flat_paid_cents)
        .saturating_add(t.deducted_cents);
    Ok(ReturnsView {
        unmatched,
        arts: arts_of(&notes),
        notes,
        page: Page {
            offset: 0,
            limit: None,
            lots_matching: lots.len(),
            invoices_matching: invoices.len(),
        },
        lots,
        invoices,
        payment_lines,
        insurer_notices,
        totals: t,
    })
}

const DAY_MS: i64 = 86_400_000;

/// The worklists as of `now`, with the thresholds of the configuration (`[returns]`).
pub fn status(ps: &Ps, now: OffsetDateTime) -> Result<StatusView, PsError> {
    let store = ps.store();
    sync_sent(store, ps.config())?;
    let cfg = &ps.config().returns;
    let now_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let r = store.returns();
    let lots_to_resend = r.lots_to_resend()?;
    let invoices_to_correct = r.invoices_to_correct()?;
    let notes = r.notes()?;
    let needs_attention = attention(ps, &notes, &lots_to_resend, &invoices_to_correct)?;
    Ok(StatusView {
        needs_attention,
        arl_days: cfg.arl_days,
        rsp_days: cfg.rsp_days,
        lots_without_arl: r.lots_awaiting_arl(now_ms.saturating_sub(i64::from(cfg.arl_days) * DAY_MS))?,
        invoices_without_rsp: r
            .invoices_awaiting_rsp(now_ms.saturating_sub(i64::from(cfg.rsp_days) * DAY_MS))?,
        lots_to_resend,
        invoices_to_correct,
        unmatched: r.unmatched()?,
        paid_per_day: r.paid_per_day()?,
        payment_lines: r.payment_lines(&[LineKind::FlatPayment, LineKind::Deduction])?,
        insurer_notices: r.payment_lines(&[LineKind::Notice])?,
        arts: arts_of(&notes),
    })
}

/// The list that opens `svoct ps status`: see [`StatusView::needs_attention`].
fn attention(
    ps: &Ps,
    notes: &[ReturnNote],
    lots: &[LotRow],
    invoices: &[InvoiceRow],
) -> Result<Vec<Attention>, PsError> {
    let journal = ps.store().journal();
    let mut out = Vec::new();
    for status in [Status::Failed, Status::Deferred, Status::Pending] {
        for e in journal.with_status(status)? {
            // Sent again since: the newer entry speaks for it.
            if e.direction != Direction::Out || !journal.replaced_by(e.id)?.is_empty() {
                continue;
            }
            let answer = e.server_answer.clone().unwrap_or_default();
            let kind = if answer.starts_with(REFUSED_BY_OCT) {
                AttentionKind::RefusedByOct
            } else {
                AttentionKind::NotSent
            };
            let reason = match status {
                Status::Pending => "outcome unknown (interrupted while sending?): check, then \
                                    `svoct ps resend ID`"
                    .to_owned(),
                _ => format!("{}: {answer}", status.as_str()),
            };
            out.push(Attention {
                kind,
                entry: Some(e.id.0),
                what: e.subject.clone(),
                reason,
            });
        }
    }
    out.extend(refused_lots(notes));
    out.extend(lots.iter().map(|l| Attention {
        kind: AttentionKind::NegativeArl,
        entry: Some(l.entry.0),
        what: format!("lot {} of {}", l.number, l.date),
        reason: l.arl_reasons.join("; "),
    }));
    out.extend(invoices.iter().map(|i| Attention {
        kind: AttentionKind::RejectedInvoice,
        entry: Some(i.entry.0),
        what: format!(
            "invoice {} (lot {})",
            i.number,
            i.lot_number.as_deref().unwrap_or("?")
        ),
        reason: format!("{}: {}", i.state.as_str(), i.reasons.join("; ")),
    }));
    for m in ps.store().inbox().list_state(InboxState::Quarantined)? {
        out.push(Attention {
            kind: AttentionKind::SetAside,
            entry: Some(m.id.0),
            what: format!(
                "received {} ({})",
                m.classification.as_deref().unwrap_or("message"),
                crate::rfc3339(&m.received_at)
            ),
            reason: m.reason.clone().unwrap_or_default(),
        });
    }
    out.sort_by_key(|a| a.kind);
    Ok(out)
}

/// How a journal entry refused by the OCT begins its answer (set when its ART is processed).
pub const REFUSED_BY_OCT: &str = "refused by the OCT";

/// Lots an ART says the OCT refused while accepting the rest of the message.
fn refused_lots(notes: &[ReturnNote]) -> Vec<Attention> {
    let mut out = Vec::new();
    for n in notes.iter().filter(|n| n.kind == "ART") {
        let lots = n
            .detail
            .get("structured")
            .and_then(|s| s.get("lots"))
            .and_then(|l| l.as_array());
        for lot in lots.into_iter().flatten() {
            if lot.get("status").and_then(|s| s.as_str()) != Some("refused") {
                continue;
            }
            let field = |k: &str| lot.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            out.push(Attention {
                kind: AttentionKind::RefusedByOct,
                entry: None,
                what: format!(
                    "lot {} of message {}",
                    field("number"),
                    n.compostage.as_deref().unwrap_or("?")
                ),
                reason: field("detail"),
            });
        }
    }
    out
}

/// Whether `card` is on the local opposition list, and the list version (`svoct ps loi check`).
pub fn loi_check(ps: &Ps, card: &str) -> Result<LoiAnswer, PsError> {
    let loi = ps.store().loi();
    Ok(LoiAnswer {
        card: card.to_owned(),
        opposed: loi.is_opposed(card)?,
        version: loi.version()?,
        cards: loi.len()?,
        held: loi.held()?,
    })
}

/// The answer of [`loi_check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoiAnswer {
    pub card: String,
    pub opposed: bool,
    /// The list version (0: no increment received yet, the answer means little).
    pub version: u64,
    /// Number of cards on the list.
    pub cards: u64,
    /// Increments waiting for a missing predecessor.
    pub held: Vec<(u64, u64)>,
}

/// [`status`] as of the current time.
pub fn status_now(ps: &Ps) -> Result<StatusView, PsError> {
    status(ps, OffsetDateTime::now_utc())
}

/// A Unix-milliseconds timestamp of these views as RFC 3339 (empty when out of range).
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(|t| crate::rfc3339(&t))
        .unwrap_or_default()
}
