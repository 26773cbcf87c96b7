//! What the OpenAPI document says about names, ids and values, beside the checks that enforce
//! them (`crate::ids`, `sign::decode_secret`, the handlers' own checks). A client or fuzzer that
//! trusts the document must get no 400 for a value it calls valid; each pattern here is tested
//! against the function that decides, so the two cannot drift apart.
//!
//! Patterns are written to mean the same in ECMA-262 (what OpenAPI specifies), Python's `re`
//! (what validators and fuzzers use) and Rust's `regex` (the tests below): no look-around, no
//! flags, `^…$` anchored.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{AdditionalProperties, Array, ArrayBuilder, Object, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{RefOr, Required};

/// One character of a minted id (`hookline_actors::model::ID_ALPHABET`).
macro_rules! id_char {
    () => {
        "[0-9a-hjkmnp-tv-z]"
    };
}

/// `crate::ids::is_tenant`.
pub const TENANT: &str = "^[a-zA-Z0-9_-]{1,64}$";
/// `crate::ids::is_event_type`.
pub const EVENT_TYPE: &str = "^[a-zA-Z0-9_.:-]{1,128}$";
/// `crate::ids::is_event_type_pattern`: `*`, an event type, or `prefix.*`.
pub const EVENT_TYPE_PATTERN: &str = r"^(?:\*|[a-zA-Z0-9_.:-]{1,128}(?:\.\*)?)$";
/// `crate::ids::is_endpoint_id` (`ENDPOINT_CORE` characters after the prefix).
pub const ENDPOINT_ID: &str = concat!("^ep_", id_char!(), "{20}$");
/// `crate::ids::is_event_id` (`EVENT_CORE` characters after the prefix).
pub const EVENT_ID: &str = concat!("^evt_", id_char!(), "{26}$");
/// `crate::ids::is_key_id` (`KEY_CORE` characters after the prefix).
pub const KEY_ID: &str = concat!("^key_", id_char!(), "{16}$");
/// `crate::ids::is_source_id` (`ENDPOINT_CORE` characters after the prefix).
pub const SOURCE_ID: &str = concat!("^src_", id_char!(), "{20}$");
/// `crate::ids::parse_delivery_id`: the endpoint's core, then the event's.
pub const DELIVERY_ID: &str = concat!("^dlv_", id_char!(), "{46}$");
/// `sign::decode_secret`: `whsec_` and canonical, padded base64 of 24 to 64 bytes (8 to 21
/// whole groups of 3 bytes, then none, 1 or 2 more, whose unused bits must be zero).
pub const SECRET: &str = concat!(
    "^whsec_(?:",
    "(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/][AQgw]==)?",
    "|(?:[A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=",
    ")$"
);
/// A host label of `[a-zA-Z0-9_-]` that does not start with `xn--` (in any case), whose first
/// character is `$first` or `x` (regex crates without look-ahead, such as the tests', can read it).
macro_rules! label_after_first {
    ($first:literal) => {
        concat!(
            "(?:",
            $first,
            "[a-zA-Z0-9_-]*",
            "|[xX](?:[a-mo-zA-MO-Z0-9_-][a-zA-Z0-9_-]*)?",
            "|[xX][nN](?:[a-zA-Z0-9_][a-zA-Z0-9_-]*)?",
            "|[xX][nN]-(?:[a-zA-Z0-9_][a-zA-Z0-9_-]*)?)"
        )
    };
}

