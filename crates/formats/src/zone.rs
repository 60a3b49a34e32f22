//! SESAM-Vitale API memory zones: groups of positional fields (`formats.md` §1).
//!
//! The SESAM-Vitale API hands lots and file parameters over as *memory zones*. Accepting that form
//! lets a billing software pass us exactly what the real API returned, and lets us emit file
//! headers the way the API's file formatting would. The grammar is public:
//!
//! ```text
//! zone   := group*
//! group  := id:u16 big-endian, len:length, field*      -- the fields fill exactly len bytes
//! field  := len:length, value[len]                     -- 1st field = champ 1, 2nd = champ 2, ...
//! length := 0x00..0x7F | 0x80+n, then n bytes big-endian (n = 1..4)
//! ```
//!
//! - [`Zone`] is a borrowing decode: every field is a `&[u8]` into the input, so decoding
//!   allocates only the group and field tables, never the values.
//! - [`ZoneBuf`] / [`GroupBuf`] are the owned builder; [`ZoneBuf::encode`] always writes the
//!   shortest length form, so `encode(decode(x)) == x` for every canonical input.
//! - [`FileInfo`], [`LotInfo`], [`FileMessage`], [`AmcData`], [`ReimbursementFramework`] give
//!   typed access to the groups the OCT annex names. Which of their fields are public and which
//!   are this project's provisional choice is written down in `docs/formats/zone.md`.
//!
//! Decoding is lenient on one point: a long length form that is not the shortest (e.g. `81 05`)
//! is accepted, since the API itself has been seen writing `81 xx`; re-encoding normalises it.

use std::fmt;

use thiserror::Error;

/// Limits applied while decoding, so that a hostile input cannot make the decoder allocate
/// without bound. Every field is at least one byte and every group at least three, so the default
/// limits are generous for real zones (a few kilobytes to a few megabytes of lots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Largest number of groups (all occurrences counted).
    pub max_groups: usize,
    /// Largest number of fields in one group.
    pub max_fields_per_group: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input: 256 * 1024 * 1024,
            max_groups: 1_000_000,
            max_fields_per_group: 65_536,
        }
    }
}

/// Where a length prefix belongs, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LengthOf {
    /// The length of a group.
    Group { group: u16 },
    /// The length of field `field` (1-based) of a group.
    Field { group: u16, field: usize },
}

impl fmt::Display for LengthOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthOf::Group { group } => write!(f, "group {group}"),
            LengthOf::Field { group, field } => write!(f, "field {field} of group {group}"),
        }
    }
}

/// Why a byte sequence is not a memory zone, or why a zone cannot be encoded. Every decoding
/// error names the byte offset (0-based, from the start of the zone) where the problem sits.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ZoneError {
    /// The input is larger than [`Limits::max_input`].
    #[error("memory zone of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// Fewer than two bytes are left where a group identifier starts.
    #[error("offset {offset}: truncated group identifier ({available} byte left, 2 needed)")]
    TruncatedGroupId { offset: usize, available: usize },
    /// The input (or, for a field, the group) ends inside a length prefix.
    #[error("offset {offset}: truncated length of {of} ({needed} bytes needed, {available} left)")]
    TruncatedLength {
        of: LengthOf,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// A long length form announces 0 or more than 4 length bytes.
    #[error(
        "offset {offset}: length of {of} starts with 0x{byte:02X}, a long form of {n} bytes (1 to 4 allowed)"
    )]
    BadLengthForm {
        of: LengthOf,
        offset: usize,
        byte: u8,
        n: u8,
    },
    /// A group announces more bytes than the input holds.
    #[error("offset {offset}: group {group} of {len} bytes overruns the input ({available} bytes left)")]
    GroupOverrun {
        group: u16,
        offset: usize,
        len: u64,
        available: usize,
    },
    /// A field announces more bytes than its group has left: the fields do not fill the group
    /// length exactly.
    #[error(
        "offset {offset}: field {field} of group {group} of {len} bytes overruns the group ({available} bytes left in the group)"
    )]
    FieldOverrun {
        group: u16,
        field: usize,
        offset: usize,
        len: u64,
        available: usize,
    },
    /// More groups than [`Limits::max_groups`].
    #[error("offset {offset}: more than {max} groups")]
    TooManyGroups { offset: usize, max: usize },
    /// More fields in one group than [`Limits::max_fields_per_group`].
    #[error("offset {offset}: group {group} has more than {max} fields")]
    TooManyFields { group: u16, offset: usize, max: usize },
    /// A value (or a group) is too long for a 4-byte length.
    #[error("{of}: {len} bytes cannot be encoded (at most 4 length bytes)")]
    TooLongToEncode { of: LengthOf, len: usize },
}

