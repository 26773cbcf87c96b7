//! The local side of fencing: until when this node may start attempts on each shard.
//!
//! A lease is renewed in Redis with a TTL. Another node can take the shard only once that TTL
//! has run out on Redis's clock, counted from when the renewal *arrived*. This node counts its
//! deadline from when it *sent* the renewal, which is earlier, and keeps a margin. So it stops
//! starting attempts before anyone else can start. A process that was paused (SIGSTOP, a
//! stall) or cut off from Redis wakes up past its deadline and starts nothing until a renewal
//! succeeds again. Writes are fenced on the Redis side too: RECORD_ATTEMPT checks the token
//! `node#epoch` an actor took when it started against the shard's holder and epoch (a new
//! epoch at every fresh acquisition), so even the same node, having lost and retaken the
//! shard, cannot record with its old actors.

use std::sync::atomic::{AtomicU64, Ordering};

/// How `shards.lease_ttl_ms` (the promise: a dead node's shards are held again within it)
/// becomes Redis expiries and a cycle. Leases and heartbeats expire three quarters of the TTL
/// after their last renewal, and every node runs its lease cycle (heartbeat, renew, take) every
/// quarter. A dead node's last renewal was at most `expiry_ms` before its lease runs out, and a
/// survivor's next cycle, at most `cycle_ms` later, takes it: within the TTL in all. A lease is
/// renewed three times per expiry, so two late cycles in a row cost nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaseTiming {
    /// PX of a lease, and how long a heartbeat counts a node as live.
    pub expiry_ms: u64,
    /// The period of the lease cycle.
    pub cycle_ms: u64,
}

impl LeaseTiming {
    pub fn from_ttl(ttl_ms: u64) -> Self {
        let cycle_ms = (ttl_ms / 4).max(50);
        LeaseTiming {
            cycle_ms,
            expiry_ms: ttl_ms.saturating_sub(cycle_ms).max(cycle_ms * 2),
        }
    }
}

pub struct LeaseClock {
    until_ms: Vec<AtomicU64>,
    /// The epoch of each shard's current lease (see `Store::hold_lease`).
    epochs: Vec<AtomicU64>,
    ttl_ms: u64,
    margin_ms: u64,
}

impl LeaseClock {
    /// Deadlines for `shards` shards whose leases expire `ttl_ms` (`LeaseTiming::expiry_ms`)
    /// after a renewal, stopping a quarter of that early.
    pub fn new(shards: u32, ttl_ms: u64) -> Self {
        LeaseClock {
            until_ms: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            epochs: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            ttl_ms,
            margin_ms: ttl_ms / 4,
        }
    }

    /// A renewal (or first hold) of `shard` sent at `sent_ms` succeeded.
    pub fn renewed(&self, shard: u32, sent_ms: u64) {
        if let Some(until) = self.until_ms.get(shard as usize) {
            until.store(sent_ms + self.ttl_ms - self.margin_ms, Ordering::Release);
        }
    }

    /// `shard`'s lease was taken (or found held) with this epoch.
    pub fn set_epoch(&self, shard: u32, epoch: u64) {
        if let Some(e) = self.epochs.get(shard as usize) {
            e.store(epoch, Ordering::Release);
        }
    }

    /// The epoch of `shard`'s current lease on this node (0: never held).
    pub fn epoch(&self, shard: u32) -> u64 {
        self.epochs.get(shard as usize).map_or(0, |e| e.load(Ordering::Acquire))
    }

    /// The fencing token of `node_id`'s lease of `epoch`: `node#epoch`. Actors take it (with
    /// the epoch, `epoch`) when they start and record with it; after the shard is lost and
    /// taken again it no longer matches, so their late results are refused.
    pub fn token(node_id: &str, epoch: u64) -> String {
        format!("{node_id}#{epoch}")
    }

    /// The lease of `shard` is lost or given back.
    pub fn revoke(&self, shard: u32) {
        if let Some(until) = self.until_ms.get(shard as usize) {
            until.store(0, Ordering::Release);
        }
    }