/// What `endpoint_rules::validate` accepts as `url`, less IPv6 literals: http or https, a host name
/// whose last label is not a number (else it is read as an IPv4 address) or a dotted IPv4
/// address, an optional port, no credentials, then any visible ASCII. Labels starting `xn--`
/// are left out: they are punycode, which the URL parser refuses unless it decodes, and a
/// pattern cannot tell which do.
pub const URL: &str = concat!(
    "^[hH][tT][tT][pP][sS]?://",
    "(?:(?:",
    label_after_first!("[a-wyzA-WYZ0-9_-]"),
    "[.])*",
    label_after_first!("[a-wyzA-WYZ]"),
    "|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    "(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    "(?:[/?#][\\x21-\\x7e]*)?$"
);
/// A header name `http::HeaderName` takes (an RFC 9110 token).
pub const HEADER_NAME: &str = "^[0-9A-Za-z!#$%&'*+.^_`|~-]+$";
/// The names of headers the node sets itself (`hookline_actors::transport::RESERVED_HEADERS`), in any case.
pub const RESERVED_HEADER_NAME: &str = concat!(
    "^(?:[cC][oO][nN][tT][eE][nN][tT]-(?:[tT][yY][pP][eE]|[lL][eE][nN][gG][tT][hH])",
    "|[hH][oO][sS][tT]|[uU][sS][eE][rR]-[aA][gG][eE][nN][tT]",
    "|[wW][eE][bB][hH][oO][oO][kK]-(?:[iI][dD]|[tT][iI][mM][eE][sS][tT][aA][mM][pP]|[sS][iI][gG][nN][aA][tT][uU][rR][eE])",
    "|[tT][rR][aA][nN][sS][fF][eE][rR]-[eE][nN][cC][oO][dD][iI][nN][gG]|[cC][oO][nN][nN][eE][cC][tT][iI][oO][nN])$"
);
/// A header value `http::HeaderValue::from_str` takes: no control character but tab.
pub const HEADER_VALUE: &str = "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$";
/// The `Idempotency-Key` header: visible ASCII (`HeaderValue::to_str`), 1 to 256 characters,
/// no space at either end (HTTP drops it, which would change the key).
pub const IDEMPOTENCY_HEADER: &str = "^[\\x21-\\x7e](?:[\\x20-\\x7e]{0,254}[\\x21-\\x7e])?$";
/// `api::offset_cursor`: empty, or a whole number up to 100,000,000.
pub const OFFSET_CURSOR: &str = r"^(?:\+?0*(?:[0-9]{1,8}|100000000))?$";
/// The cursor of the delivery list, as the list writes it: `<ingest order>~<delivery id>`.
/// An audit entry id (`store::audit::parse_id`), or empty (the first page).
pub const AUDIT_CURSOR: &str = "^(?:aud_[0-9]{1,19}-[0-9]{1,19}-[esk])?$";
pub const DELIVERY_CURSOR: &str = concat!("^[0-9]{1,20}(?:[.][0-9]{1,20})?~dlv_", id_char!(), "{46}$");

/// What `inbound::net::Cidr` parses: an IPv4 address (no leading zeros, as `Ipv4Addr` reads
/// it) or an IPv6 address (RFC 4291's forms, as `Ipv6Addr` reads them), each with an optional
/// `/bits` of 1 to 3 digits up to 32 or 128.
pub static CIDR: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let v4 = format!("(?:{octet}[.]){{3}}{octet}");
    let h = "[0-9a-fA-F]{1,4}";
    let ls32 = format!("(?:{h}:{h}|{v4})");
    let v6 = [
        format!("(?:{h}:){{6}}{ls32}"),
        format!("::(?:{h}:){{5}}{ls32}"),
        format!("(?:{h})?::(?:{h}:){{4}}{ls32}"),
        format!("(?:(?:{h}:){{0,1}}{h})?::(?:{h}:){{3}}{ls32}"),
        format!("(?:(?:{h}:){{0,2}}{h})?::(?:{h}:){{2}}{ls32}"),
        format!("(?:(?:{h}:){{0,3}}{h})?::{h}:{ls32}"),
        format!("(?:(?:{h}:){{0,4}}{h})?::{ls32}"),
        format!("(?:(?:{h}:){{0,5}}{h})?::{h}"),
        format!("(?:(?:{h}:){{0,6}}{h})?::"),
    ]
    .join("|");
    let v4_bits = "(?:[0-9]|[0-2][0-9]|3[0-2]|0[0-2][0-9]|03[0-2])";
    let v6_bits = "(?:[0-9]{1,2}|0[0-9]{2}|1[01][0-9]|12[0-8])";
    format!("^(?:{v4}(?:/{v4_bits})?|(?:{v6})(?:/{v6_bits})?)$")
});

/// An RFC 3339 time `humantime::parse_rfc3339_weak` reads, from 1970 on: a real calendar day,
/// `T` or a space, seconds up to 60, any fraction, and `Z`, `+00:00` or nothing (UTC).
pub const SINCE: &str = concat!(
    "^(?:",
    "(?:19[7-9][0-9]|[2-9][0-9]{3})-",
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))",
    "|(?:19(?:7[26]|8[048]|9[26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)-02-29",
    ")[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:[.][0-9]*)?(?:Z|[+]00:00)?$"
);

