"""The leak adjustment helper: the credit a leak earns, from the account's posted bills and
the money policy (``money_policy.MoneyPolicy``: ``leak_average_months``,
``leak_once_per_months``, ``leak_requires_proof``).

The leak bill is the account's latest posted bill (or the one named). Its water usage above
the average use of the posted bills of the ``leak_average_months`` before it is re-priced at
the lowest tier's price instead of the tiers it was billed at:
the excess is taken from the top of the bill's usage lines
(the last tiers filled), and the credit is what those units were billed at less the same
units at the lowest tier's price, rounded once to cents. The working (months, average,
excess, prices, credit) is returned as plain data, shown on the form and kept on the
adjustment. Then it is an ordinary leak adjustment: limits and approval apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import FieldErrors, InvalidInput
from .models import Account, Adjustment, Bill, BillLine, BillUsage, RateScheduleVersion, Service
from .money import round_cents
from .money_policy import MoneyPolicy
from .status import ApprovalStatus, BillStatus

SERVICE = "water"
#: Bill line units that are not usage (fixed charges, taxes, dwelling units).
NOT_USAGE = ("each", "period", "unit")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Working:
    bill_id: int
    bill_number: str
    credit_cents: int
    data: dict[str, Any]


def _months_before(day: date, months: int) -> date:
    y, m = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(y, m + 1, min(day.day, 28))


def _bill_usage(session: Session, bill: Bill, other_meters: set[int]) -> Decimal:
    rows = session.scalars(select(BillUsage).where(BillUsage.bill_id == bill.id)).all()
    return sum((u.quantity for u in rows if u.meter_id not in other_meters), ZERO)


def _lowest_price(session: Session, version_id: int | None, cache: dict[int | None, Decimal | None]) -> Decimal | None:
    """The first tier's price of a native rate version (tiered or budget); None when the
    version has no tiers (uniform) or is an OWRS file (the bill's own tier 1 line then says)."""
    if version_id in cache:
        return cache[version_id]
    found: Decimal | None = None
    version = session.get(RateScheduleVersion, version_id) if version_id is not None else None
    if version is not None and version.definition.get("format") != "owrs":
        for comp in version.definition.get("components", []):
            if comp.get("type") in ("tiered", "budget") and comp.get("tiers"):
                found = Decimal(str(comp["tiers"][0]["price"]))
                break
            if comp.get("type") in ("uniform",):
                found = Decimal(str(comp["price"]))
                break
    cache[version_id] = found
    return found


def last_leak(session: Session, account_id: int, today: date, policy: MoneyPolicy) -> Adjustment | None:
    """A leak adjustment (pending or posted) within the policy's once-per window (0: no window)."""
    if policy.leak_once_per_months <= 0:
        return None
    since = _months_before(today, policy.leak_once_per_months)
    return session.scalar(
        select(Adjustment)
        .where(
            Adjustment.account_id == account_id,
            Adjustment.reason_code == "leak",
            Adjustment.status != ApprovalStatus.REJECTED.value,
            Adjustment.prepared_at >= datetime(since.year, since.month, since.day, tzinfo=UTC),
        )
        .order_by(Adjustment.prepared_at)
        .limit(1)
    )


def work_out(
    session: Session,
    account: Account,
    today: date,
    policy: MoneyPolicy,
    *,
    proof: str = "",
    bill_number: str = "",
) -> Working:
    """The credit and its working, or ``FieldErrors`` saying why there is none."""
    errors: dict[str, InvalidInput] = {}
    first = last_leak(session, account.id, today, policy)
    if first is not None:
        errors["leak"] = InvalidInput(
            "This account had a leak adjustment on %(on)s; one is allowed every %(months)s months.",
            "leak",
            on=first.prepared_at.date().isoformat(),
            months=policy.leak_once_per_months,
        )
    if policy.leak_requires_proof and not (proof or "").strip():
        errors["proof"] = InvalidInput("Give the proof of repair (a plumber's invoice, a receipt).", "proof")
    posted = select(Bill).where(Bill.account_id == account.id, Bill.status == BillStatus.POSTED.value)
    if bill_number.strip():
        bill = session.scalar(posted.where(Bill.number == bill_number.strip()))
    else:
        bill = session.scalar(posted.order_by(Bill.period_end.desc(), Bill.id.desc()).limit(1))
    if bill is None:
        errors["bill"] = InvalidInput("There is no posted bill to work the leak credit out from.", "bill")
        raise FieldErrors(errors)
    other_meters = {
        s.meter_id
        for s in session.scalars(select(Service).where(Service.account_id == account.id))
        if s.service_type != SERVICE and s.meter_id is not None
    }
    since = _months_before(bill.period_start, policy.leak_average_months)
    previous = session.scalars(
        posted.where(Bill.period_end <= bill.period_start, Bill.period_start >= since).order_by(Bill.period_start)
    ).all()
    months = [
        {
            "bill": b.number,
            "from": b.period_start.isoformat(),
            "to": b.period_end.isoformat(),
            "days": (b.period_end - b.period_start).days,
            "usage": str(_bill_usage(session, b, other_meters)),
        }
        for b in previous
    ]
    if not months:
        errors["bill"] = InvalidInput(
            "Bill %(bill)s has no posted bills before it in the %(months)s months to average.",
            "bill",
            bill=bill.number,
            months=policy.leak_average_months,
        )
        raise FieldErrors(errors)
    average = (sum((Decimal(str(m["usage"])) for m in months), ZERO) / len(months)).quantize(Decimal("0.001"))
    days = (bill.period_end - bill.period_start).days
    usual = average
    used = _bill_usage(session, bill, other_meters)
    excess = used - usual
    lines = session.scalars(
        select(BillLine)
        .where(BillLine.bill_id == bill.id, BillLine.service_type == SERVICE)
        .order_by(BillLine.sequence)
    ).all()
    usage_lines = [ln for ln in lines if ln.unit not in NOT_USAGE and ln.quantity > 0 and ln.unit_price > 0]
    cache: dict[int | None, Decimal | None] = {}
    priced: list[dict[str, str]] = []
    credit = ZERO
    left = max(excess, ZERO)
    for line in reversed(usage_lines):
        if left <= 0:
            break
        take = min(line.quantity, left)
        lowest = _lowest_price(session, line.rate_version_id, cache)
        if lowest is None:
            same = [ln for ln in usage_lines if ln.rate_version_id == line.rate_version_id]
            lowest = same[0].unit_price
        saved = max(line.unit_price - lowest, ZERO) * take
        credit += saved
        left -= take
        priced.append(
            {
                "line": line.description,
                "units": str(take),
                "billed_price": str(line.unit_price),
                "lowest_price": str(lowest),
                "credit": str(saved.quantize(Decimal("0.01"))),
            }
        )
    credit_cents = round_cents(credit)
    data = {
        "bill": bill.number,
        "period": [bill.period_start.isoformat(), bill.period_end.isoformat()],
        "days": days,
        "usage": str(used),
        "months": months,
        "average": str(average),
        "excess": str(max(excess, ZERO)),
        "prices": priced,
        "credit_cents": credit_cents,
        "policy": {
            "average_months": policy.leak_average_months,
            "once_per_months": policy.leak_once_per_months,
            "requires_proof": policy.leak_requires_proof,
        },
    }
    if excess <= 0:
        errors["bill"] = InvalidInput(
            "Bill %(bill)s used %(used)s, not more than the average %(usual)s: there is no leak to credit.",
            "bill",
            bill=bill.number,
            used=str(used),
            usual=str(usual),
        )
    elif credit_cents <= 0:
        errors["bill"] = InvalidInput(
            "The excess use on bill %(bill)s was billed at the lowest tier already: nothing to credit.",
            "bill",
            bill=bill.number,
        )
    if errors:
        raise FieldErrors(errors)
    return Working(bill.id, bill.number or "", credit_cents, data)
