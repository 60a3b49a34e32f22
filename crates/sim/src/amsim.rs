//! A simulated insurer (AM): receives the files an OCT forwards, answers each lot with an ARL
//! and each invoice of an accepted FSE lot with a NOEMIE 580 return, and sends them back to the
//! OCT, which relays them to the PS.
//!
//! The decisions are deterministic so that tests and the demo can predict them:
//! - a lot whose creation date is more than `negative_arl_after_days` days before `today` gets a
//!   negative ARL (the file must be sent again), every other lot a positive one;
//! - in an accepted FSE lot, invoice number `n` is rejected when `n % reject_every == 0`,
//!   deferred when `n % defer_every == 0`, paid otherwise (paid amount = the AMO total of its
//!   type 5 record);
//! - DRE lots (for the AMC) get an ARL but no RSP: AMC payment flows are outside SESAM-Vitale
//!   (R4.4).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use svoct_formats::arl::{Arl, ArlReason, ArlStatus, Stamp};
use svoct_formats::b2::{self, LotKind};
use svoct_formats::noemie::{InvoiceOutcome, PartOutcome, RejectLine, RejectPart, RspParams};
use svoct_formats::noemie::{PartState, Ymd};
use svoct_mail::cms::PrivateKeyAndCert;
use svoct_mail::profile::{self, Mailbox, MessageHeaders, ParseLimits, Profile, Protect};
use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, Subject};
use svoct_mail::transport::{self, SmtpConfig, SmtpTransport, Transport};
use svoct_oct::inbound::listener::{Ingress, IngressConfig, IngressHandle};
use svoct_oct::inbound::session::Recipients;
use svoct_store::spool::{EntryState, Spool, SpoolId};
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// How the simulator decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Lots created more than this many days before today get a negative ARL.
    pub negative_arl_after_days: i64,
    /// Every invoice whose number is a multiple of this is rejected (0: none).
    pub reject_every: u64,
    /// Every invoice whose number is a multiple of this (and not rejected) is deferred (0: none).
    pub defer_every: u64,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            negative_arl_after_days: 90,
            reject_every: 7,
            defer_every: 11,
        }
    }
}

/// Who the simulated insurer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmIdentity {
    /// NOEMIE sender type (`CP`: a CPAM).
    pub sender_type: String,
    /// NOEMIE / ARL sender number (up to 14 digits).
    pub sender_number: String,
    /// The simulator's mail address (`From` of the returns).
    pub address: String,
}

impl Default for AmIdentity {
    fn default() -> AmIdentity {
        AmIdentity {
            sender_type: "CP".into(),
            sender_number: "00000000000011".into(),
            address: "am-sim@am.invalid".into(),
        }
    }
}