/// A path parameter (always required).
pub fn path_param(name: &str, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// An optional query parameter.
pub fn query_param(name: &str, description: &str, schema: Object) -> Parameter {
    optional_param(ParameterIn::Query, name, description, schema)
}

/// An optional request header.
pub fn header_param(name: &str, description: &str, schema: Object) -> Parameter {
    optional_param(ParameterIn::Header, name, description, schema)
}

fn optional_param(place: ParameterIn, name: &str, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn string(pattern: &str, nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(kind).pattern(Some(pattern))
}

// Schemas for `schema_with` (the derive macros take only literal patterns; these take the
// constants above). A field given its schema this way loses its doc comment, so a field's
// description is here too.

pub fn tenant() -> Object {
    string(TENANT, false).min_length(Some(1)).max_length(Some(64)).build()
}

pub fn endpoint_id() -> Object {
    string(ENDPOINT_ID, false).build()
}

pub fn event_id() -> Object {
    string(EVENT_ID, false).build()
}

pub fn key_id() -> Object {
    string(KEY_ID, false).build()
}

pub fn source_id() -> Object {
    string(SOURCE_ID, false).build()
}

/// A header name as a source's fields take it (`inbound::source::check_header_name`).
pub fn source_header_name() -> Object {
    string(HEADER_NAME, false)
        .min_length(Some(1))
        .max_length(Some(128))
        .build()
}

pub fn cidr() -> Object {
    string(&CIDR, false).build()
}

pub fn delivery_id() -> Object {
    string(DELIVERY_ID, false).build()
}

pub fn limit() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(500))
        .default(Some(50.into()))
        .build()
}

pub fn offset_cursor() -> Object {
    string(OFFSET_CURSOR, false).build()
}

pub fn audit_cursor() -> Object {
    string(AUDIT_CURSOR, false).build()
}

/// A time bound of a listing (`?from=`, `?to=`).
pub fn time_bound() -> Object {
    string(SINCE, false)
        .description(Some(
            "RFC 3339 in UTC (`Z`, `+00:00` or no offset), from 1970 on, e.g. `2026-01-31T12:00:00Z`.",
        ))
        .build()
}

/// `?step=` of the stats: 60 or 3600.
pub fn stats_step() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .enum_values(Some([60, 3600]))
        .default(Some(60.into()))
        .build()
}

/// An exact-match filter of the audit log (`?action=`, `?target_id=`).
pub fn audit_filter() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(super::audit::MAX_FILTER))
        .build()
}

/// `crate::store::search::is_cursor`, or empty (the first page).
pub const STREAM_CURSOR: &str = "^(?:[0-9]{1,19}-[0-9]{1,19})?$";

/// `?cursor=` of the events list: a stream id it returned.
pub fn stream_cursor() -> Object {
    string(STREAM_CURSOR, false).build()
}

/// `?type=` of the events list.
pub fn event_type_pattern() -> Object {
    string(EVENT_TYPE_PATTERN, false).max_length(Some(130)).build()
}

pub fn delivery_cursor() -> Object {
    string(DELIVERY_CURSOR, false).build()
}

pub fn overlap_s() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(super::endpoint_actions::MAX_OVERLAP_S))
        .default(Some(86_400.into()))
        .build()
}

pub fn idempotency_header() -> Object {
    string(IDEMPOTENCY_HEADER, false)
        .min_length(Some(1))
        .max_length(Some(256))
        .build()
}

pub fn event_type() -> Object {
    string(EVENT_TYPE, false)
        .min_length(Some(1))
        .max_length(Some(128))
        .description(Some("The event's type, e.g. `order.created`."))
        .build()
}

pub fn idempotency_key() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .min_length(Some(1))
        .max_length(Some(256))
        .description(Some(
            "1 to 256 characters; also accepted as the `Idempotency-Key` header (this field wins). \
             A key seen within `ingest.idempotency_window_s` answers 200 with the first event's id.",
        ))
        .build()
}

pub fn since() -> Object {
    string(SINCE, true)
        .description(Some(
            "Only letters dead since this time: RFC 3339 in UTC (`Z`, `+00:00` or no offset), from 1970 on, \
             e.g. `2026-01-31T12:00:00Z`.",
        ))
        .build()
}

pub fn expires_at() -> Object {
    string(SINCE, true)
        .description(Some(
            "When the key stops working: RFC 3339 in UTC (`Z`, `+00:00` or no offset), from 1970 on; \
             null: never.",
        ))
        .build()
}

/// `url` of a new endpoint (`nullable: false`) or of a PATCH (`null` leaves it as it is).
pub fn url(nullable: bool) -> Object {
    // No `format: uri`: the node reads URLs as browsers do (WHATWG), which takes characters
    // RFC 3986 does not (`|`, `^`, …) and encodes them; the pattern says what is taken.
    string(URL, nullable)
        .max_length(Some(2048))
        .description(Some(
            "Where deliveries go: an http or https URL without credentials, at most 2048 characters \
             (an IPv6 literal in brackets is accepted too). Loopback, private, link-local and metadata \
             addresses and `localhost` are refused (400) unless `delivery.allow_private_networks`; \
             host names are checked again after DNS resolution at delivery time.",
        ))
        .build()
}

