"""The office's nouns as SQLAlchemy 2 typed models.

Money columns are integer cents (``*_cents``); prices, quantities and read
values are ``Numeric`` and come back as ``Decimal``. Instants are stored in
UTC; dates are plain dates and billing periods are half-open ``[start, end)``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """An aware UTC instant on every database (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware instant is needed")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: Where row stamps (``created_at``, ``posted_at`` and the like) get the time. The core never
#: reads the wall clock itself: the edge installs a clock (``portal.adapters.database`` installs
#: the system clock on import; a test may install its own), and ``stamp`` asks it.
_stamp_clock: Callable[[], datetime] | None = None


class NoClock(RuntimeError):
    """A row needed a stamp before any clock was installed (``install_stamp_clock``)."""


def install_stamp_clock(clock: Callable[[], datetime]) -> None:
    global _stamp_clock
    _stamp_clock = clock


def stamp() -> datetime:
    """The installed clock's moment, for a row stamp nobody passed explicitly."""
    if _stamp_clock is None:
        raise NoClock("no clock installed for row stamps: import portal.adapters.database first")
    return _stamp_clock().astimezone(UTC)


class DecimalType(TypeDecorator):
    """Exact decimals on every database: NUMERIC on PostgreSQL, text on SQLite
    (whose NUMERIC would round-trip through binary floating point)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(self.precision + 2))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, (Decimal, int)) or isinstance(value, bool):
            raise TypeError(f"expected a Decimal, got {type(value).__name__}")
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


# An integer primary key that is BIGINT on PostgreSQL and still the rowid on SQLite.
BigID = BigInteger().with_variant(Integer(), "sqlite")
Price = DecimalType(14, 6)
Quantity = DecimalType(14, 3)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Role(str, enum.Enum):
    CUSTOMER = "customer"
    CSR = "csr"
    SPECIALIST = "specialist"
    CASHIER = "cashier"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    #: Field staff: door tags, shutoffs, reconnections, meter work.
    FIELD = "field"

    @property
    def is_staff(self) -> bool:
        return self is not Role.CUSTOMER


class ServiceType(str, enum.Enum):
    WATER = "water"
    SEWER = "sewer"
    SANITATION = "sanitation"
    FIRE = "fire"
    IRRIGATION = "irrigation"
    RECYCLED = "recycled"


class AccountStatus(str, enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    FINAL = "final"
    CLOSED = "closed"


class MeterStatus(str, enum.Enum):
    IN_STOCK = "in_stock"
    INSTALLED = "installed"
    REMOVED = "removed"
    IN_TEST = "in_test"
    RETIRED = "retired"


class ReadSource(str, enum.Enum):
    HANDHELD = "handheld"
    AMR = "amr"
    AMI = "ami"
    CUSTOMER = "customer"
    FIELD = "field"
    ESTIMATE = "estimate"


class ReadStatus(str, enum.Enum):
    VALID = "valid"
    EXCEPTION = "exception"
    APPROVED = "approved"
    ESTIMATED = "estimated"


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    mailing_line1: Mapped[str | None] = mapped_column(String(200))
    mailing_city: Mapped[str | None] = mapped_column(String(100))
    mailing_state: Mapped[str | None] = mapped_column(String(2))
    mailing_zip: Mapped[str | None] = mapped_column(String(10))
    preferred_language: Mapped[str] = mapped_column(String(5), default="en")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    #: person or business (issue 16).
    kind: Mapped[str] = mapped_column(String(10), default="person", server_default="person")
    #: A second phone, and for a business the person to ask for.
    alt_phone: Mapped[str | None] = mapped_column(String(40))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    #: Identity facts, shown only to the roles ``permissions.FIELDS`` names, each showing audited.
    birth_date: Mapped[date | None] = mapped_column(Date)
    id_last4: Mapped[str | None] = mapped_column(String(4))

    accounts: Mapped[list[Account]] = relationship(back_populates="customer")

    __table_args__ = (
        Index("ix_customer_name", "name"),
        CheckConstraint("kind in ('person', 'business')", name="kind"),
    )


class BillingCycle(Base):
    __tablename__ = "billing_cycle"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    frequency: Mapped[str] = mapped_column(String(20), default="monthly")
    #: Day of the month the cycle's meters are read.
    read_day: Mapped[int] = mapped_column(Integer)

    routes: Mapped[list[Route]] = relationship(back_populates="cycle")

    __table_args__ = (CheckConstraint("frequency in ('monthly', 'bimonthly')", name="frequency"),)


class Route(Base):
    __tablename__ = "route"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("billing_cycle.id"), index=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(100))

    cycle: Mapped[BillingCycle] = relationship(back_populates="routes")


class Premise(Base):
    __tablename__ = "premise"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    zip: Mapped[str] = mapped_column(String(10))
    parcel_number: Mapped[str | None] = mapped_column(String(30))
    inside_city_limits: Mapped[bool] = mapped_column(Boolean, default=True)
    pressure_zone: Mapped[str | None] = mapped_column(String(20))
    dwelling_units: Mapped[int] = mapped_column(Integer, default=1)
    route_id: Mapped[int | None] = mapped_column(ForeignKey("route.id"), index=True)
    walk_sequence: Mapped[int | None] = mapped_column(Integer)
    #: The address reduced for finding the same premise twice (issue 16, ``premises.address_key``).
    address_key: Mapped[str | None] = mapped_column(String(200), index=True)

    route: Mapped[Route | None] = relationship()
    meters: Mapped[list[Meter]] = relationship(back_populates="premise")

    __table_args__ = (Index("ix_premise_address_line1", "address_line1"),)

    @property
    def one_line(self) -> str:
        unit = f" {self.address_line2}" if self.address_line2 else ""
        return f"{self.address_line1}{unit}, {self.city}, {self.state} {self.zip}"


class Meter(Base):
    __tablename__ = "meter"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    serial: Mapped[str] = mapped_column(String(40), unique=True)
    size: Mapped[str] = mapped_column(String(10))
    make: Mapped[str | None] = mapped_column(String(60))
    model: Mapped[str | None] = mapped_column(String(60))
    dials: Mapped[int] = mapped_column(Integer, default=6)
    multiplier: Mapped[Decimal] = mapped_column(DecimalType(10, 4), default=Decimal(1))
    unit: Mapped[str] = mapped_column(String(10), default="CCF")
    status: Mapped[str] = mapped_column(String(20), default=MeterStatus.IN_STOCK.value)
    premise_id: Mapped[int | None] = mapped_column(ForeignKey("premise.id"), index=True)
    installed_on: Mapped[date | None] = mapped_column(Date)
    removed_on: Mapped[date | None] = mapped_column(Date)
    location_notes: Mapped[str | None] = mapped_column(String(300))
    #: When the meter came into stock, and when it was retired (issue 16).
    received_on: Mapped[date | None] = mapped_column(Date)
    retired_on: Mapped[date | None] = mapped_column(Date)

    premise: Mapped[Premise | None] = relationship(back_populates="meters")

    __table_args__ = (
        CheckConstraint("status in ('in_stock', 'installed', 'removed', 'in_test', 'retired')", name="status"),
        CheckConstraint("dials between 1 and 12", name="dials"),
    )


class MeterRead(Base):
    __tablename__ = "meter_read"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"))
    read_on: Mapped[date] = mapped_column(Date)
    value: Mapped[Decimal] = mapped_column(Quantity)
    source: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=ReadStatus.VALID.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("read_import.id"))
    #: Why the read waits for review (reads.ReadException values, comma-separated).
    exception: Mapped[str | None] = mapped_column(String(100))
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(300))

    meter: Mapped[Meter] = relationship()

    __table_args__ = (
        UniqueConstraint("meter_id", "read_on", name="uq_meter_read_meter_day"),
        CheckConstraint("source in ('handheld', 'amr', 'ami', 'customer', 'field', 'estimate')", name="source"),
        CheckConstraint("status in ('valid', 'exception', 'approved', 'estimated')", name="status"),
        # The read exceptions waiting (the read queue, the supervisor dashboard): a few rows of many.
        Index(
            "ix_meter_read_exception",
            "read_on",
            postgresql_where=text("status = 'exception'"),
            sqlite_where=text("status = 'exception'"),
        ),
    )


class RateSchedule(Base):
    __tablename__ = "rate_schedule"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    #: Where the schedule came from: "demo", "manual", or the OWRS utility it was imported from.
    source: Mapped[str | None] = mapped_column(String(300))
    service_type: Mapped[str] = mapped_column(String(20))
    customer_class: Mapped[str] = mapped_column(String(40))

    versions: Mapped[list[RateScheduleVersion]] = relationship(
        back_populates="schedule", order_by="RateScheduleVersion.effective_on"
    )


class RateScheduleVersion(Base):
    __tablename__ = "rate_schedule_version"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("rate_schedule.id"))
    effective_on: Mapped[date] = mapped_column(Date)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    #: proposed (waiting in the approvals queue; never used to bill), approved, rejected (issue 16).
    status: Mapped[str] = mapped_column(String(10), default="approved", server_default="approved")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)

    schedule: Mapped[RateSchedule] = relationship(back_populates="versions")

    __table_args__ = (UniqueConstraint("schedule_id", "effective_on", name="uq_rate_schedule_version_effective"),)


class Account(Base):
    __tablename__ = "account"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    premise_id: Mapped[int] = mapped_column(ForeignKey("premise.id"), index=True)
    customer_class: Mapped[str] = mapped_column(String(40))
    cycle_id: Mapped[int] = mapped_column(ForeignKey("billing_cycle.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=AccountStatus.ACTIVE.value)
    opened_on: Mapped[date] = mapped_column(Date)
    #: The last day of service of a stopped account.
    closed_on: Mapped[date | None] = mapped_column(Date)
    autopay: Mapped[bool] = mapped_column(Boolean, default=False)
    paperless: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The account as a customer at the payment processor (a Stripe Customer id).
    processor_customer_id: Mapped[str | None] = mapped_column(String(100))
    #: Set after the policy's number of returned payments in a year (``money_policy``): the
    #: portal and autopay then refuse non-cash methods, saying why.
    cash_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    cash_only_since: Mapped[date | None] = mapped_column(Date)
    cash_only_reason: Mapped[str | None] = mapped_column(String(200))

    customer: Mapped[Customer] = relationship(back_populates="accounts")
    premise: Mapped[Premise] = relationship()
    cycle: Mapped[BillingCycle] = relationship()
    services: Mapped[list[Service]] = relationship(back_populates="account", order_by="Service.id")

    __table_args__ = (CheckConstraint("status in ('pending', 'active', 'final', 'closed')", name="status"),)


class Service(Base):
    """One service (water, sewer, sanitation, ...) billed on an account."""

    __tablename__ = "service"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    service_type: Mapped[str] = mapped_column(String(20))
    rate_schedule_id: Mapped[int] = mapped_column(ForeignKey("rate_schedule.id"), index=True)
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"), index=True)
    #: Rate options such as ``{"cart_size": "64"}`` for sanitation.
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_on: Mapped[date] = mapped_column(Date)
    #: The first day without the service (the day after its last day), so a service runs
    #: over ``[started_on, ended_on)`` like a bill's period.
    ended_on: Mapped[date | None] = mapped_column(Date)

    account: Mapped[Account] = relationship(back_populates="services")
    rate_schedule: Mapped[RateSchedule] = relationship()
    meter: Mapped[Meter | None] = relationship()

    __table_args__ = (
        CheckConstraint(
            "service_type in ('water', 'sewer', 'sanitation', 'fire', 'irrigation', 'recycled')",
            name="service_type",
        ),
    )


class LedgerTransaction(Base):
    """A balanced set of entries. Never updated or deleted (triggers enforce it)."""

    __tablename__ = "ledger_transaction"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    effective_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    memo: Mapped[str] = mapped_column(String(300), default="")
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"), unique=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    entries: Mapped[list[LedgerEntry]] = relationship(back_populates="transaction", order_by="LedgerEntry.id")

    __table_args__ = (
        CheckConstraint(
            "kind in ('bill', 'payment', 'adjustment', 'fee', 'reversal', 'deposit', 'refund', 'write_off', "
            "'recovery')",
            name="kind",
        ),
    )


class LedgerEntry(Base):
    __tablename__ = "ledger_entry"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transaction.id"), index=True)
    gl_account: Mapped[str] = mapped_column(String(40))
    #: Set on receivable and unapplied-credit entries: whose balance this moves.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    service_type: Mapped[str | None] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(BigInteger)

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="entries")

    __table_args__ = (Index("ix_ledger_entry_account_id", "account_id", "transaction_id"),)


class Bill(Base):
    __tablename__ = "bill"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: Given when the bill is posted; drafts have none.
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    bill_run_id: Mapped[int | None] = mapped_column(ForeignKey("bill_run.id"), index=True)
    #: Register exceptions on a draft (zero, high, estimated, ...), comma-separated.
    exceptions: Mapped[str | None] = mapped_column(String(200))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    bill_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    previous_balance_cents: Mapped[int] = mapped_column(BigInteger)
    payments_since_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    current_charges_cents: Mapped[int] = mapped_column(BigInteger)
    total_due_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="posted")
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))

    account: Mapped[Account] = relationship()
    lines: Mapped[list[BillLine]] = relationship(back_populates="bill", order_by="BillLine.sequence")
    usages: Mapped[list[BillUsage]] = relationship(order_by="BillUsage.id")

    __table_args__ = (
        Index("ix_bill_account_id_bill_date", "account_id", "bill_date"),
        CheckConstraint("status in ('draft', 'posted', 'voided')", name="status"),
        CheckConstraint("period_start < period_end", name="period"),
    )


class BillUsage(Base):
    """The reads and use behind a bill, per meter."""

    __tablename__ = "bill_usage"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), index=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"))
    previous_read_id: Mapped[int | None] = mapped_column(ForeignKey("meter_read.id"))
    current_read_id: Mapped[int | None] = mapped_column(ForeignKey("meter_read.id"))
    previous_value: Mapped[Decimal | None] = mapped_column(Quantity)
    current_value: Mapped[Decimal | None] = mapped_column(Quantity)
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(200))

    meter: Mapped[Meter] = relationship()
    previous_read: Mapped[MeterRead | None] = relationship(foreign_keys=[previous_read_id])
    current_read: Mapped[MeterRead | None] = relationship(foreign_keys=[current_read_id])


class BillLine(Base):
    __tablename__ = "bill_line"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), index=True)
    sequence: Mapped[int] = mapped_column(Integer)
    service_type: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    unit: Mapped[str] = mapped_column(String(10))
    unit_price: Mapped[Decimal] = mapped_column(Price)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    rate_version_id: Mapped[int | None] = mapped_column(ForeignKey("rate_schedule_version.id"))

    bill: Mapped[Bill] = relationship(back_populates="lines")


class BillRun(Base):
    """One cycle's bills for one period, from calculation to posting."""

    __tablename__ = "bill_run"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("billing_cycle.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    bill_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20), default="created")
    accounts_total: Mapped[int] = mapped_column(Integer, default=0)
    accounts_done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    calculated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    cycle: Mapped[BillingCycle] = relationship()

    __table_args__ = (
        CheckConstraint(
            "status in ('created', 'calculating', 'calculated', 'approved', 'posting', 'posted', 'cancelled')",
            name="status",
        ),
        CheckConstraint("period_start < period_end", name="period"),
    )


class ReadImport(Base):
    """One imported read file. The same file (by content) is imported once."""

    __tablename__ = "read_import"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(20))
    layout: Mapped[str | None] = mapped_column(String(40))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    lines_total: Mapped[int] = mapped_column(Integer, default=0)
    reads_added: Mapped[int] = mapped_column(Integer, default=0)
    reads_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    exceptions: Mapped[int] = mapped_column(Integer, default=0)


class Payment(Base):
    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    received_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="posted")
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    #: Who paid online (a customer sign-in), or the staff member who took it.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    #: The processor's id for the payment (a Stripe PaymentIntent).
    processor_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: Sent with the create call, so a repeated request makes one payment, not two.
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: The processor's own word for where the payment stands ("processing", "succeeded", ...).
    processor_status: Mapped[str | None] = mapped_column(String(40))
    #: "Visa •••• 4242": brand and last four digits only, never a card or account number.
    method_label: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(String(300))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the receipt email went out (once).
    receipt_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: For an autopay draft that failed: when the customer was told (once).
    failure_notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The part of a payment beyond what the account owed when it posted (two payments
    #: for one balance): held as a credit and listed for staff to review for a refund.
    overpaid_cents: Mapped[int | None] = mapped_column(BigInteger, index=True)
    #: When and by whom that review was done (refunded, or kept as credit).
    refund_reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refund_reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # --- Payments the office takes (issue 14). ``method`` is the tender: card, bank, cash,
    # check, money_order. A payment taken at the counter belongs to an open drawer and a receipt;
    # a mailed or lockbox payment to a batch.
    drawer_id: Mapped[int | None] = mapped_column(ForeignKey("cash_drawer.id"), index=True)
    receipt_id: Mapped[int | None] = mapped_column(ForeignKey("counter_receipt.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payment_batch.id"), index=True)
    check_number: Mapped[str | None] = mapped_column(String(30))
    #: The card terminal's approval code (card present): no card data is ever stored.
    approval_code: Mapped[str | None] = mapped_column(String(20))
    #: The bank's reference for a remittance (lockbox or bank file): the same one twice adds nothing.
    bank_reference: Mapped[str | None] = mapped_column(String(100), unique=True, index=True)
    #: A returned payment: when, why (NSF, or an ACH R-code), and the fee it brought.
    returned_on: Mapped[date | None] = mapped_column(Date)
    return_code: Mapped[str | None] = mapped_column(String(10))
    return_fee_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    #: The part of a payment on a written-off account recorded as a recovery of bad debt.
    recovery_cents: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="positive"),
        CheckConstraint("overpaid_cents > 0 AND overpaid_cents <= amount_cents", name="overpaid"),
        CheckConstraint("channel in ('counter', 'mail', 'lockbox', 'online', 'autopay', 'phone')", name="channel"),
        CheckConstraint("status in ('pending', 'posted', 'returned', 'failed')", name="status"),
    )


