//! The concentrator (OCT) service.
//!
//! - [`inbound`]: the SMTP server: the sans-IO session ([`inbound::session`]) and the tokio
//!   listener around it that writes accepted messages to the spool ([`inbound::listener`]).
//! - [`config`]: the service configuration (TOML).
//! - [`fidelity`]: annex rules checked on invoice files (other OCT, R3.4 exclusivity, echo).
//! - [`pipeline`]: processing one spooled message (split, forward, ART, relay).
//! - [`http`]: the HTTP listener: `/metrics`, `/healthz` and the web console.
//! - [`operate`]: the operator's actions and look-ups, shared by the CLI and the console.
//! - [`receipt`]: the content of the ART.
//! - [`relay_formats`]: what the relay reads inside ARL, RSP and dLOI files, and the dLOI answer.
//! - [`service`]: the running concentrator: ingress, workers, outbox sender, shutdown.
//! - [`state`]: the pipeline's SQLite state: processed messages, outbox, quarantine.
#![forbid(unsafe_code)]

pub mod config;
pub mod fidelity;
pub mod http;
pub mod inbound;
pub mod instance;
pub mod operate;
pub mod pipeline;
pub mod practices;
pub mod preflight;
pub mod receipt;
pub mod relay_formats;
pub mod service;
pub mod state;
