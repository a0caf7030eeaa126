"""Bad input gets a clear JSON error and a 4xx: never a 500, never a stack trace."""

from __future__ import annotations

import pytest

from tests.stack import Stack

UNKNOWN_CASE = "rc_AAAAAAAAAAAAAAAAAAAAAA"

CASES = [
    # (method, path, body or raw bytes, expected status, expected error)
    ("POST", "/v1/recovery", b"{not json", 400, "invalid_json"),
    ("POST", "/v1/recovery", b"", 422, "invalid_request"),
    ("POST", "/v1/recovery", [], 422, "invalid_request"),
    ("POST", "/v1/recovery", {}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": 12345}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": None}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": ""}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": "x" * 300}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": "not a username!"}, 422, "invalid_identifier"),
    ("POST", "/v1/recovery", {"identifier": "+1 555"}, 422, "invalid_identifier"),
    ("POST", "/v1/recovery", {"identifier": "a@"}, 422, "invalid_identifier"),
    ("POST", "/v1/recovery", {"identifier": "jane", "channel": "fax"}, 422, "invalid_request"),
    ("POST", "/v1/recovery", {"identifier": "jane", "admin": True}, 422, "invalid_request"),
    ("GET", f"/v1/recovery/{UNKNOWN_CASE}", None, 404, "not_found"),
    ("GET", "/v1/recovery/..%2F..%2Fetc%2Fpasswd", None, 404, "not_found"),
    ("GET", "/v1/recovery/" + "x" * 5000, None, 404, "not_found"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/code", {"code": "123456"}, 404, "not_found"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/resend", None, 404, "not_found"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/code", {"code": "12345"}, 422, "invalid_request"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/code", {"code": "abcdef"}, 422, "invalid_request"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/code", {"code": 123456}, 422, "invalid_request"),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/code", {"code": "1" * 100}, 422, "invalid_request"),
    (
        "POST",
        f"/v1/recovery/{UNKNOWN_CASE}/password",
        {"reset_token": "t", "new_password": "violet tangerine marmalade kayak"},
        404,
        "not_found",
    ),
    ("POST", f"/v1/recovery/{UNKNOWN_CASE}/password", {"reset_token": "t"}, 422, "invalid_request"),
    (
        "POST",
        f"/v1/recovery/{UNKNOWN_CASE}/password",
        {"reset_token": "t", "new_password": "p" * 5000},
        422,
        "invalid_request",
    ),
    ("POST", "/v1/sessions", {"identifier": ["jane"], "password": 1}, 422, "invalid_request"),
    (
        "POST",
        "/v1/sessions",
        {"identifier": "jane", "password": "nope"},
        401,
        "invalid_credentials",
    ),
    ("POST", "/v1/sessions", {"identifier": "???", "password": "x"}, 401, "invalid_credentials"),
    ("GET", "/v1/sessions/current", None, 401, "invalid_session"),
    ("DELETE", "/v1/recovery", None, 405, "method_not_allowed"),
    ("GET", "/no/such/route", None, 404, "not_found"),
    ("GET", "/dev/outbox", None, 404, "not_found"),  # dev mode is off here
]


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), CASES)
async def test_bad_requests_get_a_json_4xx(
    stack: Stack, method: str, path: str, body: object, status: int, error: str
):
    if isinstance(body, bytes):
        response = await stack.http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
    elif body is None:
        response = await stack.http.request(method, path)
    else:
        response = await stack.http.request(method, path, json=body)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()
    assert payload["error"] == error
    assert payload["message"] and "Traceback" not in response.text


async def test_a_body_over_the_limit_is_refused_before_it_is_read(stack: Stack):
    huge = b'{"identifier": "' + b"a" * 100_000 + b'"}'

    declared = await stack.http.post(
        "/v1/recovery", content=huge, headers={"Content-Type": "application/json"}
    )

    async def chunks():
        for start in range(0, len(huge), 4096):
            yield huge[start : start + 4096]

    streamed = await stack.http.post(
        "/v1/recovery", content=chunks(), headers={"Content-Type": "application/json"}
    )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"


async def test_validation_errors_name_the_field(stack: Stack):
    response = await stack.http.post("/v1/recovery", json={"identifier": "jane", "channel": "x"})

    assert [f["field"] for f in response.json()["fields"]] == ["channel"]


async def test_the_openapi_document_lists_the_contract(stack: Stack):
    spec = (await stack.http.get("/openapi.json")).json()

    assert {
        "/v1/recovery",
        "/v1/recovery/{case_id}",
        "/v1/recovery/{case_id}/code",
        "/v1/recovery/{case_id}/resend",
        "/v1/recovery/{case_id}/password",
        "/v1/sessions",
        "/healthz",
    } <= set(spec["paths"])
    assert (await stack.http.get("/docs")).status_code == 200
