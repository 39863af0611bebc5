"""Cash drawers: a cashier opens one with a counted float, every counter payment goes into
it, the cashier closes it with a count by tender, and a supervisor (never the cashier)
signs it off.

    open --close (count, over/short, reason if not zero)--> closed --sign off--> signed_off

What the drawer should hold at close (``expected``), by tender:

- cash: the float, plus the cash handed over, less the change given back (which is the
  float plus the cash payments);
- checks (and money orders): the list of them, by number and amount;
- card (card present): the total the terminal approved.

Counted less expected is the over (positive) or short (negative) of each tender; when any
is not zero the cashier must say why. At sign-off the cash over or short is posted to
``ledger.CASH_OVER_SHORT`` against ``CASH:COUNTER`` (a short: Dr over/short, Cr cash).
No payment goes into a drawer that is not open (``require_open``).

Dates and times come from the caller; nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from . import audit, ledger, permissions, posting
from .errors import FieldErrors, InvalidInput
from .models import CashDrawer, CounterReceipt, LedgerEntry, Payment, User
from .permissions import Action
from .status import DRAWER_TRANSITIONS, DrawerStatus, PaymentStatus, move
from .users import parse_amount

#: Bills and coins a cashier counts, in cents, with how the count form names them.
BILLS = (10000, 5000, 2000, 1000, 500, 200, 100)
COINS = (100, 50, 25, 10, 5, 1)
#: Paper tenders counted as a list at close.
PAPER = ("check", "money_order")
TENDERS = ("cash", "check", "card", "money_order")
TENDER_LABELS = {"cash": "Cash", "check": "Check", "card": "Card (present)", "money_order": "Money order"}
#: The most a drawer's float may be ($5,000).
MAX_FLOAT_CENTS = 500_000


def denomination_field(kind: str, cents: int) -> str:
    """``bill-2000``, ``coin-25``: the count form's field for one denomination."""
    return f"{kind}-{cents}"


def denomination_label(cents: int, kind: str) -> str:
    if kind == "bill":
        return f"${cents // 100} bills"
    return {100: "$1 coins", 50: "Half dollars", 25: "Quarters", 10: "Dimes", 5: "Nickels", 1: "Pennies"}[cents]


def parse_float(text: str, field: str = "float") -> int:
    cents = parse_amount(text)
    if cents is None:
        raise InvalidInput("Enter the float in dollars and cents, like 150.00.", field)
    if cents < 0:
        raise InvalidInput("The float cannot be negative.", field)
    if cents > MAX_FLOAT_CENTS:
        raise InvalidInput("A float above $5,000.00 is not allowed; check the count.", field)
    return cents


@dataclass(frozen=True)
class Count:
    """A drawer's count at close: how many of each denomination (cents -> pieces), the
    checks and money orders one by one, and the card terminal's total."""

    cash: dict[int, int]
    checks: list[dict[str, Any]]
    card_cents: int

    @property
    def cash_cents(self) -> int:
        return sum(d * n for d, n in self.cash.items())

    @property
    def checks_cents(self) -> int:
        return sum(int(c["amount_cents"]) for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "cash": {str(d): n for d, n in sorted(self.cash.items(), reverse=True) if n},
            "checks": list(self.checks),
            "card_cents": self.card_cents,
        }


def parse_count(
    pieces: Mapping[str, str], checks: Sequence[tuple[str, str]], card_total: str
) -> tuple[Count, dict[str, InvalidInput]]:
    """The count form read whole: ``pieces`` by denomination field (``bill-2000`` -> "3"),
    ``checks`` as (number, amount) pairs (blank pairs skipped), and the card total. Returns
    the count and every problem by field (the count is only good when there are none)."""
    errors: dict[str, InvalidInput] = {}
    cash: dict[int, int] = {}
    for kind, values in (("bill", BILLS), ("coin", COINS)):
        for cents in values:
            name = denomination_field(kind, cents)
            text = (pieces.get(name) or "").strip()
            if not text:
                continue
            if not text.isascii() or not text.isdigit() or len(text) > 6:
                errors[name] = InvalidInput("Enter how many, as a whole number.", name)
                continue
            cash[cents] = cash.get(cents, 0) + int(text)
    listed: list[dict[str, Any]] = []
    for i, (number, amount) in enumerate(checks, 1):
        number, amount = (number or "").strip(), (amount or "").strip()
        if not number and not amount:
            continue
        amount_cents = parse_amount(amount)
        if amount_cents is None or amount_cents <= 0:
            errors[f"check-amount-{i}"] = InvalidInput(
                "Enter the check's amount in dollars and cents, like 25.00.", f"check-amount-{i}"
            )
        if not number:
            errors[f"check-number-{i}"] = InvalidInput("Enter the check's number.", f"check-number-{i}")
        if amount_cents is not None and amount_cents > 0 and number:
            listed.append({"number": number[:30], "amount_cents": amount_cents})
    card_cents = 0
    if (card_total or "").strip():
        parsed = parse_amount(card_total)
        if parsed is None or parsed < 0:
            errors["card_total"] = InvalidInput("Enter the card total in dollars and cents, like 80.00.", "card_total")
        else:
            card_cents = parsed
    return Count(cash, listed, card_cents), errors


