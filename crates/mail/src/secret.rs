//! [`Secret`]: the one redacting wrapper for passwords and key material in the whole project.
//!
//! Why one type: the PS configuration, the OCT configuration, the POP3/SMTP credentials and the
//! CMS private key all hold values that must never reach a log line, a `Debug` dump, an error
//! message or a JSON status. One wrapper means one place to audit (docs/security.md).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// What a [`Secret`] does with its content when it is dropped.
///
/// Strings and byte buffers are overwritten (`zeroize`); an OpenSSL private key is freed by
/// OpenSSL, which clears the key material itself (`BN_clear_free`).
pub trait Wipe {
    /// Overwrites the value's memory before it is released.
    fn wipe(&mut self);
}

impl Wipe for String {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for Vec<u8> {
    fn wipe(&mut self) {
        self.zeroize();
    }
}

impl Wipe for openssl::pkey::PKey<openssl::pkey::Private> {
    fn wipe(&mut self) {}
}

/// A value that must never be printed: `Debug`, `Display` and serialisation show `[redacted]`;
/// deserialisation reads the plain value (a password in a TOML file); the memory is wiped on drop.
/// [`Secret::expose`] is the one, greppable, way to read it.
pub struct Secret<T: Wipe = String>(T);

impl<T: Wipe> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the code that really needs it (an authentication exchange, a
    /// decryption).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Wipe> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: Wipe> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Wipe> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: Wipe + Clone> Clone for Secret<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Wipe + Default> Default for Secret<T> {
    fn default() -> Self {
        Self(T::default())
    }
}

impl<T: Wipe + PartialEq> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Wipe + Eq> Eq for Secret<T> {}

impl<T: Wipe> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de, T: Wipe + Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Self)
    }
}

/// Removes authentication material from a server reply before it is logged, stored or shown.
///
/// This is the one function every path that keeps a server's text goes through (SMTP replies in
/// [`crate::transport::SendError`], POP3 `-ERR` texts in [`crate::pop3::Pop3Error`]): a server that
/// echoes the client's `AUTH PLAIN` line in its `535` would otherwise put the password, base64
/// encoded, into the OCT's log, its state database and `svoct oct status`.
///
/// What is replaced by `[redacted]`:
/// - the rest of the line after `AUTH <mechanism>` and after `PASS` / `APOP <user>` (echoed commands);
/// - every word that is valid base64 and decodes to bytes holding a NUL (a SASL PLAIN response)
///   or holding one of the `secrets`;
/// - every occurrence of a secret, of its base64 form, and of the base64 forms of the PLAIN
///   responses built from `user` and the secret.
pub fn scrub_reply(reply: &str, user: Option<&str>, secrets: &[&Secret]) -> String {
    let mut out = String::with_capacity(reply.len());
    for (i, line) in reply.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&scrub_line(line, secrets));
    }
    for needle in secret_forms(user, secrets) {
        if !needle.is_empty() {
            out = out.replace(&needle, REDACTED);
        }
    }
    out
}

const REDACTED: &str = "[redacted]";

/// The literal forms a secret can take in an echoed authentication exchange.
fn secret_forms(user: Option<&str>, secrets: &[&Secret]) -> Vec<String> {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut forms = Vec::new();
    for s in secrets {
        let pw = s.expose();
        forms.push(b64(format!("\0{}\0{pw}", user.unwrap_or("")).as_bytes()));
        if let Some(u) = user {
            forms.push(b64(format!("{u}\0{u}\0{pw}").as_bytes()));
        }
        forms.push(b64(pw.as_bytes()));
        // Unpadded base64 of the password is a prefix of its padded form: catches both.
        forms.push(b64(pw.as_bytes()).trim_end_matches('=').to_owned());
        forms.push(pw.clone());
    }
    // Longest first, so that a password inside a base64 form does not break the longer match.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms
}

