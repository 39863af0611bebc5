"""The rate engine: a rate schedule's versions and a period's usage -> bill lines.

A version's definition is data. Native definitions are a list of components::

    {"unit": "CCF", "components": [
        {"type": "fixed_by_meter_size", "description": "Water service charge",
         "values": {"5/8\\"": "24.61", "1\\"": "38.15"}},
        {"type": "tiered", "description": "Water usage",
         "tiers": [{"up_to": "10", "price": "2.50"}, {"up_to": null, "price": "3.10"}]},
        {"type": "tax", "description": "Utility users tax", "percent": "5"}]}

Component types:

- ``fixed``: ``amount`` each period.
- ``fixed_by_meter_size``: ``values`` by meter size (``by`` may name another
  input, such as ``line_size`` for fire service).
- ``fixed_by_option``: ``values`` by service options, e.g. ``option: cart_size``
  or ``options: [cart_size, pickups]`` with keys joined by ``|``. Priced by
  ``cart_size``, it is charged once per cart: times the service's ``carts``
  option (one when the service has none).
- ``per_dwelling_unit``: ``amount`` times the premise's dwelling units.
- ``uniform``: ``price`` per unit of usage.
- ``seasonal_uniform``: ``prices`` by season, ``seasons`` naming each season's
  months; the season is the one the period's last day falls in.
- ``tiered``: blocks ``up_to`` a usage (``null`` for the last) at a price each;
  prices may rise or fall. Widths scale with the days billed (proration).
- ``budget``: tiers as shares of a water budget: indoor ``gpcd`` x household
  size x days / 748 plus outdoor ET x ``landscape_factor`` x irrigated area x
  0.62 / 748, each rounded to whole units; ``tiers`` give ``up_to_percent``.
- ``sewer_share``: ``price`` x water usage x ``percent`` (return to sewer).
- ``winter_average``: ``price`` x the winter-quarter average usage, capped at
  ``cap`` units.
- ``minimum``: raises the service's charges so far to ``amount``.
- ``discount``: ``percent`` off the service's charges so far, when the account
  has the named ``program`` (low income, senior, ...).
- ``tax``: ``percent`` of the service's charges so far.

A definition with ``"format": "owrs"`` holds one customer class of an OWRS
file and is computed by ``billing_core.owrs``.

Every amount is worked out in ``Decimal`` and each line is rounded once, to
cents, by ``money.round_cents``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from operator import attrgetter
from typing import Any, NamedTuple

from . import owrs
from .errors import InvalidInput
from .money import cents_to_decimal, round_cents, to_decimal

ONE = Decimal(1)
ZERO = Decimal(0)
HUNDRED = Decimal(100)
GALLONS_PER_CCF = Decimal(748)
WHOLE = Decimal(1)

SEASONS_DEFAULT = {"summer": [5, 6, 7, 8, 9, 10], "winter": [11, 12, 1, 2, 3, 4]}


@dataclass(frozen=True)
class LineDraft:
    service: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount_cents: int
    rate_version_id: int | None = None


class Usage(NamedTuple):
    """What a period's bill depends on, besides the rates. (A named tuple: a bill
    run builds one per service per account, and tuples are the cheapest to make.)"""

    quantity: Decimal = ZERO
    meter_size: str | None = None
    options: Mapping[str, str] | None = None
    dwelling_units: int = 1
    #: Water usage of the same period (for sewer charged on water use).
    water_quantity: Decimal | None = None
    #: Winter-quarter average usage (for sewer by winter average).
    winter_average: Decimal | None = None
    #: Budget inputs: household size, irrigated area (sq ft), ET (inches).
    household_size: Decimal | None = None
    irrigated_area: Decimal | None = None
    et_amount: Decimal | None = None
    #: Assistance programs the account is enrolled in ("low_income", "senior").
    programs: frozenset[str] = frozenset()
    #: Extra data columns an OWRS rate may need (pressure_zone, city_limits, ...).
    data: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Segment:
    """A part of a billing period rated under one version."""

    start: date
    end: date
    #: Share of the period's usage in this segment, and of a full period's fixed charges.
    usage_share: Decimal
    factor: Decimal
    version_id: int | None
    definition: Mapping[str, Any] | Rater

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def rate(
    service: str,
    definition: Mapping[str, Any],
    usage: Usage,
    rate_version_id: int | None = None,
    factor: Decimal = ONE,
    days: int | None = None,
    note: str = "",
    period_end: date | None = None,
) -> list[LineDraft]:
    """Lines for one version over one (whole or partial) period.

    ``factor`` is the share of a full period being billed: fixed charges and
    tier widths are multiplied by it. ``note`` is added to each description
    (for example the dates of a split period)."""
    if definition.get("format") == "owrs":
        return _rate_owrs(service, definition, usage, rate_version_id, factor, days, note)
    unit = definition.get("unit", "CCF")
    lines: list[LineDraft] = []
    suffix = f" ({note})" if note else ""

    def add(desc: str, qty: Decimal, unit_: str, price: Decimal, amount: Decimal) -> None:
        lines.append(LineDraft(service, desc + suffix, qty, unit_, price, round_cents(amount), rate_version_id))

    def add_fixed(desc: str, price: Decimal) -> None:
        if factor == ONE:
            add(desc, ONE, "each", price, price)
        else:
            add(f"{desc}, prorated {_pct(factor)}", factor, "period", price, price * factor)

    def subtotal() -> Decimal:
        return sum((Decimal(line.amount_cents) for line in lines), ZERO) / HUNDRED

    for comp in definition.get("components", []):
        kind = comp.get("type")
        desc = comp.get("description", service.title())
        if kind == "fixed":
            add_fixed(desc, to_decimal(comp["amount"]))
        elif kind == "fixed_by_meter_size":
            by = comp.get("by", "meter_size")
            key = (
                usage.meter_size if by == "meter_size" else (usage.options or {}).get(by) or (usage.data or {}).get(by)
            )
            price = _pick(comp["values"], key, by, desc)
            add_fixed(f"{desc} ({key} {'meter' if by == 'meter_size' else by.replace('_', ' ')})", price)
        elif kind == "fixed_by_option":
            names = comp.get("options") or [comp["option"]]
            chosen = "|".join(str((usage.options or {}).get(n, "")) for n in names)
            price = _pick(comp["values"], chosen, "/".join(names), desc)
            label = comp.get("label", "{value}").format(value=chosen, **dict(usage.options or {}))
            carts = _carts(usage) if "cart_size" in names else 1
            if carts == 1:
                add_fixed(f"{desc} ({label})", price)
            else:  # several carts of the size: the price of one, times how many
                qty = Decimal(carts) * factor
                shown = f"{carts} × {label}" + ("" if factor == ONE else f", prorated {_pct(factor)}")
                add(f"{desc} ({shown})", qty, "cart", price, price * qty)
        elif kind == "per_dwelling_unit":
            price = to_decimal(comp["amount"])
            units = Decimal(usage.dwelling_units) * factor
            add(f"{desc}: {usage.dwelling_units} units × ${price}", units, "unit", price, price * units)
        elif kind == "uniform":
            price = to_decimal(comp["price"])
            qty = usage.quantity
            add(f"{desc}: {_q(qty)} {unit} × ${price}", qty, unit, price, qty * price)
        elif kind == "seasonal_uniform":
            season = _season(comp.get("seasons", SEASONS_DEFAULT), period_end)
            price = to_decimal(comp["prices"][season])
            qty = usage.quantity
            add(f"{desc} ({season}): {_q(qty)} {unit} × ${price}", qty, unit, price, qty * price)
        elif kind == "tiered":
            tiers = [
                (None if t.get("up_to") in (None, "") else to_decimal(t["up_to"]) * factor, to_decimal(t["price"]))
                for t in comp["tiers"]
            ]
            _tiers(add, comp.get("description"), usage.quantity, tiers, unit)
        elif kind == "budget":
            budget = _water_budget(comp, usage, days)
            tiers = [
                (
                    None
                    if t.get("up_to_percent") in (None, "")
                    else (to_decimal(t["up_to_percent"]) * budget / HUNDRED).quantize(WHOLE, ROUND_HALF_EVEN),
                    to_decimal(t["price"]),
                )
                for t in comp["tiers"]
            ]
            _tiers(
                add,
                f"{comp.get('description', 'Water usage')} (budget {_q(budget)} {unit})",
                usage.quantity,
                tiers,
                unit,
            )
        elif kind == "sewer_share":
            price = to_decimal(comp["price"])
            share = to_decimal(comp.get("percent", "100")) / HUNDRED
            water = usage.water_quantity if usage.water_quantity is not None else usage.quantity
            qty = water * share
            add(f"{desc}: {_pct(share)} of {_q(water)} {unit} water × ${price}", qty, unit, price, qty * price)
        elif kind == "winter_average":
            price = to_decimal(comp["price"])
            if usage.winter_average is None:
                raise InvalidInput(f"{desc} needs the winter-quarter average usage", "winter_average")
            cap = to_decimal(comp["cap"]) if comp.get("cap") not in (None, "") else None
            qty = usage.winter_average if cap is None else min(usage.winter_average, cap)
            qty = qty * factor
            capped = " (capped)" if cap is not None and usage.winter_average > cap else ""
            add(f"{desc}: winter average {_q(qty)} {unit}{capped} × ${price}", qty, unit, price, qty * price)
        elif kind == "minimum":
            floor = to_decimal(comp["amount"]) * factor
            short = floor - subtotal()
            if short > 0:
                add(f"{desc} (minimum ${cents_to_decimal(round_cents(floor))})", ONE, "each", short, short)
        elif kind == "discount":
            if comp.get("program") and comp["program"] not in usage.programs:
                continue
            pct = to_decimal(comp["percent"])
            base = subtotal()
            add(f"{desc}: {pct}% of ${base:.2f}", ONE, "each", -base * pct / HUNDRED, -base * pct / HUNDRED)
        elif kind == "tax":
            pct = to_decimal(comp["percent"])
            base = subtotal()
            add(f"{desc}: {pct}% of ${base:.2f}", ONE, "each", base * pct / HUNDRED, base * pct / HUNDRED)
        else:
            raise InvalidInput(f"unknown rate component type {kind!r}", "type")
    return lines


def rate_period(
    service: str,
    versions: Sequence[tuple[date, int | None, Mapping[str, Any] | Rater]],
    usage: Usage,
    start: date,
    end: date,
    full_period_days: int | None = None,
    served: tuple[date, date | None] | None = None,
) -> list[LineDraft]:
    """Lines for the period ``[start, end)``.

    ``versions`` are (effective date, id, definition or its ``Rater``). The period is split at
    every effective date inside it; each side is rated under its own version
    with its share of the days (usage shared the same way). When the period is
    shorter than a full one (move-in, move-out), ``full_period_days`` makes
    fixed charges and tier widths prorate by days.

    ``served`` is ``[from, to)`` the service ran (``to`` None: still running). When it
    started, stopped or changed its terms inside the period, only its days are rated: fixed
    charges and tier widths by its days of the (full) period, each line naming its dates;
    ``usage`` is then the use of those days already."""
    dated = False
    if served is not None and (served[0] > start or (served[1] is not None and served[1] < end)):
        full_period_days = full_period_days or (end - start).days
        start, end = max(start, served[0]), end if served[1] is None else min(end, served[1])
        dated = True
    segments = _split_remembered(versions, start, end, full_period_days)
    lines: list[LineDraft] = []
    for seg in segments:
        definition = seg.definition
        if isinstance(definition, Rater):
            # A bill run passes raters, which remember the answers to questions asked before.
            if len(segments) == 1 and definition.service == service and not dated:
                lines += definition.rate(usage, seg.factor, seg.days, seg.end)
                continue
            definition = definition.definition
        seg_usage = usage if len(segments) == 1 else _share_usage(usage, seg.usage_share)
        note = (
            ""
            if len(segments) == 1 and not dated
            else f"{seg.start:%m/%d} to {seg.end - timedelta(days=1):%m/%d}, {seg.days} days"
        )
        lines += rate(service, definition, seg_usage, seg.version_id, seg.factor, seg.days, note, seg.end)
    return lines


#: Periods split before, for versions given as raters (a bill run asks the same few questions
#: for every account); segments are immutable and shared.
_SPLITS: dict[tuple, list[Segment]] = {}


def _split_remembered(
    versions: Sequence[tuple[date, int | None, Mapping[str, Any] | Rater]],
    start: date,
    end: date,
    full_period_days: int | None,
) -> list[Segment]:
    key = (tuple(versions), start, end, full_period_days)
    try:
        found = _SPLITS.get(key)
    except TypeError:  # definitions as dicts (a quote, a preview): not remembered
        return split_period(versions, start, end, full_period_days)
    if found is None:
        found = split_period(versions, start, end, full_period_days)
        if len(_SPLITS) >= 10_000:
            _SPLITS.clear()
        _SPLITS[key] = found
    return found


def split_period(
    versions: Sequence[tuple[date, int | None, Mapping[str, Any] | Rater]],
    start: date,
    end: date,
    full_period_days: int | None = None,
) -> list[Segment]:
    if end <= start:
        raise InvalidInput("a billing period must end after it starts", "period")
    ordered = sorted(versions, key=lambda v: v[0])
    in_force = [v for v in ordered if v[0] <= start]
    if not in_force:
        raise InvalidInput(f"no rate version is in force on {start:%m/%d/%Y}", "period")
    period_days = (end - start).days
    full = Decimal(full_period_days or period_days)
    cuts = [start] + [v[0] for v in ordered if start < v[0] < end] + [end]
    segments = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        effective = [v for v in ordered if v[0] <= a][-1]
        days = Decimal((b - a).days)
        segments.append(Segment(a, b, days / Decimal(period_days), days / full, effective[1], effective[2]))
    return segments


def _carts(usage: Usage) -> int:
    """How many carts of the size a sanitation service has (its ``carts`` option; one when unset)."""
    text = str((usage.options or {}).get("carts", "1"))
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"the number of carts must be a whole number, 1 or more, not {text!r}", "carts")
    return int(text)


def _share_usage(usage: Usage, share: Decimal) -> Usage:
    return usage._replace(
        quantity=usage.quantity * share,
        water_quantity=None if usage.water_quantity is None else usage.water_quantity * share,
    )


def _tiers(add, desc: str | None, quantity: Decimal, tiers: list[tuple[Decimal | None, Decimal]], unit: str) -> None:  # type: ignore[no-untyped-def]
    """One line per tier used: "Tier 2: 12 CCF × $4.29" (prefixed when ``desc`` is given)."""
    below = ZERO
    for n, (upper, price) in enumerate(tiers, start=1):
        width = quantity - below if upper is None else min(quantity, upper) - below
        if width > 0:
            label = f"{desc}, tier {n}" if desc else f"Tier {n}"
            add(f"{label}: {_q(width)} {unit} × ${price}", width, unit, price, width * price)
            below += width
        if upper is not None and quantity <= upper:
            break


def _water_budget(comp: Mapping[str, Any], usage: Usage, days: int | None) -> Decimal:
    if usage.household_size is None:
        raise InvalidInput("a budget rate needs the household size", "household_size")
    billed_days = Decimal(days if days is not None else comp.get("days_in_period", "30"))
    indoor = to_decimal(comp["gpcd"]) * usage.household_size * billed_days / GALLONS_PER_CCF
    outdoor = ZERO
    if usage.irrigated_area and usage.et_amount:
        outdoor = to_decimal(comp.get("landscape_factor", "0.7")) * usage.et_amount * usage.irrigated_area
        outdoor = outdoor * Decimal("0.62") / GALLONS_PER_CCF
    return indoor.quantize(WHOLE, ROUND_HALF_EVEN) + outdoor.quantize(WHOLE, ROUND_HALF_EVEN)


def _pick(values: Mapping[str, Any], key: str | None, what: str, desc: str) -> Decimal:
    if key is None or str(key) not in values:
        raise InvalidInput(f"no {desc.lower()} for {what.replace('_', ' ')} {key}", what)
    return to_decimal(values[str(key)])


def _season(seasons: Mapping[str, Sequence[int]], period_end: date | None) -> str:
    """The season the period's last day (``period_end`` is the day after it) falls in. The
    caller says which period: the season never comes from the server's clock."""
    if period_end is None:
        raise InvalidInput("a seasonal rate needs the billing period's dates", "period")
    month = (period_end - timedelta(days=1)).month
    for name, months in seasons.items():
        if month in months:
            return name
    raise InvalidInput(f"no season covers month {month}", "seasons")


