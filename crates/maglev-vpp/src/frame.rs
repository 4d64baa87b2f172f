//! The socket transport's framing: a 16-byte header before every message.
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | queue pointer: ignored, sent as 0        |
//! | 8..12  | payload length, u32 big-endian           |
//! | 12..16 | gc mark timestamp: ignored, sent as 0    |

use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of the frame header.
pub const FRAME_HEADER_LEN: usize = 16;

/// Largest payload accepted. VPP's biggest message in practice is the
/// `sockclnt_create_reply` table (hundreds of KiB); the cap keeps a broken
/// peer from making us allocate gigabytes.
pub const MAX_PAYLOAD: usize = 64 << 20;

/// Appends one frame (header + payload) to `out`.
pub fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(payload);
}

/// One frame as a new buffer.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    put_frame(&mut out, payload);
    out
}

/// Reads one frame's payload; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; FRAME_HEADER_LEN];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(payload))
}
