"""The e2e run's log (issue 17: ops): a resident signs in with a password and pays by card
against localstripe; the portal's log lines name the route, the status and the user's id,
each with a request id, and hold neither the password, nor the card number, nor the CVC.
(No staff form takes a bank routing number, so none is typed here; the session's end greps
the whole run's log for every card and password the journeys use: ``e2e/conftest.py``.)"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import posting
from portal.billing_core.models import Account, UserAccountLink
from portal.billing_core.users import create_user

from .conftest import LiveServer

PASSWORD = "log-grep kettle 93"  # also in conftest.LOG_SECRETS
CARD = "4242424242424242"
CVC = "857"
#: The CVC as a whole value (quoted, or after "=", and ending there), not the start of a
#: duration or of an id that happens to begin with it (a request id "857f...").
CVC_AS_VALUE = re.compile(rf"[\"'=]{CVC}(?=[\"'&,;}}\s]|$)")


def test_a_card_payment_leaves_no_card_or_password_in_the_log(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    try:
        with Session(engine) as s, s.begin():
            owing = [
                a
                for a in s.scalars(
                    select(Account)
                    .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
                    .order_by(Account.number.desc())
                    .limit(12)
                )
                if posting.account_balance(s, a.id) > 0
            ]
            number = owing[0].number
            email = f"logs-{number}@example.net"
            user = create_user(s, email, PASSWORD, "customer", number, now=datetime(2026, 11, 20, tzinfo=UTC))
            s.flush()
            user_id = user.id
    finally:
        engine.dispose()

    page.goto(live_server.url + "/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name=re.compile(rf"View account {number}")).click()
    page.get_by_role("link", name="Pay now").click()
    page.get_by_label("Debit or credit card").check()
    page.get_by_role("button", name="Continue").click()
    card = page.locator("#card-element")
    card.get_by_placeholder("number").fill(CARD)
    card.get_by_placeholder("exp_month").fill("12")
    card.get_by_placeholder("exp_year").fill("30")
    card.get_by_placeholder("cvc").fill(CVC)
    card.get_by_placeholder("postal_code").fill("91710")
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=15_000)

    logged = Path(live_server.log_path).read_text(encoding="utf-8")
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("logger") == "portal.access" and line.get("user_id") == user_id]
    routes = {(line["method"], line["route"], line["status"]) for line in mine}
    assert any(m == "POST" and route == "/my/accounts/{number}/pay/{attempt}" for m, route, _ in routes), routes
    assert ("GET", "/my/accounts/{number}", 200) in routes
    assert all(re.fullmatch(r"[0-9a-f]{32}", line["request_id"]) for line in mine), [
        (x["route"], x["request_id"]) for x in mine
    ]
    assert not [line for line in lines if line.get("logger") == "portal.access" and email in json.dumps(line)]
    assert PASSWORD not in logged and CARD not in logged and "4242 4242 4242 4242" not in logged
    assert not CVC_AS_VALUE.search(logged)


def test_the_cvc_check_finds_the_value_and_not_an_id_that_starts_with_it() -> None:
    assert CVC_AS_VALUE.search('{"cvc": "857"}') and CVC_AS_VALUE.search("card[cvc]=857&x=1")
    assert CVC_AS_VALUE.search("cvc=857")
    assert not CVC_AS_VALUE.search('{"request_id": "857fa0c1d2e3", "duration_ms": 8575}')
