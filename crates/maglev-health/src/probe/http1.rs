//! The one HTTP/1.1 exchange a health check makes: write a request, read
//! the status line and headers, and, only when a regex wants it, up to
//! [`MAX_BODY`] of the body (content-length, chunked, or up to the close).
//!
//! A general-purpose client (hyper) sets up a connection object, a
//! dispatcher and header maps for every probe; on a fresh connection that
//! carries one request that is most of the probe's user-space CPU. Here
//! the request is one buffer written once, and the response head is parsed
//! in place (httparse, the parser hyper itself uses) from one buffer.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// At most this much of the body is read for the regex.
pub const MAX_BODY: usize = 64 * 1024;

/// The most a response head (status line and headers) may take.
const MAX_HEAD: usize = 64 * 1024;

/// Headers parsed at most (hyper's default limit too).
const MAX_HEADERS: usize = 100;

/// What came back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Response {
    /// The final status (informational 1xx responses skipped).
    pub status: u16,
    /// Up to [`MAX_BODY`] of the body, when asked for.
    pub body: Option<Vec<u8>>,
}

/// `HTTP <status>`, a probe's detail: static text for the statuses
/// health checks answer with, so a passing probe allocates none.
pub(crate) fn status_detail(status: u16) -> std::borrow::Cow<'static, str> {
    let text = match status {
        200 => "HTTP 200",
        201 => "HTTP 201",
        202 => "HTTP 202",
        204 => "HTTP 204",
        301 => "HTTP 301",
        302 => "HTTP 302",
        304 => "HTTP 304",
        307 => "HTTP 307",
        308 => "HTTP 308",
        400 => "HTTP 400",
        401 => "HTTP 401",
        403 => "HTTP 403",
        404 => "HTTP 404",
        405 => "HTTP 405",
        429 => "HTTP 429",
        500 => "HTTP 500",
        502 => "HTTP 502",
        503 => "HTTP 503",
        504 => "HTTP 504",
        _ => return format!("HTTP {status}").into(),
    };
    text.into()
}

/// The request bytes: `method path`, `Host` and `User-Agent`, no body.
/// `None` when a part cannot go on the wire as it is (not visible ASCII).
pub(crate) fn request(method: &str, path: &str, host: &str, user_agent: &str) -> Option<Vec<u8>> {
    let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    let header = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if !visible(path) || !visible(host) || !header(user_agent) {
        return None;
    }
    Some(
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n\r\n")
            .into_bytes(),
    )
}

/// Sends `request` and reads the response; `body`: whether the body is
/// wanted (`head`: the request was a HEAD, which has none). Errors are
/// the text of an L7RSP result.
pub(crate) async fn exchange<S>(
    io: &mut S,
    request: &[u8],
    head: bool,
    body: bool,
) -> Result<Response, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request).await.map_err(|e| e.to_string())?;
    io.flush().await.map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (status, head_len, framing) = read_head(io, &mut buf).await?;
        buf.drain(..head_len);
        // 100 Continue and friends precede the real response.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let no_body = head || status == 204 || status == 304 || (100..200).contains(&status);
        if !body || no_body {
            let body = (body && no_body).then(Vec::new);
            return Ok(Response { status, body });
        }
        let body = read_body(io, buf, framing).await?;
        return Ok(Response {
            status,
            body: Some(body),
        });
    }
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// Reads until `buf` holds a whole response head; its status, length and
/// the body's framing.
async fn read_head<S>(io: &mut S, buf: &mut Vec<u8>) -> Result<(u16, usize, Framing), String>
where
    S: AsyncRead + Unpin,
{
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    return Ok((status, len, framing(response.headers)?));
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(format!("invalid HTTP response: {e}")),
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err("response head larger than 64 KiB".to_string());
        }
        if read_more(io, buf).await? == 0 {
            return Err(if buf.is_empty() {
                "connection closed before a response".to_string()
            } else {
                "connection closed before the response head was complete".to_string()
            });
        }
    }
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, String> {
    let mut length = None;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // chunked must be the last coding when present.
            let chunked = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.rsplit(',').next())
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            return Ok(if chunked {
                Framing::Chunked
            } else {
                Framing::UntilClose
            });
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".to_string());
            }
            length = Some(n);
        }
    }
    Ok(length.map_or(Framing::UntilClose, Framing::Length))
}

/// Reads more into `buf`; 0 at the end of the stream.
async fn read_more<S>(io: &mut S, buf: &mut Vec<u8>) -> Result<usize, String>
where
    S: AsyncRead + Unpin,
{
    // The first read goes into the kilobyte the exchange starts with (a
    // health answer's head fits; growing it first cost a reallocation on
    // every probe).
    if buf.capacity() - buf.len() < 256 {
        buf.reserve(4096);
    }
    io.read_buf(buf).await.map_err(|e| e.to_string())
}

