"""Mail batches and bank/lockbox files: the rules, with no database and no clock.

- ``amount_cents``: a keyed amount in dollars and cents, refused when it has fractional cents,
  is zero or negative, or is not a number.
- ``account_from``: the account number a remittance names, from the stub's scan line (checked
  with ``numbers.scan_line_valid``) or an account number (checked with its Luhn digit).
- ``batch_difference``: why a mail batch may not post yet (keyed total or count against the
  control), or None.
- ``parse_bai2``: a BAI2 file through the ``bai2`` package; every credit detail record (16) is
  one remittance. A file the package refuses (structure, record counts, control totals) is
  refused whole (``MalformedFile``).
- ``parse_csv`` with a ``Layout``: the bank's CSV through named column mappings
  (``portal/data/lockbox_layouts.json``, or a file the settings name), each checked by
  ``check_layout``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import InvalidInput
from .money import format_money
from .numbers import luhn_valid, normalise_account_number, scan_line_valid

LAYOUTS_FILE = Path(__file__).resolve().parent.parent / "data" / "lockbox_layouts.json"
#: What a layout may map, and which of them it must.
LAYOUT_FIELDS = ("bank_reference", "account_number", "scan_line", "amount", "check_number", "received_on")
REQUIRED_FIELDS = ("bank_reference", "amount")
AMOUNT_FORMATS = ("dollars", "cents")
#: Largest single remittance accepted: $10,000,000.00.
MAX_CENTS = 1_000_000_000


class MalformedFile(InvalidInput):
    """A file that cannot be read as a whole: nothing of it is imported."""


def amount_cents(text: str, field: str = "amount") -> int:
    """A keyed amount as cents: "$1,234.56", "25" or "25.5". Refused: fractional cents,
    zero, negative, letters."""
    cleaned = (text or "").strip().replace("$", "").replace(",", "").replace(" ", "")
    if not cleaned:
        raise InvalidInput("Enter the amount, like 25.00.", field)
    if re.fullmatch(r"-?\d+\.\d{3,}", cleaned):
        raise InvalidInput("The amount has fractions of a cent; enter dollars and cents, like 25.00.", field)
    if not re.fullmatch(r"-?\d{1,9}(\.\d{1,2})?", cleaned):
        raise InvalidInput("Enter the amount in dollars and cents, like 25.00.", field)
    whole, _dot, frac = cleaned.lstrip("-").partition(".")
    cents = int(whole) * 100 + int((frac + "00")[:2])
    if cleaned.startswith("-") and cents:
        raise InvalidInput("The amount cannot be negative.", field)
    if cents == 0:
        raise InvalidInput("The amount must be more than zero.", field)
    if cents > MAX_CENTS:
        raise InvalidInput(f"The amount is over {format_money(MAX_CENTS)}; check it.", field)
    return cents


def account_from(scan_line: str | None, account_number: str | None) -> str:
    """The account number a remittance names. Raises ``InvalidInput`` (field ``scan_line``
    or ``account_number``) for a scan line whose check digit fails, an account number whose
    Luhn digit fails, neither given, or both given and naming different accounts."""
    line = " ".join((scan_line or "").split())
    typed = normalise_account_number(account_number or "")
    from_line = None
    if line:
        if not scan_line_valid(line):
            raise InvalidInput("This is not a valid scan line: its check digit does not match.", "scan_line")
        from_line = line.split()[0]
    if typed and not luhn_valid(typed):
        raise InvalidInput("This is not a valid account number: its check digit does not match.", "account_number")
    if from_line and typed and from_line != typed:
        raise InvalidInput(f"The scan line is for account {from_line}, not {typed}: key one of them.", "account_number")
    found = from_line or typed
    if not found:
        raise InvalidInput("Key the stub's scan line or the account number.", "scan_line")
    return found


def batch_difference(control_total: int, control_count: int | None, keyed: list[int]) -> str | None:
    """Why the batch may not post (the keyed items against the control), or None when it may."""
    total = sum(keyed)
    problems = []
    if not keyed:
        return "The batch has no items yet."
    if total != control_total:
        off = total - control_total
        more = "more" if off > 0 else "less"
        problems.append(
            f"the keyed total {format_money(total)} is {format_money(abs(off))} {more} than the control total "
            f"{format_money(control_total)}"
        )
    if control_count is not None and len(keyed) != control_count:
        problems.append(f"{len(keyed)} items are keyed but the control count is {control_count}")
    if not problems:
        return None
    return "Not posted: " + "; ".join(problems) + "."


# --- Bank and lockbox files ------------------------------------------------------------------


@dataclass(frozen=True)
class Remittance:
    """One row of a bank or lockbox file as read: what it says, or why it cannot be used."""

    line_no: int
    bank_reference: str | None
    account_text: str | None
    scan_line: str | None
    amount_cents: int | None
    check_number: str | None
    received_on: date | None
    #: Set when the row is rejected as read (bad amount, malformed).
    rejected: str | None = None


def _clip(text: str | None, size: int) -> str | None:
    text = " ".join((text or "").split())
    return text[:size] or None


def parse_bai2(content: bytes, default_date: date) -> list[Remittance]:
    """Every credit detail record of a BAI2 file. The customer reference field holds the
    remittance's scan line or account number; the text may say ``CHECK <number>``; the date is
    the group's as-of date. Debits and non-monetary details are rejected rows (they are not
    remittances). A file the ``bai2`` package cannot parse is refused whole."""
    from bai2 import bai2 as parser  # type: ignore[import-untyped]  # the package's module of that name
    from bai2.constants import TypeCodeTransaction  # type: ignore[import-untyped]

    try:
        text = content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise MalformedFile(
            "The file is not a BAI2 file: it is not plain ASCII text. Nothing was imported.", "file"
        ) from exc
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("01,"):
        raise MalformedFile(
            "The file is not a BAI2 file: it does not start with a 01 file header. Nothing was imported.", "file"
        )
    try:
        parsed = parser.parse_from_lines(lines)
    except Exception as exc:  # the package raises its own errors and ValueError/KeyError/IndexError alike
        why = str(exc) or type(exc).__name__
        raise MalformedFile(f"The BAI2 file is malformed ({why}). Nothing was imported.", "file") from exc
    out: list[Remittance] = []
    n = 0
    for group in parsed.children:
        on = group.header.as_of_date or default_date
        for account in group.children:
            for detail in account.children:
                n += 1
                code = detail.type_code
                check = None
                match = re.search(r"\b(?:CHECK|CHK)\s*#?\s*(\w{1,30})", detail.text or "", re.IGNORECASE)
                if match:
                    check = match.group(1)
                ref = _clip(detail.customer_reference, 60)
                is_scan = ref is not None and len(ref.split()) == 3
                reason = None
                if code.transaction != TypeCodeTransaction.credit:
                    reason = f"not a credit (type code {code.code}, {code.description})"
                elif detail.amount is None or detail.amount <= 0:
                    reason = "the amount is missing or zero"
                elif detail.amount > MAX_CENTS:
                    reason = f"the amount is over {format_money(MAX_CENTS)}"
                out.append(
                    Remittance(
                        line_no=n,
                        bank_reference=_clip(detail.bank_reference, 100),
                        account_text=None if is_scan else ref,
                        scan_line=ref if is_scan else None,
                        amount_cents=detail.amount,
                        check_number=check,
                        received_on=on,
                        rejected=reason,
                    )
                )
    return out


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    columns: dict[str, str]
    amount_format: str = "dollars"
    date_format: str = "%Y-%m-%d"


def check_layout(name: str, spec: Any) -> Layout:
    """A layout as data, checked whole: raises ``InvalidInput`` saying what is wrong."""
    where = f"lockbox layout {name!r}"
    if not isinstance(spec, dict):
        raise InvalidInput(f"{where} must be an object", "layout")
    unknown = set(spec) - {"description", "columns", "amount_format", "date_format"}
    if unknown:
        raise InvalidInput(f"{where} has unknown keys: {', '.join(sorted(unknown))}", "layout")
    columns = spec.get("columns")
    if not isinstance(columns, dict) or not all(isinstance(v, str) and v for v in columns.values()):
        raise InvalidInput(f"{where} needs columns: an object of field -> column name", "layout")
    bad = set(columns) - set(LAYOUT_FIELDS)
    if bad:
        raise InvalidInput(
            f"{where} maps unknown fields {', '.join(sorted(bad))}; known: {', '.join(LAYOUT_FIELDS)}", "layout"
        )
    missing = [f for f in REQUIRED_FIELDS if f not in columns]
    if missing:
        raise InvalidInput(f"{where} must map {', '.join(missing)}", "layout")
    if "account_number" not in columns and "scan_line" not in columns:
        raise InvalidInput(f"{where} must map account_number or scan_line", "layout")
    amount_format = spec.get("amount_format", "dollars")
    if amount_format not in AMOUNT_FORMATS:
        raise InvalidInput(f"{where}: amount_format must be one of {', '.join(AMOUNT_FORMATS)}", "layout")
    date_format = spec.get("date_format", "%Y-%m-%d")
    if not isinstance(date_format, str) or "%" not in date_format:
        raise InvalidInput(f"{where}: date_format must be a strftime format like %Y-%m-%d", "layout")
    try:
        datetime.strptime(date(2026, 1, 31).strftime(date_format), date_format)
    except ValueError as exc:
        raise InvalidInput(f"{where}: date_format {date_format!r} does not read back its own dates", "layout") from exc
    return Layout(name, str(spec.get("description", "")), dict(columns), amount_format, date_format)


def load_layouts(override_file: str = "") -> dict[str, Layout]:
    """The shipped layouts, and those of ``override_file`` (a JSON file of the same form) on
    top: a name there replaces the shipped one. Every layout is checked."""
    raw: dict[str, Any] = json.loads(LAYOUTS_FILE.read_text())
    if override_file:
        try:
            extra = json.loads(Path(override_file).read_text())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read the lockbox layouts file {override_file}: {exc}", "layout") from exc
        if not isinstance(extra, dict):
            raise InvalidInput(f"the lockbox layouts file {override_file} must hold an object of layouts", "layout")
        raw.update(extra)
    return {name: check_layout(name, spec) for name, spec in raw.items()}


def layout_named(layouts: Mapping[str, Layout], name: str | None) -> Layout:
    chosen = name or "standard"
    if chosen not in layouts:
        raise InvalidInput(f"No CSV layout named {chosen!r}; known: {', '.join(sorted(layouts))}.", "layout")
    return layouts[chosen]


@lru_cache(maxsize=1024)  # a file holds a handful of distinct dates
def _date(text: str, fmt: str) -> date | None:
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError:
        return None


def parse_csv(content: bytes, layout: Layout, default_date: date) -> list[Remittance]:
    """Every data row of the bank's CSV, read through ``layout``. A file without the layout's
    columns, or not CSV at all, is refused whole (``MalformedFile``); a bad row is rejected."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedFile("The file is not UTF-8 text. Nothing was imported.", "file") from exc
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise MalformedFile(f"The file is not valid CSV ({exc}). Nothing was imported.", "file") from exc
    wanted = [c for f, c in layout.columns.items() if f in REQUIRED_FIELDS]
    ids = [layout.columns[f] for f in ("account_number", "scan_line") if f in layout.columns]
    missing = [c for c in wanted if c not in header]
    if not any(c in header for c in ids):
        missing += ids
    if missing:
        has = ", ".join(header)[:200]
        raise MalformedFile(
            f"The file has no column {', '.join(missing)} for layout {layout.name} (it has {has}). "
            "Nothing was imported.",
            "file",
        )
    cols = layout.columns
    out: list[Remittance] = []
    try:
        for row in reader:
            line = reader.line_num

            def get(name: str, row: dict = row) -> str:
                return (row.get(cols.get(name, "")) or "").strip()

            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                continue
            reason = None
            cents: int | None = None
            raw_amount = get("amount")
            if layout.amount_format == "cents":
                if re.fullmatch(r"\d{1,10}", raw_amount) and 0 < int(raw_amount) <= MAX_CENTS:
                    cents = int(raw_amount)
                else:
                    reason = f"the amount {raw_amount[:20]!r} is not a whole number of cents above zero"
            else:
                try:
                    cents = amount_cents(raw_amount)
                except InvalidInput as exc:
                    reason = f"the amount {raw_amount[:20]!r}: {exc.message[0].lower()}{exc.message[1:]}"
            on = default_date
            raw_date = get("received_on")
            if raw_date:
                parsed_on = _date(raw_date[:40], layout.date_format)
                if parsed_on is None:
                    reason = reason or f"the date {raw_date[:40]!r} is not {layout.date_format}"
                else:
                    on = parsed_on
            scan = _clip(get("scan_line"), 60)
            account = _clip(get("account_number"), 60)
            if not scan and not account and reason is None:
                reason = None  # no reference: the row waits in the queue for staff to assign
            out.append(
                Remittance(
                    line_no=line,
                    bank_reference=_clip(get("bank_reference"), 100),
                    account_text=account,
                    scan_line=scan,
                    amount_cents=cents,
                    check_number=_clip(get("check_number"), 30),
                    received_on=on,
                    rejected=reason,
                )
            )
    except csv.Error as exc:
        raise MalformedFile(
            f"line {reader.line_num}: the file is not valid CSV ({exc}). Nothing was imported.", "file"
        ) from exc
    return out
