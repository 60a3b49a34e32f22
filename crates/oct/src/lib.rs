//! The concentrator (OCT) service.
//!
//! - [`smtp`]: the sans-IO SMTP server state machine.
//! - [`ingress`]: the tokio shell around it that writes accepted messages to the spool.
#![forbid(unsafe_code)]

pub mod ingress;
pub mod smtp;
