"""The collection ladder as data: the dated steps an unpaid bill goes through, per service
and customer class, and the floors the law sets under them.

A ladder's steps are counted in days after the bill's due date: a late fee, a past-due
notice, a final notice (the written notice California's Water Shutoff Protection Act
requires at least 7 business days before a shutoff), a door tag 48 or 24 hours before, the
shutoff order. A final account (service stopped, final bill unpaid) goes on instead to a
collection agency referral, a lien or transfer to the property tax roll (sewer and
sanitation), and a write-off. The office keeps its policy as numbered versions
(``DelinquencyPolicyVersion``); a change is a new version from a date, never an edit.

The statutory floors (60 days delinquent, 7 business days' notice, the low-income
reconnection fee caps) are fields here too, but ``check`` refuses a policy that goes below
them: an office can be stricter with itself than the Act, never looser.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import FieldErrors, InvalidInput

#: The steps of the ladder for an account in service, in the order they happen.
STEP_KINDS = ("late_fee", "past_due_notice", "final_notice", "door_tag", "shutoff_order")
#: The steps for a final account's unpaid balance.
FINAL_STEP_KINDS = ("collection_referral", "tax_roll_lien", "write_off")
#: Services whose balance may go to the property tax roll (a lien on the parcel).
TAX_ROLL_SERVICES = ("sewer", "sanitation")
#: Services that can be shut off at the meter.
SHUTOFF_SERVICES = ("water", "irrigation", "fire", "recycled")

#: The Act's floors (Health and Safety Code 116908, 116910, 116916).
STATUTE_DAYS_DELINQUENT = 60
STATUTE_NOTICE_BUSINESS_DAYS = 7
STATUTE_LOW_INCOME_RECONNECT_CAP_CENTS = 5_000
STATUTE_LOW_INCOME_AFTER_HOURS_CAP_CENTS = 15_000


@dataclass(frozen=True)
class LateFee:
    """A penalty on the past-due amount (never on an amount in dispute)."""

    flat_cents: int = 0
    #: Percent of the past-due amount, e.g. Decimal("1.5") for 1.5 %.
    percent: Decimal = Decimal("0")
    #: No fee above this, whatever the percent gives (the statutory cap the office follows).
    cap_cents: int | None = None
    #: No fee when less than this is past due.
    minimum_past_due_cents: int = 0
    #: Customer classes never charged a late fee.
    exempt_classes: tuple[str, ...] = ()

    def amount(self, past_due_cents: int) -> int:
        """The fee on ``past_due_cents`` (integer cents, rounded half up), within the cap."""
        if past_due_cents <= 0 or past_due_cents < self.minimum_past_due_cents:
            return 0
        percent = (Decimal(past_due_cents) * self.percent / Decimal(100)).quantize(Decimal(1), "ROUND_HALF_UP")
        fee = self.flat_cents + int(percent)
        return min(fee, self.cap_cents) if self.cap_cents is not None else fee


@dataclass(frozen=True)
class Step:
    kind: str
    #: Days after the bill's due date (for final steps: after the final bill's due date).
    day: int
    #: For a door tag: hours before the shutoff it warns of (48 or 24).
    hours_before: int | None = None


@dataclass(frozen=True)
class Ladder:
    """The ladder of one service and customer class; ``*`` matches any."""

    service: str = "*"
    customer_class: str = "*"
    #: Days after the due date before a late fee (the grace period).
    grace_days: int = 0
    late_fee: LateFee | None = None
    steps: tuple[Step, ...] = ()
    final_steps: tuple[Step, ...] = ()
    #: No shutoff when less than this is past due.
    minimum_shutoff_cents: int = 0
    reconnection_fee_cents: int = 0
    reconnection_after_hours_fee_cents: int = 0

    def step(self, kind: str) -> Step | None:
        return next((s for s in self.steps + self.final_steps if s.kind == kind), None)


@dataclass(frozen=True)
class LadderPolicy:
    ladders: tuple[Ladder, ...]
    days_delinquent_before_shutoff: int = STATUTE_DAYS_DELINQUENT
    notice_business_days: int = STATUTE_NOTICE_BUSINESS_DAYS
    low_income_reconnect_cap_cents: int = STATUTE_LOW_INCOME_RECONNECT_CAP_CENTS
    low_income_after_hours_cap_cents: int = STATUTE_LOW_INCOME_AFTER_HOURS_CAP_CENTS
    #: An installment unpaid this many days after its date breaks the plan.
    plan_grace_days: int = 10
    #: The longest extension (a promise to pay by a date) staff may give, in days.
    extension_max_days: int = 30
    #: The longest payment plan, in months.
    max_plan_months: int = 12
    #: Where a customer calls about a notice (printed on every notice).
    office_phone: str = "(555) 010-0100"

    def ladder_for(self, service: str, customer_class: str) -> Ladder:
        """The most specific ladder for a service and class (exact beats ``*``)."""
        best: tuple[int, Ladder] | None = None
        for ladder in self.ladders:
            if ladder.service not in ("*", service) or ladder.customer_class not in ("*", customer_class):
                continue
            score = (ladder.service != "*") * 2 + (ladder.customer_class != "*")
            if best is None or score > best[0]:
                best = (score, ladder)
        if best is None:
            raise LookupError(f"no ladder for {service} / {customer_class}")
        return best[1]

    def reconnection_fee(self, ladder: Ladder, after_hours: bool, low_income: bool) -> int:
        """The reconnection fee; for a low-income customer never above the Act's caps."""
        fee = ladder.reconnection_after_hours_fee_cents if after_hours else ladder.reconnection_fee_cents
        if low_income:
            cap = self.low_income_after_hours_cap_cents if after_hours else self.low_income_reconnect_cap_cents
            fee = min(fee, cap)
        return fee

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


