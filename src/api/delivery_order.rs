//! The order of a tenant's delivery log (`GET …/deliveries`): positions (the event's ingest
//! order, then the delivery id, both descending), their cursors, and the merge of many
//! endpoints' logs into one newest-first page.

/// Where a page ends: ingest order of the event, then delivery id (both descending).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Position {
    pub(super) order: f64,
    pub(super) delivery_id: String,
}

impl Position {
    /// Just after every delivery of events ingested at `ms` or later (a page that starts there
    /// holds only older ones).
    pub(super) fn before(ms: u64) -> Position {
        let first = |len: usize| "0".repeat(len);
        Position {
            order: ms as f64,
            delivery_id: crate::ids::delivery_id(
                &format!("ep_{}", first(crate::ids::ENDPOINT_CORE)),
                &format!("evt_{}", first(crate::ids::EVENT_CORE)),
            ),
        }
    }

    pub(super) fn encode(&self) -> String {
        format!("{}~{}", self.order, self.delivery_id)
    }
    pub(super) fn decode(s: &str) -> Option<Self> {
        let (order, delivery_id) = s.split_once('~')?;
        let order: f64 = order.parse().ok().filter(|o: &f64| o.is_finite())?;
        crate::ids::parse_delivery_id(delivery_id)?;
        Some(Self {
            order,
            delivery_id: delivery_id.to_string(),
        })
    }
    /// Is `self` after `other` in newest-first order?
    pub(super) fn is_after(&self, other: &Position) -> bool {
        self.order < other.order || (self.order == other.order && self.delivery_id < other.delivery_id)
    }
}

/// A delivery found in an endpoint's log.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    pub(super) endpoint_id: String,
    pub(super) event_id: String,
    pub(super) at: Position,
}

