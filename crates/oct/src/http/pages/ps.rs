//! `/ps/{ps_number}`: a practice's recent messages and their fate, from the processed index
//! and the trace data (found by PS number as `svoct oct trace` finds them).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};

use super::{Authed, error_page, layout, respond, when, with_db};
use crate::http::App;
use crate::state::MessageTrace;

/// Messages shown, the most recent ones.
const SHOWN: usize = 50;

fn valid_ps_number(ps: &str) -> bool {
    !ps.is_empty() && ps.len() <= 20 && ps.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `GET /ps/{ps_number}`.
pub(crate) async fn page(State(app): State<Arc<App>>, authed: Authed, Path(ps): Path<String>) -> Response {
    let s = &authed.session;
    if !valid_ps_number(&ps) {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(s),
            "a PS number is letters and digits",
        );
    }
    let ps2 = ps.clone();
    let found = match with_db(&app, s, move |config, db| {
        crate::operate::trace(config, db, &ps2, SHOWN)
    })
    .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    let body = html! {
        (account(&ps))
        h2 { "Recent messages" }
        @if found.messages.is_empty() { p id="nothing" { "No message of this PS is recorded." } }
        @else {
            table id="messages" {
                tr { th { "spool id" } th { "processed" } th { "outcome" } th { "subject" } th { "lots" } th { "fate" } }
                @for t in found.messages.iter().rev() { (row(t)) }
            }
        }
        @if found.truncated { p { "Older messages are not listed: trace them by spool id or compostage." } }
    };
    respond(StatusCode::OK, layout(&format!("PS {ps}"), Some(s), body))
}

/// The PS's account. The accounts (and their suspend / resume actions) come with the
/// practices directory (`svoct oct ps`, issue 14 point 8), developed in parallel: its status
/// and forms go here once merged. Until then this page knows the PS by its messages only.
fn account(ps: &str) -> Markup {
    html! {
        section id="account" {
            p { "PS number " code { (ps) } ". Account settings: see the OCT configuration (" code { "[[sender]]" } ")." }
        }
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