/// One line: echoed commands cut after their verb, suspicious base64 words redacted.
fn scrub_line(line: &str, secrets: &[&Secret]) -> String {
    let upper = line.to_ascii_uppercase();
    // `AUTH PLAIN xxx`, `AUTH LOGIN xxx`: keep the mechanism, drop what follows.
    let cut = find_word(&upper, "AUTH")
        .map(|at| {
            let after = &upper[at + 4..];
            let mech_start = at + 4 + (after.len() - after.trim_start().len());
            let mech_len = upper[mech_start..]
                .find(|c: char| c.is_whitespace())
                .unwrap_or(upper.len() - mech_start);
            mech_start + mech_len
        })
        .or_else(|| find_word(&upper, "PASS").map(|at| at + 4))
        .or_else(|| {
            // `APOP user digest`: keep the user, drop the digest.
            find_word(&upper, "APOP").map(|at| {
                let rest = &upper[at + 4..];
                let user_start = at + 4 + (rest.len() - rest.trim_start().len());
                user_start
                    + upper[user_start..]
                        .find(|c: char| c.is_whitespace())
                        .unwrap_or(upper.len() - user_start)
            })
        });
    let (head, tail) = match cut {
        Some(at) if at < line.len() && !line[at..].trim().is_empty() => (&line[..at], true),
        _ => (line, false),
    };
    let mut out: String = head
        .split_inclusive(|c: char| !is_base64_char(c))
        .map(|word| {
            let (body, sep) = match word.char_indices().last() {
                Some((i, c)) if !is_base64_char(c) => (&word[..i], &word[i..]),
                _ => (word, ""),
            };
            if decodes_to_auth_material(body, secrets) {
                format!("{REDACTED}{sep}")
            } else {
                word.to_owned()
            }
        })
        .collect();
    if tail {
        out.push(' ');
        out.push_str(REDACTED);
    }
    out
}

/// Where `word` starts as a whole word (not inside `AUTHENTICATION` or `PASSWORD`), if it does.
fn find_word(upper: &str, word: &str) -> Option<usize> {
    let bytes = upper.as_bytes();
    upper.match_indices(word).map(|(i, _)| i).find(|&i| {
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let after = bytes.get(i + word.len());
        let after_ok = after.is_none_or(|b| b.is_ascii_whitespace());
        before_ok && after_ok
    })
}

fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')
}

/// Whether a base64-looking word decodes to a SASL response (a NUL byte) or to a secret.
fn decodes_to_auth_material(word: &str, secrets: &[&Secret]) -> bool {
    use base64::Engine as _;
    if word.len() < 4 {
        return false;
    }
    let engine = &base64::engine::general_purpose::STANDARD;
    let padded = format!("{word}{}", "=".repeat((4 - word.len() % 4) % 4));
    let Ok(bytes) = engine.decode(padded.as_bytes()) else {
        return false;
    };
    bytes.contains(&0)
        || secrets.iter().any(|s| {
            let pw = s.expose().as_bytes();
            !pw.is_empty() && bytes.windows(pw.len()).any(|w| w == pw)
        })
}

/// Key names whose values are secrets in the configuration files (`password`, ...).
pub const SECRET_KEYS: &[&str] = &["password", "passphrase", "secret", "token"];

