//! The lots of an invoice file: triage the validation findings, then plan every lot (refused,
//! already forwarded, or its bytes, its AMC invoices and its route).

use std::borrow::Cow;
use std::collections::HashSet;

use svoct_formats::PaddedNumber;
use svoct_formats::b2::{self, B2Input, Lot, LotKind};

use super::invoice::Run;
use super::{Env, Halt, Pipeline, PipelineError, Refusal, RefusalCode, content_hash};
use crate::config::Route;
use crate::receipt::{LotFate, LotLine};

/// A lot on its way out: its bytes (borrowed from the input, or the marked copy of R8.3).
pub(super) struct PlannedLot<'i, 'c> {
    pub(super) line: LotLine,
    /// [`content_hash`] of the lot as the PS sealed it (before any R8.3 mark).
    pub(super) hash: String,
    pub(super) kind: LotKind,
    pub(super) route: Option<&'c Route>,
    pub(super) bytes: Cow<'i, [u8]>,
    pub(super) amc: AmcInvoices,
    pub(super) lot_index: usize,
}

/// The lots of a file that go out, planned.
pub(super) struct Plan<'p, 'i, 'c> {
    pub(super) input: &'p B2Input<'i>,
    pub(super) lots: Vec<PlannedLot<'i, 'c>>,
}

/// Contract-99 invoices of a lot, per AMC organisation number (indices into the lot's
/// invoices), in the order of their first invoice.
pub(super) type AmcInvoices = Vec<(String, Vec<usize>)>;

/// The receipt line of a lot as read, before any decision.
pub(super) fn lot_line(lot: &Lot<'_>) -> LotLine {
    LotLine {
        number: lot.lot_number().map(|n| format!("{n:03}")).unwrap_or_default(),
        date: lot.date().to_owned(),
        kind: lot.kind().to_string(),
        invoices: lot.invoice_count(),
        fate: LotFate::NotForwarded {
            reason: String::new(),
        },
    }
}

/// Content validation: file-level findings refuse the file; lot-level ones are returned, as
/// text, per lot (in the order of `input.lots()`), for [`Pipeline::plan_lots`] to refuse the lot.
pub(super) fn triage(input: &B2Input<'_>) -> Result<Vec<Vec<String>>, Refusal> {
    let in_lot = |offset: usize| {
        input
            .lots()
            .iter()
            .position(|l| offset >= l.offset() && offset < l.offset() + l.bytes().len())
    };
    let mut lot_problems: Vec<Vec<String>> = vec![Vec::new(); input.lots().len()];
    let mut file_problems = Vec::new();
    for f in &b2::validate(input) {
        let text = format!(
            "enregistrement {} octet {}{} : {}",
            f.record_index,
            f.offset,
            f.field.map(|x| format!(" champ {x}")).unwrap_or_default(),
            f.message
        );
        match in_lot(f.offset).and_then(|i| lot_problems.get_mut(i)) {
            Some(p) => p.push(text),
            None => file_problems.push(text),
        }
    }
    match file_problems.first() {
        Some(first) => Err(Refusal::new(
            RefusalCode::InvalidFile,
            format!(
                "{} probleme(s) dans le cadre du fichier (000/999), le premier : {first}",
                file_problems.len()
            ),
        )),
        None => Ok(lot_problems),
    }
}

