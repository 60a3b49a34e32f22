//! `svoct inspect FILE [--json]`: tell what a file is and show it field by field.
//!
//! The dispatcher is a list of detectors, [`DETECTORS`]: each is one `fn(&[u8]) -> Option<Detected>`
//! that returns `None` when the bytes are not its format, and a [`Detected`] report (valid or not)
//! when they are. Adding a format (NOEMIE, ARL, ART, dLOI, `.eml` messages) is one function in a
//! submodule under `inspect/` and one line in [`DETECTORS`]. Order matters: put detectors that
//! recognise a precise signature before lenient ones; the memory-zone detector stays last because
//! binary input with a small first byte is all it asks for.
//!
//! Order (first match wins): `.eml` messages (a header line first), NOEMIE (`NNNN000` line
//! packaging, or a `000` header whose reference 62-64 is digits and whose 66-67 is not `B2`), B2
//! (`000` with `B2` at 66-67, or bare lots starting with `1`), ARL (`ARL`), ART (the
//! `-----BEGIN SVOCT ART 1-----` block), dLOI files (`DLOI;` / `LOI;`), memory zones.
//!
//! Messages: with `--key KEY --cert CERT` the attachment is decrypted and decompressed, then
//! inspected by the same detectors (one level deep) and, when it is B2, the subject's invoice
//! count and `exercice` are checked against it.
//!
//! Exit status: 0 when the input is valid; otherwise the report is still printed on stdout and
//! the one-line reason goes to stderr through the binary's `svoct: <error>` path.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use serde_json::{Map, Value};
use svoct_mail::cms::PrivateKeyAndCert;

use crate::CmdResult;

mod arl;
mod art;
mod b2;
mod loi;
mod message;
mod noemie;
mod zone;

/// Largest file `inspect` reads (1 GiB): B2 inputs are bounded to that too.
pub const MAX_FILE_LEN: u64 = 1 << 30;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to inspect (`-` for stdin).
    pub file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show at most this many records (B2) or groups (memory zone) field by field.
    #[arg(long, default_value_t = 200)]
    pub max_items: usize,
    /// Messages: the private key (PEM, mode 0600 or stricter) to decrypt the attachment.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Messages: the certificate (PEM) that goes with `--key`.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
}

/// What a detector found.
#[derive(Debug)]
pub struct Detected {
    /// Stable format name: `ssv-zone`, `b2-lots`, `b2-file`, ...
    pub format: &'static str,
    /// The JSON report, without `format` and `valid` (added by the dispatcher).
    pub json: Map<String, Value>,
    /// The human report.
    pub text: String,
    /// `Some(one-line reason)` when the input is of this format but invalid.
    pub problem: Option<String>,
}

/// How much of the content a detector should render field by field.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_items: usize,
    /// The key that opens encrypted message attachments (its Debug output is redacted).
    pub key: Option<Rc<PrivateKeyAndCert>>,
    /// Nesting depth: 0 for the file itself, 1 inside a message. Messages are opened only at
    /// depth 0, so a message inside a message is reported but not opened again.
    pub depth: u8,
}

impl Options {
    /// The options for bytes found inside the current input.
    pub fn nested(&self) -> Options {
        Options {
            depth: self.depth.saturating_add(1),
            ..self.clone()
        }
    }
}

/// A detector: `None` if `bytes` are not its format.
pub type Detector = fn(&[u8], &Options) -> Option<Detected>;

/// Every known format, most specific first.
pub const DETECTORS: &[Detector] = &[
    message::detect,
    noemie::detect,
    b2::detect,
    arl::detect,
    art::detect,
    loi::detect,
    zone::detect,
];

