# ruff: noqa: F811  (the district fixtures come from test_requests)
"""Requests, headers and exports: a malformed request gets a plain 400/413 page and changes
nothing; every page, error pages included, carries the security headers (HSTS outside
development); X-Forwarded-For counts only from a configured proxy; every form field is
clean of control characters before any view reads it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.testclient import TestClient

from portal import form_hygiene
from portal.app import create_app
from portal.billing_core.models import AuthFailure, User
from portal.settings import Settings
from portal.web import remote_addr

from .conftest import CLOCK, SETTINGS, csrf_from, forget_failed_sign_ins, sign_in
from .test_requests import client as district_client  # noqa: F401
from .test_requests import district  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "resident@demo.example"
PROXY, VISITOR, SPOOFED = "203.0.113.5", "198.51.100.7", "192.0.2.99"


def _boom(request: Request) -> Response:
    raise RuntimeError("a bug in a view")


def _addr(request: Request) -> Response:
    return PlainTextResponse(f"{remote_addr(request)} {request.url.scheme}")


async def _echo_form(request: Request) -> Response:
    out: dict[str, str] = {}
    async with request.form() as form:
        for key, value in form.multi_items():
            out[key] = value if isinstance(value, str) else (await value.read()).decode("latin-1")
    return JSONResponse(out)


def make_client(engine: Engine, settings: Settings = SETTINGS, address: str = "testclient") -> TestClient:
    app = create_app(settings, engine=engine, clock=CLOCK)
    app.add_route("/test/boom", _boom)
    app.add_route("/test/addr", _addr)
    app.add_route("/test/echo", _echo_form, methods=["POST"])
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False, client=(address, 5000))


@pytest.fixture
def probe(demo_engine: Engine) -> Iterator[TestClient]:
    with make_client(demo_engine) as c:
        yield c
    forget_failed_sign_ins(demo_engine)


def assert_security_headers(response, hsts: bool = True) -> None:  # type: ignore[no-untyped-def]
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    if hsts:
        assert headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
    else:
        assert "strict-transport-security" not in headers


def display_name(engine: Engine, email: str) -> str:
    with Session(engine) as s:
        return s.scalar(select(User.display_name).where(User.email == email)) or ""


# --- malformed requests -------------------------------------------------------------


def test_a_form_of_1001_fields_gets_a_400_page_with_the_headers_and_changes_nothing(
    probe: TestClient, demo_engine: Engine
) -> None:
    assert sign_in(probe, EMAIL).status_code == 303
    page = probe.get("/my/profile")
    before = display_name(demo_engine, EMAIL)
    fields = {**page.context["form"].values, "csrf_token": csrf_from(page.text), "display_name": "Mallory"}
    fields.update({f"x{i}": "1" for i in range(1001 - len(fields))})
    assert len(fields) == 1001
    response = probe.post("/my/profile", data=fields, follow_redirects=False)
    assert response.status_code == 400
    assert "could not be read" in response.text and "Traceback" not in response.text
    assert_security_headers(response)
    assert display_name(demo_engine, EMAIL) == before
    # 1000 fields is still a form: the view reads it (and, the district being shared, refuses
    # it for its own reason: the demo resident has no name, which the profile requires).
    fields.pop("x0")
    fields["display_name"] = ""
    read = probe.post("/my/profile", data=fields, follow_redirects=False)
    assert "could not be read" not in read.text
    assert set(read.context["form"].errors) == {"display_name"}
    assert display_name(demo_engine, EMAIL) == before == ""


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", b"csrf_token=x"),
        ("multipart/form-data; boundary=", b"--\r\n\r\n"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Type: text/plain\r\n\r\nno name\r\n--zz--\r\n"),
        ("multipart/form-data; boundary=zz", b"--zz\r\nContent-Disposition: form-data; name=a\r\n\r\n" + b"x" * 10),
        ("multipart/form-data; boundary=zz", b"not multipart at all"),
        ("application/x-www-form-urlencoded", b"a=" + b"x" * (1024 * 1024 + 1)),
    ],
)
def test_a_body_unreadable_for_its_content_type_gets_a_400_page(
    probe: TestClient, content_type: str, body: bytes
) -> None:
    response = probe.post("/sign-in", content=body, headers={"content-type": content_type}, follow_redirects=False)
    assert response.status_code == 400, response.text
    assert "could not be read" in response.text
    assert_security_headers(response)


def test_too_many_files_get_a_400_page(probe: TestClient) -> None:
    token = csrf_from(probe.get("/sign-in").text)
    files = [("upload", (f"f{i}.csv", b"a,b\n", "text/csv")) for i in range(form_hygiene.MAX_FILES + 1)]
    response = probe.post("/staff/reads/upload", data={"csrf_token": token}, files=files, follow_redirects=False)
    assert response.status_code == 400
    assert_security_headers(response)


def test_a_body_over_the_limit_gets_a_413_page(probe: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(form_hygiene, "MAX_BODY_BYTES", 2000)
    token = csrf_from(probe.get("/sign-in").text)
    response = probe.post("/sign-in", data={"csrf_token": token, "email": "x" * 3000}, follow_redirects=False)
    assert response.status_code == 413
    assert "too large" in response.text
    assert_security_headers(response)


def test_a_view_that_raises_gets_the_500_page_with_the_headers(probe: TestClient) -> None:
    response = probe.get("/test/boom")
    assert response.status_code == 500
    assert "something went wrong on our side" in response.text
    assert "a bug in a view" not in response.text and "Traceback" not in response.text
    assert_security_headers(response)


@pytest.mark.parametrize(
    "method, path, status",
    [("GET", "/no/such/page", 404), ("POST", "/sign-in", 403), ("GET", "/my/accounts/%00", 404)],
)
def test_error_pages_carry_the_headers(probe: TestClient, method: str, path: str, status: int) -> None:
    response = probe.request(method, path, follow_redirects=False)
    assert response.status_code == status
    assert_security_headers(response)


def test_hsts_outside_development_only(demo_engine: Engine) -> None:
    with make_client(demo_engine) as production:
        assert_security_headers(production.get("/sign-in"), hsts=True)
    with make_client(demo_engine, dataclasses.replace(SETTINGS, development=True)) as development:
        assert_security_headers(development.get("/sign-in"), hsts=False)


# --- X-Forwarded-For ------------------------------------------------------------------


def test_a_spoofed_forwarded_for_is_ignored_by_default(demo_engine: Engine) -> None:
    with make_client(demo_engine, address=SPOOFED) as c:
        answer = c.get("/test/addr", headers={"x-forwarded-for": VISITOR, "x-forwarded-proto": "http"})
        assert answer.text == f"{SPOOFED} https"
        # The throttle counts the connection's address, not the one claimed.
        token = csrf_from(c.get("/sign-in").text)
        c.post(
            "/sign-in",
            data={"email": "nobody@example.org", "password": "wrong", "csrf_token": token},
            headers={"x-forwarded-for": VISITOR},
        )
    with Session(demo_engine) as s:
        keys = set(s.scalars(select(AuthFailure.key)))
    forget_failed_sign_ins(demo_engine)
    assert f"ip:{SPOOFED}" in keys and f"ip:{VISITOR}" not in keys


def test_forwarded_for_is_honoured_from_a_configured_proxy_only(demo_engine: Engine) -> None:
    settings = dataclasses.replace(SETTINGS, forwarded_allow_ips=f"10.0.0.0/8, {PROXY}")
    with make_client(demo_engine, settings, address=PROXY) as via_proxy:
        answer = via_proxy.get("/test/addr", headers={"x-forwarded-for": f"{SPOOFED}, {VISITOR}"})
        # The proxy appends the address it saw; what the visitor claimed before it counts for nothing.
        assert answer.text == f"{VISITOR} https"
    with make_client(demo_engine, settings, address=SPOOFED) as direct:
        assert direct.get("/test/addr", headers={"x-forwarded-for": VISITOR}).text == f"{SPOOFED} https"


def test_the_setting_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).forwarded_allow_ips == ""
    assert Settings.from_env({"FORWARDED_ALLOW_IPS": "10.1.2.3"}).forwarded_allow_ips == "10.1.2.3"


def test_portal_serve_and_the_procfile_leave_forwarded_headers_to_the_portal(
    demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told not to; the portal decides."""
    from portal.cli import main

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert main(["serve", "--port", "8123"]) == 0
    assert seen["port"] == 8123
    options = {k: v for k, v in seen.items() if k in ("proxy_headers", "forwarded_allow_ips")}
    portal = create_app(SETTINGS, engine=demo_engine, clock=CLOCK)
    portal.add_route("/test/addr", _addr)
    config = uvicorn.Config(portal, **options)
    config.load()
    local = TestClient(config.loaded_app, base_url="https://testserver", client=("127.0.0.1", 5000))
    assert local.get("/test/addr", headers={"x-forwarded-for": VISITOR}).text.startswith("127.0.0.1 ")

    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert "--no-proxy-headers" in web.split() and "--proxy-headers" not in web.split()


