//! `/ps/{ps_number}`: a practice's account (state, the suspend, resume and remove actions, its audit
//! trail; `svoct oct ps show`) and its recent messages with their fate, from the processed index
//! and the trace data (found by PS number as `svoct oct trace` finds them).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::queue::{Done, done_message};
use super::{Authed, action_form, error_page, layout, respond, when, with_db};
use crate::http::App;
use crate::http::auth::Session;
use crate::operate::TraceFound;
use crate::practices::{self, PracticeError, PracticeView};
use crate::state::{MessageTrace, PracticeState};

/// Messages shown, the most recent ones.
const SHOWN: usize = 50;
/// Audit lines shown, the most recent ones.
const AUDIT_SHOWN: usize = 10;

/// Whether `ps` can be a PS number (letters and digits): what the page and its actions accept.
pub(crate) fn valid_ps_number(ps: &str) -> bool {
    !ps.is_empty() && ps.len() <= 20 && ps.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `GET /ps/{ps_number}` (`?done=` after an action).
pub(crate) async fn page(
    State(app): State<Arc<App>>,
    authed: Authed,
    Path(ps): Path<String>,
    Query(done): Query<Done>,
) -> Response {
    let s = &authed.session;
    if !valid_ps_number(&ps) {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(s),
            "a PS number is letters and digits",
        );
    }
    let ps2 = ps.clone();
    let found = with_db(&app, s, move |config, db| {
        let account = match practices::show(db, &ps2, 0) {
            Ok(v) => Some(v),
            Err(PracticeError::NotFound(_)) => None,
            Err(PracticeError::State(e)) => return Err(e.into()),
            Err(e) => return Err(crate::operate::OperateError::NotFound(e.to_string())),
        };
        Ok((account, crate::operate::trace(config, db, &ps2, SHOWN)?))
    })
    .await;
    let (account, found) = match found {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = html! {
        @if let Some(m) = done_message(&done) { p class="msg" id="done" { (m) } }
        (account_section(s, &ps, account.as_ref()))
        (messages(&found))
    };
    respond(StatusCode::OK, layout(&format!("PS {ps}"), Some(s), body))
}

/// The account: registered or not, its state and the action that changes it, its audit trail.
fn account_section(s: &Session, ps: &str, account: Option<&PracticeView>) -> Markup {
    let base = format!("/ps/{ps}");
    html! {
        section id="account" {
            h2 { "Account" }
            @match account {
                None => p id="unregistered" { "Not registered: no practice has PS number " code { (ps) } ", its messages are refused (" code { "unknown_sender" } "). " a id="register" href=(format!("/ps?ps_number={ps}#add")) { "Add it" } " (or " code { "svoct oct ps add" } ")." },
                Some(v) => {
                    table {
                        tr { th { "address" } td { (v.practice.fields.address) } }
                        tr { th { "sender number" } td { (v.practice.fields.sender_number) } }
                        tr { th { "category" } td { (v.practice.fields.category) } }
                        tr { th { "state" } td id="ps-state" { (v.practice.state.as_str()) @if let Some(r) = &v.practice.state_reason { " (" (r) ")" } } }
                    }
                    @if v.practice.state == PracticeState::Active {
                        (action_form(s, &base, "suspend", "Suspend", Some("Suspend (its invoices refused), because:")))
                    } @else {
                        p { (action_form(s, &base, "resume", "Resume", None)) }
                    }
                    (action_form(s, &base, "remove", "Remove", Some("Remove the account (its messages then refused as from an unknown sender; the audit trail stays), because:")))
                    h3 { "Audit trail (latest " (AUDIT_SHOWN) ")" }
                    table id="audit" {
                        tr { th { "when" } th { "who" } th { "what" } th { "change" } }
                        @for a in v.audit.iter().rev().take(AUDIT_SHOWN) {
                            tr { td { (when(a.at)) } td { (a.actor) } td { (a.action) } td { (a.change) } }
                        }
                    }
                }
            }
        }
    }
}

fn messages(found: &TraceFound) -> Markup {
    html! {
        h2 { "Recent messages" }
        @if found.messages.is_empty() { p id="nothing" { "No message of this PS is recorded." } }
        @else {
            table id="messages" {
                tr { th { "spool id" } th { "processed" } th { "outcome" } th { "subject" } th { "lots" } th { "fate" } }
                @for t in found.messages.iter().rev() { (row(t)) }
            }
        }
        @if found.truncated { p { "Older messages are not listed: trace them by spool id or compostage." } }
    }
}

fn row(t: &MessageTrace) -> Markup {
    let fate: Vec<String> = t
        .outbox
        .iter()
        .map(|o| format!("{} to {}: {}", o.kind, o.rcpt, o.state))
        .collect();
    html! {
        tr {
            td { a href=(format!("/trace?q={}", t.spool_id)) { (t.spool_id) } }
            td { (t.processed.as_ref().map(|p| when(p.at)).unwrap_or_default()) }
            td {
                (t.processed.as_ref().map(|p| p.outcome.as_str()).unwrap_or("not recorded"))
                @if let Some(q) = &t.quarantine { " (" a href=(format!("/quarantine/{}", q.id)) { (q.code) } ")" }
            }
            td { (t.processed.as_ref().map(|p| p.subject.as_str()).unwrap_or_default()) }
            td { (t.lots.iter().map(|l| l.lot_number.as_str()).collect::<Vec<_>>().join(", ")) }
            td { @for f in &fate { (f) br; } }
        }
    }
}
