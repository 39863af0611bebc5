"""Meter reads and bill runs, for the staff pages: the review queue, loading a read file,
the list of runs, one run with its register and delivery, and what a run's buttons start.

Each function is one use case in the caller's transaction (the session it is handed);
who may take it is checked here, from ``permissions``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..billing_core import bill_runs, delivery, permissions, read_files, read_review, reads
from ..billing_core.errors import FieldErrors, InvalidInput, NotAllowed, NotFound
from ..billing_core.models import Account, BillingCycle, BillRun, MeterRead, ReadStatus, Service, User
from ..billing_core.permissions import Action
from ..billing_core.read_import import ImportReport, import_reads
from ..billing_core.status import BillRunStatus

# --------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class ReadQueue:
    """The reads waiting for review, each with the meter's read before it and an account it serves."""

    reads: list[MeterRead]
    #: read id -> the meter's previous read (None: its first).
    previous: dict[int, MeterRead | None]
    #: read id -> the number of an account the meter serves (None: none).
    accounts: dict[int, str | None]


def read_queue(session: Session) -> ReadQueue:
    queue = read_review.queue(session)
    previous: dict[int, MeterRead | None] = {}
    accounts: dict[int, str | None] = {}
    for read in queue:
        previous[read.id] = session.scalar(
            select(MeterRead)
            .where(MeterRead.meter_id == read.meter_id, MeterRead.read_on < read.read_on)
            .order_by(MeterRead.read_on.desc())
            .limit(1)
        )
        accounts[read.id] = session.scalar(
            select(Account.number)
            .join(Service, Service.account_id == Account.id)
            .where(Service.meter_id == read.meter_id)
            .limit(1)
        )
    return ReadQueue(queue, previous, accounts)


REVIEW_ACTIONS = ("approve", "reread", "correct")


def review_read(
    session: Session,
    actor: User,
    read_id: int,
    action: str,
    value_text: str,
    reason: str,
    remote_addr: str | None,
    *,
    now: datetime,
) -> None:
    """Approve a held read, order a re-read, or correct its value. A refusal changes nothing:
    ``FieldErrors`` (field ``value`` or ``reason``) for a correction of a read still waiting,
    which the queue shows next to the read's fields; ``InvalidInput`` otherwise."""
    permissions.require(actor, Action.READS_REVIEW)
    read = session.scalar(select(MeterRead).where(MeterRead.id == read_id).options(joinedload(MeterRead.meter)))
    if read is None:
        raise NotFound(f"read {read_id}")
    try:
        with session.begin_nested():  # a refusal undoes all of it; the page still renders
            if action == "approve":
                read_review.approve(session, read, actor, reason, remote_addr, now=now)
            elif action == "reread":
                read_review.order_reread(session, read, actor, reason, remote_addr, now=now)
            elif action == "correct":
                value = reads.read_value(value_text, read.meter.dials)
                read_review.correct(session, read, value, reason, actor, remote_addr, now=now)
            else:
                raise InvalidInput("Choose approve, correct or order a re-read.", "action")
    except InvalidInput as exc:
        if action == "correct" and read.status == ReadStatus.EXCEPTION:
            raise FieldErrors({"reason" if exc.field == "reason" else "value": exc}) from exc
        raise


#: The fields of the read-file form an import error can name; any other is the file's.
READ_FILE_FIELDS = ("format", "layout", "mapping")


def load_read_file(
    session: Session,
    actor: User,
    content: bytes,
    name: str,
    fmt: str,
    layout: str,
    mapping_text: str,
    *,
    today: date,
    now: datetime,
    remote_addr: str | None,
) -> ImportReport:
    """Load a file of reads (all of its new reads, or none). A file that cannot be read at
    all raises ``FieldErrors`` on ``format``, ``layout``, ``mapping`` or ``read_file``."""
    permissions.require(actor, Action.READS_LOAD)
    try:
        mapping = read_files.parse_mapping(mapping_text) if mapping_text else None
        return import_reads(
            session,
            content,
            name,
            fmt,
            layout_name=layout or None,
            mapping=mapping,
            today=today,
            now=now,
            actor=actor,
            remote_addr=remote_addr,
        )
    except InvalidInput as exc:
        raise FieldErrors({exc.field if exc.field in READ_FILE_FIELDS else "read_file": exc}) from exc


# --------------------------------------------------------------------------- bill runs


@dataclass(frozen=True)
class RunList:
    runs: list[BillRun]
    cycles: list[BillingCycle]


def run_list(session: Session) -> RunList:
    """Every bill run, newest first, and the cycles a new one may bill."""
    runs = session.scalars(select(BillRun).options(joinedload(BillRun.cycle)).order_by(BillRun.id.desc())).all()
    cycles = session.scalars(select(BillingCycle).order_by(BillingCycle.code)).all()
    return RunList(list(runs), list(cycles))


def create_run(session: Session, actor: User, cycle_code: str, period_start: date, period_end: date) -> int:
    """Start a bill run; its id. ``InvalidInput`` names the field that is wrong."""
    permissions.require(actor, Action.BILL_RUNS_RUN)
    return bill_runs.create_run(session, cycle_code, period_start, period_end, actor=actor).id


