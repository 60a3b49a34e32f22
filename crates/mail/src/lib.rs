//! Messages of the OCT exchanges, and moving them.
//!
//! - [`subject`]: subject lines and the compostage stamp.
//! - [`profile`]: the message profiles (headers, Content-Description table), build and parse.
//! - [`cms`]: attachment encryption (CMS EnvelopedData) with OpenSSL.
//! - [`compress`]: attachment compression and bounded decompression.
//! - [`transport`]: sending (the `Transport` trait; SMTP through lettre, a directory, memory).
//! - [`pop3`]: mailbox retrieval (sans-IO POP3 client core and a thin shell).
//! - [`maildir`]: a Maildir directory as a mailbox.
//! - [`secret`]: [`secret::Secret`], the redacting wrapper for passwords and keys.
//! - [`selfsigned`]: throw-away keys and self-signed certificates (the demo's and the tests').
#![forbid(unsafe_code)]

pub mod cms;
pub mod compress;
pub mod fsx;
pub mod maildir;
pub mod pop3;
pub mod profile;
pub mod secret;
pub mod selfsigned;
pub mod subject;
pub mod transport;
