//! The simulated insurer (AM) and the one-command demo.
//!
//! Neither is part of what an OCT operator or a billing-software vendor deploys: the simulator
//! stands in for the insurers' systems so that the whole exchange can run on one machine.
#![forbid(unsafe_code)]

pub mod amsim;
pub mod demo;
pub mod report;
