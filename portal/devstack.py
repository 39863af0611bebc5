"""Demo stand-ins, so the demo works end to end with nothing configured: a local Stripe
(localstripe, with the portal's webhook registered, so "Pay" and "Autopay" work with
Stripe's test cards) and a mail catcher (aiosmtpd) whose messages a person reads at
``/dev/outbox``.

``portal serve`` starts them when ``PORTAL_DEMO_STANDINS=1`` (``scripts/run-demo`` sets
it), points the portal's settings at them and prints where everything is. They are for a
developer's own machine: with stand-ins on, the portal refuses to start unless
``PORTAL_DEVELOPMENT=1`` and it serves only this machine (a loopback host and public URL).
Install them with ``scripts/setup --demo`` (the ``demo`` extra).
"""

from __future__ import annotations

import atexit
import email
import email.policy
import ipaddress
import itertools
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .billing_core.errors import BillingError
from .settings import Settings

TEST_CARD = "4242 4242 4242 4242"
THREE_D_SECURE_CARD = "4000 0027 6000 3184"
WEBHOOK_NAME = "portal"
OUTBOX_PATH = "/dev/outbox"


class StandinsRefused(BillingError):
    """The demo stand-ins were asked for where they must not run."""


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(settings: Settings, host: str | None = None) -> None:
    """Refuse stand-ins outside development, or serving anything but this machine (``host``:
    the address served on; without it, the public URL's)."""
    if not settings.demo_standins:
        return
    if not settings.development:
        raise StandinsRefused(
            "PORTAL_DEMO_STANDINS=1 is refused without PORTAL_DEVELOPMENT=1: the demo stand-ins (a fake Stripe "
            "and a mail catcher anyone can read) are for a developer's own machine, never for production."
        )
    for what, name in (("host", host), ("public URL", urlsplit(settings.public_url).hostname)):
        if name is not None and not is_loopback(name):
            raise StandinsRefused(
                f"PORTAL_DEMO_STANDINS=1 serves this machine only (127.0.0.1 or localhost), and the {what} is "
                f"{name}. Serve on 127.0.0.1, or turn the stand-ins off."
            )


def outbox_dir(settings: Settings) -> Path:
    """Where the mail catcher keeps what it receives, one ``.eml`` file each."""
    return Path(settings.files_dir) / "dev-outbox"


# --- The mail catcher --------------------------------------------------------------------


class _Catcher:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        name = f"{time.time_ns()}-{next(self.count)}.eml"
        tmp = self.folder / (name + ".tmp")
        tmp.write_bytes(envelope.content)
        os.replace(tmp, self.folder / name)
        return "250 OK: kept for the demo outbox"


@dataclass(frozen=True)
class Message:
    name: str
    to: str
    subject: str
    date: str
    body: str = ""


def messages(settings: Settings, limit: int = 200) -> list[Message]:
    """What the catcher received, newest first (headers only)."""
    folder = outbox_dir(settings)
    if not folder.is_dir():
        return []
    names = sorted((p.name for p in folder.glob("*.eml")), key=_order, reverse=True)[:limit]
    return [m for m in (read_message(settings, n, body=False) for n in names) if m is not None]


def _order(name: str) -> tuple[int, int]:
    stamp, _, rest = name.partition("-")
    return int(stamp), int(rest.split(".")[0])


def read_message(settings: Settings, name: str, body: bool = True) -> Message | None:
    """One caught message by its file name (nothing outside the outbox folder is read)."""
    stamp, _, rest = name.partition("-")
    if not (stamp.isdigit() and rest.endswith(".eml") and rest[:-4].isdigit()):
        return None
    path = outbox_dir(settings) / name
    if not path.is_file():
        return None
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = ""
    if body:
        part = msg.get_body(preferencelist=("plain", "html"))
        text = part.get_content() if part is not None else ""
    return Message(name, str(msg.get("To", "")), str(msg.get("Subject", "")), str(msg.get("Date", "")), text)


# --- Starting them -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Standins:
    portal_url: str
    stripe_url: str
    smtp_port: int
    outbox: Path
    _stop: list[Any] = field(default_factory=list, repr=False)

    @property
    def outbox_url(self) -> str:
        return self.portal_url + OUTBOX_PATH

    def stop(self) -> None:
        while self._stop:
            try:
                self._stop.pop()()
            except Exception:  # noqa: BLE001 - stopping is best effort
                pass


