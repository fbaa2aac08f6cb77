//! Request and response header rewriting: pure functions over a `HeaderMap`, fuzzable.

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

/// The fixed hop-by-hop names (RFC 9110 §7.6.1); `Connection` must stay first (bit 0 below).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Whether a name of this length could be one of `HOP_BY_HOP` (a cheap pre-filter).
fn hop_by_hop_len(n: usize) -> bool {
    matches!(n, 2 | 7 | 10 | 16 | 17 | 19)
}

/// `Via` value added by Switchyard.
pub const VIA: HeaderValue = HeaderValue::from_static("1.1 switchyard");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Whether the request asks for a protocol upgrade (WebSocket and friends).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .any(|v| v.as_bytes().split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade")))
}

/// Removes hop-by-hop headers, including those named by `Connection`. With `keep_upgrade`, the
/// `Connection: upgrade` and `Upgrade` pair survives so an upgrade can be tunnelled.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    Hops::scan(headers, false).strip(headers, keep_upgrade);
}

/// What a request's headers say, read in the one pass that strips them.
pub struct Request {
    /// Whether it asks for a protocol upgrade (`is_upgrade`); the upgrade pair was kept.
    pub upgrade: bool,
    /// Its (first) `Host`.
    pub host: Option<HeaderValue>,
}

/// `strip_hop_by_hop` for a request, keeping the upgrade pair when it asks for one, and what
/// the same pass found: whether it is an upgrade (`is_upgrade` was two hashed lookups, ~105
/// instructions per request under callgrind) and its `Host` (a hashed lookup, ~110).
pub fn strip_request(headers: &mut HeaderMap) -> Request {
    let mut hops = Hops::scan(headers, true);
    let upgrade = hops.present & UPGRADE_BIT != 0 && hops.connection_upgrade;
    // `Connection: host` is allowed to remove it.
    let host = match &hops.named {
        Some(n) if n.contains(&header::HOST) => None,
        _ => hops.host.take(),
    };
    hops.strip(headers, upgrade);
    Request { upgrade, host }
}

/// Bit of `Upgrade` in `Hops::present` (its index in `HOP_BY_HOP`).
const UPGRADE_BIT: u16 = 1 << 6;

/// One pass over the headers present (enum compares for standard names): which of the fixed
/// hop-by-hop names occur, the names `Connection` lists, and (when asked) `Host`. Nearly every
/// upstream response carries `Connection: keep-alive`, so this runs on most exchanges:
/// callgrind put a Vec of parsed names plus nine hashed lookups at ~2.9k instructions, and a
/// second (hashed) lookup of `Connection` at ~110 more.
struct Hops {
    present: u16,
    /// Names listed in `Connection` beyond the fixed set (`Connection: x-secret`); allocated only
    /// when there is one. Fixed names (`upgrade` among them) are left to `present`, which keeps
    /// the upgrade pair when tunnelling.
    named: Option<Vec<HeaderName>>,
    /// A `Connection` line lists `upgrade`.
    connection_upgrade: bool,
    host: Option<HeaderValue>,
}

impl Hops {
    fn scan(headers: &HeaderMap, want_host: bool) -> Hops {
        let mut hops = Hops { present: 0, named: None, connection_upgrade: false, host: None };
        for (k, v) in headers.iter() {
            // Length first: most names (date, server, content-type, ...) have none of the
            // lengths of the eight, so they skip the comparisons.
            if !hop_by_hop_len(k.as_str().len()) {
                if want_host && hops.host.is_none() && k == header::HOST {
                    hops.host = Some(v.clone());
                }
                continue;
            }
            let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) else { continue };
            hops.present |= 1 << i;
            if i == 0 {
                hops.connection_upgrade |= connection_named(v, &mut hops.named);
            }
        }
        hops
    }

    fn strip(self, headers: &mut HeaderMap, keep_upgrade: bool) {
        if self.present == 0 {
            return;
        }
        for n in self.named.into_iter().flatten() {
            headers.remove(n);
        }
        let upgrade = if keep_upgrade { headers.get(header::UPGRADE).cloned() } else { None };
        for (i, h) in HOP_BY_HOP.iter().enumerate() {
            if self.present & (1 << i) != 0 {
                headers.remove(h);
            }
        }
        if let Some(u) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, u);
        }
    }
}

/// Collects the names one `Connection` line lists that are not already among the fixed ones;
/// returns whether it lists `upgrade`.
fn connection_named(v: &HeaderValue, named: &mut Option<Vec<HeaderName>>) -> bool {
    let mut upgrade = false;
    for t in v.as_bytes().split(|&b| b == b',').map(<[u8]>::trim_ascii) {
        if t.is_empty() || t.eq_ignore_ascii_case(b"close") || t.eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        upgrade |= t.eq_ignore_ascii_case(b"upgrade");
        if let Ok(n) = HeaderName::from_bytes(t) {
            if !HOP_BY_HOP.contains(&n) {
                named.get_or_insert_with(Vec::new).push(n);
            }
        }
    }
    upgrade
}

