"""The collection policy's staff pages, one use case per function: the policy in plain words
with its versions (and a supervisor's new version from a form), the agency's closure days,
an account's shutoff protections, and a shutoff order issued by hand (the staff button and
``portal shutoff order``), which passes the same gate as the daily run.

Each takes its session or session factory and clock values from its caller; every change
is permission-checked and audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..billing_core import (
    audit,
    collection_facts,
    field_orders,
    holidays,
    ladder_policy,
    ladder_versions,
    payments,
    permissions,
)
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.ladder_policy import Ladder, LadderPolicy, LateFee
from ..billing_core.models import (
    Account,
    AgencyClosure,
    AuditEvent,
    CollectionAction,
    DelinquencyPolicyVersion,
    Service,
    ShutoffProtection,
    User,
    WorkOrder,
)
from ..billing_core.permissions import Action
from ..billing_core.shutoff_gate import Facts, Refusal, check
from ..billing_core.users import parse_amount


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


def _services(session: Session, account_id: int, on: date) -> list[Service]:
    return [
        s
        for s in session.scalars(select(Service).where(Service.account_id == account_id))
        if s.started_on <= on and (s.ended_on is None or s.ended_on > on)
    ]


# --- The policy page -------------------------------------------------------------------------


@dataclass(frozen=True)
class LadderWords:
    title: str
    sentences: list[str]


@dataclass(frozen=True)
class PolicyPage:
    version: DelinquencyPolicyVersion | None
    policy: LadderPolicy
    ladders: list[LadderWords]
    rules: list[str]
    versions: list[DelinquencyPolicyVersion]
    names: dict[int, str]
    can_change: bool


def policy_page(session: Session, user: User, on: date) -> PolicyPage:
    permissions.require(user, Action.COLLECTIONS_VIEW)
    version, policy = ladder_versions.current(session, on)
    versions = ladder_versions.history(session)
    ids = {v.created_by_id for v in versions if v.created_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    words = [
        LadderWords(ladder_policy.ladder_title(lad), ladder_policy.describe_ladder(lad, policy))
        for lad in policy.ladders
    ]
    per_ladder = sum(len(w.sentences) for w in words) + (len(words) if len(words) > 1 else 0)
    return PolicyPage(
        version=version,
        policy=policy,
        ladders=words,
        rules=ladder_policy.describe(policy)[per_ladder:],
        versions=versions,
        names=names,
        can_change=permissions.can(user.role, Action.COLLECTIONS_POLICY),
    )


#: The form's fields for the ladder that applies to every service and class: (field, label, kind).
LADDER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("late_fee_percent", "Late fee, percent of the past-due amount", "percent"),
    ("late_fee_flat", "Late fee, flat amount", "money"),
    ("late_fee_cap", "Late fee at most (empty: no cap)", "money?"),
    ("late_fee_minimum", "No late fee when less than this is past due", "money"),
    ("late_fee_day", "Late fee: days after the due date", "days"),
    ("past_due_notice_day", "Past-due notice: days after the due date", "days"),
    ("final_notice_day", "Written shutoff notice: days after the due date", "days"),
    (
        "door_tag_day",
        "Door tag: its day in the ladder (empty: no door tag; it is left its hours before the shutoff)",
        "days?",
    ),
    ("door_tag_hours", "Door tag: hours before the shutoff", "days?"),
    ("shutoff_day", "Shutoff order: days after the due date", "days"),
    ("minimum_shutoff", "No shutoff when less than this is past due", "money"),
    ("reconnection_fee", "Reconnection fee, business hours", "money"),
    ("reconnection_after_hours_fee", "Reconnection fee, after hours", "money"),
    ("collection_referral_day", "Final account to a collection agency: days after the final bill's due date", "days"),
    ("tax_roll_lien_day", "Final sewer and sanitation balance to the tax roll: days after", "days"),
    ("write_off_day", "Final balance proposed for write-off: days after", "days"),
)
#: The policy-wide numbers: (field, label).
POLICY_FIELDS: tuple[tuple[str, str], ...] = (
    ("days_delinquent_before_shutoff", "Days delinquent before a shutoff (the Act: at least 60)"),
    ("notice_business_days", "Business days between the written notice and a shutoff (the Act: at least 7)"),
    (
        "low_income_reconnect_cap_cents",
        "Low-income reconnection fee cap, business hours, in cents (the Act: $50 at most)",
    ),
    (
        "low_income_after_hours_cap_cents",
        "Low-income reconnection fee cap, after hours, in cents (the Act: $150 at most)",
    ),
    ("plan_grace_days", "Days after an unpaid installment before a plan breaks"),
    ("extension_max_days", "Longest extension, in days"),
    ("max_plan_months", "Longest payment plan, in months"),
)

#: Where a problem of the body (``ladder_policy`` field names) is shown on the form.
_BODY_TO_FORM = {
    "ladders.0.late_fee.percent": "late_fee_percent",
    "ladders.0.late_fee.flat_cents": "late_fee_flat",
    "ladders.0.late_fee.cap_cents": "late_fee_cap",
    "ladders.0.late_fee.minimum_past_due_cents": "late_fee_minimum",
    "ladders.0.grace_days": "late_fee_day",
    "ladders.0.door_tag": "door_tag_hours",
    "ladders.0.shutoff_order": "shutoff_day",
    "ladders.0.final_notice": "final_notice_day",
    "ladders.0.steps": "shutoff_day",
    "ladders.0.minimum_shutoff_cents": "minimum_shutoff",
    "ladders.0.reconnection_fee_cents": "reconnection_fee",
    "ladders.0.reconnection_after_hours_fee_cents": "reconnection_after_hours_fee",
    "ladders.0.final_steps": "collection_referral_day",
    "ladders": "other_ladders",
}


def _money(cents: int | None) -> str:
    return "" if cents is None else f"{cents / 100:.2f}"


def form_values(policy: LadderPolicy) -> dict[str, str]:
    """The form filled in with ``policy`` (its ladder for every service and class, the rest
    as YAML)."""
    base = policy.ladder_for("*", "*")
    fee = base.late_fee or LateFee()
    step = {s.kind: s for s in base.steps + base.final_steps}

    def day(kind: str) -> str:
        return str(step[kind].day) if kind in step else ""

    values = {
        "late_fee_percent": f"{fee.percent.normalize():f}",
        "late_fee_flat": _money(fee.flat_cents),
        "late_fee_cap": _money(fee.cap_cents),
        "late_fee_minimum": _money(fee.minimum_past_due_cents),
        "late_fee_day": day("late_fee") or str(base.grace_days),
        "past_due_notice_day": day("past_due_notice"),
        "final_notice_day": day("final_notice"),
        "door_tag_day": day("door_tag"),
        "door_tag_hours": str(step["door_tag"].hours_before or 48) if "door_tag" in step else "",
        "shutoff_day": day("shutoff_order"),
        "minimum_shutoff": _money(base.minimum_shutoff_cents),
        "reconnection_fee": _money(base.reconnection_fee_cents),
        "reconnection_after_hours_fee": _money(base.reconnection_after_hours_fee_cents),
        "collection_referral_day": day("collection_referral"),
        "tax_roll_lien_day": day("tax_roll_lien"),
        "write_off_day": day("write_off"),
        "office_phone": policy.office_phone,
    }
    for name, _label in POLICY_FIELDS:
        values[name] = str(getattr(policy, name))
    others = [lad for lad in policy.ladders if lad is not base]
    raw = policy.to_dict()["ladders"]
    values["other_ladders"] = (
        yaml.safe_dump([raw[policy.ladders.index(lad)] for lad in others], sort_keys=False) if others else ""
    )
    return values


def body_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The body of a new version from the form (``FieldErrors`` by form field when a value is
    not a number, or the other ladders are not YAML or JSON)."""
    errors: dict[str, InvalidInput] = {}

    def text(name: str) -> str:
        return (form.get(name) or "").strip()

    def money(name: str, optional: bool = False) -> int | None:
        if not text(name):
            if optional:
                return None
            return 0
        cents = parse_amount(text(name))
        if cents is None or cents < 0:
            errors[name] = InvalidInput("Enter an amount in dollars and cents, like 10.00.", name)
            return 0
        return cents

    def whole(name: str, optional: bool = False) -> int | None:
        if not text(name):
            if optional:
                return None
            errors[name] = InvalidInput("Enter a whole number.", name)
            return 0
        if not text(name).isdigit() or len(text(name)) > 6:
            errors[name] = InvalidInput("Enter a whole number, 0 or more.", name)
            return 0
        return int(text(name))

    try:
        percent = Decimal(text("late_fee_percent") or "0")
        if not percent.is_finite() or percent < 0 or percent > 100:
            raise InvalidOperation
    except InvalidOperation:
        errors["late_fee_percent"] = InvalidInput("Enter a percent from 0 to 100, like 1.5.", "late_fee_percent")
        percent = Decimal(0)
    late_day = whole("late_fee_day") or 0
    steps: list[dict[str, Any]] = [{"kind": "late_fee", "day": late_day, "hours_before": None}]
    steps.append({"kind": "past_due_notice", "day": whole("past_due_notice_day"), "hours_before": None})
    steps.append({"kind": "final_notice", "day": whole("final_notice_day"), "hours_before": None})
    tag_day = whole("door_tag_day", optional=True)
    if tag_day is not None:
        hours = whole("door_tag_hours", optional=True)
        steps.append({"kind": "door_tag", "day": tag_day, "hours_before": hours or 48})
    steps.append({"kind": "shutoff_order", "day": whole("shutoff_day"), "hours_before": None})
    final_steps = [
        {"kind": kind, "day": whole(f"{kind}_day"), "hours_before": None}
        for kind in ("collection_referral", "tax_roll_lien", "write_off")
        if text(f"{kind}_day")
    ]
    base = {
        "service": "*",
        "customer_class": "*",
        "grace_days": late_day,
        "late_fee": {
            "flat_cents": money("late_fee_flat"),
            "percent": str(percent),
            "cap_cents": money("late_fee_cap", optional=True),
            "minimum_past_due_cents": money("late_fee_minimum"),
            "exempt_classes": [],
        },
        "steps": steps,
        "final_steps": final_steps,
        "minimum_shutoff_cents": money("minimum_shutoff"),
        "reconnection_fee_cents": money("reconnection_fee"),
        "reconnection_after_hours_fee_cents": money("reconnection_after_hours_fee"),
    }
    others: list[Any] = []
    if text("other_ladders"):
        try:
            loaded = yaml.safe_load(text("other_ladders"))  # JSON is YAML too
        except yaml.YAMLError as exc:
            errors["other_ladders"] = InvalidInput(
                f"This is not YAML or JSON: {str(exc).splitlines()[0]}", "other_ladders"
            )
            loaded = []
        if loaded is None:
            loaded = []
        if not isinstance(loaded, list):
            errors["other_ladders"] = InvalidInput(
                "Give the other ladders as a list (one item per ladder).", "other_ladders"
            )
        else:
            others = loaded
    body: dict[str, Any] = {"ladders": [base, *others], "office_phone": text("office_phone")}
    for name, _label in POLICY_FIELDS:
        body[name] = whole(name)
    if not text("office_phone"):
        errors["office_phone"] = InvalidInput("Enter the phone number notices give.", "office_phone")
    if errors:
        raise FieldErrors(errors)
    return body