class User(Base):
    """A sign-in. Customers are linked to the accounts they may see."""

    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    display_name: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the person showed they read mail at ``email`` (a link we sent them was opened).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The language of the pages and emails: "en" or "es".
    language: Mapped[str] = mapped_column(String(5), default="en", server_default="en")
    #: Sessions signed in before this are no longer accepted (a password change signs out elsewhere).
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phone: Mapped[str | None] = mapped_column(String(40))
    #: Emails the customer may turn off. Notices that something failed are always sent.
    notify_receipts: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    notify_updates: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    #: The subject at an outside OpenID Connect provider this sign-in may also use ("issuer|sub").
    oidc_subject: Mapped[str | None] = mapped_column(String(300), unique=True)

    accounts: Mapped[list[Account]] = relationship(secondary="user_account_link", order_by="Account.number")

    __table_args__ = (
        CheckConstraint(
            "role in ('customer', 'csr', 'specialist', 'cashier', 'supervisor', 'admin', 'field')", name="role"
        ),
    )

    @property
    def role_enum(self) -> Role:
        return Role(self.role)


class UserAccountLink(Base):
    __tablename__ = "user_account_link"
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), primary_key=True, index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)


class AuditEvent(Base):
    """Who did what, to what, before and after, when, from where."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    actor_label: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60), index=True)
    entity_type: Mapped[str | None] = mapped_column(String(40))
    entity_id: Mapped[str | None] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_audit_event_entity", "entity_type", "entity_id"),
        # The audit trail viewer's searches by person or kind, newest first (issue 16).
        Index("ix_audit_event_actor_time", "actor_id", "occurred_at"),
        Index("ix_audit_event_action_time", "action", "occurred_at"),
    )


class PrintFile(Base):
    """A run's mailed bills as one PDF in ZIP-code order, with a CSV extract for the mail house."""

    __tablename__ = "print_file"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    bill_run_id: Mapped[int] = mapped_column(ForeignKey("bill_run.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="rendering")
    bills_total: Mapped[int] = mapped_column(Integer, default=0)
    emails_total: Mapped[int] = mapped_column(Integer, default=0)
    parts_total: Mapped[int] = mapped_column(Integer, default=0)
    part_size: Mapped[int] = mapped_column(Integer)
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    csv_path: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("status in ('rendering', 'ready', 'failed')", name="status"),)


class PrintFilePart(Base):
    """One rendered slice of a print file; the last slice to finish joins them."""

    __tablename__ = "print_file_part"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    print_file_id: Mapped[int] = mapped_column(ForeignKey("print_file.id"))
    part: Mapped[int] = mapped_column(Integer)
    bills: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (UniqueConstraint("print_file_id", "part", name="uq_print_file_part"),)


class BillDelivery(Base):
    """How a posted bill reaches its customer: on paper in the print file, or by email."""

    __tablename__ = "bill_delivery"
    bill_id: Mapped[int] = mapped_column(ForeignKey("bill.id"), primary_key=True)
    print_file_id: Mapped[int] = mapped_column(ForeignKey("print_file.id"))
    channel: Mapped[str] = mapped_column(String(10))
    #: Place in the print file (mail) or in the sending order (email).
    sequence: Mapped[int] = mapped_column(Integer)
    email_to: Mapped[str | None] = mapped_column(String(254))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("channel in ('mail', 'email')", name="channel"),
        Index("ix_bill_delivery_print_file_sequence", "print_file_id", "channel", "sequence"),
    )