pub fn endpoint_url() -> Object {
    url(true)
}

pub fn secret() -> Object {
    string(SECRET, true)
        .description(Some(
            "The signing secret: `whsec_` and base64 of 24 to 64 bytes. Minted when absent at creation; \
             a PATCH replaces it at once (rotate-secret keeps the old one signing for an overlap).",
        ))
        .build()
}

pub fn event_types() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            string(EVENT_TYPE_PATTERN, false)
                .min_length(Some(1))
                .max_length(Some(130)),
        )
        .min_items(Some(1))
        .max_items(Some(100))
        .description(Some(
            "1 to 100 patterns: `*` (every event), an exact type, or `prefix.*` (`order.*` matches \
             `order.created` and `order.item.added`). Absent at creation: `[\"*\"]`.",
        ))
        .build()
}

pub fn retry_schedule() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .maximum(Some(604_800)),
        )
        .max_items(Some(50))
        .description(Some(
            "Delays in seconds before attempts 2..N (at most 50, each at most 604800); `[]`: no \
             retries; absent or null: `delivery.retry_schedule_s`.",
        ))
        .build()
}

pub fn headers() -> Object {
    let mut names = string(HEADER_NAME, false).max_length(Some(65_535)).build();
    // utoipa's `Object` has no `not`: it goes in through the map that is flattened into the
    // object when serialised (meant for `x-` extensions, but it writes any key).
    names
        .extensions
        .get_or_insert_with(Default::default)
        .insert("not".into(), serde_json::json!({ "pattern": RESERVED_HEADER_NAME }));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(names))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
            string(HEADER_VALUE, false).max_length(Some(4096)).into(),
        ))))
        .max_properties(Some(20))
        .description(Some(
            "Up to 20 extra request headers: valid names, values of at most 4096 characters without \
             control characters but tab, and none of the headers the node sets itself (content-type, \
             content-length, host, user-agent, webhook-id, webhook-timestamp, webhook-signature, \
             transfer-encoding, connection).",
        ))
        .build()
}

/// `crate::catalogue::parse_version`: "1" to "9999", no leading zero.
pub const SCHEMA_VERSION: &str = "^[1-9][0-9]{0,3}$";

/// `schemas` of an event type: version → JSON Schema (an object or a boolean).
pub fn event_type_schemas() -> Object {
    let schema = ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Boolean]))
        .description(Some("A JSON Schema, draft 2020-12."))
        .build();
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(string(SCHEMA_VERSION, false).build()))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(schema.into()))))
        .max_properties(Some(crate::catalogue::MAX_VERSIONS))
        .description(Some(
            "Version (\"1\" to \"9999\") → a JSON Schema (draft 2020-12) that compiles: `pattern` on a \
             linear-time engine (no look-around or back-references), no remote `$ref`; at most 20 versions, \
             each at most 64 KiB and 32 levels deep.",
        ))
        .build()
}

/// An event's `schema_version`.
pub fn schema_version() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .pattern(Some(SCHEMA_VERSION))
        .description(Some(
            "The schema version of its event type the payload follows (default: the highest).",
        ))
        .build()
}

/// `crate::event::is_metadata_key`.
pub const METADATA_KEY: &str = "^[a-zA-Z0-9_:-]{1,64}$";

/// `metadata` of events and endpoints.
pub fn metadata() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(string(METADATA_KEY, false).build()))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(crate::event::MAX_METADATA_VALUE))
                .into(),
        ))))
        .max_properties(Some(crate::event::MAX_METADATA_KEYS))
        .description(Some(
            "Up to 16 keys (1 to 64 of `[a-zA-Z0-9_:-]`) with string values of at most 512 characters; \
             stored and shown, seen by content filters (`metadata.<key>`) and searches, never delivered.",
        ))
        .build()
}

/// A `true`/`false` query parameter.
pub fn boolean_text() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false"]))
        .build()
}

/// The `code` of an error: stable snake_case.
pub fn error_code() -> Object {
    string("^[a-z][a-z0-9_]*$", false)
        .description(Some(
            "Stable, snake_case: `invalid_request`, `invalid_json`, `not_found`, `unauthorized`, `forbidden`, \
             `payload_too_large`, `unsupported_media_type`, `rate_limited`, `store_unavailable`, \
             `event_expired`, `method_not_allowed`, `not_ready`, `internal_error`, …",
        ))
        .build()
}

#[cfg(test)]
mod tests;