def _on_form(exc: FieldErrors) -> FieldErrors:
    """Problems of a body named by the form field they are shown next to."""
    out: dict[str, InvalidInput] = {}
    for name, problem in exc.errors.items():
        target = _BODY_TO_FORM.get(name)
        if target is None and name.startswith("ladders.") and not name.startswith("ladders.0."):
            target = "other_ladders"
            index, _, rest = name.removeprefix("ladders.").partition(".")
            where = f"ladder {int(index)}" + (f", {rest}" if rest else "") if index.isdigit() else name
            problem = InvalidInput(f"{where}: {problem.message}", target)
        elif target is None and name.startswith("ladders.0."):
            target = name.removeprefix("ladders.0.").split(".")[0] + "_day"
            target = target if target in {f for f, _l, _k in LADDER_FIELDS} else "shutoff_day"
        elif target is None:
            target = name
        if target in out:
            out[target] = InvalidInput(out[target].message + " " + problem.message, target)
        else:
            out[target] = problem
    return FieldErrors(out)


def propose(factory: sessionmaker[Session], user: User, form: dict[str, str], now: datetime) -> int:
    """A new version from the policy form: every problem named by its field, nothing
    written when there is one. Returns the version number."""
    permissions.require(user, Action.COLLECTIONS_POLICY)
    errors: dict[str, InvalidInput] = {}
    try:
        effective_on = date.fromisoformat((form.get("effective_on") or "").strip())
    except ValueError:
        errors["effective_on"] = InvalidInput(
            "Enter the first day of the new version, like 2027-01-01.", "effective_on"
        )
        effective_on = now.date()
    try:
        body = body_from_form(form)
    except FieldErrors as exc:
        errors.update(exc.errors)
        body = None
    with transaction(factory) as session:
        if body is not None:
            try:
                row = ladder_versions.propose(session, user, body, effective_on, form.get("note") or "", now)
            except FieldErrors as exc:
                errors.update(_on_form(exc).errors)
        elif not (form.get("note") or "").strip():
            errors["note"] = InvalidInput("Say what changes and why.", "note")
        if errors:
            raise FieldErrors(errors)
        return row.version


