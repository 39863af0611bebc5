"""Deposits and refunds for the money state machine: billed, cancelled, credited back by the
daily run, applied at a final bill (the rest asked back as a refund); refunds asked for,
approved or rejected by someone else, paid to the card (sometimes refused) or by check."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sqlalchemy import func, select

from portal.adapters.database import transaction
from portal.adapters.gateway import GatewayError, RefundResult
from portal.billing_core import deposits as deposit_rules
from portal.billing_core import refunds as refund_rules
from portal.billing_core.models import Account, Deposit, Refund
from portal.billing_core.money_policy import DEFAULT
from portal.billing_core.status import DepositStatus, RefundStatus
from portal.services import deposits, refunds

from ..money_machine import after_writes

amounts = st.sampled_from(["", "50", "75.25", "120.00", "0", "12.345", "-5", "abc"])
refund_amounts = st.sampled_from(["1.00", "5", "25.50", "100", "400", "0", "9.999", "x"])
roles = st.sampled_from(["csr", "specialist", "cashier", "supervisor", "supervisor2", "admin"])


class _Gateway:
    """Refunds every card payment, once per key, unless told to refuse."""

    def __init__(self) -> None:
        self.refuse = False
        self.done: dict[str, RefundResult] = {}

    def refund(self, processor_payment_id: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        if self.refuse:
            raise GatewayError("The card issuer refused the refund.")
        return self.done.setdefault(idempotency_key, RefundResult(f"re_{idempotency_key}", "succeeded", amount_cents))


class DepositRefundRules:
    @rule(
        account=st.integers(0, 2), amount=amounts, reason=st.sampled_from(["new_customer", "other", "bogus"]), who=roles
    )
    def bill_deposit(self, account: int, amount: str, reason: str, who: str) -> None:
        number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]
        self.expect_refused(  # type: ignore[attr-defined]
            lambda: deposits.bill(
                self.sessions,
                DEFAULT,
                self.staff[who],
                number,
                amount=amount,
                reason=reason,  # type: ignore[attr-defined]
                note="machine",
                on=self.today,
                now=self.now,  # type: ignore[attr-defined]
            )
        )

    def _some(self, model: type, status: str, pick: int) -> int | None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            ids = list(session.scalars(select(model.id).where(model.status == status).order_by(model.id)))  # type: ignore[attr-defined]
        return ids[pick % len(ids)] if ids else None

    @rule(pick=st.integers(0, 10), who=roles)
    def cancel_deposit(self, pick: int, who: str) -> None:
        deposit_id = self._some(Deposit, DepositStatus.BILLED.value, pick)
        if deposit_id is not None:
            self.expect_refused(  # type: ignore[attr-defined]
                lambda: deposits.cancel(
                    self.sessions, self.staff[who], deposit_id, "billed in error", self.today, self.now
                )  # type: ignore[attr-defined]
            )

    @rule()
    def run_deposits(self) -> None:
        first = deposits.run(self.sessions, DEFAULT, self.today, self.now)  # type: ignore[attr-defined]
        assert deposits.run(self.sessions, DEFAULT, self.today, self.now) == []  # type: ignore[attr-defined]
        assert len(set(first)) == len(first)

    @rule(account=st.integers(0, 2))
    def final_bill_applies_deposits(self, account: int) -> None:
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            acct = session.get(Account, self.accounts[account])  # type: ignore[attr-defined]
            assert acct is not None
            deposits.apply_at_final(session, acct, self.staff["specialist"], self.today, self.now)  # type: ignore[attr-defined]

    @rule(
        account=st.integers(0, 2), amount=refund_amounts, method=st.sampled_from(["check", "card", "cash"]), who=roles
    )
    def ask_refund(self, account: int, amount: str, method: str, who: str) -> None:
        number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]
        self.expect_refused(  # type: ignore[attr-defined]
            lambda: refunds.request(
                self.sessions,
                self.staff[who],
                number,
                amount=amount,
                method=method,
                reason="machine",
                now=self.now,  # type: ignore[attr-defined]
            )
        )

    @rule(pick=st.integers(0, 10), who=roles, approve=st.booleans())
    def decide_refund(self, pick: int, who: str, approve: bool) -> None:
        refund_id = self._some(Refund, RefundStatus.REQUESTED.value, pick)
        if refund_id is None:
            return
        if approve:
            self.expect_refused(
                lambda: refunds.approve(self.sessions, self.staff[who], refund_id, self.today, self.now)
            )  # type: ignore[attr-defined]
        else:
            self.expect_refused(lambda: refunds.reject(self.sessions, self.staff[who], refund_id, "no", self.now))  # type: ignore[attr-defined]

    @rule(pick=st.integers(0, 10), refuse=st.booleans())
    def pay_card_refund(self, pick: int, refuse: bool) -> None:
        refund_id = self._some(Refund, RefundStatus.APPROVED.value, pick)
        if refund_id is None:
            return
        gateway = getattr(self, "_refund_gateway", None) or _Gateway()
        self._refund_gateway = gateway
        gateway.refuse = refuse
        self.expect_refused(
            lambda: refunds.pay_card(self.sessions, gateway, self.staff["supervisor"], refund_id, self.today, self.now)  # type: ignore[attr-defined, arg-type]
        )

    @rule()
    def export_checks(self) -> None:
        _text, ids = refunds.export_checks(self.sessions, self.staff["specialist"], self.today, self.now)  # type: ignore[attr-defined]
        _again, none = refunds.export_checks(self.sessions, self.staff["specialist"], self.today, self.now)  # type: ignore[attr-defined]
        assert none == [] and len(set(ids)) == len(ids)

    @after_writes
    def deposits_owed_at_most_as_billed_and_refunds_payable_as_approved(self) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            for account_id in self.accounts:  # type: ignore[attr-defined]
                billed = int(
                    session.scalar(
                        select(func.coalesce(func.sum(Deposit.amount_cents), 0)).where(
                            Deposit.account_id == account_id,
                            Deposit.status != DepositStatus.CANCELLED.value,
                        )
                    )
                    or 0
                )
                # What is owed as deposit never exceeds the deposits billed and not cancelled.
                assert deposit_rules.open_deposit_cents(session, account_id) <= billed
                assert deposit_rules.held_cents(session, account_id) >= 0
            # No refund is approved or paid without its transaction, and what is payable is
            # what is approved (``refunds.ledger_problems``, also in the base's check): the
            # whole ledger, so once, not once an account.
            assert refund_rules.ledger_problems(session) == []
