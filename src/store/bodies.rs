//! The bodies of the events this node stored lately, kept in memory for its own endpoint
//! actors' pulls: the node that ingests an event is often the one that delivers it, and then
//! the pull needs no read of the body from Redis (`delivery.body_cache_mb`; 0: none).
//!
//! An event's body never changes once stored, so a copy is never stale; it is only kept while
//! the event is surely still in Redis (at most `MAX_AGE_MS`, and half of retention), so a
//! delivery whose event expired is still seen to have expired. Oldest out first, by bytes.
//! A pull that misses (another node stored the event, or it is older) reads Redis as before.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The longest a body is kept: a pull that comes later reads Redis.
const MAX_AGE_MS: u64 = 60_000;

pub struct RecentBodies {
    max_bytes: usize,
    max_age_ms: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Event key → (body, stored at ms).
    bodies: HashMap<String, (Arc<str>, u64)>,
    /// Event keys in the order they were stored, with their body's size.
    order: VecDeque<(String, usize)>,
    bytes: usize,
}

impl RecentBodies {
    pub fn new(max_bytes: usize, retention_s: u64) -> Self {
        Self {
            max_bytes,
            max_age_ms: MAX_AGE_MS.min(retention_s * 500),
            inner: Mutex::default(),
        }
    }

    /// Keep the body of an event just stored under `key` (its record's key).
    pub fn insert(&self, key: String, body: &str, now_ms: u64) {
        // A key's share: the body, the key twice, and the entries around them.
        let size = body.len() + 2 * key.len() + 64;
        if size > self.max_bytes / 4 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.bodies.contains_key(&key) {
            return;
        }
        while inner.bytes + size > self.max_bytes || inner.oldest_ms().is_some_and(|at| at + self.max_age_ms <= now_ms)
        {
            inner.pop_oldest();
        }
        inner.bodies.insert(key.clone(), (Arc::from(body), now_ms));
        inner.order.push_back((key, size));
        inner.bytes += size;
    }

    /// The body stored under `key`, if this node stored it lately.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<Arc<str>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (body, at) = inner.bodies.get(key)?;
        (at + self.max_age_ms > now_ms).then(|| body.clone())
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }
}

impl Inner {
    fn oldest_ms(&self) -> Option<u64> {
        let (key, _) = self.order.front()?;
        self.bodies.get(key).map(|(_, at)| *at)
    }

    fn pop_oldest(&mut self) {
        if let Some((key, size)) = self.order.pop_front() {
            self.bodies.remove(&key);
            self.bytes -= size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_found_until_it_is_too_old_or_pushed_out() {
        let bodies = RecentBodies::new(1_000, 3_600);
        bodies.insert("e1".into(), "one", 0);
        bodies.insert("e2".into(), "two", 10);
        assert_eq!(bodies.get("e1", 59_999).as_deref(), Some("one"));
        assert_eq!(bodies.get("e1", 60_000), None, "older than a minute");
        assert_eq!(bodies.get("e3", 0), None);
        // Storing more pushes the oldest out once the bytes are spent (each entry ~70 here).
        for i in 0..20 {
            bodies.insert(format!("f{i}"), "x", 20);
        }
        assert_eq!(bodies.get("e1", 20), None);
        assert_eq!(bodies.get("f19", 20).as_deref(), Some("x"));
        let inner = bodies.inner.lock().unwrap();
        assert!(inner.bytes <= 1_000 && inner.bodies.len() == inner.order.len());
    }

    #[test]
    fn a_short_retention_keeps_bodies_for_half_of_it_and_a_big_body_is_not_kept() {
        let bodies = RecentBodies::new(1_000, 10);
        bodies.insert("e1".into(), "one", 0);
        assert!(bodies.get("e1", 4_999).is_some());
        assert!(bodies.get("e1", 5_000).is_none(), "kept past half of retention");
        bodies.insert("big".into(), &"x".repeat(300), 0);
        assert!(
            bodies.get("big", 0).is_none(),
            "a body over a quarter of the space is not kept"
        );
        // Re-storing a key keeps the first body (a stored body never changes).
        bodies.insert("e1".into(), "other", 1);
        assert_eq!(bodies.get("e1", 1).as_deref(), Some("one"));
        assert!(!RecentBodies::new(0, 10).enabled());
    }
}