class UserToken(Base):
    """A single-use link sent by email (confirm the address, reset the password). Only a
    hash of the token is kept; the token itself exists only in the email."""

    __tablename__ = "user_token"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("purpose in ('verify_email', 'reset_password', 'invite')", name="purpose"),)


class AuthFailure(Base):
    """One failed attempt (a wrong password, a wrong account-linking fact), counted per
    key over a window to slow down guessing: ``email:<address>``, ``ip:<address>``,
    ``link:<user id>``, ``account:<number>``."""

    __tablename__ = "auth_failure"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_auth_failure_key_at", "key", "at"),)


class UserSession(Base):
    """One signed-in browser. The signed cookie carries a random id; only its SHA-256
    hash is kept here, so a copy of this table signs nobody in. Every request checks the
    record: once ``ended_at`` is set (sign-out, password reset, "sign out everywhere",
    deactivation, or an idle or absolute timeout) the cookie is worth nothing."""

    __tablename__ = "user_session"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Written at most once a minute, so a busy page does not write on every request.
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Why it ended: sign_out, password, sign_out_everywhere, sign_out_others, deactivated, idle, expired.
    end_reason: Mapped[str | None] = mapped_column(String(30))
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class ProcessorEvent(Base):
    """A webhook event from the payment processor, kept so each is acted on once."""

    __tablename__ = "processor_event"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(60))
    object_id: Mapped[str | None] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    #: What the portal did with it ("posted payment 12", "ignored: unknown payment", ...).
    outcome: Mapped[str | None] = mapped_column(String(200))