# --- form hygiene ----------------------------------------------------------------------


def test_control_characters_are_stripped_from_a_saved_profile_name(
    district_client: TestClient, district: Engine
) -> None:
    sign_in(district_client, "landlord@demo.example")
    page = district_client.get("/my/profile")
    form = {**page.context["form"].values, "csrf_token": csrf_from(page.text)}
    saved = district_client.post(
        "/my/profile", data={**form, "display_name": "Lee\x00 Land\x07lord\u202e\x1b[31m"}, follow_redirects=False
    )
    assert saved.status_code == 303
    assert display_name(district, "landlord@demo.example") == "Lee Landlord[31m"


def test_every_text_field_is_cleaned_and_files_are_left_alone(probe: TestClient) -> None:
    token = csrf_from(probe.get("/sign-in").text)
    text = "line one\r\nline\x00 two\rthree\tend\x7f\x85\u2066"
    plain = probe.post("/test/echo", data={"csrf_token": token, "note": text, "na\x00me": "x"})
    assert plain.json() == {"csrf_token": token, "note": "line one\nline two\nthree\tend", "name": "x"}
    htmx = probe.post("/test/echo", data={"note": "a\x00b"}, headers={"x-csrf-token": token})
    assert htmx.json() == {"note": "ab"}
    upload = probe.post(
        "/test/echo",
        data={"csrf_token": token, "note": text},
        files={"file": ("reads.csv", b"a\x00b\r\nc\x07", "text/csv")},
    )
    assert upload.json() == {
        "csrf_token": token,
        "note": "line one\nline two\nthree\tend",
        "file": "a\x00b\r\nc\x07",
    }
    # A clean form passes through byte for byte.
    clean = probe.post("/test/echo", data={"csrf_token": token, "note": "plain, café"})
    assert clean.json() == {"csrf_token": token, "note": "plain, café"}


