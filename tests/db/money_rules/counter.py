"""Counter payments and cash drawers in the money state machine: drawers opened, payments
taken into them (every tender, split across accounts, cash with change), drawers closed
with a count that may be over or short, and signed off by a supervisor or refused for the
cashier. Invariant: every drawer's payments sum to its receipts, and its expected cash is
its float plus its cash payments (the ledger check also verifies the over/short postings)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sqlalchemy import func, select

from portal.adapters.database import transaction
from portal.billing_core import drawers as drawer_rules
from portal.billing_core.models import CashDrawer, CounterReceipt, Payment
from portal.services import counter

from ..money_machine import after_writes

CASHIERS = st.sampled_from(["cashier", "cashier2"])
TENDERS = st.sampled_from(["cash", "check", "card", "money_order"])


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class CounterRules:
    @rule(who=CASHIERS, float_cents=st.integers(0, 50_000))
    def open_drawer(self, who: str, float_cents: int) -> None:
        def go() -> None:
            with transaction(self.sessions) as s:  # type: ignore[attr-defined]
                counter.open_drawer(s, self.staff[who], "Counter", _dollars(float_cents), self.today, self.now)  # type: ignore[attr-defined]

        self.expect_refused(go)  # type: ignore[attr-defined]

    @rule(
        who=CASHIERS,
        shares=st.lists(st.tuples(st.integers(0, 2), st.integers(1, 30_000)), min_size=1, max_size=3),
        tender=TENDERS,
        extra=st.integers(-500, 5_000),
    )
    def take_payment(self, who: str, shares: list[tuple[int, int]], tender: str, extra: int) -> None:
        lines = [counter.Line(self.numbers[self.accounts[i]], _dollars(c)) for i, c in shares]  # type: ignore[attr-defined]
        total = sum(c for _i, c in shares)
        tendered = _dollars(max(total + extra, 1)) if tender == "cash" else ""
        payment = counter.Tender(tender, tendered=tendered, check_number="101", approval_code="OK12")

        def go() -> None:
            with transaction(self.sessions) as s:  # type: ignore[attr-defined]
                counter.take_payment(s, self.staff[who], lines, payment, self.now)  # type: ignore[attr-defined]

        self.expect_refused(go)  # type: ignore[attr-defined]

    @rule(who=CASHIERS, off=st.integers(-300, 300), reason=st.booleans())
    def close_drawer(self, who: str, off: int, reason: bool) -> None:
        def go() -> None:
            with transaction(self.sessions) as s:  # type: ignore[attr-defined]
                drawer = drawer_rules.open_drawer_of(s, self.staff[who].id)  # type: ignore[attr-defined]
                if drawer is None:
                    return
                expect = drawer_rules.expected(s, drawer)
                cash = max(int(expect["cash_cents"]) + off, 0)
                data = {
                    "cash": {"1": cash},
                    "checks": [
                        {"number": c["number"] or "x", "amount": _dollars(c["amount_cents"])} for c in expect["checks"]
                    ],
                    "card": _dollars(int(expect["card_cents"])),
                }
                counter.close_drawer_from_file(
                    s,
                    self.staff[who],
                    drawer.id,
                    data,
                    "counted" if reason else "",
                    self.now,  # type: ignore[attr-defined]
                )

        self.expect_refused(go)  # type: ignore[attr-defined]

    @rule(who=st.sampled_from(["supervisor", "supervisor2", "cashier"]))
    def sign_off(self, who: str) -> None:
        def go() -> None:
            with transaction(self.sessions) as s:  # type: ignore[attr-defined]
                drawer_id = s.scalar(select(CashDrawer.id).where(CashDrawer.status == "closed").limit(1))
                if drawer_id is not None:
                    counter.sign_off(s, self.staff[who], drawer_id, "", self.today, self.now)  # type: ignore[attr-defined]

        self.expect_refused(go)  # type: ignore[attr-defined]

    @after_writes
    def drawers_equal_their_payments(self) -> None:
        with self.sessions() as s:  # type: ignore[attr-defined]
            for receipt_id, total in s.execute(select(CounterReceipt.id, CounterReceipt.total_cents)):
                paid = s.scalar(select(func.sum(Payment.amount_cents)).where(Payment.receipt_id == receipt_id))
                assert paid == total
            for drawer in s.scalars(select(CashDrawer)):
                cash = s.scalar(
                    select(func.coalesce(func.sum(CounterReceipt.total_cents), 0)).where(
                        CounterReceipt.drawer_id == drawer.id, CounterReceipt.tender == "cash"
                    )
                )
                assert drawer_rules.expected(s, drawer)["cash_cents"] == drawer.float_cents + int(cash or 0)
