use super::*;
use serde_json::json;

fn event() -> Value {
    json!({
        "type": "order.created",
        "payload": {
            "total": 120,
            "currency": "EUR",
            "placed_at": "2026-12-03T10:00:00Z",
            "customer": {"tier": "gold", "email": "ann@example.com"},
            "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-7", "qty": 1}],
            "tags": ["rush", "gift"],
            "coupon": null
        },
        "metadata": {"region": "eu"}
    })
}

fn matches(filter: Value) -> bool {
    Filter::compile(&filter)
        .unwrap_or_else(|e| panic!("{filter} did not compile: {e}"))
        .matches(&event())
}

#[test]
fn each_operator_matches_and_misses_as_documented() {
    let cases = [
        // Plain values mean $eq; numbers are equal by value.
        (json!({"type": "order.created"}), true),
        (json!({"type": "order.paid"}), false),
        (json!({"payload.total": 120.0}), true),
        (
            json!({"payload.customer": {"email": "ann@example.com", "tier": "gold"}}),
            true,
        ),
        (json!({"payload.total": {"$eq": 121}}), false),
        (json!({"payload.total": {"$ne": 121}}), true),
        (json!({"payload.total": {"$ne": 120}}), false),
        // Order: numbers with numbers, strings with strings, never across.
        (json!({"payload.total": {"$gt": 100}}), true),
        (json!({"payload.total": {"$gt": 120}}), false),
        (json!({"payload.total": {"$gte": 120}}), true),
        (json!({"payload.total": {"$lt": 120}}), false),
        (json!({"payload.total": {"$lte": 120}}), true),
        (json!({"payload.total": {"$gt": "100"}}), false),
        (json!({"payload.placed_at": {"$gte": "2026-12-01T00:00:00Z"}}), true),
        (json!({"payload.placed_at": {"$lt": "2026-12-01T00:00:00Z"}}), false),
        // Two operators on one path: both must hold.
        (json!({"payload.total": {"$gt": 100, "$lt": 200}}), true),
        (json!({"payload.total": {"$gt": 100, "$lt": 110}}), false),
        (json!({"payload.currency": {"$in": ["USD", "EUR"]}}), true),
        (json!({"payload.currency": {"$in": ["USD"]}}), false),
        (json!({"payload.currency": {"$nin": ["USD"]}}), true),
        (json!({"payload.currency": {"$nin": ["EUR"]}}), false),
        // $exists: null is there; missing is not; $ne holds for what is missing.
        (json!({"payload.coupon": {"$exists": true}}), true),
        (json!({"payload.refund": {"$exists": true}}), false),
        (json!({"payload.refund": {"$exists": false}}), true),
        (json!({"payload.refund": {"$ne": 1}}), true),
        (json!({"payload.coupon": null}), true),
        (json!({"payload.customer.email": {"$regex": "@example\\.com$"}}), true),
        (json!({"payload.customer.email": {"$regex": "^bob"}}), false),
        (json!({"payload.total": {"$regex": "1"}}), false),
        (json!({"type": {"$startsWith": "order."}}), true),
        (json!({"type": {"$startsWith": "invoice."}}), false),
        // Arrays: any item; an index picks one.
        (json!({"payload.tags": "gift"}), true),
        (json!({"payload.tags": ["rush", "gift"]}), true),
        (json!({"payload.tags": {"$nin": ["spam"]}}), true),
        (json!({"payload.tags": {"$ne": "rush"}}), false),
        (json!({"payload.items.sku": "b-7"}), true),
        (json!({"payload.items.qty": {"$gt": 1}}), true),
        (json!({"payload.items.qty": {"$gt": 2}}), false),
        (json!({"payload.items.0.sku": "a-1"}), true),
        (json!({"payload.items.1.sku": "a-1"}), false),
        (json!({"payload.tags.1": "gift"}), true),
        // Logic, and several keys meaning all of them.
        (json!({"metadata.region": "eu", "payload.total": {"$gt": 100}}), true),
        (json!({"metadata.region": "us", "payload.total": {"$gt": 100}}), false),
        (
            json!({"$or": [{"metadata.region": "us"}, {"payload.customer.tier": "gold"}]}),
            true,
        ),
        (
            json!({"$or": [{"metadata.region": "us"}, {"payload.customer.tier": "silver"}]}),
            false,
        ),
        (
            json!({"$and": [{"type": "order.created"}, {"payload.tags": "rush"}]}),
            true,
        ),
        (
            json!({"$and": [{"type": "order.created"}, {"payload.tags": "slow"}]}),
            false,
        ),
        (json!({"$not": {"metadata.region": "us"}}), true),
        (json!({"$not": {"metadata.region": "eu"}}), false),
        (json!({}), true),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter(|(filter, expected)| matches(filter.clone()) != *expected)
        .map(|(filter, expected)| format!("{filter} should be {expected}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_bad_filter_is_refused_naming_its_place() {
    let refused = |filter: Value| Filter::compile(&filter).expect_err(&filter.to_string());
    let cases = [
        (json!([1]), "filter", "must be an object"),
        (
            json!({"order.total": 1}),
            "filter.order.total",
            "starts at type, payload or metadata",
        ),
        (json!({"payload..total": 1}), "filter.payload..total", "no empty parts"),
        (json!({"$nor": []}), "filter.$nor", "unknown operator"),
        (json!({"$or": []}), "filter.$or", "at least one"),
        (json!({"$or": {"type": "a"}}), "filter.$or", "array of filters"),
        (
            json!({"$or": [{"type": "a"}, {"payload.x": {"$gt": true}}]}),
            "filter.$or[1].payload.x.$gt",
            "number or a string",
        ),
        (json!({"payload.x": {"$in": "a"}}), "filter.payload.x.$in", "array"),
        (
            json!({"payload.x": {"$exists": 1}}),
            "filter.payload.x.$exists",
            "true or false",
        ),
        (
            json!({"payload.x": {"$regex": "(unclosed"}}),
            "filter.payload.x.$regex",
            "regular expression",
        ),
        (
            json!({"payload.x": {"$like": "a"}}),
            "filter.payload.x.$like",
            "unknown operator",
        ),
        (json!({"$not": {"$not": "x"}}), "filter.$not.$not", "must be an object"),
    ];
    for (filter, path, problem) in cases {
        let e = refused(filter.clone());
        assert_eq!(e.path, path, "{filter}: {e}");
        assert!(e.problem.contains(problem), "{filter}: {e}");
    }
}

#[test]
fn hostile_filters_are_bounded_at_compile_time() {
    // Nesting.
    let mut deep = json!({"type": "a"});
    for _ in 0..=MAX_DEPTH {
        deep = json!({"$not": deep});
    }
    assert!(Filter::compile(&deep).unwrap_err().problem.contains("nested deeper"));
    // Width.
    let wide: Map<String, Value> = (0..=MAX_TESTS).map(|i| (format!("payload.f{i}"), json!(i))).collect();
    assert!(Filter::compile(&Value::Object(wide))
        .unwrap_err()
        .problem
        .contains("at most"));
    // A regex that would blow up a backtracking engine is linear here; a huge one is refused.
    let evil = Filter::compile(&json!({"payload.s": {"$regex": "^(a+)+$"}})).unwrap();
    let event = json!({"payload": {"s": format!("{}b", "a".repeat(50_000))}});
    let started = std::time::Instant::now();
    assert!(!evil.matches(&event));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "catastrophic backtracking"
    );
    let huge = Filter::compile(&json!({"payload.s": {"$regex": "\\w{1000}\\w{1000}"}}));
    assert!(huge.is_err(), "a regex past the size limit compiled");
    let list = json!({"payload.s": {"$in": vec![0; MAX_IN_ITEMS + 1]}});
    assert!(Filter::compile(&list).unwrap_err().problem.contains("at most"));
}

#[test]
fn the_content_of_a_body_is_its_type_its_data_and_its_metadata() {
    let body = r#"{"id":"evt_1","type":"order.created","timestamp":"t","tenant":"x","data":{"total":5}}"#;
    assert_eq!(
        content(body),
        Some(json!({"type": "order.created", "payload": {"total": 5}, "metadata": {}}))
    );
    assert_eq!(content("[1]"), None);
    assert_eq!(content("not json"), None);
}
