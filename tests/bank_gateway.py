"""Stripe's documented behaviour for US bank accounts (ACH Direct Debit), which localstripe
does not have, behind the portal's ``PaymentGateway`` interface: a confirmed debit is
``processing`` for days, then ``succeeded``, or fails (``requires_payment_method`` with the
bank's return code); a consumer may still return a succeeded debit as unauthorised up to 60
days later, which Stripe reports as a dispute. Test code only: the portal ships
``StripeGateway`` alone (``portal/adapters/gateway.py``)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from typing import Any

from portal.adapters.gateway import BANK, Event, GatewayError, Intent, RefundResult, parse_signed_event

#: Stripe's test routing and account numbers for ACH Direct Debit and what each does.
#: https://docs.stripe.com/payments/ach-direct-debit/accept-a-payment (test numbers)
BANK_TEST_ACCOUNTS = {
    "000123456789": "succeeds",
    "000111111113": "R01",  # insufficient funds: fails after processing
    "000111111116": "R02",  # account closed
    "000222222227": "R03",  # no account
    "000333333335": "R04",  # invalid account number
}
RETURN_REASONS = {
    "R01": "insufficient_funds",
    "R02": "account_closed",
    "R03": "no_account",
    "R04": "invalid_account_number",
    "R07": "authorization_revoked",
    "R08": "stop_payment",
    "R10": "not_authorized",
}


class FakeBankGateway:
    """Bank debits as Stripe documents them, held in memory, with signed-looking events the
    tests feed to the webhook. Call ``settle`` or ``fail`` to move a processing debit on
    (the days a real debit takes), ``dispute`` to return a succeeded one later."""

    publishable_key = "pk_test_fake"
    webhook_secret = "whsec_fake"

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.customers: dict[str, dict[str, Any]] = {}
        self.setups: dict[str, Intent] = {}
        self.payments: dict[str, Intent] = {}
        self.methods: dict[str, str] = {}  # payment method -> test account number
        self.events: list[dict[str, Any]] = []
        self.keys: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []  # (call, idempotency key)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    def _once(self, key: str, make):  # type: ignore[no-untyped-def]
        if key not in self.keys:
            self.keys[key] = make()
        return self.keys[key]

    def ensure_customer(self, *, email: str | None, name: str, account_number: str, idempotency_key: str) -> str:
        self.calls.append(("customer", idempotency_key))

        def make() -> str:
            cid = self._id("cus")
            self.customers[cid] = {"email": email, "name": name, "account": account_number}
            return cid

        return self._once(idempotency_key, make)

    def create_setup(self, *, customer: str, kind: str, idempotency_key: str, metadata: dict[str, str]) -> Intent:
        self.calls.append(("setup", idempotency_key))

        def make() -> Intent:
            sid = self._id("seti")
            self.setups[sid] = Intent(sid, "requires_payment_method", f"{sid}_secret_x", metadata=dict(metadata))
            return self.setups[sid]

        return self._once(idempotency_key, make)

    def attach_bank_account(self, setup_id: str, account_number: str) -> Intent:
        """What Stripe.js does in the browser: collect the account, accept the mandate."""
        pm = self._id("pm")
        self.methods[pm] = account_number
        self.setups[setup_id] = replace(
            self.setups[setup_id],
            status="succeeded",
            payment_method=pm,
            method_label=f"STRIPE TEST BANK •••• {account_number[-4:]}",
        )
        return self.setups[setup_id]

    def retrieve_setup(self, setup_id: str) -> Intent:
        if setup_id not in self.setups:
            raise GatewayError("No such setup.")
        return self.setups[setup_id]

    def charge(
        self,
        *,
        amount_cents: int,
        customer: str,
        payment_method: str,
        kind: str,
        idempotency_key: str,
        metadata: dict[str, str],
        off_session: bool = False,
    ) -> Intent:
        self.calls.append(("charge", idempotency_key))
        if kind != BANK or payment_method not in self.methods:
            raise GatewayError("This test processor takes bank accounts only.")

        def make() -> Intent:
            pid = self._id("pi")
            intent = Intent(
                pid,
                "processing",
                f"{pid}_secret_x",
                amount_cents,
                payment_method,
                self.setups_label(payment_method),
                metadata=dict(metadata),
            )
            self.payments[pid] = intent
            self._event("payment_intent.processing", pid)
            return intent

        return self._once(idempotency_key, make)

    def setups_label(self, pm: str) -> str:
        return f"STRIPE TEST BANK •••• {self.methods[pm][-4:]}"

    def retrieve_payment(self, payment_id: str) -> Intent:
        return self.payments[payment_id]

    # The days that follow -------------------------------------------------------------

    def settle(self, payment_id: str) -> None:
        """The bank's answer arrives: success, or the return code of the test account."""
        intent = self.payments[payment_id]
        assert intent.status == "processing", intent.status
        outcome = BANK_TEST_ACCOUNTS.get(self.methods[intent.payment_method or ""], "succeeds")
        if outcome == "succeeds":
            self.payments[payment_id] = replace(intent, status="succeeded")
            self._event("payment_intent.succeeded", payment_id)
        else:
            self.payments[payment_id] = replace(
                intent,
                status="requires_payment_method",
                failure_code=RETURN_REASONS[outcome],
                failure_message=f"The bank returned the debit ({outcome}).",
            )
            self._event("payment_intent.payment_failed", payment_id)

    def dispute(self, payment_id: str, code: str = "R10") -> None:
        """A consumer returns a succeeded debit as unauthorised (up to 60 days later)."""
        assert self.payments[payment_id].status == "succeeded"
        charge_id = "py_" + payment_id
        self.events.append(
            {
                "id": self._id("evt"),
                "type": "charge.dispute.created",
                "data": {
                    "object": {
                        "id": self._id("du"),
                        "charge": charge_id,
                        "payment_intent": payment_id,
                        "reason": RETURN_REASONS[code],
                    }
                },
            }
        )

    def _event(self, kind: str, payment_id: str) -> None:
        self.events.append({"id": self._id("evt"), "type": kind, "data": {"object": {"id": payment_id}}})

    def signed(self, event: dict[str, Any], timestamp: int) -> tuple[bytes, str]:
        """The event as Stripe sends it: JSON body and Stripe-Signature header."""
        import hashlib
        import hmac

        payload = json.dumps(event).encode()
        sig = hmac.new(self.webhook_secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        return payload, f"t={timestamp},v1={sig}"

    #: Set to a message to make every refund fail with it (the processor refusing).
    refuse_refunds: str | None = None

    def refund(self, processor_payment_id: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        self.calls.append(("refund", idempotency_key))
        if self.refuse_refunds:
            raise GatewayError(self.refuse_refunds)

        def make() -> RefundResult:
            if processor_payment_id not in self.payments:
                raise GatewayError(f"No such payment: {processor_payment_id}")
            return RefundResult(self._id("re"), "succeeded", amount_cents)

        return self._once(f"refund:{idempotency_key}", make)

    def parse_event(self, payload: bytes, signature: str) -> Event:
        return parse_signed_event(payload, signature, self.webhook_secret)
