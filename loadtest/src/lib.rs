//! Load-test tools for Hookline: a receiver (`sink`), a driver (`drive`) and the console page
//! benchmark (`pages`).
//!
//! The sink is also a library so that the integration tests use the same receiver in-process.

pub mod drive;
pub mod inbound;
pub mod order;
pub mod pages;
pub mod sink;
pub mod soak;
pub mod tls;

/// Resident memory of a process, in KiB (0 if it cannot be read), from `/proc`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