class AutopayEnrollment(Base):
    """A standing authorization to take each bill from a saved card or bank account.

    The processor keeps the card or bank details; we keep its id for the saved method
    and what the customer agreed to: the authorization text as shown, its version, when
    and from which network address. Replaced or cancelled enrollments stay as history.
    """

    __tablename__ = "autopay_enrollment"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")
    #: "card" or "us_bank_account".
    method_kind: Mapped[str] = mapped_column(String(20))
    #: The processor's saved payment method (a Stripe PaymentMethod id), never a number.
    payment_method_id: Mapped[str | None] = mapped_column(String(100))
    method_label: Mapped[str | None] = mapped_column(String(80))
    #: The SetupIntent that saved the method for use when the customer is not there.
    setup_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    authorization_version: Mapped[str] = mapped_column(String(20))
    authorization_text: Mapped[str] = mapped_column(Text)
    authorization_language: Mapped[str] = mapped_column(String(5), default="en")
    authorized_at: Mapped[datetime] = mapped_column(UTCDateTime)
    authorized_from: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (
        CheckConstraint("status in ('active', 'cancelled', 'replaced')", name="status"),
        CheckConstraint("method_kind in ('card', 'us_bank_account')", name="method_kind"),
        Index(
            "uq_autopay_enrollment_active_account",
            "account_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class ServiceRequest(Base):
    """A customer's request to start, stop or transfer (stop here, start there) service,
    worked by staff from a queue. The customer sees its status and the message staff leave."""

    __tablename__ = "service_request"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    #: The account to stop (stop and transfer); none for a start.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    stop_on: Mapped[date | None] = mapped_column(Date)
    start_on: Mapped[date | None] = mapped_column(Date)
    #: Where service starts (start and transfer).
    service_line1: Mapped[str | None] = mapped_column(String(200))
    service_line2: Mapped[str | None] = mapped_column(String(100))
    service_city: Mapped[str | None] = mapped_column(String(100))
    service_state: Mapped[str | None] = mapped_column(String(2))
    service_zip: Mapped[str | None] = mapped_column(String(10))
    #: Where the final bill goes (stop and transfer).
    forward_line1: Mapped[str | None] = mapped_column(String(200))
    forward_city: Mapped[str | None] = mapped_column(String(100))
    forward_state: Mapped[str | None] = mapped_column(String(2))
    forward_zip: Mapped[str | None] = mapped_column(String(10))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str] = mapped_column(String(254))
    #: Identity facts for a new service: date of birth and the last four of a photo ID.
    birth_date: Mapped[date | None] = mapped_column(Date)
    id_last4: Mapped[str | None] = mapped_column(String(4))
    #: "owner" or "tenant" at the new address.
    occupancy: Mapped[str | None] = mapped_column(String(10))
    #: The deposit the policy asks, as told to the customer when they asked (0: none).
    deposit_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What staff tell the customer (when it is scheduled, why it was declined).
    message: Mapped[str | None] = mapped_column(String(500))
    #: Staff's own notes, never shown to the customer.
    staff_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    handled_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (
        CheckConstraint("kind in ('start', 'stop', 'transfer')", name="kind"),
        CheckConstraint("status in ('submitted', 'scheduled', 'completed', 'declined', 'cancelled')", name="status"),
        CheckConstraint("occupancy is null or occupancy in ('owner', 'tenant')", name="occupancy"),
        Index("ix_service_request_status_created", "status", "created_at"),
    )


class FinalBillReview(Base):
    """A stop of service whose final bill waits for a person before it posts: a final read
    that implies use far beyond the account's history (the rules of imported reads) or a
    last day of service still ahead. Until it is approved and posted nothing about the
    account changes: it stays active, no read is written, its services go on."""

    __tablename__ = "final_bill_review"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: The last day of service (the customer is served and billed through it).
    stop_on: Mapped[date] = mapped_column(Date)
    #: The final read of each meter, ``{"<meter id>": "<value>"}`` (exact decimal text).
    reads: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Why it is held (``future_stop``, ``high``, ``rollover``, ...), comma-separated.
    reasons: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="held")
    #: Where the final bill goes, set on the customer when it posts (none: the address on file).
    forward_line1: Mapped[str | None] = mapped_column(String(200))
    forward_city: Mapped[str | None] = mapped_column(String(100))
    forward_state: Mapped[str | None] = mapped_column(String(2))
    forward_zip: Mapped[str | None] = mapped_column(String(10))
    entered_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The final bill, once posted.
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"))
    #: Corrections of the reads while held, one line each (who, when, why).
    note: Mapped[str | None] = mapped_column(Text)

    account: Mapped[Account] = relationship()

    __table_args__ = (
        CheckConstraint("status in ('held', 'posted')", name="status"),
        Index(
            "uq_final_bill_review_held_account",
            "account_id",
            unique=True,
            sqlite_where=text("status = 'held'"),
            postgresql_where=text("status = 'held'"),
        ),
    )


