"""The payment processor behind one small interface.

``StripeGateway`` talks to Stripe (or, in tests, to localstripe) with the official SDK.
``FakeBankGateway`` follows Stripe's documented behaviour for US bank accounts (ACH
Direct Debit), which localstripe does not have: a confirmed debit is ``processing`` for
days, then ``succeeded``, or fails (``requires_payment_method`` with the bank's return
code); a consumer may still return a succeeded debit as unauthorised up to 60 days
later, which Stripe reports as a dispute. Both answer the same contract test.

Card and bank numbers never reach the portal: the browser hands them to Stripe.js,
which gives back a payment method id. The portal keeps ids, a brand and the last four
digits, nothing more. Every call that creates something carries an idempotency key.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import stripe

CARD = "card"
BANK = "us_bank_account"
METHOD_KINDS = (CARD, BANK)


class GatewayError(Exception):
    """The processor refused or could not be reached; ``message`` is safe to show."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class BadEvent(GatewayError):
    """A webhook the portal will not act on: unsigned, too old or from the future, or
    signed but not an event of the shape Stripe sends (answered 400, nothing changes)."""


class BadSignature(BadEvent):
    """A webhook whose signature does not check out: not from the processor."""


#: Stripe's tolerance for a webhook's signed timestamp, either way (a replay from long ago,
#: or a clock or a forger far ahead).
TOLERANCE_SECONDS = 300
#: Stripe ids ("evt_1Nxyz", "pi_3Abc") and event types ("payment_intent.succeeded").
_ID = re.compile(r"[A-Za-z0-9_]{1,100}")
_TYPE = re.compile(r"[a-z0-9_.]{1,60}")
#: Events about these objects are acted on, so their object must say which one it is.
_ACTED_ON = ("payment_intent.", "charge.dispute.")