#: California common practice: 1.5 % late fee at most $10 after 5 days' grace (no fee under
#: $10 past due), a past-due notice at 10 days, the final (shutoff) notice at 45, a door tag
#: 48 hours before, the shutoff order at 60; reconnection $50 in business hours, $150 after.
#: A final balance goes to an agency at 60 days, to the tax roll (sewer, sanitation) at 90,
#: and is proposed for write-off at 180.
DEFAULT = LadderPolicy(
    ladders=(
        Ladder(
            grace_days=5,
            late_fee=LateFee(percent=Decimal("1.5"), cap_cents=1_000, minimum_past_due_cents=1_000),
            steps=(
                Step("late_fee", 5),
                Step("past_due_notice", 10),
                Step("final_notice", 45),
                Step("door_tag", 58, hours_before=48),
                Step("shutoff_order", 60),
            ),
            final_steps=(Step("collection_referral", 60), Step("tax_roll_lien", 90), Step("write_off", 180)),
            minimum_shutoff_cents=5_000,
            reconnection_fee_cents=5_000,
            reconnection_after_hours_fee_cents=15_000,
        ),
    )
)


# --- Reading a version's body ---------------------------------------------------------------


def from_dict(data: dict[str, Any]) -> LadderPolicy:
    """A policy from ``to_dict``'s shape (a stored version, or a supervisor's edit), checked
    whole: every problem by field name, nothing used when there is one."""
    errors: dict[str, InvalidInput] = {}
    if not isinstance(data, dict):
        raise FieldErrors.one("ladders", "The policy must be a mapping of settings to values.")
    raw_ladders = data.get("ladders") or ()
    if not isinstance(raw_ladders, list | tuple):
        raise FieldErrors.one("ladders", "The ladders must be a list.")
    ladders = tuple(_ladder(raw, f"ladders.{i}", errors) for i, raw in enumerate(raw_ladders))
    values: dict[str, Any] = {}
    for name in (
        "days_delinquent_before_shutoff",
        "notice_business_days",
        "low_income_reconnect_cap_cents",
        "low_income_after_hours_cap_cents",
        "plan_grace_days",
        "extension_max_days",
        "max_plan_months",
    ):
        if name in data:
            values[name] = _count(data[name], name, errors)
    if "office_phone" in data:
        values["office_phone"] = str(data["office_phone"]).strip()
    unknown = set(data) - set(values) - {"ladders"}
    for name in sorted(unknown):
        errors[name] = InvalidInput(f"Unknown setting {name!r}.", name)
    policy = replace(DEFAULT, ladders=ladders, **values)
    try:
        check(policy)
    except FieldErrors as exc:
        for name, problem in exc.errors.items():
            errors.setdefault(name, problem)
    if errors:
        raise FieldErrors(errors)
    return policy