def count_from_json(data: Mapping[str, Any]) -> tuple[Count, dict[str, InvalidInput]]:
    """A count file (``portal drawers close --count-file``): ``{"cash": {"2000": 3, ...},
    "checks": [{"number": "1001", "amount": "25.00"}], "card": "80.00"}`` (cash by
    denomination in cents, or by the form's names ``bill-2000``)."""
    raw_cash = data.get("cash") or {}
    pieces: dict[str, str] = {}
    errors: dict[str, InvalidInput] = {}
    for key, value in dict(raw_cash).items():
        key = str(key)
        if key.isdigit():
            cents = int(key)
            kind = "bill" if cents in BILLS and cents not in COINS else "coin"
            if cents not in BILLS and cents not in COINS:
                errors[f"cash-{key}"] = InvalidInput(f"{key} cents is not a denomination.", "cash")
                continue
            name = denomination_field(kind, cents)
        else:
            name = key
        pieces[name] = str(int(pieces.get(name) or 0) + int(value)) if str(value).isdigit() else str(value)
    checks = [(str(c.get("number", "")), str(c.get("amount", ""))) for c in data.get("checks") or []]
    count, more = parse_count(pieces, checks, str(data.get("card", "") or ""))
    return count, {**errors, **more}


# --- Reading drawers ---------------------------------------------------------------------


def open_drawer_of(session: Session, cashier_id: int) -> CashDrawer | None:
    return session.scalar(
        select(CashDrawer).where(CashDrawer.cashier_id == cashier_id, CashDrawer.status == DrawerStatus.OPEN.value)
    )


def receipts(session: Session, drawer_id: int) -> list[CounterReceipt]:
    return list(
        session.scalars(select(CounterReceipt).where(CounterReceipt.drawer_id == drawer_id).order_by(CounterReceipt.id))
    )


def drawer_payments(session: Session, drawer_id: int) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.drawer_id == drawer_id).order_by(Payment.id)))


def waiting_for_sign_off(session: Session) -> list[CashDrawer]:
    return list(
        session.scalars(
            select(CashDrawer).where(CashDrawer.status == DrawerStatus.CLOSED.value).order_by(CashDrawer.closed_at)
        )
    )


def expected(session: Session, drawer: CashDrawer) -> dict[str, Any]:
    """What the drawer should hold now, by tender (see the module's docstring)."""
    cash = drawer.float_cents
    checks: list[dict[str, Any]] = []
    card = 0
    for r in receipts(session, drawer.id):
        if r.tender == "cash":
            cash += (r.tendered_cents if r.tendered_cents is not None else r.total_cents) - r.change_cents
        elif r.tender in PAPER:
            checks.append({"number": r.check_number or "", "amount_cents": r.total_cents, "receipt": r.number})
        elif r.tender == "card":
            card += r.total_cents
    return {
        "cash_cents": cash,
        "checks": checks,
        "checks_cents": sum(c["amount_cents"] for c in checks),
        "card_cents": card,
    }


def over_short_of(count: Count, expect: Mapping[str, Any]) -> dict[str, int]:
    return {
        "cash_cents": count.cash_cents - int(expect["cash_cents"]),
        "checks_cents": count.checks_cents - int(expect["checks_cents"]),
        "card_cents": count.card_cents - int(expect["card_cents"]),
    }


# --- Open, close, sign off ---------------------------------------------------------------