/// Adds `X-Forwarded-For` (appending the peer), `-Proto`, `-Host` and `Via`.
/// `peer` is the client address already rendered once per connection. Several incoming
/// `X-Forwarded-For` lines are one list (RFC 9110 §5.3), so every line is kept, in order.
pub fn add_forwarded(headers: &mut HeaderMap, peer: &HeaderValue, proto: &HeaderValue, host: Option<HeaderValue>) {
    add_forwarded_via(headers, peer, proto, host, true)
}

/// `add_forwarded`, with `Via` only when `via` (`[proxy] via`): RFC 9110 §7.6.3 asks a proxy to
/// send it, but nginx's default `gzip_proxied off` then compresses no response, so a deployment
/// in front of such an upstream may turn it off. A `Via` the client sent is forwarded either way.
pub fn add_forwarded_via(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    proto: &HeaderValue,
    host: Option<HeaderValue>,
    via: bool,
) {
    // One hashed lookup of the (custom, so byte-by-byte hashed) name whether or not it is there.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Vacant(e) => {
            e.insert(peer.clone());
        }
        Entry::Occupied(mut e) => {
            let mut v = Vec::with_capacity(64);
            for prev in e.iter() {
                v.extend_from_slice(prev.as_bytes());
                v.extend_from_slice(b", ");
            }
            v.extend_from_slice(peer.as_bytes());
            e.insert(HeaderValue::from_bytes(&v).unwrap_or_else(|_| peer.clone()));
        }
    }
    headers.insert(X_FORWARDED_PROTO, proto.clone());
    if let Some(h) = host {
        headers.insert(X_FORWARDED_HOST, h);
    }
    if via {
        headers.append(header::VIA, VIA);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-keep", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn the_length_prefilter_admits_every_hop_by_hop_name() {
        assert!(HOP_BY_HOP.iter().all(|h| hop_by_hop_len(h.as_str().len())));
    }

    #[test]
    fn connection_tokens_remove_named_headers_and_leave_the_rest() {
        // `close` and `keep-alive` tokens, a fixed name that is absent (`te`), a custom name
        // in another case, and a second Connection line.
        let mut h = map(&[("connection", "close, TE, X-A"), ("x-a", "1"), ("x-b", "2"), ("upgrade", "h2c")]);
        h.append("connection", HeaderValue::from_static("x-b"));
        strip_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert!(left.is_empty(), "left: {left:?}");

        let mut h = map(&[("keep-alive", "timeout=5"), ("x-keep", "yes")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "a lone keep-alive header goes even without Connection");
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn upgrade_pair_survives_when_tunnelling() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn the_upgrade_bit_is_the_place_of_upgrade_among_the_hop_by_hop_names() {
        assert_eq!(HOP_BY_HOP[UPGRADE_BIT.trailing_zeros() as usize], header::UPGRADE);
    }

    #[test]
    fn a_request_pass_finds_the_upgrade_and_host_as_the_lookups_did() {
        let cases: &[&[(&str, &str)]] = &[
            &[("host", "a.example"), ("connection", "keep-alive, Upgrade"), ("upgrade", "websocket")],
            &[("host", "a.example"), ("upgrade", "websocket")],
            &[("connection", "upgrade")],
            &[("connection", "close, host"), ("host", "a.example"), ("x-a", "1")],
            &[("host", "a.example"), ("x-a", "1")],
        ];
        for pairs in cases {
            let (mut h, mut old) = (map(pairs), map(pairs));
            let upgrade = is_upgrade(&old);
            strip_hop_by_hop(&mut old, upgrade);
            let r = strip_request(&mut h);
            assert_eq!(r.upgrade, upgrade, "{pairs:?}");
            assert_eq!(r.host.as_ref(), old.get(header::HOST), "{pairs:?}");
            assert_eq!(h, old, "{pairs:?}");
        }
    }

    #[test]
    fn forwarded_for_keeps_every_incoming_line() {
        let mut h = HeaderMap::new();
        h.append(X_FORWARDED_FOR, "10.0.0.1".parse().unwrap());
        h.append(X_FORWARDED_FOR, "10.0.0.2, 10.0.0.3".parse().unwrap());
        add_forwarded(&mut h, &"127.0.0.1".parse().unwrap(), &"http".parse().unwrap(), None);
        assert_eq!(h.get_all(X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1");
    }

    #[test]
    fn forwarded_for_appends_to_an_existing_chain() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        add_forwarded(
            &mut h,
            &"127.0.0.1".parse().unwrap(),
            &"http".parse().unwrap(),
            Some("a.example".parse().unwrap()),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.example");
        assert_eq!(h["via"], "1.1 switchyard");
    }

    #[test]
    fn via_off_adds_none_and_keeps_the_clients() {
        let (peer, proto) = ("127.0.0.1".parse().unwrap(), "http".parse().unwrap());
        let mut h = HeaderMap::new();
        add_forwarded_via(&mut h, &peer, &proto, None, false);
        assert!(!h.contains_key(header::VIA));
        let mut h = map(&[("via", "1.1 edge")]);
        add_forwarded_via(&mut h, &peer, &proto, None, false);
        assert_eq!(h.get_all(header::VIA).iter().collect::<Vec<_>>(), ["1.1 edge"]);
    }
}
