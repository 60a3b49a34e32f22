//! Memory-zone codec: the worked examples of `formats.md` §1 byte for byte, every decoding error
//! with its offset, typed access and the named groups.

use svoct_formats::zone::{
    AmcData, FileInfo, FileMessage, Flow, GroupBuf, LengthOf, Limits, LookupError, LotInfo,
    ReimbursementFramework, Zone, ZoneBuf, ZoneError, ids,
};

/// `formats.md` §1, first worked example: group 101 with fields `T`, `58666451`, empty.
const EXAMPLE_101: &[u8] = &[
    0x00, 0x65, 0x0C, // group 101, length 12
    0x01, 0x54, // field 1: "T"
    0x08, 0x35, 0x38, 0x36, 0x36, 0x36, 0x34, 0x35, 0x31, // field 2: "58666451"
    0x00, // field 3: empty
];

fn example_12() -> Vec<u8> {
    // `formats.md` §1, second worked example: group 12 with one 200-byte field.
    let mut v = vec![0x00, 0x0C, 0x81, 0xCA, 0x81, 0xC8];
    v.extend((0..200u32).map(|i| (i % 251) as u8));
    v
}

#[test]
fn worked_example_group_101_decodes() {
    let zone = Zone::decode(EXAMPLE_101).unwrap();
    assert_eq!(zone.groups().len(), 1);
    let g = &zone.groups()[0];
    assert_eq!(g.id, 101);
    assert_eq!(g.offset, 0);
    assert_eq!(g.fields().collect::<Vec<_>>(), [&b"T"[..], b"58666451", b""]);
    assert_eq!(g.field_count(), 3);
    assert_eq!(g.body(), &EXAMPLE_101[3..]);
    assert_eq!(zone.field(101, 0, 2).unwrap(), b"58666451");
}

#[test]
fn worked_example_group_101_encodes() {
    let model = ZoneBuf {
        groups: vec![GroupBuf::new(101).with("T").with("58666451").with("")],
    };
    assert_eq!(model.encode().unwrap(), EXAMPLE_101);
}

#[test]
fn worked_example_group_12_long_forms() {
    let bytes = example_12();
    assert_eq!(bytes.len(), 2 + 2 + 2 + 200);
    let zone = Zone::decode(&bytes).unwrap();
    let g = zone.group(12, 0).unwrap();
    assert_eq!(g.field_count(), 1);
    assert_eq!(g.field(1).unwrap(), &bytes[6..]);
    let model = ZoneBuf {
        groups: vec![GroupBuf::new(12).with(&bytes[6..])],
    };
    assert_eq!(model.encode().unwrap(), bytes);
    assert_eq!(zone.encode().unwrap(), bytes);
}

#[test]
fn long_form_length_bytes_one_to_four_are_accepted() {
    // Non-shortest long forms decode to the same model, and re-encode shortest.
    for prefix in [
        &[0x81, 0x03][..],
        &[0x82, 0x00, 0x03],
        &[0x83, 0x00, 0x00, 0x03],
        &[0x84, 0x00, 0x00, 0x00, 0x03],
    ] {
        let mut input = vec![0x05, 0x7A];
        input.extend_from_slice(prefix);
        input.extend_from_slice(&[0x02, b'O', b'K']);
        let zone = Zone::decode(&input).unwrap();
        assert_eq!(zone.field(0x057A, 0, 1).unwrap(), b"OK");
        assert_eq!(
            zone.encode().unwrap(),
            [0x05, 0x7A, 0x03, 0x02, b'O', b'K'],
            "prefix {prefix:02X?}"
        );
    }
}

#[test]
fn empty_input_is_an_empty_zone() {
    assert!(Zone::decode(b"").unwrap().groups().is_empty());
    assert_eq!(ZoneBuf::new().encode().unwrap(), b"");
}

#[test]
fn group_with_no_fields() {
    let zone = Zone::decode(&[0x00, 0x0E, 0x00]).unwrap();
    assert_eq!(zone.groups()[0].field_count(), 0);
    assert_eq!(zone.groups()[0].fields().next(), None);
}

#[test]
fn occurrences_and_typed_access() {
    let mut z = ZoneBuf::new();
    z.push(GroupBuf::new(12).with("a"));
    z.push(GroupBuf::new(13).with("lot1"));
    z.push(GroupBuf::new(13).with("lot2").with("x"));
    z.push(GroupBuf::new(14).with("").with("").with("msg"));
    let bytes = z.encode().unwrap();
    let zone = Zone::decode(&bytes).unwrap();
    assert_eq!(zone.occurrences(13).count(), 2);
    assert_eq!(zone.field(13, 1, 1).unwrap(), b"lot2");
    assert_eq!(zone.field(13, 1, 2).unwrap(), b"x");
    assert_eq!(
        zone.field(13, 2, 1).unwrap_err(),
        LookupError::MissingGroup {
            group: 13,
            occurrence: 2,
            found: 2
        }
    );
    // group 13 occurrence 0 starts after group 12: 2 + 1 + (1 + 1) = 5
    assert_eq!(
        zone.field(13, 0, 2).unwrap_err(),
        LookupError::MissingField {
            group: 13,
            field: 2,
            offset: 5,
            found: 1
        }
    );
    assert!(zone.field(13, 0, 0).is_err(), "fields are numbered from 1");
    assert_eq!(zone.to_buf(), z);
}

