//! `svoct inspect FILE [--json]`: tell what a file is and show it field by field.
//!
//! The dispatcher is a list of detectors, [`DETECTORS`]: each is one `fn(&[u8]) -> Option<Detected>`
//! that returns `None` when the bytes are not its format, and a [`Detected`] report (valid or not)
//! when they are. Adding a format (NOEMIE, ARL, ART, dLOI, `.eml` messages) is one function in a
//! submodule under `inspect/` and one line in [`DETECTORS`]. Order matters: put detectors that
//! recognise a precise signature before lenient ones; the memory-zone detector stays last because
//! binary input with a small first byte is all it asks for.
//!
//! Exit status: 0 when the input is valid; otherwise the report is still printed on stdout and
//! the one-line reason goes to stderr through the binary's `svoct: <error>` path.

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::CmdResult;

mod b2;
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
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub max_items: usize,
}

/// A detector: `None` if `bytes` are not its format.
pub type Detector = fn(&[u8], &Options) -> Option<Detected>;

/// Every known format, most specific first.
pub const DETECTORS: &[Detector] = &[b2::detect, zone::detect];

pub fn run(args: Args) -> CmdResult {
    let bytes = read_bounded(&args.file)?;
    let opts = Options {
        max_items: args.max_items,
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
        let mut obj = Map::new();
        obj.insert("format".into(), detected.format.into());
        obj.insert("valid".into(), detected.problem.is_none().into());
        obj.extend(detected.json);
        println!("{}", Value::Object(obj));
    } else {
        print!("{}", detected.text);
    }
    match detected.problem {
        None => Ok(ExitCode::SUCCESS),
        Some(reason) => Err(format!("{}: invalid {}: {reason}", args.file.display(), detected.format).into()),
    }
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
