//! The concentrator's durable state: processed messages, the outbox, the quarantine, the lots the
//! OCT built itself and its counters. It lives in `svoct-store` (`svoct_store::oct`, with all
//! the SQL of the project), behind one boundary, [`OctStore`]; this module names it for the OCT.
//!
//! The service and the pipeline's environment take `&dyn OctStore`; only opening picks the
//! backend: [`State`], SQLite (`state.sqlite`), is the default.

pub use svoct_store::StoreError as StateError;
pub use svoct_store::oct::*;

use crate::config::QuarantineSettings;

/// The default backend of the state: SQLite.
pub type State = SqliteOctStore;

impl From<&QuarantineSettings> for QuarantineBound {
    fn from(settings: &QuarantineSettings) -> Self {
        QuarantineBound {
            max_bytes: settings.max_bytes,
            max_purged_rows: settings.max_purged_rows,
        }
    }
}
