//! ART body: the exact text for a known receipt, parse back, errors, round-trip proptests.

use proptest::prelude::*;
use svoct_formats::arl::Stamp;
use svoct_formats::art::{Art, ArtAmc, ArtError, ArtLot, FileStatus, LotStatus, escape, fuzz_art, unescape};
use svoct_formats::noemie::Ymd;

fn sample() -> Art {
    Art {
        oct_id: "OCT123456789".into(),
        ps_number: "10987654321".into(),
        received: Stamp {
            date: Ymd::new(2026, 11, 26),
            hour: 9,
            minute: 5,
        },
        compostage: "2026112609050000042".into(),
        file_name: "F00042".into(),
        subject: "SV140700/10987654321/2026112609050000042/00015".into(),
        profile: "FACTURE/SV/ZK".into(),
        invoices: 15,
        file_status: FileStatus::Accepted,
        file_detail: String::new(),
        lots: vec![
            ArtLot {
                number: "001".into(),
                date: Some(Ymd::new(2026, 11, 25)),
                kind: "FSE".into(),
                invoices: 12,
                status: LotStatus::Forwarded,
                detail: "CPAM 751 (01 751)".into(),
            },
            ArtLot {
                number: "002".into(),
                date: Some(Ymd::new(2026, 11, 25)),
                kind: "FSE".into(),
                invoices: 3,
                status: LotStatus::Refused,
                detail: "destination inconnue; 50% des factures sans caisse".into(),
            },
        ],
        amc: vec![ArtAmc {
            organisation: "0123456789".into(),
            invoices: 2,
            mailbox: "amc@example.invalid".into(),
        }],
    }
}

const EXPECTED: &str = "ACCUSE DE RECEPTION TECHNIQUE\r\n\
\r\n\
Organisme concentrateur : OCT123456789\r\n\
Professionnel de sante  : 10987654321\r\n\
Message recu le 26/11/2026 a 09h05 : SV140700/10987654321/2026112609050000042/00015\r\n\
Profil FACTURE/SV/ZK, fichier F00042, 15 facture(s), compostage 2026112609050000042\r\n\
Message accepte\r\n\
\r\n\
2 lot(s) :\r\n\
\x20 - lot 001 FSE du 25/11/2026, 12 facture(s) : transmis a CPAM 751 (01 751)\r\n\
\x20 - lot 002 FSE du 25/11/2026, 3 facture(s) : REFUSE : destination inconnue; 50% des factures sans caisse\r\n\
\r\n\
1 flux complementaire(s) cree(s) :\r\n\
\x20 - AMC 0123456789, 2 facture(s), envoye a amc@example.invalid\r\n\
\r\n\
-----BEGIN SVOCT ART 1-----\r\n\
ART;1\r\n\
OCT;OCT123456789\r\n\
PS;10987654321\r\n\
RECU;202611260905;2026112609050000042;F00042\r\n\
MESSAGE;SV140700/10987654321/2026112609050000042/00015;FACTURE/SV/ZK;15\r\n\
FICHIER;ACCEPTE;\r\n\
LOT;001;20261125;FSE;12;TRANSMIS;CPAM 751 (01 751)\r\n\
LOT;002;20261125;FSE;3;REFUSE;destination inconnue%3B 50%25 des factures sans caisse\r\n\
AMC;0123456789;2;amc@example.invalid\r\n\
FIN;2;1\r\n\
-----END SVOCT ART-----\r\n";

#[test]
fn build_writes_the_documented_text() {
    assert_eq!(sample().build().unwrap(), EXPECTED);
}

#[test]
fn parse_reads_the_documented_text() {
    assert_eq!(Art::parse(EXPECTED.as_bytes()).unwrap(), sample());
    // LF-only line ends and text around the block are fine.
    let lf = format!("Bonjour,\n\n{}\n-- \nsignature\n", EXPECTED.replace("\r\n", "\n"));
    assert_eq!(Art::parse(lf.as_bytes()).unwrap(), sample());
}

#[test]
fn duplicate_lot_is_its_own_status() {
    let text = "-----BEGIN SVOCT ART 1-----\r\nART;1\r\nOCT;OCT1\r\nPS;1\r\nRECU;202612020640;;\r\n\
                MESSAGE;s;FACTURE/SV;3\r\nFICHIER;ACCEPTE;doublon\r\n\
                LOT;001;20261125;FSE;3;DEJA_TRANSMIS;deja transmis a CPAM 751\r\nFIN;1;0\r\n\
                -----END SVOCT ART-----\r\n";
    let a = Art::parse(text.as_bytes()).unwrap();
    assert_eq!(a.lots[0].status, LotStatus::AlreadyForwarded);
    assert_eq!(a.lots[0].detail, "deja transmis a CPAM 751");
    let body = a.build().unwrap();
    assert!(
        body.contains("  - lot 001 FSE du 25/11/2026, 3 facture(s) : doublon, non retransmis : deja transmis a CPAM 751\r\n"),
        "{body}"
    );
    assert!(body.contains("LOT;001;20261125;FSE;3;DEJA_TRANSMIS;deja transmis a CPAM 751\r\n"));
    // A status the format does not know is an error naming the field.
    let bad = text.replace("DEJA_TRANSMIS", "DOUBLON");
    let e = Art::parse(bad.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("lot.status"), "{e}");
}