def parse_signed_event(payload: bytes, header: str, secret: str, now: float | None = None) -> Event:
    """Check a webhook's signature and timestamp, then its shape. Everything that is not a
    recent, signed event of the shape Stripe sends raises ``BadEvent``; nothing else escapes."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("the body is not UTF-8") from None
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance=TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature("signature does not match, or the event is too old") from exc
    # Stripe's library refuses old timestamps only; one far in the future is refused too.
    stamps = [part.strip()[2:] for part in header.split(",") if part.strip().startswith("t=")]
    current = time.time() if now is None else now
    if not stamps or not stamps[0].strip().isascii() or not stamps[0].strip().isdigit():
        raise BadSignature("no timestamp")
    if int(stamps[0]) > current + TOLERANCE_SECONDS:
        raise BadSignature("the event's timestamp is in the future")
    try:
        event = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError):
        raise BadEvent("not JSON") from None
    return _event(event)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _event(event: Any) -> Event:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BadEvent(f"malformed event: {what}")

    need(isinstance(event, dict), "not an object")
    need(isinstance(event.get("id"), str) and bool(_ID.fullmatch(event["id"])), "id")
    need(isinstance(event.get("type"), str) and bool(_TYPE.fullmatch(event["type"])), "type")
    data = event.get("data")
    need(isinstance(data, dict) and isinstance(data.get("object"), dict), "data.object")
    obj = data["object"]
    object_id = obj.get("id")
    need(object_id is None or (isinstance(object_id, str) and bool(_ID.fullmatch(object_id))), "object id")
    if not event["type"].startswith(_ACTED_ON):
        return Event(event["id"], event["type"], object_id or "")  # recorded, not acted on
    need(object_id is not None, "object id")
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):  # expanded
        intent = intent.get("id")
    need(intent is None or (isinstance(intent, str) and bool(_ID.fullmatch(intent))), "payment_intent")
    reason = obj.get("reason")
    need(reason is None or (isinstance(reason, str) and len(reason) <= 100 and reason.isprintable()), "reason")
    return Event(event["id"], event["type"], object_id, intent, reason)


@dataclass(frozen=True)
class Intent:
    """A PaymentIntent or SetupIntent as far as the portal cares."""

    id: str
    status: str
    client_secret: str | None = None
    amount_cents: int = 0
    payment_method: str | None = None
    #: "Visa ending 4242", "Bank account ending 6789": never more than the last four.
    method_label: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    object_id: str
    #: For dispute events: the PaymentIntent the disputed charge belongs to.
    payment_intent: str | None = None
    reason: str | None = None


class PaymentGateway(Protocol):
    publishable_key: str

    def ensure_customer(self, *, email: str | None, name: str, account_number: str, idempotency_key: str) -> str: ...

    def create_setup(self, *, customer: str, kind: str, idempotency_key: str, metadata: dict[str, str]) -> Intent: ...

    def retrieve_setup(self, setup_id: str) -> Intent: ...

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
    ) -> Intent: ...

    def retrieve_payment(self, payment_id: str) -> Intent: ...

    def parse_event(self, payload: bytes, signature: str) -> Event: ...


def _plain(obj: Any) -> dict[str, Any]:
    """A Stripe object as a plain dict (the SDK's objects are not dicts)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _label(pm: Any) -> str | None:
    if not pm or isinstance(pm, str):
        return None
    pm = _plain(pm)
    kind = pm.get("type")
    if kind == "card" and pm.get("card"):
        return f"{str(pm['card'].get('brand', 'card')).capitalize()} •••• {pm['card'].get('last4', '')}"
    if kind == BANK and pm.get(BANK):
        bank = pm[BANK].get("bank_name") or "Bank account"
        return f"{bank} •••• {pm[BANK].get('last4', '')}"
    return None


class StripeGateway:
    def __init__(self, secret_key: str, publishable_key: str, webhook_secret: str, api_base: str = "") -> None:
        self.client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None, max_network_retries=2
        )
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret

    def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except stripe.CardError as exc:
            raise GatewayError(exc.user_message or "The card was declined.", exc.code) from exc
        except stripe.StripeError as exc:
            raise GatewayError("The payment service did not answer as expected. Please try again.") from exc

    def ensure_customer(self, *, email: str | None, name: str, account_number: str, idempotency_key: str) -> str:
        params: dict[str, Any] = {"name": name, "metadata": {"account": account_number}}
        if email:
            params["email"] = email
        customer = self._call(
            self.client.v1.customers.create, params=params, options={"idempotency_key": idempotency_key}
        )
        return customer.id

    def create_setup(self, *, customer: str, kind: str, idempotency_key: str, metadata: dict[str, str]) -> Intent:
        seti = self._call(
            self.client.v1.setup_intents.create,
            params={"customer": customer, "usage": "off_session", "payment_method_types": [kind], "metadata": metadata},
            options={"idempotency_key": idempotency_key},
        )
        return self._setup(seti)

    def retrieve_setup(self, setup_id: str) -> Intent:
        return self._setup(self._call(self.client.v1.setup_intents.retrieve, setup_id))

    def _setup(self, seti: Any) -> Intent:
        seti = _plain(seti)
        pm = seti.get("payment_method")
        pm_id = pm if isinstance(pm, str) or pm is None else pm.get("id")
        label = None
        if pm_id:
            label = _label(self._call(self.client.v1.payment_methods.retrieve, pm_id))
        return Intent(
            id=seti["id"],
            status=seti["status"],
            client_secret=seti.get("client_secret"),
            payment_method=pm_id,
            method_label=label,
            metadata=dict(seti.get("metadata") or {}),
        )

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
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": "usd",
            "customer": customer,
            "payment_method": payment_method,
            "payment_method_types": [kind],
            "metadata": metadata,
            "confirm": True,
        }
        if off_session:
            params["off_session"] = True
        try:
            pi = self.client.v1.payment_intents.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            # Declined at once: Stripe still made the PaymentIntent; report it as failed.
            pi_id = (exc.error.payment_intent or {}).get("id") if exc.error else None
            if pi_id:
                return replace(self.retrieve_payment(pi_id), failure_message=exc.user_message, failure_code=exc.code)
            raise GatewayError(exc.user_message or "The card was declined.", exc.code) from exc
        except stripe.StripeError as exc:
            raise GatewayError("The payment service did not answer as expected. Please try again.") from exc
        return self._payment(pi)

    def retrieve_payment(self, payment_id: str) -> Intent:
        return self._payment(self._call(self.client.v1.payment_intents.retrieve, payment_id))

    def _payment(self, pi: Any) -> Intent:
        pi = _plain(pi)
        error = pi.get("last_payment_error") or {}
        pm = pi.get("payment_method")
        pm_id = pm if isinstance(pm, str) or pm is None else pm.get("id")
        label = _label(self._call(self.client.v1.payment_methods.retrieve, pm_id)) if pm_id else None
        return Intent(
            id=pi["id"],
            status=pi["status"],
            client_secret=pi.get("client_secret"),
            amount_cents=int(pi["amount"]),
            payment_method=pm_id,
            method_label=label,
            failure_code=error.get("code"),
            failure_message=error.get("message"),
            metadata=dict(pi.get("metadata") or {}),
        )

    def parse_event(self, payload: bytes, signature: str) -> Event:
        return parse_signed_event(payload, signature, self.webhook_secret)


# --- Stripe's documented bank-account behaviour, for tests ------------------------------------

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

    def parse_event(self, payload: bytes, signature: str) -> Event:
        return parse_signed_event(payload, signature, self.webhook_secret)


def from_settings(settings) -> PaymentGateway | None:  # type: ignore[no-untyped-def]
    """The configured processor, or None when online payment is not set up."""
    if not settings.stripe_secret_key:
        return None
    return StripeGateway(
        settings.stripe_secret_key,
        settings.stripe_publishable_key,
        settings.stripe_webhook_secret,
        settings.stripe_api_base,
    )
