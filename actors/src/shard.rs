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

#[cfg(test)]
mod tests {
    use super::*;

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
