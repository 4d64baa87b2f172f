//! The socket transport's framing: a 16-byte header before every message.
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..8   | queue pointer: ignored, sent as 0        |
//! | 8..12  | payload length, u32 big-endian           |
//! | 12..16 | gc mark timestamp: ignored, sent as 0    |

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

/// The first complete frame of `buf`: its payload and the bytes it takes,
/// `None` while incomplete, an error for a length over [`MAX_PAYLOAD`].
/// Pure, so it can be fuzzed.
pub fn next_frame(buf: &[u8]) -> std::io::Result<Option<(&[u8], usize)>> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {MAX_PAYLOAD}-byte limit"),
        ));
    }
    let end = FRAME_HEADER_LEN + len;
    Ok((buf.len() >= end).then(|| (&buf[FRAME_HEADER_LEN..end], end)))
}

/// Reads frames from a socket, polling briefly before sleeping.
///
/// After each frame the reader keeps trying the socket for `spin` (yielding
/// to other tasks in between) before it parks in epoll. A request/reply
/// exchange then costs no scheduler wakeup on either side when the peer
/// answers quickly, which is what bounds round trips on a loaded or
/// virtualised host; idle, it costs one `spin` of polling after the last
/// frame and nothing after that.
#[derive(Debug)]
pub struct FrameReader {
    rd: tokio::net::unix::OwnedReadHalf,
    buf: Vec<u8>,
    start: usize,
    spin: std::time::Duration,
}

impl FrameReader {
    /// Reads from `rd`, polling for `spin` before sleeping.
    pub fn new(rd: tokio::net::unix::OwnedReadHalf, spin: std::time::Duration) -> FrameReader {
        FrameReader {
            rd,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            spin,
        }
    }

    /// A complete frame already buffered, if any.
    fn take(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let Some((payload, used)) = next_frame(&self.buf[self.start..])? else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.start += used;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(payload))
    }

    /// The next frame's payload; `Ok(None)` at a clean end of stream.
    pub async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let deadline = std::time::Instant::now() + self.spin;
        loop {
            if let Some(frame) = self.take()? {
                return Ok(Some(frame));
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let old = self.buf.len();
            self.buf.resize(old + 64 * 1024, 0);
            let result = self.rd.try_read(&mut self.buf[old..]);
            match result {
                Ok(0) => {
                    self.buf.truncate(old);
                    if old == 0 {
                        return Ok(None);
                    }
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                Ok(n) => self.buf.truncate(old + n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.buf.truncate(old);
                    if std::time::Instant::now() < deadline {
                        tokio::task::yield_now().await;
                    } else {
                        self.rd.readable().await?;
                    }
                }
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        }
    }
}
