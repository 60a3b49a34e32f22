//! Forwarding the planned lots: one file per (route, FSE/DRE), lots byte-identical (or marked,
//! R8.3), and the complementary flow to the AMC (one OCT-built lot per source lot and AMC, one
//! file per AMC).

use serde_json::json;
use svoct_formats::PaddedNumber;
use svoct_formats::b2::{self, B2Input, LotKind, layouts::F0_FILE_ID};
use svoct_mail::profile::Profile;
use svoct_mail::subject::FileKind;

use super::invoice::Run;
use super::lots::{Plan, PlannedLot};
use super::out::{Addressee, Letter, digits_only, file_kind};
use super::{Env, Pipeline, PipelineError, lots_message_id, yymmdd};
use crate::config::Route;
use crate::receipt::{AmcLine, LotFate};
use crate::state::{LotClaim, OutKind, OwnLot};

/// The planned lots that go out in one file.
struct Group<'p, 'i, 'c> {
    route: &'c Route,
    kind: LotKind,
    members: Vec<&'p PlannedLot<'i, 'c>>,
}

/// The complementary flow to one AMC being built (R8.3).
struct AmcFlow<'p> {
    organisation: String,
    /// The OCT-built lots.
    lots: Vec<Vec<u8>>,
    invoices: usize,
    /// Hashes of the PS lots they come from: the flow's Message-ID derives from them.
    source_hashes: Vec<&'p str>,
}

impl<'c> Pipeline<'c> {
    /// Forwards the routed lots; returns what each file carried, for the summary.
    pub(super) fn forward(
        &self,
        plan: &Plan<'_, '_, 'c>,
        run: &mut Run<'_, '_>,
        env: &mut dyn Env,
    ) -> Result<Vec<serde_json::Value>, PipelineError> {
        let mut groups: Vec<Group<'_, '_, 'c>> = Vec::new();
        for p in &plan.lots {
            let Some(route) = p.route else { continue };
            match groups
                .iter_mut()
                .find(|g| std::ptr::eq(g.route, route) && g.kind == p.kind)
            {
                Some(g) => g.members.push(p),
                None => groups.push(Group {
                    route,
                    kind: p.kind,
                    members: vec![p],
                }),
            }
        }
        groups
            .iter()
            .map(|g| self.forward_group(plan.input, g, run, env))
            .collect()
    }

    fn forward_group(
        &self,
        input: &B2Input<'_>,
        group: &Group<'_, '_, 'c>,
        run: &mut Run<'_, '_>,
        env: &mut dyn Env,
    ) -> Result<serde_json::Value, PipelineError> {
        let Group { route, kind, members } = group;
        let lots_bytes: Vec<&[u8]> = members.iter().map(|p| p.bytes.as_ref()).collect();
        let file_id = env.file_id()?;
        let to = Addressee {
            recipient_type: &route.recipient_type,
            recipient_number: digits_only(&route.recipient()),
        };
        let file = self.build_oct_file(&lots_bytes, &to, &file_id, run.now)?;
        let invoices: usize = members.iter().map(|p| p.line.invoices).sum();
        let subject = self.invoice_subject(*kind, invoices, env)?;
        let hashes: Vec<&str> = members.iter().map(|p| p.hash.as_str()).collect();
        let id = lots_message_id(OutKind::Forward, &route.mailbox, &hashes, self.config.domain());
        let letter = Letter {
            subject,
            profile: Profile::Invoice(file_kind(*kind)),
            file_name: format!("{file_id}.B2"),
            file: &file,
            cert: self.keys.cert(route.certificate.as_ref()),
            date: run.now,
        };
        let id = run.out.push_as(id, OutKind::Forward, &route.mailbox, letter)?;
        let ps_key = PaddedNumber::new(&run.sender.ps_number).to_string();
        let ps_file_id = input
            .file_header()
            .and_then(|h| F0_FILE_ID.str(h))
            .unwrap_or("")
            .trim()
            .to_owned();
        for p in members {
            run.result.claims.lots.push(LotClaim {
                lot_hash: p.hash.clone(),
                ps_number: ps_key.clone(),
                lot_number: p.line.number.clone(),
                lot_date: p.line.date.clone(),
                file_id: ps_file_id.clone(),
                destination: route.label(),
                message_id: id.clone(),
            });
            if let Some(lot) = input.lots().get(p.lot_index) {
                run.result.claims.invoices.extend(crate::fidelity::invoice_claims(
                    lot,
                    &ps_key,
                    &p.hash,
                    &route.label(),
                ));
            }
            if let Some(l) = run.receipt.lots.get_mut(p.lot_index) {
                l.fate = LotFate::Forwarded {
                    to: route.mailbox.clone(),
                    destination: route.label(),
                    split_invoices: p.amc.iter().map(|(_, v)| v.len()).sum(),
                };
            }
        }
        Ok(json!({
            "message_id": id, "to": route.mailbox, "file_id": file_id,
            "lots": members.len(), "invoices": invoices, "kind": kind.to_string(),
        }))
    }