/// A group or field that typed access looked for and did not find.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LookupError {
    /// No such occurrence of the group.
    #[error("group {group} occurrence {occurrence} is absent ({found} present)")]
    MissingGroup {
        group: u16,
        occurrence: usize,
        found: usize,
    },
    /// The group holds fewer fields than asked for.
    #[error("field {field} of group {group} (at offset {offset}) is absent ({found} fields present)")]
    MissingField {
        group: u16,
        field: usize,
        offset: usize,
        found: usize,
    },
    /// The group handed to a typed view is not one it reads.
    #[error("group {group} is not a {expected} group")]
    WrongGroup { group: u16, expected: &'static str },
}

/// One occurrence of a group, its fields borrowed from the decoded input.
///
/// A group keeps its validated body and walks it on demand: decoding allocates nothing per
/// group, and groups hold a handful of fields, so field access by number stays cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group<'a> {
    /// The group number (e.g. 12 for file information).
    pub id: u16,
    /// Offset of the group identifier in the zone, for error messages.
    pub offset: usize,
    /// The group body: the encoded fields, already checked to fill it exactly.
    body: &'a [u8],
    /// Number of fields in the body.
    count: usize,
}

/// Iterator over the fields of a [`Group`], in order (champ 1 first).
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    body: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // The body was validated by `Zone::decode_with`; an error here cannot happen and simply
        // ends the iteration.
        let of = LengthOf::Group { group: 0 };
        let (len, used) = read_length(self.body, self.pos, self.body.len(), of).ok()?;
        let start = self.pos.checked_add(used)?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        let value = self.body.get(start..end)?;
        self.pos = end;
        self.left -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Fields<'_> {}

impl<'a> Group<'a> {
    /// All fields, in order: the first is *champ 1*.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            body: self.body,
            pos: 0,
            left: self.count,
        }
    }

    /// Number of fields.
    pub fn field_count(&self) -> usize {
        self.count
    }

    /// The encoded body (the fields with their length prefixes), exactly as in the input.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Field `n` (1-based, as the API documentation numbers them), if present.
    pub fn field(&self, n: usize) -> Option<&'a [u8]> {
        self.fields().nth(n.checked_sub(1)?)
    }

    /// Field `n` (1-based), or an error naming the group, its offset and the field.
    pub fn require(&self, n: usize) -> Result<&'a [u8], LookupError> {
        self.field(n).ok_or(LookupError::MissingField {
            group: self.id,
            field: n,
            offset: self.offset,
            found: self.count,
        })
    }

    /// An owned copy, for editing and re-encoding.
    pub fn to_buf(&self) -> GroupBuf {
        GroupBuf {
            id: self.id,
            fields: self.fields().map(<[u8]>::to_vec).collect(),
        }
    }
}

/// A decoded memory zone: the groups in input order, borrowing the input.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Zone<'a> {
    groups: Vec<Group<'a>>,
}

