//! Property tests: the router's split and stickiness, weight parsing, the
//! hop-by-hop filter, and config parsing on arbitrary input.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use std::path::Path;
use switchyard::proxy::headers::{add_forwarded, strip_hop_by_hop};
use switchyard::route::pick::{color_for, key_bucket, sequence_bucket};
use switchyard::route::Weight;
use switchyard::Color;

const HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

fn weight() -> impl Strategy<Value = Weight> {
    (0u16..=10_000).prop_map(|bp| Weight::from_bp(bp).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any 10 000 consecutive unkeyed requests send exactly `weight` basis points to green.
    #[test]
    fn long_run_share_equals_the_weight(w in weight(), start in any::<u64>()) {
        let start = start % (u64::MAX - 10_000);
        let green = (start..start + 10_000).filter(|&n| color_for(sequence_bucket(n), w) == Color::Green).count();
        prop_assert_eq!(green, usize::from(w.bp()));
    }

    /// A sticky key that is green at `w` stays green at every `w2 >= w` (raising the weight only
    /// ever moves clients blue → green).
    #[test]
    fn stickiness_is_monotone_in_the_weight(key in proptest::collection::vec(any::<u8>(), 0..64), a in weight(), b in weight()) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let bucket = key_bucket(&key);
        if color_for(bucket, lo) == Color::Green {
            prop_assert_eq!(color_for(bucket, hi), Color::Green);
        }
        prop_assert_eq!(key_bucket(&key), bucket, "seedless and stable");
    }

    /// Percentages in range with at most two decimals are accepted, exactly.
    #[test]
    fn hundredths_of_a_percent_are_weights(bp in 0u16..=10_000) {
        let pct = f64::from(bp) / 100.0;
        prop_assert_eq!(Weight::from_percent(pct).unwrap().bp(), bp);
    }

    /// Outside 0..=100, not finite, or finer than 0.01 %: rejected.
    #[test]
    fn out_of_range_and_too_fine_weights_are_rejected(x in any::<f64>()) {
        let ok = Weight::from_percent(x).is_ok();
        let in_range = x.is_finite() && (0.0..=100.0).contains(&x);
        let hundredths = ((x * 100.0) - (x * 100.0).round()).abs() <= 1e-6;
        prop_assert_eq!(ok, in_range && hundredths, "{}", x);
    }

    #[test]
    fn weights_between_hundredths_are_rejected(bp in 0u16..10_000, frac in 0.1f64..0.9) {
        let pct = (f64::from(bp) + frac) / 100.0;
        prop_assert!(Weight::from_percent(pct).is_err(), "{}", pct);
    }

    /// No hop-by-hop header (fixed list or named by Connection) survives; others are untouched.
    #[test]
    fn no_hop_by_hop_header_survives(
        plain in proptest::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,16}"), 0..8),
        hop in proptest::collection::vec((0usize..8, "[a-z ,]{0,16}"), 0..6),
        named in proptest::collection::vec("x-[a-z]{1,8}", 0..3),
    ) {
        let mut h = HeaderMap::new();
        for (k, v) in &plain {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v.trim()).unwrap());
        }
        for (i, v) in &hop {
            h.append(HOP[*i], HeaderValue::from_str(v).unwrap());
        }
        if !named.is_empty() {
            h.append("connection", HeaderValue::from_str(&named.join(", ")).unwrap());
        }
        let before = h.clone();
        strip_hop_by_hop(&mut h, false);
        for name in HOP {
            prop_assert!(!h.contains_key(name), "{} survived", name);
        }
        for n in &named {
            prop_assert!(!h.contains_key(n.as_str()), "{} named by Connection survived", n);
        }
        for (k, v) in before.iter() {
            let hop_like = HOP.contains(&k.as_str()) || named.iter().any(|n| n == k.as_str());
            if !hop_like {
                prop_assert!(h.get_all(k).iter().any(|x| x == v), "{} was changed", k);
            }
        }
        for k in h.keys() {
            prop_assert_eq!(h.get_all(k).iter().count(), before.get_all(k).iter().count());
        }
        add_forwarded(&mut h, &HeaderValue::from_static("127.0.0.1"), &HeaderValue::from_static("http"), None);
        prop_assert!(h["x-forwarded-for"].to_str().unwrap_or("").ends_with("127.0.0.1"));
    }

    /// Config parsing returns Ok or Err on anything; it never panics.
    #[test]
    fn config_parsing_never_panics(src in "(\\[\\[services\\]\\]|\\[limits\\]|\\[control\\]|[a-z_]{1,12} = (\"[ -~]{0,12}\"|-?[0-9]{1,4}(\\.[0-9]{1,3})?|\\[[0-9, .\"]{0,12}\\]|\\{[ -~]{0,20}\\})|\n){0,24}") {
        let _ = switchyard::config::parse(&src, Path::new("prop.toml"));
    }

    #[test]
    fn config_parsing_never_panics_on_bytes(src in "\\PC{0,200}") {
        let _ = switchyard::config::parse(&src, Path::new("prop.toml"));
    }

    /// A valid service with an arbitrary weight: accepted iff the weight is a weight.
    #[test]
    fn green_weight_in_a_file_is_validated(x in -200.0f64..200.0) {
        let src = format!(
            "[[services]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\ngreen_weight = {x:?}\n\
             blue = {{ endpoints = [\"127.0.0.1:1\"] }}\ngreen = {{ endpoints = [\"127.0.0.1:2\"] }}\n"
        );
        let r = switchyard::config::parse(&src, Path::new("prop.toml"));
        prop_assert_eq!(r.is_ok(), Weight::from_percent(x).is_ok(), "{}", src);
    }
}
