//! Header rewriting on an arbitrary `HeaderMap`: lines `name: value` separated by `\n`, the
//! first byte choosing whether an upgrade is kept. Checks no hop-by-hop header survives.
#![no_main]
use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard::proxy::headers::{add_forwarded, is_upgrade, strip_hop_by_hop};

const HOP: [&str; 7] =
    ["keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "proxy-authorization", "connection"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut h = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(&line[colon + 1..]))
        else {
            continue;
        };
        h.append(n, v);
    }
    let keep_upgrade = flags & 1 == 1 && is_upgrade(&h);
    strip_hop_by_hop(&mut h, keep_upgrade);
    for name in HOP {
        if keep_upgrade && name == "connection" {
            assert_eq!(h.get_all(name).iter().count(), 1);
            continue;
        }
        assert!(!h.contains_key(name), "{name} survived");
    }
    if !keep_upgrade {
        assert!(!h.contains_key("upgrade"));
    }
    let host = h.get("host").cloned();
    add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), &HeaderValue::from_static("https"), host);
    assert!(h.contains_key("x-forwarded-for"));
    assert_eq!(h["x-forwarded-proto"], "https");
});
