"""Turning a rate schedule version and a period's usage into bill lines.

A version's definition is data::

    {"unit": "CCF", "components": [
        {"type": "fixed_by_meter_size", "description": "Water service charge",
         "values": {"5/8\\"": "24.61", "1\\"": "38.15"}},
        {"type": "uniform", "description": "Water usage", "price": "2.78"},
        {"type": "tiered", "description": "Water usage",
         "tiers": [{"up_to": "10", "price": "2.50"}, {"up_to": null, "price": "3.10"}]},
        {"type": "fixed", "description": "Sewer service charge", "amount": "38.52"},
        {"type": "fixed_by_option", "option": "cart_size", "description": "Trash cart",
         "values": {"35": "24.10", "64": "28.65", "96": "36.80"}}
    ]}

Every price is a string read into ``Decimal``; each line is rounded once, to
cents, by ``money.round_cents``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .errors import InvalidInput
from .money import round_cents, to_decimal

ONE = Decimal(1)


@dataclass(frozen=True)
class LineDraft:
    service: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount_cents: int
    rate_version_id: int | None = None


@dataclass(frozen=True)
class Usage:
    quantity: Decimal = Decimal(0)
    meter_size: str | None = None
    options: Mapping[str, str] | None = None


def rate(
    service: str,
    definition: Mapping[str, Any],
    usage: Usage,
    rate_version_id: int | None = None,
) -> list[LineDraft]:
    unit = definition.get("unit", "CCF")
    lines: list[LineDraft] = []
    for comp in definition.get("components", []):
        kind = comp.get("type")
        desc = comp.get("description", service.title())
        if kind == "fixed":
            price = to_decimal(comp["amount"])
            lines.append(LineDraft(service, desc, ONE, "each", price, round_cents(price), rate_version_id))
        elif kind == "fixed_by_meter_size":
            size = usage.meter_size
            if size not in comp["values"]:
                raise InvalidInput(f"no {desc.lower()} for a {size} meter", "meter_size")
            price = to_decimal(comp["values"][size])
            lines.append(
                LineDraft(service, f"{desc} ({size} meter)", ONE, "each", price, round_cents(price), rate_version_id)
            )
        elif kind == "fixed_by_option":
            option = comp["option"]
            chosen = (usage.options or {}).get(option)
            if chosen not in comp["values"]:
                raise InvalidInput(f"no {desc.lower()} for {option} {chosen}", option)
            price = to_decimal(comp["values"][chosen])
            label = comp.get("label", "{value}").format(value=chosen)
            lines.append(
                LineDraft(service, f"{desc} ({label})", ONE, "each", price, round_cents(price), rate_version_id)
            )
        elif kind == "uniform":
            price = to_decimal(comp["price"])
            qty = usage.quantity
            lines.append(
                LineDraft(
                    service,
                    f"{desc}: {qty} {unit} × ${price}",
                    qty,
                    unit,
                    price,
                    round_cents(qty * price),
                    rate_version_id,
                )
            )
        elif kind == "tiered":
            remaining = usage.quantity
            lower = Decimal(0)
            for n, tier in enumerate(comp["tiers"], start=1):
                price = to_decimal(tier["price"])
                upper = None if tier.get("up_to") in (None, "") else to_decimal(tier["up_to"])
                width = remaining if upper is None else min(remaining, upper - lower)
                if width > 0:
                    lines.append(
                        LineDraft(
                            service,
                            f"Tier {n}: {width} {unit} × ${price}",
                            width,
                            unit,
                            price,
                            round_cents(width * price),
                            rate_version_id,
                        )
                    )
                    remaining -= width
                if upper is not None:
                    lower = upper
                if remaining <= 0:
                    break
        else:
            raise InvalidInput(f"unknown rate component type {kind!r}", "type")
    return lines
