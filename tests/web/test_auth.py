from datetime import datetime, timedelta

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import throttle
from portal.billing_core.models import AuditEvent, User, UserSession
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


# --- Server-side sessions (issue 12 item 1) ------------------------------------------------


class Clock:
    """The app's clock, moved by the test."""

    def __init__(self) -> None:
        self.at = CLOCK()

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def _app_client(demo_engine: Engine, clock: Clock | None = None) -> TestClient:
    return TestClient(create_app(SETTINGS, engine=demo_engine, clock=clock or CLOCK), base_url="https://testserver")


def _copy_of(client: TestClient, demo_engine: Engine, clock: Clock | None = None) -> TestClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    thief = _app_client(demo_engine, clock)
    thief.cookies.set("portal_session", client.cookies["portal_session"], domain="testserver.local")
    return thief


def _signed_in(client: TestClient, path: str = "/my") -> bool:
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (200, 303)
    return response.status_code == 200


def _sessions_of(engine: Engine, email: str) -> list[UserSession]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(UserSession)
                .join(User, User.id == UserSession.user_id)
                .where(User.email == email)
                .order_by(UserSession.id)
            )
        )


def test_a_copied_cookie_is_worthless_after_sign_out(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    copy = _copy_of(client, demo_engine)
    assert _signed_in(copy)  # the copy works while the session lasts...
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    assert not _signed_in(client)
    assert not _signed_in(copy)  # ...and not after sign-out: it ended on the server
    assert _sessions_of(demo_engine, "resident@demo.example")[-1].end_reason == "sign_out"


def test_signing_in_again_ends_the_session_before(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    copy = _copy_of(client, demo_engine)
    sign_in(client, "csr@demo.example")  # the same browser, someone else
    assert _signed_in(client, "/staff")
    assert not _signed_in(copy)
    assert _sessions_of(demo_engine, "resident@demo.example")[-1].end_reason == "signed_in_again"


def test_the_cookie_holds_a_random_id_and_the_database_only_its_hash(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "csr@demo.example")
    raw = client.get("/staff").request.headers["cookie"]
    record = _sessions_of(demo_engine, "csr@demo.example")[-1]
    assert record.ended_at is None and record.remote_addr
    assert record.token_hash not in raw
    sign_in(client, "csr@demo.example")  # signing in again starts a new session
    newer = _sessions_of(demo_engine, "csr@demo.example")[-1]
    assert newer.id != record.id and newer.token_hash != record.token_hash


def test_staff_are_signed_out_after_30_idle_minutes(demo_engine: Engine) -> None:
    clock = Clock()
    staff = _app_client(demo_engine, clock)
    sign_in(staff, "csr@demo.example")
    copy = _copy_of(staff, demo_engine, clock)
    clock.advance(minutes=29)
    assert _signed_in(staff, "/staff")  # activity keeps it going
    clock.advance(minutes=29)
    assert _signed_in(staff, "/staff")
    clock.advance(minutes=30)
    assert not _signed_in(staff, "/staff")
    assert "we signed you out after a while" in staff.get("/sign-in").text  # says why, once
    assert "we signed you out after a while" not in staff.get("/sign-in").text
    assert not _signed_in(copy, "/staff")
    assert _sessions_of(demo_engine, "csr@demo.example")[-1].end_reason == "idle"


def test_staff_sessions_end_after_12_hours_however_busy(demo_engine: Engine) -> None:
    clock = Clock()
    staff = _app_client(demo_engine, clock)
    sign_in(staff, "csr@demo.example")
    for _ in range(12 * 3 - 1):
        clock.advance(minutes=20)
        assert _signed_in(staff, "/staff")
    clock.advance(minutes=20)
    assert not _signed_in(staff, "/staff")
    assert _sessions_of(demo_engine, "csr@demo.example")[-1].end_reason == "expired"


def test_customer_timeouts_are_two_idle_hours_and_eight_in_all(demo_engine: Engine) -> None:
    clock = Clock()
    resident = _app_client(demo_engine, clock)
    sign_in(resident, "resident@demo.example")
    clock.advance(minutes=119)
    assert _signed_in(resident)
    clock.advance(minutes=121)
    assert not _signed_in(resident)
    sign_in(resident, "resident@demo.example")
    for _ in range(7):
        clock.advance(hours=1)
        assert _signed_in(resident)
    clock.advance(hours=1)
    assert not _signed_in(resident)


def test_last_seen_is_written_at_most_once_a_minute(demo_engine: Engine) -> None:
    clock = Clock()
    resident = _app_client(demo_engine, clock)
    sign_in(resident, "resident@demo.example")
    started = _sessions_of(demo_engine, "resident@demo.example")[-1].last_seen_at
    updates: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE USER_SESSION"):
            updates.append(statement)

    event.listen(demo_engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            clock.advance(seconds=10)
            assert _signed_in(resident)
        assert updates == [] and _sessions_of(demo_engine, "resident@demo.example")[-1].last_seen_at == started
        clock.advance(seconds=20)
        assert _signed_in(resident)
        assert len(updates) == 1
    finally:
        event.remove(demo_engine, "before_cursor_execute", count)
    assert _sessions_of(demo_engine, "resident@demo.example")[-1].last_seen_at == clock.at


def test_a_cookie_from_before_server_sessions_signs_nobody_in(demo_engine: Engine) -> None:
    """A cookie signed with the key but naming no session record (as every cookie issued
    before the records existed) is not a sign-in."""
    import base64
    import json

    from itsdangerous import TimestampSigner

    with Session(demo_engine) as s:
        user_id = s.scalar(select(User.id).where(User.email == "resident@demo.example"))
    payload = base64.b64encode(json.dumps({"user_id": user_id, "signed_in_at": CLOCK().isoformat()}).encode())
    forged = TimestampSigner(SETTINGS.secret_key).sign(payload).decode()
    browser = _app_client(demo_engine)
    browser.cookies.set("portal_session", forged, domain="testserver.local")
    assert not _signed_in(browser)