# --- Closures ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosuresPage:
    year: int
    holidays: dict[date, str]
    closures: list[AgencyClosure]
    can_change: bool


def closures_page(session: Session, user: User, year: int) -> ClosuresPage:
    permissions.require(user, Action.COLLECTIONS_VIEW)
    rows = list(
        session.scalars(
            select(AgencyClosure)
            .where(AgencyClosure.day >= date(year, 1, 1), AgencyClosure.day <= date(year + 1, 12, 31))
            .order_by(AgencyClosure.day)
        )
    )
    return ClosuresPage(year, holidays.names(year), rows, permissions.can(user.role, Action.COLLECTIONS_POLICY))


def add_closure(factory: sessionmaker[Session], user: User, day_text: str, name: str, now: datetime) -> date:
    """A day the agency is closed (no shutoffs then): a supervisor's, audited."""
    permissions.require(user, Action.COLLECTIONS_POLICY)
    errors: dict[str, InvalidInput] = {}
    try:
        day = date.fromisoformat(day_text.strip())
    except ValueError:
        errors["day"] = InvalidInput("Enter the day, like 2027-03-15.", "day")
        day = now.date()
    if not name.strip():
        errors["name"] = InvalidInput("Say why the office is closed.", "name")
    if not errors and day.weekday() > 4:
        errors["day"] = InvalidInput("That day is a weekend: the office is closed anyway.", "day")
    if not errors and day in holidays.california(day.year):
        errors["day"] = InvalidInput(f"That day is a holiday already: {holidays.names(day.year)[day]}.", "day")
    with transaction(factory) as session:
        if not errors and session.scalar(select(AgencyClosure.id).where(AgencyClosure.day == day)):
            errors["day"] = InvalidInput("That day is already a closure.", "day")
        if errors:
            raise FieldErrors(errors)
        row = AgencyClosure(day=day, name=name.strip()[:100], created_by_id=user.id, created_at=now)
        session.add(row)
        session.flush()
        audit.record(
            session,
            "collections.closure_added",
            actor=user,
            entity_type="agency_closure",
            entity_id=row.id,
            after={"day": day.isoformat(), "name": row.name},
        )
        return day


