//! The transmission module a billing software embeds: configuration and modes, sending in the
//! three options of the annex, the journal, retrieval and returns.
//!
//! - [`archive`]: the whole store in one tar of plain files and back (portable history).
//! - [`certificate`]: a recipient certificate checked when it is set.
//! - [`config`]: the TOML configuration, modes and OCT switching (R1, R2).
//! - [`plan`]: which files for which recipient in each mode and option (R3), pure logic.
//! - [`send`]: the [`Ps`] engine: build, journal, send, retry, resend (R5), dLOI request (R7.2).
//! - [`fetch`]: retrieval from POP3 or a Maildir, store-before-delete, classification (R4, R6).
//! - [`reconcile`]: the hook that processes classified returns: ARL and RSP reconciled with
//!   what was sent, ART recorded, dLOI increments applied.
//! - [`dloi_request`]: the dLOI request file (R7.2).
//! - [`status`]: lots and invoices with their states, worklists, LOI check.
//! - [`zone_input`]: lots handed over as a SESAM-Vitale API memory zone.
#![forbid(unsafe_code)]

pub mod archive;
pub mod certificate;
pub mod config;
pub mod dloi_request;
pub mod error;
pub mod fetch;
pub mod payload;
pub mod plan;
pub mod reconcile;
pub mod send;
pub mod status;
pub mod zone_input;

pub use error::PsError;
pub use fetch::FetchReport;
pub use plan::{LotFile, PlannedFile};
pub use send::{Ps, Sent};

/// A timestamp as RFC 3339 (`2026-11-26T06:11:46Z`), for listings.
pub fn rfc3339(t: &time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
