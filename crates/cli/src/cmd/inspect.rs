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
//! `-----BEGIN SVOCT ART 1-----` block), dLOI files (`DLOI;` / `LOI;`), memory zones. A payload
//! file of `svoct ps` (a first line of JSON, then the file sent) is recognised after messages and
//! its file inspected by the same detectors.
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
mod payload;
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
    payload::detect,
    noemie::detect,
    b2::detect,
    arl::detect,
    art::detect,
    loi::detect,
    zone::detect,
];

pub fn run(args: Args) -> CmdResult {
    let bytes = read_bounded(&args.file)?;
    // A large NOEMIE return is written out as it is read, from the input itself, instead of
    // being built whole first (see `noemie::stream`). Nothing claims `NNNN000` / `000` bytes
    // before the NOEMIE detector except a message, whose first line is a header.
    if noemie::looks_like_noemie(&bytes) && !message::looks_like_message(&bytes) {
        let opts = Options {
            max_items: args.max_items,
            key: None,
            depth: 0,
        };
        let out = std::io::stdout().lock();
        let problem = noemie::stream(bytes, &opts, args.json, out)
            .map_err(|e| format!("cannot write the report: {e}"))?;
        return match problem {
            None => Ok(ExitCode::SUCCESS),
            Some(reason) => Err(format!("{}: invalid noemie: {reason}", args.file.display()).into()),
        };
    }
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
        crate::json::print(&to_json(
            detected.format,
            detected.problem.is_none(),
            detected.json,
        ))?;
    } else {
        print!("{}", detected.text);
    }
    match detected.problem {
        None => Ok(ExitCode::SUCCESS),
        Some(reason) => Err(format!("{}: invalid {}: {reason}", args.file.display(), detected.format).into()),
    }
}

/// The JSON object of a report: `format`, `valid`, then the detector's keys. Every finding gets
/// a `severity` ([`with_severity`]).
pub fn to_json(format: &str, valid: bool, mut json: Map<String, Value>) -> Value {
    if let Some(f) = json.get_mut("findings") {
        with_severity(f);
    }
    let mut obj = Map::new();
    obj.insert("format".into(), format.into());
    obj.insert("valid".into(), valid.into());
    obj.extend(json);
    Value::Object(obj)
}

/// Give every finding of a `findings` array a `severity`. NOEMIE and message findings carry
/// their own; the other formats (B2, ARL, ART, dLOI, memory zone) report only what makes the
/// input invalid, so theirs are errors. A finding given as a bare string becomes
/// `{severity, message}`.
pub fn with_severity(findings: &mut Value) {
    let Value::Array(items) = findings else { return };
    for item in items.iter_mut() {
        match item {
            Value::Object(o) => {
                o.entry("severity").or_insert_with(|| "error".into());
            }
            Value::String(s) => {
                let message = std::mem::take(s);
                *item = serde_json::json!({ "severity": "error", "message": message });
            }
            _ => {}
        }
    }
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
        // Sized once: growing by doubling would hold the old and the new buffer at once.
        if let Ok(meta) = file.metadata() {
            buf.reserve_exact(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
            huge_pages(&mut buf);
        }
        file.take(MAX_FILE_LEN + 1).read_to_end(&mut buf)
    };
    read.map_err(|e| format!("cannot read {name}: {e}"))?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(format!("{name}: more than {MAX_FILE_LEN} bytes"));
    }
    Ok(buf)
}