def open_drawer(
    session: Session, cashier: User, name: str, float_text: str, business_date: date, now: datetime
) -> CashDrawer:
    """Open a drawer for ``cashier`` with the float counted (``float_text``, dollars); one
    open drawer per cashier (the unique index on open drawers holds it even when two
    requests race). ``FieldErrors``: nothing written."""
    permissions.require(cashier, Action.DRAWERS_OPEN)
    name = (name or "").strip()
    errors: dict[str, InvalidInput] = {}
    float_cents = 0
    try:
        float_cents = parse_float(float_text)
    except InvalidInput as exc:
        errors["float"] = exc
    if not name:
        errors["name"] = InvalidInput("Name the drawer, like Counter 1.", "name")
    elif len(name) > 40:
        errors["name"] = InvalidInput("Keep the drawer's name to 40 characters.", "name")
    if open_drawer_of(session, cashier.id) is not None:
        errors["name"] = InvalidInput("You already have an open drawer; close it first.", "name")
    if errors:
        raise FieldErrors(errors)
    drawer = CashDrawer(
        name=name,
        cashier_id=cashier.id,
        business_date=business_date,
        opened_at=now,
        float_cents=float_cents,
        status=DrawerStatus.OPEN.value,
    )
    session.add(drawer)
    session.flush()
    audit.record(
        session,
        "drawer.opened",
        actor=cashier,
        entity_type="cash_drawer",
        entity_id=drawer.id,
        after={"name": name, "float_cents": float_cents, "business_date": business_date.isoformat()},
    )
    return drawer


def require_open(drawer: CashDrawer | None, field: str = "drawer") -> CashDrawer:
    """The drawer a payment goes into: it must be open."""
    if drawer is None:
        raise InvalidInput("Open your drawer before taking a payment.", field)
    if drawer.status != DrawerStatus.OPEN:
        raise InvalidInput("This drawer is closed; no payment can be added to it.", field)
    return drawer


def close(
    session: Session, cashier: User, drawer: CashDrawer, count: Count, reason: str, now: datetime
) -> dict[str, int]:
    """Close the cashier's own open drawer with ``count``; returns the over/short by tender.
    A reason is required when any tender is over or short."""
    permissions.require(cashier, Action.DRAWERS_OPEN)
    if drawer.cashier_id != cashier.id:
        raise FieldErrors.one("drawer", "Only the cashier who opened this drawer closes it.")
    if drawer.status != DrawerStatus.OPEN:
        raise FieldErrors.one("drawer", "This drawer is already closed.")
    expect = expected(session, drawer)
    diff = over_short_of(count, expect)
    reason = (reason or "").strip()
    if any(diff.values()) and not reason:
        raise FieldErrors.one("reason", "The count is over or short: say why.")
    move(DRAWER_TRANSITIONS, drawer, DrawerStatus.CLOSED)
    drawer.closed_at = now
    drawer.count = count.as_json()
    drawer.expected = expect
    drawer.over_short = diff
    drawer.over_short_reason = reason[:2000] or None
    audit.record(
        session,
        "drawer.closed",
        actor=cashier,
        entity_type="cash_drawer",
        entity_id=drawer.id,
        before={"status": DrawerStatus.OPEN.value},
        after={"status": DrawerStatus.CLOSED.value, "expected": expect, "over_short": diff, "reason": reason},
    )
    return diff


def over_short_transaction(drawer_id: int, on: date, cents: int) -> ledger.Transaction:
    """Cash over (``cents`` > 0): Dr cash, Cr over/short; short: Dr over/short, Cr cash."""
    return ledger.Transaction(
        ledger.Kind.ADJUSTMENT,
        on,
        (ledger.Entry(ledger.cash("counter"), cents), ledger.Entry(ledger.CASH_OVER_SHORT, -cents)),
        memo=f"Cash drawer {drawer_id} {'over' if cents > 0 else 'short'}",
    )


