//! The concentrator's SMTP server (inbound mail).
//!
//! - [`session`]: the sans-IO SMTP server state machine (every protocol decision, no socket).
//! - [`listener`]: the tokio shell around it: sockets, limits, timeouts, TLS, writing accepted
//!   messages to the spool.
//!
//! (This is the server side. The SMTP *client* the OCT delivers with is
//! `svoct_mail::transport::smtp`.)

pub mod listener;
pub mod session;
