"""Reading meter read files: CSV with a column mapping, fixed-width route files,
and writing route files for handhelds. Parsing only: no database here.

Layouts live in ``portal/data/read_layouts.json``; a CSV may also be read with
an ad-hoc mapping (``meter_serial=MeterNo,value=Reading,read_at=When``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from .errors import InvalidInput
from .reads import format_quantity, parse_read

LAYOUTS_FILE = Path(__file__).resolve().parent.parent / "data" / "read_layouts.json"
SOURCES = ("handheld", "amr", "ami", "customer", "field", "estimate")
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y%m%d",
)


def layouts() -> dict[str, dict[str, Any]]:
    return json.loads(LAYOUTS_FILE.read_text())


def layout(name: str) -> dict[str, Any]:
    known = layouts()
    if name not in known:
        raise InvalidInput(f"no read file layout named {name!r}; known: {', '.join(sorted(known))}", "layout")
    return known[name]


def parse_mapping(text: str) -> dict[str, str]:
    """``meter_serial=MeterNo,value=Reading`` -> {"meter_serial": "MeterNo", ...}."""
    mapping = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InvalidInput(f"column mapping {part!r} needs the form field=Column", "mapping")
        key, column = (x.strip() for x in part.split("=", 1))
        if key not in ("meter_serial", "account_number", "value", "read_at", "source"):
            raise InvalidInput(f"unknown field {key!r} in the column mapping", "mapping")
        mapping[key] = column
    return mapping


class ParsedRead(NamedTuple):
    """One line's read, parsed (a named tuple: a day's AMI file makes 100,000 of them)."""

    line: int
    meter_serial: str | None
    account_number: str | None
    value: Decimal
    read_on: date
    source: str
    raw: str


@dataclass(frozen=True)
class Rejected:
    line: int
    value: str
    reason: str

    def __post_init__(self) -> None:
        if len(self.value) > 80:  # a report shows what was wrong, not a megabyte of it
            object.__setattr__(self, "value", self.value[:80] + "\u2026")


def parse(
    content: bytes,
    fmt: str,
    layout_name: str | None = None,
    mapping: Mapping[str, str] | None = None,
    today: date | None = None,
) -> tuple[list[ParsedRead], list[Rejected], int]:
    """Every line of a read file, parsed or rejected with its reason. Returns (reads, rejected, lines)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("the file is not UTF-8 text", "file") from exc
    spec = layout(layout_name) if layout_name else None
    if spec is not None and spec["format"] != fmt:
        raise InvalidInput(f"layout {layout_name} is for {spec['format']} files, not {fmt}", "layout")
    if fmt == "csv":
        columns = dict(spec["columns"]) if spec else {}
        columns.update(mapping or {})
        if not columns:
            columns = layout("standard-csv")["columns"]
        default_source = (spec or {}).get("default_source", "amr")
        return _parse_csv(text, columns, default_source, today)
    if fmt == "fixed":
        if spec is None:
            raise InvalidInput("a fixed-width file needs --layout (for example handheld-60)", "layout")
        return _parse_fixed(text, spec, today)
    raise InvalidInput(f"unknown format {fmt!r}: use csv or fixed", "format")


def _parse_csv(
    text: str, columns: Mapping[str, str], default_source: str, today: date | None
) -> tuple[list[ParsedRead], list[Rejected], int]:
    reader = csv.reader(io.StringIO(text))
    records = iter(reader)
    try:
        header = next(records, None) or []
    except csv.Error as exc:
        raise InvalidInput(_csv_problem(reader.line_num, exc), "file") from exc
    needed = [columns["value"], columns["read_at"]] if "value" in columns and "read_at" in columns else []
    if not needed:
        raise InvalidInput("the column mapping needs value and read_at", "mapping")
    missing = [c for c in needed if c not in header]
    if "meter_serial" not in columns and "account_number" not in columns:
        raise InvalidInput("the column mapping needs meter_serial or account_number", "mapping")
    ids = [columns[k] for k in ("meter_serial", "account_number") if k in columns]
    if not any(c in header for c in ids):
        missing += ids
    if missing:
        has = ", ".join(header)
        has = has if len(has) <= 200 else has[:200] + "\u2026"
        raise InvalidInput(f"the file has no column {', '.join(missing)} (it has {has})", "file")
    reads: list[ParsedRead] = []
    rejected: list[Rejected] = []
    lines = 0
    # Rows as lists, each field found by its column's index (csv.DictReader's rules: the
    # last of two columns with one name wins, a short row's missing fields are empty, blank
    # lines are skipped); the file is read record by record, never held as rows.
    at = {name: i for i, name in enumerate(header)}
    wanted = [at.get(columns.get(k, ""), -1) for k in ("meter_serial", "account_number", "source")]
    value_at, when_at = at[columns["value"]], at[columns["read_at"]]
    plain_raw = len(at) == len(header)
    width = len(header)
    serial_at, account_at, source_at = wanted
    start = reader.line_num + 1  # where the next record begins (blank lines are not records)
    while True:
        try:
            row = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InvalidInput(_csv_problem(start, exc), "file") from exc
        if not row:
            continue
        start = reader.line_num + 1
        lines += 1
        line = reader.line_num
        if len(row) < width:
            row = row + [""] * (width - len(row))
        raw = ",".join(row[:width]) if plain_raw else ",".join(row[at[c]] for c in header)
        serial = (row[serial_at].strip() or None) if serial_at >= 0 else None
        account = (row[account_at].strip() or None) if account_at >= 0 else None
        source = (row[source_at].strip().lower() if source_at >= 0 else "") or default_source
        result = _one(line, serial, account, row[value_at], row[when_at], source, raw, None, today)
        if isinstance(result, ParsedRead):
            reads.append(result)
        else:
            rejected.append(result)
    return reads, rejected, lines