impl<'a> Zone<'a> {
    /// Decode a zone with the default [`Limits`].
    pub fn decode(input: &'a [u8]) -> Result<Zone<'a>, ZoneError> {
        Zone::decode_with(input, &Limits::default())
    }

    /// Decode a zone; every byte of `input` must belong to a group.
    pub fn decode_with(input: &'a [u8], limits: &Limits) -> Result<Zone<'a>, ZoneError> {
        if input.len() > limits.max_input {
            return Err(ZoneError::TooLarge {
                len: input.len(),
                max: limits.max_input,
            });
        }
        let mut groups = Vec::new();
        let mut pos = 0usize;
        while pos < input.len() {
            if groups.len() >= limits.max_groups {
                return Err(ZoneError::TooManyGroups {
                    offset: pos,
                    max: limits.max_groups,
                });
            }
            let group_offset = pos;
            let id = match input.get(pos..pos + 2) {
                Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
                _ => {
                    return Err(ZoneError::TruncatedGroupId {
                        offset: pos,
                        available: input.len() - pos,
                    });
                }
            };
            pos += 2;
            let (len, used) = read_length(input, pos, input.len(), LengthOf::Group { group: id })?;
            pos += used;
            let available = input.len() - pos;
            let body_len = match usize::try_from(len) {
                Ok(l) if l <= available => l,
                _ => {
                    return Err(ZoneError::GroupOverrun {
                        group: id,
                        offset: group_offset,
                        len,
                        available,
                    });
                }
            };
            let body_start = pos;
            let end = pos + body_len;
            let mut count = 0usize;
            while pos < end {
                if count >= limits.max_fields_per_group {
                    return Err(ZoneError::TooManyFields {
                        group: id,
                        offset: group_offset,
                        max: limits.max_fields_per_group,
                    });
                }
                let number = count + 1;
                let field_offset = pos;
                let (flen, used) = read_length(
                    input,
                    pos,
                    end,
                    LengthOf::Field {
                        group: id,
                        field: number,
                    },
                )?;
                pos += used;
                let left = end - pos;
                let flen_usize = match usize::try_from(flen) {
                    Ok(l) if l <= left => l,
                    _ => {
                        return Err(ZoneError::FieldOverrun {
                            group: id,
                            field: number,
                            offset: field_offset,
                            len: flen,
                            available: left,
                        });
                    }
                };
                pos += flen_usize;
                count += 1;
            }
            groups.push(Group {
                id,
                offset: group_offset,
                body: input.get(body_start..end).unwrap_or_default(),
                count,
            });
        }
        Ok(Zone { groups })
    }

    /// All groups in input order.
    pub fn groups(&self) -> &[Group<'a>] {
        &self.groups
    }

    /// The occurrences of group `id`, in input order.
    pub fn occurrences(&self, id: u16) -> impl Iterator<Item = &Group<'a>> {
        self.groups.iter().filter(move |g| g.id == id)
    }

    /// Occurrence `occurrence` (0-based) of group `id`.
    pub fn group(&self, id: u16, occurrence: usize) -> Result<&Group<'a>, LookupError> {
        self.occurrences(id)
            .nth(occurrence)
            .ok_or_else(|| LookupError::MissingGroup {
                group: id,
                occurrence,
                found: self.occurrences(id).count(),
            })
    }

    /// Typed access: field `field` (1-based) of occurrence `occurrence` (0-based) of group `id`.
    pub fn field(&self, id: u16, occurrence: usize, field: usize) -> Result<&'a [u8], LookupError> {
        self.group(id, occurrence)?.require(field)
    }

    /// An owned copy of the whole zone.
    pub fn to_buf(&self) -> ZoneBuf {
        ZoneBuf {
            groups: self.groups.iter().map(Group::to_buf).collect(),
        }
    }

    /// Encode again, with the shortest length forms.
    pub fn encode(&self) -> Result<Vec<u8>, ZoneError> {
        let mut out = Vec::new();
        for g in &self.groups {
            let fields: Vec<&[u8]> = g.fields().collect();
            encode_group(&mut out, g.id, &fields)?;
        }
        Ok(out)
    }
}

/// An owned group under construction.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct GroupBuf {
    /// The group number.
    pub id: u16,
    /// Field values: index 0 is *champ 1*.
    pub fields: Vec<Vec<u8>>,
}

