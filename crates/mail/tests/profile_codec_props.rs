//! Property tests for the codecs: subjects, compostage, Content-Description, compression.

use proptest::prelude::*;
use svoct_mail::compress::{self, CompressError, Compression};
use svoct_mail::subject::{
    Compostage, FileKind, InvoiceSubject, MinuteStamp, PartyNumber, ReturnKind, ReturnSubject, SpecVersion,
    Subject,
};
use time::{Date, Month, PrimitiveDateTime, Time};

fn datetime() -> impl Strategy<Value = PrimitiveDateTime> {
    (0i32..=9999, 1u8..=12, 1u8..=31, 0u8..24, 0u8..60, 0u8..60).prop_filter_map(
        "real calendar date",
        |(y, m, d, h, mi, s)| {
            let date = Date::from_calendar_date(y, Month::try_from(m).ok()?, d).ok()?;
            Some(PrimitiveDateTime::new(date, Time::from_hms(h, mi, s).ok()?))
        },
    )
}

proptest! {
    #[test]
    fn compostage_round_trips(at in datetime(), counter in 0u32..=99_999) {
        let c = Compostage::new(at, counter).unwrap();
        let text = c.to_string();
        prop_assert_eq!(text.len(), 19);
        prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
        // Hand-derived layout: AAAA MM JJ HH MM SS xxxxx.
        prop_assert_eq!(&text[..4], format!("{:04}", at.year()));
        prop_assert_eq!(&text[14..], format!("{counter:05}"));
        prop_assert_eq!(text.parse::<Compostage>().unwrap(), c);
    }

    #[test]
    fn compostage_parse_never_panics(s in "\\PC{0,25}") {
        let _ = s.parse::<Compostage>();
    }

    #[test]
    fn digit_strings_parse_iff_real_date(s in "[0-9]{19}") {
        let ok = s.parse::<Compostage>().is_ok();
        let y: i32 = s[..4].parse().unwrap();
        let m: u8 = s[4..6].parse().unwrap();
        let d: u8 = s[6..8].parse().unwrap();
        let h: u8 = s[8..10].parse().unwrap();
        let mi: u8 = s[10..12].parse().unwrap();
        let sec: u8 = s[12..14].parse().unwrap();
        let real = Month::try_from(m).ok().and_then(|m| Date::from_calendar_date(y, m, d).ok()).is_some()
            && h < 24 && mi < 60 && sec < 60;
        prop_assert_eq!(ok, real);
    }

    #[test]
    fn invoice_subjects_round_trip(
        dre in any::<bool>(),
        version in "[0-9]{6}",
        exercice in "[0-9A-Za-z]{1,14}",
        at in datetime(),
        counter in 0u32..=99_999,
        count in 0u32..=99_999,
    ) {
        let kind = if dre { FileKind::Dre } else { FileKind::Fse };
        let s = Subject::Invoice(InvoiceSubject::new(
            kind,
            SpecVersion::new(&version).unwrap(),
            PartyNumber::new(&exercice).unwrap(),
            Compostage::new(at, counter).unwrap(),
            count,
        ).unwrap());
        let text = s.to_string();
        prop_assert!(text.starts_with(kind.letters()));
        let tail = format!("/{:05}", count);
        prop_assert!(text.ends_with(&tail));
        prop_assert_eq!(text.parse::<Subject>().unwrap(), s);
    }

    #[test]
    fn return_subjects_round_trip(kind in 0usize..4, number in "[0-9]{1,14}", at in datetime()) {
        let kind = [ReturnKind::Art, ReturnKind::Arl, ReturnKind::Rsp, ReturnKind::LoiIncrement][kind];
        let s = ReturnSubject { kind, ps_number: PartyNumber::new(&number).unwrap(), timestamp: MinuteStamp::new(at).unwrap() };
        let text = Subject::Return(s.clone()).to_string();
        let back = text.parse::<Subject>().unwrap();
        let Subject::Return(r) = back else { panic!("{text}") };
        prop_assert_eq!(r.kind, kind);
        prop_assert_eq!(r.timestamp, s.timestamp);
        prop_assert!(r.ps_number.same_as(&s.ps_number));
        prop_assert!(text.split('/').nth(1).unwrap().len() >= 9);
    }

    #[test]
    fn subject_parse_never_panics(s in "\\PC{0,80}") {
        let _ = s.parse::<Subject>();
    }

    #[test]
    fn compression_round_trips(data in proptest::collection::vec(any::<u8>(), 0..20_000)) {
        let z = compress::compress(&data).unwrap();
        prop_assert_eq!(compress::detect(&z), Some(Compression::Gzip));
        let (format, out) = compress::decompress(&z, data.len() as u64).unwrap();
        prop_assert_eq!(format, Compression::Gzip);
        prop_assert_eq!(out, data.clone());
        if !data.is_empty() {
            let limited = compress::decompress(&z, data.len() as u64 - 1);
            let is_too_large = matches!(limited, Err(CompressError::TooLarge { .. }));
            prop_assert!(is_too_large);
        }
    }

    #[test]
    fn decompress_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096), head in 0usize..3) {
        let mut v = [&[0x1fu8, 0x8b][..], &b"PK\x03\x04"[..], &[0x78u8, 0x9c][..]][head].to_vec();
        v.extend(data);
        let _ = compress::decompress(&v, 1 << 16);
    }
}
