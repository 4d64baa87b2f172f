//! The runtime half of the generated bindings: VPP's wire encoding.
//!
//! Every integer and u32 enum is big-endian, structures are packed, `f64`
//! travels in host (little-endian) order, fixed strings are NUL padded and
//! variable strings carry a u32 length (see `vpp-api/NOTES.md` §2).

use std::fmt::Debug;

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A fixed string field is too long for its slot.
    #[error("field {field}: {len} bytes do not fit a {max}-byte string (NUL included)")]
    StringTooLong {
        /// Field name.
        field: &'static str,
        /// Bytes given.
        len: usize,
        /// Slot size.
        max: usize,
    },
    /// A variable array has more elements than its count field can say.
    #[error("field {field}: {len} elements do not fit the count field")]
    TooMany {
        /// Count field name.
        field: &'static str,
        /// Elements given.
        len: usize,
    },
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The message ended early.
    #[error("message truncated: needed {needed} more bytes at offset {offset}")]
    Truncated {
        /// Offset of the read.
        offset: usize,
        /// Bytes missing.
        needed: usize,
    },
}

/// A value that can be written in VPP's wire format.
pub trait Encode {
    /// Appends the wire form of `self` to `w`.
    fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// A value that can be read from VPP's wire format.
pub trait Decode: Sized {
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Which header fields precede a message's body on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// `u16 _vl_msg_id, u32 client_index, u32 context`: requests.
    Request,
    /// `u16 _vl_msg_id, u32 context`: replies, details, `sockclnt_create`.
    Reply,
    /// Only `u16 _vl_msg_id` (shared-memory housekeeping messages).
    Bare,
}

impl Header {
    /// Length of the header in bytes.
    pub fn len(&self) -> usize {
        match self {
            Header::Request => 10,
            Header::Reply => 6,
            Header::Bare => 2,
        }
    }

    /// Always false; a header has at least the message id.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A binary-API message: its name, CRC and header shape.
pub trait Message: Encode + Decode + Debug + Clone + Send + Sync + 'static {
    /// Name as in the `.api` file.
    const NAME: &'static str;
    /// CRC of the definition.
    const CRC: u32;
    /// `<name>_<crc>`: the key of VPP's message table.
    const NAME_CRC: &'static str;
    /// Header fields the framing layer writes.
    const HEADER: Header;
    /// The `retval` field, for replies that have one.
    fn retval(&self) -> Option<i32> {
        None
    }
}

/// A request answered by exactly one reply.
pub trait Request: Message {
    /// The reply message.
    type Reply: Message;
}

/// A dump answered by zero or more details (ended by a `control_ping`).
pub trait Dump: Message {
    /// The details message.
    type Details: Message;
}

/// A cursor over a received message.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Current offset.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {
                w.extend_from_slice(&self.to_be_bytes());
                Ok(())
            }
        }
        impl Decode for $t {
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let b = r.take(std::mem::size_of::<$t>())?;
                Ok(<$t>::from_be_bytes(b.try_into().expect("exact length")))
            }
        }
    )*};
}
int_codec!(u8, i8, u16, i16, u32, i32, u64, i64);

/// VPP does not byte-swap f64 (`clib_net_to_host_f64` is the identity).
impl Encode for f64 {
    fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {
        w.extend_from_slice(&self.to_le_bytes());
        Ok(())
    }
}

impl Decode for f64 {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let b = r.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().expect("exact length")))
    }
}

impl Encode for bool {
    fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {
        w.push(u8::from(*self));
        Ok(())
    }
}

impl Decode for bool {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.take(1)?[0] != 0)
    }
}

impl<T: Encode, const N: usize> Encode for [T; N] {
    fn encode(&self, w: &mut Vec<u8>) -> Result<(), EncodeError> {
        for item in self {
            item.encode(w)?;
        }
        Ok(())
    }
}

impl<T: Decode, const N: usize> Decode for [T; N] {
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut items = Vec::with_capacity(N);
        for _ in 0..N {
            items.push(T::decode(r)?);
        }
        Ok(items
            .try_into()
            .unwrap_or_else(|_| unreachable!("exactly N items")))
    }
}