impl GroupBuf {
    /// An empty group (no fields).
    pub fn new(id: u16) -> GroupBuf {
        GroupBuf {
            id,
            fields: Vec::new(),
        }
    }

    /// Append the next field.
    pub fn push(&mut self, value: impl AsRef<[u8]>) -> &mut GroupBuf {
        self.fields.push(value.as_ref().to_vec());
        self
    }

    /// Builder form of [`GroupBuf::push`].
    pub fn with(mut self, value: impl AsRef<[u8]>) -> GroupBuf {
        self.push(value);
        self
    }

    /// Set field `n` (1-based); missing fields before it become empty. `n = 0` is ignored.
    pub fn set(&mut self, n: usize, value: impl AsRef<[u8]>) -> &mut GroupBuf {
        if let Some(i) = n.checked_sub(1) {
            if self.fields.len() <= i {
                self.fields.resize(i + 1, Vec::new());
            }
            if let Some(slot) = self.fields.get_mut(i) {
                *slot = value.as_ref().to_vec();
            }
        }
        self
    }

    /// Field `n` (1-based), if present.
    pub fn field(&self, n: usize) -> Option<&[u8]> {
        n.checked_sub(1)
            .and_then(|i| self.fields.get(i))
            .map(Vec::as_slice)
    }
}

/// An owned memory zone: the builder, and the model that round-trip tests compare.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ZoneBuf {
    /// Groups in order; a group id may occur several times (occurrences).
    pub groups: Vec<GroupBuf>,
}

impl ZoneBuf {
    /// An empty zone.
    pub fn new() -> ZoneBuf {
        ZoneBuf::default()
    }

    /// Append a group.
    pub fn push(&mut self, group: GroupBuf) -> &mut ZoneBuf {
        self.groups.push(group);
        self
    }

    /// Encode with the shortest length forms.
    pub fn encode(&self) -> Result<Vec<u8>, ZoneError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Append the encoding to `out`. On error, `out` may hold a partial encoding.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), ZoneError> {
        for g in &self.groups {
            encode_group(out, g.id, &g.fields)?;
        }
        Ok(())
    }
}

/// Read a length prefix at `pos`; the prefix must end at or before `end`. Returns the value and
/// the number of bytes the prefix takes.
fn read_length(input: &[u8], pos: usize, end: usize, of: LengthOf) -> Result<(u64, usize), ZoneError> {
    let window = input.get(pos..end).unwrap_or_default();
    let Some(&first) = window.first() else {
        return Err(ZoneError::TruncatedLength {
            of,
            offset: pos,
            needed: 1,
            available: 0,
        });
    };
    if first < 0x80 {
        return Ok((u64::from(first), 1));
    }
    let n = first - 0x80;
    if n == 0 || n > 4 {
        return Err(ZoneError::BadLengthForm {
            of,
            offset: pos,
            byte: first,
            n,
        });
    }
    let n = usize::from(n);
    let Some(bytes) = window.get(1..1 + n) else {
        return Err(ZoneError::TruncatedLength {
            of,
            offset: pos,
            needed: 1 + n,
            available: window.len(),
        });
    };
    let value = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok((value, 1 + n))
}

/// Number of bytes the shortest length form of `len` takes, or `None` beyond 4 length bytes.
pub fn length_size(len: usize) -> Option<usize> {
    match len {
        0..=0x7F => Some(1),
        0x80..=0xFF => Some(2),
        0x100..=0xFFFF => Some(3),
        0x1_0000..=0xFF_FFFF => Some(4),
        _ if u32::try_from(len).is_ok() => Some(5),
        _ => None,
    }
}

/// Append the shortest length form of `len`.
fn write_length(out: &mut Vec<u8>, len: usize, of: LengthOf) -> Result<(), ZoneError> {
    let size = length_size(len).ok_or(ZoneError::TooLongToEncode { of, len })?;
    if size == 1 {
        // len <= 0x7F here.
        out.push(len as u8);
    } else {
        let n = size - 1;
        let be = (len as u64).to_be_bytes();
        out.push(0x80 + n as u8);
        out.extend_from_slice(be.get(8 - n..).unwrap_or_default());
    }
    Ok(())
}

