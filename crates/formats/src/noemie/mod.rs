//! NOEMIE-PS return files (RSP) of any reference: reader, controls, views for references 580,
//! 576 and 900 (an entity tree for the others), and a 580 builder for the AM simulator.
//!
//! - [`parse`] cuts an input in either physical packaging into files and entities, checks every
//!   `990` control entity and the `999` trailer, and collects [`Finding`]s for anything
//!   irregular but readable; only what cannot be cut at all is a [`NoemieError`].
//! - [`Noemie::report`] gives the views as a serialisable [`NoemieReport`]: payments and
//!   invoices for 580, 576 and 900 ([`Noemie::walk_payments`] streams them), a plain entity tree
//!   for any other reference ([`entity_tree`]).
//! - [`build_580`] writes a return in packaging (a).
//!
//! What is public and what the project decided is in `docs/formats/noemie.md`; the decided
//! parts (which entities make each reference, date formats, what a `990` counts) live in
//! [`layouts`] and in the control code of this module only.

mod builder;
pub mod layouts;
mod reader;
mod view;

pub use crate::Severity;
pub use builder::{
    BuildError, InvoiceOutcome, LINE_MAX, PartOutcome, RejectLine, RejectPart, RspParams, build_580,
    build_580_packaged,
};
pub use reader::{
    DateValue, Decoded, Entity, EntityRef, FieldValue, FileTotals, Finding, FindingKind, MAX_ENTITY_LEN,
    MAX_FILES, MAX_FINDINGS, Noemie, NoemieError, NoemieFile, Packaging, decode_date, expected_entities,
    parse, parse_owned,
};
pub use view::{
    Deduction, EntityDump, EntityNode, FileSummary, FlatDetail, FlatPayment, Invoice, InvoiceState,
    NoemieReport, Notice, Part, PartState, Payment, TreeEvent, ViewItem, ViewKind, ViewText, Want, Ymd,
    entity_tree,
};

/// Parse and build the report in one call (what `svoct inspect --json` needs).
pub fn report(input: &[u8]) -> Result<NoemieReport, NoemieError> {
    Ok(parse(input)?.report())
}

/// Fuzz entry point: parse and report arbitrary bytes; must never panic, and reading an owned
/// copy in place ([`parse_owned`]) must give the same result as reading a borrowed one.
pub fn fuzz_noemie(data: &[u8]) {
    let owned = parse_owned(data.to_vec()).map(|n| n.report());
    let parsed = parse(data);
    assert_eq!(
        parsed.as_ref().map(Noemie::report).ok(),
        owned.ok(),
        "parse_owned differs from parse"
    );
    if let Ok(n) = parsed {
        let r = n.report();
        for f in &n.files {
            entity_tree(f, |_| {});
        }
        let _ = serde_json::to_string(&r);
        for f in &n.files {
            for e in f.iter() {
                let _ = e.fields();
            }
        }
        let _ = serde_json::to_string(&n.dump());
    }
}
