"""Payment plans and extensions managed by staff.

(Placeholder of the hook signature ``collection_hooks`` calls; the payment-plans work of
issue 15 fills it in.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session


def after_payment(session: Session, account_ids: Sequence[int], as_of: date, now: datetime) -> None:
    """Count the payments just posted toward each account's active plan's installments."""
