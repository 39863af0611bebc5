from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import throttle
from portal.billing_core.models import AuditEvent
from portal.settings import Settings
from portal.views.auth import GENERIC_FAILURE

from .conftest import CLOCK, SETTINGS, csrf_from, forget_failed_sign_ins, sign_in


def events(engine: Engine, action: str, label: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action, AuditEvent.actor_label == label)))


def test_sign_in_page_has_labelled_fields(client: TestClient) -> None:
    response = client.get("/sign-in")
    assert response.status_code == 200
    assert response.template.name == "sign_in.html"
    assert '<label for="email">Email address</label>' in response.text
    assert '<label for="password">Password</label>' in response.text
    assert '<main id="main"' in response.text


def test_customer_signs_in_and_is_audited(client: TestClient, demo_engine: Engine) -> None:
    before = len(events(demo_engine, "sign_in.success", "resident@demo.example"))
    response = sign_in(client, "resident@demo.example")
    assert response.status_code == 303 and response.headers["location"] == "/my"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    after = events(demo_engine, "sign_in.success", "resident@demo.example")
    assert len(after) == before + 1 and after[-1].remote_addr


def test_staff_land_on_the_staff_view(client: TestClient) -> None:
    response = sign_in(client, "csr@demo.example")
    assert response.headers["location"] == "/staff"


def test_wrong_credentials_get_one_generic_message(client: TestClient, demo_engine: Engine) -> None:
    wrong_password = sign_in(client, "resident@demo.example", "not the password")
    unknown_email = sign_in(client, "nobody@demo.example", "not the password")
    for response in (wrong_password, unknown_email):
        assert response.status_code == 400
        assert GENERIC_FAILURE in response.text
        assert response.context["error"] == GENERIC_FAILURE
    assert events(demo_engine, "sign_in.failure", "nobody@demo.example")
    assert events(demo_engine, "sign_in.failure", "resident@demo.example")


def test_post_without_csrf_token_is_refused(client: TestClient, demo_engine: Engine) -> None:
    client.get("/sign-in")
    before = len(events(demo_engine, "sign_in.success", "resident@demo.example"))
    response = client.post("/sign-in", data={"email": "resident@demo.example", "password": "demo-password-2026"})
    assert response.status_code == 403
    response = client.post(
        "/sign-in", data={"email": "resident@demo.example", "password": "demo-password-2026", "csrf_token": "forged"}
    )
    assert response.status_code == 403
    assert len(events(demo_engine, "sign_in.success", "resident@demo.example")) == before


def test_csrf_header_works_for_htmx(client: TestClient) -> None:
    sign_in(client, "resident@demo.example")
    token = csrf_from(client.get("/my").text)
    response = client.post("/sign-out", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/my", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session(client: TestClient) -> None:
    sign_in(client, "resident@demo.example")
    token = csrf_from(client.get("/my").text)
    client.post("/sign-out", data={"csrf_token": token})
    response = client.get("/my", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/sign-in?next=/my")


def test_next_only_redirects_within_the_site(client: TestClient) -> None:
    assert sign_in(client, "resident@demo.example", next_url="https://evil.example/").headers["location"] == "/my"
    assert sign_in(client, "resident@demo.example", next_url="//evil.example").headers["location"] == "/my"
    ok = sign_in(client, "resident@demo.example", next_url="/my/accounts/123")
    assert ok.headers["location"] == "/my/accounts/123"


def test_cookie_is_not_secure_only_in_development(demo_engine: Engine) -> None:
    app = create_app(Settings(secret_key="x", development=True), engine=demo_engine, clock=CLOCK)
    with TestClient(app) as c:
        response = sign_in(c, "resident@demo.example")
        assert "secure" not in response.headers["set-cookie"].lower()


def test_htmx_runs_with_eval_and_script_tags_off(client) -> None:  # type: ignore[no-untyped-def]
    """The vendored htmx contains eval (for hx-on and js: values); every page turns it off."""
    page = client.get("/sign-in")
    assert """<meta name="htmx-config" content='{"allowEval": false, "allowScriptTags": false""" in page.text


def _client(demo_engine: Engine, address: str) -> TestClient:
    return TestClient(
        create_app(SETTINGS, engine=demo_engine, clock=CLOCK), base_url="https://testserver", client=(address, 5000)
    )


def test_guessing_a_password_is_slowed_but_the_owner_still_signs_in(demo_engine: Engine) -> None:
    owner, attacker, stranger = (
        _client(demo_engine, "10.0.0.1"),
        _client(demo_engine, "10.0.0.2"),
        _client(demo_engine, "10.0.0.3"),
    )
    try:
        assert sign_in(owner, "resident@demo.example").status_code == 303  # this browser is now known
        for _ in range(throttle.PER_EMAIL):
            assert sign_in(attacker, "resident@demo.example", "wrong guess").status_code == 400
        # Even the right password is refused now from a browser that never signed in here...
        blocked = sign_in(stranger, "resident@demo.example")
        assert blocked.status_code == 429 and "Too many tries" in blocked.text and "15 minutes" in blocked.text
        assert "user_id" not in stranger.cookies.get("portal_session", "")
        # ...but the owner's own browser still gets in.
        assert sign_in(owner, "resident@demo.example").status_code == 303
        assert owner.get("/my").status_code == 200
        with Session(demo_engine) as s:
            assert s.scalar(select(AuditEvent).where(AuditEvent.action == "sign_in.throttled"))
    finally:
        forget_failed_sign_ins(demo_engine)


def test_one_network_address_cannot_try_many_email_addresses(demo_engine: Engine) -> None:
    guesser = _client(demo_engine, "10.0.0.9")
    try:
        for n in range(throttle.PER_ADDRESS):
            assert sign_in(guesser, f"person{n}@example.org", "wrong guess").status_code == 400
        assert sign_in(guesser, "resident@demo.example").status_code == 429
        assert sign_in(_client(demo_engine, "10.0.0.10"), "resident@demo.example").status_code == 303
    finally:
        forget_failed_sign_ins(demo_engine)


def test_a_forged_known_device_mark_counts_for_nothing(demo_engine: Engine) -> None:
    attacker = _client(demo_engine, "10.0.0.11")
    try:
        for _ in range(throttle.PER_EMAIL):
            sign_in(attacker, "resident@demo.example", "wrong guess")
        attacker.cookies.set("portal_device", "WyJhYmMiXQ.forged", domain="testserver")
        assert sign_in(attacker, "resident@demo.example").status_code == 429
    finally:
        forget_failed_sign_ins(demo_engine)


def test_the_browser_is_told_never_to_eval_or_run_scripts_from_elsewhere(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/sign-in", "/no-such-page", "/static/portal.css"):
        policy = client.get(path).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'" and "unsafe-eval" not in policy
        assert directives["frame-ancestors"] == "'none'"