    /// R8.3: the complementary flow, one OCT-built lot per (source lot, AMC), one file per AMC.
    pub(super) fn amc_flow(
        &self,
        plan: &Plan<'_, '_, 'c>,
        run: &mut Run<'_, '_>,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let mut per_amc: Vec<AmcFlow<'_>> = Vec::new();
        for p in &plan.lots {
            let Some(lot) = plan.input.lots().get(p.lot_index) else {
                continue;
            };
            for (org, invs) in &p.amc {
                let number = env.lot_number()?;
                let date = yymmdd(run.now);
                let bytes = b2::build_amc_lot(lot, invs, number, &date)
                    .map_err(|e| PipelineError::Build(e.to_string()))?;
                run.result.own_lots.push(OwnLot {
                    lot_number: format!("{number:03}"),
                    lot_date: date,
                    file_id: String::new(),
                    organisation: org.clone(),
                    message_id: String::new(),
                });
                match per_amc.iter_mut().find(|f| &f.organisation == org) {
                    Some(f) => {
                        f.lots.push(bytes);
                        f.invoices += invs.len();
                        f.source_hashes.push(&p.hash);
                    }
                    None => per_amc.push(AmcFlow {
                        organisation: org.clone(),
                        lots: vec![bytes],
                        invoices: invs.len(),
                        source_hashes: vec![&p.hash],
                    }),
                }
            }
        }
        for flow in &per_amc {
            self.send_amc_flow(flow, run, env)?;
        }
        Ok(())
    }

    fn send_amc_flow(
        &self,
        flow: &AmcFlow<'_>,
        run: &mut Run<'_, '_>,
        env: &mut dyn Env,
    ) -> Result<(), PipelineError> {
        let org = &flow.organisation;
        let Some(amc) = self.config.amc_for(org) else {
            return Ok(());
        };
        let refs: Vec<&[u8]> = flow.lots.iter().map(Vec::as_slice).collect();
        let file_id = env.file_id()?;
        let to = Addressee {
            recipient_type: "AC",
            recipient_number: digits_only(org),
        };
        let file = self.build_oct_file(&refs, &to, &file_id, run.now)?;
        let subject = self.invoice_subject(LotKind::Fse, flow.invoices, env)?;
        let id = lots_message_id(
            OutKind::Amc,
            &amc.mailbox,
            &flow.source_hashes,
            self.config.domain(),
        );
        let letter = Letter {
            subject,
            profile: Profile::Invoice(FileKind::Fse),
            file_name: format!("{file_id}.B2"),
            file: &file,
            cert: self.keys.cert(amc.certificate.as_ref()),
            date: run.now,
        };
        let id = run.out.push_as(id, OutKind::Amc, &amc.mailbox, letter)?;
        for own in run.result.own_lots.iter_mut().filter(|l| &l.organisation == org) {
            own.message_id = id.clone();
            own.file_id = file_id.clone();
        }
        run.receipt.amc.push(AmcLine {
            organisation: org.clone(),
            to: amc.mailbox.clone(),
            invoices: flow.invoices,
        });
        Ok(())
    }
}
