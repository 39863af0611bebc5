"""localstripe, a stateful fake Stripe server, run for the tests on a free port."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

SECRET_KEY = "sk_test_portal"
PUBLISHABLE_KEY = "pk_test_portal"
WEBHOOK_SECRET = "whsec_portal_tests"


@dataclass(frozen=True)
class LocalStripe:
    url: str

    @property
    def js_url(self) -> str:
        return f"{self.url}/js.stripe.com/v3/"

    def confirm_card_setup(self, setup_id: str, client_secret: str, number: str) -> dict:
        """What the stand-in Stripe.js does in the browser with the card Element."""
        response = httpx.post(
            f"{self.url}/v1/setup_intents/{setup_id}/confirm",
            json={
                "key": PUBLISHABLE_KEY,
                "use_stripe_sdk": True,
                "client_secret": client_secret,
                "payment_method_data": {
                    "type": "card",
                    "card": {"number": number, "exp_month": "12", "exp_year": "2030", "cvc": "123"},
                    "billing_details": {"address": {"postal_code": "91710"}},
                },
            },
        )
        return response.json()

    def events(self, kind: str) -> list[dict]:
        response = httpx.get(f"{self.url}/v1/events", params={"type": kind, "limit": 100}, auth=(SECRET_KEY, ""))
        return response.json()["data"]

    def register_webhook(self, name: str, url: str) -> None:
        httpx.post(
            f"{self.url}/_config/webhooks/{name}", data={"url": url, "secret": WEBHOOK_SECRET}
        ).raise_for_status()


def signed(event: dict, timestamp: int, secret: str = WEBHOOK_SECRET) -> tuple[bytes, str]:
    """An event as Stripe delivers it: the JSON body and its Stripe-Signature header."""
    payload = json.dumps(event).encode()
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, f"t={timestamp},v1={digest}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def localstripe() -> Iterator[LocalStripe]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/js.stripe.com/v3/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        yield LocalStripe(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