    /// A write made under `epoch` was refused: the lease is lost, unless this node has taken
    /// the shard again since (a newer epoch, whose actors go on).
    pub fn revoke_epoch(&self, shard: u32, epoch: u64) {
        if self.epoch(shard) == epoch {
            self.revoke(shard);
        }
    }

    /// May an actor that started under the lease of `epoch` start an attempt on `shard` at
    /// `now_ms`? Only while that lease is still this node's current one: once the shard was lost
    /// and taken again (a new epoch: a Redis failover, a pause), the old lease's actors stay
    /// refused, so they cannot send beside the new owner's actors in the moment before they are
    /// stopped.
    pub fn valid_for(&self, shard: u32, epoch: u64, now_ms: u64) -> bool {
        self.epoch(shard) == epoch && self.valid(shard, now_ms)
    }

    /// May an attempt on `shard` start at `now_ms`?
    pub fn valid(&self, shard: u32, now_ms: u64) -> bool {
        self.until_ms
            .get(shard as usize)
            .is_some_and(|until| now_ms < until.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_nodes_lease_is_taken_within_the_ttl() {
        for ttl in [300, 3_000, 10_000, 60_000] {
            let t = LeaseTiming::from_ttl(ttl);
            // Expired at most `expiry` after the last renewal, seen at the next cycle.
            assert!(t.expiry_ms + t.cycle_ms <= ttl, "{ttl}: {t:?}");
            // Renewed three times per expiry.
            assert!(t.expiry_ms >= 3 * t.cycle_ms, "{ttl}: {t:?}");
        }
        assert_eq!(
            LeaseTiming::from_ttl(10_000),
            LeaseTiming {
                expiry_ms: 7_500,
                cycle_ms: 2_500
            }
        );
    }

    #[test]
    fn the_actors_of_a_lease_taken_again_are_not_valid_under_the_new_one() {
        let clock = LeaseClock::new(2, 3_000);
        clock.set_epoch(1, 7);
        clock.renewed(1, 1_000);
        assert!(clock.valid_for(1, 7, 1_500));
        // Lost (a failover), then taken again: a new epoch, renewed.
        clock.revoke(1);
        clock.set_epoch(1, 8);
        clock.renewed(1, 5_000);
        assert!(clock.valid(1, 5_100));
        assert!(!clock.valid_for(1, 7, 5_100), "the old lease's actors start nothing");
        assert!(clock.valid_for(1, 8, 5_100));
        // A write of the old lease refused: the new lease stands.
        clock.revoke_epoch(1, 7);
        assert!(clock.valid_for(1, 8, 5_100));
        clock.revoke_epoch(1, 8);
        assert!(!clock.valid(1, 5_100));
    }

    #[test]
    fn valid_from_a_renewal_until_a_margin_before_its_ttl_runs_out() {
        let clock = LeaseClock::new(4, 10_000);
        assert!(!clock.valid(1, 1_000), "never held");
        clock.renewed(1, 1_000);
        assert!(clock.valid(1, 1_000));
        assert!(clock.valid(1, 8_499));
        assert!(!clock.valid(1, 8_500), "stops 2.5 s before the 10 s TTL from sending");
        assert!(!clock.valid(2, 1_000), "other shards are not affected");
        clock.renewed(1, 5_000);
        assert!(clock.valid(1, 12_000));
        clock.revoke(1);
        assert!(!clock.valid(1, 5_001));
        assert!(!clock.valid(9, 0), "shards out of range are never valid");
    }

    #[test]
    fn tokens_name_the_node_and_the_epoch_of_the_lease() {
        let clock = LeaseClock::new(2, 10_000);
        let token = |shard| LeaseClock::token("a", clock.epoch(shard));
        assert_eq!(token(1), "a#0");
        clock.set_epoch(1, 7);
        assert_eq!(token(1), "a#7");
        assert_eq!(token(0), "a#0", "per shard");
    }
}
