"""CSV exports cannot carry a formula into the spreadsheet that opens them (OWASP's
CSV injection advice: a cell starting with = + - @ tab or carriage return is prefixed
with a single quote), while the numbers a mail house needs stay numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from portal.billing_core import csv_safe
from portal.billing_core.delivery import EXTRACT_HEADER


@pytest.mark.parametrize(
    "cell, written",
    [
        ('=HYPERLINK("http://evil.example","pay")', '\'=HYPERLINK("http://evil.example","pay")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("-cmd", "'-cmd"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Pat Resident", "Pat Resident"),
        ("O'Neil = friend", "O'Neil = friend"),
        ("", ""),
        # Numbers stay numbers: a plain signed decimal cannot hold a formula.
        ("-12.50", "-12.50"),
        ("84.20", "84.20"),
        ("-7", "-7"),
        ("+12.50", "'+12.50"),
        ("-1e3", "'-1e3"),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_neutralised(cell: str, written: str) -> None:
    assert csv_safe.cell(cell) == written


def test_the_writer_neutralises_every_cell_and_keeps_quoting() -> None:
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(["=1+1", "a,b", 12, None, "-3.25"])
    writer.writerows([("@x", "ok")])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [["'=1+1", "a,b", "12", "", "-3.25"], ["'@x", "ok"]]


def test_the_mail_house_extract_neutralises_a_customer_name(tmp_path: Path) -> None:
    from portal.services.delivery import write_extract

    row = ("1", "00000026", "B-1", '=HYPERLINK("http://evil.example")', "@1 Main St", "", "Chino", "CA")
    row += ("91710", "-12.50", "2026-12-15", "00000026 0000000000 3")
    target = tmp_path / "extract.csv"
    write_extract([row], target)
    with target.open(newline="", encoding="utf-8") as f:
        header, written = list(csv.reader(f))
    assert tuple(header) == EXTRACT_HEADER
    assert written[3] == '\'=HYPERLINK("http://evil.example")'
    assert written[4] == "'@1 Main St"
    assert written[9] == "-12.50"  # a credit balance stays a number for the mail house
    assert written[11] == "00000026 0000000000 3"
