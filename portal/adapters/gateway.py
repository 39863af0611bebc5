"""The payment processor behind one small interface.

``StripeGateway`` talks to Stripe (or, in tests and the demo, to localstripe) with the
official SDK; it is the only processor the portal ships. The tests add a stand-in for
Stripe's documented bank-account behaviour (``tests/bank_gateway.py``), which localstripe
does not have, behind the same ``PaymentGateway`` interface.

Card and bank numbers never reach the portal: the browser hands them to Stripe.js,
which gives back a payment method id. The portal keeps ids, a brand and the last four
digits, nothing more. Every call that creates something carries an idempotency key.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import stripe

if TYPE_CHECKING:
    from ..settings import Settings

_T = TypeVar("_T")

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


@dataclass(frozen=True)
class RefundResult:
    """A refund as the processor answered it: ``succeeded`` or ``pending`` (on its way
    back to the card), or ``failed`` / ``canceled`` with the processor's message."""

    id: str
    status: str
    amount_cents: int = 0
    failure_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "pending")


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

    def refund(self, processor_payment_id: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        """Refund part or all of a payment to its card or bank account; the same key refunds once."""
        ...

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

    def _call(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
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

    def refund(self, processor_payment_id: str, amount_cents: int, idempotency_key: str) -> RefundResult:
        re = _plain(
            self._call(
                self.client.v1.refunds.create,
                params={"payment_intent": processor_payment_id, "amount": amount_cents},
                options={"idempotency_key": idempotency_key},
            )
        )
        return RefundResult(
            id=re["id"],
            status=str(re.get("status") or "succeeded"),
            amount_cents=int(re.get("amount") or amount_cents),
            failure_message=re.get("failure_reason"),
        )

    def parse_event(self, payload: bytes, signature: str) -> Event:
        return parse_signed_event(payload, signature, self.webhook_secret)


def from_settings(settings: Settings) -> PaymentGateway | None:
    """The configured processor, or None when online payment is not set up."""
    if not settings.stripe_secret_key:
        return None
    return StripeGateway(
        settings.stripe_secret_key,
        settings.stripe_publishable_key,
        settings.stripe_webhook_secret,
        settings.stripe_api_base,
    )