/// Writes the count field of a variable array.
pub fn encode_count<T>(len: usize, field: &'static str, w: &mut Vec<u8>) -> Result<(), EncodeError>
where
    T: TryFrom<usize> + Encode,
{
    T::try_from(len)
        .map_err(|_| EncodeError::TooMany { field, len })?
        .encode(w)
}

/// Writes `s` into a fixed `max`-byte slot, NUL padded; VPP reads it as a C
/// string, so one byte is kept for the terminator.
pub fn encode_fixed_string(
    s: &str,
    max: usize,
    field: &'static str,
    w: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let b = s.as_bytes();
    if b.len() >= max {
        return Err(EncodeError::StringTooLong {
            field,
            len: b.len(),
            max,
        });
    }
    w.extend_from_slice(b);
    w.resize(w.len() + max - b.len(), 0);
    Ok(())
}

/// Reads a fixed `max`-byte string, up to its first NUL.
pub fn decode_fixed_string(r: &mut Reader<'_>, max: usize) -> Result<String, DecodeError> {
    let b = r.take(max)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    Ok(String::from_utf8_lossy(&b[..end]).into_owned())
}

/// Writes a variable string: u32 length, then the bytes, no NUL.
pub fn encode_var_string(s: &str, w: &mut Vec<u8>) -> Result<(), EncodeError> {
    let len = u32::try_from(s.len()).map_err(|_| EncodeError::TooMany {
        field: "string",
        len: s.len(),
    })?;
    len.encode(w)?;
    w.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Reads a variable string. Some VPP replies count a trailing NUL; it is
/// dropped.
pub fn decode_var_string(r: &mut Reader<'_>) -> Result<String, DecodeError> {
    let len = u32::decode(r)? as usize;
    let b = r.take(len)?;
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    Ok(String::from_utf8_lossy(b).into_owned())
}

/// Reads `n` elements; `n` comes from the peer, so it is checked against
/// the bytes left before anything is allocated.
pub fn decode_vec<T: Decode>(r: &mut Reader<'_>, n: usize) -> Result<Vec<T>, DecodeError> {
    if n > r.remaining() {
        return Err(DecodeError::Truncated {
            offset: r.position(),
            needed: n - r.remaining(),
        });
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(T::decode(r)?);
    }
    Ok(out)
}

/// The header fields of a message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsgHeader {
    /// Runtime message id.
    pub msg_id: u16,
    /// Client index (requests only).
    pub client_index: u32,
    /// Context (requests and replies).
    pub context: u32,
}

/// Encodes a whole message: header fields of `M::HEADER`, then the body.
pub fn encode_message<M: Message>(msg: &M, header: MsgHeader) -> Result<Vec<u8>, EncodeError> {
    let mut w = Vec::with_capacity(64);
    header.msg_id.encode(&mut w)?;
    match M::HEADER {
        Header::Request => {
            header.client_index.encode(&mut w)?;
            header.context.encode(&mut w)?;
        }
        Header::Reply => header.context.encode(&mut w)?,
        Header::Bare => {}
    }
    msg.encode(&mut w)?;
    Ok(w)
}

/// Decodes a whole message of type `M`, returning its header fields too.
/// Trailing bytes are allowed: VPP sometimes sends a few extra.
pub fn decode_message<M: Message>(payload: &[u8]) -> Result<(MsgHeader, M), DecodeError> {
    let mut r = Reader::new(payload);
    let mut h = MsgHeader {
        msg_id: u16::decode(&mut r)?,
        ..MsgHeader::default()
    };
    match M::HEADER {
        Header::Request => {
            h.client_index = u32::decode(&mut r)?;
            h.context = u32::decode(&mut r)?;
        }
        Header::Reply => h.context = u32::decode(&mut r)?,
        Header::Bare => {}
    }
    Ok((h, M::decode(&mut r)?))
}

/// The message id of a payload (its first two bytes).
pub fn peek_msg_id(payload: &[u8]) -> Option<u16> {
    payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
}
