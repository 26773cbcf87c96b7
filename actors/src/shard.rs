//! Which shard an endpoint belongs to. Every node must compute the same answer for the same
//! endpoint id and shard count, forever, so this is a fixed hash (FNV-1a), not std's hasher.

pub fn shard_of(endpoint_id: &str, shard_count: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in endpoint_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(shard_count.max(1))) as u32
}

/// How many of `shard_count` shards the node of `rank` (its place among the live node ids in
/// sorted order) should hold: the first `shard_count % live` nodes one more than the rest, so
/// every shard has a holder and the most and fewest differ by at most one.
pub fn fair_share(shard_count: u32, live: usize, rank: usize) -> usize {
    let (count, live) = (shard_count as usize, live.max(1));
    count / live + usize::from(rank < count % live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fair_shares_cover_every_shard_and_differ_by_at_most_one() {
        for count in [1u32, 16, 64, 100] {
            for live in 1..=7usize {
                let shares: Vec<usize> = (0..live).map(|rank| fair_share(count, live, rank)).collect();
                assert_eq!(
                    shares.iter().sum::<usize>(),
                    count as usize,
                    "{count}/{live}: {shares:?}"
                );
                let (most, fewest) = (shares.iter().max().unwrap(), shares.iter().min().unwrap());
                assert!(most - fewest <= 1, "{count}/{live}: {shares:?}");
            }
        }
        assert_eq!(fair_share(64, 0, 0), 64, "alone when nobody is counted yet");
    }

    #[test]
    fn stable_and_in_range() {
        assert_eq!(shard_of("ep_abc", 64), shard_of("ep_abc", 64));
        // Pinned to FNV-1a 64 of "ep_abc" (0xbba381bf3c211a93, computed independently):
        // changing the function would move every endpoint to another shard.
        assert_eq!(shard_of("ep_abc", 1_000_000), 900_051);
        assert_eq!(shard_of("ep_abc", 64), 19);
        for i in 0..1000 {
            assert!(shard_of(&format!("ep_{i}"), 64) < 64);
        }
    }

    #[test]
    fn spreads_ids_over_shards() {
        let mut counts = [0u32; 16];
        for i in 0..16_000 {
            counts[shard_of(&format!("ep_{i:020}"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700 && c < 1300), "{counts:?}");
    }
}