/// The text of a configuration syntax error, fit to print: where it is and what is wrong, but
/// never the offending line, and not even the parser's message when the error is on a line that
/// sets a secret key (a wrongly typed password would be quoted in it).
///
/// `span` is the byte range the parser blames in `text` (`toml::de::Error::span`).
pub fn config_error_text(text: &str, span: Option<std::ops::Range<usize>>, message: &str) -> String {
    let Some(span) = span.filter(|s| s.start <= text.len()) else {
        return one_line(message);
    };
    let before = &text[..span.start];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let end = span.end.clamp(span.start, text.len());
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let blamed = text.get(line_start..line_end).unwrap_or("").to_ascii_lowercase();
    if let Some(key) = SECRET_KEYS.iter().find(|k| blamed.contains(**k)) {
        return format!(
            "line {line_no}, column {column}: invalid line setting a secret ({key}); its value is not shown"
        );
    }
    format!("line {line_no}, column {column}: {}", one_line(message))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Conf {
        user: String,
        password: Secret,
    }

    fn pw() -> Secret {
        Secret::new("pa55-very-secret".to_owned())
    }

    #[test]
    fn an_echoed_auth_plain_line_is_scrubbed() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let plain = b64("\0oct\0pa55-very-secret");
        let pw = pw();
        for reply in [
            format!("535 5.7.8 AUTH PLAIN {plain}"),
            format!("535 5.7.8 authentication failed for <{plain}>"),
            format!("535 5.7.8 bad credentials {}", b64("oct\0oct\0pa55-very-secret")),
            format!("535 5.7.8 LOGIN {} refused", b64("pa55-very-secret")),
            "535 5.7.8 password pa55-very-secret refused".to_owned(),
            format!("535-5.7.8 first line\n535 5.7.8 auth login {}", b64("x")),
        ] {
            let out = scrub_reply(&reply, Some("oct"), &[&pw]);
            assert!(!out.contains("pa55"), "{out}");
            assert!(!out.contains(&plain), "{out}");
            assert!(!out.contains(&b64("pa55-very-secret")), "{out}");
            assert!(out.contains("[redacted]"), "{out}");
            assert!(out.starts_with("535"), "{out}");
        }
        // Without knowing the secret, an echoed SASL response (it holds NUL bytes) still goes.
        let out = scrub_reply(&format!("535 rejected {plain} now"), None, &[]);
        assert_eq!(out, "535 rejected [redacted] now");
        let out = scrub_reply("-ERR PASS hunter2 wrong", None, &[]);
        assert_eq!(out, "-ERR PASS [redacted]");
    }

    proptest::proptest! {
        /// Any server text, however hostile, is scrubbed without a panic and never keeps the
        /// password it was given.
        #[test]
        fn any_reply_is_scrubbed_without_panic(reply in "\\PC{0,200}", cut in 0usize..200) {
            let pw = pw();
            let mut text = reply.clone();
            let at = text.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(text.len());
            text.insert_str(at, "pa55-very-secret");
            let out = scrub_reply(&text, Some("oct"), &[&pw]);
            proptest::prop_assert!(!out.contains("pa55-very-secret"));
            let _ = scrub_reply(&reply, None, &[]);
        }
    }

    #[test]
    fn ordinary_replies_are_unchanged() {
        let pw = pw();
        for reply in [
            "250 OK id=1xWSHV-0003WJ-16",
            "550 5.1.1 <cpam@am.example>: unknown mailbox",
            "535 5.7.8 Authentication failed",
            "-ERR [AUTH] Authentication failed.",
            "451 Temporary local problem - please try later",
        ] {
            assert_eq!(scrub_reply(reply, Some("oct"), &[&pw]), reply);
        }
    }

    #[test]
    fn config_errors_never_show_a_secret_value() {
        let text = "[delivery.smtp]\nhost = \"h\"\npassword = \"pa55-very-secret\n";
        let err = toml::from_str::<toml::Value>(text).unwrap_err();
        assert!(
            err.to_string().contains("pa55"),
            "the raw toml error quotes the line"
        );
        let shown = config_error_text(text, err.span(), err.message());
        assert!(!shown.contains("pa55"), "{shown}");
        assert!(shown.starts_with("line 3, column"), "{shown}");

        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Typed {
            password: String,
        }
        let text = "password = 123456789\n";
        let err = toml::from_str::<Typed>(text).unwrap_err();
        let shown = config_error_text(text, err.span(), err.message());
        assert!(!shown.contains("123456789"), "{shown}");

        // Errors on other lines keep the parser's message, without the line itself.
        let text = "host = \"h\"\nport = \"x\"\n";
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Port {
            host: String,
            port: u16,
        }
        let err = toml::from_str::<Port>(text).unwrap_err();
        let shown = config_error_text(text, err.span(), err.message());
        assert!(shown.starts_with("line 2, column 8: "), "{shown}");
        assert!(!shown.contains('|'), "{shown}");
    }

    #[test]
    fn never_printed_nor_serialised() {
        let c: Conf = serde_json::from_str(r#"{"user":"ps1","password":"hunter2"}"#).unwrap();
        assert_eq!(c.password.expose(), "hunter2");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("[redacted]"), "{dbg}");
        assert_eq!(c.password.to_string(), "[redacted]");
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"user":"ps1","password":"[redacted]"}"#);
    }

    #[test]
    fn bytes_and_equality() {
        let a = Secret::new(b"key".to_vec());
        let b = a.clone();
        assert_eq!(a, b);
        assert_eq!(b.expose().as_slice(), b"key");
        assert_eq!(format!("{a:?}"), "[redacted]");
        assert_ne!(Secret::new("x".to_owned()), Secret::default());
    }

    #[test]
    fn wipe_clears_a_string() {
        let mut s = String::from("hunter2");
        s.wipe();
        assert!(s.is_empty());
    }
}