/// One return file the simulator produced, before it is put in a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnFile {
    /// `Profile::Arl` or `Profile::Rsp`.
    pub profile: Profile,
    /// The PS the return is for (9 digits, from the lot header).
    pub ps_number: String,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Why a forwarded message could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("forwarded message: {0}")]
    Message(#[from] profile::ProfileError),
    #[error("forwarded file: {0}")]
    B2(#[from] b2::B2Error),
    #[error("forwarded message is {0}, not an invoice file")]
    NotInvoice(String),
    #[error("building the NOEMIE return: {0}")]
    Noemie(#[from] svoct_formats::noemie::BuildError),
    #[error("building the ARL: {0}")]
    Arl(String),
    #[error("lot {lot}: {what}")]
    Lot { lot: usize, what: String },
    #[error("spool: {0}")]
    Spool(#[from] svoct_store::spool::SpoolError),
    #[error("ingress: {0}")]
    Ingress(#[from] svoct_oct::inbound::listener::IngressError),
    #[error("sending returns: {0}")]
    Send(#[from] transport::SendError),
}

/// Reads a B2 date `AAMMJJ` as a date of this century.
fn b2_date(text: &str) -> Option<Date> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<u32>().ok());
    let year = 2000 + n(0..2)? as i32;
    let month = time::Month::try_from(n(2..4)? as u8).ok()?;
    Date::from_calendar_date(year, month, n(4..6)? as u8).ok()
}

fn ymd(d: Date) -> Ymd {
    Ymd::new(d.year() as u16, d.month() as u8, d.day())
}

/// The reject reason (code, label) of the `k`-th rejected invoice: the simulator cycles
/// through three, so a report shows more than one kind.
fn reject_reason(k: u64) -> (&'static str, &'static str) {
    match k % 3 {
        0 => ("0510", "DROITS NON OUVERTS A LA DATE DES SOINS"),
        1 => ("0832", "ACTE NON REMBOURSABLE POUR CE BENEFICIAIRE"),
        _ => ("1201", "PRESCRIPTION ABSENTE OU PERIMEE"),
    }
}

/// Answers one forwarded invoice file (already decrypted and decompressed): an ARL per lot, and
/// one RSP (580) per PS for the invoices of accepted FSE lots.
pub fn answer_file(
    file: &[u8],
    rules: &Rules,
    me: &AmIdentity,
    today: Date,
    file_seq: u64,
) -> Result<Vec<ReturnFile>, SimError> {
    let input = b2::parse(file)?;
    let file_id = input
        .file_header()
        .and_then(|h| h.get(49..55))
        .map(|id| String::from_utf8_lossy(id).trim().to_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    // Per PS: the invoices to put in its RSP.
    let mut rsp: std::collections::BTreeMap<String, Vec<InvoiceOutcome>> = Default::default();
    for (index, lot) in input.lots().iter().enumerate() {
        let ps = lot.sender().trim().to_owned();
        let answer = LotAnswer::of(index, lot, rules, today)?;
        let arl = answer.arl(lot, &ps, &file_id, me, rules, today)?;
        let bytes = arl.build().map_err(|e| SimError::Arl(e.to_string()))?;
        out.push(ReturnFile {
            profile: Profile::Arl,
            ps_number: ps.clone(),
            file_name: format!("ARL{:06}L{:03}.txt", file_seq % 1_000_000, answer.lot_number),
            bytes,
        });
        // DRE lots and the complementary lots an OCT built (R8.3) are AMC flows: acknowledged,
        // but paid outside SESAM-Vitale (R4.4), so no NOEMIE return.
        let built_by_oct =
            b2::layouts::F1_ORIGIN.str(lot.header()) == Some(svoct_oct::pipeline::OCT_LOT_ORIGIN);
        if answer.negative.is_some() || lot.kind() == LotKind::Dre || built_by_oct {
            continue;
        }
        let outcomes = rsp.entry(ps).or_default();
        outcomes.extend(
            lot.invoices()
                .iter()
                .map(|invoice| answer.invoice_outcome(invoice, rules)),
        );
    }
    for (ps, invoices) in rsp {
        if !invoices.is_empty() {
            out.push(rsp_file(ps, &invoices, me, today, file_seq)?);
        }
    }
    Ok(out)
}

/// What the simulator decided for one lot: its number and date, and whether it is late.
struct LotAnswer {
    index: usize,
    lot_number: u32,
    lot_date: Date,
    /// `Some(age in days)` when the lot is older than the rules allow: a negative ARL.
    negative: Option<i64>,
}

impl LotAnswer {
    fn of(index: usize, lot: &b2::Lot<'_>, rules: &Rules, today: Date) -> Result<Self, SimError> {
        let lot_number = lot.lot_number().ok_or_else(|| SimError::Lot {
            lot: index,
            what: "lot number is not digits".into(),
        })?;
        let lot_date = b2_date(lot.date()).ok_or_else(|| SimError::Lot {
            lot: index,
            what: format!("lot date `{}` is not a date AAMMJJ", lot.date()),
        })?;
        let age = (today - lot_date).whole_days();
        Ok(Self {
            index,
            lot_number,
            lot_date,
            negative: (age > rules.negative_arl_after_days).then_some(age),
        })
    }

    /// The lot's ARL: positive, or negative with reason R090 when the lot is late.
    fn arl(
        &self,
        lot: &b2::Lot<'_>,
        ps: &str,
        file_id: &str,
        me: &AmIdentity,
        rules: &Rules,
        today: Date,
    ) -> Result<Arl, SimError> {
        let lot_number = self.lot_number;
        Ok(Arl {
            sender_type: me.sender_type.clone(),
            sender_number: me.sender_number.clone(),
            ps_number: ps.to_owned(),
            file_id: file_id.to_owned(),
            lot_number: u16::try_from(lot_number).map_err(|_| SimError::Lot {
                lot: self.index,
                what: format!("lot number {lot_number} is more than 3 digits"),
            })?,
            lot_date: ymd(self.lot_date),
            issued: Stamp {
                date: ymd(today),
                hour: 0,
                minute: 0,
            },
            status: if self.negative.is_some() {
                ArlStatus::Negative
            } else {
                ArlStatus::Positive
            },
            invoice_count: u16::try_from(lot.invoice_count()).ok(),
            lot_kind: lot.kind().to_string(),
            reasons: match self.negative {
                Some(age) => vec![ArlReason {
                    code: "R090".into(),
                    label: format!(
                        "LOT CREE IL Y A {age} JOURS, HORS DELAI DE {} JOURS",
                        rules.negative_arl_after_days
                    ),
                }],
                None => Vec::new(),
            },
        })
    }

    /// The outcome of one invoice of an accepted FSE lot: rejected every `reject_every`,
    /// deferred every `defer_every`, paid its AMO total otherwise.
    fn invoice_outcome(&self, invoice: &b2::Invoice<'_>, rules: &Rules) -> InvoiceOutcome {
        let number = invoice.number().unwrap_or(0);
        let requested = invoice.total_amo().unwrap_or(0);
        let (state, paid, rejects) = if rules.reject_every > 0 && number.is_multiple_of(rules.reject_every) {
            let (code, label) = reject_reason(number / rules.reject_every);
            let line = RejectLine {
                code: code.into(),
                label: label.into(),
                part: RejectPart::Amo,
            };
            (PartState::Rejected, 0, vec![line])
        } else if rules.defer_every > 0 && number.is_multiple_of(rules.defer_every) {
            (PartState::Deferred, 0, Vec::new())
        } else {
            (PartState::Paid, requested as i64, Vec::new())
        };
        InvoiceOutcome {
            lot_number: format!("{:03}", self.lot_number),
            lot_date: ymd(self.lot_date),
            invoice_number: format!("{number:09}"),
            invoice_type: 'F',
            billing_date: None,
            amo: Some(PartOutcome {
                state,
                requested_cents: requested,
                paid_cents: paid,
                amc_number: String::new(),
            }),
            amc: None,
            rejects,
            comments: Vec::new(),
        }
    }
}

/// The RSP (580) paying, rejecting or deferring the invoices of one PS.
fn rsp_file(
    ps: String,
    invoices: &[InvoiceOutcome],
    me: &AmIdentity,
    today: Date,
    file_seq: u64,
) -> Result<ReturnFile, SimError> {
    let params = RspParams {
        sender_type: me.sender_type.clone(),
        sender_number: me.sender_number.clone(),
        sender_program: "AMSIM".into(),
        recipient_type: "TP".into(),
        recipient_number: ps.clone(),
        file_id: format!("{:06}", file_seq % 1_000_000),
        created: ymd(today),
        flow_type: 'D',
        settlement_recipient: ps.clone(),
        accounting_date: ymd(today),
        transfer_label: format!("VIREMENT AMSIM {:06}", file_seq % 1_000_000),
        // The payer is the last 10 digits of the insurer's number.
        payer: {
            let n = &me.sender_number;
            n.get(n.len().saturating_sub(10)..).unwrap_or(n).to_owned()
        },
    };
    let bytes = svoct_formats::noemie::build_580(&params, invoices)?;
    Ok(ReturnFile {
        profile: Profile::Rsp,
        ps_number: ps,
        file_name: format!("RSP{:06}.580", file_seq % 1_000_000),
        bytes,
    })
}

/// Puts a return file in its message (subject `ARL/<ps>/<stamp>` or `RSP/<ps>/<stamp>`).
pub fn return_message(
    file: &ReturnFile,
    me: &AmIdentity,
    to: &str,
    now: OffsetDateTime,
    message_id: &str,
) -> Result<Vec<u8>, SimError> {
    let kind = match file.profile {
        Profile::Arl => ReturnKind::Arl,
        _ => ReturnKind::Rsp,
    };
    let stamp = MinuteStamp::new(PrimitiveDateTime::new(now.date(), now.time()))
        .ok_or_else(|| SimError::Arl("date out of range".into()))?;
    let subject = Subject::Return(ReturnSubject {
        kind,
        ps_number: PartyNumber::new(&file.ps_number).map_err(profile::ProfileError::from)?,
        timestamp: stamp,
    });
    let envelope = MessageHeaders {
        from: Mailbox::new(&me.address)?,
        to: Mailbox::new(to)?,
        subject,
        profile: file.profile,
        file_name: file.file_name.clone(),
        date: now,
        message_id: Some(message_id.to_owned()),
    };
    Ok(profile::build_message(&envelope, &file.bytes, Protect::None)?)
}

/// Settings of a running simulator.
#[derive(Debug)]
pub struct AmSimConfig {
    /// Where the OCT forwards files (our own SMTP ingress).
    pub listen: SocketAddr,
    pub spool_dir: PathBuf,
    /// The AM key, when the OCT encrypts forwarded files for it.
    pub key: Option<PrivateKeyAndCert>,
    /// The OCT's SMTP ingress, where returns are sent.
    pub oct_smtp: (String, u16),
    /// The OCT's address for returns from AM.
    pub oct_address: String,
    pub identity: AmIdentity,
    pub rules: Rules,
}

/// Counters of a running simulator.
#[derive(Debug, Default)]
pub struct SimStats {
    pub files: AtomicU64,
    pub lots: AtomicU64,
    pub arl_sent: AtomicU64,
    pub rsp_sent: AtomicU64,
    pub quarantined: AtomicU64,
    /// Messages put back in the spool because the OCT could not be reached (temporary SMTP
    /// failure); each is tried again.
    pub send_retries: AtomicU64,
}

/// A forwarded message the simulator could not answer, kept in its spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The spool entry (`quarantine/<id>` under the spool directory).
    pub id: SpoolId,
    /// Why it was set aside (the error, one line).
    pub reason: String,
}

/// A snapshot of [`SimStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimTotals {
    pub files: u64,
    pub lots: u64,
    pub arl_sent: u64,
    pub rsp_sent: u64,
    pub quarantined: u64,
    pub send_retries: u64,
}

impl SimStats {
    /// The counters now.
    pub fn totals(&self) -> SimTotals {
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        SimTotals {
            files: get(&self.files),
            lots: get(&self.lots),
            arl_sent: get(&self.arl_sent),
            rsp_sent: get(&self.rsp_sent),
            quarantined: get(&self.quarantined),
            send_retries: get(&self.send_retries),
        }
    }
}

/// Tells the worker to stop when the simulator is dropped without [`AmSim::shutdown`] (a
/// panicking caller): otherwise the runtime would wait forever for the blocking worker.
struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A running simulator: its ingress and its worker.
pub struct AmSim {
    ingress: IngressHandle,
    spool: Arc<Spool>,
    stop: StopOnDrop,
    worker: tokio::task::JoinHandle<()>,
    stats: Arc<SimStats>,
}

impl AmSim {
    /// Starts listening and answering, in the current tokio runtime.
    pub async fn start(config: AmSimConfig) -> Result<AmSim, SimError> {
        let spool = Arc::new(Spool::open(&config.spool_dir)?);
        // The simulator plays every insurer mailbox of the routing table, on loopback.
        let mut ic = IngressConfig::default();
        ic.session.recipients = Recipients::Any;
        let ingress = Ingress::bind(config.listen, ic, spool.clone()).await?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stats = Arc::new(SimStats::default());
        let transport = SmtpTransport::new(&SmtpConfig::plain(config.oct_smtp.0.clone(), config.oct_smtp.1))?;
        let worker = {
            let stop = stop.clone();
            let stats = stats.clone();
            let spool = spool.clone();
            tokio::task::spawn_blocking(move || worker_loop(&config, &spool, &transport, &stop, &stats))
        };
        Ok(AmSim {
            ingress,
            spool,
            stop: StopOnDrop(stop),
            worker,
            stats,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.ingress.local_addr()
    }

    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// How many accepted messages wait to be answered (pending or in hand).
    pub fn waiting(&self) -> Result<usize, SimError> {
        Ok(self
            .spool
            .list()?
            .iter()
            .filter(|l| l.state != EntryState::Quarantined)
            .count())
    }

    /// The forwarded messages set aside (undecryptable, not an invoice file, unreadable B2),
    /// with their reasons: the simulator never drops what it accepted.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, SimError> {
        let mut out = Vec::new();
        for listing in self.spool.list()? {
            if listing.state == EntryState::Quarantined {
                out.push(Quarantined {
                    id: listing.id,
                    reason: self.spool.quarantine_reason(listing.id)?,
                });
            }
        }
        Ok(out)
    }

    /// Stops accepting, lets the worker finish the message in hand, and returns the final
    /// counts (read after the worker stopped, so nothing is still in flight).
    pub async fn shutdown(self) -> SimTotals {
        self.ingress.shutdown().await;
        self.stop.0.store(true, Ordering::SeqCst);
        let _ = self.worker.await;
        self.stats.totals()
    }
}

fn worker_loop(
    config: &AmSimConfig,
    spool: &Spool,
    transport: &dyn Transport,
    stop: &std::sync::atomic::AtomicBool,
    stats: &SimStats,
) {
    let seq = AtomicU64::new(1);
    while !stop.load(Ordering::SeqCst) {
        let entry = match spool.claim_next() {
            Ok(Some(entry)) => entry,
            Ok(None) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "am-sim: spool");
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
        };
        let id = entry.id;
        // Each destination answers from its own mailbox: the one the OCT forwarded to.
        let mailbox = entry.envelope.rcpt_to.first().cloned();
        match handle(
            config,
            id,
            mailbox.as_deref(),
            &entry.data,
            transport,
            seq.fetch_add(1, Ordering::SeqCst),
            stats,
        ) {
            Ok(()) => {
                if let Err(e) = spool.complete(id) {
                    tracing::error!(error = %e, "am-sim: completing a message");
                }
            }
            Err(e) if matches!(&e, SimError::Send(s) if s.is_transient()) => {
                tracing::warn!(spool_id = %id, error = %e, "am-sim: OCT unreachable, will retry");
                stats.send_retries.fetch_add(1, Ordering::Relaxed);
                let _ = spool.release(id);
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(e) => {
                tracing::warn!(spool_id = %id, error = %e, "am-sim: message quarantined");
                stats.quarantined.fetch_add(1, Ordering::Relaxed);
                if let Err(q) = spool.quarantine(id, &e.to_string()) {
                    tracing::error!(spool_id = %id, error = %q, "am-sim: quarantining a message");
                }
            }
        }
    }
}

fn handle(
    config: &AmSimConfig,
    spool_id: SpoolId,
    mailbox: Option<&str>,
    raw: &[u8],
    transport: &dyn Transport,
    seq: u64,
    stats: &SimStats,
) -> Result<(), SimError> {
    let limits = ParseLimits::default();
    let parsed = profile::parse_message(raw, &limits)?;
    if !matches!(parsed.description.profile, Profile::Invoice(_)) {
        return Err(SimError::NotInvoice(parsed.profile_name()));
    }
    let opened = parsed.open(config.key.as_ref(), &limits)?;
    let now = OffsetDateTime::now_utc();
    let files = answer_file(&opened.bytes, &config.rules, &config.identity, now.date(), seq)?;
    let me = AmIdentity {
        address: mailbox.unwrap_or(&config.identity.address).to_owned(),
        ..config.identity.clone()
    };
    for (i, file) in files.iter().enumerate() {
        // Keyed by the spool entry, not the attempt: a send retried after a transient failure
        // reuses the same identifiers, so the OCT can recognise a return it already has.
        let message_id = format!("amsim.{spool_id}.{i}@{}", domain_of(&me.address));
        let message = return_message(file, &me, &config.oct_address, now, &message_id)?;
        let envelope = transport::SmtpEnvelope::new(me.address.clone(), config.oct_address.clone());
        transport.send(&envelope, &message)?;
        match file.profile {
            Profile::Arl => {
                stats.lots.fetch_add(1, Ordering::Relaxed);
                stats.arl_sent.fetch_add(1, Ordering::Relaxed)
            }
            _ => stats.rsp_sent.fetch_add(1, Ordering::Relaxed),
        };
    }
    stats.files.fetch_add(1, Ordering::Relaxed);
    // Identifiers and counts only: the files hold health data.
    let arl = files.iter().filter(|f| f.profile == Profile::Arl).count();
    tracing::info!(
        spool_id = %spool_id,
        profile = %parsed.profile_name(),
        seq,
        arl,
        rsp = files.len().saturating_sub(arl),
        "am-sim: answered a forwarded file"
    );
    Ok(())
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("am.invalid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use svoct_formats::b2::synth::{SynthParams, generate_bytes};
    use svoct_formats::noemie::InvoiceState;

    fn lots(date: &str, invoices: usize, dre: bool) -> Vec<u8> {
        let p = SynthParams {
            seed: 7,
            invoices,
            dre,
            date: date.into(),
            lot_size: 20,
            ..Default::default()
        };
        generate_bytes(&p).unwrap()
    }

    fn today() -> Date {
        Date::from_calendar_date(2026, time::Month::November, 26).unwrap()
    }

    #[test]
    fn answers_every_lot_and_every_invoice_by_the_rules() {
        let bytes = lots("261120", 45, false);
        let input = b2::parse(&bytes).unwrap();
        let rules = Rules::default();
        let out = answer_file(&bytes, &rules, &AmIdentity::default(), today(), 3).unwrap();

        let arls: Vec<Arl> = out
            .iter()
            .filter(|f| f.profile == Profile::Arl)
            .map(|f| Arl::parse(&f.bytes).unwrap())
            .collect();
        assert_eq!(arls.len(), input.lots().len(), "one ARL per lot");
        for (arl, lot) in arls.iter().zip(input.lots()) {
            assert_eq!(arl.status, ArlStatus::Positive);
            assert_eq!(u32::from(arl.lot_number), lot.lot_number().unwrap());
            assert_eq!(arl.ps_number, "123456789");
            assert_eq!(arl.invoice_count, Some(lot.invoice_count() as u16));
        }

        let rsps: Vec<&ReturnFile> = out.iter().filter(|f| f.profile == Profile::Rsp).collect();
        assert_eq!(rsps.len(), 1, "one RSP for the one PS");
        let report = svoct_formats::noemie::report(&rsps[0].bytes).unwrap();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
        assert_eq!(report.reference, "580");
        assert_eq!(report.invoices.len(), 45);
        for (lot, invoice) in input
            .lots()
            .iter()
            .flat_map(|l| l.invoices().iter().map(move |i| (l, i)))
        {
            let n = invoice.number().unwrap();
            let got = report
                .invoices
                .iter()
                .find(|r| r.invoice_number.trim_start_matches('0') == n.to_string())
                .unwrap_or_else(|| panic!("invoice {n} missing from the RSP"));
            assert_eq!(
                got.lot_number.trim_start_matches('0'),
                lot.lot_number().unwrap().to_string()
            );
            let expected = if n % 7 == 0 {
                InvoiceState::Rejected
            } else if n % 11 == 0 {
                InvoiceState::Deferred
            } else {
                InvoiceState::Paid
            };
            assert_eq!(got.state, expected, "invoice {n}");
            if expected == InvoiceState::Paid {
                assert_eq!(got.paid_cents as u64, invoice.total_amo().unwrap());
            } else if expected == InvoiceState::Rejected {
                assert_eq!(got.rejects.len(), 1);
            }
        }
    }

    #[test]
    fn old_lots_get_a_negative_arl_and_no_rsp() {
        let bytes = lots("260801", 5, false);
        let out = answer_file(&bytes, &Rules::default(), &AmIdentity::default(), today(), 1).unwrap();
        assert!(out.iter().all(|f| f.profile == Profile::Arl));
        let arl = Arl::parse(&out[0].bytes).unwrap();
        assert_eq!(arl.status, ArlStatus::Negative);
        assert_eq!(arl.reasons.len(), 1);
        assert!(
            arl.reasons[0].label.contains("117 JOURS"),
            "{}",
            arl.reasons[0].label
        );
    }

    #[test]
    fn dre_lots_are_acknowledged_but_not_paid() {
        let p = SynthParams {
            seed: 2,
            invoices: 6,
            fse: false,
            dre: true,
            date: "261125".into(),
            ..Default::default()
        };
        let bytes = generate_bytes(&p).unwrap();
        let out = answer_file(&bytes, &Rules::default(), &AmIdentity::default(), today(), 1).unwrap();
        assert!(!out.is_empty());
        assert!(out.iter().all(|f| f.profile == Profile::Arl));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(
            answer_file(
                b"not a b2 file",
                &Rules::default(),
                &AmIdentity::default(),
                today(),
                1
            )
            .is_err()
        );
        assert!(answer_file(&[], &Rules::default(), &AmIdentity::default(), today(), 1).is_err());
    }

    #[test]
    fn return_messages_parse_back_with_their_profile() {
        let bytes = lots("261125", 3, false);
        let out = answer_file(&bytes, &Rules::default(), &AmIdentity::default(), today(), 1).unwrap();
        for f in &out {
            let raw = return_message(
                f,
                &AmIdentity::default(),
                "returns@oct.invalid",
                OffsetDateTime::now_utc(),
                "x.1@am.invalid",
            )
            .unwrap();
            let parsed = profile::parse_message(&raw, &ParseLimits::default()).unwrap();
            assert_eq!(parsed.description.profile, f.profile);
            assert_eq!(parsed.attachment, f.bytes);
            let prefix = if f.profile == Profile::Arl {
                "ARL/123456789/"
            } else {
                "RSP/123456789/"
            };
            assert!(
                parsed.subject.to_string().starts_with(prefix),
                "{}",
                parsed.subject
            );
        }
    }
}