def remove_closure(factory: sessionmaker[Session], user: User, closure_id: int, now: datetime) -> date:
    permissions.require(user, Action.COLLECTIONS_POLICY)
    with transaction(factory) as session:
        row = session.get(AgencyClosure, closure_id)
        if row is None:
            raise NotFound(f"no closure {closure_id}")
        audit.record(
            session,
            "collections.closure_removed",
            actor=user,
            entity_type="agency_closure",
            entity_id=row.id,
            before={"day": row.day.isoformat(), "name": row.name},
        )
        session.delete(row)
        return row.day


# --- Protections ------------------------------------------------------------------------------

PROTECTION_LABELS = {
    "medical_certification": "Primary care provider's certification (a shutoff would endanger life or health)",
    "financial_inability": "Financial inability (CalWORKs, CalFresh, Medi-Cal, SSI/SSP, WIC, General Assistance, "
    "or income under 200% of the federal poverty line)",
    "willing_to_plan": "Willing to enter a payment plan",
    "low_income": "Low income (reconnection fee caps)",
}


@dataclass(frozen=True)
class ProtectionsPanel:
    account: Account
    protections: list[ShutoffProtection]
    active: set[str]
    #: What the gate would say about a shutoff order today.
    refusals: list[Refusal]
    facts: Facts
    open_shutoff: WorkOrder | None
    names: dict[int, str]
    events: list[AuditEvent]
    can_record: bool
    can_order: bool
    as_of: date


def _active(p: ShutoffProtection, on: date) -> bool:
    return p.revoked_at is None and p.starts_on <= on and (p.ends_on is None or p.ends_on >= on)