fn encode_group<F: AsRef<[u8]>>(out: &mut Vec<u8>, id: u16, fields: &[F]) -> Result<(), ZoneError> {
    let mut body_len = 0usize;
    for (i, f) in fields.iter().enumerate() {
        let len = f.as_ref().len();
        let of = LengthOf::Field {
            group: id,
            field: i + 1,
        };
        let size = length_size(len).ok_or(ZoneError::TooLongToEncode { of, len })?;
        body_len = body_len
            .checked_add(size)
            .and_then(|b| b.checked_add(len))
            .ok_or(ZoneError::TooLongToEncode {
                of: LengthOf::Group { group: id },
                len: usize::MAX,
            })?;
    }
    out.extend_from_slice(&id.to_be_bytes());
    write_length(out, body_len, LengthOf::Group { group: id })?;
    for (i, f) in fields.iter().enumerate() {
        let f = f.as_ref();
        write_length(
            out,
            f.len(),
            LengthOf::Field {
                group: id,
                field: i + 1,
            },
        )?;
        out.extend_from_slice(f);
    }
    Ok(())
}

/// Field values are ASCII or Latin-1 text in practice: decode them byte for byte into a `String`.
pub fn latin1(value: &[u8]) -> String {
    value.iter().map(|&b| char::from(b)).collect()
}

/// Whether a value reads as printable Latin-1 text (no control bytes), as opposed to binary.
pub fn is_text(value: &[u8]) -> bool {
    value.iter().all(|&b| (0x20..0x7F).contains(&b) || b >= 0xA0)
}

/// Group numbers the OCT annex names.
pub mod ids {
    /// File information of an FSE file.
    pub const FILE_INFO_FSE: u16 = 12;
    /// File information of a DRE file.
    pub const FILE_INFO_DRE: u16 = 92;
    /// Lot information of an FSE lot.
    pub const LOT_INFO_FSE: u16 = 13;
    /// Lot information of a DRE lot.
    pub const LOT_INFO_DRE: u16 = 93;
    /// The file message zone (field 3).
    pub const FILE_MESSAGE: u16 = 14;
    /// Invoice AMC data.
    pub const AMC_DATA: u16 = 1321;
    /// Reimbursement framework.
    pub const REIMBURSEMENT_FRAMEWORK: u16 = 1410;
}

/// Whether a file or lot group is about FSE (invoices) or DRE (requests to the AMC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// *Feuille de soins électronique* (groups 12, 13).
    Fse,
    /// *Demande de remboursement électronique* (groups 92, 93).
    Dre,
}

/// A group that exists in an FSE and a DRE flavour (12/92, 13/93): one place maps the group
/// identifier to its [`Flow`] and back, so reading and building cannot disagree.
#[derive(Clone, Copy)]
struct FlowIds {
    fse: u16,
    dre: u16,
    /// What the group is, for [`LookupError::WrongGroup`].
    expected: &'static str,
}

const FILE_INFO_IDS: FlowIds = FlowIds {
    fse: ids::FILE_INFO_FSE,
    dre: ids::FILE_INFO_DRE,
    expected: "file information (12/92)",
};

const LOT_INFO_IDS: FlowIds = FlowIds {
    fse: ids::LOT_INFO_FSE,
    dre: ids::LOT_INFO_DRE,
    expected: "lot information (13/93)",
};

impl FlowIds {
    fn flow_of(self, g: &Group<'_>) -> Result<Flow, LookupError> {
        match g.id {
            id if id == self.fse => Ok(Flow::Fse),
            id if id == self.dre => Ok(Flow::Dre),
            group => Err(LookupError::WrongGroup {
                group,
                expected: self.expected,
            }),
        }
    }

    fn id_of(self, flow: Flow) -> u16 {
        match flow {
            Flow::Fse => self.fse,
            Flow::Dre => self.dre,
        }
    }
}