#: A print file whose PDF and extract are made (``PrintFile.status``).
PRINT_FILE_READY = "ready"


@dataclass(frozen=True)
class RunPage:
    run: BillRun
    register: bill_runs.Register
    delivery: delivery.Progress
    #: Calculating or posting, and not all of it done yet: the page keeps polling.
    busy: bool
    #: The print file (and the mail-house extract) is made.
    print_file_ready: bool


def _run(session: Session, run_id: int) -> BillRun:
    run = session.scalar(select(BillRun).where(BillRun.id == run_id).options(joinedload(BillRun.cycle)))
    if run is None:
        raise NotFound(f"bill run {run_id}")
    return run


def run_page(session: Session, run_id: int) -> RunPage:
    """One run: its register (drafts, posted, held, totals, exceptions) and its delivery."""
    run = _run(session, run_id)
    register = bill_runs.register(session, run)
    busy = (
        run.status in (BillRunStatus.CALCULATING, BillRunStatus.POSTING)
        and register.drafts + register.posted < run.accounts_total
    )
    progress = delivery.progress(session, run)
    ready = progress.print_file is not None and progress.print_file.status == PRINT_FILE_READY
    return RunPage(run, register, progress, busy, ready)


@dataclass(frozen=True)
class RunStarted:
    """What a run action did here, and what is left for the jobs once this is saved."""

    run_id: int
    action: str
    actor_id: int
    #: The print file to deliver, or whose failed emails go again (deliver, resend_emails).
    print_file_id: int | None = None


def start_run_action(session: Session, actor: User, run_id: int, action: str, *, now: datetime) -> RunStarted:
    """Approve a run here, or get a calculation, a posting, a delivery or a resending of
    failed emails ready for the jobs to do (``RunStarted``). ``InvalidInput`` says why
    nothing was done (the run's status does not allow it, an unknown action)."""
    run = session.get(BillRun, run_id)
    if run is None:
        raise NotFound(f"bill run {run_id}")
    if action in ("calculate", "deliver", "resend_emails"):
        permissions.require(actor, Action.BILL_RUNS_CALCULATE)
    if action in ("approve", "post"):
        permissions.require(actor, Action.BILL_RUNS_APPROVE)
    print_file_id = None
    try:
        if action == "approve":
            bill_runs.approve(session, run, actor, now=now)
            return RunStarted(run_id, action, actor.id)
        if action == "post" and run.status not in (
            BillRunStatus.APPROVED,
            BillRunStatus.POSTING,
            BillRunStatus.POSTED,
        ):
            raise InvalidInput("Approve the run before posting it.", "status")
        if action == "calculate" and run.status not in (
            BillRunStatus.CREATED,
            BillRunStatus.CALCULATING,
            BillRunStatus.CALCULATED,
        ):
            raise InvalidInput("This run is approved; it is no longer calculated.", "status")
        if action == "deliver":
            print_file_id = delivery.start(session, run, actor, now=now).id
        elif action == "resend_emails":
            pf = delivery.progress(session, run).print_file
            if pf is None:
                raise InvalidInput("This run's bills are not delivered yet.", "status")
            print_file_id = pf.id
        elif action not in ("calculate", "post"):
            raise InvalidInput("Unknown action.", "action")
    except NotAllowed as exc:  # the core's own refusal: said on the run's page, like any other
        raise InvalidInput(exc.message, "role") from exc
    return RunStarted(run_id, action, actor.id, print_file_id)


@dataclass(frozen=True)
class DeliveryState:
    """Where a run's delivery stands, for the note shown once it is started."""

    started: bool
    print_file_ready: bool = False
    emails_total: int = 0
    emails_sent: int = 0
    emails_in_flight: int = 0
    #: Emails waiting to retry, or failed.
    emails_waiting: int = 0


def delivery_state(session: Session, run_id: int) -> DeliveryState:
    run = session.get(BillRun, run_id)
    if run is None:
        raise NotFound(f"bill run {run_id}")
    progress = delivery.progress(session, run)
    pf, emails = progress.print_file, progress.emails
    if pf is None:
        return DeliveryState(False)
    return DeliveryState(
        True,
        pf.status == PRINT_FILE_READY,
        pf.emails_total,
        emails["sent"],
        emails.in_flight,
        emails["retrying"] + emails["failed"],
    )


PRINT_FILE_KINDS = ("print-file.pdf", "mail-extract.csv")


def print_file_path(session: Session, run_id: int, kind: str) -> str:
    """The path of a run's print file (``print-file.pdf``) or mail-house extract
    (``mail-extract.csv``), once made; ``NotFound`` otherwise."""
    if kind not in PRINT_FILE_KINDS:
        raise NotFound(kind)
    run = session.get(BillRun, run_id)
    pf = delivery.progress(session, run).print_file if run else None
    if pf is None or pf.status != PRINT_FILE_READY:
        raise NotFound(kind)
    path = pf.pdf_path if kind == "print-file.pdf" else pf.csv_path
    if path is None or not Path(path).is_file():
        raise NotFound(kind)
    return path
