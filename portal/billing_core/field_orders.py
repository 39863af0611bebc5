"""Work orders for field staff: door tags, shutoffs, reconnections.

(Placeholder of the hook signatures ``collection_hooks`` calls; the field-orders work of
issue 15 fills them in.)
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy.orm import Session


def after_payment(session: Session, account_ids: Sequence[int], as_of: date, now: datetime) -> None:
    """Cancel the pending shutoff order of each account now paid in full; queue its reconnection."""


def after_promise(session: Session, account_id: int, as_of: date, now: datetime) -> None:
    """Cancel a pending shutoff order when a plan or an extension is made."""