/// Group 12 (FSE) or 92 (DRE): file information.
///
/// Public: field 2 file name, 5 application, 6 recipient type, 7 recipient number.
/// Provisional (this project): field 1 sender type, 3 file creation date `AAAAMMJJhhmm`,
/// 4 sender number. All seven fields must be present.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo<'a> {
    pub flow: Flow,
    /// Field 1 (provisional): sender type, e.g. `TP`.
    pub sender_type: &'a [u8],
    /// Field 2: file name (B2 `000` *Identification du fichier*).
    pub file_name: &'a [u8],
    /// Field 3 (provisional): file creation date `AAAAMMJJhhmm`.
    pub created: &'a [u8],
    /// Field 4 (provisional): sender number.
    pub sender_number: &'a [u8],
    /// Field 5: application (`TO` for a file to an OCT).
    pub application: &'a [u8],
    /// Field 6: recipient type (`OT` for an OCT).
    pub recipient_type: &'a [u8],
    /// Field 7: recipient number.
    pub recipient_number: &'a [u8],
}

impl<'a> FileInfo<'a> {
    /// Read a group 12 or 92.
    pub fn read(g: &Group<'a>) -> Result<FileInfo<'a>, LookupError> {
        let flow = FILE_INFO_IDS.flow_of(g)?;
        Ok(FileInfo {
            flow,
            sender_type: g.require(1)?,
            file_name: g.require(2)?,
            created: g.require(3)?,
            sender_number: g.require(4)?,
            application: g.require(5)?,
            recipient_type: g.require(6)?,
            recipient_number: g.require(7)?,
        })
    }

    /// Build the group.
    pub fn to_buf(&self) -> GroupBuf {
        GroupBuf::new(FILE_INFO_IDS.id_of(self.flow))
            .with(self.sender_type)
            .with(self.file_name)
            .with(self.created)
            .with(self.sender_number)
            .with(self.application)
            .with(self.recipient_type)
            .with(self.recipient_number)
    }
}

/// Group 13 (FSE) or 93 (DRE): lot information, one occurrence per lot.
///
/// Public: field 7 specification version (`140700`), and the facts that the API's lot formatting
/// returns the CRF, the subject prefix and the destination mailbox. Provisional (this project):
/// 1 lot number, 2 lot creation date `AAAAMMJJhhmm`, 3 destination organisation, 4 invoice count,
/// 5 mail subject prefix, 6 destination mailbox (`account@domain`), 8 CRF, 9 the lot bytes
/// (B2 records). Fields 1 to 7 must be present; 8 and 9 read as empty when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LotInfo<'a> {
    pub flow: Flow,
    /// Field 1 (provisional): lot number, 3 digits.
    pub lot_number: &'a [u8],
    /// Field 2 (provisional): lot creation date `AAAAMMJJhhmm`.
    pub created: &'a [u8],
    /// Field 3 (provisional): destination organisation (B2 type 1 positions 17-19).
    pub destination: &'a [u8],
    /// Field 4 (provisional): number of invoices in the lot, decimal digits.
    pub invoice_count: &'a [u8],
    /// Field 5 (provisional): mail subject prefix, e.g. `SV140700`.
    pub subject_prefix: &'a [u8],
    /// Field 6 (provisional): destination mailbox, `account@domain`.
    pub mailbox: &'a [u8],
    /// Field 7: specification version, e.g. `140700`.
    pub spec_version: &'a [u8],
    /// Field 8 (provisional): CRF, opaque.
    pub crf: &'a [u8],
    /// Field 9 (provisional): the lot itself, B2 128-byte records (binary field).
    pub lot: &'a [u8],
}

