//! Lots handed over as a SESAM-Vitale API memory zone (what `svoct gen --format zone` writes):
//! the lots are in field 9 of each lot-information group (13 for FSE, 93 for DRE), so `ps send`
//! takes them from there instead of refusing the file as a B2 of the wrong length.
//! The zone layout is provisional (`docs/formats/zone.md`).

use svoct_formats::b2;
use svoct_formats::zone::{LotInfo, Zone, ids};

use crate::error::PsError;

fn is_zone_group(id: u16) -> bool {
    matches!(
        id,
        ids::FILE_INFO_FSE | ids::FILE_INFO_DRE | ids::LOT_INFO_FSE | ids::LOT_INFO_DRE | ids::FILE_MESSAGE
    )
}

/// The B2 lots of a lot file: the bytes as they are when they parse as B2 (or are not a zone);
/// the lots of every group 13/93, in order, when they are a memory zone. A zone whose lot groups
/// cannot be read, or that holds no lot, is an error that says it is a memory zone.
pub fn lots_of(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, PsError> {
    if b2::parse(&bytes).is_ok() {
        return Ok(bytes);
    }
    let Ok(zone) = Zone::decode(&bytes) else {
        return Ok(bytes);
    };
    if zone.groups().is_empty() || !zone.groups().iter().all(|g| is_zone_group(g.id)) {
        return Ok(bytes);
    }
    let zone_err = |reason: String| PsError::Zone {
        path: name.to_owned(),
        reason,
    };
    let mut lots = Vec::new();
    for g in zone.groups() {
        if g.id != ids::LOT_INFO_FSE && g.id != ids::LOT_INFO_DRE {
            continue;
        }
        let info = LotInfo::read(g)
            .map_err(|e| zone_err(format!("group {} (byte offset {}): {e}", g.id, g.offset)))?;
        lots.extend_from_slice(info.lot);
    }
    if lots.is_empty() {
        return Err(zone_err(
            "it holds no lot (no group 13 or 93 with its field 9)".into(),
        ));
    }
    Ok(lots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use svoct_formats::b2::synth::{SynthParams, generate_bytes};
    use svoct_formats::zone::{FileMessage, Flow, ZoneBuf};

    fn lot_group(lot: &[u8]) -> svoct_formats::zone::GroupBuf {
        LotInfo {
            flow: Flow::Fse,
            lot_number: b"001",
            created: b"202611260000",
            destination: b"011",
            invoice_count: b"1",
            subject_prefix: b"SV140700",
            mailbox: b"cpam011@x.invalid",
            spec_version: b"140700",
            crf: b"011",
            lot,
        }
        .to_buf()
    }

    #[test]
    fn b2_bytes_pass_unchanged_and_a_zone_gives_its_lots() {
        let lots = generate_bytes(&SynthParams::default()).unwrap();
        assert_eq!(lots_of("l.b2", lots.clone()).unwrap(), lots);
        let mut z = ZoneBuf::new();
        z.push(lot_group(&lots));
        z.push(
            FileMessage {
                subject_prefix: b"SV140700",
                message_zone: b"x",
            }
            .to_buf(),
        );
        let zone = z.encode().unwrap();
        assert_eq!(lots_of("z.bin", zone).unwrap(), lots);
    }

    #[test]
    fn a_zone_without_lots_says_it_is_a_zone() {
        let mut z = ZoneBuf::new();
        z.push(
            FileMessage {
                subject_prefix: b"SV140700",
                message_zone: b"x",
            }
            .to_buf(),
        );
        let err = lots_of("z.bin", z.encode().unwrap()).unwrap_err().to_string();
        assert!(err.contains("memory zone") && err.contains("no lot"), "{err}");
    }

    #[test]
    fn other_bytes_are_left_to_the_b2_parser() {
        let junk = vec![b'0'; 130];
        assert_eq!(lots_of("j", junk.clone()).unwrap(), junk);
    }
}
