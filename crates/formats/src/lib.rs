//! Sans-IO codecs for the data of SESAM-Vitale exchanges through an OCT.
//!
//! No sockets, no files: every codec takes and returns bytes.
//!
//! - [`layout`]: positional record layouts as data, shared by B2 and NOEMIE.
//! - [`zone`]: SESAM-Vitale API memory zones (groups and fields).
//! - [`b2`]: B2 128-byte records, lots and files; OCT single file; split by destination.
//! - [`noemie`]: NOEMIE-PS return files (RSP).
//! - [`arl`], [`art`], [`loi`]: acknowledgements, OCT text receipts, opposition-list increments.
//! - [`number`]: PS and sender numbers compared without their padding ([`PaddedNumber`]).
//! - [`Severity`]: error / warning / info, the weight of every format's findings.
#![forbid(unsafe_code)]

pub mod arl;
pub mod art;
pub mod b2;
pub mod layout;
pub mod loi;
pub mod noemie;
pub mod number;
pub mod severity;
pub mod zone;

pub use number::PaddedNumber;
pub use severity::Severity;