def _csv_problem(line: int, exc: csv.Error) -> str:
    """csv's own words, for a person: where it broke and why."""
    text = str(exc)
    if "field larger than field limit" in text:
        why = (
            f"a field is longer than {csv.field_size_limit():,} characters "
            "(a quote that is never closed, or not a read file)"
        )
    else:
        why = f"the file is not valid CSV ({text})"
    return f"line {line}: {why}; nothing was loaded"


def _parse_fixed(
    text: str, spec: Mapping[str, Any], today: date | None
) -> tuple[list[ParsedRead], list[Rejected], int]:
    fields = spec["fields"]
    width = max(end for _start, end in fields.values())
    reads: list[ParsedRead] = []
    rejected: list[Rejected] = []
    lines = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        lines += 1
        if len(raw.rstrip("\n")) < width:
            rejected.append(Rejected(n, raw.strip(), f"the record is {len(raw)} characters; the layout needs {width}"))
            continue

        def cut(name: str, record: str = raw) -> str:
            start, end = fields[name]
            return record[start:end].strip()

        code = cut("read_code") if "read_code" in fields else ""
        if code in spec.get("skip_read_codes", []):
            continue  # no read taken (no access, can't locate): nothing to load
        result = _one(
            n,
            cut("meter_serial") or None if "meter_serial" in fields else None,
            cut("account_number") or None if "account_number" in fields else None,
            cut("value"),
            cut("read_date"),
            spec.get("default_source", "handheld"),
            raw.strip(),
            spec.get("date_format"),
            today,
        )
        if isinstance(result, ParsedRead):
            reads.append(result)
        else:
            rejected.append(result)
    return reads, rejected, lines


#: Whole numbers of at most this many digits are below ``reads.STORED_LIMIT`` (10^11).
_WHOLE_DIGITS = 11


def _one(
    line: int,
    serial: str | None,
    account: str | None,
    value_text: str,
    when_text: str,
    source: str,
    raw: str,
    date_format: str | None,
    today: date | None,
) -> ParsedRead | Rejected:
    if not serial and not account:
        return Rejected(line, raw, "no meter serial or account number")
    if serial and (len(serial) > 40 or not serial.isprintable()):
        return Rejected(line, serial, "the meter serial is not one: over 40 characters or unprintable")
    if account and (len(account) > 20 or not account.isprintable()):
        return Rejected(line, account, "the account number is not one: over 20 characters or unprintable")
    if value_text.isdigit() and value_text.isascii() and len(value_text) <= _WHOLE_DIGITS:
        value = Decimal(value_text)  # what parse_read makes of plain whole digits, quickly
    elif not value_text.strip():
        return Rejected(line, value_text, "the read value is not a number")
    else:
        try:
            value = parse_read(value_text)
        except InvalidInput as exc:
            reason = "the read value is negative" if "negative" in exc.message else exc.message
            return Rejected(line, value_text, reason)
    when = _date(when_text, date_format)
    if when is None:
        return Rejected(line, when_text, "the read date is not a date (use YYYY-MM-DD)")
    if today is not None and when > today:
        return Rejected(line, when_text, "the read date is in the future")
    if source not in SOURCES:
        return Rejected(line, source, f"unknown read source; one of {', '.join(SOURCES)}")
    return ParsedRead(line, serial.upper() if serial else None, account, value, when, source, raw)


def _date(text: str, date_format: str | None) -> date | None:
    text = (text or "").strip()
    if len(text) > 40:
        return None
    return _date_of(text, date_format)


@lru_cache(maxsize=4096)  # a day's file holds a handful of distinct read times
def _date_of(text: str, date_format: str | None) -> date | None:
    for fmt in ([date_format] if date_format else []) + list(DATE_FORMATS):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return None


@dataclass(frozen=True)
class RouteStop:
    route: str
    sequence: int
    account_number: str
    meter_serial: str
    previous_value: Decimal
    scheduled_on: date


def write_route_file(stops: Iterable[RouteStop], layout_name: str = "handheld-60") -> str:
    """A route file for handhelds, stops in walking order, fields where the layout puts them.
    The value field carries the previous read (for the handheld's high/low check) and the read
    code is blank, to be filled in the field."""
    spec = layout(layout_name)
    fields = spec["fields"]
    width = max(end for _s, end in fields.values())
    out = []
    for stop in sorted(stops, key=lambda s: (s.route, s.sequence)):
        record = [" "] * width
        values = {
            "route": stop.route,
            "sequence": f"{stop.sequence:05d}",
            "account_number": stop.account_number,
            "meter_serial": stop.meter_serial,
            "value": format_quantity(stop.previous_value),
            "read_date": stop.scheduled_on.strftime(spec.get("date_format", "%Y%m%d")),
            "read_code": "",
        }
        for name, (start, end) in fields.items():
            text = str(values.get(name, ""))[: end - start]
            record[start : start + len(text)] = text
        out.append("".join(record))
    return "\n".join(out) + ("\n" if out else "")
