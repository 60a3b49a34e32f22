//! The dLOI request file (R7.2), **provisional**.
//!
//! The request's format lives in annex 4 of the specification, which is not public; the project's
//! provisional dLOI formats belong to `svoct_formats::loi`. Until that module offers a request
//! builder, this one function writes the request as one text line, so that the rest of the PS
//! module (subject, encryption, journal, sending) does not depend on the format:
//!
//! ```text
//! DLOI-REQUEST/1 <sender number> <PS number>\r\n
//! ```

use crate::config::Config;
use crate::error::PsError;

/// The request file to attach to the dLOI request message.
pub fn request_file(config: &Config) -> Result<Vec<u8>, PsError> {
    Ok(format!(
        "DLOI-REQUEST/1 {} {}\r\n",
        config.identity.sender_number, config.identity.ps_number
    )
    .into_bytes())
}
