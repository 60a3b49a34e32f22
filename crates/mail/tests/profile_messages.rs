//! Building, parsing, checking and inspecting messages of every profile, with bad input.

use proptest::prelude::*;
use svoct_mail::cms::{CmsCipher, PrivateKeyAndCert, RecipientCert};
use svoct_mail::compress::Compression;
use svoct_mail::profile::{
    ContentDescription, Mailbox, MessageHeaders, ParseLimits, PlainFileFacts, Profile, ProfileError, Protect,
    Protection, PsCategory, Severity, build_message, fuzz_message, inspect_message, parse_message,
};
use svoct_mail::subject::{
    Compostage, FileKind, InvoiceSubject, MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, SpecVersion,
    Subject,
};
use svoct_testkit::certs::TestIdentity;
use time::macros::datetime;

const SUBJECT: &str = "SV140700/123456789/2026112607050900042/00003";

fn b2_file() -> Vec<u8> {
    // Starts with the ASCII digit 0 (0x30), like a DER SEQUENCE: the state checks must not be
    // fooled by the first byte.
    let mut v = b"000".to_vec();
    v.extend(std::iter::repeat_n(b' ', 125));
    v.extend(b"1".repeat(128));
    v.extend(b"999".iter().chain(std::iter::repeat_n(&b' ', 125)));
    v
}

fn invoice_envelope() -> MessageHeaders {
    MessageHeaders {
        from: Mailbox::with_name(Some("Cabinet Dupont"), "ps@provider.example").unwrap(),
        to: Mailbox::new("factures@oct.example").unwrap(),
        subject: SUBJECT.parse().unwrap(),
        profile: Profile::Invoice(FileKind::Fse),
        file_name: "F00042.B2".to_owned(),
        date: datetime!(2026-11-26 07:05:09 +01:00),
        message_id: Some("fixed.1@provider.example".to_owned()),
    }
}

struct Keys {
    id: TestIdentity,
    key: PrivateKeyAndCert,
    cert: RecipientCert,
}

fn keys() -> Keys {
    let id = TestIdentity::new("oct.example");
    let key = PrivateKeyAndCert::from_bytes(&id.key_pem(), &id.cert_pem()).unwrap();
    let cert = RecipientCert::from_bytes(&id.cert_pem()).unwrap();
    Keys { id, key, cert }
}

#[test]
fn plain_invoice_message_has_the_annex_headers() {
    let msg = build_message(&invoice_envelope(), &b2_file(), Protect::None).unwrap();
    let text = String::from_utf8(msg.clone()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let expected = [
        "From: \"Cabinet Dupont\" <ps@provider.example>",
        "To: factures@oct.example",
        "Subject: SV140700/123456789/2026112607050900042/00003",
        "Date: Thu, 26 Nov 2026 07:05:09 +0100",
        "Message-ID: <fixed.1@provider.example>",
        "MIME-Version: 1.0",
        "Content-Type: Application/EDI-consent; name=\"F00042.B2\"",
        "Content-Transfer-Encoding: BASE64",
        "Content-Description: FACTURE/SV",
        "Content-Disposition: attachment; filename=\"F00042.B2\"",
    ];
    assert_eq!(head.split("\r\n").collect::<Vec<_>>(), expected);
    assert!(body.lines().all(|l| l.len() <= 76));
    assert!(!text.contains("\n\n") || text.contains("\r\n\r\n"));
    let parsed = parse_message(&msg, &ParseLimits::default()).unwrap();
    assert_eq!(parsed.profile_name(), "FACTURE/SV");
    assert_eq!(parsed.subject.to_string(), SUBJECT);
    assert_eq!(parsed.attachment, b2_file());
    assert!(!parsed.multipart);
    let opened = parsed.open(None, &ParseLimits::default()).unwrap();
    assert_eq!(opened.bytes, b2_file());
    let facts = PlainFileFacts {
        invoice_count: 3,
        sender_number: "123456789     ".to_owned(),
    };
    parsed.check_file(&facts).unwrap();
    // Consuming the message gives the same file (handed over without a copy).
    let moved = parsed.into_opened(None, &ParseLimits::default()).unwrap();
    assert_eq!(moved.bytes, b2_file());
    assert!(moved.encryption.is_none());
}

#[test]
fn encrypted_and_compressed_round_trips() {
    let k = keys();
    for (compress, cipher, profile) in [
        (false, CmsCipher::Aes256Cbc, "FACTURE/SV/K"),
        (true, CmsCipher::Aes128Cbc, "FACTURE/SV/ZK"),
        (true, CmsCipher::DesEde3Cbc, "FACTURE/SV/ZK"),
    ] {
        let protect = Protect::Encrypt {
            recipients: std::slice::from_ref(&k.cert),
            cipher,
            compress,
        };
        let msg = build_message(&invoice_envelope(), &b2_file(), protect).unwrap();
        assert!(String::from_utf8_lossy(&msg).contains(&format!("Content-Description: {profile}\r\n")));
        let parsed = parse_message(&msg, &ParseLimits::default()).unwrap();
        assert_eq!(parsed.profile_name(), profile);
        assert_eq!(parsed.attachment.first(), Some(&0x30));
        assert!(matches!(
            parsed.open(None, &ParseLimits::default()),
            Err(ProfileError::KeyRequired)
        ));
        let opened = parsed.open(Some(&k.key), &ParseLimits::default()).unwrap();
        assert_eq!(opened.bytes, b2_file());
        assert_eq!(opened.compression, compress.then_some(Compression::Gzip));
        let moved = parsed
            .clone()
            .into_opened(Some(&k.key), &ParseLimits::default())
            .unwrap();
        assert_eq!(
            moved.bytes,
            b2_file(),
            "{profile}: into_opened opens as open does"
        );
        assert!(matches!(
            parsed.clone().into_opened(None, &ParseLimits::default()),
            Err(ProfileError::KeyRequired)
        ));
        let report = inspect_message(&msg, Some(&k.key));
        assert!(!report.has_errors(), "{:?}", report.findings);
        assert_eq!(report.profile.as_deref(), Some(profile));
        assert_eq!(report.attachment_bytes.as_deref(), Some(&b2_file()[..]));
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["format"], "message");
        assert_eq!(json["subject"]["compostage"], "2026112607050900042");
        assert_eq!(json["subject"]["invoice_count"], 3);
        assert!(json.get("attachment_bytes").is_none());
    }
    let _ = k.id;
}

