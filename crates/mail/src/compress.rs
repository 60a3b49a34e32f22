//! Attachment compression (`Z` of `FACTURE/SV/ZK`) and bounded decompression.
//!
//! **Provisional** choice (formats.md §3): the project emits **gzip** (RFC 1952), so that an
//! operator can open a decrypted attachment with `gunzip`; it carries a CRC-32 of the content. On
//! input zlib (RFC 1950), gzip and a single-entry zip archive are recognised by their magic bytes.
//!
//! Decompression streams through a bounded reader: output never grows past the configured limit
//! (default [`DEFAULT_MAX_DECOMPRESSED`]) and a size declared by the input is never used to
//! allocate, so a compression bomb costs at most the limit.
//!
//! A gzip or zlib stream must end where the input ends: a second gzip member, or any byte after
//! the first member's trailer, is refused ([`CompressError::Trailing`]). RFC 1952 lets `gunzip`
//! concatenate members, while a one-member reader ignores the rest: refusing keeps every reader
//! of the same attachment (the OCT, the insurer, an operator) on the same content.

use std::io::{Read, Write};

use flate2::Compression as Level;
use flate2::bufread::{GzDecoder, ZlibDecoder};
use flate2::read::DeflateDecoder;
use flate2::write::GzEncoder;

/// Default bound on a decompressed attachment: 16 MiB. A B2 file of a few thousand invoices is a
/// few MB; a bomb costs at most this much memory per worker decompressing it.
pub const DEFAULT_MAX_DECOMPRESSED: u64 = 16 * 1024 * 1024;

/// A compressed container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zlib,
    Gzip,
    Zip,
}

impl Compression {
    /// Lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zlib => "zlib",
            Compression::Gzip => "gzip",
            Compression::Zip => "zip",
        }
    }
}

/// Why decompression failed.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("attachment is not compressed (no zlib, gzip or zip magic bytes)")]
    NotCompressed,
    #[error("{format} data decompresses to more than the {limit}-byte limit")]
    TooLarge { format: &'static str, limit: u64 },
    #[error("{format} data is corrupt or truncated: {reason}")]
    Corrupt { format: &'static str, reason: String },
    #[error(
        "{format} data continues after the end of its stream at byte {offset} ({extra} more bytes: a second member or trailing data)"
    )]
    Trailing {
        format: &'static str,
        offset: usize,
        extra: usize,
    },
    #[error("zip: {reason} (at byte {offset})")]
    Zip { offset: usize, reason: String },
    #[error("compression failed: {0}")]
    Write(std::io::Error),
}

/// Compresses `data` in the emitted format (gzip, default level).
pub fn compress(data: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Level::default());
    enc.write_all(data).map_err(CompressError::Write)?;
    enc.finish().map_err(CompressError::Write)
}

/// Recognises a compressed container by its first bytes.
pub fn detect(data: &[u8]) -> Option<Compression> {
    match data {
        [0x1f, 0x8b, ..] => Some(Compression::Gzip),
        [b'P', b'K', 3, 4, ..] => Some(Compression::Zip),
        // zlib: CM = 8 (deflate), window <= 32 KiB, and the header checksum.
        [cmf, flg, ..]
            if cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0 =>
        {
            Some(Compression::Zlib)
        }
        _ => None,
    }
}