def _count(raw: Any, name: str, errors: dict[str, InvalidInput]) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        errors[name] = InvalidInput(f"{name} must be a whole number, 0 or more.", name)
        return 0
    return raw


def _ladder(raw: Any, where: str, errors: dict[str, InvalidInput]) -> Ladder:
    if not isinstance(raw, dict):
        errors[where] = InvalidInput("Each ladder must be a mapping of settings to values.", where)
        return Ladder()
    fee = raw.get("late_fee")
    late_fee = None
    if fee and not isinstance(fee, dict):
        errors[f"{where}.late_fee"] = InvalidInput("The late fee must be a mapping of settings to values.", where)
    elif fee:
        try:
            percent = Decimal(str(fee.get("percent", "0")))
        except InvalidOperation:
            errors[f"{where}.late_fee.percent"] = InvalidInput("The percent must be a number.", where)
            percent = Decimal(0)
        cap = fee.get("cap_cents")
        late_fee = LateFee(
            flat_cents=_count(fee.get("flat_cents", 0), f"{where}.late_fee.flat_cents", errors),
            percent=percent,
            cap_cents=None if cap is None else _count(cap, f"{where}.late_fee.cap_cents", errors),
            minimum_past_due_cents=_count(
                fee.get("minimum_past_due_cents", 0), f"{where}.late_fee.minimum_past_due_cents", errors
            ),
            exempt_classes=tuple(fee.get("exempt_classes") or ()),
        )

    def steps(key: str) -> tuple[Step, ...]:
        out = []
        listed = raw.get(key) or ()
        if not isinstance(listed, list | tuple):
            errors[f"{where}.{key}"] = InvalidInput("The steps must be a list.", where)
            return ()
        for j, s in enumerate(listed):
            if not isinstance(s, dict):
                errors[f"{where}.{key}.{j}"] = InvalidInput("Each step needs a kind and a day.", where)
                continue
            hours = s.get("hours_before")
            if hours is not None:
                hours = _count(hours, f"{where}.{key}.{j}.hours_before", errors)
            out.append(Step(str(s.get("kind")), _count(s.get("day"), f"{where}.{key}.{j}.day", errors), hours))
        return tuple(out)

    return Ladder(
        service=str(raw.get("service", "*")),
        customer_class=str(raw.get("customer_class", "*")),
        grace_days=_count(raw.get("grace_days", 0), f"{where}.grace_days", errors),
        late_fee=late_fee,
        steps=steps("steps"),
        final_steps=steps("final_steps"),
        minimum_shutoff_cents=_count(raw.get("minimum_shutoff_cents", 0), f"{where}.minimum_shutoff_cents", errors),
        reconnection_fee_cents=_count(raw.get("reconnection_fee_cents", 0), f"{where}.reconnection_fee_cents", errors),
        reconnection_after_hours_fee_cents=_count(
            raw.get("reconnection_after_hours_fee_cents", 0), f"{where}.reconnection_after_hours_fee_cents", errors
        ),
    )


