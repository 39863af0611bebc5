"""Rates: the schedule list, a version's page, the bill calculator and its defaults, OWRS
uploads, and the OWRS quote contract (``portal rates quote``).

Each function takes the database session (or the files) it works on and the date it works
as of; none reads the clock or imports Starlette.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..billing_core import owrs, permissions, rate_schedules, rating
from ..billing_core.errors import InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    RateSchedule,
    RateScheduleVersion,
    Service,
    ServiceType,
    User,
)
from ..billing_core.permissions import Action

# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ScheduleList:
    #: Schedules by (service, customer class), in that order.
    groups: list[tuple[tuple[str, str], list[RateSchedule]]]
    #: Each schedule's version in force on the day asked about (None before its first).
    in_force: dict[int, RateScheduleVersion | None]


def schedule_list(session: Session, as_of: date) -> ScheduleList:
    all_schedules = rate_schedules.schedules(session)
    groups: dict[tuple[str, str], list[RateSchedule]] = {}
    for schedule in all_schedules:
        groups.setdefault((schedule.service_type, schedule.customer_class), []).append(schedule)
    return ScheduleList(
        groups=sorted(groups.items()),
        in_force={s.id: rate_schedules.version_in_force(s, as_of) for s in all_schedules},
    )


@dataclass(frozen=True)
class VersionPage:
    version: RateScheduleVersion
    schedule: RateSchedule
    #: The version in plain words, a table per charge.
    tables: list[rate_schedules.Table]
    #: The data an OWRS version needs besides usage.
    needs: list[str]
    #: Every version of the schedule, by effective date.
    siblings: list[RateScheduleVersion]
    #: Who proposed and who decided the version (emails by user id).
    people: dict[int, str] = field(default_factory=dict)


def version_page(session: Session, version_id: int) -> VersionPage:
    """A version with its schedule and the schedule's other versions; ``NotFound`` if none."""
    version = rate_schedules.version(session, version_id)
    siblings = session.scalars(
        select(RateScheduleVersion)
        .where(RateScheduleVersion.schedule_id == version.schedule_id)
        .order_by(RateScheduleVersion.effective_on)
    ).all()
    ids = {i for i in (version.proposed_by_id, version.decided_by_id) if i is not None}
    people = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    return VersionPage(
        version=version,
        schedule=version.schedule,
        tables=rate_schedules.describe(version.definition),
        needs=rating.required_inputs(version.definition),
        siblings=list(siblings),
        people=people,
    )


# --------------------------------------------------------------------------- the calculator

CALCULATOR_INPUTS = {
    # name: (label, hint)
    "household_size": ("Household size (people)", "For budget-based rates."),
    "irrigated_area": ("Irrigated area (square feet)", "For budget-based rates."),
    "et_amount": ("Evapotranspiration this period (inches)", "For budget-based rates."),
    "dwelling_units": ("Dwelling units", "For multi-family rates."),
}
# The largest figure the calculator takes for any input (usage, people, square feet, ...);
# days in a period at most a year.
CALCULATOR_MAXIMUM = Decimal(10_000_000)
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


@dataclass
class CalculatorForm:
    """The calculator's inputs as typed (the view reads them from the query), the defaults
    ``calculate`` fills in, and a message for each input that is wrong."""

    schedule_id: int | None = None
    current_id: int | None = None
    proposed_id: int | None = None
    account: str = ""
    usage: str = "18"
    meter_size: str = ""
    days: str = "30"
    extra: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Calculation:
    form: CalculatorForm
    schedules: list[RateSchedule]
    schedule: RateSchedule | None
    account: Account | None
    current: RateScheduleVersion | None
    proposed: RateScheduleVersion | None
    comparison: rate_schedules.Comparison | None
    #: The data the current version needs besides usage.
    needs: list[str]