def _q(value: Decimal) -> str:
    """A quantity as people write it: 12, 12.5, 3.33 (at most two decimals shown)."""
    shown = value.quantize(Decimal("0.01")).normalize()
    return f"{shown:f}"


def _pct(share: Decimal) -> str:
    return f"{(share * HUNDRED).quantize(Decimal('0.1')).normalize():f}%"


# --------------------------------------------------------------------------- OWRS versions

OWRS_DATA_FIELDS = {
    "meter_size": lambda u: u.meter_size,
    "hhsize": lambda u: u.household_size,
    "irr_area": lambda u: u.irrigated_area,
    "et_amount": lambda u: u.et_amount,
    "number_dwelling_units": lambda u: u.dwelling_units,
    "dwelling_units": lambda u: u.dwelling_units,
}


def _owrs_data(usage: Usage, days: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in (usage.data or {}).items() if v not in (None, "")}
    for name, get in OWRS_DATA_FIELDS.items():
        value = get(usage)
        if value is not None and name not in data:
            data[name] = value
    if days is not None and "days_in_period" not in data:
        data["days_in_period"] = days
    data["usage_ccf"] = usage.quantity
    return data


def _owrs_file(definition: Mapping[str, Any]) -> owrs.OwrsFile:
    """An OWRS version's class as the engine computes it. A stored definition is JSON (ints
    and floats): its numbers become Decimal here (``owrs.decimals``), once per file."""
    return owrs.OwrsFile(
        path=definition.get("source", "OWRS"),
        metadata=definition.get("metadata", {}),
        classes={definition["class"]: owrs.decimals(definition["rate_structure"])},
    )


