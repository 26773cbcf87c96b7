"""Schemathesis hooks of the OpenAPI test (tests/it/openapi.rs): keep every delivery on loopback.

Schemathesis creates endpoints with the URLs it generates, and the node then delivers events to
them. Test traffic must stay on this machine, so before each request an endpoint `url` is
rewritten, keeping what the document says of it:
- a URL the document calls valid becomes the test's loopback sink (also valid), so the node
  accepts it as it would have accepted the generated one;
- any other string becomes one that is not a URL at all, so the node refuses it as it would
  have refused the generated one (the node also takes URLs the pattern does not describe, such
  as IPv6 literals: those must not be created either).
The test then checks in Redis that every endpoint of the run points at the sink.
"""

import json
import os
import re

import schemathesis

SINK_URL = os.environ["HOOKLINE_TEST_SINK_URL"]
with open(os.environ["HOOKLINE_OPENAPI_FILE"], encoding="utf-8") as document:
    _URL = json.load(document)["components"]["schemas"]["NewEndpoint"]["properties"]["url"]
URL_PATTERN = re.compile(_URL["pattern"])
URL_MAX_LENGTH = _URL["maxLength"]
assert URL_PATTERN.fullmatch(SINK_URL), SINK_URL


def loopback_only(url):
    if URL_PATTERN.fullmatch(url) and len(url) <= URL_MAX_LENGTH:
        return SINK_URL
    return "not a url"


@schemathesis.hook
def before_call(context, case, **kwargs):
    if isinstance(case.body, dict) and isinstance(case.body.get("url"), str):
        case.body["url"] = loopback_only(case.body["url"])
