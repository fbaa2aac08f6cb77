//! Protocol edges found by HTTP conformance suites, each on the wire with raw sockets or
//! hand-built HTTP/2 frames: a connection that must be HTTP/2 is never answered in HTTP/1.1
//! (bad preface on h2c and on TLS with ALPN `h2`, HTTP/1.1 spoken after ALPN chose `h2`);
//! HTTP/1.1 without `Host` is refused at once; DATA after an early response's
//! RST_STREAM(NO_ERROR) gets a stream error, never a connection error; `[proxy] via`.

mod early;
mod frames;
mod host;
mod preface;
