"""CSV files the portal writes for people to open (the mail-house extract, and every export
after it) go through ``writer``, so no cell can run as a formula in a spreadsheet.

OWASP's advice on CSV injection: a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is read as a formula (or its start) by Excel, LibreOffice and Google
Sheets; prefix it with a single quote and it is shown as text. The csv module already
quotes cells holding the delimiter, quotes or line ends.

One exception, on purpose: a cell that is entirely a plain decimal number in ASCII digits
(``-12.50``, a credit balance) is left alone. It cannot hold a formula (there is nothing
after the sign but digits and one point), and a mail house's software must read amounts
as numbers, not as ``'-12.50``. ``+12.50``, ``-1e3`` or ``-2+3`` are not plain numbers and
are neutralised.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def cell(value: Any) -> str:
    """``value`` as a cell that a spreadsheet shows and never evaluates."""
    text = "" if value is None else str(value)
    if text.startswith(TRIGGERS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """A ``csv.writer`` whose every cell passes through ``cell``."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out: IO[str], **options: Any) -> SafeWriter:
    """``csv.writer(out, **options)``, made safe."""
    return SafeWriter(csv.writer(out, **options))


def wrap(writer: Any) -> SafeWriter:
    """An existing ``csv.writer`` made safe."""
    return SafeWriter(writer)