class ArrangementRequest(Base):
    """A customer's proposal to pay what is owed in installments; staff approve or decline it."""

    __tablename__ = "arrangement_request"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    status: Mapped[str] = mapped_column(String(20), default="submitted")
    #: What the plan covers: the balance when asked.
    total_cents: Mapped[int] = mapped_column(BigInteger)
    down_payment_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    installments: Mapped[int] = mapped_column(Integer)
    #: When the first installment is due; the others fall on the same day of each later month.
    first_due_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(1000))
    message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (
        CheckConstraint("status in ('submitted', 'approved', 'declined', 'withdrawn')", name="status"),
        CheckConstraint("installments between 1 and 60", name="installments"),
        CheckConstraint("total_cents > 0 and down_payment_cents >= 0", name="amounts"),
    )


class EmailOutbox(Base):
    """One email the portal means to send, and how that went: queued, being sent, sent,
    retrying after a failure (with when it is tried next), failed for good, or skipped
    (there was nothing to send when its turn came, e.g. the customer turned such emails
    off). A job sends it (``portal/jobs.py``); this row is what staff see."""

    __tablename__ = "email_outbox"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: The job that writes and sends it: ``email.account``, ``email.receipt``, ``email.bill_ready``, ...
    kind: Mapped[str] = mapped_column(String(40))
    #: The job's arguments (ids only).
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: What it is about, for the page that shows it: ``bill``, ``service_request``, ``payment``, ...
    ref_type: Mapped[str | None] = mapped_column(String(30))
    ref_id: Mapped[int | None] = mapped_column(BigInteger)
    #: The print file whose bill it announces (bill-ready emails).
    print_file_id: Mapped[int | None] = mapped_column(ForeignKey("print_file.id"))
    #: Known once it is written (the address may change between queueing and sending).
    recipient: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(12), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Who is sending it now (a random token), and since when: a sender that died is
    #: recognised by a claim older than a few minutes.
    claim: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("status in ('queued', 'sending', 'sent', 'retrying', 'failed', 'skipped')", name="status"),
        Index("ix_email_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_email_outbox_ref", "ref_type", "ref_id"),
        Index("ix_email_outbox_print_file_id", "print_file_id", "status"),
    )


# --- The money back office (issue 14) --------------------------------------------------------


class CashDrawer(Base):
    """A cashier's drawer for one business day: opened with a counted float, every counter
    payment belongs to it, closed with a count by tender, signed off by a supervisor."""

    __tablename__ = "cash_drawer"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    #: Where it is ("Counter 1", "Window 2").
    name: Mapped[str] = mapped_column(String(40))
    cashier_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    float_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default="open")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The count at close: ``{"cash": {"2000": 3, "25": 4, ...}, "checks": [{"number": ..,
    #: "amount_cents": ..}], "card_cents": ..}`` (denominations in cents: how many of each).
    count: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: What the drawer should hold by tender, and counted less expected, at close.
    expected: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    over_short: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    over_short_reason: Mapped[str | None] = mapped_column(Text)
    signed_off_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sign_off_note: Mapped[str | None] = mapped_column(Text)
    #: The posting of a cash over or short at sign-off.
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))

    __table_args__ = (
        CheckConstraint("status in ('open', 'closed', 'signed_off')", name="status"),
        CheckConstraint("float_cents >= 0", name="float"),
        Index(
            "uq_cash_drawer_open_cashier",
            "cashier_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )


class CounterReceipt(Base):
    """What a customer at the counter handed over once, perhaps for several accounts."""

    __tablename__ = "counter_receipt"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    drawer_id: Mapped[int] = mapped_column(ForeignKey("cash_drawer.id"), index=True)
    taken_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    #: cash, check, card (card present) or money_order.
    tender: Mapped[str] = mapped_column(String(20))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    #: Cash handed over, and the change given back.
    tendered_cents: Mapped[int | None] = mapped_column(BigInteger)
    change_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    check_number: Mapped[str | None] = mapped_column(String(30))
    check_bank: Mapped[str | None] = mapped_column(String(100))
    approval_code: Mapped[str | None] = mapped_column(String(20))
    payer_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5), default="en")
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("tender in ('cash', 'check', 'card', 'money_order')", name="tender"),
        CheckConstraint("total_cents > 0", name="positive"),
        CheckConstraint("change_cents >= 0", name="change"),
    )


class PaymentBatch(Base):
    """Mailed checks keyed by a specialist (``mail``) or a bank's lockbox file (``lockbox``):
    posted all at once, and only when the keyed total matches the control total."""

    __tablename__ = "payment_batch"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    label: Mapped[str] = mapped_column(String(100), default="")
    deposit_date: Mapped[date] = mapped_column(Date)
    control_count: Mapped[int | None] = mapped_column(Integer)
    control_total_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default="open")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("kind in ('mail', 'lockbox')", name="kind"),
        CheckConstraint("status in ('open', 'posted', 'cancelled')", name="status"),
    )


class PaymentBatchItem(Base):
    """One keyed check of a mail batch, before the batch posts."""

    __tablename__ = "payment_batch_item"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("payment_batch.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    scan_line: Mapped[str | None] = mapped_column(String(60))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    check_number: Mapped[str | None] = mapped_column(String(30))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))

    __table_args__ = (CheckConstraint("amount_cents > 0", name="positive"),)


class PaymentImport(Base):
    """A bank or lockbox file as imported: the same file twice is recognised by its hash."""

    __tablename__ = "payment_import"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(10))
    layout: Mapped[str | None] = mapped_column(String(40))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payment_batch.id"))
    matched: Mapped[int] = mapped_column(Integer, default=0)
    duplicate: Mapped[int] = mapped_column(Integer, default=0)
    unmatched: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (CheckConstraint("format in ('bai2', 'csv')", name="format"),)