#[test]
fn subject_checks_against_the_file() {
    let msg = build_message(&invoice_envelope(), &b2_file(), Protect::None).unwrap();
    let parsed = parse_message(&msg, &ParseLimits::default()).unwrap();
    let wrong_count = PlainFileFacts {
        invoice_count: 4,
        sender_number: "123456789".to_owned(),
    };
    assert!(matches!(
        parsed.check_file(&wrong_count),
        Err(ProfileError::InvoiceCountMismatch { subject: 3, file: 4 })
    ));
    let wrong_sender = PlainFileFacts {
        invoice_count: 3,
        sender_number: "987654321".to_owned(),
    };
    assert!(matches!(
        parsed.check_file(&wrong_sender),
        Err(ProfileError::ExerciceMismatch { .. })
    ));
    let padded = PlainFileFacts {
        invoice_count: 3,
        sender_number: "00123456789".to_owned(),
    };
    parsed.check_file(&padded).unwrap();
}

#[test]
fn art_and_other_profiles() {
    let ps = PartyNumber::new("12345").unwrap();
    let stamp = MinuteStamp::new(datetime!(2026-11-26 07:05)).unwrap();
    let cases = [
        (
            Profile::Art(PsCategory::Ph),
            ReturnKind::Art,
            "ART/PH",
            "ART/000012345/202611260705",
        ),
        (
            Profile::Art(PsCategory::Xx),
            ReturnKind::Art,
            "ART/XX",
            "ART/000012345/202611260705",
        ),
        (Profile::Arl, ReturnKind::Arl, "ARL", "ARL/000012345/202611260705"),
        (Profile::Rsp, ReturnKind::Rsp, "RSP", "RSP/000012345/202611260705"),
        (
            Profile::DloiIncrement,
            ReturnKind::LoiIncrement,
            "LOI/INCREMENT",
            "LOI/000012345/202611260705",
        ),
    ];
    for (profile, kind, cd, subject) in cases {
        let mut env = invoice_envelope();
        env.profile = profile;
        env.file_name = "receipt.txt".to_owned();
        env.subject = Subject::Return(ReturnSubject {
            kind,
            ps_number: ps.clone(),
            timestamp: stamp,
        });
        let msg = build_message(&env, b"Votre fichier a ete recu.\r\n", Protect::None).unwrap();
        let text = String::from_utf8(msg.clone()).unwrap();
        assert!(text.contains(&format!("Content-Description: {cd}\r\n")), "{text}");
        assert!(text.contains(&format!("Subject: {subject}\r\n")), "{text}");
        let parsed = parse_message(&msg, &ParseLimits::default()).unwrap();
        assert_eq!(parsed.description.profile, profile);
        assert_eq!(parsed.headers.file_name.as_deref(), Some("receipt.txt"));
    }
    // dLOI request.
    let mut env = invoice_envelope();
    env.profile = Profile::DloiRequest;
    env.subject = "DLOI/123456789/2026112607050900043".parse().unwrap();
    let msg = build_message(&env, b"LOI 0042\r\n", Protect::None).unwrap();
    assert_eq!(
        parse_message(&msg, &ParseLimits::default())
            .unwrap()
            .profile_name(),
        "LOI/DEMANDE"
    );
    // DRE file subject with the DR prefix.
    let mut env = invoice_envelope();
    env.profile = Profile::Invoice(FileKind::Dre);
    env.subject = Subject::Invoice(
        InvoiceSubject::new(
            FileKind::Dre,
            SpecVersion::v140700(),
            PartyNumber::new("123456789").unwrap(),
            Compostage::new(datetime!(2026-11-26 07:05:09), 1).unwrap(),
            2,
        )
        .unwrap(),
    );
    let msg = build_message(&env, &b2_file(), Protect::None).unwrap();
    let parsed = parse_message(&msg, &ParseLimits::default()).unwrap();
    assert_eq!(parsed.profile_name(), "FACTURE/DR");
    assert_eq!(
        parsed.subject.to_string(),
        "DR140700/123456789/2026112607050900001/00002"
    );
    // ART is never encrypted, and the subject must fit the profile.
    let k = keys();
    let mut env = invoice_envelope();
    env.profile = Profile::Art(PsCategory::If);
    assert!(matches!(
        build_message(&env, b"x", Protect::None),
        Err(ProfileError::SubjectProfileMismatch { .. })
    ));
    env.subject = Subject::Return(ReturnSubject {
        kind: ReturnKind::Art,
        ps_number: ps,
        timestamp: stamp,
    });
    assert!(matches!(
        build_message(&env, b"x", Protect::None),
        Err(ProfileError::HeaderValue {
            header: "file name",
            ..
        })
    ));
    env.file_name = "ART0001.TXT".to_owned();
    assert!(build_message(&env, b"x", Protect::None).is_ok());
    let protect = Protect::Encrypt {
        recipients: std::slice::from_ref(&k.cert),
        cipher: CmsCipher::default(),
        compress: false,
    };
    assert!(build_message(&env, b"x", protect).is_err());
}