/// The body, up to [`MAX_BODY`]; `buf` holds what was read past the head.
async fn read_body<S>(io: &mut S, mut buf: Vec<u8>, framing: Framing) -> Result<Vec<u8>, String>
where
    S: AsyncRead + Unpin,
{
    match framing {
        Framing::Length(n) => {
            let want = usize::try_from(n).unwrap_or(usize::MAX).min(MAX_BODY);
            while buf.len() < want {
                if read_more(io, &mut buf).await? == 0 {
                    return Err("connection closed before the body was complete".to_string());
                }
            }
            buf.truncate(want);
            Ok(buf)
        }
        Framing::UntilClose => {
            while buf.len() < MAX_BODY {
                if read_more(io, &mut buf).await? == 0 {
                    break;
                }
            }
            buf.truncate(MAX_BODY);
            Ok(buf)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            let mut at = 0;
            loop {
                // A size line: hex digits, optional extensions, CRLF.
                let line_end = loop {
                    if let Some(i) = find_crlf(&buf[at..]) {
                        break at + i;
                    }
                    if buf.len() - at > 1024 {
                        return Err("invalid chunk size line".to_string());
                    }
                    if read_more(io, &mut buf).await? == 0 {
                        return Err("connection closed inside a chunked body".to_string());
                    }
                };
                let line = std::str::from_utf8(&buf[at..line_end]).unwrap_or("");
                let hex = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(hex, 16)
                    .map_err(|_| format!("invalid chunk size {hex:?}"))?;
                at = line_end + 2;
                if size == 0 {
                    return Ok(body);
                }
                let take = size.min(MAX_BODY - body.len());
                while buf.len() < at + take {
                    if read_more(io, &mut buf).await? == 0 {
                        return Err("connection closed inside a chunked body".to_string());
                    }
                }
                body.extend_from_slice(&buf[at..at + take]);
                if body.len() >= MAX_BODY {
                    return Ok(body);
                }
                // The chunk's data and its CRLF (the chunk fits in what is
                // left of MAX_BODY here, so this is bounded too).
                while buf.len() < at + size + 2 {
                    if read_more(io, &mut buf).await? == 0 {
                        return Err("connection closed inside a chunked body".to_string());
                    }
                }
                if &buf[at + size..at + size + 2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".to_string());
                }
                at += size + 2;
                // What was parsed is not needed again.
                buf.drain(..at);
                at = 0;
            }
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status reads `HTTP <status>`; the usual ones without an
    /// allocation.
    #[test]
    fn status_details_read_as_the_status() {
        for status in 100..1000 {
            assert_eq!(status_detail(status), format!("HTTP {status}"));
        }
        for status in [200, 204, 301, 404, 500, 503] {
            assert!(matches!(
                status_detail(status),
                std::borrow::Cow::Borrowed(_)
            ));
        }
    }

    /// The exchange against a scripted peer that sends `reply` in pieces
    /// of `piece` bytes, then closes; also returns what the peer received.
    async fn run(reply: &[u8], piece: usize, head: bool, body: bool) -> Result<Response, String> {
        let (mut ours, mut theirs) = tokio::io::duplex(256 * 1024);
        let reply = reply.to_vec();
        let peer = tokio::spawn(async move {
            let mut got = vec![0u8; 4096];
            let mut n = 0;
            while !got[..n].ends_with(b"\r\n\r\n") {
                n += theirs.read(&mut got[n..]).await.unwrap();
            }
            for c in reply.chunks(piece.max(1)) {
                // Our side may be done (and gone) before the reply is.
                if theirs.write_all(c).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            String::from_utf8(got[..n].to_vec()).unwrap()
        });
        let req = request("GET", "/healthz", "10.0.0.1:8080", "maglev-test").unwrap();
        let r = exchange(&mut ours, &req, head, body).await;
        drop(ours);
        let sent = peer.await.unwrap();
        assert_eq!(
            sent,
            "GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8080\r\nUser-Agent: maglev-test\r\n\r\n"
        );
        r
    }

    fn ok(status: u16, body: Option<&[u8]>) -> Result<Response, String> {
        Ok(Response {
            status,
            body: body.map(<[u8]>::to_vec),
        })
    }

    #[tokio::test]
    async fn status_without_reading_the_body() {
        let reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 1000000\r\n\r\nno";
        assert_eq!(run(reply, 7, false, false).await, ok(503, None));
    }

    #[tokio::test]
    async fn bodies_by_length_by_chunks_and_until_close() {
        for piece in [1, 3, 4096] {
            let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello and more";
            assert_eq!(run(r, piece, false, true).await, ok(200, Some(b"hello")));
            let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
            assert_eq!(
                run(r, piece, false, true).await,
                ok(200, Some(b"hello world"))
            );
            let r = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
            assert_eq!(
                run(r, piece, false, true).await,
                ok(200, Some(b"until close"))
            );
        }
    }

    #[tokio::test]
    async fn informational_responses_are_skipped_and_head_has_no_body() {
        let r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(run(r, 5, false, true).await, ok(200, Some(b"ok")));
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(run(r, 5, true, true).await, ok(200, Some(b"")));
    }

    #[tokio::test]
    async fn the_body_is_cut_at_64_kib() {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 100_000).into_bytes();
        r.extend(std::iter::repeat_n(b'a', 100_000));
        let got = run(&r, 10_000, false, true).await.unwrap();
        assert_eq!(got.body.unwrap().len(), MAX_BODY);
        let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            r.extend_from_slice(b"1000\r\n");
            r.extend(std::iter::repeat_n(b'b', 0x1000));
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\n\r\n");
        let got = run(&r, 5_000, false, true).await.unwrap();
        assert_eq!(got.body.unwrap().len(), MAX_BODY);
    }

    #[tokio::test]
    async fn broken_responses_are_named() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "connection closed before a response"),
            (
                b"HTTP/1.1 200 OK\r\nX: y",
                "before the response head was complete",
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "invalid HTTP response"),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                "before the body was complete",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                "invalid chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef",
                "not followed by CRLF",
            ),
        ];
        for (reply, want) in cases {
            let e = run(reply, 4, false, true).await.unwrap_err();
            assert!(
                e.contains(want),
                "{e:?} for {:?}",
                String::from_utf8_lossy(reply)
            );
        }
    }

    #[test]
    fn requests_carry_only_visible_ascii() {
        assert!(request("GET", "/a\r\nX: y", "h", "ua").is_none());
        assert!(request("GET", "/é", "h", "ua").is_none());
        assert!(request("GET", "/", "h\n", "ua").is_none());
        assert!(request("HEAD", "/", "h", "maglevd 1.0").is_some());
    }
}
