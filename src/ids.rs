//! Identifiers the node mints, and the checks on names callers choose.
//!
//! - `ep_` + 20 characters of `[0-9a-z]` (random, ~103 bits); `src_` (inbound sources) the same.
//! - `evt_` + 26 characters: 10 of time (ms, base 32, so ids sort by ingest time) and 16 random.
//! - `dlv_` + the endpoint part + the event part: a delivery id is a function of its endpoint and
//!   event, so re-routing an event creates nothing new, and the id alone locates its record.

use rand::Rng;

use hookline_actors::model::ID_ALPHABET as ALPHABET;
pub use hookline_actors::model::{delivery_id, event_time_ms};
pub const ENDPOINT_CORE: usize = 20;
pub const EVENT_CORE: usize = 26;

fn random_chars(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn new_endpoint_id() -> String {
    format!("ep_{}", random_chars(ENDPOINT_CORE))
}

pub fn new_event_id(now_ms: u64) -> String {
    format!(
        "evt_{}{}",
        hookline_actors::model::encode_event_time(now_ms),
        random_chars(16)
    )
}

/// A source of the inbound gateway: `src_` + 20 characters, like an endpoint id.
pub fn new_source_id() -> String {
    format!("src_{}", random_chars(ENDPOINT_CORE))
}

pub fn is_source_id(s: &str) -> bool {
    s.strip_prefix("src_").is_some_and(|c| is_core(c, ENDPOINT_CORE))
}

pub fn new_key_id() -> String {
    format!("key_{}", random_chars(KEY_CORE))
}

/// A request's id (`Hookline-Request-Id`): `req_` + 20 characters.
pub fn new_request_id() -> String {
    format!("req_{}", random_chars(20))
}

/// Characters after `key_` in a key id.
pub const KEY_CORE: usize = 16;

pub fn is_key_id(s: &str) -> bool {
    s.strip_prefix("key_").is_some_and(|c| is_core(c, KEY_CORE))
}

/// A portal session: `ps_` + 16 characters (its token is `hkp_` + 40, stored like a key).
pub fn new_portal_session_id() -> String {
    format!("ps_{}", random_chars(KEY_CORE))
}

pub fn new_portal_token() -> String {
    format!("hkp_{}", random_chars(40))
}

/// A tenant API key: shown once, stored only as its SHA-256.
pub fn new_api_key() -> String {
    format!("hk_{}", random_chars(40))
}

fn is_core(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| ALPHABET.contains(&b))
}

pub fn is_endpoint_id(s: &str) -> bool {
    s.strip_prefix("ep_").is_some_and(|c| is_core(c, ENDPOINT_CORE))
}

pub fn is_event_id(s: &str) -> bool {
    s.strip_prefix("evt_").is_some_and(|c| is_core(c, EVENT_CORE))
}

/// `(endpoint id, event id)` of a delivery id, if it is one.
pub fn parse_delivery_id(s: &str) -> Option<(String, String)> {
    let core = s.strip_prefix("dlv_")?;
    if core.len() != ENDPOINT_CORE + EVENT_CORE || !core.is_ascii() {
        return None;
    }
    let (ep, evt) = core.split_at(ENDPOINT_CORE);
    (is_core(ep, ENDPOINT_CORE) && is_core(evt, EVENT_CORE)).then(|| (format!("ep_{ep}"), format!("evt_{evt}")))
}

/// `^[a-zA-Z0-9_-]{1,64}$`
pub fn is_tenant(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `^[a-zA-Z0-9_.:-]{1,128}$`
pub fn is_event_type(s: &str) -> bool {
    (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b))
}

/// An event type, `*`, or `prefix.*` where `prefix.` is a valid event type start.
pub fn is_event_type_pattern(s: &str) -> bool {
    s == "*" || s.strip_suffix(".*").is_some_and(is_event_type) || is_event_type(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_have_their_shape() {
        assert!(is_endpoint_id(&new_endpoint_id()));
        let e = new_event_id(1_700_000_000_000);
        assert!(is_event_id(&e), "{e}");
        assert_ne!(new_endpoint_id(), new_endpoint_id());
    }

    #[test]
    fn event_ids_sort_by_time() {
        let a = new_event_id(1_700_000_000_000);
        let b = new_event_id(1_700_000_000_001);
        assert!(a[..14] < b[..14]);
    }

    #[test]
    fn delivery_ids_round_trip_and_are_deterministic() {
        let ep = new_endpoint_id();
        let evt = new_event_id(5);
        let d = delivery_id(&ep, &evt);
        assert_eq!(d, delivery_id(&ep, &evt));
        assert_eq!(parse_delivery_id(&d), Some((ep, evt)));
        assert_eq!(parse_delivery_id("dlv_short"), None);
        assert_eq!(parse_delivery_id(&format!("dlv_{}", "é".repeat(23))), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(is_tenant("acme_1-x"));
        assert!(!is_tenant(""));
        assert!(!is_tenant("a b"));
        assert!(!is_tenant(&"a".repeat(65)));
        assert!(is_event_type("order.item:added-v2_x"));
        assert!(!is_event_type("order created"));
        assert!(is_event_type_pattern("*"));
        assert!(is_event_type_pattern("order.*"));
        assert!(!is_event_type_pattern("order*"));
        assert!(!is_event_type_pattern("*.created"));
    }
}
