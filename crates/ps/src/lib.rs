//! The transmission module a billing software embeds: configuration and modes, sending in the
//! three options of the annex, the journal, retrieval and returns.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod plan;

pub use error::PsError;