impl<'c> Pipeline<'c> {
    /// Plans every lot: the ones that go out are returned; the fate of the others is written in
    /// the receipt. Refuses the whole message when a destination has no route, so that fixing
    /// the table and retrying forwards everything once.
    pub(super) fn plan_lots<'p, 'i>(
        &self,
        input: &'p B2Input<'i>,
        lot_problems: &[Vec<String>],
        run: &mut Run<'_, '_>,
        env: &mut dyn Env,
    ) -> Result<Plan<'p, 'i, 'c>, Halt> {
        let ps_key = PaddedNumber::new(&run.sender.ps_number).to_string();
        let mut planned = Vec::new();
        let mut hashes_in_file = HashSet::new();
        for (i, lot) in input.lots().iter().enumerate() {
            let problems = lot_problems.get(i).map(Vec::as_slice).unwrap_or_default();
            match self.plan_lot(i, lot, problems, &ps_key, &mut hashes_in_file, env)? {
                Ok(p) => planned.push(p),
                Err(fate) => {
                    if let Some(l) = run.receipt.lots.get_mut(i) {
                        l.fate = fate;
                    }
                }
            }
        }
        let no_route = self.unrouted(input, &planned);
        match no_route.first() {
            Some(first) => Err(Refusal::new(
                RefusalCode::NoRoute,
                format!(
                    "aucune route pour {} destination(s), la premiere : {first} ; rien n'est transmis",
                    no_route.len()
                ),
            )
            .into()),
            None => Ok(Plan { input, lots: planned }),
        }
    }

    /// One lot: planned, or the fate that keeps it from going out.
    fn plan_lot<'i>(
        &self,
        index: usize,
        lot: &Lot<'i>,
        problems: &[String],
        ps_key: &str,
        hashes_in_file: &mut HashSet<String>,
        env: &mut dyn Env,
    ) -> Result<Result<PlannedLot<'i, 'c>, LotFate>, PipelineError> {
        let refused = |reason: String| Ok(Err(LotFate::Refused { reason }));
        // No double billing: a lot already forwarded (in any file) is reported, not sent.
        let hash = content_hash(lot.bytes());
        if !hashes_in_file.insert(hash.clone()) {
            return refused("lot en double dans le fichier : transmis une seule fois".into());
        }
        if let Some(seen) = env.forwarded_lot(&hash)? {
            return Ok(Err(LotFate::AlreadyForwarded {
                destination: seen.destination,
                at: seen.at,
            }));
        }
        if let Some(first) = problems.first() {
            return refused(format!("{} probleme(s), le premier : {first}", problems.len()));
        }
        if let Some(reason) = crate::fidelity::excluded_by_forwarded(lot, ps_key, env)? {
            return refused(reason);
        }
        let (bytes, amc) = match enrich(lot) {
            Ok(enriched) => enriched,
            Err(reason) => return refused(reason),
        };
        let d = lot.destination();
        Ok(Ok(PlannedLot {
            line: lot_line(lot),
            hash,
            kind: lot.kind(),
            route: self.config.route_for(&d.organisme, &d.regime, &d.caisse),
            bytes,
            amc,
            lot_index: index,
        }))
    }

    /// The destinations of planned lots without a route (AMO) or without an AMC entry.
    fn unrouted(&self, input: &B2Input<'_>, planned: &[PlannedLot<'_, '_>]) -> Vec<String> {
        let mut no_route = Vec::new();
        for p in planned {
            if p.route.is_none()
                && let Some(lot) = input.lots().get(p.lot_index)
            {
                no_route.push(format!(
                    "lot {} destinataire {}",
                    p.line.number,
                    lot.destination()
                ));
            }
            for (org, _) in &p.amc {
                if self.config.amc_for(org).is_none() {
                    no_route.push(format!("lot {} AMC {}", p.line.number, org));
                }
            }
        }
        no_route
    }
}

/// R8.3: the bytes to forward of a lot (the PS's, or the AMO lot marked when it holds contract-99
/// invoices) and its contract-99 invoices per AMC organisation; `Err` is why the OCT cannot
/// split it.
fn enrich<'i>(lot: &Lot<'i>) -> Result<(Cow<'i, [u8]>, AmcInvoices), String> {
    let enriched = lot.kind() == LotKind::Fse && lot.invoices().iter().any(|inv| inv.contract_type() == "99");
    if !enriched {
        return Ok((Cow::Borrowed(lot.bytes()), Vec::new()));
    }
    let split =
        b2::split_enriched(lot).map_err(|e| format!("FSE enrichie que l'OCT ne peut pas eclater : {e}"))?;
    let mut amc: AmcInvoices = Vec::new();
    for (k, inv) in lot.invoices().iter().enumerate() {
        if inv.contract_type() != "99" {
            continue;
        }
        let org = inv.amc_number().to_owned();
        match amc.iter_mut().find(|(o, _)| *o == org) {
            Some((_, v)) => v.push(k),
            None => amc.push((org, vec![k])),
        }
    }
    Ok((Cow::Owned(split.amo_lot), amc))
}