class PaymentImportRow(Base):
    """Every row of an imported file and what became of it. Unmatched rows wait in a queue
    until staff assign them to an account or mark them for return to the payer."""

    __tablename__ = "payment_import_row"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("payment_import.id"), index=True)
    line_no: Mapped[int] = mapped_column(Integer)
    bank_reference: Mapped[str | None] = mapped_column(String(100), index=True)
    account_text: Mapped[str | None] = mapped_column(String(60))
    scan_line: Mapped[str | None] = mapped_column(String(60))
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    check_number: Mapped[str | None] = mapped_column(String(30))
    received_on: Mapped[date | None] = mapped_column(Date)
    #: matched, duplicate, unmatched or rejected.
    outcome: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(300))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    #: For an unmatched row: assigned (to an account, then paid) or returned (to the payer).
    resolution: Mapped[str | None] = mapped_column(String(12))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint("outcome in ('matched', 'duplicate', 'unmatched', 'rejected')", name="outcome"),
        CheckConstraint("resolution in ('assigned', 'returned')", name="resolution"),
        Index("ix_payment_import_row_queue", "outcome", "resolution"),
    )


class Adjustment(Base):
    """A debit (positive) or credit (negative) to one service of an account, with a reason.
    Within the preparer's limit it posts at once; above it, it waits for someone else."""

    __tablename__ = "adjustment"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    service_type: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason_code: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    #: The leak helper's working (the months, the average, the tiers), shown with the adjustment.
    working: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: What shows the leak was repaired (a plumber's invoice number, a receipt).
    repair_proof: Mapped[str | None] = mapped_column(String(300))

    __table_args__ = (
        CheckConstraint("amount_cents <> 0", name="nonzero"),
        CheckConstraint("status in ('pending', 'posted', 'rejected')", name="status"),
        CheckConstraint(
            "reason_code in ('leak', 'meter_error', 'billing_error', 'courtesy', 'fee_waiver', 'other')",
            name="reason_code",
        ),
        Index("ix_adjustment_status", "status", "prepared_at"),
    )


class Deposit(Base):
    """A security deposit: billed to the account, held as a liability (never part of what
    is owed for service), then credited back, applied to the final bill, or cancelled."""

    __tablename__ = "deposit"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    #: new_customer, after_shutoff, returned_payments or other.
    reason: Mapped[str] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="billed")
    billed_on: Mapped[date] = mapped_column(Date)
    billed_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    released_on: Mapped[date | None] = mapped_column(Date)
    release_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="positive"),
        CheckConstraint("reason in ('new_customer', 'after_shutoff', 'returned_payments', 'other')", name="reason"),
        CheckConstraint("status in ('billed', 'credited', 'applied', 'cancelled')", name="status"),
    )


class Refund(Base):
    """A refund of an account's credit: requested by staff, approved by someone else, paid
    back to the original card (through the gateway) or by check (the AP check register)."""

    __tablename__ = "refund"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200))
    #: card (back to ``payment_id``'s card) or check.
    method: Mapped[str] = mapped_column(String(10))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    status: Mapped[str] = mapped_column(String(10), default="requested")
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    payee_name: Mapped[str | None] = mapped_column(String(200))
    mailing_line1: Mapped[str | None] = mapped_column(String(200))
    mailing_city: Mapped[str | None] = mapped_column(String(100))
    mailing_state: Mapped[str | None] = mapped_column(String(2))
    mailing_zip: Mapped[str | None] = mapped_column(String(10))
    processor_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(100), unique=True)
    #: When a check refund went out in an accounts-payable check register export.
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failure_message: Mapped[str | None] = mapped_column(String(300))
    #: The credit moved to refunds payable (on approval), and paid out (card refund or check).
    approved_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    paid_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))

    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="positive"),
        CheckConstraint("method in ('card', 'check')", name="method"),
        CheckConstraint("status in ('requested', 'approved', 'rejected', 'paid', 'failed')", name="status"),
        Index("ix_refund_status", "status", "requested_at"),
    )


class WriteOff(Base):
    """An uncollectible final balance written off to bad debt, with approval. A later
    payment on the account is still taken and recorded as a recovery."""

    __tablename__ = "write_off"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    prepared_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))

    __table_args__ = (
        CheckConstraint("amount_cents > 0", name="positive"),
        CheckConstraint("status in ('pending', 'posted', 'rejected')", name="status"),
    )


# --- Delinquency and collections (issue 15) -------------------------------------------------


class DelinquencyPolicyVersion(Base):
    """One version of the collection ladder (``billing_core/ladder_policy.py``), as data.
    A change is a new version from a date; old versions stay, so every action names the
    version it followed."""

    __tablename__ = "delinquency_policy_version"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    effective_on: Mapped[date] = mapped_column(Date)
    #: ``ladder_policy.LadderPolicy.to_dict()``.
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (Index("ix_delinquency_policy_version_effective_on", "effective_on"),)


class CollectionRun(Base):
    """The daily delinquency run of one date: previewed (an action list), then posted once."""

    __tablename__ = "collection_run"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    run_on: Mapped[date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(10), default="previewed")
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("delinquency_policy_version.id"))
    accounts_evaluated: Mapped[int] = mapped_column(Integer, default=0)
    actions_planned: Mapped[int] = mapped_column(Integer, default=0)
    actions_posted: Mapped[int] = mapped_column(Integer, default=0)
    previewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    posted_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (CheckConstraint("status in ('previewed', 'posting', 'posted')", name="status"),)


