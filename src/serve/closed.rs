//! DATA on a closed HTTP/2 stream gets RST_STREAM(STREAM_CLOSED) (RFC 9113 §5.1, §6.1), from
//! the first such frame on, never a connection error and never silence.
//!
//! The `h2` crate (0.4.20) under hyper answers such a frame three ways: a stream it reset itself
//! is remembered for 1 s (at most 50 streams) and its DATA is ignored
//! (`proto/streams/recv.rs`, `is_local_error`); once forgotten, its DATA gets
//! RST_STREAM(STREAM_CLOSED) (`streams.rs`, `may_have_forgotten_stream`); and a stream it still
//! holds whose receive side is closed without a local reset (the client's END_STREAM or
//! RST_STREAM) gets a connection-level GOAWAY(PROTOCOL_ERROR) (`recv.rs`, "unexpected DATA
//! frame", with a TODO that it could be STREAM_CLOSED). Which one a client sees depends on
//! timing: when the reset went out, how long the proxy kept the stream, how many streams were
//! reset in the last second. The remembering is an `h2` setting (`reset_stream_duration`,
//! `max_concurrent_reset_streams`) that hyper does not expose, and the GOAWAY is in `h2`'s
//! code, so no configuration reaches either.
//!
//! This wrapper sits between the socket and hyper. It follows frame boundaries in both
//! directions (headers only, payloads are skipped by count) and notes the streams that are
//! closed for receiving: a RST_STREAM either side sent, a DATA or HEADERS from the client that
//! ended its stream. A later DATA frame from the client on such a stream is turned, in place,
//! into a frame of an unassigned type, which `h2` must ignore (RFC 9113 §5.5), and the wrapper
//! writes RST_STREAM(STREAM_CLOSED) for it plus a connection WINDOW_UPDATE returning the
//! frame's flow-control credit (`h2` never counted it), between two of `h2`'s frames.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE_LEN: usize = 24;
const HEAD: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const WINDOW_UPDATE: u8 = 0x8;
const END_STREAM: u8 = 0x1;
const STREAM_CLOSED: u32 = 0x5;
/// An unassigned frame type (RFC 9113 §11.2 lists 0x00–0x09; 0xf0–0xff are reserved for
/// experimental use), which a receiver ignores.
const IGNORED: u8 = 0xfa;
/// Closed streams remembered (1 KiB once full, only on connections that closed that many): a
/// whole `limits.max_h2_streams` (256 by default) closing at once. Older ones are left to `h2`'s
/// own answer, which is STREAM_CLOSED once it has forgotten the stream (1 s after its reset).
const REMEMBERED: usize = 256;

/// Where a byte stream is in its sequence of frames.
#[derive(Default)]
struct Frames {
    /// Payload bytes left of the current frame.
    skip: usize,
    /// The current frame head, while it is incomplete.
    head: Vec<u8>,
}

/// Stream ids closed for receiving, newest last, at most `REMEMBERED`.
#[derive(Default)]
struct ClosedSet(Vec<u32>, usize);

impl ClosedSet {
    fn insert(&mut self, id: u32) {
        if id == 0 || self.contains(id) {
            return;
        }
        if self.0.len() < REMEMBERED {
            self.0.push(id);
        } else {
            self.0[self.1] = id;
            self.1 = (self.1 + 1) % REMEMBERED;
        }
    }

    fn contains(&self, id: u32) -> bool {
        self.0.contains(&id)
    }
}

/// The socket as hyper's HTTP/2 server sees it (see the module docs).
pub struct ClosedStreams<S> {
    io: S,
    preface_left: usize,
    inbound: Frames,
    outbound: Frames,
    closed: ClosedSet,
    /// Frames to write at the next frame boundary of `h2`'s output.
    pending: Vec<u8>,
}

impl<S> ClosedStreams<S> {
    /// Wraps a connection whose first bytes from the client are the preface.
    pub fn new(io: S) -> Self {
        ClosedStreams {
            io,
            preface_left: PREFACE_LEN,
            inbound: Frames::default(),
            outbound: Frames::default(),
            closed: ClosedSet::default(),
            pending: Vec::new(),
        }
    }

    /// Follows the client's bytes just read, rewriting DATA frames on closed streams.
    fn inspect_inbound(&mut self, mut b: &mut [u8]) {
        let skip = self.preface_left.min(b.len());
        self.preface_left -= skip;
        b = &mut b[skip..];
        while !b.is_empty() {
            if self.inbound.skip > 0 {
                let n = self.inbound.skip.min(b.len());
                self.inbound.skip -= n;
                b = &mut b[n..];
                continue;
            }
            // A frame head: taken from the buffer, or gathered across reads. A head split across
            // reads has already gone to `h2` in part and is only followed, never rewritten;
            // sockets deliver whole heads in practice (and a miss costs only the old answer).
            let start = self.inbound.head.len();
            let n = (HEAD - start).min(b.len());
            self.inbound.head.extend_from_slice(&b[..n]);
            if self.inbound.head.len() < HEAD {
                return;
            }
            let head = std::mem::take(&mut self.inbound.head);
            let (len, kind, flags, id) = parse(&head);
            if start == 0 && kind == DATA && self.closed.contains(id) {
                b[3] = IGNORED;
                self.pending.extend_from_slice(&frame(RST_STREAM, id, STREAM_CLOSED));
                if len > 0 {
                    self.pending.extend_from_slice(&frame(WINDOW_UPDATE, 0, len as u32));
                }
            } else if kind == RST_STREAM || ((kind == DATA || kind == HEADERS) && flags & END_STREAM != 0) {
                self.closed.insert(id);
            }
            self.inbound.skip = len;
            b = &mut b[n..];
        }
    }

