//! What the OpenAPI document says of a source's body. A new source's valid fields depend on
//! its `kind`, so `NewSource` is a `oneOf`, one branch per kind naming exactly the fields that
//! kind takes (required ones required, others refused); a client that trusts the document gets
//! no 400 for a body it calls valid. `SourcePatch` lists every field: whether a PATCH suits the
//! stored source's kind depends on that source, which the document cannot know.

use super::schema;
use crate::inbound::source::{Kind, CREDENTIAL_HEADERS, MAX_DEDUP_WINDOW_S};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::RefOr;

fn of_type(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::new(t)
    }
}

fn text(min: usize, max: usize, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .min_length(Some(min))
        .max_length(Some(max))
}

fn whole(min: u64, max: u64, nullable: bool, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(of_type(Type::Integer, nullable))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
        .description(Some(description))
        .build()
}

fn closed(builder: ObjectBuilder) -> ObjectBuilder {
    builder.additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

fn nullable(mut object: Object) -> Object {
    if let SchemaType::Type(t) = object.schema_type {
        object.schema_type = of_type(t, true);
    }
    object
}

fn one_of(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

fn secret(kind: Kind) -> Object {
    match kind {
        Kind::StandardWebhooks => ObjectBuilder::from(schema::secret())
            .schema_type(Type::String)
            .description(Some("The sender's `whsec_…` secret."))
            .build(),
        _ => text(1, 512, false)
            .description(Some("The provider's signing secret, 1 to 512 characters."))
            .build(),
    }
}

fn hmac() -> Object {
    closed(ObjectBuilder::new().schema_type(Type::Object))
        .property("header", schema::source_header_name())
        .required("header")
        .property("algorithm", one_of(&["sha256", "sha512"]))
        .property("encoding", one_of(&["hex", "base64"]))
        .property(
            "prefix",
            text(0, 64, false).description(Some("Before the encoded signature, e.g. `sha256=`.")),
        )
        .description(Some(
            "The scheme: HMAC of the raw body in `header`; default sha256, hex, no prefix.",
        ))
        .build()
}

fn basic() -> Object {
    closed(ObjectBuilder::new().schema_type(Type::Object))
        .property("username", text(1, 256, false).pattern(Some("^[^:]*$")))
        .property("password", text(1, 256, false))
        .required("username")
        .required("password")
        .build()
}

fn api_key() -> Object {
    closed(ObjectBuilder::new().schema_type(Type::Object))
        .property("header", schema::source_header_name())
        .property(
            "value",
            text(1, 256, false)
                .pattern(Some(schema::IDEMPOTENCY_HEADER))
                .description(Some("Visible ASCII, no space at either end.")),
        )
        .required("value")
        .description(Some("The header (default `X-Api-Key`) and the key it must carry."))
        .build()
}

/// The fields every kind takes, all optional (`null`: the default).
fn common(builder: ObjectBuilder, name_required: bool) -> ObjectBuilder {
    let name = text(1, 128, !name_required).description(Some("For people, 1 to 128 characters."));
    let builder = builder
        .property("name", name)
        .property(
            "tolerance_s",
            whole(
                1,
                86_400,
                true,
                "How old a signed timestamp may be (stripe, standard_webhooks); default 300.",
            ),
        )
        .property(
            "type_prefix",
            ObjectBuilder::new()
                .schema_type(of_type(Type::String, true))
                .pattern(Some("^[a-zA-Z0-9_.:-]{0,64}$"))
                .description(Some(
                    "Put before the provider's event type, e.g. `stripe.`; default none.",
                )),
        )
        .property(
            "allowed_ips",
            ArrayBuilder::new()
                .schema_type(of_type(Type::Array, true))
                .items(schema::cidr())
                .max_items(Some(100))
                .description(Some(
                    "Callers allowed (addresses or CIDR ranges); empty or absent: everyone.",
                )),
        )
        .property(
            "rate_limit_per_s",
            whole(
                1,
                100_000,
                true,
                "Requests per second across all nodes (429 past it); absent: none.",
            ),
        )
        .property(
            "dedup_window_s",
            whole(
                1,
                MAX_DEDUP_WINDOW_S,
                true,
                "How long a provider id is remembered; default 86400.",
            ),
        );
    if name_required {
        builder.required("name")
    } else {
        builder
    }
}

/// `^(?:[aA][uU]…|…)$`: any of `words`, in any case (no flags: the same in every regex dialect).
fn any_case(words: &[&str]) -> String {
    let alternatives: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| match c {
                    c if c.is_ascii_alphabetic() => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
                    '-' => "-".to_string(),
                    c => c.to_string(),
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", alternatives.join("|"))
}

fn dedup_header(nullable_field: bool) -> Object {
    let mut header = schema::source_header_name();
    // Not a credential header (`source::CREDENTIAL_HEADERS`); like `headers`' reserved names,
    // `not` goes in through the extensions map.
    header.extensions.get_or_insert_with(Default::default).insert(
        "not".into(),
        // `type` too: a bare `pattern` holds for null, and `not` would then refuse null.
        serde_json::json!({ "type": "string", "pattern": any_case(&CREDENTIAL_HEADERS) }),
    );
    let header = if nullable_field { nullable(header) } else { header };
    ObjectBuilder::from(header)
        .description(Some(
            "Kinds without a provider id: the header naming each delivery (default: the body's SHA-256). \
             Not Authorization, Proxy-Authorization or Cookie (400). The kind's own key or \
             signature header is never used (the body's SHA-256 is).",
        ))
        .build()
}

/// The branch of `NewSource` for one kind.
fn new_source_of(kind: Kind) -> Object {
    let mut branch = common(closed(ObjectBuilder::new().schema_type(Type::Object)), true)
        .property("kind", one_of(&[kind.name()]))
        .required("kind")
        .title(Some(kind.name()));
    if kind.signs() {
        branch = branch.property("secret", secret(kind)).required("secret");
    }
    branch = match kind {
        Kind::Hmac => branch.property("hmac", hmac()).required("hmac"),
        Kind::Basic => branch.property("basic", basic()).required("basic"),
        Kind::ApiKey => branch.property("api_key", api_key()).required("api_key"),
        _ => branch,
    };
    if !kind.has_provider_id() {
        branch = branch.property("dedup_header", dedup_header(true));
    }
    branch.build()
}

/// The body of a creation: one branch per `kind`.
pub struct NewSource;

impl utoipa::PartialSchema for NewSource {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "A new source. `kind` decides the other fields: `secret` for stripe, github, shopify, \
             standard_webhooks (`whsec_…`) and hmac; `hmac` for hmac; `basic` for basic; `api_key` \
             for api_key; `dedup_header` only for the kinds without a provider id. A field the kind \
             does not take is refused (400 naming it), even as null.",
        ));
        for kind in Kind::ALL {
            one_of = one_of.item(new_source_of(kind));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl utoipa::ToSchema for NewSource {}

/// The body of a PATCH: any subset of the fields. Without `kind`, every field may be sent
/// (whether it suits the stored source's kind is the server's to say: 409); with `kind`, only
/// that kind's fields, and `null` for any other (which the new kind drops anyway).
pub struct SourcePatch;

fn null_only() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some("Only null: the named kind does not use this field."))
        .build()
}

fn patch_of(kind: Option<Kind>) -> Object {
    let mut branch = common(closed(ObjectBuilder::new().schema_type(Type::Object)), false);
    let uses = |field: &str| match (kind, field) {
        (None, _) => true,
        (Some(k), "secret") => k.signs(),
        (Some(k), "hmac") => k == Kind::Hmac,
        (Some(k), "basic") => k == Kind::Basic,
        (Some(k), "api_key") => k == Kind::ApiKey,
        (Some(k), _) => !k.has_provider_id(),
    };
    let secret = match kind {
        Some(Kind::StandardWebhooks) => nullable(secret(Kind::StandardWebhooks)),
        _ => text(1, 512, true)
            .description(Some(
                "Replaces the secret at once (rotate-secret keeps the old one for an overlap); \
                 standard_webhooks takes `whsec_…` only.",
            ))
            .build(),
    };
    for (field, schema) in [
        ("secret", secret),
        ("hmac", nullable(hmac())),
        ("basic", nullable(basic())),
        ("api_key", nullable(api_key())),
        ("dedup_header", dedup_header(true)),
    ] {
        branch = branch.property(field, if uses(field) { schema } else { null_only() });
    }
    match kind {
        Some(kind) => branch
            .property("kind", one_of(&[kind.name()]))
            .required("kind")
            .title(Some(kind.name())),
        None => branch.title(Some("same kind")),
    }
    .build()
}

impl utoipa::PartialSchema for SourcePatch {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "Any subset of a source's fields; `null` resets one to its default. With `kind`, only \
             that kind's fields (others only as null). The result must suit its kind as a new \
             source must (see `NewSource`): 409 naming the field otherwise.",
        ));
        one_of = one_of.item(patch_of(None));
        for kind in Kind::ALL {
            one_of = one_of.item(patch_of(Some(kind)));
        }
        RefOr::T(Schema::OneOf(one_of.build()))
    }
}

impl utoipa::ToSchema for SourcePatch {}

#[cfg(test)]
mod tests {
    #[test]
    fn credential_headers_are_refused_in_any_case_by_the_pattern() {
        let re = regex::Regex::new(&super::any_case(&super::CREDENTIAL_HEADERS)).unwrap();
        for name in ["Authorization", "COOKIE", "proxy-Authorization"] {
            assert!(re.is_match(name), "{name}");
        }
        for name in ["X-Authorization", "Cookies", "authorization2"] {
            assert!(!re.is_match(name), "{name}");
        }
    }
}