/// Merge endpoints' logs (each newest first, `fetched_per_log` entries asked of each) into the
/// `take` newest deliveries strictly after `after`. A log that returned all it was asked may
/// hold older entries not read yet, so only candidates at or above the newest of such logs'
/// last entries are certain to be in order; the rest wait for the next round. Returns them and
/// whether every log was read to its end.
pub(super) fn merge_newest(
    logs: Vec<(String, Vec<(String, f64)>)>,
    after: Option<&Position>,
    fetched_per_log: usize,
    take: usize,
) -> (Vec<Candidate>, bool) {
    let frontier: Option<Position> = logs
        .iter()
        .filter(|(_, entries)| entries.len() >= fetched_per_log)
        .filter_map(|(endpoint_id, entries)| {
            let (event_id, order) = entries.last()?;
            Some(Position {
                order: *order,
                delivery_id: crate::ids::delivery_id(endpoint_id, event_id),
            })
        })
        .reduce(|a, b| if a.is_after(&b) { b } else { a });
    let exhausted = frontier.is_none();
    let mut all: Vec<Candidate> = logs
        .into_iter()
        .flat_map(|(endpoint_id, entries)| {
            entries.into_iter().map(move |(event_id, order)| Candidate {
                at: Position {
                    order,
                    delivery_id: crate::ids::delivery_id(&endpoint_id, &event_id),
                },
                endpoint_id: endpoint_id.clone(),
                event_id,
            })
        })
        .filter(|c| after.is_none_or(|a| c.at.is_after(a)))
        .filter(|c| frontier.as_ref().is_none_or(|f| !c.at.is_after(f)))
        .collect();
    all.sort_by(|a, b| {
        b.at.order
            .total_cmp(&a.at.order)
            .then_with(|| b.at.delivery_id.cmp(&a.at.delivery_id))
    });
    let exhausted = exhausted && all.len() <= take;
    all.truncate(take);
    (all, exhausted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(endpoint: &str, entries: &[(&str, f64)]) -> (String, Vec<(String, f64)>) {
        (
            endpoint.to_string(),
            entries.iter().map(|(e, s)| (e.to_string(), *s)).collect(),
        )
    }

    #[test]
    fn merges_logs_newest_first_and_pages_by_position() {
        let logs = || {
            vec![
                log("ep_aaaa", &[("evt_0005", 5.0), ("evt_0003", 3.0), ("evt_0001", 1.0)]),
                log("ep_bbbb", &[("evt_0005", 5.0), ("evt_0004", 4.0), ("evt_0002", 2.0)]),
            ]
        };
        let (first, exhausted) = merge_newest(logs(), None, 10, 3);
        let seen: Vec<(&str, f64)> = first.iter().map(|c| (c.endpoint_id.as_str(), c.at.order)).collect();
        // Ties in ingest order (one event to two endpoints) go by delivery id, descending.
        assert_eq!(seen, vec![("ep_bbbb", 5.0), ("ep_aaaa", 5.0), ("ep_bbbb", 4.0)]);
        assert!(!exhausted);
        let (rest, exhausted) = merge_newest(logs(), Some(&first[2].at), 10, 10);
        let orders: Vec<f64> = rest.iter().map(|c| c.at.order).collect();
        assert_eq!(orders, vec![3.0, 2.0, 1.0]);
        assert!(exhausted);
        // Paging from between the two tied deliveries of one event finds the second one.
        let (after_tie, _) = merge_newest(logs(), Some(&first[0].at), 10, 1);
        assert_eq!(after_tie[0], first[1]);
    }

    #[test]
    fn only_candidates_above_a_full_logs_last_entry_are_certain() {
        // Log a returned all 2 it was asked: it may hold an entry at 8.5, newer than b's 8.
        let logs = vec![
            log("ep_aaaa", &[("evt_a10", 10.0), ("evt_a9", 9.0)]),
            log("ep_bbbb", &[("evt_b8", 8.0)]),
        ];
        let (got, exhausted) = merge_newest(logs, None, 2, 10);
        let orders: Vec<f64> = got.iter().map(|c| c.at.order).collect();
        assert_eq!(orders, vec![10.0, 9.0]);
        assert!(!exhausted);
        // The next round, from 9, finds the 8.5 before b's 8.
        let logs = vec![
            log("ep_aaaa", &[("evt_a9", 9.0), ("evt_a85", 8.5)]),
            log("ep_bbbb", &[("evt_b8", 8.0)]),
        ];
        let (got, _) = merge_newest(logs, Some(&got[1].at), 2, 10);
        assert_eq!(got.iter().map(|c| c.at.order).collect::<Vec<_>>(), vec![8.5]);
    }

    #[test]
    fn a_full_log_page_means_there_may_be_more() {
        let (got, exhausted) = merge_newest(vec![log("ep_aaaa", &[("evt_2", 2.0), ("evt_1", 1.0)])], None, 2, 5);
        assert_eq!(got.len(), 2);
        assert!(!exhausted, "the log returned as many as asked: it may hold more");
    }

    #[test]
    fn cursors_of_the_documented_form_are_read() {
        use proptest::strategy::{Strategy, ValueTree};
        let pattern = super::super::schema::DELIVERY_CURSOR;
        let inner = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$')).unwrap();
        let strategy = proptest::string::string_regex(inner).unwrap();
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        for _ in 0..500 {
            let cursor = strategy.new_tree(&mut runner).unwrap().current();
            assert!(Position::decode(&cursor).is_some(), "{cursor} matches {pattern}");
        }
        let written = Position {
            order: 1763870000000.0 + 7.0 / 4096.0,
            delivery_id: crate::ids::delivery_id(&crate::ids::new_endpoint_id(), &crate::ids::new_event_id(1)),
        };
        assert!(regex::Regex::new(pattern).unwrap().is_match(&written.encode()));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let p = Position {
            order: 1763870000000.0 + 7.0 / 4096.0,
            delivery_id: crate::ids::delivery_id(&crate::ids::new_endpoint_id(), &crate::ids::new_event_id(1)),
        };
        assert_eq!(Position::decode(&p.encode()), Some(p));
        for bad in ["", "12", "x~dlv_1", "NaN~dlv_a", "1~evt_1", "inf~dlv_"] {
            assert_eq!(Position::decode(bad), None, "{bad}");
        }
    }
}