    /// Follows `h2`'s bytes written, noting the streams it reset.
    fn inspect_outbound(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            if self.outbound.skip > 0 {
                let n = self.outbound.skip.min(b.len());
                self.outbound.skip -= n;
                b = &b[n..];
                continue;
            }
            let n = (HEAD - self.outbound.head.len()).min(b.len());
            self.outbound.head.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.outbound.head.len() == HEAD {
                let (len, kind, _, id) = parse(&std::mem::take(&mut self.outbound.head));
                if kind == RST_STREAM {
                    self.closed.insert(id);
                }
                self.outbound.skip = len;
            }
        }
    }

    fn at_boundary(&self) -> bool {
        self.outbound.skip == 0 && self.outbound.head.is_empty()
    }
}

impl<S: AsyncWrite + Unpin> ClosedStreams<S> {
    /// Writes the wrapper's own frames while `h2`'s output is between frames.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() && self.at_boundary() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

/// (payload length, type, flags, stream id) of a frame head.
fn parse(h: &[u8]) -> (usize, u8, u8, u32) {
    let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
    let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
    (len, h[3], h[4], id)
}

/// A frame with a 4-byte payload (RST_STREAM's error code, WINDOW_UPDATE's increment).
fn frame(kind: u8, id: u32, value: u32) -> [u8; 13] {
    let mut f = [0u8; 13];
    f[2] = 4;
    f[3] = kind;
    f[5..9].copy_from_slice(&id.to_be_bytes());
    f[9..].copy_from_slice(&value.to_be_bytes());
    f
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for ClosedStreams<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.inspect_inbound(&mut buf.filled_mut()[before..]);
        if !this.pending.is_empty() {
            // Written at once if `h2` is between frames, else at its next write or flush.
            let _ = this.poll_pending(cx)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ClosedStreams<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let n = ready!(Pin::new(&mut this.io).poll_write(cx, data))?;
        this.inspect_outbound(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        let n = ready!(Pin::new(&mut this.io).poll_write_vectored(cx, bufs))?;
        let mut left = n;
        for b in bufs {
            let take = left.min(b.len());
            this.inspect_outbound(&b[..take]);
            left -= take;
            if left == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_pending(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(len: usize, kind: u8, flags: u8, id: u32) -> Vec<u8> {
        let mut h = (len as u32).to_be_bytes()[1..].to_vec();
        h.extend_from_slice(&[kind, flags]);
        h.extend_from_slice(&id.to_be_bytes());
        h
    }

    #[test]
    fn data_on_a_stream_reset_by_the_server_is_turned_aside_and_answered() {
        let mut c = ClosedStreams::new(());
        c.inspect_outbound(&head(4, RST_STREAM, 0, 1));
        c.inspect_outbound(&[0, 0, 0, 0]);
        let mut input = vec![b'P'; PREFACE_LEN];
        input.extend(head(3, DATA, 0, 1));
        input.extend(b"abc");
        input.extend(head(2, DATA, 0, 3));
        input.extend(b"ok");
        // In pieces that split the preface and a payload, not a head.
        let (a, rest) = input.split_at_mut(PREFACE_LEN + HEAD + 1);
        c.inspect_inbound(&mut a[..10]);
        c.inspect_inbound(&mut a[10..]);
        c.inspect_inbound(rest);
        assert_eq!(input[PREFACE_LEN + 3], IGNORED, "stream 1's DATA");
        assert_eq!(input[PREFACE_LEN + HEAD + 3 + 3], DATA, "stream 3 is open");
        let mut want = frame(RST_STREAM, 1, STREAM_CLOSED).to_vec();
        want.extend(frame(WINDOW_UPDATE, 0, 3));
        assert_eq!(c.pending, want);
    }

    #[test]
    fn streams_the_client_ended_or_reset_are_closed_too() {
        let mut c = ClosedStreams::new(());
        c.preface_left = 0;
        let mut input = head(0, HEADERS, END_STREAM | 0x4, 5);
        input.extend(head(4, RST_STREAM, 0, 7));
        input.extend([0, 0, 0, 8]);
        input.extend(head(0, DATA, 0, 5));
        input.extend(head(0, DATA, END_STREAM, 7));
        c.inspect_inbound(&mut input);
        let at = 2 * HEAD + 4;
        assert_eq!((input[at + 3], input[at + HEAD + 3]), (IGNORED, IGNORED));
        let mut want = frame(RST_STREAM, 5, STREAM_CLOSED).to_vec();
        want.extend(frame(RST_STREAM, 7, STREAM_CLOSED));
        assert_eq!(c.pending, want, "no WINDOW_UPDATE for empty frames");
    }

    #[test]
    fn the_closed_set_forgets_the_oldest_first() {
        let mut s = ClosedSet::default();
        for id in 1..=(REMEMBERED as u32 + 2) {
            s.insert(id);
        }
        assert!(!s.contains(1) && !s.contains(2) && s.contains(3) && s.contains(REMEMBERED as u32 + 2));
    }
}