def check(policy: LadderPolicy) -> None:
    """Refuse a policy below the Act's floors or with steps out of order, naming each problem."""
    errors: dict[str, InvalidInput] = {}
    if policy.days_delinquent_before_shutoff < STATUTE_DAYS_DELINQUENT:
        errors["days_delinquent_before_shutoff"] = InvalidInput(
            f"The Act allows no shutoff before {STATUTE_DAYS_DELINQUENT} days delinquent.",
            "days_delinquent_before_shutoff",
        )
    if policy.notice_business_days < STATUTE_NOTICE_BUSINESS_DAYS:
        errors["notice_business_days"] = InvalidInput(
            f"The Act requires written notice at least {STATUTE_NOTICE_BUSINESS_DAYS} business days before.",
            "notice_business_days",
        )
    if policy.low_income_reconnect_cap_cents > STATUTE_LOW_INCOME_RECONNECT_CAP_CENTS:
        errors["low_income_reconnect_cap_cents"] = InvalidInput(
            "The Act caps a low-income customer's reconnection fee at $50 in business hours.",
            "low_income_reconnect_cap_cents",
        )
    if policy.low_income_after_hours_cap_cents > STATUTE_LOW_INCOME_AFTER_HOURS_CAP_CENTS:
        errors["low_income_after_hours_cap_cents"] = InvalidInput(
            "The Act caps a low-income customer's reconnection fee at $150 after hours.",
            "low_income_after_hours_cap_cents",
        )
    if not any(lad.service == "*" and lad.customer_class == "*" for lad in policy.ladders):
        errors["ladders"] = InvalidInput("One ladder must apply to every service and class (* and *).", "ladders")
    for i, ladder in enumerate(policy.ladders):
        where = f"ladders.{i}"
        kinds = [s.kind for s in ladder.steps]
        for kind in kinds:
            if kind not in STEP_KINDS:
                errors[f"{where}.steps"] = InvalidInput(f"Unknown step {kind!r}.", where)
        if len(set(kinds)) != len(kinds):
            errors[f"{where}.steps"] = InvalidInput("A step is listed twice.", where)
        days = [s.day for s in ladder.steps]
        if days != sorted(days):
            errors[f"{where}.steps"] = InvalidInput("The steps must be in order of their days.", where)
        for s in ladder.final_steps:
            if s.kind not in FINAL_STEP_KINDS:
                errors[f"{where}.final_steps"] = InvalidInput(f"Unknown final-account step {s.kind!r}.", where)
        shutoff = ladder.step("shutoff_order")
        if shutoff is not None and shutoff.day < policy.days_delinquent_before_shutoff:
            errors[f"{where}.shutoff_order"] = InvalidInput(
                f"The shutoff order cannot come before day {policy.days_delinquent_before_shutoff}.", where
            )
        if shutoff is not None and ladder.step("final_notice") is None:
            errors[f"{where}.final_notice"] = InvalidInput("A shutoff needs a final notice before it.", where)
        tag = ladder.step("door_tag")
        if tag is not None and tag.hours_before is not None and tag.hours_before < 24:
            errors[f"{where}.door_tag"] = InvalidInput("A door tag must be left at least 24 hours before.", where)
        if ladder.late_fee and ladder.late_fee.percent > 100:
            errors[f"{where}.late_fee.percent"] = InvalidInput("The percent cannot be above 100.", where)
        if ladder.late_fee and ladder.late_fee.percent < 0:
            errors[f"{where}.late_fee.percent"] = InvalidInput("The percent cannot be negative.", where)
    if errors:
        raise FieldErrors(errors)


# --- In plain words -------------------------------------------------------------------------

STEP_WORDS = {
    "past_due_notice": "A past-due notice",
    "final_notice": "The written shutoff notice (the final notice)",
    "collection_referral": "A final account's unpaid balance goes to a collection agency",
    "tax_roll_lien": (
        "A final account's sewer and sanitation balance goes to the property tax roll (a lien on the parcel)"
    ),
    "write_off": "A final account's balance still unpaid is proposed for write-off",
}


def dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}%"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def ladder_title(ladder: Ladder) -> str:
    """Whom a ladder applies to, in words."""
    service = "every service" if ladder.service == "*" else f"{ladder.service} service"
    who = "every customer class" if ladder.customer_class == "*" else f"{ladder.customer_class} customers"
    return f"For {service}, {who}"


