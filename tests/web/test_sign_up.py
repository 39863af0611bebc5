"""Signing up, confirming the address, resetting a password and linking accounts."""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal import jobs
from portal.app import create_app
from portal.billing_core import throttle, users
from portal.billing_core.models import (
    Account,
    AuditEvent,
    Bill,
    Premise,
    User,
    UserAccountLink,
    UserSession,
    UserToken,
)

from .conftest import CLOCK, SETTINGS, csrf_from, forget_failed_sign_ins, link_in, linked_numbers, mail_to, sign_in

PASSWORD = "a long enough password"


def new_email() -> str:
    return f"new-{uuid.uuid4().hex[:10]}@example.net"


def sign_up(client: TestClient, email: str, password: str = PASSWORD, again: str | None = None):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/sign-up").text)
    return client.post(
        "/sign-up",
        data={
            "csrf_token": token,
            "email": email,
            "name": "Pat Resident",
            "password": password,
            "password_again": password if again is None else again,
        },
    )


def confirm(client: TestClient, inbox: list, email: str):  # type: ignore[no-untyped-def]
    (message,) = [m for m in mail_to(inbox, email) if "Confirm" in m["Subject"]][-1:]
    page = client.get(link_in(message, "/confirm-email"))
    assert page.status_code == 200 and page.context["valid"]
    token = page.context["token"]
    return client.post(
        "/confirm-email", data={"csrf_token": csrf_from(page.text), "token": token}, follow_redirects=False
    )


def latest_bill_facts(engine: Engine, number: str) -> tuple[str, str]:
    with Session(engine) as s:
        zip_code = s.scalar(
            select(Premise.zip).join(Account, Account.premise_id == Premise.id).where(Account.number == number)
        )
        total = s.scalar(
            select(Bill.total_due_cents)
            .join(Account, Account.id == Bill.account_id)
            .where(Account.number == number, Bill.status == "posted")
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(1)
        )
    return zip_code, f"{Decimal(total) / 100:.2f}"