#[test]
fn truncated_group_id() {
    let mut input = EXAMPLE_101.to_vec();
    input.push(0x00);
    assert_eq!(
        Zone::decode(&input).unwrap_err(),
        ZoneError::TruncatedGroupId {
            offset: 15,
            available: 1
        }
    );
}

#[test]
fn truncated_group_length() {
    assert_eq!(
        Zone::decode(&[0x00, 0x65]).unwrap_err(),
        ZoneError::TruncatedLength {
            of: LengthOf::Group { group: 101 },
            offset: 2,
            needed: 1,
            available: 0
        }
    );
    // long form announcing 2 bytes, only 1 present
    assert_eq!(
        Zone::decode(&[0x00, 0x0C, 0x82, 0x01]).unwrap_err(),
        ZoneError::TruncatedLength {
            of: LengthOf::Group { group: 12 },
            offset: 2,
            needed: 3,
            available: 2
        }
    );
}

#[test]
fn long_form_with_zero_or_more_than_four_bytes() {
    for (byte, n) in [(0x80u8, 0u8), (0x85, 5), (0xFF, 0x7F)] {
        assert_eq!(
            Zone::decode(&[0x00, 0x0C, byte, 0, 0, 0, 0, 0, 0]).unwrap_err(),
            ZoneError::BadLengthForm {
                of: LengthOf::Group { group: 12 },
                offset: 2,
                byte,
                n
            }
        );
    }
    // the same in a field length
    assert_eq!(
        Zone::decode(&[0x00, 0x0C, 0x02, 0x80, 0x00]).unwrap_err(),
        ZoneError::BadLengthForm {
            of: LengthOf::Field { group: 12, field: 1 },
            offset: 3,
            byte: 0x80,
            n: 0
        }
    );
}

