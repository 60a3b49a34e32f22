//! The PS configuration (`ps.toml`) the tests start from: one copy instead of one per test file.
//!
//! Text, not `svoct_ps::config::Config`: the test kit cannot depend on `svoct-ps`, whose own unit
//! tests use it. Callers append their sections (`[oct]`, `[direct.routes]`, `[network.mailbox]`,
//! `[decryption]` ...) and parse or load the result with `svoct-ps`.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// The test PS's number (also its file sender number).
pub const PS_NUMBER: &str = "123456789";

/// The test OCT's mailbox and SIRET-like identifier, as the `[oct]` section gives them.
pub const OCT_ADDRESS: &str = "oct@oct.invalid";
pub const OCT_IDENTIFIER: &str = "12345678900014";

/// `mode`, `store`, the `[identity]` of PS [`PS_NUMBER`] (`ps@ps.invalid`) and
/// `[network.smtp]` on `127.0.0.1:smtp_port`. The text ends inside `[network.smtp]`, so a caller
/// may add keys of that table (`tls = "none"`) before its own sections.
pub fn base(mode: &str, store: &str, smtp_port: u16) -> String {
    format!(
        r#"mode = "{mode}"
store = "{store}"
[identity]
sender_number = "{PS_NUMBER}"
ps_number = "{PS_NUMBER}"
from = "ps@ps.invalid"
[network.smtp]
host = "127.0.0.1"
port = {smtp_port}
"#
    )
}

/// An `[oct]` section for the test OCT, encrypting for `certificate`, sending with `option`
/// (`single`, `split`, `enriched`). Ends inside `[oct]`, for further keys of that table.
pub fn oct_section(certificate: impl Display, option: &str) -> String {
    format!(
        "[oct]\naddress = \"{OCT_ADDRESS}\"\ncertificate = \"{certificate}\"\n\
         identifier = \"{OCT_IDENTIFIER}\"\noption = \"{option}\"\n"
    )
}

/// Writes `text` as `dir/ps.toml`; returns its path.
pub fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("ps.toml");
    std::fs::write(&path, text).expect("writing ps.toml");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_the_documented_toml() {
        let text = base("oct", "ps.sqlite", 2525) + "tls = \"none\"\n" + &oct_section("oct.crt", "single");
        let v: toml::Table = text.parse().unwrap();
        assert_eq!(v["mode"].as_str(), Some("oct"));
        assert_eq!(v["identity"]["ps_number"].as_str(), Some("123456789"));
        assert_eq!(v["network"]["smtp"]["port"].as_integer(), Some(2525));
        assert_eq!(v["network"]["smtp"]["tls"].as_str(), Some("none"));
        assert_eq!(v["oct"]["certificate"].as_str(), Some("oct.crt"));
        assert_eq!(v["oct"]["identifier"].as_str(), Some("12345678900014"));
    }
}
