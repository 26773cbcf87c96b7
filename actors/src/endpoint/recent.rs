//! The event ids an endpoint actor pulled lately. The router wakes an endpoint after routing
//! new deliveries to it, and the wake names them: when the actor has pulled every one already
//! (its pull came between the routing and the wake: a busy node's wakes lag), the wake needs no
//! pull. Only new deliveries are named this way (a replay's wake, a wake announced from another
//! node and the due poll's name none), so a named id the actor pulled since it was routed is
//! being, or has been, attempted. An id forgotten (more than `RECENT` pulled since) costs the
//! pull it always did.

use std::collections::{HashSet, VecDeque};

/// How many pulled ids an actor remembers.
const RECENT: usize = 512;

#[derive(Debug, Default)]
pub(super) struct Recent {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl Recent {
    pub(super) fn note(&mut self, id: &str) {
        if self.ids.insert(id.to_string()) {
            self.order.push_back(id.to_string());
            if self.order.len() > RECENT {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
    }

    /// Were all of these pulled lately? (None: no.)
    pub(super) fn pulled_all(&self, ids: &[String]) -> bool {
        !ids.is_empty() && ids.iter().all(|id| self.ids.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_pulled_ids_and_only_those() {
        let mut recent = Recent::default();
        assert!(!recent.pulled_all(&[]), "a wake naming nothing is a plain wake");
        for n in 0..RECENT + 10 {
            recent.note(&format!("evt_{n}"));
        }
        recent.note("evt_600");
        // 523 noted: the first 11 are forgotten.
        assert!(recent.pulled_all(&["evt_11".into(), "evt_521".into(), "evt_600".into()]));
        assert!(!recent.pulled_all(&["evt_10".into()]), "forgotten: pull");
        assert!(
            !recent.pulled_all(&["evt_11".into(), "evt_x".into()]),
            "one not pulled: pull"
        );
        assert_eq!(recent.order.len(), RECENT);
        assert_eq!(recent.ids.len(), RECENT);
    }
}
