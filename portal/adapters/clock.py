"""The wall clock. The one place the portal reads it; everything else is handed a ``Clock``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

#: A clock is a function returning the current moment as an aware UTC datetime.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
