//! What the OCT's web console reads besides the trace, queue and quarantine: aggregates over
//! time. A sub-trait so that [`super::OctStore`] stays what the service needs.

use crate::StoreError;

/// Messages committed in one hour, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HourFlow {
    /// Start of the hour, seconds since the Unix epoch.
    pub hour: i64,
    /// Committed and not quarantined.
    pub processed: u64,
    /// Quarantined.
    pub quarantined: u64,
}

/// Read-only aggregates for the console.
pub trait ConsoleQueries {
    /// Messages committed since `since` (epoch seconds), per hour, oldest first; hours with no
    /// message are absent.
    fn flow_per_hour(&self, since: i64) -> Result<Vec<HourFlow>, StoreError>;
}