/// Asks the kernel to back a large buffer with transparent huge pages where it allows them
/// (`madvise` mode, Debian's default): a 35 MB return is then read into ~17 pages of 2 MiB
/// instead of ~8,600 of 4 KiB, each of which cost a page fault. Only a hint: nothing changes
/// where huge pages are off.
fn huge_pages(buf: &mut Vec<u8>) {
    const HUGE: usize = 2 * 1024 * 1024;
    let spare = buf.spare_capacity_mut();
    if spare.len() < 2 * HUGE {
        return;
    }
    let start = spare.as_mut_ptr() as usize;
    let end = start + spare.len();
    let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if to > from {
        // SAFETY: [from, to) lies inside this Vec's own allocation, which lives until after the
        // call; MADV_HUGEPAGE changes how pages are backed, never their content or mapping.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
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

    /// Inputs built by the library builders, one per format.
    fn samples() -> Vec<Vec<u8>> {
        use svoct_formats::b2::synth::{SynthParams, generate_bytes};
        use svoct_formats::loi::{DateTime, Increment};
        use svoct_formats::noemie::{InvoiceOutcome, PartOutcome, PartState, RspParams, Ymd, build_580};
        let rsp = RspParams {
            sender_type: "CP".into(),
            sender_number: "751".into(),
            sender_program: "SIMU".into(),
            recipient_type: "TP".into(),
            recipient_number: "123456789".into(),
            file_id: "R00001".into(),
            created: Ymd::new(2026, 11, 26),
            flow_type: 'T',
            settlement_recipient: "123456789".into(),
            accounting_date: Ymd::new(2026, 11, 26),
            transfer_label: "VIREMENT".into(),
            payer: "CPAM".into(),
        };
        let inv = InvoiceOutcome {
            lot_number: "001".into(),
            lot_date: Ymd::new(2026, 11, 25),
            invoice_number: "000000001".into(),
            invoice_type: 'F',
            billing_date: None,
            amo: Some(PartOutcome {
                state: PartState::Paid,
                requested_cents: 100,
                paid_cents: 70,
                amc_number: String::new(),
            }),
            amc: None,
            rejects: Vec::new(),
            comments: Vec::new(),
        };
        let inc = Increment {
            from: 1,
            to: 2,
            at: DateTime {
                year: 2026,
                month: 11,
                day: 26,
                hour: 1,
                minute: 2,
                second: 3,
            },
            additions: vec!["ABC".into()],
            removals: Vec::new(),
        };
        let lots = generate_bytes(&SynthParams {
            invoices: 2,
            ..SynthParams::default()
        })
        .unwrap_or_default();
        let message = format!(
            "From: a@b.example\r\nSubject: SV140700/123456789/2026112607050900042/00002\r\n\
             Content-Type: Application/EDI-consent; name=\"F.B2\"\r\n\
             Content-Transfer-Encoding: BASE64\r\nContent-Description: FACTURE/SV\r\n\r\n{}\r\n",
            base64_of(&lots)
        );
        vec![
            build_580(&rsp, &[inv]).unwrap_or_default(),
            inc.build().unwrap_or_default(),
            lots,
            message.into_bytes(),
        ]
    }

    fn base64_of(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [chunk.first(), chunk.get(1), chunk.get(2)].map(|b| b.copied().unwrap_or(0));
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Every prefix and many one-byte mutations of every sample go through the detectors and the
    /// JSON rendering without panicking, and the intact samples are recognised as themselves.
    #[test]
    fn detectors_never_panic_on_damaged_inputs() {
        let opts = Options {
            max_items: 5,
            key: None,
            depth: 0,
        };
        let expected = ["noemie", "dloi-increment", "b2-lots", "message"];
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for (sample, format) in samples().iter().zip(expected) {
            assert!(!sample.is_empty());
            let d = detect(sample, &opts).expect("recognised");
            assert_eq!(d.format, format);
            assert!(d.problem.is_none(), "{format}: {:?}", d.problem);
            for len in 0..sample.len().min(3000) {
                if let Some(d) = detect(sample.get(..len).unwrap_or_default(), &opts) {
                    let _ = to_json(d.format, d.problem.is_none(), d.json).to_string();
                }
            }
            for _ in 0..2000 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let mut m = sample.clone();
                let at = (seed % m.len() as u64) as usize;
                if let Some(b) = m.get_mut(at) {
                    *b = (seed >> 32) as u8;
                }
                if let Some(d) = detect(&m, &opts) {
                    let _ = to_json(d.format, d.problem.is_none(), d.json).to_string();
                }
            }
        }
    }

    #[test]
    fn contains_finds_needles() {
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(!contains(b"abc", b""));
    }
}