def _rate_owrs(
    service: str,
    definition: Mapping[str, Any],
    usage: Usage,
    version_id: int | None,
    factor: Decimal,
    days: int | None,
    note: str,
    file: owrs.OwrsFile | None = None,
) -> list[LineDraft]:
    if file is None:
        file = _owrs_file(definition)
    structure = file.classes[definition["class"]]
    data = _owrs_data(usage, days)
    try:
        quote = owrs.quote(file, definition["class"], data)
        fixed = owrs.quote(file, definition["class"], {**data, "usage_ccf": ZERO}) if factor != ONE else None
    except owrs.OwrsError as exc:
        raise InvalidInput(exc.reason, exc.field_name) from exc
    unit = file.bill_unit
    suffix = f" ({note})" if note else ""
    lines: list[LineDraft] = []
    fixed_parts = {p.name: p.amount for p in fixed.parts} if fixed else {}
    for part in quote.parts:
        label = _label(part.name)
        if part.tiers:
            prefix = "Tier" if part.name == "commodity_charge" else f"{label}, tier"
            for t in part.tiers:
                amount = part.sign * t.amount
                lines.append(
                    LineDraft(
                        service,
                        f"{prefix} {t.tier}: {_q(t.quantity)} {unit} × ${t.price}{suffix}",
                        t.quantity,
                        unit,
                        t.price * part.sign,
                        round_cents(amount),
                        version_id,
                    )
                )
            continue
        amount = part.sign * part.amount
        raw = structure.get(part.name)
        per_unit = _per_unit_price(file, definition["class"], raw, data)
        if per_unit is not None and factor == ONE:
            if amount:
                lines.append(
                    LineDraft(
                        service,
                        f"{label}: {_q(usage.quantity)} {unit} × ${per_unit}{suffix}",
                        usage.quantity,
                        unit,
                        per_unit * part.sign,
                        round_cents(amount),
                        version_id,
                    )
                )
            continue
        if isinstance(raw, dict) and raw.get("depends_on") in ("meter_size", ["meter_size"]) and usage.meter_size:
            label = f"{label} ({usage.meter_size} meter)"
        if factor != ONE and part.name in fixed_parts:
            fixed_amount = part.sign * fixed_parts[part.name]
            amount = fixed_amount * factor + (amount - fixed_amount)
            label = f"{label}, prorated {_pct(factor)}" if fixed_amount else label
        if amount == 0:
            continue
        lines.append(LineDraft(service, label + suffix, ONE, "each", amount, round_cents(amount), version_id))
    return lines