def protections_panel(session: Session, user: User, number: str, on: date) -> ProtectionsPanel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account(session, number)
    rows = list(
        session.scalars(
            select(ShutoffProtection)
            .where(ShutoffProtection.account_id == account.id)
            .order_by(ShutoffProtection.recorded_at.desc(), ShutoffProtection.id.desc())
        )
    )
    facts, refusals = gate_today(session, account, on)
    ids = {p.recorded_by_id for p in rows if p.recorded_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type.in_(("shutoff_protection", "account")), AuditEvent.action.like("shutoff%"))
            .where(AuditEvent.entity_id.in_([str(p.id) for p in rows] + [str(account.id)]))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(30)
        )
    )
    return ProtectionsPanel(
        account=account,
        protections=rows,
        active={p.kind for p in rows if _active(p, on)},
        refusals=refusals,
        facts=facts,
        open_shutoff=_open_shutoff(session, account.id),
        names=names,
        events=events,
        can_record=permissions.can(user.role, Action.PROTECTIONS_RECORD),
        can_order=permissions.can(user.role, Action.SHUTOFF_ORDER),
        as_of=on,
    )


def record_protection(
    factory: sessionmaker[Session],
    user: User,
    number: str,
    *,
    kind: str,
    detail: str,
    starts_on: str,
    ends_on: str,
    now: datetime,
) -> int:
    """Put a protection on file (``FieldErrors``: nothing written). Audited. Returns its id."""
    permissions.require(user, Action.PROTECTIONS_RECORD)
    errors: dict[str, InvalidInput] = {}
    if kind not in PROTECTION_LABELS:
        errors["kind"] = InvalidInput("Choose what is on file.", "kind")
    if kind in ("medical_certification", "financial_inability") and not detail.strip():
        errors["detail"] = InvalidInput("Say what was seen: the provider, or the program or income shown.", "detail")
    start = end = None
    try:
        start = date.fromisoformat(starts_on.strip()) if starts_on.strip() else now.date()
    except ValueError:
        errors["starts_on"] = InvalidInput("Enter the first day, like 2027-01-04.", "starts_on")
    try:
        end = date.fromisoformat(ends_on.strip()) if ends_on.strip() else None
    except ValueError:
        errors["ends_on"] = InvalidInput("Enter the last day, like 2027-07-04, or leave it empty.", "ends_on")
    if start and end and end < start:
        errors["ends_on"] = InvalidInput("The last day cannot be before the first.", "ends_on")
    with transaction(factory) as session:
        account = _account(session, number)
        if errors:
            raise FieldErrors(errors)
        assert start is not None
        row = ShutoffProtection(
            account_id=account.id,
            kind=kind,
            detail=detail.strip()[:1000],
            starts_on=start,
            ends_on=end,
            recorded_by_id=user.id,
            recorded_at=now,
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            "shutoff_protection.recorded",
            actor=user,
            entity_type="shutoff_protection",
            entity_id=row.id,
            after={
                "account": account.number,
                "kind": kind,
                "detail": row.detail,
                "starts_on": start.isoformat(),
                "ends_on": end.isoformat() if end else None,
            },
        )
        return row.id


def revoke_protection(
    factory: sessionmaker[Session], user: User, number: str, protection_id: int, now: datetime
) -> str:
    """Take a protection off file (it stays in the history, revoked). Audited."""
    permissions.require(user, Action.PROTECTIONS_RECORD)
    with transaction(factory) as session:
        account = _account(session, number)
        row = session.get(ShutoffProtection, protection_id)
        if row is None or row.account_id != account.id:
            raise NotFound(f"no protection {protection_id}")
        if row.revoked_at is not None:
            raise FieldErrors.one("protection", "That protection was revoked already.")
        row.revoked_at = now
        audit.record(
            session,
            "shutoff_protection.revoked",
            actor=user,
            entity_type="shutoff_protection",
            entity_id=row.id,
            before={"account": account.number, "kind": row.kind},
            after={"revoked_at": now.isoformat()},
        )
        return row.kind


# --- A shutoff order by hand ---------------------------------------------------------------


class ShutoffRefused(Exception):
    """The gate (or an order already open) said no: each refusal names its rule."""

    def __init__(self, refusals: list[Refusal], already: str | None = None) -> None:
        self.refusals = refusals
        self.already = already
        super().__init__(self.text)

    @property
    def messages(self) -> list[str]:
        return [r.message for r in self.refusals] + ([self.already] if self.already else [])

    @property
    def text(self) -> str:
        return " ".join(self.messages)


@dataclass(frozen=True)
class Ordered:
    order_id: int
    action_id: int
    episode: str
    amount_cents: int
    refusals: list[Refusal] = field(default_factory=list)


