"""Returned payments and cash only in the money state machine: checks and bank debits paid,
returns recorded by staff (any code, any date: the refused ones write nothing), returns the
processor reports, and a supervisor lifting cash only."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sqlalchemy import func, select

from portal.adapters.database import transaction
from portal.billing_core import ledger, payments, returns
from portal.billing_core.models import Account, LedgerTransaction, Payment
from portal.billing_core.money_policy import DEFAULT
from portal.services import returns as service

from ..money_machine import after_writes, cents


class ReturnsRules:
    """Mixed into ``MoneyMachine`` (which gives ``sessions``, ``accounts``, ``staff``,
    ``today``, ``now``, ``key`` and ``expect_refused``)."""

    @rule(account=st.integers(0, 2), amount=cents, method=st.sampled_from(["check", "bank"]))
    def pay_by_check_or_bank(self, account: int, amount: int, method: str) -> None:
        acct = self.accounts[account]  # type: ignore[attr-defined]
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            payment = Payment(
                account_id=acct,
                amount_cents=amount,
                channel="mail" if method == "check" else "online",
                method=method,
                received_on=self.today,  # type: ignore[attr-defined]
                status="pending",
                check_number="101" if method == "check" else None,
                idempotency_key=self.key("returns-pay"),  # type: ignore[attr-defined]
            )
            session.add(payment)
            session.flush()
            payments.apply(session, payment, "succeeded", self.today, self.now)  # type: ignore[attr-defined]

    def _payment(self, pick: int) -> int | None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            ids = list(session.scalars(select(Payment.id).order_by(Payment.id)))
        return ids[pick % len(ids)] if ids else None

    @rule(
        pick=st.integers(0, 50),
        code=st.sampled_from([*returns.CODES, "R99", ""]),
        days=st.integers(-3, 70),
        who=st.sampled_from(["specialist", "cashier", "csr"]),
    )
    def record_a_return(self, pick: int, code: str, days: int, who: str) -> None:
        payment_id = self._payment(pick)
        if payment_id is None:
            return

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                payment = session.get_one(Payment, payment_id)
                on = payment.received_on + timedelta(days=days)
                service.record_return(
                    session,
                    self.staff[who],  # type: ignore[attr-defined]
                    payment_id,
                    {"reason": code, "on": on.isoformat()},
                    policy=DEFAULT,
                    now=self.now,  # type: ignore[attr-defined]
                )

        self.expect_refused(act)  # type: ignore[attr-defined]

    @rule(pick=st.integers(0, 50), reason=st.sampled_from(["insufficient_funds", "not_authorized", "fraudulent", None]))
    def processor_reports_a_return(self, pick: int, reason: str | None) -> None:
        payment_id = self._payment(pick)
        if payment_id is None:
            return
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            payment = session.get_one(Payment, payment_id)
            if payment.method in returns.METHOD_CODES:
                service.processor_return(session, payment, reason, self.today, self.now, DEFAULT)  # type: ignore[attr-defined]

    @rule(
        account=st.integers(0, 2),
        who=st.sampled_from(["supervisor", "specialist"]),
        reason=st.sampled_from(["", "paid"]),
    )
    def lift_cash_only(self, account: int, who: str, reason: str) -> None:
        number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                service.lift_cash_only(session, self.staff[who], number, reason, now=self.now)  # type: ignore[attr-defined]

        self.expect_refused(act)  # type: ignore[attr-defined]

    @after_writes
    def every_return_has_its_fee_once_and_a_date_after_the_payment(self) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            returned = list(session.scalars(select(Payment).where(Payment.status == "returned")))
            fee_ids = {p.return_fee_transaction_id for p in returned}
            fees = session.scalar(
                select(func.count(LedgerTransaction.id)).where(
                    LedgerTransaction.id.in_([i for i in fee_ids if i is not None]),
                    LedgerTransaction.kind == ledger.Kind.FEE.value,
                )
            )
            for p in returned:
                assert p.return_code in returns.CODES and p.returned_on is not None
                assert p.returned_on >= p.received_on
                assert p.return_fee_transaction_id is not None
            assert fees == len(fee_ids) == len(returned)  # one fee each, none shared

    @after_writes
    def cash_only_accounts_say_since_when(self) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            for account in session.scalars(select(Account).where(Account.cash_only.is_(True))):
                assert account.cash_only_since is not None and account.cash_only_reason