#[test]
fn configured_values_with_crlf_are_refused() {
    for bad in [
        "ps@x.example\r\nBcc: spy@evil.example",
        "ps@x.example\nX: y",
        "ps@x.example\r",
    ] {
        assert!(
            matches!(Mailbox::new(bad), Err(ProfileError::HeaderValue { .. })),
            "{bad:?}"
        );
    }
    assert!(Mailbox::with_name(Some("Dr\r\nBcc: spy@evil.example"), "ps@x.example").is_err());
    let mut env = invoice_envelope();
    env.file_name = "F.B2\r\nBcc: spy@evil.example".to_owned();
    assert!(matches!(
        build_message(&env, b"x", Protect::None),
        Err(ProfileError::HeaderValue {
            header: "file name",
            ..
        })
    ));
    let mut env = invoice_envelope();
    env.message_id = Some("a@b>\r\nBcc: c@d".to_owned());
    assert!(build_message(&env, b"x", Protect::None).is_err());
}

fn handmade(headers: &str, body: &str) -> Vec<u8> {
    format!("{headers}\r\n\r\n{body}").into_bytes()
}

const GOOD_HEADERS: &str = "From: ps@provider.example\r\nTo: oct@oct.example\r\nSubject: SV140700/123456789/2026112607050900042/00003\r\nMIME-Version: 1.0\r\nContent-Type: Application/EDI-consent; name=\"F.B2\"\r\nContent-Transfer-Encoding: BASE64";

