"""The log processor that keeps card, bank and password data out of every log line, and the
request id an incoming request may bring (issue 17: ops)."""

from __future__ import annotations

import json
import logging

from portal import observability
from portal.observability import REDACTED, redact, request_id


def test_secret_keys_are_blanked_at_any_depth() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "form posted",
            "password": "hunter2 hunter2",
            "new_password": "x",
            "card_number": "4242424242424242",
            "cvc": "857",
            "routing_number": "110000000",
            "account_number": "000123456789",
            "Authorization": "Bearer abc.def",
            "cookie": "portal_session=zzz",
            "csrf_token": "t0k3n",
            "form": {"email": "a@example.org", "bank": {"routing": "110000000", "account_number": "000123456789"}},
            "headers": [{"set-cookie": "s=1"}],
            "pan": "4000002760003184",
            "account": "10042",
            "amount_cents": 12_500,
            "company": "Water Co",
        },
    )
    for key in ("password", "new_password", "card_number", "cvc", "routing_number", "account_number"):
        assert event[key] == REDACTED, key
    assert event["Authorization"] == event["cookie"] == event["csrf_token"] == event["pan"] == REDACTED
    assert event["form"]["bank"] == {"routing": REDACTED, "account_number": REDACTED}
    assert event["form"]["email"] == "a@example.org"
    assert event["headers"] == [{"set-cookie": REDACTED}]
    # What is not secret stays: the utility's account, amounts, words that only contain "pan".
    assert (event["account"], event["amount_cents"], event["company"]) == ("10042", 12_500, "Water Co")


def test_card_like_numbers_and_secrets_in_text_are_scrubbed() -> None:
    event = redact(
        None,
        "info",
        {
            "event": "charge 4242 4242 4242 4242 then 4000-0027-6000-3184 and 378282246310005",
            "url": "/pay?card_number=4242424242424242&password=river+stone&next=/my",
            "exception": "ValueError: bad header Authorization: Bearer sk_live_abc123",
            "note": "account 1234567890 (10 digits) on bill 2026-11-22, ref 000123456789",
            "number": 4242424242424242,
            "ids": [1, 2, 4000002760003184],
            "short": "pwd=abc",
            "ids_in_words": "request 3f1234567890123456789abc, pm_card_4242424242424242",
        },
    )
    assert "4242" not in event["event"] and "3184" not in event["event"] and "378282" not in event["event"]
    assert event["event"].count(REDACTED) == 3
    assert "river" not in event["url"] and "4242" not in event["url"] and "next=/my" in event["url"]
    assert "sk_live_abc123" not in event["exception"]
    assert event["number"] == REDACTED and event["ids"] == [1, 2, REDACTED] and event["short"] == f"pwd={REDACTED}"
    # Digits inside a hex id are no card; after an underscore they are.
    assert event["ids_in_words"] == f"request 3f1234567890123456789abc, pm_card_{REDACTED}"
    # Shorter numbers (accounts, dates, references under 13 digits) are not card numbers.
    assert event["note"] == "account 1234567890 (10 digits) on bill 2026-11-22, ref 000123456789"


def test_a_standard_library_line_is_json_and_redacted(capsys) -> None:  # type: ignore[no-untyped-def]
    handler = logging.StreamHandler()
    handler.setFormatter(observability.formatter())
    log = logging.getLogger("tests.observability")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("paid with %s", "4242424242424242", extra={"password": "river stone garden", "user_id": 7})
    finally:
        log.removeHandler(handler)
        log.propagate = True
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == f"paid with {REDACTED}" and line["password"] == REDACTED and line["user_id"] == 7
    assert line["level"] == "warning" and line["logger"] == "tests.observability" and "timestamp" in line


def test_an_incoming_request_id_is_kept_only_when_it_is_a_safe_token() -> None:
    def scope(value: bytes) -> dict:
        return {"headers": [(b"x-request-id", value)]}

    assert request_id(scope(b"edge-7f3a.2:1")) == "edge-7f3a.2:1"
    for unsafe in (b"two words", b"line\nbreak", b'{"json": 1}', b"x" * 101, b"", b"-leading"):
        generated = request_id(scope(unsafe))
        assert generated != unsafe.decode("latin-1") and len(generated) == 32
    assert request_id({"headers": []}) != request_id({"headers": []})
