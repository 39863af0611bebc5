"""Rate schedules and their versions: reading, importing OWRS files, calculating.

A schedule (water for single-family homes, say) has versions by effective
date; a version's definition is data (see ``rating``). Versions are never
edited: a rate change is a new version with its own effective date.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from . import audit, owrs, permissions, rating
from .errors import InvalidInput, NotFound
from .models import RateSchedule, RateScheduleVersion, User
from .money import to_decimal
from .permissions import Action

#: A version's status: only an approved one bills (issue 16; the database's default).
PROPOSED, APPROVED, REJECTED = "proposed", "approved", "rejected"


@dataclass
class ImportResult:
    path: str
    utility: str = ""
    effective_on: date | None = None
    created_schedules: int = 0
    created_versions: int = 0
    unchanged_versions: int = 0
    classes: list[str] = field(default_factory=list)
    error: owrs.OwrsError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_effective_date(value: Any, path: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value or "").strip()
    for fmt in ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise owrs.OwrsError(
        f"metadata.effective_date {text!r} is not a date (use YYYY-MM-DD or MM/DD/YYYY)",
        file=path,
        field_name="effective_date",
    )


def _jsonable(value: Any) -> Any:
    """YAML values as JSON keeps them: dates as text, map keys as text, numbers as
    ``owrs.json_number`` stores them (``owrs.decimals`` reads them back as Decimal)."""
    if isinstance(value, dict):
        return {str(owrs.plain(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return owrs.json_number(value)
    return value


def validate_owrs(file: owrs.OwrsFile) -> list[owrs.OwrsError]:
    """Every problem of every class: first what can be seen without computing (sizes,
    numbers, formulas, maps), then, for a class without those, a trial computation of
    its bill (``owrs.try_class``). A file with none can be imported."""
    problems: list[owrs.OwrsError] = []
    for cust_class in file.classes:
        found = owrs.check_class(file, cust_class)
        problems += found or owrs.try_class(file, cust_class)
    return problems


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_SIDE_FOLDERS = re.compile(r"^(older|other|not .*|need .*|.*combine.*)$", re.IGNORECASE)


def utility_folder(path: str) -> str | None:
    """The corpus keeps one folder per utility ("Chino  City Of - 625"); side folders
    such as Older/ or Need to combine files/ sit inside it."""
    parts = path.replace("\\", "/").split("/")[:-1]
    while parts and _SIDE_FOLDERS.match(parts[-1].strip()):
        parts.pop()
    return parts[-1] if parts else None


def variant_of(file_name: str) -> str:
    """A file name less its dates: "wmwd-marchEast-2015-01-01.owrs" -> "wmwd-marcheast"."""
    stem = file_name.rsplit(".", 1)[0].lower()
    stem = re.sub(r"\d{1,4}[-_/.]\d{1,2}[-_/.]\d{2,4}", "", stem)
    return re.sub(r"[^a-z]+", "-", stem).strip("-")


def _schedule_code(utility: str, lineage: str, cust_class: str) -> str:
    digest = hashlib.sha1(lineage.encode()).hexdigest()[:8]
    return f"owrs-{_slug(utility)[:60]}-{digest}:{cust_class}"[:120]


def _clashing_version(session: Session, schedule_id: int, when: date, source_name: str) -> bool:
    other = session.scalar(
        select(RateScheduleVersion).where(
            RateScheduleVersion.schedule_id == schedule_id, RateScheduleVersion.effective_on == when
        )
    )
    return other is not None and other.source != source_name


def import_owrs(
    session: Session,
    file: owrs.OwrsFile,
    *,
    effective_on: date | None = None,
    actor: User | None = None,
    actor_label: str | None = None,
    remote_addr: str | None = None,
    proposed_by: User | None = None,
) -> ImportResult:
    """Import every class of one OWRS file, or nothing: a savepoint wraps the file.

    With ``proposed_by`` (an upload by a rate editor) each new version is *proposed*: it
    waits in the approvals queue and bills nothing until someone else approves it
    (``decide``). A rejected version of the same date is replaced by the new proposal.
    Without it (the operator's ``portal rates import-owrs``) versions are approved at once."""
    result = ImportResult(path=file.path)
    problems = validate_owrs(file)
    if problems:
        result.error = problems[0]
        if len(problems) > 1:
            result.error = owrs.OwrsError(
                f"{problems[0].reason} (and {len(problems) - 1} more problem(s))",
                file=problems[0].file,
                cust_class=problems[0].cust_class,
                field_name=problems[0].field_name,
            )
        return result
    try:
        when = effective_on or parse_effective_date(file.metadata.get("effective_date"), file.path)
    except owrs.OwrsError as exc:
        result.error = exc
        return result
    utility = str(file.metadata.get("utility_name") or "").strip() or utility_folder(file.path) or "Utility"
    result.utility, result.effective_on = utility, when
    source_name = file.path.replace("\\", "/").rsplit("/", 1)[-1]
    lineage = f"{utility_folder(file.path) or utility}|{variant_of(source_name)}"
    try:
        with session.begin_nested():
            for cust_class, body in file.classes.items():
                code = _schedule_code(utility, lineage, cust_class)
                schedule = session.scalar(select(RateSchedule).where(RateSchedule.code == code))
                clash = schedule is not None and _clashing_version(session, schedule.id, when, source_name)
                if clash:
                    # Another file of this utility holds a different version for the same date
                    # (a second division, a split file): keep this file's rates as their own schedule.
                    code = _schedule_code(utility, f"{lineage}|{source_name}", cust_class)
                    schedule = session.scalar(select(RateSchedule).where(RateSchedule.code == code))
                if schedule is None:
                    schedule = RateSchedule(
                        code=code,
                        name=f"{utility}: water, {cust_class.replace('_', ' ').lower()}"[:300],
                        service_type="water",
                        customer_class=cust_class,
                        source=f"OWRS: {utility}"[:300],
                    )
                    session.add(schedule)
                    session.flush()
                    result.created_schedules += 1
                definition = {
                    "format": "owrs",
                    "class": cust_class,
                    "unit": file.bill_unit,
                    "metadata": _jsonable(file.metadata),
                    "rate_structure": _jsonable(body),
                    "source": source_name,
                }
                existing = session.scalar(
                    select(RateScheduleVersion).where(
                        RateScheduleVersion.schedule_id == schedule.id, RateScheduleVersion.effective_on == when
                    )
                )
                if existing is not None and existing.status == REJECTED and proposed_by is not None:
                    existing.definition, existing.source = definition, definition["source"][:300]
                    existing.status, existing.proposed_by_id = PROPOSED, proposed_by.id
                    existing.decided_by_id = existing.decided_at = existing.decision_note = None
                    result.created_versions += 1
                elif existing is not None:
                    if existing.definition != definition:
                        raise owrs.OwrsError(
                            f"{schedule.code} already has a different version effective {when:%m/%d/%Y}; "
                            "a version is never changed, so give the new one its own effective date",
                            file=file.path,
                            cust_class=cust_class,
                        )
                    result.unchanged_versions += 1
                else:
                    session.add(
                        RateScheduleVersion(
                            schedule_id=schedule.id,
                            effective_on=when,
                            definition=definition,
                            source=definition["source"][:300],
                            status=PROPOSED if proposed_by is not None else APPROVED,
                            proposed_by_id=proposed_by.id if proposed_by is not None else None,
                        )
                    )
                    result.created_versions += 1
                result.classes.append(cust_class)
            session.flush()
            audit.record(
                session,
                "rates.import_owrs",
                actor=actor,
                actor_label=actor_label,
                entity_type="rate_file",
                entity_id=file.path.rsplit("/", 1)[-1][:40],
                remote_addr=remote_addr,
                after={
                    "utility": utility,
                    "effective_on": when.isoformat(),
                    "classes": result.classes,
                    "new_versions": result.created_versions,
                    "status": PROPOSED if proposed_by is not None else APPROVED,
                },
            )
    except owrs.OwrsError as exc:
        result.error = exc
        result.created_schedules = result.created_versions = result.unchanged_versions = 0
        result.classes = []
    return result


# --------------------------------------------------------------------------- reading


def schedules(session: Session) -> list[RateSchedule]:
    """Every schedule with its versions, without their definitions (read when used)."""
    return list(
        session.scalars(
            select(RateSchedule)
            .options(selectinload(RateSchedule.versions).defer(RateScheduleVersion.definition))
            .order_by(RateSchedule.service_type, RateSchedule.customer_class, RateSchedule.name)
        )
    )


def version(session: Session, version_id: int) -> RateScheduleVersion:
    found = session.scalar(
        select(RateScheduleVersion)
        .where(RateScheduleVersion.id == version_id)
        .options(selectinload(RateScheduleVersion.schedule))
    )
    if found is None:
        raise NotFound(f"no rate version {version_id}")
    return found


def cart_sizes(definition: Mapping[str, Any] | None) -> list[str]:
    """The cart sizes a rate definition prices (its ``fixed_by_option`` on ``cart_size``);
    empty for a rate that does not price by cart (a commercial bin)."""
    for comp in (definition or {}).get("components", []):
        names = comp.get("options") or [comp.get("option")]
        if comp.get("type") == "fixed_by_option" and names == ["cart_size"]:
            return sorted((str(k) for k in comp.get("values", {})), key=lambda v: (len(v), v))
    return []


def version_in_force(schedule: RateSchedule, on: date) -> RateScheduleVersion | None:
    """The approved version in force ``on`` a day: a proposed or rejected one never is."""
    current = [v for v in schedule.versions if v.effective_on <= on and v.status == APPROVED]
    return current[-1] if current else None


# --------------------------------------------------------------------------- approval (issue 16)


def proposed(session: Session) -> list[RateScheduleVersion]:
    """Versions waiting for a decision, oldest first."""
    return list(
        session.scalars(
            select(RateScheduleVersion)
            .where(RateScheduleVersion.status == PROPOSED)
            .order_by(RateScheduleVersion.created_at, RateScheduleVersion.id)
        )
    )


def decide(
    session: Session, item: RateScheduleVersion, actor: User, approve: bool, note: str, now: datetime
) -> RateScheduleVersion:
    """Approve a proposed version (it bills from its effective date on) or reject it (with
    why; it never bills). Only a rate approver who is not the proposer; audited."""
    permissions.require_approver(actor, Action.RATES_APPROVE, item.proposed_by_id)
    if item.status != PROPOSED:
        raise InvalidInput(f"This rate version is already {item.status}.", "decision")
    note = (note or "").strip()[:2000]
    if not approve and not note:
        raise InvalidInput("Say why the rate version is rejected.", "decision_note")
    before = item.status
    item.status = APPROVED if approve else REJECTED
    item.decided_by_id, item.decided_at, item.decision_note = actor.id, now, note or None
    audit.record(
        session,
        f"rates.version_{item.status}",
        actor=actor,
        entity_type="rate_schedule_version",
        entity_id=item.id,
        before={"status": before},
        after={"status": item.status, "note": item.decision_note, "effective_on": item.effective_on.isoformat()},
    )
    return item


@dataclass(frozen=True)
class Comparison:
    current: list[rating.LineDraft]
    proposed: list[rating.LineDraft]

    @property
    def current_cents(self) -> int:
        return sum(line.amount_cents for line in self.current)

    @property
    def proposed_cents(self) -> int:
        return sum(line.amount_cents for line in self.proposed)

    @property
    def difference_cents(self) -> int:
        return self.proposed_cents - self.current_cents


def calculate(
    service: str,
    current: RateScheduleVersion,
    proposed: RateScheduleVersion | None,
    usage: rating.Usage,
    days: int = 30,
    *,
    period_end: date,
) -> Comparison:
    """What a bill comes to under a version, and under another one, for the same usage, for
    a period of ``days`` ending the day before ``period_end`` (a seasonal rate's season)."""

    def lines(v: RateScheduleVersion | None) -> list[rating.LineDraft]:
        if v is None:
            return []
        return rating.rate(service, v.definition, usage, v.id, days=days, period_end=period_end)

    return Comparison(lines(current), lines(proposed))


# --------------------------------------------------------------------------- plain words


@dataclass(frozen=True)
class Row:
    label: str
    value: str


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def describe(definition: Mapping[str, Any]) -> list[Table]:
    """A version in plain words: one small table per charge."""
    if definition.get("format") == "owrs":
        return _describe_owrs(definition)
    unit = definition.get("unit", "CCF")
    tables = []
    for comp in definition.get("components", []):
        kind = comp.get("type")
        title = comp.get("description", kind.replace("_", " ").capitalize() if kind else "Charge")
        if kind == "fixed":
            tables.append(Table(title, ("Charge", "Each period"), (("Every account", _money(comp["amount"])),)))
        elif kind in ("fixed_by_meter_size", "fixed_by_option"):
            by = comp.get("by") or "/".join(comp.get("options") or [comp.get("option", "meter_size")])
            tables.append(
                Table(
                    title,
                    (by.replace("_", " ").capitalize(), "Each period"),
                    tuple((k, _money(v)) for k, v in comp["values"].items()),
                )
            )
        elif kind == "per_dwelling_unit":
            tables.append(Table(title, ("Charge", "Each period"), (("Per dwelling unit", _money(comp["amount"])),)))
        elif kind == "uniform":
            tables.append(Table(title, ("Usage", f"Price per {unit}"), (("Every unit", _money(comp["price"])),)))
        elif kind == "seasonal_uniform":
            tables.append(
                Table(
                    title,
                    ("Season", f"Price per {unit}"),
                    tuple((s.capitalize(), _money(p)) for s, p in comp["prices"].items()),
                )
            )
        elif kind == "tiered":
            rows, low = [], Decimal(0)
            for n, t in enumerate(comp["tiers"], start=1):
                up = t.get("up_to")
                span = f"over {low:f} {unit}" if up in (None, "") else f"{low:f} to {to_decimal(up):f} {unit}"
                rows.append((f"Tier {n}", span, _money(t["price"])))
                low = to_decimal(up) if up not in (None, "") else low
            tables.append(
                Table(title or "Water usage", ("Tier", "Usage each period", f"Price per {unit}"), tuple(rows))
            )
        elif kind == "budget":
            rows = []
            for n, t in enumerate(comp["tiers"], start=1):
                pct = t.get("up_to_percent")
                rows.append(
                    (
                        f"Tier {n}",
                        "above the last tier" if pct in (None, "") else f"up to {pct}% of your budget",
                        _money(t["price"]),
                    )
                )
            note = (
                f"Your budget: {comp['gpcd']} gallons per person per day indoors, plus outdoor water for your "
                "irrigated area and the weather."
            )
            tables.append(Table(title, ("Tier", "Usage", f"Price per {unit}"), tuple(rows), note))
        elif kind == "sewer_share":
            tables.append(
                Table(
                    title,
                    ("Basis", f"Price per {unit}"),
                    ((f"{comp.get('percent', '100')}% of water use", _money(comp["price"])),),
                )
            )
        elif kind == "winter_average":
            cap = f", at most {comp['cap']} {unit}" if comp.get("cap") else ""
            tables.append(
                Table(
                    title, ("Basis", f"Price per {unit}"), ((f"Average winter water use{cap}", _money(comp["price"])),)
                )
            )
        elif kind == "minimum":
            tables.append(Table(title, ("Rule", "Amount"), (("Charges are at least", _money(comp["amount"])),)))
        elif kind in ("discount", "tax"):
            who = f" for {comp['program'].replace('_', ' ')} customers" if comp.get("program") else ""
            tables.append(Table(title, ("Rule", "Rate"), ((f"Of the charges above{who}", f"{comp['percent']}%"),)))
    return tables


def _describe_owrs(definition: Mapping[str, Any]) -> list[Table]:
    body = definition["rate_structure"]
    unit = definition.get("unit", "CCF")
    tables: list[Table] = []
    simple: list[tuple[str, str]] = []
    shown_lists: set[str] = set()
    for name in body:
        if not name.startswith("tier_starts"):
            continue
        suffix = name[len("tier_starts") :]
        starts, prices = body.get(name), body.get(f"tier_prices{suffix}")
        if isinstance(starts, list) and isinstance(prices, list) and len(starts) == len(prices):
            rows = tuple(
                (f"Tier {n}", f"from unit {start}" if n > 1 else "first units", _owrs_value("price", price))
                for n, (start, price) in enumerate(zip(starts, prices, strict=True), start=1)
            )
            title = "Usage tiers" + (f" ({suffix.strip('_')})" if suffix else "")
            tables.append(
                Table(
                    title,
                    ("Tier", "Starts at", f"Price per {unit}"),
                    rows,
                    "A tier starts at the first unit billed at its price; shares such as 100% are of "
                    "the customer's water budget.",
                )
            )
            shown_lists |= {name, f"tier_prices{suffix}"}
    for name, raw in body.items():
        if name in shown_lists:
            continue
        label = rating._label(name)  # noqa: SLF001 - same package
        if isinstance(raw, dict) and isinstance(raw.get("values"), dict):
            deps = raw.get("depends_on")
            deps = [deps] if isinstance(deps, str) else list(deps or [])
            values = raw["values"]
            if all(not isinstance(v, (list, dict)) for v in values.values()):
                tables.append(
                    Table(
                        label,
                        (" / ".join(d.replace("_", " ") for d in deps).capitalize(), "Value"),
                        tuple((k.replace("|", " "), _owrs_value(name, v)) for k, v in values.items()),
                    )
                )
            else:
                tables.append(Table(label, ("Depends on", "Values"), ((", ".join(deps), f"{len(values)} choices"),)))
        elif isinstance(raw, list):
            simple.append((label, ", ".join(str(x) for x in raw)))
        else:
            simple.append((label, _owrs_value(name, raw)))
    if simple:
        tables.insert(
            0, Table("Parts of the rate", ("Part", "Value or formula"), tuple(simple), f"Usage is in {unit}.")
        )
    return tables


_MONEY_WORDS = ("charge", "price", "rate", "fee", "surcharge", "cost")


def _owrs_value(name: str, value: Any) -> str:
    """Numbers that are money read as money; formulas and factors as written."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        if any(word in name.lower() for word in _MONEY_WORDS):
            return _money(value)
    return str(value)


def _money(value: Any) -> str:
    """A price as the ordinance states it: two decimals, or more when it has them."""
    amount = owrs.decimals(value) if isinstance(value, float) else to_decimal(value)
    if amount == amount.quantize(Decimal("0.01")):
        return f"${amount:,.2f}"
    return f"${amount.normalize():f}"


def versions_for(schedule: RateSchedule) -> Sequence[tuple[date, int, Mapping[str, Any]]]:
    return [(v.effective_on, v.id, v.definition) for v in schedule.versions if v.status == APPROVED]