def link(client: TestClient, number: str, zip_code: str, amount: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/my/link").text)
    return client.post(
        "/my/link",
        data={"csrf_token": token, "account_number": number, "service_zip": zip_code, "amount_due": amount},
        follow_redirects=False,
    )


def test_sign_up_confirm_and_link_an_account(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    response = sign_up(client, email)
    assert response.status_code == 200 and response.template.name == "account/check_email.html"
    # Not signed in until the address is confirmed.
    assert client.get("/my", follow_redirects=False).status_code == 303
    with Session(demo_engine) as s:
        user = s.scalar(select(User).where(User.email == email))
        assert user.role == "customer" and user.email_verified_at is None and user.accounts == []
        token_hashes = list(s.scalars(select(UserToken.token_hash).where(UserToken.user_id == user.id)))
    message = mail_to(inbox, email)[-1]
    raw = link_in(message, "/confirm-email").split("token=")[1]
    assert raw not in token_hashes and len(token_hashes) == 1  # only its hash is kept

    # The password works but the address is not confirmed yet: a new link is sent.
    response = sign_in(client, email, PASSWORD)
    assert response.status_code == 400 and "confirm your email" in response.text
    assert len(mail_to(inbox, email)) == 2

    response = confirm(client, inbox, email)
    assert response.status_code == 303 and response.headers["location"] == "/my/link"
    assert "Your email address is confirmed" in client.get("/my/link").text
    # The link works once.
    old = client.get(link_in(mail_to(inbox, email)[-1], "/confirm-email"))
    assert old.status_code == 400 and not old.context["valid"]

    number = other_unlinked_account(demo_engine)
    zip_code, amount = latest_bill_facts(demo_engine, number)
    response = link(client, number, zip_code, "$" + amount)
    assert response.status_code == 303 and response.headers["location"] == f"/my/accounts/{number}"
    assert linked_numbers(demo_engine, email) == [number]
    assert client.get(f"/my/accounts/{number}").status_code == 200


def other_unlinked_account(engine: Engine) -> str:
    with Session(engine) as s:
        return s.scalars(
            select(Account.number)
            .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
            .order_by(Account.number.desc())
        ).first()


def test_the_same_answer_whether_or_not_the_address_is_known(client: TestClient, inbox: list) -> None:
    known = sign_up(client, "resident@demo.example")
    unknown = sign_up(client, new_email())
    assert known.status_code == unknown.status_code == 200
    assert known.template.name == unknown.template.name == "account/check_email.html"
    # The owner of the known address is told, by email, that they already have a sign-in.
    told = mail_to(inbox, "resident@demo.example")[-1]
    assert "already have a sign-in" in told["Subject"]
    assert "/forgot-password" in link_in(told, "/forgot-password")


def test_sign_up_mistakes_are_shown_next_to_their_fields(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        before = s.scalar(select(func.count(User.id)))
    for email, password, again, field in [
        ("not-an-email", PASSWORD, None, "email"),
        (new_email(), "short", None, "password"),
        (new_email(), PASSWORD, "something else entirely", "password_again"),
    ]:
        response = sign_up(client, email, password, again)
        assert response.status_code == 400
        assert field in response.context["form"].errors
        assert f'id="{field}-error"' in response.text
        assert re.search(rf'aria-describedby="[^"]*{field}-error"', response.text)
    with Session(demo_engine) as s:
        assert s.scalar(select(func.count(User.id))) == before


def test_password_reset_by_emailed_link(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    # Unknown addresses get the same page and no email.
    for address in (email, "nobody-" + email):
        page = client.get("/forgot-password")
        response = client.post("/forgot-password", data={"csrf_token": csrf_from(page.text), "email": address})
        assert response.status_code == 200 and response.context["sent"]
    assert mail_to(inbox, "nobody-" + email) == []
    path = link_in(mail_to(inbox, email)[-1], "/reset-password")
    page = client.get(path)
    assert page.status_code == 200 and page.context["valid"]
    token = page.context["token"]
    bad = client.post(
        "/reset-password",
        data={"csrf_token": csrf_from(page.text), "token": token, "password": "short", "password_again": "short"},
    )
    assert bad.status_code == 400 and "password" in bad.context["form"].errors
    done = client.post(
        "/reset-password",
        data={
            "csrf_token": csrf_from(page.text),
            "token": token,
            "password": "a brand new password",
            "password_again": "a brand new password",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/my"
    assert client.get("/my").status_code == 200
    again = client.get(path)
    assert again.status_code == 400 and not again.context["valid"]
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    assert sign_in(client, email, PASSWORD).status_code == 400
    assert sign_in(client, email, "a brand new password").status_code == 303


def test_a_password_reset_signs_out_other_browsers(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    assert client.get("/my").status_code == 200
    with Session(demo_engine) as s, s.begin():
        user = s.scalar(select(User).where(User.email == email))
        later = CLOCK() + timedelta(hours=1)
        raw = users.issue_token(s, user, users.RESET_PASSWORD, later)
        users.reset_password(s, raw, "another long password", later)
    # This browser signed in before the change: it is signed out.
    assert client.get("/my", follow_redirects=False).status_code == 303


def test_linking_needs_all_three_facts_and_is_slowed(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    number = other_unlinked_account(demo_engine)
    zip_code, amount = latest_bill_facts(demo_engine, number)
    wrong = [
        (number, "00000", amount),
        (number, zip_code, str(Decimal(amount) + 1)),
        ("00000000", zip_code, amount),
    ]
    for attempt in wrong:
        response = link(client, *attempt)
        assert response.status_code == 400
        assert response.context["form"].errors["account_number"] == users.LINK_FAILED
    bad_input = link(client, number, "9171", "lots")
    assert bad_input.status_code == 400 and set(bad_input.context["form"].errors) == {"service_zip"}
    assert linked_numbers(demo_engine, email) == []
    for _ in range(users.LINK_PER_USER - len(wrong)):
        link(client, number, zip_code, "0.01")
    # Past the limit, even the right facts are not checked, and the answer is the same.
    response = link(client, number, zip_code, amount)
    assert response.status_code == 400
    assert response.context["form"].errors["account_number"] == users.LINK_FAILED
    assert linked_numbers(demo_engine, email) == []
    with Session(demo_engine) as s:
        assert (
            s.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action == "account.link_failed", AuditEvent.actor_label == email
                )
            )
            >= 3
        )


def test_staff_cannot_use_the_customer_pages_to_link(client: TestClient) -> None:
    sign_in(client, "csr@demo.example")
    assert client.get("/my/link").status_code == 404


# --- Linking: every limit enforced, none reset by a success (issue 12 item 3) ----------------


def _from(demo_engine: Engine, address: str, smtp: tuple[int, list] | None = None) -> TestClient:
    """A browser at another network address (with the test mail server when given)."""
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0]) if smtp else SETTINGS
    return TestClient(
        create_app(settings, engine=demo_engine, clock=CLOCK), base_url="https://testserver", client=(address, 5000)
    )


def _confirmed_customer(engine: Engine) -> str:
    """A new confirmed customer sign-in with nothing linked."""
    email = new_email()
    with Session(engine) as s, s.begin():
        users.sign_up(s, email, PASSWORD, "en").user.email_verified_at = CLOCK()
    return email


def _unlinked_accounts(engine: Engine, count: int) -> list[str]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(Account.number)
                .join(Bill, Bill.account_id == Account.id)
                .where(Account.id.not_in(select(UserAccountLink.account_id)), Bill.status == "posted")
                .group_by(Account.number)
                .order_by(Account.number.desc())
                .limit(count)
            )
        )


def _refusal(response) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 400
    return response.context["form"].errors["account_number"]


def test_a_successful_link_does_not_reset_the_failure_count(demo_engine: Engine) -> None:
    browser = _from(demo_engine, "10.2.0.1")
    try:
        email = _confirmed_customer(demo_engine)
        assert sign_in(browser, email, PASSWORD).status_code == 303
        first, second = _unlinked_accounts(demo_engine, 2)
        for _ in range(users.LINK_PER_USER - 1):
            assert _refusal(link(browser, second, "00000", "1.00")) == users.LINK_FAILED
        zip_code, amount = latest_bill_facts(demo_engine, first)
        assert link(browser, first, zip_code, amount).status_code == 303  # one account they hold...
        assert _refusal(link(browser, second, "00000", "1.00")) == users.LINK_FAILED
        # ...bought no fresh guesses: the limit is reached, even the right facts are refused.
        zip_code, amount = latest_bill_facts(demo_engine, second)
        assert _refusal(link(browser, second, zip_code, amount)) == users.LINK_FAILED
        assert linked_numbers(demo_engine, email) == [first]
    finally:
        forget_failed_sign_ins(demo_engine)


def test_one_network_address_cannot_guess_with_many_sign_ins(demo_engine: Engine) -> None:
    guesser = _from(demo_engine, "10.2.0.2")
    try:
        (target,) = _unlinked_accounts(demo_engine, 1)
        numbers = [n for n in _unlinked_accounts(demo_engine, 8) if n != target]
        tries = 0
        while tries < throttle.LINK_PER_ADDRESS:
            guesser.cookies.clear()
            assert sign_in(guesser, _confirmed_customer(demo_engine), PASSWORD).status_code == 303
            # Under each sign-in's own limit, and spread over account numbers.
            for _ in range(users.LINK_PER_USER - 1):
                if tries < throttle.LINK_PER_ADDRESS:
                    assert _refusal(link(guesser, numbers[tries % len(numbers)], "00000", "1.00")) == users.LINK_FAILED
                    tries += 1
        guesser.cookies.clear()
        assert sign_in(guesser, _confirmed_customer(demo_engine), PASSWORD).status_code == 303
        zip_code, amount = latest_bill_facts(demo_engine, target)
        assert _refusal(link(guesser, target, zip_code, amount)) == users.LINK_FAILED
        # The same sign-in and facts from another network address go through.
        other = _from(demo_engine, "10.2.0.3")
        email = _confirmed_customer(demo_engine)
        assert sign_in(other, email, PASSWORD).status_code == 303
        assert link(other, target, zip_code, amount).status_code == 303
    finally:
        forget_failed_sign_ins(demo_engine)


def test_one_account_number_cannot_be_guessed_from_many_places(demo_engine: Engine) -> None:
    try:
        (target,) = _unlinked_accounts(demo_engine, 1)
        tries = 0
        for n in range(users.LINK_PER_ACCOUNT):
            if tries == users.LINK_PER_ACCOUNT:
                break
            browser = _from(demo_engine, f"10.3.0.{n + 1}")
            assert sign_in(browser, _confirmed_customer(demo_engine), PASSWORD).status_code == 303
            for _ in range(min(users.LINK_PER_USER - 1, users.LINK_PER_ACCOUNT - tries)):
                assert _refusal(link(browser, target, "00000", "1.00")) == users.LINK_FAILED
                tries += 1
        owner = _from(demo_engine, "10.3.1.1")
        assert sign_in(owner, _confirmed_customer(demo_engine), PASSWORD).status_code == 303
        zip_code, amount = latest_bill_facts(demo_engine, target)
        # A fresh sign-in from a fresh address with the right facts: the account's limit holds.
        assert _refusal(link(owner, target, zip_code, amount)) == users.LINK_FAILED
        with Session(demo_engine) as s:
            assert s.scalar(
                select(AuditEvent.id).where(
                    AuditEvent.action == "account.link_failed", AuditEvent.detail.like("too many tries%")
                )
            )
    finally:
        forget_failed_sign_ins(demo_engine)


# --- Sign-up and reset: no timing tell, slowed per address and per email (item 4) -----------


class Watched:
    """The app, noting the SQL run and the emails handed to jobs before the response's
    last byte went out."""

    def __init__(self, app, engine: Engine) -> None:  # type: ignore[no-untyped-def]
        self.app, self.engine = app, engine
        self.statements: list[str] = []
        self.deferred: list[dict] = []
        self.before_response: tuple[list[str], list[dict]] | None = None

    def _note(self, conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        self.statements.append(statement.split(" WHERE ")[0].strip())

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        self.statements, self.deferred, self.before_response = [], [], None

        async def watched_send(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.before_response = (list(self.statements), list(self.deferred))
            await send(message)

        event.listen(self.engine, "before_cursor_execute", self._note)
        try:
            await self.app(scope, receive, watched_send)
        finally:
            event.remove(self.engine, "before_cursor_execute", self._note)


@pytest.fixture
def watched(demo_engine: Engine, smtp, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    app = Watched(create_app(settings, engine=demo_engine, clock=CLOCK), demo_engine)
    real_defer, real_queue, real_send = jobs.defer, jobs.queue_email, jobs.send_queued
    app.queued = []

    inside_defer = []

    def defer(settings, name, sessions=None, **kwargs):  # type: ignore[no-untyped-def]
        app.deferred.append({"name": name, **kwargs})
        inside_defer.append(True)
        try:
            return real_defer(settings, name, sessions, **kwargs)
        finally:
            inside_defer.pop()

    def queue_email(settings, name, sessions=None, **kwargs):  # type: ignore[no-untyped-def]
        outbox_id = real_queue(settings, name, sessions, **kwargs)
        app.queued.append({"name": name, "outbox_id": outbox_id, **kwargs})
        return outbox_id

    def send_queued(settings, sessions, outbox_id):  # type: ignore[no-untyped-def]
        # Sending is what must wait for the answer; record it as the work done after it.
        if not inside_defer:  # (defer queues and sends: counted once, as the defer)
            kind = next((q["kind"] for q in app.queued if q["outbox_id"] == outbox_id), None)
            app.deferred.append({"name": "send_queued", "outbox_id": outbox_id, "kind": kind})
        return real_send(settings, sessions, outbox_id)

    monkeypatch.setattr(jobs, "defer", defer)
    monkeypatch.setattr(jobs, "queue_email", queue_email)
    monkeypatch.setattr(jobs, "send_queued", send_queued)
    with TestClient(app, base_url="https://testserver") as c:
        yield app, c
    forget_failed_sign_ins(demo_engine)


def _forgot(client: TestClient, email: str):  # type: ignore[no-untyped-def]
    page = client.get("/forgot-password")
    return client.post("/forgot-password", data={"csrf_token": csrf_from(page.text), "email": email})


def test_a_reset_answers_known_and_unknown_addresses_after_the_same_work(watched, inbox: list) -> None:  # type: ignore[no-untyped-def]
    app, client = watched
    answers = {}
    for address in ("resident@demo.example", new_email()):
        response = _forgot(client, address)
        assert response.status_code == 200 and response.context["sent"]
        statements, deferred = app.before_response
        assert deferred == []  # no email is written or sent before the answer is out
        answers[address] = (statements, response.text.replace(address, "ADDRESS"))
        # The email goes after the answer, and only to an address with a sign-in.
        assert [d["kind"] for d in app.deferred] == (["reset_password"] if "demo" in address else [])
    (known_sql, known_page), (unknown_sql, unknown_page) = answers.values()
    assert known_sql == unknown_sql
    assert known_page == unknown_page
    assert "new password" in mail_to(inbox, "resident@demo.example")[-1]["Subject"]


def test_a_sign_up_answers_known_and_unknown_addresses_after_the_same_work(  # type: ignore[no-untyped-def]
    watched, inbox: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = watched
    hashes: list[str] = []

    class Counting:
        def __init__(self, real) -> None:  # type: ignore[no-untyped-def]
            self.real = real

        def hash(self, password: str) -> str:
            hashes.append(password)
            return self.real.hash(password)

        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(self.real, name)

    monkeypatch.setattr(users, "_hasher", Counting(users._hasher))
    answers = {}
    for address in ("resident@demo.example", new_email()):
        hashes.clear()
        app.queued.clear()
        response = sign_up(client, address)
        assert response.status_code == 200 and response.template.name == "account/check_email.html"
        statements, deferred = app.before_response
        # One email is queued (an outbox row) either way, so the page can say it is on its
        # way; nothing is sent before the answer is out.
        assert deferred == [] and len(hashes) == 1
        answers[address] = statements
        expected = ["already_registered"] if "demo" in address else ["confirm_email"]
        assert [q["kind"] for q in app.queued] == expected
        assert [d["kind"] for d in app.deferred] == expected
    known, unknown = answers.values()
    # The same statements, but for the new sign-in's own row.
    assert [s for s in unknown if not s.startswith("INSERT INTO user_account")] == known
    assert len(unknown) == len(known) + 1


def test_sign_ups_are_slowed_per_network_address_and_per_email(demo_engine: Engine) -> None:
    browser, elsewhere = _from(demo_engine, "10.4.0.1"), _from(demo_engine, "10.4.0.2")
    try:
        for _ in range(throttle.SIGN_UP_PER_ADDRESS):
            assert sign_up(browser, new_email()).status_code == 200
        refused = sign_up(browser, new_email())
        assert refused.status_code == 429 and "Too many tries" in refused.context["form"].errors["email"]
        assert sign_up(elsewhere, new_email()).status_code == 200  # other addresses are not slowed
        email = new_email()
        for n in range(throttle.SIGN_UP_PER_EMAIL):  # one address, from many places
            assert sign_up(_from(demo_engine, f"10.4.1.{n}"), email).status_code == 200
        refused = sign_up(_from(demo_engine, "10.4.2.2"), email)
        assert refused.status_code == 429
        # Even signing in from the address that signed up too often still works.
        assert sign_in(browser, "resident@demo.example").status_code == 303
    finally:
        forget_failed_sign_ins(demo_engine)


def test_reset_requests_are_slowed_but_never_slow_signing_in(demo_engine: Engine, smtp, inbox: list) -> None:  # type: ignore[no-untyped-def]
    browser = _from(demo_engine, "10.5.0.1")
    try:
        for _ in range(throttle.RESET_PER_ADDRESS):
            assert _forgot(browser, new_email()).status_code == 200
        refused = _forgot(browser, new_email())
        assert refused.status_code == 429 and "Too many tries" in refused.context["form"].errors["email"]
        # The same address signs in as usual: reset requests are counted apart.
        assert sign_in(browser, "resident@demo.example").status_code == 303
        before = len(mail_to(inbox, "pastdue@demo.example"))
        for n in range(throttle.RESET_PER_EMAIL):
            assert _forgot(_from(demo_engine, f"10.5.1.{n}", smtp), "pastdue@demo.example").status_code == 200
        assert _forgot(_from(demo_engine, "10.5.2.1"), "pastdue@demo.example").status_code == 429
        assert len(mail_to(inbox, "pastdue@demo.example")) == before + throttle.RESET_PER_EMAIL
        assert sign_in(_from(demo_engine, "10.5.2.1"), "pastdue@demo.example").status_code == 303
    finally:
        forget_failed_sign_ins(demo_engine)


# --- A reset ends every other session (item 1) ----------------------------------------------


def test_a_reset_through_the_emailed_link_ends_every_other_session(
    client: TestClient,
    demo_engine: Engine,
    smtp,
    inbox: list,  # type: ignore[no-untyped-def]
) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    assert client.get("/my").status_code == 200
    other = _from(demo_engine, "10.6.0.1", smtp)
    assert _forgot(other, email).status_code == 200
    page = other.get(link_in(mail_to(inbox, email)[-1], "/reset-password"))
    done = other.post(
        "/reset-password",
        data={
            "csrf_token": csrf_from(page.text),
            "token": page.context["token"],
            "password": "a brand new password",
            "password_again": "a brand new password",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and other.get("/my").status_code == 200
    assert client.get("/my", follow_redirects=False).status_code == 303
    with Session(demo_engine) as s:
        records = list(
            s.scalars(
                select(UserSession)
                .join(User, User.id == UserSession.user_id)
                .where(User.email == email)
                .order_by(UserSession.id)
            )
        )
    assert [r.end_reason for r in records] == ["password", None]
