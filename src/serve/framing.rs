//! Finds requests whose head carries both `Content-Length` and `Transfer-Encoding`.
//!
//! hyper parses such a request by its chunked framing, drops `Content-Length` before the service
//! sees the headers, and closes the connection after answering: safe, but the proxy cannot tell
//! the request apart any more, and RFC 9112 §6.1 (and nginx) refuse it with 400. This wrapper
//! reads the same bytes hyper reads, follows request framing just far enough to find each head
//! (fixed lengths and chunk sizes are skipped by count, never copied), and records the index of
//! the first ambiguous head. It stops following at anything it does not need to understand (an
//! upgrade, an HTTP/2 preface, a head hyper will refuse anyway); later requests are then simply
//! not marked.

pub use crate::proxy::admit::Ambiguous;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest head line followed; longer ones are left to hyper's own limit.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, PartialEq)]
enum State {
    RequestLine,
    Headers { cl: Option<u64>, te: bool, chunked_last: bool, upgrade: bool },
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    Trailers,
    Off,
}

/// Follows request framing over the bytes of one connection.
#[derive(Debug)]
struct Follower {
    state: State,
    line: Vec<u8>,
    heads: u64,
    found: Arc<Ambiguous>,
}

impl Follower {
    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.state != State::Off {
            match self.state {
                State::Body(n) | State::ChunkData(n) => {
                    let take = (n as usize).min(bytes.len());
                    bytes = &bytes[take..];
                    let left = n - take as u64;
                    self.state = match (&self.state, left) {
                        (State::Body(_), 0) => State::RequestLine,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkSize,
                        (_, l) => State::ChunkData(l),
                    };
                }
                // `memchr`: a word or vector at a time (a byte-by-byte `position` cost ~4 instructions a
                // byte, and every request head passes through here).
                _ => match memchr::memchr(b'\n', bytes) {
                    // A line wholly inside this read is followed in place (no copy, no
                    // allocation per header line); only a line split across reads is gathered.
                    Some(i) if self.line.is_empty() => {
                        let line = &bytes[..i];
                        bytes = &bytes[i + 1..];
                        self.on_line(line.strip_suffix(b"\r").unwrap_or(line));
                    }
                    Some(i) => {
                        self.line.extend_from_slice(&bytes[..i]);
                        bytes = &bytes[i + 1..];
                        let mut line = std::mem::take(&mut self.line);
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        self.on_line(&line);
                    }
                    None => {
                        self.line.extend_from_slice(bytes);
                        if self.line.len() > MAX_LINE {
                            self.state = State::Off;
                        }
                        return;
                    }
                },
            }
        }
    }

    fn on_line(&mut self, line: &[u8]) {
        self.state = match std::mem::replace(&mut self.state, State::Off) {
            State::RequestLine if line.is_empty() => State::RequestLine,
            State::RequestLine if line.starts_with(b"PRI ") || line.starts_with(b"CONNECT ") => State::Off,
            State::RequestLine => State::Headers { cl: None, te: false, chunked_last: false, upgrade: false },
            State::Headers { cl, te, chunked_last, upgrade } if line.is_empty() => {
                self.end_of_head(cl, te, chunked_last, upgrade)
            }
            State::Headers { cl, te, chunked_last, upgrade } => header(line, cl, te, chunked_last, upgrade),
            State::ChunkSize => chunk_size(line),
            State::Trailers if line.is_empty() => State::RequestLine,
            State::Trailers => State::Trailers,
            _ => State::Off,
        };
    }

    fn end_of_head(&mut self, cl: Option<u64>, te: bool, chunked_last: bool, upgrade: bool) -> State {
        let index = self.heads;
        self.heads += 1;
        if cl.is_some() && te {
            // hyper closes the connection after this request: nothing after it matters.
            self.found.found(index);
            return State::Off;
        }
        match (te, chunked_last, cl) {
            _ if upgrade => State::Off,
            (true, true, _) => State::ChunkSize,
            (true, false, _) => State::Off,
            (false, _, Some(n)) if n > 0 => State::Body(n),
            _ => State::RequestLine,
        }
    }
}

fn header(line: &[u8], cl: Option<u64>, te: bool, chunked_last: bool, upgrade: bool) -> State {
    if line[0] == b' ' || line[0] == b'\t' {
        return State::Off; // obs-fold: hyper refuses the request
    }
    let Some(colon) = memchr::memchr(b':', line) else { return State::Off };
    let name = &line[..colon];
    // By length first: most names are none of the three, and skip the value's UTF-8 check and
    // trim (~60 instructions a line, under callgrind).
    if !matches!(name.len(), 7 | 14 | 17) {
        return State::Headers { cl, te, chunked_last, upgrade };
    }
    let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
    let mut next = (cl, te, chunked_last, upgrade);
    if name.eq_ignore_ascii_case(b"content-length") {
        match value.parse() {
            Ok(n) => next.0 = Some(n),
            Err(_) => return State::Off,
        }
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        next.1 = true;
        next.2 = value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
    } else if name.eq_ignore_ascii_case(b"upgrade") {
        next.3 = true;
    }
    State::Headers { cl: next.0, te: next.1, chunked_last: next.2, upgrade: next.3 }
}

fn chunk_size(line: &[u8]) -> State {
    let text = std::str::from_utf8(line).unwrap_or("");
    let digits = text.split([';', ' ', '\t']).next().unwrap_or("");
    match u64::from_str_radix(digits, 16) {
        Ok(0) => State::Trailers,
        Ok(n) => n.checked_add(2).map_or(State::Off, State::ChunkData),
        Err(_) => State::Off,
    }
}

/// A connection's stream, watched for ambiguous request framing on the way in.
pub struct Watched<S> {
    inner: S,
    follower: Follower,
}

impl<S> Watched<S> {
    /// Wraps `inner`; `found` is shared with the connection's service.
    pub fn new(inner: S, found: Arc<Ambiguous>) -> Self {
        let follower = Follower { state: State::RequestLine, line: Vec::new(), heads: 0, found };
        Watched { inner, follower }
    }

    /// The wrapped stream (for the TCP socket under it).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.follower.state != State::Off {
            this.follower.feed(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `step` bytes; returns the ambiguous index and heads seen.
    fn follow(raw: &str, step: usize) -> (Option<u64>, u64) {
        let found = Ambiguous::new();
        let mut f = Follower { state: State::RequestLine, line: Vec::new(), heads: 0, found: found.clone() };
        for piece in raw.as_bytes().chunks(step) {
            f.feed(piece);
        }
        ((0..f.heads).find(|&i| found.is(i)), f.heads)
    }

    #[test]
    fn the_ambiguous_request_is_found_after_bodies_of_either_framing() {
        let raw = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab\ncd\
                   POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\na\nb\r\n0\r\nT: 1\r\n\r\n\
                   GET / HTTP/1.1\r\nHost: a\r\n\r\n\
                   POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n";
        for step in [1, 3, 7, raw.len()] {
            assert_eq!(follow(raw, step), (Some(3), 4), "in pieces of {step}");
        }
    }

    #[test]
    fn ordinary_traffic_marks_nothing_and_upgrades_stop_the_follower() {
        assert_eq!(follow("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 5), (None, 2));
        let up = "GET / HTTP/1.1\r\nUpgrade: x\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(follow(up, 4), (None, 1), "bytes after an upgrade are not HTTP");
        assert_eq!(follow("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 64), (None, 0));
    }
}
