"""The residents and staff of the due-date spike, for locust (run by ``bench/load/run.py``).

Never import this from ``portal/`` or ``tests/``: locust monkey-patches the standard
library with gevent on import.

Each resident visit is what a person does in a browser: sign in (the CSRF token read from
the form), the accounts page, the account page, one bill, sometimes the bill's PDF, and
sometimes a card payment: the pay form, the card page, the card saved on localstripe's
SetupIntent exactly as the stand-in Stripe.js does (``/v1/setup_intents/{id}/confirm``
with test card 4242 4242 4242 4242), then the portal asked to charge it (what
``portal/static/pay.js`` posts), and the receipt; then sign out. Staff sign in once and
search accounts as they type (htmx), opening an account now and then.

Everything comes from the JSON file named by ``LOAD_CONFIG`` (written by run.py): the
sign-ins, localstripe's address, the phases. At the end the payments locust made and the
server errors it saw are written to ``LOAD_RESULTS``.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from locust import HttpUser, LoadTestShape, constant_pacing, events, task

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LOAD_CONFIG"]).read_text())
RESULTS = Path(os.environ["LOAD_RESULTS"])
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ATTEMPT = re.compile(r'name="attempt" value="([^"]+)"')
DATA = re.compile(r'data-(secret|csrf|key)="([^"]+)"')
#: One picker for the whole run (gevent: one thread), so users take residents in turn.
_residents = itertools.cycle(CONFIG["residents"])
_staff = itertools.cycle(CONFIG["staff"])
PAID: list[dict[str, Any]] = []
#: Connections to localstripe dropped and tried again (not the portal's doing), why.
STAND_IN_RETRIES: list[str] = []
SERVER_ERRORS: Counter[str] = Counter()
STATUS: Counter[str] = Counter()
#: Response times (ms) by phase and page, and visits begun by phase.
TIMES: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
VISITS: Counter[str] = Counter()
STARTED = [0.0]
random.seed(CONFIG.get("seed", 1))


def phase() -> str:
    t = time.monotonic() - STARTED[0]
    if t < CONFIG["steady_seconds"]:
        return "steady"
    return "spike" if t < CONFIG["steady_seconds"] + CONFIG["spike_seconds"] else "drain"


@events.test_start.add_listener
def _started(**_: Any) -> None:
    STARTED[0] = time.monotonic()


@events.request.add_listener
def _count(request_type: str, name: str, response: Any, exception: Any, response_time: float, **_: Any) -> None:
    code = getattr(response, "status_code", 0) or 0
    STATUS[str(code)] += 1
    if code >= 500:
        SERVER_ERRORS[f"{request_type} {name} {code}"] += 1
    label = name if name.startswith(("POST ", "localstripe")) or request_type == "GET" else f"{request_type} {name}"
    TIMES[phase()][label].append(response_time)


@events.quitting.add_listener
def _write_results(environment: Any, **_: Any) -> None:
    """Locust's own final figures per page (the ones it prints), and this run's extras."""
    pages = {}
    for entry in [*environment.stats.entries.values(), environment.stats.total]:
        if entry is environment.stats.total:
            name = "Aggregated"
        elif entry.method == "GET" or entry.name.startswith(("POST ", "localstripe")):
            name = entry.name
        else:
            name = f"{entry.method} {entry.name}"
        pages[name] = {
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "rps": entry.total_rps,
            "p50": entry.get_response_time_percentile(0.5),
            "p95": entry.get_response_time_percentile(0.95),
            "p99": entry.get_response_time_percentile(0.99),
            "max": entry.max_response_time,
        }
    RESULTS.write_text(
        json.dumps(
            {
                "paid": PAID,
                "server_errors": SERVER_ERRORS,
                "status": STATUS,
                "pages": pages,
                "times": TIMES,
                "visits": VISITS,
                "stand_in_retries": STAND_IN_RETRIES,
                "failures": {
                    f"{e.method} {e.name}: {e.error}": e.occurrences for e in environment.stats.errors.values()
                },
                # Exceptions raised in a visit (a page not shaped as expected, ...), by message.
                "exceptions": {e["msg"]: e["count"] for e in (environment.runner.exceptions or {}).values()},
            },
            indent=1,
        )
    )


def _find(pattern: re.Pattern[str], text: str, what: str) -> str:
    match = pattern.search(text)
    if match is None:
        raise LookupError(f"no {what} on the page")
    return match.group(1)


class Visitor(HttpUser):
    abstract = True

    def get_page(self, path: str, name: str, headers: dict[str, str] | None = None) -> str:
        with self.client.get(path, name=name, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code} on {path}")
                raise _Stop()
            return response.text

    def sign_in(self, email: str, password: str, home: str) -> bool:
        self.client.cookies.clear()
        form = self.get_page("/sign-in", "/sign-in")
        data = {"csrf_token": _find(CSRF, form, "CSRF token"), "next": "", "email": email, "password": password}
        with self.client.post("/sign-in", data=data, name="POST /sign-in", catch_response=True) as response:
            if response.status_code != 200 or not response.url.rstrip("/").endswith(home.rstrip("/")):
                response.failure(f"sign-in as {email} ended on {response.status_code} {response.url}")
                return False
            self.last_page = response.text
        return True

    def sign_out(self) -> None:
        token = CSRF.search(self.last_page)
        if token:
            self.client.post("/sign-out", data={"csrf_token": token.group(1)}, name="POST /sign-out")


class _Stop(Exception):
    """A page did not answer as a browser expects: this visit ends (the failure is counted)."""


class Resident(Visitor):
    """One resident's visit every ``pace`` seconds (a steady arrival rate per user)."""

    wait_time = constant_pacing(CONFIG["pace"])

    @task
    def visit(self) -> None:
        resident = next(_residents)
        VISITS[phase()] += 1
        number = resident["account"]
        try:
            if not self.sign_in(resident["email"], CONFIG["password"], "/my"):
                return
            account = self.last_page = self.get_page(f"/my/accounts/{number}", "/my/accounts/[n]")
            bills = re.findall(rf'href="/my/accounts/{number}/bills/([^"/]+)"', account)
            if bills:
                bill = random.choice(bills[:3])
                self.get_page(f"/my/accounts/{number}/bills/{bill}", "/my/accounts/[n]/bills/[b]")
                if random.random() < CONFIG["pdf_share"]:
                    with self.client.get(
                        f"/my/accounts/{number}/bills/{bill}/pdf",
                        name="/my/accounts/[n]/bills/[b]/pdf",
                        catch_response=True,
                    ) as response:
                        if response.status_code != 200 or not response.content.startswith(b"%PDF"):
                            response.failure(f"no PDF: {response.status_code}")
            if random.random() < CONFIG["pay_share"]:
                self.pay(number)
            self.sign_out()
        except (_Stop, LookupError) as exc:
            if isinstance(exc, LookupError):
                events.request.fire(
                    request_type="PAGE", name="page shape", response_time=0, response_length=0, exception=exc
                )

    def pay(self, number: str) -> None:
        pay_form = self.get_page(f"/my/accounts/{number}/pay", "/my/accounts/[n]/pay")
        attempt = _find(ATTEMPT, pay_form, "attempt")
        cents = random.randint(CONFIG["min_cents"], CONFIG["max_cents"])
        form = {
            "csrf_token": _find(CSRF, pay_form, "CSRF token"),
            "attempt": attempt,
            "choice": "other",
            "other_amount": f"{cents // 100}.{cents % 100:02d}",
            "method": "card",
        }
        with self.client.post(
            f"/my/accounts/{number}/pay", data=form, name="POST /my/accounts/[n]/pay", catch_response=True
        ) as response:
            if response.status_code != 200 or not response.url.endswith(f"/pay/{attempt}"):
                response.failure(f"pay form answered {response.status_code} at {response.url}")
                return
            card_page = response.text
        data = dict(DATA.findall(card_page))
        secret = data["secret"]
        setup_id = secret.split("_secret_")[0]
        # What the stand-in Stripe.js does with the card Element (localstripe-v3.js). A
        # connection that localstripe (one process, on these busy cores) drops is tried once more,
        # as a person would press Pay again; the first try is counted under its own name.
        for name in ("localstripe: confirm SetupIntent", "localstripe: confirm SetupIntent, tried again"):
            with self.client.post(
                f"{CONFIG['stripe_url']}/v1/setup_intents/{setup_id}/confirm",
                json={
                    "key": data["key"],
                    "use_stripe_sdk": True,
                    "client_secret": secret,
                    "payment_method_data": {
                        "type": "card",
                        "card": {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"},
                        "billing_details": {"address": {"postal_code": "91710"}},
                    },
                },
                name=name,
                catch_response=True,
            ) as response:
                if response.status_code == 0 and name.endswith("confirm SetupIntent"):
                    STAND_IN_RETRIES.append(repr(response.error)[:200])
                    response.success()
                    continue
                if response.status_code != 200 or response.json().get("status") != "succeeded":
                    response.failure(f"localstripe did not save the card: {response.status_code} {response.error!r}")
                    return
                break
        # What pay.js posts once the card is saved. Noted before it is sent: if the answer
        # never comes (the run ends first), the checker finds the payment by its form.
        sent = {"account": number, "payment": None, "cents": cents, "attempt": attempt, "phase": phase()}
        PAID.append(sent)
        with self.client.post(
            f"/my/accounts/{number}/pay/{attempt}",
            headers={"X-CSRF-Token": data["csrf"], "Accept": "application/json"},
            name="POST /my/accounts/[n]/pay/[attempt]",
            catch_response=True,
        ) as response:
            answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
            if response.status_code != 200 or "next" not in answer:
                response.failure(f"charge answered {response.status_code}: {response.text[:200]}")
                return
        sent["payment"] = int(answer["next"].rsplit("/", 1)[1])
        self.last_page = self.get_page(answer["next"], "/my/accounts/[n]/payments/[p]")


class Staff(Visitor):
    """Office staff searching as they type, opening an account now and then."""

    fixed_count = CONFIG["staff_users"]
    wait_time = constant_pacing(CONFIG["staff_pace"])

    def on_start(self) -> None:
        email = next(_staff)
        self.signed_in = self.sign_in(email, CONFIG["password"], "/staff")

    @task
    def search(self) -> None:
        if not self.signed_in:
            self.on_start()
            return
        term = random.choice(CONFIG["search_terms"])
        try:
            results = ""
            for end in range(3, len(term) + 1, 2):  # as they type: htmx asks on each pause
                results = self.get_page(f"/staff?q={term[:end]}", "/staff?q=[term] (htmx)", {"HX-Request": "true"})
            self.last_page = self.get_page(f"/staff?q={term}", "/staff?q=[term]")
            numbers = re.findall(r'href="/staff/accounts/([^"/]+)"', results or self.last_page)
            if numbers and random.random() < CONFIG["staff_open_share"]:
                self.get_page(f"/staff/accounts/{random.choice(numbers)}", "/staff/accounts/[n]")
        except _Stop:
            pass


class DueDateSpike(LoadTestShape):
    """A steady phase, then the due-date spike at ``spike`` residents (10x by default)."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        staff = CONFIG["staff_users"]
        if t < CONFIG["steady_seconds"]:
            return CONFIG["steady_users"] + staff, CONFIG["steady_users"] + staff
        if t < CONFIG["steady_seconds"] + CONFIG["spike_seconds"]:
            return CONFIG["spike_users"] + staff, CONFIG["spawn_rate"]
        return None
