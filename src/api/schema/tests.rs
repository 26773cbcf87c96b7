//! The patterns of `schema` against the checks that enforce them.
use super::*;
use proptest::prelude::*;
use regex::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap()
}

/// Values drawn from a pattern (proptest reads it without its anchors).
fn drawn(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap();
    proptest::string::string_regex(inner).unwrap()
}

/// Strings near the pattern's values: a drawn value with a character changed, added or
/// removed, and random short strings.
fn near(pattern: &str) -> impl Strategy<Value = String> {
    let mutated = (drawn(pattern), any::<prop::sample::Index>(), any::<char>(), 0..3u8).prop_map(|(s, at, c, how)| {
        let mut chars: Vec<char> = s.chars().collect();
        let i = if chars.is_empty() { 0 } else { at.index(chars.len()) };
        match how {
            0 if !chars.is_empty() => chars[i] = c,
            1 => chars.insert(i, c),
            _ if !chars.is_empty() => {
                chars.remove(i);
            }
            _ => chars.push(c),
        }
        chars.into_iter().collect()
    });
    prop_oneof![mutated, ".{0,24}", "[ -~]{0,140}"]
}

fn agree(pattern: &str, check: impl Fn(&str) -> bool) {
    let regex = re(pattern);
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&drawn(pattern), |s| {
            prop_assert!(check(&s), "{s:?} matches {pattern} but is refused");
            Ok(())
        })
        .unwrap();
    runner
        .run(&near(pattern), |s| {
            prop_assert_eq!(regex.is_match(&s), check(&s), "{:?} against {}", s, pattern);
            Ok(())
        })
        .unwrap();
}

#[test]
fn names_and_ids_match_their_checks() {
    agree(TENANT, crate::ids::is_tenant);
    agree(EVENT_TYPE, crate::ids::is_event_type);
    agree(EVENT_TYPE_PATTERN, crate::ids::is_event_type_pattern);
    agree(SCHEMA_VERSION, |s| crate::catalogue::parse_version(s).is_some());
    agree(METADATA_KEY, crate::event::is_metadata_key);
    agree(STREAM_CURSOR, |s| s.is_empty() || crate::store::search::is_cursor(s));
    agree(ENDPOINT_ID, crate::ids::is_endpoint_id);
    agree(EVENT_ID, crate::ids::is_event_id);
    agree(DELIVERY_ID, |s| crate::ids::parse_delivery_id(s).is_some());
    agree(SOURCE_ID, crate::ids::is_source_id);
    agree(KEY_ID, crate::ids::is_key_id);
    assert!(re(KEY_ID).is_match(&crate::ids::new_key_id()));
    assert!(re(SOURCE_ID).is_match(&crate::ids::new_source_id()));
    assert!(re(ENDPOINT_ID).is_match(&crate::ids::new_endpoint_id()));
    assert!(re(EVENT_ID).is_match(&crate::ids::new_event_id(1_700_000_000_000)));
}

#[test]
fn secrets_match_decode_secret() {
    agree(SECRET, |s| crate::delivery::sign::decode_secret(s).is_some());
    assert!(re(SECRET).is_match(&crate::delivery::sign::new_secret()));
    // Every key length at both ends and between, with and without padding.
    use base64::Engine;
    for n in 0..=70usize {
        let s = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
        );
        assert_eq!(re(SECRET).is_match(&s), (24..=64).contains(&n), "{n} bytes: {s}");
    }
}

#[test]
fn cidrs_match_what_the_allowlist_parses() {
    let parses = |s: &str| s.parse::<crate::inbound::net::Cidr>().is_ok();
    agree(&CIDR, parses);
    let cidr = re(&CIDR);
    for ok in [
        "203.0.113.0/24",
        "0.0.0.0/0",
        "10.0.0.1",
        "10.0.0.0/032",
        "::",
        "::1",
        "::/0",
        "2001:db8::/32",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::ffff:1.2.3.4",
        "1::2:3:4:5:6:7",
        "fe80::1/128",
        "1:2:3:4:5:6:1.2.3.4",
    ] {
        assert!(cidr.is_match(ok) && parses(ok), "{ok}");
    }
    for bad in [
        "01.2.3.4",
        "1.2.3.4/33",
        "::/129",
        "1:2:3:4:5:6:7:8:9",
        "1::2::3",
        ":::",
        "12345::",
        "1.2.3.4/0001",
    ] {
        assert!(!cidr.is_match(bad) && !parses(bad), "{bad}");
    }
}