#[test]
fn bad_messages_give_typed_errors() {
    let limits = ParseLimits::default();
    let body = "MDAwICAgIA==\r\n"; // "000    "
    let ok = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV"),
        body,
    );
    assert_eq!(parse_message(&ok, &limits).unwrap().attachment, b"000    ");

    let missing = handmade(GOOD_HEADERS, body);
    assert!(matches!(
        parse_message(&missing, &limits),
        Err(ProfileError::MissingHeader("Content-Description"))
    ));
    let unknown = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/XY"),
        body,
    );
    assert!(matches!(
        parse_message(&unknown, &limits),
        Err(ProfileError::UnknownContentDescription { .. })
    ));
    let not_b64 = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV"),
        "MDAw*CAgIA==\r\n",
    );
    assert!(matches!(
        parse_message(&not_b64, &limits),
        Err(ProfileError::NotBase64 {
            offset: 4,
            byte: b'*'
        })
    ));
    // Announced encrypted, but the attachment is the plain file (whose first byte is 0x30).
    let k_plain = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV/K"),
        body,
    );
    assert!(matches!(
        parse_message(&k_plain, &limits),
        Err(ProfileError::AttachmentState { .. })
    ));
    let wrong_count = handmade(
        &format!(
            "{}\r\nContent-Description: FACTURE/SV",
            GOOD_HEADERS.replace("/00003", "/0003")
        ),
        body,
    );
    assert!(matches!(
        parse_message(&wrong_count, &limits),
        Err(ProfileError::Subject(_))
    ));
    let bad_compostage = handmade(
        &format!(
            "{}\r\nContent-Description: FACTURE/SV",
            GOOD_HEADERS.replace("2026112607050900042", "2026113107050900042")
        ),
        body,
    );
    let e = parse_message(&bad_compostage, &limits).unwrap_err();
    assert!(e.to_string().contains("compostage"), "{e}");
    let wrong_type = handmade(
        &format!(
            "{}\r\nContent-Description: FACTURE/SV",
            GOOD_HEADERS.replace("Application/EDI-consent", "text/plain")
        ),
        body,
    );
    assert!(matches!(
        parse_message(&wrong_type, &limits),
        Err(ProfileError::WrongContentType { .. })
    ));
    // Quoted-printable and LF-only line ends are read too.
    let qp = format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV")
        .replace("BASE64", "quoted-printable")
        .replace("\r\n", "\n");
    let qp = handmade(&qp, "000=20=20=20=\n=20\n")
        .iter()
        .copied()
        .filter(|b| *b != b'\r')
        .collect::<Vec<u8>>();
    assert_eq!(parse_message(&qp, &limits).unwrap().attachment, b"000    \n");
    let small = ParseLimits {
        max_message_bytes: 100,
        ..ParseLimits::default()
    };
    assert!(matches!(
        parse_message(&ok, &small),
        Err(ProfileError::MessageTooLarge { .. })
    ));
    assert!(parse_message(b"", &limits).is_err());

    // The inspector reports the same problems as findings.
    let report = inspect_message(&not_b64, None);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.code == "body" && f.severity == Severity::Error)
    );
    let report = inspect_message(&missing, None);
    assert!(report.findings.iter().any(|f| f.code == "content_description"));
    let report = inspect_message(&bad_compostage, None);
    assert!(
        report.findings.iter().any(|f| f.code == "subject"),
        "{:?}",
        report.findings
    );
    assert_eq!(report.attachment_bytes.as_deref(), Some(&b"000    "[..]));
}

#[test]
fn plain_envelope_and_zk_mismatches() {
    let k = keys();
    let limits = ParseLimits::default();
    let envelope =
        svoct_mail::cms::encrypt(&b2_file(), std::slice::from_ref(&k.cert), CmsCipher::Aes256Cbc).unwrap();
    let b64 = base64_lines(&envelope);
    // Announced plain but carries an envelope.
    let plain_cd = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV"),
        &b64,
    );
    assert!(matches!(
        parse_message(&plain_cd, &limits),
        Err(ProfileError::AttachmentState { .. })
    ));
    // Announced ZK but the content inside is not compressed.
    let zk = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV/ZK"),
        &b64,
    );
    let parsed = parse_message(&zk, &limits).unwrap();
    assert!(matches!(
        parsed.open(Some(&k.key), &limits),
        Err(ProfileError::AttachmentState { .. })
    ));
    // A compression bomb inside a ZK envelope stops at the limit.
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let bomb = svoct_mail::compress::compress(&zeros).unwrap();
    let env = svoct_mail::cms::encrypt(&bomb, std::slice::from_ref(&k.cert), CmsCipher::Aes256Cbc).unwrap();
    let msg = handmade(
        &format!("{GOOD_HEADERS}\r\nContent-Description: FACTURE/SV/ZK"),
        &base64_lines(&env),
    );
    let parsed = parse_message(&msg, &limits).unwrap();
    let tight = ParseLimits {
        max_decompressed: 1024 * 1024,
        ..limits
    };
    let e = parsed.open(Some(&k.key), &tight).unwrap_err();
    assert!(e.to_string().contains("limit"), "{e}");
    assert_eq!(
        parsed.open(Some(&k.key), &limits).unwrap().bytes.len(),
        zeros.len()
    );
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine as _;
    let s = base64::engine::general_purpose::STANDARD.encode(data);
    s.as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect()
}