impl<'a> LotInfo<'a> {
    /// Read a group 13 or 93.
    pub fn read(g: &Group<'a>) -> Result<LotInfo<'a>, LookupError> {
        let flow = LOT_INFO_IDS.flow_of(g)?;
        Ok(LotInfo {
            flow,
            lot_number: g.require(1)?,
            created: g.require(2)?,
            destination: g.require(3)?,
            invoice_count: g.require(4)?,
            subject_prefix: g.require(5)?,
            mailbox: g.require(6)?,
            spec_version: g.require(7)?,
            crf: g.field(8).unwrap_or_default(),
            lot: g.field(9).unwrap_or_default(),
        })
    }

    /// Build the group.
    pub fn to_buf(&self) -> GroupBuf {
        GroupBuf::new(LOT_INFO_IDS.id_of(self.flow))
            .with(self.lot_number)
            .with(self.created)
            .with(self.destination)
            .with(self.invoice_count)
            .with(self.subject_prefix)
            .with(self.mailbox)
            .with(self.spec_version)
            .with(self.crf)
            .with(self.lot)
    }
}

/// Group 14: the file message zone.
///
/// Public: field 3 the message zone (B2 `000` positions 92-128). Provisional: field 1 the mail
/// subject prefix of the file, field 2 reserved (empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMessage<'a> {
    /// Field 1 (provisional): the subject prefix of the file's message.
    pub subject_prefix: &'a [u8],
    /// Field 3: the message zone, at most 37 characters.
    pub message_zone: &'a [u8],
}

impl<'a> FileMessage<'a> {
    /// Read a group 14; only field 3 is required.
    pub fn read(g: &Group<'a>) -> Result<FileMessage<'a>, LookupError> {
        if g.id != ids::FILE_MESSAGE {
            return Err(LookupError::WrongGroup {
                group: g.id,
                expected: "file message (14)",
            });
        }
        Ok(FileMessage {
            subject_prefix: g.field(1).unwrap_or_default(),
            message_zone: g.require(3)?,
        })
    }

    /// Build the group.
    pub fn to_buf(&self) -> GroupBuf {
        GroupBuf::new(ids::FILE_MESSAGE)
            .with(self.subject_prefix)
            .with(b"")
            .with(self.message_zone)
    }
}

/// Names of the 13 fields of group 1321 (invoice AMC data), in field order.
pub const AMC_DATA_FIELDS: [&str; 13] = [
    "contract_type",
    "amc_organisation_number",
    "member_number",
    "amc_data_zone_1",
    "amc_data_zone_2",
    "amc_edi_number",
    "application_code",
    "routing_code",
    "domain",
    "processing_indicator",
    "host_identifier",
    "amc_insured_identifier",
    "uncertified_extra_zone",
];

/// Group 1321: invoice AMC data (all 13 fields public). Fields absent at the end of the group
/// read as empty, since the zone grammar cannot tell an absent field from an empty one anyway
/// once trailing empties are dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmcData<'a> {
    /// Fields 1 to 13, named by [`AMC_DATA_FIELDS`].
    pub fields: [&'a [u8]; 13],
}

impl<'a> AmcData<'a> {
    /// Read a group 1321.
    pub fn read(g: &Group<'a>) -> Result<AmcData<'a>, LookupError> {
        if g.id != ids::AMC_DATA {
            return Err(LookupError::WrongGroup {
                group: g.id,
                expected: "AMC data (1321)",
            });
        }
        let mut fields: [&'a [u8]; 13] = [b""; 13];
        for (i, slot) in fields.iter_mut().enumerate() {
            *slot = g.field(i + 1).unwrap_or_default();
        }
        Ok(AmcData { fields })
    }

    /// Field 1: contract type (B2 type 2 positions 117-118; `99` = the OCT may split).
    pub fn contract_type(&self) -> &'a [u8] {
        self.fields[0]
    }

    /// Field 2: AMC organisation number (B2 type 2 positions 119-128).
    pub fn amc_organisation_number(&self) -> &'a [u8] {
        self.fields[1]
    }

    /// Field 8: routing code.
    pub fn routing_code(&self) -> &'a [u8] {
        self.fields[7]
    }

    /// Field 9: domain.
    pub fn domain(&self) -> &'a [u8] {
        self.fields[8]
    }

    /// Build the group with all 13 fields.
    pub fn to_buf(&self) -> GroupBuf {
        GroupBuf {
            id: ids::AMC_DATA,
            fields: self.fields.iter().map(|f| f.to_vec()).collect(),
        }
    }
}

