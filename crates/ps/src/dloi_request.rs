//! The dLOI request file (R7.2), in the project's **provisional** format
//! (`docs/formats/loi.md`, built by `svoct_formats::loi::DloiRequest`): "send me the increments
//! after the version I hold".

use svoct_formats::loi::{DateTime, DloiRequest};
use time::OffsetDateTime;

use svoct_mail::transport::Transport;

use crate::config::Config;
use crate::error::PsError;
use crate::send::{Ps, Sent};

impl Ps {
    /// Sends the dLOI request asking for the increments after the list version this store
    /// holds (R7.2): the version the last applied increment brought, 0 before any. Increments
    /// held for a missing predecessor do not count: the OCT must send that predecessor.
    pub fn request_loi_after_held(&self, transport: &dyn Transport) -> Result<Sent, PsError> {
        let version = self.store().loi().version()?;
        self.request_loi(transport, version)
    }
}

/// The request file for the PS of `config`, holding list `version` (0 = none yet), dated `now`.
pub fn request_file(config: &Config, version: u64, now: OffsetDateTime) -> Result<Vec<u8>, PsError> {
    let request = DloiRequest {
        ps_number: config.identity.ps_number.clone(),
        version,
        at: DateTime {
            year: u16::try_from(now.year()).unwrap_or(0),
            month: u8::from(now.month()),
            day: now.day(),
            hour: now.hour(),
            minute: now.minute(),
            second: now.second(),
        },
    };
    request
        .build()
        .map_err(|e| PsError::Other(format!("dLOI request: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_through_the_formats_parser() {
        let c = Config::parse(crate::config::EXAMPLE).unwrap();
        let now = time::macros::datetime!(2026-11-26 06:45:10 UTC);
        let bytes = request_file(&c, 42, now).unwrap();
        let back = DloiRequest::parse(&bytes).unwrap();
        assert_eq!(back.ps_number, "123456789");
        assert_eq!(back.version, 42);
        assert_eq!((back.at.year, back.at.month, back.at.day), (2026, 11, 26));
        assert_eq!((back.at.hour, back.at.minute, back.at.second), (6, 45, 10));
    }
}