def _per_unit_price(file: owrs.OwrsFile, cust_class: str, raw: Any, data: Mapping[str, Any]) -> Decimal | None:
    """For a part written ``price*usage_ccf``, the price, so its line can say "16 CCF × $2.78"."""
    if not isinstance(raw, str):
        return None
    try:
        node = file.formula(raw)
    except ValueError:
        return None
    if node[0] != "*" or ("name", "usage_ccf") not in (node[1], node[2]):
        return None
    other = node[2] if node[1] == ("name", "usage_ccf") else node[1]
    try:
        value = owrs.evaluate_node(other, lambda n: owrs.ClassBill(file, cust_class, data).value(n))
    except (owrs.OwrsError, ValueError):
        return None
    return value


def _label(name: str) -> str:
    words = name.replace("_commodity", "").replace("_", " ").strip()
    special = {"commodity charge": "Water usage", "service charge": "Service charge"}
    return special.get(words.lower(), words[:1].upper() + words[1:])


def required_inputs(definition: Mapping[str, Any]) -> list[str]:
    """The data an OWRS version needs besides usage (for forms and checks)."""
    if definition.get("format") != "owrs":
        return []
    body = definition["rate_structure"]
    needed: set[str] = set()
    file = owrs.OwrsFile("x", {}, {"c": body})
    for raw in body.values():
        for text in owrs.formula_texts(raw):
            try:
                needed |= owrs.names_in(file.formula(text))
            except ValueError:
                continue
        if isinstance(raw, dict):
            deps = raw.get("depends_on")
            needed |= {deps} if isinstance(deps, str) else set(deps or [])
    defined = set(body)
    for key in list(defined):
        for s in owrs.SUFFIXES:
            if key.endswith(f"_{s}"):
                defined.add(key[: -len(s) - 1])
    return sorted(n for n in needed - defined if n != "usage_ccf")