def gate_today(session: Session, account: Account, on: date) -> tuple[Facts, list[Refusal]]:
    """The gate's facts and answer for a shutoff order on ``on``: the version in force, the
    account's ladder, its door tag and minimum."""
    facts = collection_facts.facts_for(session, account.id, on)
    _version, policy = ladder_versions.current(session, on)
    ladder = ladder_versions.ladder_of(account, _services(session, account.id, on), policy)
    return facts, check(facts, on, policy, door_tag_hours(ladder), ladder.minimum_shutoff_cents)


def door_tag_hours(ladder: Ladder) -> int | None:
    tag = ladder.step("door_tag")
    return (tag.hours_before or 48) if tag is not None else None


def _open_shutoff(session: Session, account_id: int) -> WorkOrder | None:
    return session.scalar(
        select(WorkOrder)
        .where(WorkOrder.account_id == account_id, WorkOrder.kind == "shutoff", WorkOrder.status == "open")
        .order_by(WorkOrder.id.desc())
        .limit(1)
    )


def _open_shutoff_order(
    session: Session, account: Account, on: date, amount_cents: int, action_id: int, now: datetime, user: User
) -> WorkOrder:
    """The shutoff work order, through ``field_orders.open_order`` (once per action)."""
    return field_orders.open_order(
        session, account, "shutoff", on, amount_cents, on, action_id, now, created_by_id=user.id
    )


def issue_shutoff_order(factory: sessionmaker[Session], user: User, number: str, on: date, now: datetime) -> Ordered:
    """A supervisor's shutoff order for ``on``: through the gate (``ShutoffRefused`` naming
    each rule it breaks, nothing written), then a shutoff work order and the episode's
    ``shutoff_order`` step (so the daily run never issues a second one). Audited."""
    permissions.require(user, Action.SHUTOFF_ORDER)
    with transaction(factory) as session:
        account = _account(session, number)
        account_id = account.id
        payments.lock_account(session, account.id)
        facts, refusals = gate_today(session, account, on)
        episode = ladder_versions.episode(session, account.id, facts.oldest_unpaid_due) or f"manual:{on.isoformat()}"
        already = None
        open_order = _open_shutoff(session, account.id)
        if open_order is not None:
            already = (
                f"A shutoff order is already open for this account (order {open_order.id}, due {open_order.due_on})."
            )
        elif session.scalar(
            select(CollectionAction.id).where(
                CollectionAction.account_id == account.id,
                CollectionAction.episode == episode,
                CollectionAction.step == "shutoff_order",
                CollectionAction.status == "posted",
            )
        ):
            already = "A shutoff order was already issued for this unpaid bill."
        if refusals or already:
            refused = ShutoffRefused(refusals, already)
        else:
            return _order(session, user, account, facts, episode, on, now)
    # Outside the (rolled back) unit of work: who was refused, and why.
    with transaction(factory) as session:
        audit.record(
            session,
            "shutoff.refused",
            actor=user,
            entity_type="account",
            entity_id=account_id,
            after={"on": on.isoformat(), "rules": [r.rule for r in refused.refusals], "already": refused.already},
        )
    raise refused


def _order(
    session: Session, user: User, account: Account, facts: Facts, episode: str, on: date, now: datetime
) -> Ordered:
    version, _policy = ladder_versions.current(session, on)
    action = session.scalar(
        select(CollectionAction).where(
            CollectionAction.account_id == account.id,
            CollectionAction.episode == episode,
            CollectionAction.step == "shutoff_order",
        )
    )
    if action is None:
        action = CollectionAction(account_id=account.id, episode=episode, step="shutoff_order")
        session.add(action)
    action.status = "posted"
    action.due_on = on
    action.posted_on = on
    action.amount_cents = facts.past_due_cents
    action.reason = f"Ordered by hand by {user.email}: every rule of the shutoff gate holds."
    action.rule = None
    action.policy_version_id = version.id if version else None
    action.created_at = now
    try:
        session.flush()
    except IntegrityError:  # the run wrote it meanwhile (the account lock makes this rare)
        raise ShutoffRefused([], "A shutoff order was already issued for this unpaid bill.") from None
    order = _open_shutoff_order(session, account, on, facts.past_due_cents, action.id, now, user)
    action.work_order_id = order.id
    audit.record(
        session,
        "shutoff.ordered",
        actor=user,
        entity_type="account",
        entity_id=account.id,
        after={
            "on": on.isoformat(),
            "work_order": order.id,
            "collection_action": action.id,
            "episode": episode,
            "amount_cents": facts.past_due_cents,
        },
    )
    return Ordered(order.id, action.id, episode, facts.past_due_cents)
