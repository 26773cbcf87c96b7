use super::*;
use serde_json::json;

fn order_type(schemas: Value) -> EventType {
    EventType {
        tenant: "t".into(),
        name: "order.created".into(),
        description: String::new(),
        schemas: serde_json::from_value(schemas).unwrap(),
        deprecated: false,
        example: None,
        archived: false,
        created_at_ms: 1,
        updated_at_ms: 1,
    }
}

fn two_versions() -> EventType {
    order_type(json!({
        "1": {"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}},
        "2": {
            "type": "object",
            "required": ["order"],
            "properties": {"order": {
                "type": "object",
                "required": ["total", "currency"],
                "properties": {"total": {"type": "integer", "minimum": 0}, "currency": {"pattern": "^[A-Z]{3}$"}}
            }}
        }
    }))
}

fn catalogue(validation: Validation, types: Vec<EventType>) -> TenantCatalogue {
    let settings = TenantSettings {
        validation,
        updated_at_ms: 0,
    };
    TenantCatalogue::new(settings, types, 0)
}

#[test]
fn versions_are_numbers_without_leading_zeros() {
    for ok in ["1", "2", "10", "9999"] {
        assert!(parse_version(ok).is_some(), "{ok}");
    }
    for bad in ["", "0", "01", "10000", "v1", "1.0", "-1", " 1"] {
        assert_eq!(parse_version(bad), None, "{bad}");
    }
}

#[test]
fn the_highest_version_is_used_unless_the_event_names_one() {
    let c = catalogue(Validation::Enforce, vec![two_versions()]);
    let v2 = r#"{"order": {"total": 12, "currency": "EUR"}}"#;
    let v1 = r#"{"total": 12.5}"#;
    assert_eq!(c.check("order.created", None, v2), Ok(()));
    assert_eq!(c.check("order.created", Some("2"), v2), Ok(()));
    assert_eq!(c.check("order.created", Some("1"), v1), Ok(()));
    let wrong = c.check("order.created", None, v1).unwrap_err();
    assert_eq!(wrong.code, "schema_violation");
    assert!(wrong.message.contains("schema version 2"), "{}", wrong.message);
    assert_eq!(
        c.check("order.created", Some("1"), v2).unwrap_err().code,
        "schema_violation"
    );
}

#[test]
fn each_problem_names_its_path_in_the_payload() {
    let c = catalogue(Validation::Warn, vec![two_versions()]);
    let bad = r#"{"order": {"total": -3, "currency": "euro"}}"#;
    let v = c.check("order.created", None, bad).unwrap_err();
    let mut paths: Vec<&str> = v.details.iter().map(|p| p.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/order/currency", "/order/total"]);
    // The payload's values are not repeated back.
    assert!(v.details.iter().all(|p| !p.problem.contains("euro")), "{:?}", v.details);
}

#[test]
fn at_most_twenty_problems_are_listed() {
    let c = catalogue(
        Validation::Enforce,
        vec![order_type(json!({"1": {"type": "array", "items": {"type": "string"}}}))],
    );
    let payload = serde_json::to_string(&(0..50).collect::<Vec<u32>>()).unwrap();
    let v = c.check("order.created", None, &payload).unwrap_err();
    assert_eq!(v.details.len(), MAX_DETAILS);
    assert_eq!(v.details[0].path, "/0");
}

#[test]
fn off_unknown_types_and_types_without_schemas_pass() {
    let bad = r#"{"total": "no"}"#;
    let off = catalogue(Validation::Off, vec![two_versions()]);
    assert_eq!(off.check("order.created", None, bad), Ok(()));
    let on = catalogue(Validation::Enforce, vec![two_versions(), order_type(json!({}))]);
    assert_eq!(on.check("other.type", None, bad), Ok(()));
    let mut bare = order_type(json!({}));
    bare.name = "bare".into();
    let on = catalogue(Validation::Enforce, vec![bare]);
    assert_eq!(on.check("bare", None, bad), Ok(()));
}

#[test]
fn an_archived_type_and_an_unknown_version_are_named() {
    let mut archived = two_versions();
    archived.archived = true;
    let c = catalogue(Validation::Enforce, vec![archived]);
    assert_eq!(
        c.check("order.created", None, "{}").unwrap_err().code,
        "event_type_archived"
    );
    let c = catalogue(Validation::Enforce, vec![two_versions()]);
    let v = c.check("order.created", Some("7"), "{}").unwrap_err();
    assert_eq!(v.code, "unknown_schema_version");
    assert!(v.message.contains("it has 1, 2"), "{}", v.message);
}

#[test]
fn a_saved_type_is_checked_field_by_field() {
    assert_eq!(check(&two_versions()), Ok(()));
    let refused = |t: EventType, field: &str| {
        let e = check(&t).unwrap_err();
        assert!(e.starts_with(field), "{field}: {e}");
    };
    refused(order_type(json!({"01": {}})), "schemas.01:");
    refused(order_type(json!({"1": 5})), "schemas.1:");
    refused(
        order_type(json!({"1": {"type": "nonsense"}})),
        "schemas.1: not a valid JSON Schema",
    );
    // No network, no files: a remote reference is refused.
    refused(
        order_type(json!({"1": {"$ref": "https://example.com/schema.json"}})),
        "schemas.1: $ref",
    );
    let many: serde_json::Map<String, Value> = (1..=21).map(|v| (v.to_string(), json!({}))).collect();
    refused(order_type(Value::Object(many)), "schemas:");
    let mut described = two_versions();
    described.description = "x".repeat(MAX_DESCRIPTION + 1);
    refused(described, "description:");
    let mut example = two_versions();
    example.example = Some(json!({"total": 3}));
    refused(example, "example: does not match schema version 2");
}

#[test]
fn a_hostile_schema_is_refused_or_bounded() {
    // Deep nesting: refused by depth.
    let mut deep = json!({"type": "object"});
    for _ in 0..40 {
        deep = json!({"type": "object", "properties": {"a": deep}});
    }
    let e = check(&order_type(json!({ "1": deep }))).unwrap_err();
    assert!(e.contains("nested deeper"), "{e}");
    // Too large.
    let wide: serde_json::Map<String, Value> = (0..5_000)
        .map(|i| (format!("field_{i}"), json!({"type": "string"})))
        .collect();
    let e = check(&order_type(json!({"1": {"properties": wide}}))).unwrap_err();
    assert!(e.contains("larger than"), "{e}");
    // Look-around needs a backtracking engine: refused.
    let e = check(&order_type(json!({"1": {"pattern": "^(?=a)a$"}}))).unwrap_err();
    assert!(e.starts_with("schemas.1: not a valid JSON Schema"), "{e}");
    // A catastrophic pattern for a backtracking engine runs in linear time here.
    let catastrophic = order_type(json!({"1": {"type": "string", "pattern": "^(a+)+$"}}));
    assert_eq!(check(&catastrophic), Ok(()));
    let c = catalogue(Validation::Enforce, vec![catastrophic]);
    let input = format!("\"{}!\"", "a".repeat(50_000));
    let started = std::time::Instant::now();
    assert_eq!(
        c.check("order.created", None, &input).unwrap_err().code,
        "schema_violation"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // References that fan out: 40 definitions, each naming the next twice (2^40 nodes to
    // visit per value checked), small and shallow: refused by what they expand to.
    let mut defs = serde_json::Map::new();
    for n in 0..40 {
        let next = format!("#/$defs/d{}", n + 1);
        defs.insert(format!("d{n}"), json!({"allOf": [{"$ref": next}, {"$ref": next}]}));
    }
    defs.insert("d40".into(), json!({"type": "object"}));
    let fan = json!({"1": {"$defs": defs, "$ref": "#/$defs/d0"}});
    let e = check(&order_type(fan)).unwrap_err();
    assert!(e.contains("expand to more than"), "{e}");
    // References are local JSON pointers that name something.
    for (schema, says) in [
        (json!({"$ref": "#/$defs/missing"}), "names nothing"),
        (json!({"$ref": "#anchor"}), "names nothing"),
        (json!({"$ref": "other.json#/x"}), "only references inside the schema"),
        (json!({"$dynamicRef": "#meta"}), "not supported"),
    ] {
        let e = check(&order_type(json!({ "1": schema }))).unwrap_err();
        assert!(e.starts_with("schemas.1: ") && e.contains(says), "{schema}: {e}");
    }
    // A property named "$ref" is a schema like any other.
    assert_eq!(
        check(&order_type(json!({"1": {"properties": {"$ref": {"type": "string"}}}}))),
        Ok(())
    );
    // A reference cycle compiles and checks nothing forever.
    let cycle = order_type(json!({"1": {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}}));
    assert_eq!(check(&cycle), Ok(()));
    let c = catalogue(Validation::Enforce, vec![cycle]);
    assert_eq!(c.check("order.created", None, "{}"), Ok(()));
    let self_ref = order_type(json!({"1": {"properties": {"next": {"$ref": "#"}}, "type": "object"}}));
    let c = catalogue(Validation::Enforce, vec![self_ref]);
    assert_eq!(c.check("order.created", None, r#"{"next": {"next": {}}}"#), Ok(()));
    assert!(c.check("order.created", None, r#"{"next": {"next": 3}}"#).is_err());
}

#[test]
fn a_change_drops_the_tenant_and_a_read_from_before_it_is_not_kept() {
    let cache = Catalogue::default();
    let before = cache.generation();
    cache.keep("t", before, catalogue(Validation::Warn, vec![]));
    assert_eq!(cache.cached("t").map(|c| c.validation), Some(Validation::Warn));
    let read_started = cache.generation();
    cache.forget("t");
    assert!(cache.cached("t").is_none());
    // A read that began before the change may hold the old catalogue: not kept.
    cache.keep("t", read_started, catalogue(Validation::Warn, vec![]));
    assert!(cache.cached("t").is_none());
    let now = cache.generation();
    cache.keep("t", now, catalogue(Validation::Enforce, vec![]));
    assert_eq!(cache.cached("t").map(|c| c.validation), Some(Validation::Enforce));
    // The global version: the first look and every move say so; then the tenants whose own
    // version changed are dropped, the others kept.
    assert!(cache.moved(3));
    assert!(!cache.moved(3));
    assert!(cache.moved(4));
    cache.look_again();
    assert!(cache.moved(4), "after a failed read the next look compares again");
    let now = cache.generation();
    cache.keep("u", now, TenantCatalogue::new(TenantSettings::default(), vec![], 7));
    let held = cache.held_versions();
    let current: Vec<u64> = held.iter().map(|(t, v)| if t == "t" { v + 1 } else { *v }).collect();
    cache.forget_changed(&held, &current);
    assert!(cache.cached("t").is_none(), "t changed");
    assert_eq!(cache.cached("u").map(|c| c.version), Some(7), "u did not");
}
