"""Rate commands that read and write files: the OWRS quote contract."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .billing_core import owrs

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