def describe_ladder(ladder: Ladder, policy: LadderPolicy) -> list[str]:
    """One ladder's steps as plain-English sentences, in the order they happen."""
    out: list[str] = []
    fee = ladder.late_fee
    fee_step = ladder.step("late_fee")
    if fee is not None and fee_step is not None:
        parts = []
        if fee.flat_cents:
            parts.append(dollars(fee.flat_cents))
        if fee.percent:
            parts.append(f"{_percent(fee.percent)} of the past-due amount")
        what = " plus ".join(parts) or "nothing"
        text = f"A late fee of {what}"
        if fee.cap_cents is not None:
            text += f", at most {dollars(fee.cap_cents)}"
        text += f", {_days(fee_step.day)} after the due date"
        if fee.minimum_past_due_cents:
            text += f", when at least {dollars(fee.minimum_past_due_cents)} is past due"
        out.append(text + ". Never on an amount in dispute.")
        if fee.exempt_classes:
            out.append("No late fee for " + ", ".join(fee.exempt_classes) + " customers.")
    else:
        out.append("No late fee.")
    for step in ladder.steps:
        if step.kind in ("past_due_notice", "final_notice"):
            text = f"{STEP_WORDS[step.kind]} {_days(step.day)} after the due date"
            if step.kind == "final_notice":
                text += f", at least {policy.notice_business_days} business days before any shutoff"
            out.append(text + ".")
        elif step.kind == "door_tag":
            out.append(f"A door tag at the premises at least {step.hours_before or 48} hours before the shutoff.")
        elif step.kind == "shutoff_order":
            days = max(step.day, policy.days_delinquent_before_shutoff)
            text = f"A shutoff order no sooner than {_days(days)} after the due date, on a business day"
            if ladder.minimum_shutoff_cents:
                text += f", and only when at least {dollars(ladder.minimum_shutoff_cents)} is past due"
            out.append(text + ".")
    if ladder.step("shutoff_order") is None:
        out.append("No shutoff.")
    else:
        low = min(ladder.reconnection_fee_cents, policy.low_income_reconnect_cap_cents)
        low_after = min(ladder.reconnection_after_hours_fee_cents, policy.low_income_after_hours_cap_cents)
        out.append(
            f"Reconnection costs {dollars(ladder.reconnection_fee_cents)} in business hours and "
            f"{dollars(ladder.reconnection_after_hours_fee_cents)} after hours "
            f"(a low-income customer pays at most {dollars(low)} and {dollars(low_after)})."
        )
    for step in ladder.final_steps:
        out.append(f"{STEP_WORDS[step.kind]} {_days(step.day)} after the final bill's due date.")
    return out


def describe(policy: LadderPolicy) -> list[str]:
    """The whole policy as plain-English sentences: each ladder (headed by whom it applies
    to when there is more than one), then the rules for every account."""
    out: list[str] = []
    for ladder in policy.ladders:
        sentences = describe_ladder(ladder, policy)
        if len(policy.ladders) > 1:
            out.append(ladder_title(ladder) + ":")
        out.extend(sentences)
    out.extend(
        [
            f"No shutoff before a bill is {policy.days_delinquent_before_shutoff} days delinquent, nor less than "
            f"{policy.notice_business_days} business days after the written shutoff notice, nor on a weekend, "
            "a holiday or a day the office is closed.",
            "No shutoff while a bill dispute, an appeal or an investigation is pending, or while a payment plan "
            "or an extension is kept.",
            "No shutoff when a primary care provider's certification, financial inability and willingness to "
            "enter a payment plan are on file: a plan is offered instead.",
            f"Payment plans of up to {policy.max_plan_months} months; an installment unpaid "
            f"{_days(policy.plan_grace_days)} after its date breaks the plan.",
            f"Extensions (a promise to pay by a date) of up to {_days(policy.extension_max_days)}.",
            f"Every notice gives the office's phone number, {policy.office_phone}.",
        ]
    )
    return out


__all__ = [
    "DEFAULT",
    "FINAL_STEP_KINDS",
    "STEP_KINDS",
    "Ladder",
    "LadderPolicy",
    "LateFee",
    "Step",
    "check",
    "describe",
    "describe_ladder",
    "from_dict",
]
