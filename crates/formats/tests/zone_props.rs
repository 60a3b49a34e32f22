//! Property tests of the memory-zone codec: round trips both ways, and "never panics" on arbitrary
//! and mutated input (the stable-Rust stand-in for fuzzing that CI runs on every build).

use proptest::prelude::*;
use svoct_formats::zone::{GroupBuf, Zone, ZoneBuf, fuzz_decode, length_size};

/// A field value: mostly short, sometimes across the 0x7F/0x80 and 0xFF/0x100 boundaries.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => proptest::collection::vec(any::<u8>(), 120..140),
        1 => proptest::collection::vec(any::<u8>(), 250..270),
    ]
}

fn group() -> impl Strategy<Value = GroupBuf> {
    (
        prop_oneof![
            Just(12u16),
            Just(13),
            Just(14),
            Just(92),
            Just(93),
            Just(1321),
            any::<u16>()
        ],
        proptest::collection::vec(value(), 0..8),
    )
        .prop_map(|(id, fields)| GroupBuf { id, fields })
}

fn model() -> impl Strategy<Value = ZoneBuf> {
    proptest::collection::vec(group(), 0..6).prop_map(|groups| ZoneBuf { groups })
}

/// An independent, naive encoder written from the grammar, to check the library's encoder.
fn naive_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = (len as u32)
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut v = vec![0x80 + bytes.len() as u8];
    v.extend(bytes);
    v
}

fn naive_encode(z: &ZoneBuf) -> Vec<u8> {
    let mut out = Vec::new();
    for g in &z.groups {
        let mut body = Vec::new();
        for f in &g.fields {
            body.extend(naive_length(f.len()));
            body.extend(f);
        }
        out.extend(g.id.to_be_bytes());
        out.extend(naive_length(body.len()));
        out.extend(body);
    }
    out
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::Flip(i, b) if n > 0 => bytes[i % n] ^= b | 1,
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Delete(i) if n > 0 => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// decode(encode(model)) == model, and the encoding equals the naive one.
    #[test]
    fn model_round_trip(z in model()) {
        let bytes = z.encode().unwrap();
        prop_assert_eq!(&bytes, &naive_encode(&z));
        let decoded = Zone::decode(&bytes).unwrap();
        prop_assert_eq!(decoded.to_buf(), z);
    }

    /// encode(decode(x)) == x for every canonical encoding x.
    #[test]
    fn canonical_bytes_round_trip(z in model()) {
        let bytes = z.encode().unwrap();
        let again = Zone::decode(&bytes).unwrap().encode().unwrap();
        prop_assert_eq!(again, bytes);
    }

    /// The shortest-form size matches the naive encoder.
    #[test]
    fn length_size_is_shortest(len in prop_oneof![0usize..0x300, any::<u32>().prop_map(|v| v as usize)]) {
        prop_assert_eq!(length_size(len), Some(naive_length(len).len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Arbitrary bytes: never panics; a successful decode re-encodes stably (checked inside).
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzz_decode(&data);
    }

    /// Mutated valid zones: never panic, and errors point inside the input.
    #[test]
    fn mutated_zones_never_panic(z in model(), ms in proptest::collection::vec(mutation(), 1..4)) {
        let mut bytes = z.encode().unwrap();
        for m in &ms {
            apply(&mut bytes, m);
        }
        if !fuzz_decode(&bytes) {
            let msg = Zone::decode(&bytes).unwrap_err().to_string();
            prop_assert!(msg.starts_with("offset "), "{}", msg);
        }
    }
}