#[test]
fn refused_message_with_unreadable_lot() {
    let a = Art {
        ps_number: String::new(),
        compostage: String::new(),
        invoices: 0,
        file_status: FileStatus::Refused,
        file_detail: "dechiffrement impossible".into(),
        lots: vec![ArtLot {
            number: String::new(),
            date: None,
            kind: String::new(),
            invoices: 0,
            status: LotStatus::NotForwarded,
            detail: "message refuse".into(),
        }],
        amc: vec![],
        ..sample()
    };
    let body = a.build().unwrap();
    assert!(
        body.contains("Message REFUSE : dechiffrement impossible\r\n"),
        "{body}"
    );
    assert!(
        body.contains("  - lot - - du ?, 0 facture(s) : non transmis : message refuse\r\n"),
        "{body}"
    );
    assert!(body.contains(
        "FICHIER;REFUSE;dechiffrement impossible\r\nLOT;;;;0;NON_TRANSMIS;message refuse\r\nFIN;1;0\r\n"
    ));
    assert_eq!(Art::parse(body.as_bytes()).unwrap(), a);
}

#[test]
fn errors_name_the_line() {
    assert_eq!(Art::parse(b"just text").unwrap_err(), ArtError::MissingBlock);
    let cut = EXPECTED.replace("-----END SVOCT ART-----\r\n", "");
    assert_eq!(
        Art::parse(cut.as_bytes()).unwrap_err(),
        ArtError::UnterminatedBlock
    );
    assert!(Art::parse(&EXPECTED.as_bytes()[..EXPECTED.len() - 30]).is_err());
    let bad = EXPECTED.replace("LOT;001;20261125", "LOT;001;20261131");
    assert!(matches!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::Field {
            line: 23,
            field: "lot.date",
            ..
        }
    ));
    let bad = EXPECTED.replace("FIN;2;1", "FIN;3;1");
    assert_eq!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::Count {
            stated: 3,
            stated_amc: 1,
            found: 2,
            found_amc: 1
        }
    );
    let bad = EXPECTED.replace("FICHIER;ACCEPTE;\r\n", "");
    assert_eq!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::Missing("FICHIER")
    );
    let bad = EXPECTED.replace("%3B", "%3X");
    assert!(matches!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::Field {
            line: 24,
            field: "lot.detail",
            ..
        }
    ));
    let bad = EXPECTED.replace("PS;10987654321", "XX;1");
    assert!(matches!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::UnexpectedLine { line: 19, .. }
    ));
    assert!(matches!(
        Art::parse(b"\xff\xfe").unwrap_err(),
        ArtError::NotUtf8 { offset: 0 }
    ));
}

#[test]
fn build_refuses_bad_values() {
    let mut a = sample();
    a.lots[0].number = "1234".into();
    assert!(matches!(
        a.build().unwrap_err(),
        ArtError::Field {
            field: "lot.number",
            ..
        }
    ));
    let mut a = sample();
    a.lots[0].date = Some(Ymd::new(2026, 2, 30));
    assert!(matches!(
        a.build().unwrap_err(),
        ArtError::Field {
            field: "lot.date",
            ..
        }
    ));
}

proptest! {
    #[test]
    fn escape_round_trips(s in ".{0,60}") {
        let e = escape(&s);
        prop_assert!(!e.contains(';') && !e.contains('\n') && !e.contains('\r'));
        prop_assert_eq!(unescape(&e), Some(s));
    }

    #[test]
    fn build_parse_round_trip(
        ps in ".{0,20}",
        subject in ".{0,60}",
        detail in ".{0,40}",
        refused in any::<bool>(),
        lots in proptest::collection::vec((
            "[0-9]{0,3}",
            proptest::option::of((2000u16..2100, 1u8..=12, 1u8..=28)),
            ".{0,4}",
            0u32..100_000,
            0u8..4,
            ".{0,50}",
        ), 0..6),
        amc in proptest::collection::vec(("[0-9]{10}", 0u32..1000, ".{0,30}"), 0..3),
    ) {
        let a = Art {
            ps_number: ps,
            subject,
            file_status: if refused { FileStatus::Refused } else { FileStatus::Accepted },
            file_detail: detail,
            lots: lots
                .into_iter()
                .map(|(number, date, kind, invoices, st, detail)| ArtLot {
                    number,
                    date: date.map(|(y, m, d)| Ymd::new(y, m, d)),
                    kind,
                    invoices,
                    status: [
                        LotStatus::Forwarded,
                        LotStatus::Refused,
                        LotStatus::NotForwarded,
                        LotStatus::AlreadyForwarded,
                    ][st as usize],
                    detail,
                })
                .collect(),
            amc: amc
                .into_iter()
                .map(|(organisation, invoices, mailbox)| ArtAmc { organisation, invoices, mailbox })
                .collect(),
            ..sample()
        };
        let body = a.build().unwrap();
        prop_assert_eq!(Art::parse(body.as_bytes()).unwrap(), a);
    }

    #[test]
    fn random_and_mutated_bodies_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        fuzz_art(&data);
        let mut body = EXPECTED.as_bytes().to_vec();
        for (at, b) in edits {
            let i = at.index(body.len());
            body[i] = b;
        }
        fuzz_art(&body);
    }
}