class CollectionAction(Base):
    """One step of the ladder for one account in one delinquency episode: a late fee, a
    notice, a door tag, a shutoff order, a referral. The unique key makes each happen at
    most once per episode, however many times or on however many workers the run goes."""

    __tablename__ = "collection_action"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("collection_run.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: What the episode is: the bill that first went unpaid (``bill:<id>``), or ``final:<id>``.
    episode: Mapped[str] = mapped_column(String(40))
    #: ``ladder_policy.STEP_KINDS`` and ``FINAL_STEP_KINDS``.
    step: Mapped[str] = mapped_column(String(30))
    #: planned (on a preview), posted, refused (the gate or a protection said no, ``rule``),
    #: skipped (nothing to do: paid, under the minimum) or cancelled.
    status: Mapped[str] = mapped_column(String(10), default="planned")
    due_on: Mapped[date] = mapped_column(Date)
    posted_on: Mapped[date | None] = mapped_column(Date)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    #: In plain words, why (shown on the action list).
    reason: Mapped[str] = mapped_column(Text, default="")
    #: The rule that refused it, when refused (``shutoff_gate`` rule names).
    rule: Mapped[str | None] = mapped_column(String(40))
    policy_version_id: Mapped[int | None] = mapped_column(ForeignKey("delinquency_policy_version.id"))
    ledger_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_order.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (
        UniqueConstraint("account_id", "episode", "step", name="uq_collection_action_once"),
        CheckConstraint("status in ('planned', 'posted', 'refused', 'skipped', 'cancelled')", name="status"),
        Index("ix_collection_action_due", "status", "due_on"),
    )


class CollectionHold(Base):
    """A supervisor keeps an account out of the daily run, with a reason, until released."""

    __tablename__ = "collection_hold"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    until_on: Mapped[date | None] = mapped_column(Date)
    held_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    __table_args__ = (
        Index(
            "uq_collection_hold_active",
            "account_id",
            unique=True,
            sqlite_where=text("released_at IS NULL"),
            postgresql_where=text("released_at IS NULL"),
        ),
    )


class NoticeBatch(Base):
    """The notices of one day and kind, printed as one PDF in ZIP order for the mail house."""

    __tablename__ = "notice_batch"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    issued_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    notices_total: Mapped[int] = mapped_column(Integer, default=0)
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (UniqueConstraint("issued_on", "kind", name="uq_notice_batch_day_kind"),)


class Notice(Base):
    """A written notice to a customer (or to the "Occupant" at the service address): its
    figures are fixed when issued, so the letter can be printed again exactly."""

    __tablename__ = "notice"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: past_due, final (the Act's written shutoff notice), door_tag, reconnected, broken_plan.
    kind: Mapped[str] = mapped_column(String(20))
    #: customer or occupant.
    addressee: Mapped[str] = mapped_column(String(10), default="customer")
    language: Mapped[str] = mapped_column(String(5), default="en")
    name: Mapped[str] = mapped_column(String(200))
    address_line1: Mapped[str | None] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    state: Mapped[str | None] = mapped_column(String(2))
    zip: Mapped[str | None] = mapped_column(String(10))
    issued_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Pay by this date to avoid the next step.
    deadline_on: Mapped[date | None] = mapped_column(Date)
    #: The earliest shutoff date the notice states, when it states one.
    shutoff_on: Mapped[date | None] = mapped_column(Date)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("collection_action.id"), index=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("notice_batch.id"), index=True)
    email_outbox_id: Mapped[int | None] = mapped_column(ForeignKey("email_outbox.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (
        CheckConstraint("addressee in ('customer', 'occupant')", name="addressee"),
        Index("ix_notice_issued_on", "issued_on", "kind"),
    )


class WorkOrder(Base):
    """A job for field staff at a premise: a door tag, a shutoff, a reconnection (and, later,
    meter work and investigations). Done (with time, read, lock or tag number) or not done
    (with a reason) by the person in the field; cancelled by the office."""

    __tablename__ = "work_order"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    premise_id: Mapped[int] = mapped_column(ForeignKey("premise.id"), index=True)
    status: Mapped[str] = mapped_column(String(10), default="open")
    reason: Mapped[str] = mapped_column(Text, default="")
    due_on: Mapped[date] = mapped_column(Date)
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The amount and deadline the door tag or shutoff is about (fixed when made).
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    deadline_on: Mapped[date | None] = mapped_column(Date)
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    meter_read: Mapped[Decimal | None] = mapped_column(DecimalType(14, 4))
    lock_or_tag: Mapped[str | None] = mapped_column(String(40))
    not_done_reason: Mapped[str | None] = mapped_column(Text)
    cancelled_reason: Mapped[str | None] = mapped_column(Text)
    #: The reconnection fee posted for a reconnection.
    fee_transaction_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transaction.id"))
    #: The shutoff a reconnection undoes.
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("work_order.id"))
    # Issue 16: where the order came from, who works it, what the field entered.
    #: hand, request, read_exception, ladder, account (opening or changing one), case.
    origin: Mapped[str] = mapped_column(String(20), default="hand", server_default="hand")
    service_request_id: Mapped[int | None] = mapped_column(ForeignKey("service_request.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("service_case.id"), index=True)
    #: The meter the order is about (an install names the stocked meter to set).
    meter_id: Mapped[int | None] = mapped_column(ForeignKey("meter.id"), index=True)
    #: A crew's name, when the order goes to a crew instead of one person.
    crew: Mapped[str | None] = mapped_column(String(60))
    #: The meter serial the field person scanned or typed at the premise.
    serial_entered: Mapped[str | None] = mapped_column(String(40))
    notes: Mapped[str | None] = mapped_column(Text)
    #: A photo taken in the field, kept under files_dir.
    photo_path: Mapped[str | None] = mapped_column(String(500))
    #: The read the completion entered.
    read_id: Mapped[int | None] = mapped_column(ForeignKey("meter_read.id"))

    premise: Mapped[Premise] = relationship()

    __table_args__ = (
        CheckConstraint(
            "kind in ('door_tag', 'shutoff', 'reconnect', 'investigate', 'meter_set', 'meter_exchange', "
            "'meter_remove', 'read', 'other', 'turn_on', 'turn_off', 'read_in', 'read_out', 're_read', "
            "'meter_test', 'leak')",
            name="kind",
        ),
        CheckConstraint("status in ('open', 'done', 'not_done', 'cancelled')", name="status"),
        Index("ix_work_order_queue", "status", "due_on"),
    )


class PaymentPlan(Base):
    """A payment plan (installments) or an extension (a promise to pay by a date), made by
    staff or approved from a customer's request. While kept it pauses the ladder."""

    __tablename__ = "payment_plan"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: plan or extension.
    kind: Mapped[str] = mapped_column(String(10), default="plan")
    #: active (kept so far), completed, broken or cancelled.
    status: Mapped[str] = mapped_column(String(10), default="active")
    total_cents: Mapped[int] = mapped_column(BigInteger)
    down_payment_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    starts_on: Mapped[date] = mapped_column(Date)
    #: An installment not paid this many days after its date breaks the plan.
    grace_days: Mapped[int] = mapped_column(Integer, default=10)
    arrangement_request_id: Mapped[int | None] = mapped_column(ForeignKey("arrangement_request.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    ended_on: Mapped[date | None] = mapped_column(Date)
    end_reason: Mapped[str | None] = mapped_column(Text)

    installments: Mapped[list[PaymentPlanInstallment]] = relationship(
        back_populates="plan", order_by="PaymentPlanInstallment.seq"
    )

    __table_args__ = (
        CheckConstraint("kind in ('plan', 'extension')", name="kind"),
        CheckConstraint("status in ('active', 'completed', 'broken', 'cancelled')", name="status"),
        CheckConstraint("total_cents > 0 and down_payment_cents >= 0", name="amounts"),
        Index(
            "uq_payment_plan_active",
            "account_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class PaymentPlanInstallment(Base):
    __tablename__ = "payment_plan_installment"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("payment_plan.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    paid_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: due, paid or missed.
    status: Mapped[str] = mapped_column(String(10), default="due")
    paid_on: Mapped[date | None] = mapped_column(Date)

    plan: Mapped[PaymentPlan] = relationship(back_populates="installments")

    __table_args__ = (
        UniqueConstraint("plan_id", "seq", name="uq_payment_plan_installment_seq"),
        CheckConstraint("amount_cents > 0 and paid_cents >= 0", name="amounts"),
        CheckConstraint("status in ('due', 'paid', 'missed')", name="status"),
    )


class Dispute(Base):
    """A disputed amount, an appeal or an investigation: while open, the amount is kept out
    of late fees and the account cannot be shut off."""

    __tablename__ = "dispute"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"), index=True)
    #: dispute (of a bill's amount), appeal (of a decision or a shutoff) or investigation.
    kind: Mapped[str] = mapped_column(String(15), default="dispute")
    amount_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    #: open, upheld (the customer was right), denied or withdrawn.
    status: Mapped[str] = mapped_column(String(10), default="open")
    reason: Mapped[str] = mapped_column(Text)
    #: staff or resident.
    opened_via: Mapped[str] = mapped_column(String(10), default="staff")
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision: Mapped[str | None] = mapped_column(Text)
    #: The case this dispute belongs to (issue 16: a case of type dispute or appeal is it).
    case_id: Mapped[int | None] = mapped_column(ForeignKey("service_case.id"), index=True)

    __table_args__ = (
        CheckConstraint("kind in ('dispute', 'appeal', 'investigation')", name="kind"),
        CheckConstraint("status in ('open', 'upheld', 'denied', 'withdrawn')", name="status"),
        CheckConstraint("opened_via in ('staff', 'resident')", name="opened_via"),
        CheckConstraint("amount_cents >= 0", name="amount"),
    )


class ShutoffProtection(Base):
    """What the office has on file that protects an account: a primary care provider's
    certification, financial inability (a program or income under 200% of the poverty line),
    willingness to enter a plan, low-income status (for the reconnection fee caps)."""

    __tablename__ = "shutoff_protection"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    #: The program (CalFresh, Medi-Cal, ...), the provider, the evidence seen.
    detail: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(
            "kind in ('medical_certification', 'financial_inability', 'willing_to_plan', 'low_income')",
            name="kind",
        ),
    )


class AgencyClosure(Base):
    """A day the agency is closed besides weekends and the state's holidays: no shutoffs."""

    __tablename__ = "agency_closure"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)


class CollectionReferral(Base):
    """A final account's balance sent on: to a collection agency, or as a lien on the
    parcel / a charge on the property tax roll (sewer and sanitation). Prepared, approved
    by someone else, exported once; what comes back is recorded as recoveries."""

    __tablename__ = "collection_referral"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"), index=True)
    #: agency or tax_roll.
    kind: Mapped[str] = mapped_column(String(10))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    #: For a tax-roll transfer: the service whose balance it is, and the parcel.
    service_type: Mapped[str | None] = mapped_column(String(20))
    parcel_number: Mapped[str | None] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(10), default="proposed")
    prepared_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    exported_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The export file it went out in (its sha256, to find it again).
    export_ref: Mapped[str | None] = mapped_column(String(64))
    recovered_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    action_id: Mapped[int | None] = mapped_column(ForeignKey("collection_action.id"))

    __table_args__ = (
        CheckConstraint("kind in ('agency', 'tax_roll')", name="kind"),
        CheckConstraint(
            "status in ('proposed', 'approved', 'rejected', 'exported', 'recalled', 'closed')", name="status"
        ),
        CheckConstraint("amount_cents > 0 and recovered_cents >= 0", name="amounts"),
    )


class CollectionRecovery(Base):
    """Money that came back on a referral (from the agency, or the county's tax roll)."""

    __tablename__ = "collection_recovery"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("collection_referral.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    received_on: Mapped[date] = mapped_column(Date)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payment.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (CheckConstraint("amount_cents > 0", name="positive"),)


# --- Issue 16: meter tests and cases ------------------------------------------------------------


class MeterTest(Base):
    """A bench or field test of a meter's accuracy: the result, and the accuracy found at low,
    medium and high flow (percent registered, 100 is exact)."""

    __tablename__ = "meter_test"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meter.id"), index=True)
    tested_on: Mapped[date] = mapped_column(Date)
    #: pass or fail.
    result: Mapped[str] = mapped_column(String(10))
    low_flow_pct: Mapped[Decimal | None] = mapped_column(DecimalType(6, 2))
    mid_flow_pct: Mapped[Decimal | None] = mapped_column(DecimalType(6, 2))
    high_flow_pct: Mapped[Decimal | None] = mapped_column(DecimalType(6, 2))
    tested_by: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    work_order_id: Mapped[int | None] = mapped_column(ForeignKey("work_order.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)

    __table_args__ = (CheckConstraint("result in ('pass', 'fail')", name="result"),)


class ServiceCase(Base):
    """A complaint, inquiry, dispute, appeal, high-bill investigation or claim: who raised it,
    how, what it is about, who owns it and by when (the type's SLA), and how it ended."""

    __tablename__ = "service_case"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    #: complaint, inquiry, dispute, appeal, high_bill, claim.
    kind: Mapped[str] = mapped_column(String(15))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("account.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bill.id"))
    #: phone, counter, email, mail, web, field.
    channel: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    #: open, pending (waiting on the customer or a third party), resolved, closed.
    status: Mapped[str] = mapped_column(String(10), default="open")
    assigned_to_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"), index=True)
    due_on: Mapped[date] = mapped_column(Date)
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    #: The resident who opened it from the portal, when one did.
    opened_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(Text)

    notes: Mapped[list[CaseNote]] = relationship(order_by="CaseNote.id")

    __table_args__ = (
        CheckConstraint("kind in ('complaint', 'inquiry', 'dispute', 'appeal', 'high_bill', 'claim')", name="kind"),
        CheckConstraint("channel in ('phone', 'counter', 'email', 'mail', 'web', 'field')", name="channel"),
        CheckConstraint("status in ('open', 'pending', 'resolved', 'closed')", name="status"),
        Index("ix_service_case_queue", "status", "due_on"),
    )


class CaseNote(Base):
    """A note on a case: staff's working notes, or (shown to the resident) a reply."""

    __tablename__ = "case_note"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("service_case.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    body: Mapped[str] = mapped_column(Text)
    #: Shown to the resident following the case on the portal.
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)


class CaseAttachment(Base):
    """A file kept with a case (a photo, a letter received), stored under files_dir."""

    __tablename__ = "case_attachment"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("service_case.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(500))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)


class CaseLetter(Base):
    """A letter sent on a case from a template, in the customer's language, as PDF (and email)."""

    __tablename__ = "case_letter"
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("service_case.id"), index=True)
    template: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(5))
    body: Mapped[str] = mapped_column(Text)
    pdf_path: Mapped[str | None] = mapped_column(String(500))
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=stamp)