def _decimal(
    form: CalculatorForm,
    name: str,
    text: str,
    label: str,
    minimum: Decimal = Decimal(0),
    maximum: Decimal = CALCULATOR_MAXIMUM,
) -> Decimal | None:
    if text.strip() == "":
        return None
    # Plain digits only: not "1E+1000000", "Infinity" or "NaN", which Decimal would read.
    if not _PLAIN_NUMBER.fullmatch(text.strip()):
        form.errors[name] = f"Enter {label} as a number, like 18 or 18.5."
        return None
    value = Decimal(text.strip())
    if value < minimum:
        form.errors[name] = f"{label.capitalize()} cannot be below {minimum}."
        return None
    if value > maximum:
        form.errors[name] = f"{label.capitalize()} cannot be over {maximum:,}."
        return None
    return value


def _account_defaults(session: Session, form: CalculatorForm) -> Account | None:
    """The account typed in, and what the calculator takes from it unless given: the water
    service's schedule, its meter's size, the premise's dwelling units."""
    account = session.scalar(
        select(Account)
        .where(Account.number == form.account)
        .options(selectinload(Account.services).selectinload(Service.meter))
    )
    if account is None:
        form.errors["account"] = f"No account numbered {form.account}."
        return None
    water = next((s for s in account.services if s.service_type == ServiceType.WATER), account.services[0])
    form.schedule_id = form.schedule_id or water.rate_schedule_id
    if water.meter and not form.meter_size:
        form.meter_size = water.meter.size
    form.extra["dwelling_units"] = form.extra.get("dwelling_units") or str(account.premise.dwelling_units)
    return account


def calculate(session: Session, form: CalculatorForm, as_of: date, *, compute: bool) -> Calculation:
    """The calculator: fill the form's defaults (from the account, and the version in force
    on ``as_of``, else the schedule's latest), check its numbers, and when ``compute`` (the
    form was sent) and nothing is wrong, what a bill comes to under the current version and
    the proposed one, for a period of the given days ending on ``as_of`` (its season)."""
    account = _account_defaults(session, form) if form.account else None
    all_schedules = rate_schedules.schedules(session)
    schedule = next((s for s in all_schedules if s.id == form.schedule_id), None)
    comparison = None
    current = proposed = None
    if schedule is not None:
        by_id = {v.id: v for v in schedule.versions}
        chosen = by_id.get(form.current_id) if form.current_id is not None else None
        current = chosen or rate_schedules.version_in_force(schedule, as_of)
        proposed = by_id.get(form.proposed_id) if form.proposed_id is not None else None
        if current is None:  # before the first approved version: the latest approved, else the latest
            approved = [v for v in schedule.versions if v.status == rate_schedules.APPROVED]
            latest = approved or list(schedule.versions)
            current = latest[-1] if latest else None
        form.current_id = current.id if current else None
        usage_qty = _decimal(form, "usage", form.usage, "the usage")
        days = _decimal(form, "days", form.days, "the days in the period", Decimal(1), Decimal(366))
        extras = {k: _decimal(form, k, v, CALCULATOR_INPUTS[k][0].lower()) for k, v in form.extra.items()}
        if compute and current is not None and not form.errors and usage_qty is not None:
            usage = rating.Usage(
                quantity=usage_qty,
                meter_size=form.meter_size or None,
                dwelling_units=int(extras.get("dwelling_units") or 1),
                household_size=extras.get("household_size"),
                irrigated_area=extras.get("irrigated_area"),
                et_amount=extras.get("et_amount"),
                water_quantity=usage_qty,
            )
            try:
                comparison = rate_schedules.calculate(
                    schedule.service_type,
                    current,
                    proposed,
                    usage,
                    int(days or 30),
                    period_end=as_of + timedelta(days=1),
                )
            except owrs.OwrsError as exc:
                form.errors["calculation"] = exc.reason
            except InvalidInput as exc:
                form.errors["calculation"] = exc.message
    elif form.schedule_id is not None:
        form.errors["schedule"] = "Choose a rate schedule."
    return Calculation(
        form=form,
        schedules=all_schedules,
        schedule=schedule,
        account=account,
        current=current,
        proposed=proposed,
        comparison=comparison,
        needs=rating.required_inputs(current.definition) if current else [],
    )


# --------------------------------------------------------------------------- uploads