/// Group 1410: reimbursement framework. Its field layout is not public: the fields are kept
/// opaque, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReimbursementFramework<'a> {
    pub fields: Vec<&'a [u8]>,
}

impl<'a> ReimbursementFramework<'a> {
    /// Read a group 1410.
    pub fn read(g: &Group<'a>) -> Result<ReimbursementFramework<'a>, LookupError> {
        if g.id != ids::REIMBURSEMENT_FRAMEWORK {
            return Err(LookupError::WrongGroup {
                group: g.id,
                expected: "reimbursement framework (1410)",
            });
        }
        Ok(ReimbursementFramework {
            fields: g.fields().collect(),
        })
    }
}

/// A human name for a group number, for the inspector.
pub fn group_name(id: u16) -> Option<&'static str> {
    Some(match id {
        ids::FILE_INFO_FSE => "file information (FSE)",
        ids::FILE_INFO_DRE => "file information (DRE)",
        ids::LOT_INFO_FSE => "lot information (FSE)",
        ids::LOT_INFO_DRE => "lot information (DRE)",
        ids::FILE_MESSAGE => "file message",
        ids::AMC_DATA => "invoice AMC data",
        ids::REIMBURSEMENT_FRAMEWORK => "reimbursement framework",
        _ => return None,
    })
}

/// A machine name for field `n` (1-based) of a named group, for the inspector and JSON output.
pub fn field_name(group: u16, n: usize) -> Option<&'static str> {
    let i = n.checked_sub(1)?;
    match group {
        ids::FILE_INFO_FSE | ids::FILE_INFO_DRE => [
            "sender_type",
            "file_name",
            "created",
            "sender_number",
            "application",
            "recipient_type",
            "recipient_number",
        ]
        .get(i)
        .copied(),
        ids::LOT_INFO_FSE | ids::LOT_INFO_DRE => [
            "lot_number",
            "created",
            "destination",
            "invoice_count",
            "subject_prefix",
            "mailbox",
            "spec_version",
            "crf",
            "lot",
        ]
        .get(i)
        .copied(),
        ids::FILE_MESSAGE => ["subject_prefix", "reserved", "message_zone"].get(i).copied(),
        ids::AMC_DATA => AMC_DATA_FIELDS.get(i).copied(),
        _ => None,
    }
}

/// Decode `data` as a zone and discard the result: the entry point of the fuzz target and of the
/// "never panics" property tests. Returns whether it decoded. A successful decode is also
/// re-encoded and decoded again: it asserts that this gives the same model and is never longer,
/// so it panics only if the codec is inconsistent, which is exactly what a fuzzer should report.
pub fn fuzz_decode(data: &[u8]) -> bool {
    let Ok(zone) = Zone::decode(data) else {
        return false;
    };
    let model = zone.to_buf();
    if let Ok(bytes) = model.encode() {
        let again = Zone::decode(&bytes).map(|z| z.to_buf());
        assert_eq!(again.as_ref(), Ok(&model), "zone re-encoding is not stable");
        assert!(bytes.len() <= data.len(), "canonical encoding is never longer");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_forms() {
        let mut v = Vec::new();
        for (len, expect) in [
            (0usize, &[0x00][..]),
            (0x7F, &[0x7F]),
            (0x80, &[0x81, 0x80]),
            (0xFF, &[0x81, 0xFF]),
            (0x100, &[0x82, 0x01, 0x00]),
            (0x1_0000, &[0x83, 0x01, 0x00, 0x00]),
            (0x100_0000, &[0x84, 0x01, 0x00, 0x00, 0x00]),
        ] {
            v.clear();
            write_length(&mut v, len, LengthOf::Group { group: 0 }).unwrap();
            assert_eq!(v, expect, "length {len}");
            let (back, used) = read_length(&v, 0, v.len(), LengthOf::Group { group: 0 }).unwrap();
            assert_eq!((back, used), (len as u64, expect.len()));
        }
    }
}