def start(
    settings: Settings, host: str, port: int, env: MutableMapping[str, str] | None = None, quiet: bool = False
) -> Standins | None:
    """Start the stand-ins for a portal about to serve on ``host:port`` and point the
    portal's settings (``env``, default the process environment) at them. None when
    ``PORTAL_DEMO_STANDINS`` is off. Stops them when the process exits."""
    if not settings.demo_standins:
        return None
    check(settings, host)
    try:
        import localstripe  # noqa: F401
        from aiosmtpd.controller import Controller
    except ImportError:
        raise StandinsRefused(
            "the demo stand-ins are not installed: run scripts/setup --demo (the 'demo' extra: localstripe, aiosmtpd)"
        ) from None
    env = os.environ if env is None else env
    shown = "localhost" if host == "localhost" else host
    portal_url = f"http://{shown}:{port}"
    standins = Standins(portal_url, "", 0, outbox_dir(settings))
    try:
        standins.outbox.mkdir(parents=True, exist_ok=True)
        standins.smtp_port = _free_port()
        controller = Controller(_Catcher(standins.outbox), hostname="127.0.0.1", port=standins.smtp_port)
        controller.start()
        standins._stop.append(controller.stop)

        stripe_port = _free_port()
        log = (Path(settings.files_dir) / "localstripe.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "localstripe", "--port", str(stripe_port), "--from-scratch"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        standins._stop.append(lambda: (proc.terminate(), proc.wait(timeout=10), log.close()))
        standins.stripe_url = f"http://127.0.0.1:{stripe_port}"
        _wait_for(standins.stripe_url + "/js.stripe.com/v3/", proc, log.name)
        webhook_secret = "whsec_demo_" + secrets.token_hex(12)
        _post(
            f"{standins.stripe_url}/_config/webhooks/{WEBHOOK_NAME}",
            {"url": f"http://127.0.0.1:{port}/webhooks/stripe", "secret": webhook_secret},
        )
    except BaseException:
        standins.stop()
        raise
    atexit.register(standins.stop)
    env.update(
        {
            "STRIPE_SECRET_KEY": "sk_test_demo_standin",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_demo_standin",
            "STRIPE_WEBHOOK_SECRET": webhook_secret,
            "STRIPE_API_BASE": standins.stripe_url,
            "STRIPE_JS_URL": standins.stripe_url + "/js.stripe.com/v3/",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(standins.smtp_port),
            "SMTP_STARTTLS": "0",
            "SMTP_USERNAME": "",
            "SMTP_PASSWORD": "",
            "PUBLIC_URL": portal_url,
        }
    )
    if not quiet:
        print(banner(Settings.from_env(dict(env)), standins), flush=True)
    return standins


def _wait_for(url: str, proc: subprocess.Popen, log: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise StandinsRefused(f"localstripe (the Stripe stand-in) did not start; see {log}") from None
            time.sleep(0.1)


def _post(url: str, data: dict[str, str]) -> None:
    import httpx

    httpx.post(url, data=data, timeout=10).raise_for_status()


# --- The banner -------------------------------------------------------------------------------


def banner(settings: Settings, standins: Standins) -> str:
    """Where everything is: the portal, the outbox, the test cards, the sign-ins, and an
    account a newcomer can link."""
    from .demo import DEMO_PASSWORD

    staff, residents, example = _demo_people(settings)
    lines = [
        "",
        "Demo stand-ins are on (development only; nothing leaves this machine):",
        f"  Portal      {standins.portal_url}",
        f"  Outbox      {standins.outbox_url}   every email the portal sends (sign-up, reset, receipts, bills)",
        f"  Stripe      localstripe at {standins.stripe_url}, webhooks to {standins.portal_url}/webhooks/stripe",
        f"  Test card   {TEST_CARD}, any future expiry (12/30), any CVC, any ZIP; "
        f"{THREE_D_SECURE_CARD} asks for 3-D Secure",
        f"  Mail server 127.0.0.1:{standins.smtp_port} (the catcher behind the outbox)",
        f"Sign in with password {DEMO_PASSWORD}:",
    ]
    if staff:
        lines.append("  staff       " + ", ".join(staff))
    if residents:
        lines.append("  residents   " + ", ".join(residents))
    if example:
        number, zip_code, amount = example
        lines.append(
            "New resident? Sign up, open the confirmation link in the outbox, then link account "
            f"{number} (service ZIP {zip_code}, amount due {amount}) and pay it by card."
        )
    lines.append("")
    return "\n".join(lines)


def _demo_people(settings: Settings) -> tuple[list[str], list[str], tuple[str, str, str] | None]:
    """The demo's sign-ins, and an unlinked account owing money (None without a district)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .adapters.database import make_engine
    from .billing_core import posting
    from .billing_core.models import Account, Bill, Premise, User, UserAccountLink
    from .billing_core.money import format_money

    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as s:
            users = s.execute(select(User.role, User.email).where(User.email.like("%@demo.example")).order_by(User.id))
            staff, residents = [], []
            for role, address in users:
                (residents if role == "customer" else staff).append(address)
            candidates = s.execute(
                select(Account.id, Account.number, Premise.zip)
                .join(Premise, Premise.id == Account.premise_id)
                .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
                .order_by(Account.number)
                .limit(50)
            ).all()
            for account_id, number, zip_code in candidates:
                if posting.account_balance(s, account_id) <= 0:
                    continue
                total = s.scalar(
                    select(Bill.total_due_cents)
                    .where(Bill.account_id == account_id, Bill.status == "posted")
                    .order_by(Bill.bill_date.desc(), Bill.id.desc())
                    .limit(1)
                )
                if total:
                    return staff, residents, (number, (zip_code or "")[:5], format_money(total))
            return staff, residents, None
    except Exception:  # noqa: BLE001 - the banner must not stop the demo (e.g. no district yet)
        return [], [], None
    finally:
        engine.dispose()