#[test]
fn group_overruns_input() {
    let input = &EXAMPLE_101[..EXAMPLE_101.len() - 1];
    assert_eq!(
        Zone::decode(input).unwrap_err(),
        ZoneError::GroupOverrun {
            group: 101,
            offset: 0,
            len: 12,
            available: 11
        }
    );
    // four-byte long form far beyond the input
    assert_eq!(
        Zone::decode(&[0x00, 0x01, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap_err(),
        ZoneError::GroupOverrun {
            group: 1,
            offset: 0,
            len: 0xFFFF_FFFF,
            available: 0
        }
    );
}

#[test]
fn fields_not_filling_exactly_the_group() {
    // Group length 10 instead of 12: the second field's 8 bytes would end one past the group.
    let mut input = EXAMPLE_101.to_vec();
    input[2] = 0x0A;
    assert_eq!(
        Zone::decode(&input).unwrap_err(),
        ZoneError::FieldOverrun {
            group: 101,
            field: 2,
            offset: 5,
            len: 8,
            available: 7
        }
    );
    // Group length 13 with one byte more: a fourth field whose length byte is there but whose
    // value is not.
    let mut input = EXAMPLE_101.to_vec();
    input[2] = 0x0D;
    input.push(0x05);
    assert_eq!(
        Zone::decode(&input).unwrap_err(),
        ZoneError::FieldOverrun {
            group: 101,
            field: 4,
            offset: 15,
            len: 5,
            available: 0
        }
    );
    // A field's long-form length cut by the group end (the bytes exist after the group).
    let input = [0x00, 0x0C, 0x01, 0x81, 0x05, 0x00];
    assert_eq!(
        Zone::decode(&input).unwrap_err(),
        ZoneError::TruncatedLength {
            of: LengthOf::Field { group: 12, field: 1 },
            offset: 3,
            needed: 2,
            available: 1
        }
    );
}

#[test]
fn limits_are_enforced() {
    let limits = Limits {
        max_input: 14,
        ..Limits::default()
    };
    assert_eq!(
        Zone::decode_with(EXAMPLE_101, &limits).unwrap_err(),
        ZoneError::TooLarge { len: 15, max: 14 }
    );
    let limits = Limits {
        max_fields_per_group: 2,
        ..Limits::default()
    };
    assert_eq!(
        Zone::decode_with(EXAMPLE_101, &limits).unwrap_err(),
        ZoneError::TooManyFields {
            group: 101,
            offset: 0,
            max: 2
        }
    );
    let limits = Limits {
        max_groups: 1,
        ..Limits::default()
    };
    let two = [EXAMPLE_101, EXAMPLE_101].concat();
    assert_eq!(
        Zone::decode_with(&two, &limits).unwrap_err(),
        ZoneError::TooManyGroups { offset: 15, max: 1 }
    );
}

#[test]
fn errors_name_offsets_in_their_messages() {
    let msg = Zone::decode(&[0x00, 0x0C, 0x02, 0x80, 0x00])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("offset 3"), "{msg}");
    assert!(msg.contains("field 1 of group 12"), "{msg}");
}

#[test]
fn named_groups_round_trip() {
    let file = FileInfo {
        flow: Flow::Fse,
        sender_type: b"TP",
        file_name: b"F00042",
        created: b"202611260830",
        sender_number: b"00000012345678",
        application: b"TO",
        recipient_type: b"OT",
        recipient_number: b"00000000000777",
    };
    let lot = LotInfo {
        flow: Flow::Dre,
        lot_number: b"001",
        created: b"202611260830",
        destination: b"011",
        invoice_count: b"3",
        subject_prefix: b"DR140700",
        mailbox: b"cpam011@example.invalid",
        spec_version: b"140700",
        crf: b"",
        lot: &[b'1'; 128],
    };
    let msg = FileMessage {
        subject_prefix: b"SV140700",
        message_zone: b"HELLO",
    };
    let amc_fields: [&[u8]; 13] = [
        b"99",
        b"0123456789",
        b"M1",
        b"z4",
        b"z5",
        b"EDI",
        b"AP",
        b"RT",
        b"DOM",
        b"1",
        b"H",
        b"INS",
        b"",
    ];
    let amc = AmcData { fields: amc_fields };
    let mut z = ZoneBuf::new();
    z.push(file.to_buf());
    z.push(lot.to_buf());
    z.push(msg.to_buf());
    z.push(amc.to_buf());
    z.push(GroupBuf::new(ids::REIMBURSEMENT_FRAMEWORK).with("R1").with("R2"));
    let bytes = z.encode().unwrap();
    let zone = Zone::decode(&bytes).unwrap();

    let f = FileInfo::read(zone.group(ids::FILE_INFO_FSE, 0).unwrap()).unwrap();
    assert_eq!(f, file);
    assert_eq!(
        zone.field(12, 0, 2).unwrap(),
        b"F00042",
        "field 2 is the file name"
    );
    assert_eq!(zone.field(12, 0, 5).unwrap(), b"TO", "field 5 is the application");
    assert_eq!(
        zone.field(12, 0, 6).unwrap(),
        b"OT",
        "field 6 is the recipient type"
    );
    assert_eq!(zone.field(12, 0, 7).unwrap(), b"00000000000777");
    let l = LotInfo::read(zone.group(ids::LOT_INFO_DRE, 0).unwrap()).unwrap();
    assert_eq!(l, lot);
    assert_eq!(
        zone.field(93, 0, 7).unwrap(),
        b"140700",
        "field 7 is the spec version"
    );
    let m = FileMessage::read(zone.group(14, 0).unwrap()).unwrap();
    assert_eq!(m, msg);
    assert_eq!(
        zone.field(14, 0, 3).unwrap(),
        b"HELLO",
        "field 3 is the message zone"
    );
    let a = AmcData::read(zone.group(1321, 0).unwrap()).unwrap();
    assert_eq!(a, amc);
    assert_eq!(a.contract_type(), b"99");
    assert_eq!(a.amc_organisation_number(), b"0123456789");
    assert_eq!(a.routing_code(), b"RT");
    assert_eq!(a.domain(), b"DOM");
    let r = ReimbursementFramework::read(zone.group(1410, 0).unwrap()).unwrap();
    assert_eq!(r.fields, vec![&b"R1"[..], b"R2"]);

    // wrong group and missing field errors
    assert!(matches!(
        FileInfo::read(zone.group(14, 0).unwrap()),
        Err(LookupError::WrongGroup { group: 14, .. })
    ));
    let short = GroupBuf::new(12).with("TP").with("F1");
    let bytes = ZoneBuf { groups: vec![short] }.encode().unwrap();
    let zone = Zone::decode(&bytes).unwrap();
    assert_eq!(
        FileInfo::read(zone.group(12, 0).unwrap()).unwrap_err(),
        LookupError::MissingField {
            group: 12,
            field: 3,
            offset: 0,
            found: 2
        }
    );
}

#[test]
fn builder_set_fills_gaps() {
    let mut g = GroupBuf::new(14);
    g.set(3, "MSG");
    assert_eq!(g.fields, vec![b"".to_vec(), b"".to_vec(), b"MSG".to_vec()]);
    g.set(1, "A");
    assert_eq!(g.field(1), Some(&b"A"[..]));
    g.set(0, "ignored");
    assert_eq!(g.fields.len(), 3);
}
