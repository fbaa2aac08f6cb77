//! Hand-built HTTP/2 frames: what a conformance suite sends, byte for byte, without a client
//! library that would refuse to send a frame on a stream it knows is closed.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const GOAWAY: u8 = 0x7;
pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;
pub const STREAM_CLOSED: u32 = 0x5;

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let b = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One frame's bytes.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut b = Vec::with_capacity(9 + payload.len());
    b.extend_from_slice(&len.to_be_bytes()[1..]);
    b.push(kind);
    b.push(flags);
    b.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// A header block of literal fields without indexing (no HPACK state, no Huffman): every
/// decoder reads it the same way.
pub fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127, "one-byte lengths only");
        b.push(0x00);
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// The preface and an empty SETTINGS frame.
pub async fn open<S: AsyncWrite + Unpin>(s: &mut S) {
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
}

/// Reads one frame within `limit`; `None` on EOF, error or timeout.
pub async fn read_frame<S: AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Option<Frame> {
    let read = async {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).await.ok()?;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        Some(Frame { kind: head[3], flags: head[4], stream, payload })
    };
    tokio::time::timeout(limit, read).await.ok()?
}

/// Reads frames until `want` accepts one (acknowledging the server's SETTINGS on the way);
/// returns the frames read, the accepted one last, or every frame read before EOF or `limit`.
pub async fn read_until<S>(s: &mut S, limit: Duration, mut want: impl FnMut(&Frame) -> bool) -> (Vec<Frame>, bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let end = tokio::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let Some(f) = read_frame(s, left).await else { return (seen, false) };
        if f.kind == SETTINGS && f.flags & ACK == 0 {
            s.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
        }
        let done = want(&f);
        seen.push(f);
        if done {
            return (seen, true);
        }
    }
}

/// Everything the server sends until it closes or `limit` passes: (bytes, closed in time).
pub use crate::support::read_to_eof as drain;

/// Splits bytes into whole frames; `None` if they are not a sequence of HTTP/2 frames.
pub fn parse_all(mut b: &[u8]) -> Option<Vec<Frame>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 9 {
            return None;
        }
        let len = u32::from_be_bytes([0, b[0], b[1], b[2]]) as usize;
        let payload = b.get(9..9 + len)?.to_vec();
        let stream = u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff;
        out.push(Frame { kind: b[3], flags: b[4], stream, payload });
        b = &b[9 + len..];
    }
    Some(out)
}

/// What a server that must speak HTTP/2 may answer a bad preface with: HTTP/2 frames only (its
/// SETTINGS, perhaps a GOAWAY with PROTOCOL_ERROR), then a close; never an HTTP/1.1 response.
pub fn assert_refused_as_h2(bytes: &[u8], closed: bool, what: &str) {
    assert!(!bytes.windows(5).any(|w| w == b"HTTP/"), "{what}: an HTTP/1 answer: {:?}", String::from_utf8_lossy(bytes));
    let frames = parse_all(bytes).unwrap_or_else(|| panic!("{what}: not HTTP/2 frames: {bytes:?}"));
    for f in frames.iter().filter(|f| f.kind == GOAWAY) {
        assert_eq!(f.error_code(), Some(PROTOCOL_ERROR), "{what}: {f:?}");
    }
    assert!(closed, "{what}: the connection stayed open after {frames:?}");
}
