"""What collections does when money or a promise arrives, called from the places that post
them, so no payment path can forget it: payments count toward a plan's installments
(``plans``); a payment in full cancels a pending shutoff order and queues the reconnection
the same day, and a plan or an extension made or approved cancels a pending shutoff
(``field_orders``).

Each hook is set-based (a lockbox file of 20,000 payments calls ``after_posted`` once) and
costs one indexed query when none of the accounts is in collections.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session


def after_posted(session: Session, account_ids: Sequence[int], as_of: date, now: datetime) -> None:
    """Payments were just posted on ``account_ids`` (in the same transaction)."""
    if not account_ids:
        return
    from . import field_orders, plans

    plans.after_payment(session, account_ids, as_of, now)
    field_orders.after_payment(session, account_ids, as_of, now)


def after_promise(session: Session, account_id: int, as_of: date, now: datetime) -> None:
    """A payment plan or an extension was just made or approved on ``account_id``."""
    from . import field_orders

    field_orders.after_promise(session, account_id, as_of, now)