pub fn run(args: Args) -> CmdResult {
    let bytes = read_bounded(&args.file)?;
    let key = match (&args.key, &args.cert) {
        (Some(k), Some(c)) => Some(Rc::new(PrivateKeyAndCert::from_files(k, c).map_err(|e| {
            format!(
                "cannot load key {} / certificate {}: {e}",
                k.display(),
                c.display()
            )
        })?)),
        _ => None,
    };
    let opts = Options {
        max_items: args.max_items,
        key,
        depth: 0,
    };
    let detected = detect(&bytes, &opts).ok_or_else(|| {
        format!(
            "{}: unrecognised format ({} bytes; first bytes {})",
            args.file.display(),
            bytes.len(),
            hex(bytes.get(..8).unwrap_or(&bytes))
        )
    })?;
    if args.json {
        println!(
            "{}",
            to_json(detected.format, detected.problem.is_none(), detected.json)
        );
    } else {
        print!("{}", detected.text);
    }
    match detected.problem {
        None => Ok(ExitCode::SUCCESS),
        Some(reason) => Err(format!("{}: invalid {}: {reason}", args.file.display(), detected.format).into()),
    }
}

/// The JSON object of a report: `format`, `valid`, then the detector's keys.
pub fn to_json(format: &str, valid: bool, json: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("format".into(), format.into());
    obj.insert("valid".into(), valid.into());
    obj.extend(json);
    Value::Object(obj)
}

/// A serialisable report as a JSON map without its `format` key (the dispatcher writes it).
pub(crate) fn map_of<T: serde::Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(mut m)) => {
            m.remove("format");
            m
        }
        _ => Map::new(),
    }
}

/// A fixed-position record field by field, with the layout's names and labels (blank fillers
/// left out). A field named `password` (NOEMIE's *mot de passe*) is never shown.
pub(crate) fn layout_text(out: &mut String, layout: &svoct_formats::layout::Layout, rec: &[u8]) {
    for f in layout.fields {
        let value = String::from_utf8_lossy(f.raw(rec).unwrap_or_default());
        if f.name.starts_with("filler") && value.trim().is_empty() {
            continue;
        }
        if f.name == "password" {
            let shown = if value.trim().is_empty() {
                "(blank)"
            } else {
                "(redacted)"
            };
            let _ = writeln!(
                out,
                "    {:>3}-{:<3} {:<24} {shown}  ({})",
                f.from, f.to, f.name, f.label
            );
            continue;
        }
        let _ = writeln!(
            out,
            "    {:>3}-{:<3} {:<24} {:?}  ({})",
            f.from, f.to, f.name, value, f.label
        );
    }
}

/// Does `haystack` contain `needle`?
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Run the detectors in order; the first that recognises the bytes wins.
pub fn detect(bytes: &[u8], opts: &Options) -> Option<Detected> {
    DETECTORS.iter().find_map(|d| d(bytes, opts))
}

/// Read a file (or stdin for `-`), refusing anything larger than [`MAX_FILE_LEN`].
fn read_bounded(path: &PathBuf) -> Result<Vec<u8>, String> {
    let name = path.display();
    let mut buf = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_FILE_LEN + 1)
            .read_to_end(&mut buf)
    } else {
        let file = std::fs::File::open(path).map_err(|e| format!("cannot open {name}: {e}"))?;
        if let Ok(meta) = file.metadata()
            && meta.len() > MAX_FILE_LEN
        {
            return Err(format!(
                "{name}: {} bytes exceeds the limit of {MAX_FILE_LEN} bytes",
                meta.len()
            ));
        }
        file.take(MAX_FILE_LEN + 1).read_to_end(&mut buf)
    };
    read.map_err(|e| format!("cannot read {name}: {e}"))?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(format!("{name}: more than {MAX_FILE_LEN} bytes"));
    }
    Ok(buf)
}

/// Lower-case hex, for binary values.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_text_never_shows_a_password() {
        let mut header = b"000CP00000000000751".to_vec();
        header.resize(128, b' ');
        header[85..91].copy_from_slice(b"S3CRET");
        let mut out = String::new();
        layout_text(&mut out, &svoct_formats::noemie::layouts::H000, &header);
        assert!(!out.contains("S3CRET"), "{out}");
        assert!(out.contains("password") && out.contains("(redacted)"), "{out}");
        assert!(out.contains("sender_number"), "{out}");
    }

    #[test]
    fn contains_finds_needles() {
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(!contains(b"abc", b""));
    }
}
