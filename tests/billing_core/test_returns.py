"""The rules of returned payments, without a database: reasons, windows, what may be returned."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from portal.billing_core import returns
from portal.billing_core.models import Payment

MONDAY = date(2026, 3, 2)


def payment(method: str = "bank", status: str = "posted", received_on: date = MONDAY) -> Payment:
    return Payment(
        id=7, amount_cents=1000, channel="online", method=method, status=status, received_on=received_on,
        ledger_transaction_id=1 if status in ("posted", "returned") else None,
    )  # fmt: skip


def test_every_code_has_words_and_a_window() -> None:
    assert set(returns.CODES) == set(returns.LABELS) == set(returns.WINDOWS)
    assert returns.CODES == ("NSF", "R01", "R02", "R03", "R04", "R07", "R08", "R10", "DISPUTE")


def test_the_windows() -> None:
    # Two banking days for R01-R04 and R08: a Friday's payment may come back by Tuesday.
    friday = date(2026, 3, 6)
    for code in ("R01", "R02", "R03", "R04", "R08"):
        assert returns.WINDOWS[code].last_day(friday) == date(2026, 3, 10)
    # Over a holiday (Thanksgiving and the day after are closed).
    assert returns.WINDOWS["R01"].last_day(date(2026, 11, 25)) == date(2026, 12, 1)
    # Consumer "unauthorized" returns: 60 calendar days.
    assert returns.WINDOWS["R07"].last_day(MONDAY) == returns.WINDOWS["R10"].last_day(MONDAY) == date(2026, 5, 1)
    assert returns.WINDOWS["NSF"].last_day(MONDAY) == date(2026, 3, 16)
    assert returns.WINDOWS["DISPUTE"].last_day(MONDAY) == MONDAY + timedelta(days=120)


def test_which_payments_may_come_back_with_which_codes() -> None:
    assert returns.returnable(payment("check")) and returns.returnable(payment("bank"))
    assert returns.returnable(payment("card"))
    assert not returns.returnable(payment("cash")) and not returns.returnable(payment("money_order"))
    assert not returns.returnable(payment("bank", "pending")) and not returns.returnable(payment("bank", "returned"))
    assert returns.problems(payment("check"), "NSF", MONDAY) == {}
    assert returns.problems(payment("check"), "r08", MONDAY) == {}  # a converted check; any case
    assert set(returns.problems(payment("bank"), "NSF", MONDAY)) == {"reason"}
    assert set(returns.problems(payment("card"), "R10", MONDAY)) == {"reason"}
    assert set(returns.problems(payment("cash"), "NSF", MONDAY)) == {"payment"}
    assert set(returns.problems(payment("bank", "failed"), "R01", MONDAY)) == {"payment"}


@pytest.mark.parametrize(
    ("code", "on", "ok"),
    [
        ("R01", MONDAY, True),
        ("R01", MONDAY + timedelta(days=2), True),
        ("R01", MONDAY + timedelta(days=3), False),
        ("R10", MONDAY + timedelta(days=60), True),
        ("R10", MONDAY + timedelta(days=61), False),
        ("R07", MONDAY - timedelta(days=1), False),
    ],
)
def test_a_return_outside_its_window_is_refused_with_the_date(code: str, on: date, ok: bool) -> None:
    errors = returns.problems(payment("bank"), code, on)
    assert (errors == {}) is ok
    if not ok:
        assert set(errors) == {"on"}
    assert returns.problems(payment("bank"), code, on, check_window=False).keys() <= ({"on"} if on < MONDAY else set())


def test_the_processors_words_become_codes() -> None:
    bank, card = payment("bank"), payment("card")
    assert returns.code_from_processor(card, "fraudulent") == "DISPUTE"
    assert returns.code_from_processor(bank, "insufficient_funds") == "R01"
    assert returns.code_from_processor(bank, "account_closed") == "R02"
    assert returns.code_from_processor(bank, "no_account") == "R03"
    assert returns.code_from_processor(bank, "invalid_account_number") == "R04"
    assert returns.code_from_processor(bank, "authorization_revoked") == "R07"
    assert returns.code_from_processor(bank, "stop_payment") == "R08"
    assert returns.code_from_processor(bank, "not_authorized") == "R10"
    assert returns.code_from_processor(bank, "r02") == "R02"
    assert returns.code_from_processor(bank, None) == "R10"


def test_months_are_counted_by_the_calendar() -> None:
    assert returns.add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)
    assert returns.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert returns.add_months(date(2026, 12, 5), 1) == date(2027, 1, 5)
    assert returns.add_months(date(2026, 1, 15), -12) == date(2025, 1, 15)