# --------------------------------------------------------------------------- rating many bills


class Rater:
    """Rates one version for many accounts, remembering answers.

    Rating is a pure function of the version and the inputs, and a district
    has far fewer distinct inputs (meter size, whole units used, cart size)
    than bills, so a bill run asks each question once. Lines are immutable and
    shared safely between bills."""

    MAX_REMEMBERED = 200_000

    def __init__(self, service: str, definition: Mapping[str, Any], version_id: int | None = None) -> None:
        self.service, self.definition, self.version_id = service, definition, version_id
        components = definition.get("components", [])
        self.seasonal = any(c.get("type") == "seasonal_uniform" for c in components)
        self.uses_days = definition.get("format") == "owrs" or any(c.get("type") == "budget" for c in components)
        fields = _fields_used(definition)
        simple = [f for f in fields if f not in _MAPPING_FIELDS]
        self._simple = attrgetter(*simple) if simple else (lambda usage: None)
        self._maps = [f for f in fields if f in _MAPPING_FIELDS]
        self.answers: dict[tuple, tuple[LineDraft, ...]] = {}
        self.asked = 0
        # An OWRS class read once (numbers as Decimal, formulas parsed once) for every question.
        self._owrs = _owrs_file(definition) if definition.get("format") == "owrs" else None

    def rate(
        self, usage: Usage, factor: Decimal = ONE, days: int | None = None, period_end: date | None = None
    ) -> tuple[LineDraft, ...]:
        self.asked += 1
        # Only what this version reads is part of the question.
        key = (
            self._simple(usage),
            tuple(tuple(sorted(m.items())) if (m := getattr(usage, f)) else None for f in self._maps)
            if self._maps
            else None,
            factor,
            days if self.uses_days else None,
            (period_end - timedelta(days=1)).month if self.seasonal and period_end else None,
        )
        lines = self.answers.get(key)
        if lines is None:
            if self._owrs is not None:
                found = _rate_owrs(self.service, self.definition, usage, self.version_id, factor, days, "", self._owrs)
            else:
                found = rate(self.service, self.definition, usage, self.version_id, factor, days, "", period_end)
            lines = tuple(found)
            if len(self.answers) >= self.MAX_REMEMBERED:
                self.answers.clear()
            self.answers[key] = lines
        return lines


