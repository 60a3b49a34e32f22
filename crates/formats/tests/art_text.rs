//! ART body: the exact text for a known receipt, parse back, errors, round-trip proptests.

use proptest::prelude::*;
use svoct_formats::arl::Stamp;
use svoct_formats::art::{Art, ArtError, ArtLot, FileStatus, LotStatus, escape, fuzz_art, unescape};
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
        file_status: FileStatus::Accepted,
        file_detail: String::new(),
        lots: vec![
            ArtLot {
                number: "001".into(),
                date: Ymd::new(2026, 11, 25),
                invoices: 12,
                status: LotStatus::Forwarded,
                detail: "CPAM 751 (01 751)".into(),
            },
            ArtLot {
                number: "002".into(),
                date: Ymd::new(2026, 11, 25),
                invoices: 3,
                status: LotStatus::Refused,
                detail: "destination inconnue; 50% des factures sans caisse".into(),
            },
        ],
    }
}

const EXPECTED: &str = "ACCUSE DE RECEPTION TECHNIQUE\r\n\
\r\n\
Organisme concentrateur : OCT123456789\r\n\
Professionnel de sante  : 10987654321\r\n\
Message recu le 26/11/2026 a 09h05, compostage 2026112609050000042\r\n\
Fichier F00042 : accepte\r\n\
\r\n\
2 lot(s) :\r\n\
\x20 - lot 001 du 25/11/2026, 12 facture(s) : transmis a CPAM 751 (01 751)\r\n\
\x20 - lot 002 du 25/11/2026, 3 facture(s) : REFUSE : destination inconnue; 50% des factures sans caisse\r\n\
\r\n\
-----BEGIN SVOCT ART 1-----\r\n\
ART;1\r\n\
OCT;OCT123456789\r\n\
PS;10987654321\r\n\
RECU;202611260905;2026112609050000042;F00042\r\n\
FICHIER;ACCEPTE;\r\n\
LOT;001;20261125;TRANSMIS;12;CPAM 751 (01 751)\r\n\
LOT;002;20261125;REFUSE;3;destination inconnue%3B 50%25 des factures sans caisse\r\n\
FIN;2\r\n\
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
fn refused_file() {
    let a = Art {
        file_status: FileStatus::Refused,
        file_detail: "dechiffrement impossible".into(),
        lots: vec![],
        ..sample()
    };
    let body = a.build().unwrap();
    assert!(body.contains("Fichier F00042 : REFUSE : dechiffrement impossible\r\n"));
    assert!(body.contains("FICHIER;REFUSE;dechiffrement impossible\r\nFIN;0\r\n"));
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
    let cut = &EXPECTED[..EXPECTED.len() - 30];
    assert!(matches!(
        Art::parse(cut.as_bytes()).unwrap_err(),
        ArtError::UnexpectedLine { line: 20, .. }
    ));
    let bad = EXPECTED.replace("LOT;001;20261125", "LOT;001;20261131");
    assert!(matches!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::Field {
            line: 18,
            field: "lot.date",
            ..
        }
    ));
    let bad = EXPECTED.replace("FIN;2", "FIN;3");
    assert_eq!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::LotCount { stated: 3, found: 2 }
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
            field: "lot.detail",
            ..
        }
    ));
    let bad = EXPECTED.replace("PS;10987654321", "XX;1");
    assert!(matches!(
        Art::parse(bad.as_bytes()).unwrap_err(),
        ArtError::UnexpectedLine { line: 15, .. }
    ));
    assert!(matches!(
        Art::parse(b"\xff\xfe").unwrap_err(),
        ArtError::NotUtf8 { offset: 0 }
    ));
}

#[test]
fn build_refuses_bad_identifiers() {
    let mut a = sample();
    a.ps_number = "10 98".into();
    assert!(matches!(
        a.build().unwrap_err(),
        ArtError::Field {
            field: "ps_number",
            ..
        }
    ));
    let mut a = sample();
    a.lots[0].number = "1234".into();
    assert!(a.build().is_err());
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
        ps in "[0-9A-Z]{1,14}",
        detail in ".{0,40}",
        refused in any::<bool>(),
        lots in proptest::collection::vec(("[0-9]{1,3}", 2000u16..2100, 1u8..=12, 1u8..=28, 0u32..100_000, any::<bool>(), ".{0,50}"), 0..6),
    ) {
        let a = Art {
            ps_number: ps,
            file_status: if refused { FileStatus::Refused } else { FileStatus::Accepted },
            file_detail: detail,
            lots: lots
                .into_iter()
                .map(|(number, y, m, d, invoices, fwd, detail)| ArtLot {
                    number,
                    date: Ymd::new(y, m, d),
                    invoices,
                    status: if fwd { LotStatus::Forwarded } else { LotStatus::Refused },
                    detail,
                })
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
