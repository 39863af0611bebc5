"""The states a bill run, a bill, a payment, an autopay enrollment, a service request, a
payment plan request, a cash drawer, a payment batch, an adjustment or write-off, a deposit
and a refund can be in, and which moves between them are allowed.

Each enum's values are what the database stores (the tables' CHECK constraints list the
same words). Code compares with the enum, never with a string literal, and changes a state
with ``move``, which refuses a move its table does not list. The enums are ``str``
subclasses, so a stored value compares equal to its member and renders as its word.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TypeVar

from .errors import BillingError


class IllegalTransition(BillingError):
    """A state change the transition table does not allow (a bug, or two people at once)."""


class BillRunStatus(str, enum.Enum):
    CREATED = "created"
    CALCULATING = "calculating"
    CALCULATED = "calculated"
    APPROVED = "approved"
    POSTING = "posting"
    POSTED = "posted"
    CANCELLED = "cancelled"


class BillStatus(str, enum.Enum):
    DRAFT = "draft"
    POSTED = "posted"
    VOIDED = "voided"


class PaymentStatus(str, enum.Enum):
    PENDING = "pending"
    POSTED = "posted"
    RETURNED = "returned"
    FAILED = "failed"


class ProcessorStatus(str, enum.Enum):
    """The payment processor's own word for where a payment or a saved method stands
    (Stripe's PaymentIntent and SetupIntent states, kept in ``payment.processor_status``),
    plus ``created``: written, not yet answered. The processor moves these, not the portal,
    so they have no table; ``payments.apply`` maps them onto ``PaymentStatus``."""

    CREATED = "created"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    CANCELED = "canceled"


class AutopayStatus(str, enum.Enum):
    """An autopay enrollment (a standing authorization)."""

    ACTIVE = "active"
    #: Moved to another card or bank account: a new enrollment took its place.
    REPLACED = "replaced"
    CANCELLED = "cancelled"


class RequestStatus(str, enum.Enum):
    """A start, stop or transfer request."""

    SUBMITTED = "submitted"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class ArrangementStatus(str, enum.Enum):
    """A customer's request for a payment plan."""

    SUBMITTED = "submitted"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class DrawerStatus(str, enum.Enum):
    """A cashier's drawer: open (taking payments), closed (counted), signed off (by a supervisor)."""

    OPEN = "open"
    CLOSED = "closed"
    SIGNED_OFF = "signed_off"


class BatchStatus(str, enum.Enum):
    """A mail batch or lockbox file's payments: keyed (open), posted together, or cancelled."""

    OPEN = "open"
    POSTED = "posted"
    CANCELLED = "cancelled"


class ImportOutcome(str, enum.Enum):
    """What became of one row of a bank or lockbox file."""

    MATCHED = "matched"
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    REJECTED = "rejected"


class ApprovalStatus(str, enum.Enum):
    """An adjustment or a write-off: waiting for approval, posted, or rejected (with a reason)."""

    PENDING = "pending"
    POSTED = "posted"
    REJECTED = "rejected"


class DepositStatus(str, enum.Enum):
    """A deposit: billed and held, then credited back (good standing), applied to the final
    bill, or cancelled (billed in error: reversed)."""

    BILLED = "billed"
    CREDITED = "credited"
    APPLIED = "applied"
    CANCELLED = "cancelled"


class RefundStatus(str, enum.Enum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAID = "paid"
    #: The gateway refused a card refund: the credit is back on the account.
    FAILED = "failed"


#: What may follow each state. A state not listed is final.
BILL_RUN_TRANSITIONS: dict[BillRunStatus, tuple[BillRunStatus, ...]] = {
    BillRunStatus.CREATED: (BillRunStatus.CALCULATING, BillRunStatus.CANCELLED),
    # Calculating again (after a corrected read) keeps a run calculated.
    BillRunStatus.CALCULATING: (BillRunStatus.CALCULATED,),
    BillRunStatus.CALCULATED: (BillRunStatus.CALCULATED, BillRunStatus.APPROVED, BillRunStatus.CANCELLED),
    BillRunStatus.APPROVED: (BillRunStatus.POSTING, BillRunStatus.POSTED),
    BillRunStatus.POSTING: (BillRunStatus.POSTED,),
}

BILL_TRANSITIONS: dict[BillStatus, tuple[BillStatus, ...]] = {
    BillStatus.DRAFT: (BillStatus.POSTED,),
    BillStatus.POSTED: (BillStatus.VOIDED,),
}

PAYMENT_TRANSITIONS: dict[PaymentStatus, tuple[PaymentStatus, ...]] = {
    PaymentStatus.PENDING: (PaymentStatus.POSTED, PaymentStatus.FAILED),
    # A bank payment can be returned after it posted; a card charge can be disputed.
    PaymentStatus.POSTED: (PaymentStatus.RETURNED,),
}

AUTOPAY_TRANSITIONS: dict[AutopayStatus, tuple[AutopayStatus, ...]] = {
    AutopayStatus.ACTIVE: (AutopayStatus.REPLACED, AutopayStatus.CANCELLED),
}

REQUEST_TRANSITIONS: dict[RequestStatus, tuple[RequestStatus, ...]] = {
    # Staff schedule, complete or decline a request; the customer may cancel it only while
    # it is still only submitted (``service_requests.cancel``). Posting a stop's final bill
    # completes it, or schedules it when the new service starts later.
    RequestStatus.SUBMITTED: (
        RequestStatus.SCHEDULED,
        RequestStatus.COMPLETED,
        RequestStatus.DECLINED,
        RequestStatus.CANCELLED,
    ),
    RequestStatus.SCHEDULED: (RequestStatus.COMPLETED, RequestStatus.DECLINED),
}

ARRANGEMENT_TRANSITIONS: dict[ArrangementStatus, tuple[ArrangementStatus, ...]] = {
    # Staff approve or decline; the customer may withdraw only while no decision is made.
    ArrangementStatus.SUBMITTED: (ArrangementStatus.APPROVED, ArrangementStatus.DECLINED, ArrangementStatus.WITHDRAWN),
}

DRAWER_TRANSITIONS: dict[DrawerStatus, tuple[DrawerStatus, ...]] = {
    DrawerStatus.OPEN: (DrawerStatus.CLOSED,),
    DrawerStatus.CLOSED: (DrawerStatus.SIGNED_OFF,),
}

BATCH_TRANSITIONS: dict[BatchStatus, tuple[BatchStatus, ...]] = {
    BatchStatus.OPEN: (BatchStatus.POSTED, BatchStatus.CANCELLED),
}

APPROVAL_TRANSITIONS: dict[ApprovalStatus, tuple[ApprovalStatus, ...]] = {
    ApprovalStatus.PENDING: (ApprovalStatus.POSTED, ApprovalStatus.REJECTED),
}

DEPOSIT_TRANSITIONS: dict[DepositStatus, tuple[DepositStatus, ...]] = {
    DepositStatus.BILLED: (DepositStatus.CREDITED, DepositStatus.APPLIED, DepositStatus.CANCELLED),
}

REFUND_TRANSITIONS: dict[RefundStatus, tuple[RefundStatus, ...]] = {
    RefundStatus.REQUESTED: (RefundStatus.APPROVED, RefundStatus.REJECTED),
    RefundStatus.APPROVED: (RefundStatus.PAID, RefundStatus.FAILED),
}

S = TypeVar("S", bound=enum.Enum)


def allowed(table: Mapping[S, tuple[S, ...]], current: str, new: str) -> bool:
    enum_type = type(next(iter(table)))
    try:
        return enum_type(new) in table.get(enum_type(current), ())
    except ValueError:
        return False


def move(table: Mapping[S, tuple[S, ...]], thing: object, new: S) -> None:
    """Set ``thing.status`` to ``new``, or raise ``IllegalTransition`` if the table forbids it."""
    current = getattr(thing, "status")  # noqa: B009 - any object with a status
    if not allowed(table, current, new.value):
        raise IllegalTransition(f"{type(thing).__name__} cannot go from {current!r} to {new.value!r}")
    setattr(thing, "status", new.value)  # noqa: B010