_COMPONENT_FIELDS = {
    "fixed": (),
    "fixed_by_meter_size": ("meter_size", "options", "data"),
    "fixed_by_option": ("options",),
    "per_dwelling_unit": ("dwelling_units",),
    "uniform": ("quantity",),
    "seasonal_uniform": ("quantity",),
    "tiered": ("quantity",),
    "budget": ("quantity", "household_size", "irrigated_area", "et_amount"),
    "sewer_share": ("quantity", "water_quantity"),
    "winter_average": ("winter_average",),
    "minimum": (),
    "discount": ("programs",),
    "tax": (),
}
_MAPPING_FIELDS = ("options", "data")
_OWRS_FIELDS = {
    "hhsize": "household_size",
    "irr_area": "irrigated_area",
    "et_amount": "et_amount",
    "number_dwelling_units": "dwelling_units",
    "dwelling_units": "dwelling_units",
}


def _fields_used(definition: Mapping[str, Any]) -> tuple[str, ...]:
    """The ``Usage`` fields a version's lines can depend on."""
    if definition.get("format") == "owrs":
        needed = set(required_inputs(definition))
        used = {"quantity", "meter_size", "data"} | {f for name, f in _OWRS_FIELDS.items() if name in needed}
    else:
        used = set()
        for comp in definition.get("components", []):
            used |= set(_COMPONENT_FIELDS.get(comp.get("type"), Usage._fields))
    return tuple(sorted(used))
