"""The daily money reports: the deposit report (per drawer: cash, the checks listed, card
totals, over/short) and the remittance report (the day's payments by channel and by
service, read from the ledger). Each is a page, a PDF and a CSV (``csv_safe``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing_core import csv_safe, drawers, ledger, permissions
from ..billing_core.models import CashDrawer, LedgerEntry, LedgerTransaction, User
from ..billing_core.money import format_money
from ..billing_core.permissions import Action


@dataclass(frozen=True)
class DrawerLine:
    drawer: CashDrawer
    cashier: str
    signed_off_by: str
    #: Counted when closed; what is expected while still open.
    cash_cents: int
    checks: list[dict[str, Any]]
    card_cents: int
    over_short: dict[str, int]

    @property
    def checks_cents(self) -> int:
        return sum(int(c["amount_cents"]) for c in self.checks)


@dataclass(frozen=True)
class DepositReport:
    day: date
    lines: list[DrawerLine]

    @property
    def totals(self) -> dict[str, int]:
        return {
            "cash_cents": sum(x.cash_cents for x in self.lines),
            "checks_cents": sum(x.checks_cents for x in self.lines),
            "card_cents": sum(x.card_cents for x in self.lines),
            "over_short_cents": sum(sum(x.over_short.values()) for x in self.lines),
        }


def deposit_report(session: Session, user: User | None, day: date) -> DepositReport:
    if user is not None:
        permissions.require(user, Action.MONEY_REPORTS)
    rows = list(
        session.scalars(
            select(CashDrawer).where(CashDrawer.business_date == day).order_by(CashDrawer.name, CashDrawer.id)
        )
    )
    ids = {d.cashier_id for d in rows} | {d.signed_off_by_id for d in rows if d.signed_off_by_id}
    names = (
        {u.id: u.display_name or u.email for u in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    )
    lines = []
    for d in rows:
        if d.count is not None:
            cash = sum(int(k) * int(n) for k, n in d.count.get("cash", {}).items())
            checks = list(d.count.get("checks", []))
            card = int(d.count.get("card_cents", 0))
        else:
            expect = drawers.expected(session, d)
            cash, checks, card = int(expect["cash_cents"]), list(expect["checks"]), int(expect["card_cents"])
        lines.append(
            DrawerLine(
                d,
                names.get(d.cashier_id, ""),
                names.get(d.signed_off_by_id, "") if d.signed_off_by_id else "",
                cash,
                checks,
                card,
                {k: int(v) for k, v in (d.over_short or {}).items()},
            )
        )
    return DepositReport(day, lines)


@dataclass(frozen=True)
class RemittanceReport:
    day: date
    by_channel: list[tuple[str, int]]
    by_service: list[tuple[str, int]]

    @property
    def total_cents(self) -> int:
        return sum(c for _n, c in self.by_channel)


def remittance_report(session: Session, user: User | None, day: date) -> RemittanceReport:
    """The payments posted with effect on ``day``, from their ledger entries: cash taken in
    by channel, and what they paid by service (credit: beyond what was owed)."""
    if user is not None:
        permissions.require(user, Action.MONEY_REPORTS)
    of_day = (
        select(LedgerEntry.gl_account, LedgerEntry.service_type, func.sum(LedgerEntry.amount_cents))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerTransaction.kind == ledger.Kind.PAYMENT.value, LedgerTransaction.effective_on == day)
        .group_by(LedgerEntry.gl_account, LedgerEntry.service_type)
    )
    channels: dict[str, int] = {}
    services: dict[str, int] = {}
    for gl, service, cents in session.execute(of_day):
        if gl.startswith(ledger.CASH + ":"):
            name = gl.split(":", 1)[1].lower()
            channels[name] = channels.get(name, 0) + int(cents)
        elif gl.startswith(ledger.AR + ":"):
            name = service or "credit"
            services[name] = services.get(name, 0) - int(cents)
    return RemittanceReport(day, sorted(channels.items()), sorted(services.items(), key=lambda x: _rank(x[0])))


def _rank(service: str) -> tuple[int, str]:
    order = (*ledger.SERVICE_ORDER, "credit")
    return (order.index(service), service) if service in order else (len(order), service)


def _dollars(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def deposit_csv(report: DepositReport) -> str:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(["date", "drawer", "cashier", "status", "tender", "check_number", "amount", "over_short", "reason"])
    for x in report.lines:
        base = [report.day.isoformat(), x.drawer.name, x.cashier, x.drawer.status]
        reason = x.drawer.over_short_reason or ""
        w.writerow([*base, "cash", "", _dollars(x.cash_cents), _dollars(x.over_short.get("cash_cents", 0)), reason])
        for c in x.checks:
            w.writerow([*base, "check", c.get("number", ""), _dollars(int(c["amount_cents"])), "", ""])
        w.writerow(
            [*base, "checks total", "", _dollars(x.checks_cents), _dollars(x.over_short.get("checks_cents", 0)), ""]
        )
        w.writerow([*base, "card", "", _dollars(x.card_cents), _dollars(x.over_short.get("card_cents", 0)), ""])
    return out.getvalue()


def remittance_csv(report: RemittanceReport) -> str:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(["date", "by", "name", "amount"])
    for name, cents in report.by_channel:
        w.writerow([report.day.isoformat(), "channel", name, _dollars(cents)])
    for name, cents in report.by_service:
        w.writerow([report.day.isoformat(), "service", name, _dollars(cents)])
    w.writerow([report.day.isoformat(), "total", "", _dollars(report.total_cents)])
    return out.getvalue()


def money(cents: int) -> str:
    return format_money(cents)