def sign_off(session: Session, supervisor: User, drawer: CashDrawer, note: str, on: date, now: datetime) -> None:
    """A supervisor who is not the drawer's cashier signs off its count; its cash over or
    short is posted then."""
    permissions.require_approver(supervisor, Action.DRAWERS_SIGN_OFF, prepared_by_id=drawer.cashier_id)
    if drawer.status != DrawerStatus.CLOSED:
        raise FieldErrors.one("note", "Only a closed drawer can be signed off.")
    cash_diff = int((drawer.over_short or {}).get("cash_cents", 0))
    if cash_diff:
        row = posting.post(
            session, over_short_transaction(drawer.id, on, cash_diff), None, supervisor.id, posted_at=now
        )
        drawer.ledger_transaction_id = row.id
    move(DRAWER_TRANSITIONS, drawer, DrawerStatus.SIGNED_OFF)
    drawer.signed_off_by_id = supervisor.id
    drawer.signed_off_at = now
    drawer.sign_off_note = (note or "").strip()[:2000] or None
    audit.record(
        session,
        "drawer.signed_off",
        actor=supervisor,
        entity_type="cash_drawer",
        entity_id=drawer.id,
        before={"status": DrawerStatus.CLOSED.value},
        after={
            "status": DrawerStatus.SIGNED_OFF.value,
            "cash_over_short_cents": cash_diff,
            "ledger_transaction": drawer.ledger_transaction_id,
            "note": drawer.sign_off_note,
        },
    )


# --- portal ledger check ----------------------------------------------------------------------


def check(session: Session) -> list[str]:
    """Every drawer's payments and receipts agree; a closed drawer's expected cash is its
    float plus its cash payments; the over/short posting equals the recorded over/short."""
    from .ledger_check import SHOW

    out: list[str] = []
    paid = (
        select(Payment.receipt_id, func.sum(Payment.amount_cents).label("total"))
        .where(Payment.receipt_id.is_not(None), Payment.status != PaymentStatus.FAILED.value)
        .group_by(Payment.receipt_id)
        .subquery()
    )
    wrong = session.execute(
        select(CounterReceipt.number, CounterReceipt.total_cents, func.coalesce(paid.c.total, 0))
        .outerjoin(paid, paid.c.receipt_id == CounterReceipt.id)
        .where(CounterReceipt.total_cents != func.coalesce(paid.c.total, 0))
        .limit(SHOW)
    ).all()
    out += [f"receipt {n} shows {t} cents but its payments sum to {int(p)} cents" for n, t, p in wrong]
    # A payment in a drawer is on one of its receipts and the other way round, and is a
    # counter payment. (Counter payments from before drawers, the history a district brings
    # along, have neither.)
    loose = session.scalars(
        select(Payment.id)
        .where(
            or_(
                and_(Payment.drawer_id.is_(None), Payment.receipt_id.is_not(None)),
                and_(Payment.drawer_id.is_not(None), Payment.receipt_id.is_(None)),
                and_(Payment.drawer_id.is_not(None), Payment.channel != "counter"),
            )
        )
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} is in a drawer without a receipt, or on a receipt without a drawer" for pid in loose]
    astray = session.scalars(
        select(Payment.id)
        .join(CounterReceipt, CounterReceipt.id == Payment.receipt_id)
        .where(Payment.drawer_id != CounterReceipt.drawer_id)
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} is in another drawer than its receipt" for pid in astray]
    cash_in = (
        select(CounterReceipt.drawer_id, func.sum(CounterReceipt.total_cents).label("cash"))
        .where(CounterReceipt.tender == "cash")
        .group_by(CounterReceipt.drawer_id)
        .subquery()
    )
    for drawer_id, status, float_cents, expect, over_short, txn_id, cash in session.execute(
        select(
            CashDrawer.id,
            CashDrawer.status,
            CashDrawer.float_cents,
            CashDrawer.expected,
            CashDrawer.over_short,
            CashDrawer.ledger_transaction_id,
            func.coalesce(cash_in.c.cash, 0),
        )
        .outerjoin(cash_in, cash_in.c.drawer_id == CashDrawer.id)
        .where(CashDrawer.status != DrawerStatus.OPEN.value)
        .order_by(CashDrawer.id)
    ):
        should = float_cents + int(cash)
        if expect is None or int(expect.get("cash_cents", -1)) != should:
            got = None if expect is None else expect.get("cash_cents")
            out.append(f"drawer {drawer_id} expected {got} cents of cash but its float and cash payments are {should}")
        recorded = int((over_short or {}).get("cash_cents", 0))
        posted = 0
        if txn_id is not None:
            posted = int(
                session.scalar(
                    select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
                        LedgerEntry.transaction_id == txn_id, LedgerEntry.gl_account == ledger.cash("counter")
                    )
                )
                or 0
            )
        if status == DrawerStatus.SIGNED_OFF and posted != recorded:
            out.append(f"drawer {drawer_id} is {recorded} cents over/short but {posted} cents were posted for it")
        if len(out) > SHOW * 4:
            break
    return out