#[test]
fn multipart_mixed_input_is_accepted() {
    let msg = "From: ps@provider.example\r\nTo: oct@oct.example\r\n\
Subject: SV140700/123456789/2026112607050900042/00003\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XyZ\"\r\n\r\n\
preamble\r\n--XyZ\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--XyZ\r\nContent-Type: Application/EDI-consent; name=\"F.B2\"\r\n\
Content-Transfer-Encoding: base64\r\nContent-Description: FACTURE/SV\r\n\r\n\
MDAwICAgIA==\r\n--XyZ--\r\n";
    let parsed = parse_message(msg.as_bytes(), &ParseLimits::default()).unwrap();
    assert!(parsed.multipart);
    assert_eq!(parsed.attachment, b"000    ");
    assert_eq!(parsed.headers.file_name.as_deref(), Some("F.B2"));
    let two = msg.replace(
        "Content-Type: text/plain",
        "Content-Type: Application/EDI-consent",
    );
    assert!(matches!(
        parse_message(two.as_bytes(), &ParseLimits::default()),
        Err(ProfileError::SeveralFileParts { count: 2 })
    ));
    let _ = ContentDescription {
        profile: Profile::Arl,
        protection: Protection::Plain,
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn fuzz_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_message(&data);
    }

    #[test]
    fn mutated_messages_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut msg = build_message(&invoice_envelope(), &b2_file(), Protect::None).unwrap();
        for (at, b) in flips {
            let i = at % msg.len();
            msg[i] = b;
        }
        fuzz_message(&msg);
    }

    #[test]
    fn build_parse_round_trip(
        file in proptest::collection::vec(any::<u8>(), 1..3000),
        count in 0u32..=99_999,
        counter in 0u32..=99_999,
        exercice in "[0-9A-Z]{1,14}",
    ) {
        let mut env = invoice_envelope();
        let subject = InvoiceSubject::new(
            FileKind::Fse,
            SpecVersion::v140700(),
            PartyNumber::new(&exercice).unwrap(),
            Compostage::new(datetime!(2026-02-28 23:59:59), counter).unwrap(),
            count,
        ).unwrap();
        env.subject = Subject::Invoice(subject);
        let msg = build_message(&env, &file, Protect::None).unwrap();
        let parsed = parse_message(&msg, &ParseLimits::default());
        // A random file may look like an envelope: then the state check refuses it, typed.
        match parsed {
            Ok(p) => {
                prop_assert_eq!(p.attachment, file);
                prop_assert_eq!(p.subject, env.subject);
            }
            Err(e) => prop_assert!(matches!(e, ProfileError::AttachmentState { .. }), "{}", e),
        }
    }
}

#[test]
fn inspect_reports_decryption_problems_and_file_checks() {
    let k = keys();
    let other = TestIdentity::new("intruder.example");
    let other_key = PrivateKeyAndCert::from_bytes(&other.key_pem(), &other.cert_pem()).unwrap();
    let protect = Protect::Encrypt {
        recipients: std::slice::from_ref(&k.cert),
        cipher: CmsCipher::DesEde3Cbc,
        compress: true,
    };
    let msg = build_message(&invoice_envelope(), &b2_file(), protect).unwrap();
    // Without a key: profile and algorithm are known, content is not.
    let r = inspect_message(&msg, None);
    assert!(!r.has_errors(), "{:?}", r.findings);
    assert_eq!(
        r.encryption.as_ref().and_then(|e| e.algorithm.as_deref()),
        Some("DES-EDE3-CBC")
    );
    assert!(r.attachment_bytes.is_none());
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "decrypt" && f.severity == Severity::Info)
    );
    // With someone else's key: an error finding that names the key's certificate.
    let r = inspect_message(&msg, Some(&other_key));
    let f = r.findings.iter().find(|f| f.code == "decrypt").unwrap();
    assert_eq!(f.severity, Severity::Error);
    assert!(f.message.contains("intruder.example"), "{}", f.message);
    // With the right key, then the file checks added by the caller.
    let mut r = inspect_message(&msg, Some(&k.key));
    assert_eq!(r.compression, Some(Compression::Gzip));
    assert_eq!(r.attachment_len, Some(b2_file().len()));
    let subject: Subject = SUBJECT.parse().unwrap();
    r.check_file(
        &subject,
        &PlainFileFacts {
            invoice_count: 7,
            sender_number: "123456789".to_owned(),
        },
    );
    assert!(r.has_errors());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["profile"], "FACTURE/SV/ZK");
    assert_eq!(json["compression"], "gzip");
    assert_eq!(json["encryption"]["algorithm_oid"], "1.2.840.113549.3.7");
    assert_eq!(
        json["headers"]["content_type"],
        "Application/EDI-consent; name=\"F00042.B2\""
    );
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["code"] == "subject_file")
    );
}
