"""The cashier's counter: open a drawer, take payments into it, close it with a count; a
supervisor signs closed drawers off; the receipt, printed and emailed.

Each function is one use case on the caller's session (the web request's transaction, or
``adapters.database.transaction`` on the command line and in the benchmark); the rules are
in ``billing_core/drawers.py`` and ``billing_core/counter.py``. Staff permission is checked
here (``permissions.require``): ``NotAllowed`` becomes a 403.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..billing_core import counter, drawers, permissions
from ..billing_core.errors import FieldErrors, NotFound
from ..billing_core.models import Account, CashDrawer, CounterReceipt, Payment, User
from ..billing_core.permissions import Action
from ..emails import Mailer

RECEIPT_EMAIL = "email.counter_receipt"
Line = counter.Line
Tender = counter.Tender


@dataclass(frozen=True)
class DrawerPage:
    """The cashier's page: their open drawer (if any), what is in it, and for a
    supervisor the closed drawers waiting for sign-off."""

    drawer: CashDrawer | None
    receipts: list[CounterReceipt]
    payments: list[Payment]
    expected: dict | None
    numbers: dict[int, str]
    names: dict[int, str]
    waiting: list[CashDrawer]
    can_take: bool
    can_sign_off: bool
    recent: list[CashDrawer] = field(default_factory=list)


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {u.id: u.display_name or u.email for u in session.scalars(select(User).where(User.id.in_(ids)))}


def drawer_page(session: Session, user: User) -> DrawerPage:
    permissions.require(user, Action.STAFF_VIEW)
    drawer = drawers.open_drawer_of(session, user.id)
    receipts = drawers.receipts(session, drawer.id) if drawer else []
    pays = drawers.drawer_payments(session, drawer.id) if drawer else []
    numbers = {
        a.id: a.number for a in session.scalars(select(Account).where(Account.id.in_({p.account_id for p in pays})))
    }
    can_sign_off = permissions.can(user.role, Action.DRAWERS_SIGN_OFF)
    waiting = drawers.waiting_for_sign_off(session) if can_sign_off else []
    recent = list(
        session.scalars(
            select(CashDrawer)
            .where(CashDrawer.cashier_id == user.id, CashDrawer.status != "open")
            .order_by(CashDrawer.id.desc())
            .limit(5)
        )
    )
    ids = {user.id} | {d.cashier_id for d in waiting} | {r.taken_by_id for r in receipts}
    ids |= {d.signed_off_by_id for d in recent if d.signed_off_by_id}
    return DrawerPage(
        drawer,
        receipts,
        pays,
        drawers.expected(session, drawer) if drawer else None,
        numbers,
        _names(session, ids),
        waiting,
        permissions.can(user.role, Action.PAYMENTS_TAKE),
        can_sign_off,
        recent,
    )


def open_drawer(session: Session, user: User, name: str, float_text: str, today: date, now: datetime) -> CashDrawer:
    """Open the cashier's drawer for ``today`` with the counted float (dollars)."""
    return drawers.open_drawer(session, user, name, float_text, today, now)


def take_payment(
    session: Session,
    user: User,
    lines: Sequence[Line],
    tender: Tender,
    now: datetime,
    payer_name: str = "",
    drawer_id: int | None = None,
) -> CounterReceipt:
    """Take a payment into the cashier's open drawer (or ``drawer_id``, which must be theirs
    and open). ``FieldErrors``: nothing written."""
    permissions.require(user, Action.PAYMENTS_TAKE)
    drawer = drawers.open_drawer_of(session, user.id)
    if drawer_id is not None:
        named = session.get(CashDrawer, drawer_id)
        if named is None or named.cashier_id != user.id:
            raise FieldErrors.one("drawer", "This is not your drawer.")
        drawer = named
    return counter.take(session, user, drawer, lines, tender, now, payer_name)


def _drawer(session: Session, drawer_id: int) -> CashDrawer:
    drawer = session.get(CashDrawer, drawer_id, with_for_update=True)
    if drawer is None:
        raise NotFound(f"drawer {drawer_id}")
    return drawer


def close_drawer(
    session: Session,
    user: User,
    drawer_id: int,
    pieces: Mapping[str, str],
    checks: Sequence[tuple[str, str]],
    card_total: str,
    reason: str,
    now: datetime,
) -> dict[str, int]:
    permissions.require(user, Action.DRAWERS_OPEN)
    drawer = _drawer(session, drawer_id)
    count, errors = drawers.parse_count(pieces, checks, card_total)
    if errors:
        raise FieldErrors(errors)
    return drawers.close(session, user, drawer, count, reason, now)


def close_drawer_from_file(
    session: Session, user: User, drawer_id: int, data: Mapping, reason: str, now: datetime
) -> dict[str, int]:
    permissions.require(user, Action.DRAWERS_OPEN)
    drawer = _drawer(session, drawer_id)
    count, errors = drawers.count_from_json(data)
    if errors:
        raise FieldErrors(errors)
    return drawers.close(session, user, drawer, count, reason, now)


def sign_off(session: Session, user: User, drawer_id: int, note: str, today: date, now: datetime) -> CashDrawer:
    drawer = _drawer(session, drawer_id)
    drawers.sign_off(session, user, drawer, note, today, now)
    return drawer


@dataclass(frozen=True)
class ReceiptView:
    receipt: CounterReceipt
    lines: list[tuple[Payment, Account]]
    drawer: CashDrawer
    taken_by: str


def receipt_view(session: Session, number: str) -> ReceiptView:
    receipt = session.scalar(select(CounterReceipt).where(CounterReceipt.number == number))
    if receipt is None:
        raise NotFound(f"receipt {number}")
    pays = counter.receipt_payments(session, receipt.id)
    accounts = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_({p.account_id for p in pays})))}
    drawer = session.get(CashDrawer, receipt.drawer_id)
    assert drawer is not None  # the receipt's drawer (a foreign key)
    taken_by = _names(session, {receipt.taken_by_id}).get(receipt.taken_by_id, "")
    return ReceiptView(receipt, [(p, accounts[p.account_id]) for p in pays], drawer, taken_by)


def staff_receipt(session: Session, user: User, number: str) -> ReceiptView:
    permissions.require(user, Action.STAFF_VIEW)
    return receipt_view(session, number)


def lookup(session: Session, user: User, query: str) -> list[Account]:
    """Accounts for the counter's lookup: by number, name or address."""
    from ..billing_core import accounts

    permissions.require(user, Action.STAFF_VIEW)
    return accounts.search(session, query)[:10] if query.strip() else []


def send_counter_receipt(mailer: Mailer, factory: sessionmaker[Session], clock: Clock, receipt_id: int) -> str | None:
    """Email a counter receipt to the customer, once, in their language."""
    with factory() as session:
        receipt = session.get(CounterReceipt, receipt_id)
        if receipt is None or not receipt.email or receipt.emailed_at is not None:
            return None
        view = receipt_view(session, receipt.number)
        to = receipt.email
        message = mailer.build(to, receipt.language, "counter_receipt", view=view, receipt=receipt)
    mailer.send(message)
    with transaction(factory) as session:
        session.execute(
            update(CounterReceipt)
            .where(CounterReceipt.id == receipt_id, CounterReceipt.emailed_at.is_(None))
            .values(emailed_at=clock())
        )
    return to
