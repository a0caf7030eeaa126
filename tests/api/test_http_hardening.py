"""What an attacker with curl sees at the HTTP layer: no redirect off the site, no cookie
attribute or header from a path, no answer for a host that is not Reclaim's, HSTS on https,
staff answers never cached, and a form posted from any origin but the public URL's refused.

The app runs in-process (httpx's ASGI transport) on a SQLite database and a Temporal client
that never connects: every answer checked here is given before a workflow would be asked
(the staff queue then answers 503, with the headers of any answer)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from structlog.testing import capture_logs
from temporalio.client import Client

from api.app import create_app
from reclaim.services import build_services
from reclaim.settings import Settings
from reclaim.store.engine import make_engine
from reclaim.store.migrations import create_schema
from tests.conftest import FAST_ARGON2, TEST_SECRET
from tests.stack import serve_api

PUBLIC = "https://reclaim.example"
# A case id and a claim id of the shape Reclaim gives them, naming no case.
SHAPED_CASE = "rc_AAAAAAAAAAAAAAAAAAAAAA"

Site = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    create_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def site(engine: Engine, tmp_path: Path) -> Site:
    """`site(**settings)`: the API on the test's database, reached as `PUBLIC` unless a
    request names another Host."""

    @asynccontextmanager
    async def running(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, Any] = {
            "secret_key": TEST_SECRET,
            "state_dir": tmp_path,
            "public_url": PUBLIC,
            **FAST_ARGON2,
        }
        settings = Settings(**{**values, **overrides})
        client = await Client.connect("127.0.0.1:9", lazy=True)
        services = build_services(settings, client, engine)
        app = create_app(settings, services)
        base = overrides.get("public_url", PUBLIC)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as http,
            ):
                http.services = services  # type: ignore[attr-defined]
                http.app = app  # type: ignore[attr-defined]
                yield http
        finally:
            await services.aclose()

    return running


def _own(location: str | None) -> bool:
    """A redirect target on our site: a path with one leading slash, or the public URL."""
    if location is None:
        return True
    if location.startswith(PUBLIC + "/") or location == PUBLIC:
        return True
    return location.startswith("/") and not location.startswith(("//", "/\\"))


@pytest.mark.parametrize(
    "url",
    [
        f"{PUBLIC}//evil.example/?lang=fr",
        f"{PUBLIC}/%2F%2Fevil.example/login?lang=en",
        f"{PUBLIC}//evil.example/recover?lang=es&x=1",
        f"{PUBLIC}/%5C%5Cevil.example/?lang=fr",
    ],
)
async def test_the_language_switch_never_redirects_off_the_site(site: Site, url: str):
    async with site() as http:
        response = await http.get(httpx.URL(url))

    location = response.headers.get("location")
    assert _own(location), location
    assert "evil.example" not in (location or "")


async def test_the_language_switch_keeps_a_page_of_ours_and_its_query(site: Site):
    async with site() as http:
        response = await http.get("/support?reason=banned&lang=fr")

    assert response.status_code == 303
    assert response.headers["location"] == "/support?reason=banned"
    assert "reclaim_lang=fr" in response.headers["set-cookie"]


@pytest.mark.parametrize(
    "path",
    [
        "/stop/abc;%20Domain=127.0.0.1;%20SameSite=None;%20Secure?token=X",
        "/recover/abc;%20Domain=127.0.0.1;%20SameSite=None;%20Secure?proof=X",
        f"/stop/{SHAPED_CASE};%20Path=/?token=X",
        "/support/claims/sc_x;%20Path=/?token=X",
    ],
)
async def test_a_path_id_cannot_set_cookie_attributes(site: Site, path: str):
    async with site() as http:
        response = await http.get(path)

    assert response.status_code == 404
    assert "set-cookie" not in response.headers
    assert "This link does not work any more" in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/stop/abc%0d%0aX-Evil:1?token=x",
        "/recover/abc%0d%0aSet-Cookie:a=b?proof=x",
        "/recover/abc%0d%0aX-Evil:1/code",
        "/console/cases/abc%0d%0aX-Evil:1",
    ],
)
async def test_a_crlf_in_a_path_id_is_not_found(site: Site, path: str):
    async with site() as http:
        response = await http.get(path)

    assert response.status_code == 404
    assert "x-evil" not in response.headers
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize(
    "path",
    [
        "/v1/recovery/abc%0d%0aX-Evil:1",
        "/v1/recovery/rc_short",
        "/v1/support-cases/abc;%20Path=/",
        "/v1/staff/cases/x" * 3,
    ],
)
async def test_an_api_id_of_the_wrong_shape_is_the_apis_404(site: Site, path: str):
    async with site() as http:
        response = await http.get(path)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "x-evil" not in response.headers


async def test_a_host_that_is_not_ours_gets_400(site: Site):
    async with site() as http:
        page = await http.get("/recover", headers={"Host": "evil.example"})
        api = await http.get(f"/v1/recovery/{SHAPED_CASE}", headers={"Host": "evil.example"})
        ours = await http.get("/recover")
        health = await http.get("/healthz", headers={"Host": "10.0.0.7:8000"})

    for refused in (page, api):
        assert refused.status_code == 400
        assert refused.json()["error"] == "host_not_allowed"
        assert refused.json()["message"]
    assert ours.status_code == 200
    assert health.status_code != 400  # a probe dials an address, not the public name


@pytest.mark.parametrize("path", ["/console/", "/recover/", "/support/", "/v1/staff/cases/"])
async def test_a_trailing_slash_redirect_never_names_the_requests_host(site: Site, path: str):
    async with site(allowed_hosts="reclaim.example,alias.example") as http:
        foreign = await http.get(path, headers={"Host": "evil.example"})
        alias = await http.get(path, headers={"Host": "alias.example"})

    assert foreign.status_code == 400
    assert "evil.example" not in foreign.headers.get("location", "")
    assert alias.status_code in (307, 308)
    assert alias.headers["location"] == path.rstrip("/")


async def test_hsts_when_the_public_url_is_https_only(site: Site):
    async with site() as http:
        secure = await http.get("/recover")
    async with site(public_url="http://reclaim.example") as http:
        plain = await http.get("/recover")

    assert secure.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert "strict-transport-security" not in plain.headers


async def test_staff_answers_are_never_stored(site: Site):
    async with site() as http:
        _, key = await http.services.staff_members.add_staff("sam", "supervisor")  # type: ignore[attr-defined]
        queue = await http.get("/v1/staff/cases", headers={"Authorization": f"Bearer {key}"})
        refused = await http.get("/v1/staff/cases")
        console = await http.get("/console/signin")

    assert queue.status_code != 401
    assert queue.headers["cache-control"] == "no-store"
    assert refused.headers["cache-control"] == "no-store"
    assert console.headers["cache-control"] == "no-store"


async def _sign_in_form(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    token = "t" * 43
    http.cookies.set("reclaim_csrf", token)
    return await http.post(
        "/signin",
        data={"csrf": token, "identifier": "jane", "password": "not the password"},
        headers=headers,
    )


async def test_a_form_is_accepted_only_from_the_public_urls_origin(site: Site):
    async with site(allowed_hosts="reclaim.example,alias.example") as http:
        # The request names a host we answer for, and its Origin is that host: still
        # another origin than the public URL's (a forged or aliased Host proves nothing).
        forged = await _sign_in_form(http, Host="alias.example", Origin="https://alias.example")
        other = await _sign_in_form(http, Origin="https://evil.example")
        ours = await _sign_in_form(http, Origin=PUBLIC)
        default_port = await _sign_in_form(http, Origin=f"{PUBLIC}:443")
        no_origin = await _sign_in_form(http)

    for refused in (forged, other):
        assert refused.status_code == 403
        assert "expired" in refused.text.lower()
    for accepted in (ours, default_port, no_origin):
        assert accepted.status_code != 403, accepted.text[:300]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_behind_uvicorn_a_crlf_id_gets_its_404_and_logs_no_traceback(
    sqlite_url: str, tmp_path: Path
):
    """A real server: a header built from such an id made uvicorn drop the connection
    (`Invalid HTTP header value`) and log a traceback."""
    settings = Settings(
        secret_key=TEST_SECRET,
        state_dir=tmp_path,
        database_url=sqlite_url,
        temporal_address="127.0.0.1:9",
        **FAST_ARGON2,
    )  # the default public URL, http://127.0.0.1:8000: its host is the server's
    records = _Records()
    async with serve_api(settings) as base, httpx.AsyncClient(base_url=base) as http:
        logging.getLogger("uvicorn").addHandler(records)
        try:
            stop = await http.get("/stop/abc%0d%0aX-Evil:1?token=x")
            recover = await http.get("/recover/abc%0d%0aSet-Cookie:a=b?proof=x")
        finally:
            logging.getLogger("uvicorn").removeHandler(records)

    for response in (stop, recover):
        assert response.status_code == 404
        assert "x-evil" not in response.headers and "set-cookie" not in response.headers
    assert not [r for r in records.records if r.levelno >= logging.WARNING or r.exc_info]


BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def test_a_browser_gets_a_page_for_an_unknown_path_in_its_language(site: Site):
    async with site() as http:
        english = await http.get("/no-such-page", headers=BROWSER)
        french = await http.get("/no-such-page", headers={**BROWSER, "Accept-Language": "fr"})
        spanish = await http.get("/no-such-page", headers={**BROWSER, "Accept-Language": "es"})

    assert english.status_code == 404
    assert english.headers["content-type"].startswith("text/html")
    assert "This page does not exist" in english.text
    assert 'href="/"' in english.text
    assert (french.status_code, spanish.status_code) == (404, 404)
    assert "Cette page n'existe pas" in french.text.replace("&#39;", "'"), french.text
    assert "Esta página no existe" in spanish.text
    assert english.headers["content-security-policy"]  # the pages' headers


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/no-such-page", 404, "not_found"),
        ("GET", "/v1/nothing", 404, "not_found"),
        ("GET", "/v1", 404, "not_found"),
        ("DELETE", "/signin", 405, "method_not_allowed"),
        ("DELETE", "/v1/recovery", 405, "method_not_allowed"),
    ],
)
async def test_an_api_client_gets_json_and_a_browser_json_under_v1(
    site: Site, method: str, path: str, status: int, error: str
):
    async with site() as http:
        client = await http.request(method, path, headers={"Accept": "application/json"})
        browser = await http.request(method, path, headers=BROWSER)

    assert (client.status_code, client.json()["error"]) == (status, error)
    if path.startswith("/v1"):
        assert (browser.status_code, browser.json()["error"]) == (status, error)
    else:
        assert browser.status_code == status
        assert "This page does not exist" in browser.text
    if status == 405:
        assert client.headers["allow"] and browser.headers["allow"]


async def test_an_unexpected_error_shows_a_reference_and_logs_the_details(site: Site):
    async def broken() -> None:
        raise RuntimeError("secret detail of the failure")

    async with site() as http:
        app = http.app  # type: ignore[attr-defined]
        app.add_api_route("/broken", broken)
        app.add_api_route("/v1/broken", broken)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as raw:
            with capture_logs() as logged:
                page = await raw.get("/broken", headers={**BROWSER, "Accept-Language": "es"})
                api = await raw.get("/v1/broken", headers=BROWSER)

    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "secret detail" not in page.text and "Traceback" not in page.text
    assert page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
    reference = api.json()["reference"]
    assert (api.status_code, api.json()["error"]) == (500, "internal_error")
    assert "secret detail" not in api.text
    shown = page.text.split("referencia: ")[1][:12]
    assert len(shown) == 12 and shown != reference
    failures = [e for e in logged if e["event"] == "unhandled_error"]
    assert [(e["reference"], e["error"], e["path"]) for e in failures] == [
        (shown, "RuntimeError", "/broken"),
        (reference, "RuntimeError", "/v1/broken"),
    ]
    assert all(e.get("exc_info") for e in failures)  # the traceback, in the log only
