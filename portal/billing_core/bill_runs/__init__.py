"""Bill runs: create for a cycle and period, calculate drafts, review the register,
approve (a supervisor), post to the ledger; correct a posted bill; final bills.

- ``lifecycle``: create a run, its register, approve it;
- ``drafting``: calculate the drafts (estimating missing reads), what holds a draft;
- ``posting``: post the drafts (bill numbers, ledger transactions through ``posting.post_many``);
- ``corrections``: void and rebill a posted bill, with its closing reads corrected;
- ``final_bills``: stop service with a final bill, held for review when a read looks wrong;
- ``rows``: what a calculation reads and writes, as plain rows.

Drafts are plain rows that a new calculation replaces, so calculating an account twice
never bills it twice; posting skips bills already posted, so a post that stops half way
can be run again. A draft with a problem nobody has resolved (a read waiting for review,
no read and no history to estimate from, a rate that cannot be computed) is held: it stays
a draft when the run posts. Every step that writes takes the moment (``now``) from its
caller; none reads the clock.
"""

from ..errors import InvalidInput, NotAllowed
from .corrections import void_and_rebill
from .drafting import EXCEPTION_LABELS, HOLDING, LARGE_CHANGE, METERED, RunStep, calculate
from .final_bills import (
    FINAL_HOLDING,
    FINAL_REASONS,
    FULL_PERIOD_DAYS,
    FUTURE_STOP,
    MIN_COMPARE_DAYS,
    FinalReadCheck,
    approve_final,
    check_final_read,
    correct_final_read,
    final_bill,
    final_bill_date,
    held_final_bills,
    held_for_account,
    review_checks,
    stop_service,
)
from .lifecycle import Register, approve, chunks, create_run, register
from .posting import post
from .rows import LAST_BILL_DAYS, READ_WINDOW_DAYS, cycle_accounts

__all__ = [
    "EXCEPTION_LABELS",
    "FINAL_HOLDING",
    "FINAL_REASONS",
    "FULL_PERIOD_DAYS",
    "FUTURE_STOP",
    "HOLDING",
    "LARGE_CHANGE",
    "LAST_BILL_DAYS",
    "METERED",
    "MIN_COMPARE_DAYS",
    "READ_WINDOW_DAYS",
    "FinalReadCheck",
    "InvalidInput",
    "NotAllowed",
    "Register",
    "RunStep",
    "approve",
    "approve_final",
    "calculate",
    "check_final_read",
    "chunks",
    "correct_final_read",
    "create_run",
    "cycle_accounts",
    "final_bill",
    "final_bill_date",
    "held_final_bills",
    "held_for_account",
    "post",
    "register",
    "review_checks",
    "stop_service",
    "void_and_rebill",
]