@dataclass(frozen=True)
class UploadOutcome:
    #: New versions written (0 when refused).
    created_versions: int = 0
    #: Why nothing was imported, every problem of every class (empty when imported).
    problems: list[owrs.OwrsError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def import_upload(
    session: Session,
    actor: User,
    name: str,
    content: bytes,
    effective_on: date | None,
    remote_addr: str | None = None,
) -> UploadOutcome:
    """Import an uploaded OWRS file whole, or nothing with every problem found. Only a rate
    editor may (``Action.RATES_EDIT``). Its new versions are proposed: they bill nothing
    until someone else approves them in the approvals queue (``decide_version``)."""
    permissions.require(actor, Action.RATES_EDIT)
    try:
        file = owrs.load_text(content.decode("utf-8", errors="replace"), name)
    except owrs.OwrsError as exc:
        return UploadOutcome(problems=[exc])
    problems = rate_schedules.validate_owrs(file)
    if problems:
        return UploadOutcome(problems=problems)
    result = rate_schedules.import_owrs(
        session, file, effective_on=effective_on, actor=actor, remote_addr=remote_addr, proposed_by=actor
    )
    if not result.ok:
        assert result.error is not None
        return UploadOutcome(problems=[result.error])
    return UploadOutcome(created_versions=result.created_versions)


def decide_version(
    session: Session, actor: User, version_id: int | str, decision: str, note: str, now: datetime
) -> RateScheduleVersion:
    """Approve or reject a proposed rate version (``approve`` / ``reject``, a reason for a
    reject): someone with ``RATES_APPROVE`` who did not propose it."""
    try:
        number = int(version_id)
    except (TypeError, ValueError):
        raise NotFound(str(version_id)) from None
    item = session.get(RateScheduleVersion, number, with_for_update=True)
    if item is None:
        raise NotFound(str(version_id))
    if decision not in ("approve", "reject"):
        raise InvalidInput("Choose approve or reject.", "decision")
    return rate_schedules.decide(session, item, actor, decision == "approve", note, now)


# --------------------------------------------------------------------------- the quote contract

QUOTE_COLUMNS = ("bill", "error")


def quote_cases(owrs_root: str | Path, cases: IO[str], out: IO[str]) -> tuple[int, int]:
    """Read the cases CSV and write it back with ``bill`` and ``error`` columns.

    Returns (rows, rows with an error). A row that cannot be billed gets an empty
    bill and the reason; it never stops the others."""
    root = Path(owrs_root)
    reader = csv.DictReader(cases)
    if reader.fieldnames is None:
        raise owrs.OwrsError("the cases file is empty")
    missing = [c for c in ("file", "cust_class", "usage_ccf") if c not in reader.fieldnames]
    if missing:
        raise owrs.OwrsError(f"the cases file lacks the column(s) {', '.join(missing)}")
    fieldnames = list(reader.fieldnames) + [c for c in QUOTE_COLUMNS if c not in reader.fieldnames]
    writer = csv.DictWriter(out, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    rows = errors = 0
    for row in reader:
        rows += 1
        bill, error = quote_row(root, row)
        if error:
            errors += 1
        row["bill"], row["error"] = bill, error
        writer.writerow(row)
    return rows, errors


def quote_row(root: Path, row: dict[str, str]) -> tuple[str, str]:
    data = {k: v for k, v in row.items() if k not in ("file", "cust_class", "bill", "error") and v not in (None, "")}
    try:
        if not row.get("file"):
            raise owrs.OwrsError("no file given")
        path = (root / row["file"]).resolve()
        if root.resolve() not in path.parents:
            raise owrs.OwrsError("the file is outside the OWRS root")
        file = owrs.load_path(path)
        if "usage_ccf" not in data:
            raise owrs.OwrsError("no usage_ccf given", file=row["file"])
        result = owrs.quote(file, (row.get("cust_class") or "").strip(), data)
        return owrs.dollars(result.bill), ""
    except owrs.OwrsError as exc:
        message = str(exc).replace(str(root.resolve()) + "/", "")
        return "", message.replace("\n", " ")


def iter_files(root: str | Path) -> Iterable[Path]:
    return sorted(Path(root).rglob("*.owrs"))
