"""Schemathesis hooks of the OpenAPI test (tests/it/openapi.rs): keep every delivery on loopback.

Schemathesis creates endpoints with the URLs it generates, and the node then delivers events to
them. Test traffic must stay on this machine, so before each request an endpoint `url` is
rewritten, keeping what the document says of it:
- a URL the document calls valid becomes the test's loopback sink (also valid), so the node
  accepts it as it would have accepted the generated one;
- any other string becomes one that is not a URL at all, so the node refuses it as it would
  have refused the generated one (the node also takes URLs the pattern does not describe, such
  as IPv6 literals: those must not be created either).
The same holds for an `oauth2.token_url` (the node would fetch tokens there). And PEM fields
(`tls`): a value the document calls valid (PEM framing; the content must also parse, which a
pattern cannot say) becomes a real certificate, or its key, made here with `cryptography`, so the
node accepts it; any other value is left as it is, and the node refuses it.
And a content `filter`: an object the document calls valid (its keys are paths or `$and`,
`$or`, `$not`; what their values may be, operators included, is more than a schema can say)
becomes a filter that compiles; any other value is left as it is, and the node refuses it.
And an event type's `schemas`: each schema the document calls valid (an object or a boolean;
whether it compiles is more than a schema can say) becomes `{}`, which compiles and matches any
`example`. And a tenant's `validation`: `enforce` becomes `warn`, since under `enforce` ingest
refuses with 422 events of a type the run archived, and the document cannot say which types a
tenant archived (`warn` checks the same payloads and stores them). And a `transform`: a string
the document calls valid (whether it is a jq program is more than a schema can say, and a
program could send deliveries to another `url`) becomes a program that compiles and keeps the
delivery where it was. And `kind: email`, whose endpoint takes `email` instead of `url` and
none of the HTTP-only fields (a rule across fields the document does not spell out), becomes
the default kind, and an endpoint's `email` is left out: email endpoints are tested by
tests/it/email.rs.
The test then checks in Redis that every endpoint of the run points at the sink.
"""

import json
import os
import re

import schemathesis

SINK_URL = os.environ["HOOKLINE_TEST_SINK_URL"]
with open(os.environ["HOOKLINE_OPENAPI_FILE"], encoding="utf-8") as document:
    _NEW_ENDPOINT = json.load(document)["components"]["schemas"]["NewEndpoint"]["properties"]
_URL = _NEW_ENDPOINT["url"]
_TLS = _NEW_ENDPOINT["tls"]
URL_PATTERN = re.compile(_URL["pattern"])
URL_MAX_LENGTH = _URL["maxLength"]
assert URL_PATTERN.fullmatch(SINK_URL), SINK_URL
PEM_PATTERN = re.compile(_TLS["oneOf"][0]["properties"]["client_cert_pem"]["pattern"])
_FILTER = _NEW_ENDPOINT["filter"]["oneOf"][0]
FILTER_KEY = re.compile(_FILTER["propertyNames"]["pattern"])
FILTER_MAX_KEYS = _FILTER["maxProperties"]
_TRANSFORM = _NEW_ENDPOINT["transform"]
A_TRANSFORM = '{payload: {type: .type, data: .payload}, headers: {"x-transformed": "yes"}}'
A_FILTER = {"payload.n": {"$gte": 0}, "$or": [{"type": {"$startsWith": "a"}}, {"metadata.k": {"$exists": False}}]}


def _certificate():
    """A self-signed certificate and its key, as PEM."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "schemathesis")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


CERT_PEM, KEY_PEM = _certificate()


def loopback_only(url):
    if URL_PATTERN.fullmatch(url) and len(url) <= URL_MAX_LENGTH:
        return SINK_URL
    return "not a url"


@schemathesis.hook
def before_call(context, case, **kwargs):
    if not isinstance(case.body, dict):
        return
    if isinstance(case.body.get("url"), str):
        case.body["url"] = loopback_only(case.body["url"])
    oauth2 = case.body.get("oauth2")
    if isinstance(oauth2, dict) and isinstance(oauth2.get("token_url"), str):
        oauth2["token_url"] = loopback_only(oauth2["token_url"])
    tls = case.body.get("tls")
    if isinstance(tls, dict):
        for field, real in (("client_cert_pem", CERT_PEM), ("client_key_pem", KEY_PEM), ("ca_pem", CERT_PEM)):
            value = tls.get(field)
            if isinstance(value, str) and PEM_PATTERN.fullmatch(value) and len(value) <= 65536:
                tls[field] = real
    schemas = case.body.get("schemas")
    if isinstance(schemas, dict):
        for version, schema in schemas.items():
            if isinstance(schema, (dict, bool)):
                schemas[version] = {}
    if case.body.get("validation") == "enforce":
        case.body["validation"] = "warn"
    if case.body.get("kind") == "email":
        case.body["kind"] = "webhook"
    case.body.pop("email", None)
    transform = case.body.get("transform")
    if isinstance(transform, str) and _TRANSFORM["minLength"] <= len(transform) <= _TRANSFORM["maxLength"]:
        case.body["transform"] = A_TRANSFORM
    fltr = case.body.get("filter")
    if isinstance(fltr, dict) and len(fltr) <= FILTER_MAX_KEYS and all(FILTER_KEY.fullmatch(k) for k in fltr):
        case.body["filter"] = A_FILTER