def test_the_csrf_token_is_still_checked_after_cleaning(probe: TestClient) -> None:
    token = csrf_from(probe.get("/sign-in").text)
    forged = probe.post("/test/echo", data={"csrf_token": token[:-1] + "\x00"})
    assert forged.status_code == 403


def test_a_search_with_a_nul_byte_is_answered(probe: TestClient) -> None:
    """PostgreSQL refuses NUL in text: a query string with one must not reach it."""
    assert sign_in(probe, "csr@demo.example").status_code == 303
    response = probe.get("/staff", params={"q": "Main\x00 St"})
    assert response.status_code == 200
    assert probe.get("/test/addr?x=%00").status_code == 200


def test_clean_text_rules() -> None:
    clean = form_hygiene.clean_text
    assert clean("a\r\nb\rc\nd\te") == "a\nb\nc\nd\te"
    assert clean("\x00\x01\x08\x0b\x0c\x0e\x1f\x7f\x80\x9f") == ""
    assert clean("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069") == ""
    assert clean("José Ñúñez 李 👩‍👩‍👧") == "José Ñúñez 李 👩‍👩‍👧"


def test_an_identifier_too_big_for_the_database_is_a_404_not_a_500(probe: TestClient) -> None:
    """SQLite cannot bind an integer over 2**63 (OverflowError) and PostgreSQL's integer
    columns stop at 2**31: an address with such a number names nothing."""
    assert sign_in(probe, "supervisor@demo.example").status_code == 303
    huge = "9" * 30
    for path in (
        f"/staff/bill-runs/{huge}",
        f"/staff/reads/{huge}",
        f"/staff/rates/versions/{huge}",
        f"/staff/requests/{huge}",
        f"/staff/arrangements/{huge}",
    ):
        response = probe.get(path, follow_redirects=False)
        assert response.status_code == 404 or response.status_code == 405, (path, response.status_code)
        assert_security_headers(response)
    probe.post("/sign-out", data={"csrf_token": csrf_from(probe.get("/staff").text)})
    assert sign_in(probe, "resident@demo.example").status_code == 303
    page = probe.get("/my")
    number = page.text.split("/my/accounts/", 1)[1].split('"', 1)[0].split("/", 1)[0]
    for path in (
        f"/my/accounts/{number}/bills/{huge}",
        f"/my/accounts/{number}/payments/{huge}",
        f"/my/requests/{huge}",
    ):
        response = probe.get(path, follow_redirects=False)
        assert response.status_code == 404, (path, response.status_code)
