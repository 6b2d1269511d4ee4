"""The SDK's request bodies against the live `/openapi.json`: every member it can send is a
property of the route's request schema, so the SDK cannot drift from the document."""

import httpx
import pytest

from codebeaker import File
from codebeaker import _requests as req

EVERY_RUN_OPTION = dict(mode="plain", timeout_ms=1000, memory_limit_mb=128, packages=["x"],
                        isolation="call", stdin="s", args=["a"], files=[File("f.txt", "x")])


@pytest.fixture(scope="module")
def doc(url):
    return httpx.get(f"{url}/openapi.json", timeout=30).raise_for_status().json()


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _properties(doc, schema) -> dict:
    """Properties of a schema, through `$ref`, `allOf`, `oneOf` and `anyOf`."""
    schema = _resolve(doc, schema)
    props = dict(schema.get("properties", {}))
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, []):
            # A branch that narrows a property (`allOf: [{properties: {items: …}}]`) does
            # not replace the property's own schema.
            for name, value in _properties(doc, sub).items():
                props.setdefault(name, value)
    return props


def _request_schema(doc, method, path):
    body = doc["paths"][path][method].get("requestBody")
    assert body, f"{method.upper()} {path} has no requestBody in /openapi.json"
    return body["content"]["application/json"]["schema"]


def _check(doc, body, schema, where):
    props = _properties(doc, schema)
    missing = sorted(set(body) - set(props))
    assert not missing, f"the SDK sends {missing} to {where}, which /openapi.json does not declare"
    return props


def test_execute_body_matches_the_document(doc):
    body = req.execute_body("python", "result = 1", {"a": 1}, **EVERY_RUN_OPTION)
    props = _check(doc, body, _request_schema(doc, "post", "/v1/execute"), "POST /v1/execute")
    files = _properties(doc, props["files"]["items"])
    assert {"path", "content", "encoding"} <= set(files)
    assert set(File("b", b"x").to_json()) <= set(files)


def test_batch_body_matches_the_document(doc):
    body = req.batch_body("python", "result = 1", None, max_concurrency=2, stop_on_first_error=True,
                          items=[{"id": "a", "input": 1, "language": "python", "code": "x",
                                  "stdin": "s"}], **EVERY_RUN_OPTION)
    props = _check(doc, body, _request_schema(doc, "post", "/v1/execute/batch"),
                   "POST /v1/execute/batch")
    item = _properties(doc, props["items"]["items"])
    assert set(body["items"][0]) <= set(item), set(body["items"][0]) - set(item)


def test_execution_bodies_match_the_document(doc):
    schema = _request_schema(doc, "post", "/v1/executions")
    one = req.submit_body(req.execute_body("python", "x", 1, **EVERY_RUN_OPTION), "https://h/cb")
    many = req.submit_body(req.batch_body("python", "x", [1], max_concurrency=1,
                                          stop_on_first_error=False, **EVERY_RUN_OPTION),
                           "https://h/cb")
    if not _properties(doc, schema):
        # The document does not describe this body yet: it is an execute or a batch body
        # plus `callbackUrl` (docs/api.md), so hold those parts to their schemas.
        _check(doc, {k: v for k, v in one.items() if k != "callbackUrl"},
               _request_schema(doc, "post", "/v1/execute"), "POST /v1/executions")
        _check(doc, {k: v for k, v in many.items() if k != "callbackUrl"},
               _request_schema(doc, "post", "/v1/execute/batch"), "POST /v1/executions")
        return
    # `callbackUrl` is accepted but deliberately undeclared (docs/api.md: a schema fuzzer
    # would make the gateway call made-up addresses).
    for body in (one, many):
        _check(doc, {k: v for k, v in body.items() if k != "callbackUrl"}, schema,
               "POST /v1/executions")


def test_session_body_matches_the_document(doc):
    body = req.session_body("python", idle_timeout_minutes=1, max_lifetime_minutes=2,
                            memory_limit_mb=128, cpu_shares=512, runtime="docker", packages=["x"])
    _check(doc, body, _request_schema(doc, "post", "/v1/sessions"), "POST /v1/sessions")


def test_every_route_the_sdk_calls_is_in_the_document(doc):
    for method, path in [("post", "/v1/execute"), ("post", "/v1/execute/batch"),
                         ("post", "/v1/executions"), ("get", "/v1/executions"),
                         ("get", "/v1/executions/{id}"), ("delete", "/v1/executions/{id}"),
                         ("get", "/v1/webhooks/secret"), ("get", "/v1/webhooks/dead"),
                         ("get", "/v1/languages"), ("post", "/v1/sessions"), ("get", "/v1/sessions"),
                         ("get", "/v1/sessions/{id}"), ("delete", "/v1/sessions/{id}"),
                         ("post", "/v1/sessions/{id}/commands")]:
        assert method in doc["paths"].get(path, {}), f"{method.upper()} {path} is not in /openapi.json"
