//! Shared helpers: a PS configuration in a temporary directory, return messages as an OCT
//! would build them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use svoct_mail::cms::{CmsCipher, RecipientCert};
use svoct_mail::profile::{Mailbox, MessageHeaders, Profile, Protect, PsCategory, build_message};
use svoct_mail::subject::{MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, Subject};
use svoct_testkit::certs::TestIdentity;
use time::OffsetDateTime;

pub struct Keys {
    pub oct_key: PathBuf,
    pub oct_cert: PathBuf,
    pub ps_key: PathBuf,
    pub ps_cert: PathBuf,
}

pub fn keys(dir: &Path) -> Keys {
    let (oct_key, oct_cert) = TestIdentity::new("oct.test").write_pem(dir, "oct");
    let (ps_key, ps_cert) = TestIdentity::new("ps.test").write_pem(dir, "ps");
    Keys {
        oct_key,
        oct_cert,
        ps_key,
        ps_cert,
    }
}

/// A return message (ART, ARL, RSP, dLOI increment) from the OCT to the PS, encrypted for the PS
/// certificate when given (never for ART, whose envelope is fixed by R6.2).
pub fn return_message(kind: ReturnKind, file: &[u8], encrypt_for: Option<&Path>) -> Vec<u8> {
    let profile = match kind {
        ReturnKind::Art => Profile::Art(PsCategory::If),
        ReturnKind::Arl => Profile::Arl,
        ReturnKind::Rsp => Profile::Rsp,
        ReturnKind::LoiIncrement => Profile::DloiIncrement,
    };
    let now = OffsetDateTime::now_utc();
    let subject = Subject::Return(ReturnSubject {
        kind,
        ps_number: PartyNumber::new("123456789").unwrap(),
        timestamp: MinuteStamp::new(time::PrimitiveDateTime::new(now.date(), now.time())).unwrap(),
    });
    let envelope = MessageHeaders {
        from: Mailbox::new("oct@oct.invalid").unwrap(),
        to: Mailbox::new("ps@ps.invalid").unwrap(),
        subject,
        profile,
        file_name: format!("{}.txt", kind.keyword()),
        date: now,
        message_id: None,
    };
    let certs: Vec<RecipientCert> = encrypt_for
        .map(|p| vec![RecipientCert::from_file(p).unwrap()])
        .unwrap_or_default();
    let protect = if certs.is_empty() {
        Protect::None
    } else {
        Protect::Encrypt {
            recipients: &certs,
            cipher: CmsCipher::default(),
            compress: true,
        }
    };
    build_message(&envelope, file, protect).unwrap()
}

/// A message of no known profile.
pub fn unknown_message() -> Vec<u8> {
    b"From: someone@else.invalid\r\nTo: ps@ps.invalid\r\nSubject: hello\r\n\
      Message-ID: <x1@else.invalid>\r\nContent-Type: text/plain\r\n\r\nJust saying hello.\r\n"
        .to_vec()
}

/// A well-formed NOEMIE 580 return for one invoice (the returns processing parses RSP files).
pub fn rsp_580(invoice_number: &str) -> Vec<u8> {
    use svoct_formats::noemie::{InvoiceOutcome, PartOutcome, PartState, RspParams, Ymd, build_580};
    let params = RspParams {
        sender_type: "CP".into(),
        sender_number: "011".into(),
        sender_program: "SVOCT".into(),
        recipient_type: "TP".into(),
        recipient_number: "123456789".into(),
        file_id: "000001".into(),
        created: Ymd::new(2026, 11, 26),
        flow_type: 'T',
        settlement_recipient: "123456789".into(),
        accounting_date: Ymd::new(2026, 11, 26),
        transfer_label: "VIREMENT TEST".into(),
        payer: "CPAM011".into(),
    };
    let invoice = InvoiceOutcome {
        lot_number: "001".into(),
        lot_date: Ymd::new(2026, 11, 26),
        invoice_number: invoice_number.into(),
        invoice_type: 'F',
        billing_date: Some(Ymd::new(2026, 11, 26)),
        amo: Some(PartOutcome {
            state: PartState::Paid,
            requested_cents: 2500,
            paid_cents: 2500,
            amc_number: String::new(),
        }),
        amc: None,
        rejects: Vec::new(),
        comments: Vec::new(),
    };
    build_580(&params, &[invoice]).unwrap()
}
