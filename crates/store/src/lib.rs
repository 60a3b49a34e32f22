//! The journal and the spool, in SQLite.
//!
//! One crate so that another backend can follow behind the same types.
#![forbid(unsafe_code)]

pub mod compostage;
pub mod db;
pub mod inbox;
pub mod journal;
pub mod spool;