#[test]
fn cursors_match_their_parsers() {
    agree(OFFSET_CURSOR, |s| super::super::offset_cursor(Some(s)).is_ok());
}

#[test]
fn header_names_and_values_match_http() {
    let reserved = re(RESERVED_HEADER_NAME);
    for name in hookline_actors::transport::RESERVED_HEADERS {
        assert!(
            reserved.is_match(name) && reserved.is_match(&name.to_uppercase()),
            "{name}"
        );
    }
    agree(RESERVED_HEADER_NAME, |s| {
        hookline_actors::transport::RESERVED_HEADERS.contains(&s.to_ascii_lowercase().as_str())
    });
    agree(HEADER_NAME, |s| {
        axum::http::HeaderName::from_bytes(s.as_bytes()).is_ok()
    });
    agree(HEADER_VALUE, |s| axum::http::HeaderValue::from_str(s).is_ok());
    // The handler refuses tabs too; a space at either end HTTP drops before it sees it.
    agree(IDEMPOTENCY_HEADER, |s| {
        axum::http::HeaderValue::from_str(s).is_ok_and(|v| v.to_str().is_ok())
            && !s.contains('\t')
            && s.trim() == s
            && (1..=256).contains(&s.len())
    });
}

/// A pattern narrower than its check: every value it matches is accepted.
fn within(pattern: &str, check: impl Fn(&str) -> bool) {
    let regex = re(pattern);
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&drawn(pattern), |s| {
            prop_assert!(check(&s), "{s:?} matches {pattern} but is refused");
            Ok(())
        })
        .unwrap();
    runner
        .run(&near(pattern), |s| {
            prop_assert!(
                !regex.is_match(&s) || check(&s),
                "{:?} matches {} but is refused",
                s,
                pattern
            );
            Ok(())
        })
        .unwrap();
}

fn since_accepted(s: &str) -> bool {
    humantime::parse_rfc3339_weak(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some()
}

#[test]
fn since_is_what_humantime_reads() {
    // humantime also lets a few malformed suffixes through (`…07Zab`, `…07.5+99:99`): the
    // document describes the well-formed times only.
    within(SINCE, since_accepted);
    let since = re(SINCE);
    for ok in [
        "1970-01-01T00:00:00Z",
        "2024-02-29 23:59:60",
        "2000-02-29T00:00:00.123456789+00:00",
        "2026-12-31T12:00:00.Z",
    ] {
        assert!(since.is_match(ok) && since_accepted(ok), "{ok}");
    }
    for bad in [
        "1969-12-31T23:59:59Z",
        "2023-02-29T00:00:00Z",
        "2100-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01t00:00:00Z",
        "2026-01-01T00:00:00+01:00",
    ] {
        assert!(!since.is_match(bad) && !since_accepted(bad), "{bad}");
    }
}

#[test]
fn audit_cursors_that_match_are_read_back() {
    within(AUDIT_CURSOR, |s| {
        s.is_empty() || crate::store::audit::parse_id(s).is_some()
    });
}

#[test]
fn urls_that_match_are_accepted() {
    let base = hookline_actors::EndpointConfig::new(
        "ep_x".into(),
        "t".into(),
        String::new(),
        crate::delivery::sign::new_secret(),
        0,
    );
    within(URL, |s| {
        let mut cfg = base.clone();
        cfg.url = s.to_string();
        let rules = crate::config::Delivery {
            allow_private_networks: true,
            ..Default::default()
        };
        super::super::endpoint_rules::validate(&cfg, &rules).is_ok()
    });
    // Punycode labels are left out (`xn--` that does not decode is refused by the URL parser).
    let url = re(URL);
    for refused in ["hTTP://Xn--.a", "http://a.xn--", "http://xn--zz.example"] {
        assert!(!url.is_match(refused), "{refused}");
    }
    for matched in [
        "http://x.example",
        "http://xn.example",
        "http://xn-a.example",
        "https://a.x",
    ] {
        assert!(url.is_match(matched), "{matched}");
    }
}