/// Reads `reader` to its end, refusing more than `limit` bytes of output.
fn read_bounded(reader: impl Read, limit: u64, format: &'static str) -> Result<Vec<u8>, CompressError> {
    let mut out = Vec::new();
    let mut bounded = reader.take(limit.saturating_add(1));
    bounded
        .read_to_end(&mut out)
        .map_err(|e| CompressError::Corrupt {
            format,
            reason: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(CompressError::TooLarge { format, limit });
    }
    Ok(out)
}

/// Detects the container and decompresses it, producing at most `limit` bytes.
pub fn decompress(data: &[u8], limit: u64) -> Result<(Compression, Vec<u8>), CompressError> {
    let format = detect(data).ok_or(CompressError::NotCompressed)?;
    let out = match format {
        Compression::Gzip => {
            let mut dec = GzDecoder::new(data);
            let out = read_bounded(&mut dec, limit, "gzip")?;
            nothing_after(data, dec.into_inner(), "gzip")?;
            out
        }
        Compression::Zlib => {
            let mut dec = ZlibDecoder::new(data);
            let out = read_bounded(&mut dec, limit, "zlib")?;
            nothing_after(data, dec.into_inner(), "zlib")?;
            out
        }
        Compression::Zip => unzip_single(data, limit)?,
    };
    Ok((format, out))
}

/// Refuses input left over once the decoder (reading from a slice, so it consumed only its own
/// stream) reached the end of the stream.
fn nothing_after(data: &[u8], rest: &[u8], format: &'static str) -> Result<(), CompressError> {
    if rest.is_empty() {
        return Ok(());
    }
    Err(CompressError::Trailing {
        format,
        offset: data.len() - rest.len(),
        extra: rest.len(),
    })
}

fn le16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

fn le32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

fn zip_err(offset: usize, reason: impl Into<String>) -> CompressError {
    CompressError::Zip {
        offset,
        reason: reason.into(),
    }
}

/// Extracts the single entry of a zip archive (stored or deflated), from its local header.
fn unzip_single(data: &[u8], limit: u64) -> Result<Vec<u8>, CompressError> {
    const LOCAL: u32 = 0x0403_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const DESCRIPTOR: u32 = 0x0807_4b50;
    const END: u32 = 0x0605_4b50;
    let truncated = |at| zip_err(at, "local header truncated");
    if le32(data, 0) != Some(LOCAL) {
        return Err(zip_err(0, "no local file header"));
    }
    let flags = le16(data, 6).ok_or_else(|| truncated(6))?;
    let method = le16(data, 8).ok_or_else(|| truncated(8))?;
    let crc = le32(data, 14).ok_or_else(|| truncated(14))?;
    let csize = le32(data, 18).ok_or_else(|| truncated(18))?;
    let usize_ = le32(data, 22).ok_or_else(|| truncated(22))?;
    let name_len = le16(data, 26).ok_or_else(|| truncated(26))?;
    let extra_len = le16(data, 28).ok_or_else(|| truncated(28))?;
    if flags & 1 != 0 {
        return Err(zip_err(6, "encrypted zip entries are not supported"));
    }
    if csize == u32::MAX || usize_ == u32::MAX {
        return Err(zip_err(18, "zip64 entries are not supported"));
    }
    let start = 30usize + usize::from(name_len) + usize::from(extra_len);
    let body = data
        .get(start..)
        .ok_or_else(|| zip_err(30, "file name or extra field truncated"))?;
    let descriptor = flags & 8 != 0;
    let (out, consumed) = match method {
        0 => {
            if descriptor {
                return Err(zip_err(6, "stored entry with a data descriptor is not supported"));
            }
            let n = usize::try_from(csize).map_err(|_| zip_err(18, "size out of range"))?;
            if u64::from(csize) > limit {
                return Err(CompressError::TooLarge { format: "zip", limit });
            }
            let content = body
                .get(..n)
                .ok_or_else(|| zip_err(start, "stored data truncated"))?;
            (content.to_vec(), n)
        }
        8 => {
            let mut dec = DeflateDecoder::new(body);
            let out = read_bounded(&mut dec, limit, "zip")?;
            let consumed = usize::try_from(dec.total_in()).unwrap_or(usize::MAX);
            if !descriptor && u64::from(csize) != dec.total_in() {
                return Err(zip_err(18, "compressed size does not match the deflate stream"));
            }
            (out, consumed)
        }
        m => return Err(zip_err(8, format!("compression method {m} is not supported"))),
    };
    let mut next = start.saturating_add(consumed);
    let (crc, usize_) = if descriptor {
        // Optional signature, then CRC-32, compressed size, uncompressed size.
        if le32(data, next) == Some(DESCRIPTOR) {
            next = next.saturating_add(4);
        }
        let c = le32(data, next).ok_or_else(|| zip_err(next, "data descriptor truncated"))?;
        let u =
            le32(data, next.saturating_add(8)).ok_or_else(|| zip_err(next, "data descriptor truncated"))?;
        next = next.saturating_add(12);
        (c, u)
    } else {
        (crc, usize_)
    };
    if out.len() as u64 != u64::from(usize_) {
        return Err(zip_err(
            22,
            format!("entry is {} bytes, header says {usize_}", out.len()),
        ));
    }
    let mut check = flate2::Crc::new();
    check.update(&out);
    if check.sum() != crc {
        return Err(zip_err(14, "CRC-32 mismatch"));
    }
    match le32(data, next) {
        Some(CENTRAL) | Some(END) | None => Ok(out),
        Some(LOCAL) => Err(zip_err(next, "the archive holds more than one entry")),
        Some(_) => Err(zip_err(next, "unexpected data after the entry")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, ZlibEncoder};

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Level::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A minimal zip with one entry, written by hand from the APPNOTE layout.
    fn zip(name: &str, data: &[u8], method: u16) -> Vec<u8> {
        let payload = if method == 8 {
            let mut e = DeflateEncoder::new(Vec::new(), Level::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.to_vec()
        };
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let mut z = Vec::new();
        z.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        z.extend_from_slice(&20u16.to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(&method.to_le_bytes());
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&crc.sum().to_le_bytes());
        z.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        z.extend_from_slice(&(data.len() as u32).to_le_bytes());
        z.extend_from_slice(&(name.len() as u16).to_le_bytes());
        z.extend_from_slice(&0u16.to_le_bytes());
        z.extend_from_slice(name.as_bytes());
        z.extend_from_slice(&payload);
        z.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        z
    }

    #[test]
    fn gzip_round_trip_and_detection() {
        let data = b"000 header record".repeat(100);
        let c = compress(&data).unwrap();
        assert_eq!(&c[..2], &[0x1f, 0x8b]);
        assert_eq!(
            decompress(&c, 1 << 20).unwrap(),
            (Compression::Gzip, data.clone())
        );
        assert_eq!(
            decompress(&zlib(&data), 1 << 20).unwrap(),
            (Compression::Zlib, data)
        );
        assert_eq!(detect(b"000"), None);
        assert_eq!(detect(&[0x78, 0x9c]), Some(Compression::Zlib));
        assert_eq!(detect(&[0x78, 0x9d]), None);
    }

    #[test]
    fn zip_stored_and_deflated() {
        let data = b"B2 file content\r\n".repeat(50);
        for method in [0u16, 8] {
            let z = zip("F00001.B2", &data, method);
            assert_eq!(decompress(&z, 1 << 20).unwrap(), (Compression::Zip, data.clone()));
        }
        let mut two = zip("a", b"x", 0);
        two.truncate(two.len() - 4);
        two.extend_from_slice(&zip("b", b"y", 0));
        assert!(matches!(decompress(&two, 100), Err(CompressError::Zip { .. })));
        let mut bad_crc = zip("a", b"hello", 0);
        bad_crc[14] ^= 1;
        assert!(matches!(
            decompress(&bad_crc, 100),
            Err(CompressError::Zip { offset: 14, .. })
        ));
    }

    #[test]
    fn bomb_is_bounded() {
        let zeros = vec![0u8; 4 * 1024 * 1024];
        let c = compress(&zeros).unwrap();
        assert!(c.len() < 20_000);
        assert!(matches!(
            decompress(&c, 1024 * 1024),
            Err(CompressError::TooLarge {
                format: "gzip",
                limit: 1_048_576
            })
        ));
        assert!(matches!(
            decompress(&zip("z", &zeros, 8), 1000),
            Err(CompressError::TooLarge { format: "zip", .. })
        ));
        assert_eq!(decompress(&c, 4 * 1024 * 1024).unwrap().1.len(), zeros.len());
    }

    #[test]
    fn anything_after_the_first_member_is_refused() {
        let first = compress(b"000 first member").unwrap();
        let second = compress(b"000 smuggled second member").unwrap();
        let two = [first.clone(), second.clone()].concat();
        match decompress(&two, 1 << 20) {
            Err(CompressError::Trailing {
                format: "gzip",
                offset,
                extra,
            }) => assert_eq!((offset, extra), (first.len(), second.len())),
            other => panic!("two members: {other:?}"),
        }
        let garbage = [first.clone(), b"x".to_vec()].concat();
        assert!(matches!(
            decompress(&garbage, 1 << 20),
            Err(CompressError::Trailing { extra: 1, .. })
        ));
        let z = [zlib(b"abc"), b"tail".to_vec()].concat();
        assert!(matches!(
            decompress(&z, 1 << 20),
            Err(CompressError::Trailing {
                format: "zlib",
                extra: 4,
                ..
            })
        ));
        assert_eq!(decompress(&first, 1 << 20).unwrap().1, b"000 first member");
    }

    #[test]
    fn truncated_is_an_error() {
        let c = compress(&b"abc".repeat(1000)).unwrap();
        for cut in [3, 10, c.len() - 1] {
            assert!(matches!(
                decompress(&c[..cut], 1 << 20),
                Err(CompressError::Corrupt { .. })
            ));
        }
    }
}
