"""The ``portal`` command: migrate, demo, users, serve, worker."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine

from .adapters.aio import run_to_end
from .adapters.database import make_engine, make_sessionmaker, transaction
from .billing_core.errors import BillingError, InvalidInput
from .billing_core.models import Role
from .billing_core.status import BillRunStatus, BillStatus
from .settings import Settings


def _settings() -> Settings:
    return Settings.from_env()


class NotMigrated(BillingError):
    pass


@contextmanager
def _engine(require_schema: bool = True) -> Iterator[Engine]:
    from .migrate import is_current

    engine = make_engine(_settings().database_url)
    try:
        if require_schema and not is_current(engine):
            raise NotMigrated("the database schema is not up to date: run `portal migrate` first")
        yield engine
    finally:
        engine.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    from .migrate import upgrade

    with _engine(require_schema=False) as engine:
        upgrade(engine)
    print("Database is up to date.")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DEMO_PASSWORD, DemoExists, build_demo, sign_ins

    with _engine(require_schema=False) as engine:
        try:
            result = build_demo(
                engine,
                accounts=args.accounts,
                seed=args.seed,
                progress=not args.quiet,
                today=args.today,
                reset=args.reset,
                workers=args.workers,
                cycles=args.cycles,
            )
        except DemoExists as exc:
            print(f"Keeping the district already there: {exc}.")
            print(f"Sign in with (password for demo sign-ins: {DEMO_PASSWORD}):")
            for role, email in sign_ins(engine):
                print(f"  {role:<11} {email}")
            return 0
    print()
    print(
        f"Demo district ready: {result.accounts:,} accounts, {result.bills:,} bills, "
        f"{result.payments:,} payments, {result.reads:,} reads ({result.seconds:.1f} s)."
    )
    print("Sign in with (password for all: " + result.password + "):")
    for role, email, note in result.sign_ins:
        print(f"  {role:<11} {email:<32} {note}")
    return 0


ROLES = [role.value for role in Role]


class UsageError(BillingError):
    pass


def _read_password(args: argparse.Namespace) -> str:
    """The new sign-in's password: one line from standard input with --password-stdin, else
    asked twice at the terminal. Never from the command line, where other users of the
    machine and the shell's history would see it."""
    import getpass

    if args.password_argv is not None:
        raise UsageError(
            "--password is not accepted: a password on the command line is seen by other users of the machine "
            "and kept in shell history; answer the prompt, or pipe it in with --password-stdin"
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: standard input had no password on its first line")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on: pipe it in and add --password-stdin")
    password = getpass.getpass(f"Password for {args.email}: ")
    if getpass.getpass("The same password again: ") != password:
        raise UsageError("the two passwords were not the same; nothing was created")
    return password


def _user_error(exc: InvalidInput) -> int:
    print(f"error: {exc.field}: {exc.message}" if exc.field else f"error: {exc.message}", file=sys.stderr)
    return 2


def cmd_users_create(args: argparse.Namespace) -> int:
    from .billing_core import audit, users

    if args.role == "customer" and not args.account:
        raise UsageError(
            "--account is required for a customer sign-in: give the number of the account it belongs to "
            "(staff sign-ins take no --account)"
        )
    password = _read_password(args)
    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            user = users.create_user(session, args.email, password, args.role, args.account, args.name)
            audit.record(
                session,
                "user.create",
                actor_label="portal users create",
                entity_type="user",
                entity_id=user.id,
                after={"email": user.email, "role": user.role, "account": args.account},
            )
    except InvalidInput as exc:
        return _user_error(exc)
    print(f"Created {args.role} sign-in {user.email}" + (f" for account {args.account}" if args.account else ""))
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from .adapters.clock import system_clock
    from .billing_core import user_sessions, users

    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            found = users.list_users(session, args.role, include_inactive=not args.active_only)
            now = system_clock()
            print(f"{'email':<36} {'role':<10} {'state':<6} {'sessions':>8}  {'last sign-in':<16}  accounts")
            for user in found:
                last = user.last_sign_in_at.strftime("%Y-%m-%d %H:%M") if user.last_sign_in_at else "never"
                numbers = ", ".join(a.number for a in user.accounts[:5]) + (" ..." if len(user.accounts) > 5 else "")
                print(
                    f"{user.email:<36} {user.role:<10} {'on' if user.active else 'off':<6} "
                    f"{user_sessions.open_sessions(session, user, now):>8}  {last:<16}  {numbers}"
                )
            print(f"{len(found)} sign-in" + ("" if len(found) == 1 else "s"))
    except InvalidInput as exc:
        return _user_error(exc)
    return 0


def _change_user(args: argparse.Namespace, action: str, change) -> int:  # type: ignore[no-untyped-def]
    """Find the sign-in by --email, apply ``change(session, user, now) -> (message, before, after)``,
    audit it as ``action``, print the message."""
    from .adapters.clock import system_clock
    from .billing_core import audit, users

    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            user = users.find_user(session, args.email)
            message, before, after = change(session, user, system_clock())
            audit.record(
                session,
                action,
                actor_label=f"portal users {args.users_command}",
                entity_type="user",
                entity_id=user.id,
                before=before,
                after=after,
            )
    except InvalidInput as exc:
        return _user_error(exc)
    print(message)
    return 0


def _ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended"


def cmd_users_deactivate(args: argparse.Namespace) -> int:
    from .billing_core import users

    def change(session, user, now):  # type: ignore[no-untyped-def]
        ended = users.set_active(session, user, False, now)
        return f"Turned off sign-in {user.email}; {_ended(ended)}.", {"active": True}, {"active": False}

    return _change_user(args, "user.deactivate", change)


def cmd_users_activate(args: argparse.Namespace) -> int:
    from .billing_core import users

    def change(session, user, now):  # type: ignore[no-untyped-def]
        users.set_active(session, user, True, now)
        return f"Turned on sign-in {user.email}.", {"active": False}, {"active": True}

    return _change_user(args, "user.activate", change)


def cmd_users_set_role(args: argparse.Namespace) -> int:
    from .billing_core import users

    def change(session, user, now):  # type: ignore[no-untyped-def]
        before = user.role
        ended = users.set_role(session, user, args.role, now)
        return (
            f"{user.email} is now {user.role} (was {before}); {_ended(ended)}.",
            {"role": before},
            {"role": user.role},
        )

    return _change_user(args, "user.role", change)


def cmd_users_sign_out(args: argparse.Namespace) -> int:
    from .billing_core import users

    def change(session, user, now):  # type: ignore[no-untyped-def]
        ended = users.sign_out_everywhere(session, user, now)
        return f"Signed {user.email} out everywhere; {_ended(ended)}.", None, {"sessions_ended": ended}

    return _change_user(args, "user.sign_out_everywhere", change)


def cmd_web(args: argparse.Namespace) -> int:
    """The Procfile's web: process (``portal/adapters/web_server.py``)."""
    from .adapters import web_server

    port = args.port
    if port is None:
        text = os.environ.get("PORT", "").strip() or "8000"
        if not (text.isascii() and text.isdigit() and 0 < int(text) < 65536):
            print(f"PORT must be a port number (1 to 65535), not {text!r}.", file=sys.stderr)
            return 2
        port = int(text)
    web_server.run(args.host, port, web_server.processes(args.workers))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .devstack import start as start_standins

    start_standins(_settings(), args.host, args.port)  # only with PORTAL_DEMO_STANDINS=1 (development)
    # The portal itself believes X-Forwarded-For, and only from FORWARDED_ALLOW_IPS
    # (portal.app.outer_middleware); uvicorn's own handling would trust 127.0.0.1 by default.
    uvicorn.run("portal.app:create_app", factory=True, host=args.host, port=args.port, proxy_headers=False)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .jobs import run_worker

    return run_worker(_settings(), concurrency=args.concurrency)


def cmd_rates_quote(args: argparse.Namespace) -> int:
    from .services.rates import quote_cases

    with open(args.cases, newline="", encoding="utf-8") as cases:
        rows, errors = quote_cases(args.owrs_root, cases, sys.stdout)
    print(f"{rows} cases, {errors} without a bill", file=sys.stderr)
    return 0


def cmd_rates_import(args: argparse.Namespace) -> int:
    from datetime import date

    from .billing_core import owrs
    from .billing_core.rate_schedules import import_owrs

    effective = date.fromisoformat(args.effective) if args.effective else None
    failed = 0
    with _engine() as engine, make_sessionmaker(engine)() as session:
        for path in args.files:
            try:
                file = owrs.load_path(path)
            except owrs.OwrsError as exc:
                failed += 1
                print(f"error: {exc}", file=sys.stderr)
                continue
            result = import_owrs(session, file, effective_on=effective, actor_label="portal rates import-owrs")
            if result.ok:
                session.commit()
                print(
                    f"imported {path}: {result.utility}, effective {result.effective_on:%Y-%m-%d}, "
                    f"{len(result.classes)} classes, {result.created_versions} new versions, "
                    f"{result.unchanged_versions} already there"
                )
            else:
                session.rollback()
                failed += 1
                print(f"error: {result.error}", file=sys.stderr)
    print(f"{len(args.files) - failed} of {len(args.files)} files imported", file=sys.stderr)
    return 1 if failed else 0


def cmd_reads_import(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .adapters.clock import system_clock
    from .billing_core.read_files import parse_mapping
    from .billing_core.read_import import import_reads

    settings = _settings()
    try:
        with open(args.file, "rb") as f:
            content = f.read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
        report = import_reads(
            session,
            content,
            args.file.rsplit("/", 1)[-1],
            args.format,
            layout_name=args.layout,
            mapping=parse_mapping(args.map) if args.map else None,
            today=datetime.now(settings.tz).date(),
            now=system_clock(),
            actor_label="portal reads import",
        )
    if report.already_imported_at is not None:
        print(f"{args.file} was already imported on {report.already_imported_at:%Y-%m-%d %H:%M} UTC; nothing added.")
        return 0
    if not report.ok:
        print(
            f"{args.file}: nothing imported; {len(report.rejected)} of {report.lines} lines rejected:", file=sys.stderr
        )
        for r in report.rejected:
            print(f"  line {r.line}: {r.value!r}: {r.reason}", file=sys.stderr)
        return 1
    print(
        f"{args.file}: {report.lines} lines, {report.added} reads added, {report.unchanged} already on record, "
        f"{report.exceptions} waiting for review."
    )
    return 0


# issue 16: meters (receive a CSV file of serials into stock)
def cmd_meters_receive(args: argparse.Namespace) -> int:
    from datetime import date

    from .adapters.clock import system_clock
    from .billing_core import meter_inventory

    settings = _settings()
    try:
        with open(args.file, "rb") as f:
            content = f.read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    now = system_clock()
    defaults = {
        "size": args.size or "",
        "make": args.make or "",
        "model": args.model or "",
        "dials": str(args.dials or ""),
        "multiplier": args.multiplier or "",
    }
    on = date.fromisoformat(args.on) if args.on else now.astimezone(settings.tz).date()
    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            actor = _actor(session, args.as_user, needed=True)
            received = meter_inventory.receive_file(session, content, defaults, on, actor, now)
            serials = [m.serial for m in received]
    except meter_inventory.FileRefused as exc:
        print(f"{args.file}: nothing received; {len(exc.problems)} of {exc.lines} lines are wrong:", file=sys.stderr)
        for p in exc.problems:
            print(f"  line {p.line}: {p.serial or '(no serial)'}: {p.reason}", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(serials)} meters received into stock on {on:%Y-%m-%d}.")
    return 0


def cmd_reads_route_file(args: argparse.Namespace) -> int:
    from datetime import date

    from .billing_core.read_files import write_route_file
    from .billing_core.read_import import route_stops

    with _engine() as engine, make_sessionmaker(engine)() as session:
        _check_cycle(session, args.cycle)
        stops = route_stops(session, args.cycle, date.fromisoformat(args.date), args.route)
    if not stops:
        print(
            f"error: no installed meters on cycle {args.cycle}" + (f" route {args.route}" if args.route else ""),
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(write_route_file(stops, args.layout))
    print(f"{len(stops)} stops written in walking order.", file=sys.stderr)
    return 0


def _check_cycle(session, code: str) -> None:  # type: ignore[no-untyped-def]
    """A wrong cycle code is refused with the list of the cycles there are."""
    from sqlalchemy import select

    from .billing_core.models import BillingCycle

    cycles = session.execute(select(BillingCycle.code, BillingCycle.name).order_by(BillingCycle.code)).all()
    if code not in {c for c, _ in cycles}:
        there = "; ".join(f"{c} ({name})" for c, name in cycles) if cycles else "none yet"
        raise InvalidInput(f"no billing cycle {code!r}; the cycles are: {there}", "cycle")


def _date_text(text: str) -> str:
    """An argparse type: a date as YYYY-MM-DD, checked while parsing so a wrong one gets a message."""
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give it as YYYY-MM-DD, e.g. 2026-07-01") from None
    return text


def _actor(session, email: str | None, needed: bool = False):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from .billing_core.models import User

    if not email:
        if needed:
            raise InvalidInput("say who is acting with --as EMAIL (a staff sign-in)", "as")
        return None
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.role == "customer" or not user.active:
        raise InvalidInput(f"no active staff sign-in {email}", "as")
    return user


def _run(session, run_id: int):  # type: ignore[no-untyped-def]
    from .billing_core.models import BillRun

    run = session.get(BillRun, run_id)
    if run is None:
        raise InvalidInput(f"no bill run {run_id}", "run")
    return run


def _bar(done: int, total: int, started: float, what: str = "accounts") -> None:
    import time

    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {what}  {time.monotonic() - started:6.1f} s"
    )
    sys.stderr.flush()


def _run_step(args: argparse.Namespace, factory) -> int:  # type: ignore[no-untyped-def]
    """Calculate or post a run in chunks: as jobs for the workers (PostgreSQL), or here."""
    import time

    from sqlalchemy import func, select

    from .billing_core import bill_runs, permissions
    from .billing_core.models import Bill
    from .billing_core.permissions import Action
    from .jobs import dispatch

    settings = _settings()
    with transaction(factory) as session:
        run = _run(session, args.run)
        actor = _actor(session, args.as_user, needed=args.bill_run_command == "post")
        if args.bill_run_command == "post":
            permissions.require(actor, Action.BILL_RUNS_APPROVE)
        if args.bill_run_command == "post" and run.status not in (
            BillRunStatus.APPROVED,
            BillRunStatus.POSTING,
            BillRunStatus.POSTED,
        ):
            raise InvalidInput(f"run {run.id} is {run.status}; approve it before posting", "status")
        total = run.accounts_total
    started = time.monotonic()
    in_process = args.in_process or not settings.is_postgres
    chunks = dispatch(
        settings,
        args.run,
        args.bill_run_command,
        actor.id if actor else None,
        args.chunk,
        in_process=in_process,
        progress=lambda done, all_: _bar(done, all_, started),
    )
    if not in_process:
        print(f"Queued {chunks} jobs for the workers (start them with `portal worker`).", file=sys.stderr)
        while True:
            with factory() as session:
                wanted = (
                    (BillStatus.DRAFT, BillStatus.POSTED)
                    if args.bill_run_command == "calculate"
                    else (BillStatus.POSTED,)
                )
                done = (
                    session.scalar(
                        select(func.count(Bill.id)).where(Bill.bill_run_id == args.run, Bill.status.in_(wanted))
                    )
                    or 0
                )
                status = _run(session, args.run).status
            _bar(done, total, started)
            if status in (BillRunStatus.CALCULATED, BillRunStatus.POSTED) or (
                args.bill_run_command == "calculate" and done >= total
            ):
                break
            if not args.wait:
                break
            time.sleep(0.5)
    sys.stderr.write("\n")
    with factory() as session:
        reg = bill_runs.register(session, _run(session, args.run))
    print(
        f"Bill run {args.run} is {reg.run.status}: {reg.drafts:,} drafts ({reg.held:,} held), "
        f"{reg.posted:,} posted, in {time.monotonic() - started:.1f} s."
    )
    return 0


def _deliver(args: argparse.Namespace, factory) -> int:  # type: ignore[no-untyped-def]
    """Deliver a posted run: render its print file and email paperless customers."""
    import time

    from .adapters.clock import system_clock
    from .billing_core import delivery
    from .billing_core.models import PrintFile
    from .jobs import dispatch_delivery

    settings = _settings()
    with transaction(factory) as session:
        run = _run(session, args.run)
        actor = _actor(session, args.as_user, needed=True)
        pf = delivery.start(session, run, actor, part_size=args.part, now=system_clock())
        pf_id, mailed, emailed = pf.id, pf.bills_total, pf.emails_total
    print(f"Run {args.run}: {mailed:,} bills to print, {emailed:,} to email.", file=sys.stderr)
    started = time.monotonic()
    in_process = args.in_process or not settings.is_postgres
    jobs = dispatch_delivery(settings, pf_id, in_process=in_process, progress=lambda d, t: _bar(d, t, started, "jobs"))
    if not in_process:
        print(f"Queued {jobs} jobs for the workers (start them with `portal worker`).", file=sys.stderr)
        while args.wait:
            with factory() as session:
                prog = delivery.progress(session, _run(session, args.run))
            _bar(prog.parts_done + prog.emails_sent, (prog.print_file.parts_total or 0) + emailed, started, "steps")
            if prog.done:
                break
            time.sleep(0.5)
    sys.stderr.write("\n")
    with factory() as session:
        pf = session.get(PrintFile, pf_id)
        seconds = time.monotonic() - started
        print(f"Print file {pf.id} is {pf.status}: {pf.bills_total:,} bills ({pf.bills_total / seconds:,.0f} bills/s).")
        if pf.pdf_path:
            print(f"  PDF: {pf.pdf_path}")
            print(f"  Mail-house extract: {pf.csv_path}")
        if pf.emails_total:
            from .billing_core import outbox

            mail = outbox.for_print_file(session, pf.id)
            print(
                f"Emails: {mail['sent']:,} of {pf.emails_total:,} sent, {mail.in_flight:,} queued, "
                f"{mail['retrying']:,} retrying, {mail['failed']:,} failed"
                + (f" (last error: {mail.last_error})" if mail.last_error else "")
                + "."
            )
    return 0


def cmd_bill_run(args: argparse.Namespace) -> int:
    from datetime import date

    from .adapters.clock import system_clock
    from .billing_core import bill_runs
    from .templating import _money

    with _engine() as engine:
        factory = make_sessionmaker(engine)
        if args.bill_run_command == "create":
            with transaction(factory) as session:
                _check_cycle(session, args.cycle)
                run = bill_runs.create_run(
                    session,
                    args.cycle,
                    date.fromisoformat(args.period_start),
                    date.fromisoformat(args.period_end),
                    bill_date=date.fromisoformat(args.bill_date) if args.bill_date else None,
                    due_days=args.due_days,
                    actor=_actor(session, args.as_user),
                    actor_label="portal bill-run create",
                )
                print(
                    f"Created bill run {run.id}: cycle {args.cycle}, {run.period_start} to {run.period_end}, "
                    f"{run.accounts_total:,} accounts, bill date {run.bill_date}, due {run.due_date}."
                )
            return 0
        if args.bill_run_command in ("calculate", "post"):
            return _run_step(args, factory)
        if args.bill_run_command == "register":
            with factory() as session:
                reg = bill_runs.register(session, _run(session, args.run))
                print(
                    f"Bill run {args.run} ({reg.run.status}): {reg.drafts:,} drafts, {reg.posted:,} posted, "
                    f"{reg.held:,} held, total {_money(reg.total_cents)}"
                )
                for service, (n, cents) in sorted(reg.by_service.items()):
                    print(f"  {service:<12} {n:>9,} lines  {_money(cents):>16}")
                for name, cents in sorted(reg.by_rate.items()):
                    print(f"  {name:<50} {_money(cents):>16}")
                for klass, (n, cents) in sorted(reg.by_class.items()):
                    print(f"  {klass:<22} {n:>9,} bills  {_money(cents):>16}")
                for code, rows in sorted(reg.exceptions.items()):
                    label = bill_runs.EXCEPTION_LABELS.get(code, code)
                    print(
                        f"  exception: {label}: {len(rows):,} ({', '.join(n for n, _ in rows[:5])}"
                        f"{', ...' if len(rows) > 5 else ''})"
                    )
            return 0
        if args.bill_run_command == "deliver":
            return _deliver(args, factory)
        if args.bill_run_command == "approve":
            with transaction(factory) as session:
                actor = _actor(session, args.as_user, True)
                run = bill_runs.approve(session, _run(session, args.run), actor, now=system_clock())
                print(f"Bill run {run.id} approved.")
            return 0
    return 2


def cmd_account_stop(args: argparse.Namespace) -> int:
    """Stop an account's service and post its final bill (what the staff account page does)."""
    from datetime import date, timedelta
    from decimal import Decimal

    from sqlalchemy import select

    from .adapters.clock import system_clock
    from .billing_core import bill_runs, customers, reads
    from .billing_core.models import Account, Bill, Meter, Service
    from .templating import _money

    try:
        stop_on = date.fromisoformat(args.on)
    except ValueError as exc:
        raise InvalidInput("give --on as YYYY-MM-DD", "on") from exc
    given: dict[str, Decimal] = {}
    for item in args.read:
        serial, _, value = item.partition("=")
        try:
            given[serial.strip().upper()] = reads.parse_read(value, "read")
        except InvalidInput as exc:
            raise InvalidInput(f"give each --read as SERIAL=VALUE, not {item!r} ({exc.message})", "read") from exc
    with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
        actor = _actor(session, args.as_user, True)
        account = session.scalar(select(Account).where(Account.number == args.account))
        if account is None:
            raise InvalidInput(f"no account {args.account}", "account")
        meters = session.execute(
            select(Meter.serial, Meter.id)
            .join(Service, Service.meter_id == Meter.id)
            .where(Service.account_id == account.id, Service.ended_on.is_(None))
        ).all()
        unknown = set(given) - {serial for serial, _ in meters}
        if unknown:
            raise InvalidInput(f"meter {sorted(unknown)[0]} is not on account {args.account}", "read")
        forward = customers.parse_mailing_address(
            args.forward_street or "", args.forward_city or "", args.forward_state or "", args.forward_zip or ""
        )
        reads = {meter_id: given[serial] for serial, meter_id in meters if serial in given}
        stop = bill_runs.stop_service(
            session, account, stop_on, reads, actor, date.today(), forward=forward, now=system_clock()
        )
        if stop.status == "held":
            reasons = "; ".join(bill_runs.FINAL_REASONS.get(r, r).lower() for r in stop.reasons.split(","))
            print(f"The final bill of account {account.number} is held for review ({reasons}); see its account page.")
            return 0
        bill = session.get(Bill, stop.bill_id)
        last_day = bill.period_end - timedelta(days=1)
        print(
            f"Account {account.number} is final from {stop_on}. Final bill {bill.number}: "
            f"{bill.period_start} to {last_day} (last day of service), charges {_money(bill.current_charges_cents)}, "
            f"total due {_money(bill.total_due_cents)} by {bill.due_date}."
        )
    return 0


def cmd_autopay_run(args: argparse.Namespace) -> int:
    """Take the autopay drafts due on a day (a worker does this every hour on its own)."""
    from datetime import date, datetime

    from .adapters.gateway import from_settings
    from .jobs import dispatch_autopay

    settings = _settings()
    try:
        as_of = date.fromisoformat(args.on) if args.on else datetime.now(settings.tz).date()
    except ValueError as exc:
        raise InvalidInput("give --on as YYYY-MM-DD", "on") from exc
    gateway = from_settings(settings)
    if gateway is None:
        print("error: autopay needs the payment processor: set STRIPE_SECRET_KEY", file=sys.stderr)
        return 2
    count = dispatch_autopay(settings, as_of, gateway)
    print(f"{count} autopay drafts for {as_of}.")
    return 0


CYCLE_HELP = (
    "the billing cycle's code, e.g. C1 (the demo's cycles are C1 to C4, read on the 5th, 12th, 19th and 26th); "
    "a code that is not there gets the list of the cycles there are"
)


def _as_option(p: argparse.ArgumentParser, required: bool) -> None:
    """``--as EMAIL``: who acts. Required where the action is only allowed to some staff."""
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="EMAIL",
        required=required,
        help="the staff sign-in doing this (required: the action is recorded and checked against its role)"
        if required
        else "the staff sign-in doing this (optional: for the record)",
    )


def cmd_emails(args: argparse.Namespace) -> int:
    """The email outbox: what waits, and sending it now (the workers, or on SQLite the
    portal process, do it by themselves on their schedule)."""
    from sqlalchemy import func, select

    from .adapters.clock import system_clock
    from .billing_core import outbox
    from .billing_core.models import EmailOutbox
    from .jobs import retry_due

    settings = _settings()
    with _engine() as engine:
        factory = make_sessionmaker(engine)
        if args.emails_command == "retry":
            if args.failed:
                with transaction(factory) as session:
                    ids = session.scalars(select(EmailOutbox.id).where(EmailOutbox.status == "failed")).all()
                    print(f"{outbox.send_again(session, ids, system_clock())} failed emails queued again.")
            done = retry_due(settings, factory, due_only=not args.all)
            print(
                f"Sent {done.sent}, nothing to send for {done.skipped}, {done.retrying} to retry, {done.failed} failed."
            )
        with factory() as session:
            counts = dict(session.execute(select(EmailOutbox.status, func.count()).group_by(EmailOutbox.status)).all())
            next_at = session.scalar(
                select(func.min(EmailOutbox.next_attempt_at)).where(EmailOutbox.status == "retrying")
            )
        print("Outbox: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in outbox.STATUSES) + ".")
        if next_at is not None:
            print(f"Next retry at {next_at:%Y-%m-%d %H:%M} UTC.")
    return 0


def cmd_ledger_check(args: argparse.Namespace) -> int:
    """Verify the whole ledger: prints ``ledger ok`` or each problem; exit 1 on any."""
    from .billing_core import ledger_check

    with _engine() as engine, make_sessionmaker(engine)() as session:
        problems = ledger_check.run(session)
    if not problems:
        print("ledger ok")
        return 0
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found.", file=sys.stderr)
    return 1


# --- Deposits and refunds (issue 14 items 7 and 8) ----------------------------------------


def _money_day(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from datetime import date, datetime

    settings = _settings()
    on = getattr(args, "on", None)
    return (date.fromisoformat(on) if on else datetime.now(settings.tz).date()), datetime.now(settings.tz)


def _staff(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    with _engine() as engine, make_sessionmaker(engine)() as session:
        user = _actor(session, args.as_user, needed=True)
        session.expunge(user)
        return user


def _factory():  # type: ignore[no-untyped-def]
    from .adapters.database import sessions_for

    return sessions_for(_settings().database_url)


def cmd_deposits_bill(args: argparse.Namespace) -> int:
    """Bill a deposit on an account (the policy's amount unless --amount)."""
    from .billing_core import money_policy
    from .services import deposits

    user = _staff(args)
    on, now = _money_day(args)
    policy = money_policy.load(_settings().money_policy_file)
    deposit_id = deposits.bill(
        _factory(),
        policy,
        user,
        args.account,
        amount=args.amount or "",
        reason=args.reason,
        note=args.note or "",
        on=on,
        now=now,
    )
    print(f"Deposit {deposit_id} billed on account {args.account}.")
    return 0


def cmd_deposits_run(args: argparse.Namespace) -> int:
    """Credit back the deposits that earned it (the daily job does this on its own)."""
    from .billing_core import money_policy
    from .services import deposits

    on, now = _money_day(args)
    credited = deposits.run(_factory(), money_policy.load(_settings().money_policy_file), on, now)
    print(f"{len(credited)} deposits credited back on {on}.")
    return 0


def cmd_refunds_request(args: argparse.Namespace) -> int:
    from .services import refunds

    user = _staff(args)
    _on, now = _money_day(args)
    refund_id = refunds.request(
        _factory(), user, args.account, amount=args.amount, method=args.method, reason=args.reason, now=now
    )
    print(f"Refund {refund_id} requested; it waits for approval by someone else.")
    return 0


def cmd_refunds_decide(args: argparse.Namespace) -> int:
    from .services import refunds

    user = _staff(args)
    on, now = _money_day(args)
    if args.refunds_command == "approve":
        refunds.approve(_factory(), user, args.id, on, now)
        print(f"Refund {args.id} approved.")
    else:
        refunds.reject(_factory(), user, args.id, args.reason or "", now)
        print(f"Refund {args.id} rejected.")
    return 0


def cmd_refunds_pay(args: argparse.Namespace) -> int:
    from .adapters.gateway import from_settings
    from .services import refunds

    user = _staff(args)
    on, now = _money_day(args)
    gateway = from_settings(_settings())
    if gateway is None:
        print("error: card refunds need the payment processor: set STRIPE_SECRET_KEY", file=sys.stderr)
        return 2
    paid = refunds.pay_card(_factory(), gateway, user, args.id, on, now)
    if not paid.ok:
        print(f"Refund {args.id} failed: {paid.message} (the credit is back on the account)")
        return 1
    print(f"Refund {args.id} paid to the card.")
    return 0


def cmd_refunds_export_checks(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .services import refunds

    user = _staff(args)
    on, now = _money_day(args)
    text, ids = refunds.export_checks(_factory(), user, on, now)
    Path(args.file).write_text(text, encoding="utf-8")
    print(f"{len(ids)} check refunds in {args.file}.")


# --- Returned payments and cash only (issue 14) ---------------------------------------------


def cmd_payments_return(args: argparse.Namespace) -> int:
    """Record a returned payment (what the account's payments panel does): reversed, the
    fee charged, cash only after repeated returns, the customer told by email."""
    from .adapters.clock import system_clock
    from .billing_core.errors import FieldErrors
    from .jobs import send_outbox_soon
    from .services import returns as service
    from .templating import _money

    settings = _settings()
    try:
        payment_id = int(args.payment)
    except ValueError as exc:
        raise InvalidInput(f"give the payment's number, not {args.payment!r}", "payment") from exc
    with _engine() as engine:
        factory = make_sessionmaker(engine)
        try:
            with transaction(factory) as session:
                actor = _actor(session, args.as_user, True)
                recorded = service.record_return(
                    session,
                    actor,
                    payment_id,
                    {"reason": args.reason, "on": args.on},
                    policy=service.policy_for(settings.money_policy_file),
                    now=system_clock(),
                )
                done = recorded.returned
                number = service.account_number_of(session, payment_id)
        except FieldErrors as exc:
            for field, problem in exc.errors.items():
                print(f"error: {field}: {problem.message}", file=sys.stderr)
            return 2
        send_outbox_soon(settings, factory, recorded.outbox_id)
    print(
        f"Payment {payment_id} of account {number} returned ({done.code}) on {args.on}: reversed"
        + (f", fee {_money(done.fee_cents)}" if done.fee_cents else "")
        + f"; balance now {_money(done.balance_cents)}."
    )
    if done.made_cash_only:
        print(f"Account {number} is now cash only ({done.returns_in_window} returns in the policy's window).")
    print("The customer is emailed." if recorded.outbox_id else "The customer has no email address: mail the letter.")
    print(f"Letter (PDF): {settings.public_url.rstrip('/')}/staff/payments/{payment_id}/return-letter")
    return 0


def cmd_accounts_cash_only_lift(args: argparse.Namespace) -> int:
    """A supervisor lifts an account's cash only, saying why."""
    from .adapters.clock import system_clock
    from .billing_core.errors import FieldErrors
    from .services import returns as service

    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                actor = _actor(session, args.as_user, True)
                service.lift_cash_only(session, actor, args.account, args.reason, now=system_clock())
        except FieldErrors as exc:
            for field, problem in exc.errors.items():
                print(f"error: {field}: {problem.message}", file=sys.stderr)
            return 2
    print(f"Cash only is lifted on account {args.account}.")
    return 0


def cmd_delinquency_run(args: argparse.Namespace) -> int:
    """The day's delinquency run here and now, in one transaction; prints counts per step."""
    from .services import collections

    on, now = _money_day(args)
    user = _staff(args) if args.as_user else None
    result = collections.run(_factory(), user, on, now, post=not args.preview)
    print(f"Delinquency run of {on} ({'preview' if args.preview else 'posted'}):")
    for line in collections.summary(result, not args.preview):
        print(line)
    return 0


def _commands(sub, name: str, help_: str):  # type: ignore[no-untyped-def]
    """The subcommands of ``portal NAME``, made here or shared with another area's."""
    parser = sub.choices.get(name)
    if parser is None:
        return sub.add_parser(name, help=help_).add_subparsers(dest=f"{name}_command", required=True)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def _returns_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    payments = _commands(sub, "payments", "payments the office takes, imports and returns")
    p = payments.add_parser(
        "return", help="record a returned payment (NSF check, ACH R-code, card dispute): reversed, fee, notice"
    )
    p.add_argument("payment", metavar="PAYMENT", help="the payment's number (shown on the account's payments panel)")
    p.add_argument("--reason", required=True, metavar="CODE", help="NSF, R01, R02, R03, R04, R07, R08, R10 or DISPUTE")
    p.add_argument("--on", required=True, metavar="DATE", help="the date of the return, YYYY-MM-DD")
    _as_option(p, True)
    p.set_defaults(func=cmd_payments_return)
    accounts = _commands(sub, "accounts", "accounts")
    cash = accounts.add_parser("cash-only", help="cash only after returned payments").add_subparsers(
        dest="cash_only_command", required=True
    )
    p = cash.add_parser("lift", help="let a cash-only account pay by check, card and bank again (supervisor)")
    p.add_argument("account", metavar="ACCOUNT", help="the account number")
    p.add_argument("--reason", required=True, help="why it is lifted (recorded)")
    _as_option(p, True)
    p.set_defaults(func=cmd_accounts_cash_only_lift)


# --- Opening accounts (issue 16: open) -----------------------------------------------------


def cmd_accounts_open(args: argparse.Namespace) -> int:
    """Open an account from a resident's start request (the same service as the staff page):
    the request fills in the customer and the address; the options give the rest."""
    from .adapters.clock import system_clock
    from .billing_core import money_policy
    from .billing_core.account_opening import DuplicatesFound
    from .billing_core.errors import FieldErrors
    from .services import account_opening as service

    on, _now = _money_day(args)
    now = system_clock()
    policy = money_policy.load(_settings().money_policy_file)
    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                actor = _actor(session, args.as_user, True)
                form = service.opening_form(session, actor, request_id=args.from_request, today=on)
                values = dict(form.defaults)
                given = {
                    "customer_class": args.customer_class,
                    "cycle": args.cycle,
                    "route": args.route,
                    "start_on": args.start_on,
                    "water_schedule": args.water_rate,
                    "sewer_schedule": args.sewer_rate,
                    "sanitation_schedule": args.sanitation_rate,
                    "cart_count": args.carts,
                    "cart_size": args.cart_size,
                    "parcel_number": args.parcel,
                }
                values.update({k: v for k, v in given.items() if v})
                for service_type in ("water", "sewer", "sanitation"):
                    values[service_type] = "on" if values.get(f"{service_type}_schedule") else ""
                if args.new:
                    values["duplicates_seen"] = "1"
                opened = service.open_account(session, actor, values, policy=policy, today=on, now=now)
                number, order_id = opened.account.number, opened.order.id
                deposit = opened.deposit.amount_cents if opened.deposit else 0
                outbox_id = opened.welcome_outbox_id
        except DuplicatesFound as exc:
            for c in exc.found.customers:
                print(f"possible duplicate: customer {c.id} {c.name} {c.email or ''}", file=sys.stderr)
            for p in exc.found.premises:
                print(f"possible duplicate: premise {p.id} {p.one_line}", file=sys.stderr)
            print("error: check the possible duplicates on the staff page, or pass --new", file=sys.stderr)
            return 2
        except FieldErrors as exc:
            for field, problem in exc.errors.items():
                print(f"error: {field}: {problem.message}", file=sys.stderr)
            return 2
    from . import jobs

    settings = _settings()
    jobs.send_outbox_soon(settings, _factory(), outbox_id)
    jobs.defer(settings, "email.request_update", _factory(), request_id=int(args.from_request))
    from .billing_core.money import format_money

    paid = f"deposit {format_money(deposit)}" if deposit else "no deposit"
    print(f"Account {number} is open; turn-on order {order_id}; {paid}.")
    return 0


def _account_opening_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    accounts = _commands(sub, "accounts", "accounts")
    p = accounts.add_parser("open", help="open an account from a resident's start request")
    p.add_argument("--from-request", required=True, metavar="ID", help="the start request's number")
    p.add_argument("--class", dest="customer_class", required=True, metavar="CLASS", help="e.g. RESIDENTIAL_SINGLE")
    p.add_argument(
        "--cycle", metavar="CODE", help="the billing cycle's code, C1 to C4 in the demo (default: the first)"
    )
    p.add_argument("--route", metavar="CODE", help="the meter route's code")
    p.add_argument("--start-on", metavar="DATE", help="first day of service, YYYY-MM-DD (default: the request's)")
    p.add_argument("--water-rate", metavar="CODE", help="the water rate schedule's code")
    p.add_argument("--sewer-rate", metavar="CODE", help="the sewer rate schedule's code")
    p.add_argument("--sanitation-rate", metavar="CODE", help="the sanitation rate schedule's code")
    p.add_argument("--carts", metavar="N", help="number of carts (sanitation by cart)")
    p.add_argument("--cart-size", metavar="GALLONS", help="cart size, e.g. 64")
    p.add_argument("--parcel", metavar="APN", help="the parcel number")
    p.add_argument("--new", action="store_true", help="make a new customer and premise despite possible duplicates")
    p.add_argument("--on", metavar="DATE", help="the office's date, YYYY-MM-DD (default: today)")
    _as_option(p, True)
    p.set_defaults(func=cmd_accounts_open)


# --- Adjustments and write-offs (issue 14) ------------------------------------------------------


def _money_errors(exc: Exception) -> int:
    """A refused money command: each field's message on stderr and exit 2 (anything else raises)."""
    from .billing_core.errors import FieldErrors

    if isinstance(exc, FieldErrors):
        for name, err in exc.errors.items():
            print(f"error: {name}: {err.message}", file=sys.stderr)
        return 2
    raise exc


def _print_working(data: dict) -> None:  # type: ignore[type-arg]
    print(f"Leak bill {data['bill']} ({data['period'][0]} to {data['period'][1]}): used {data['usage']}")
    for m in data["months"]:
        print(f"  bill {m['bill']} {m['from']} to {m['to']}: {m['usage']}")
    print(f"Average of {len(data['months'])} bills: {data['average']}; excess {data['excess']}")
    for p in data["prices"]:
        print(f"  {p['units']} billed at ${p['billed_price']} re-priced at ${p['lowest_price']}: credit ${p['credit']}")


def cmd_adjustments(args: argparse.Namespace) -> int:
    """Prepare, approve or reject an adjustment; work out and prepare a leak credit."""
    from datetime import datetime

    from .adapters.clock import system_clock
    from .billing_core import adjustments, money_policy
    from .services import adjustments as service
    from .templating import _money

    settings = _settings()
    now = system_clock()
    today = datetime.now(settings.tz).date()
    with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
        actor = _actor(session, args.as_user, True)
        try:
            if args.adjustments_command == "prepare":
                values = {
                    "service": args.service,
                    "amount": args.amount,
                    "reason": args.reason,
                    "note": args.note or "",
                    "bill": args.bill or "",
                }
                prepared = service.prepare(session, actor, args.account, values, today, now)
                item = prepared.adjustment
                if prepared.becomes_credit_cents:
                    print(f"{_money(prepared.becomes_credit_cents)} of it is beyond what is owed: it becomes credit.")
            elif args.adjustments_command == "leak":
                policy = money_policy.load(settings.money_policy_file)
                done = service.leak_credit(
                    session, actor, args.account, {"proof": args.proof or ""}, policy, today, now
                )
                _print_working(done.working.data)
                item = done.adjustment
                assert item is not None
            else:
                decision = "approve" if args.adjustments_command == "approve" else "reject"
                item = service.decide(session, actor, args.id, decision, getattr(args, "reason", "") or "", today, now)
        except BillingError as exc:
            return _money_errors(exc)
        word = {"posted": "posted", "pending": "waiting for approval", "rejected": "rejected"}[item.status]
        print(
            f"Adjustment {item.id}: {adjustments.describe(item.amount_cents)} on {item.service_type}"
            f" ({_money(abs(item.amount_cents))}), {word}."
        )
    return 0


def cmd_write_offs(args: argparse.Namespace) -> int:
    """Prepare, approve or reject a write-off."""
    from datetime import datetime

    from .adapters.clock import system_clock
    from .services import write_offs as service
    from .templating import _money

    settings = _settings()
    now = system_clock()
    today = datetime.now(settings.tz).date()
    with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
        actor = _actor(session, args.as_user, True)
        try:
            if args.write_offs_command == "prepare":
                item = service.prepare(session, actor, args.account, {"amount": args.amount, "reason": args.why}, now)
            else:
                decision = "approve" if args.write_offs_command == "approve" else "reject"
                item = service.decide(session, actor, args.id, decision, getattr(args, "reason", "") or "", today, now)
        except BillingError as exc:
            return _money_errors(exc)
        word = {"posted": "posted to bad debt", "pending": "waiting for approval", "rejected": "rejected"}[item.status]
        print(f"Write-off {item.id} of {_money(item.amount_cents)}: {word}.")


# --- Bank and lockbox files (issue 14) -------------------------------------------------------


def cmd_payments_import(args: argparse.Namespace) -> int:
    """Import a bank or lockbox file; prints the counts matched / duplicate / unmatched / rejected."""
    from datetime import datetime

    from .adapters.clock import system_clock
    from .billing_core.errors import FieldErrors
    from .services import lockbox

    settings = _settings()
    try:
        with open(args.file, "rb") as f:
            content = f.read()
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            report = lockbox.import_file(
                session,
                _actor(session, args.as_user, needed=True),
                content,
                args.file.rsplit("/", 1)[-1],
                args.format,
                args.layout,
                layouts_file=settings.lockbox_layouts_file,
                today=datetime.now(settings.tz).date(),
                now=system_clock(),
            )
    except FieldErrors as exc:
        for problem in exc.errors.values():
            print(f"error: {args.file}: {problem.message}", file=sys.stderr)
        return 1
    if report.already_imported_at is not None:
        print(f"{args.file} was already imported on {report.already_imported_at:%Y-%m-%d %H:%M} UTC; nothing added.")
    print(f"{args.file}: {report.counts()}")
    return 0


# --- Counter payments, cash drawers and the daily money reports (issue 14, counter) -----------


def _counter_day() -> tuple:  # type: ignore[type-arg]
    from .adapters.clock import system_clock

    now = system_clock()
    return now, now.astimezone(_settings().tz).date()


def cmd_drawers_open(args: argparse.Namespace) -> int:
    from .adapters.database import transaction
    from .billing_core.errors import FieldErrors
    from .services import counter

    now, today = _counter_day()
    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                user = _actor(session, args.as_email, needed=True)
                drawer = counter.open_drawer(session, user, args.name, args.float, today, now)
                print(f"drawer {drawer.id} ({drawer.name}) open with a float of {drawer.float_cents / 100:.2f}")
        except FieldErrors as exc:
            return _money_errors(exc)
    return 0


def cmd_drawers_close(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .adapters.database import transaction
    from .billing_core.errors import FieldErrors
    from .services import counter

    now, _today = _counter_day()
    try:
        data = json.loads(Path(args.count_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: count file: {exc}", file=sys.stderr)
        return 2
    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                user = _actor(session, args.as_email, needed=True)
                diff = counter.close_drawer_from_file(session, user, args.drawer, data, args.reason or "", now)
        except FieldErrors as exc:
            return _money_errors(exc)
    print(
        f"drawer {args.drawer} closed: over/short cash {diff['cash_cents'] / 100:.2f}, "
        f"checks {diff['checks_cents'] / 100:.2f}, card {diff['card_cents'] / 100:.2f}"
    )
    return 0


def cmd_drawers_sign_off(args: argparse.Namespace) -> int:
    from .adapters.database import transaction
    from .billing_core.errors import FieldErrors
    from .services import counter

    now, today = _counter_day()
    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                user = _actor(session, args.as_email, needed=True)
                drawer = counter.sign_off(session, user, args.drawer, args.note or "", today, now)
                print(f"drawer {drawer.id} signed off")
        except FieldErrors as exc:
            return _money_errors(exc)
    return 0


def cmd_payments_take(args: argparse.Namespace) -> int:
    from .adapters.database import transaction
    from .billing_core.errors import FieldErrors
    from .services import counter

    now, _today = _counter_day()
    tender = counter.Tender(
        args.tender,
        tendered=args.tendered or "",
        check_number=args.check_number or "",
        check_bank=args.bank or "",
        approval_code=args.approval_code or "",
    )
    with _engine() as engine:
        try:
            with transaction(make_sessionmaker(engine)) as session:
                user = _actor(session, args.as_email, needed=True)
                receipt = counter.take_payment(session, user, [counter.Line(args.account, args.amount)], tender, now)
                number, change = receipt.number, receipt.change_cents
        except FieldErrors as exc:
            return _money_errors(exc)
    print(f"receipt {number}" + (f": change due {change / 100:.2f}" if change else ""))
    return 0


def cmd_reports_money(args: argparse.Namespace) -> int:
    from datetime import date as date_
    from pathlib import Path

    from .services import money_reports

    day = date_.fromisoformat(args.on)
    with _engine() as engine, make_sessionmaker(engine)() as session:
        if args.reports_command == "deposit":
            deposit = money_reports.deposit_report(session, None, day)
            text = money_reports.deposit_csv(deposit)
        else:
            remittance = money_reports.remittance_report(session, None, day)
            text = money_reports.remittance_csv(remittance)
    if args.csv:
        Path(args.csv).write_text(text, encoding="utf-8")
        print(f"wrote {args.csv}")
    else:
        print(text, end="")
    return 0


# --- Shutoff orders by hand (issue 15, the gate) -------------------------------------------


def cmd_shutoff_order(args: argparse.Namespace) -> int:
    """Issue a shutoff order for an account through the shutoff gate: refused (exit 3) with
    every rule of the Act it would break, named; else the work order's number."""
    from datetime import date, datetime

    from .services import collections_policy

    user = _staff(args)
    on = date.fromisoformat(args.on) if args.on else datetime.now(_settings().tz).date()
    try:
        done = collections_policy.issue_shutoff_order(_factory(), user, args.account, on, datetime.now(_settings().tz))
    except collections_policy.ShutoffRefused as exc:
        print(f"Refused: no shutoff order for account {args.account} on {on}.", file=sys.stderr)
        for refusal in exc.refusals:
            print(f"  {refusal.rule}: {refusal.message}", file=sys.stderr)
        if exc.already:
            print(f"  already: {exc.already}", file=sys.stderr)
        return 3
    print(f"Shutoff order {done.order_id} issued for account {args.account} on {on} ({done.episode}).")
    return 0


# --- Collection notices (issue 15, notices and field orders) ------------------------------------


def cmd_notices_print(args: argparse.Namespace) -> int:
    """Print a day's notices of each kind (or one kind) for the mail house: one PDF per kind,
    in ZIP order, kept under files_dir/notices (the staff page's Print, from a script)."""
    from datetime import UTC, date, datetime

    from .adapters.printer import AsyncPrinter
    from .billing_core import notices as notice_rules
    from .billing_core.models import User
    from .services import notices as notice_service
    from .templating import make_templates

    settings = _settings()
    on = date.fromisoformat(args.on)
    kinds = [args.kind] if args.kind else list(notice_rules.KINDS)
    env = make_templates().env
    factory = _factory()
    printer = AsyncPrinter(settings.chromium)

    async def print_all() -> int:
        printed = 0
        try:
            for kind in kinds:
                with factory() as session, session.begin():
                    user = _actor(session, args.as_user, needed=True)
                    if not notice_rules.day_counts(session, on).get(kind):
                        continue
                    batch, slices = notice_service.prepare_batch(
                        session, user, env, settings, on, kind, datetime.now(UTC)
                    )
                    batch_id, user_id = batch.id, user.id
                pdfs = [await printer.pdf(html) for html in slices]
                with factory() as session, session.begin():
                    user = session.get(User, user_id)
                    batch = notice_service.store_batch(session, user, settings, batch_id, pdfs)
                    print(f"{kind}: {batch.notices_total} notices, {batch.pdf_path}")
                    printed += 1
        finally:
            await printer.close()
        return printed

    if not run_to_end(print_all):
        print(f"no notices were issued on {on.isoformat()}")
    return 0


def _notices_parsers(sub) -> None:  # type: ignore[no-untyped-def]
    notices = _commands(sub, "notices", "collection notices")
    p = notices.add_parser("print", help="print a day's notices for the mail house (one PDF per kind, ZIP order)")
    p.add_argument("--on", required=True, type=_date_text, metavar="DATE", help="the day they were issued, YYYY-MM-DD")
    p.add_argument(
        "--kind", choices=("past_due", "final", "door_tag", "reconnected", "broken_plan"), help="one kind only"
    )
    _as_option(p, True)
    p.set_defaults(func=cmd_notices_print)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="Utility billing portal")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="build a deterministic synthetic district")
    p.add_argument("--accounts", type=int, default=500, help="how many accounts the district has (default 500)")
    p.add_argument("--seed", type=int, default=1, help="the random seed: the same seed builds the same district")
    p.add_argument("--today", type=_date_text, help="the demo's 'today' (YYYY-MM-DD); default: this month")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--reset", action="store_true", help="drop everything in the database and rebuild")
    p.add_argument(
        "--workers", type=int, help="processes loading in parallel on PostgreSQL (default: one per core, at most 4)"
    )
    p.add_argument(
        "--cycles",
        type=int,
        default=4,
        choices=range(1, 5),
        help="billing cycles the accounts are spread over, 1 to 4 (C1 to C4, read on the 5th, 12th, 19th and 26th)",
    )
    p.set_defaults(func=cmd_demo)

    users = sub.add_parser(
        "users", help="manage sign-ins: create, list, turn off or on, change role, sign out everywhere"
    ).add_subparsers(dest="users_command", required=True)
    p = users.add_parser(
        "create",
        help="create a sign-in (the password is asked for at the terminal, or read from standard input)",
        description="Create a sign-in. The password is asked for twice at the terminal, or read from the first "
        "line of standard input with --password-stdin (for scripts: printf '%s\\n' \"$PW\" | portal users "
        "create ... --password-stdin). It is never taken from the command line.",
    )
    p.add_argument("--email", required=True, help="the email address the person signs in with")
    p.add_argument("--role", required=True, choices=ROLES, help="what the sign-in may do: %(choices)s")
    p.add_argument(
        "--account", help="the account number a customer sign-in belongs to (required for customers, staff take none)"
    )
    p.add_argument("--name", help="the person's name, shown on pages (optional)")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking at the terminal",
    )
    # Refused with a clear message (not taken for --password-stdin): see _read_password.
    p.add_argument("--password", dest="password_argv", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_users_create)
    p = users.add_parser("list", help="list sign-ins: role, on or off, open sessions, last sign-in, accounts")
    p.add_argument("--role", choices=ROLES, help="only sign-ins with this role")
    p.add_argument("--active-only", action="store_true", help="leave out sign-ins that are turned off")
    p.set_defaults(func=cmd_users_list)
    p = users.add_parser("deactivate", help="turn a sign-in off; every session of it ends at once")
    p.add_argument("email", help="the sign-in's email address")
    p.set_defaults(func=cmd_users_deactivate)
    p = users.add_parser("activate", help="turn a sign-in that was turned off back on")
    p.add_argument("email", help="the sign-in's email address")
    p.set_defaults(func=cmd_users_activate)
    p = users.add_parser(
        "set-role", help="give a staff sign-in another staff role; its sessions end (customers stay customers)"
    )
    p.add_argument("email", help="the sign-in's email address")
    p.add_argument("role", choices=ROLES, help="the new role: %(choices)s")
    p.set_defaults(func=cmd_users_set_role)
    p = users.add_parser("sign-out", help="sign a person out everywhere: every session of the sign-in ends")
    p.add_argument("email", help="the sign-in's email address")
    p.set_defaults(func=cmd_users_sign_out)

    rates = sub.add_parser("rates", help="rate schedules").add_subparsers(dest="rates_command", required=True)
    p = rates.add_parser("quote", help="compute bills for a CSV of cases against OWRS files")
    p.add_argument("--owrs-root", required=True, help="folder the cases' file column is relative to")
    p.add_argument("--cases", required=True, help="CSV: file, cust_class, meter_size, usage_ccf, other data columns")
    p.set_defaults(func=cmd_rates_quote)
    p = rates.add_parser("import-owrs", help="import OWRS files as rate schedules (each file whole or not at all)")
    p.add_argument("files", nargs="+", metavar="FILE", help="OWRS files (YAML); each is imported whole or not at all")
    p.add_argument(
        "--effective", type=_date_text, help="effective date YYYY-MM-DD, when the file's own is missing or wrong"
    )
    p.set_defaults(func=cmd_rates_import)

    # issue 16: meters
    meters_p = sub.add_parser("meters", help="the meter inventory").add_subparsers(dest="meters_command", required=True)
    p = meters_p.add_parser("receive", help="receive a CSV file of serials into stock (all lines or none)")
    p.add_argument("file", help="CSV: one serial a line, or a header row: serial,size,make,model,dials,multiplier")
    p.add_argument("--size", help='the size of every meter the file does not size, e.g. 5/8"')
    p.add_argument("--make", help="the make, when the file does not say")
    p.add_argument("--model", help="the model, when the file does not say")
    p.add_argument("--dials", type=int, help="dials, when the file does not say (default 6)")
    p.add_argument("--multiplier", help="the register multiplier, when the file does not say (default 1)")
    p.add_argument("--on", type=_date_text, help="the day received, YYYY-MM-DD (default: today)")
    p.add_argument("--as", dest="as_user", required=True, metavar="EMAIL", help="the staff sign-in receiving them")
    p.set_defaults(func=cmd_meters_receive)

    reads_p = sub.add_parser("reads", help="meter reads").add_subparsers(dest="reads_command", required=True)
    p = reads_p.add_parser("import", help="import a read file (all lines or none)")
    p.add_argument("file", help="the read file")
    p.add_argument(
        "--format",
        required=True,
        choices=["csv", "fixed"],
        help="csv (with --map) or fixed (fixed-width, with --layout)",
    )
    p.add_argument("--layout", help="a layout from portal/data/read_layouts.json (fixed-width files need one)")
    p.add_argument("--map", help="CSV columns: meter_serial=Col,account_number=Col,value=Col,read_at=Col,source=Col")
    p.set_defaults(func=cmd_reads_import)
    p = reads_p.add_parser("route-file", help="write a route file for handhelds, stops in walking order")
    p.add_argument(
        "--cycle",
        required=True,
        help=CYCLE_HELP,
    )
    p.add_argument("--route", help="one route (default: every route of the cycle)")
    p.add_argument("--date", required=True, type=_date_text, help="the scheduled read date, YYYY-MM-DD")
    p.add_argument(
        "--layout", default="handheld-60", help="a layout from portal/data/read_layouts.json (default handheld-60)"
    )
    p.set_defaults(func=cmd_reads_route_file)

    runs = sub.add_parser("bill-run", help="bill runs").add_subparsers(dest="bill_run_command", required=True)
    p = runs.add_parser("create", help="create a run for a cycle and period")
    p.add_argument(
        "--cycle",
        required=True,
        help=CYCLE_HELP,
    )
    p.add_argument("--period-start", required=True, type=_date_text, help="YYYY-MM-DD, the first day billed")
    p.add_argument("--period-end", required=True, type=_date_text, help="YYYY-MM-DD, the day after the last day billed")
    p.add_argument("--bill-date", type=_date_text, help="YYYY-MM-DD (default: two days after the period)")
    p.add_argument(
        "--due-days", type=int, default=21, help="days from the bill date to the due date, 10 to 60 (default 21)"
    )
    p.add_argument(
        "--as", dest="as_user", metavar="EMAIL", help="the staff sign-in doing this (optional: for the record)"
    )
    for name, text, actor_needed in (
        ("calculate", "calculate draft bills", False),
        ("register", "print the billing register", False),
        ("approve", "approve a calculated run (supervisor)", True),
        ("post", "post an approved run (supervisor)", True),
    ):
        p = runs.add_parser(name, help=text)
        p.add_argument("run", type=int, help="the bill run's number (printed by create)")
        _as_option(p, actor_needed)
        p.add_argument("--chunk", type=int, default=500, help="accounts per job")
        p.add_argument("--in-process", action="store_true", help="do the work here, not on the workers")
        p.add_argument("--no-wait", dest="wait", action="store_false", help="queue the jobs and return")
    p = runs.add_parser("deliver", help="deliver a posted run: print file and paperless emails")
    p.add_argument("run", type=int, help="the bill run's number")
    _as_option(p, True)
    p.add_argument("--part", type=int, default=200, help="bills per print-file slice (one job each)")
    p.add_argument("--in-process", action="store_true", help="do the work here, not on the workers")
    p.add_argument("--no-wait", dest="wait", action="store_false", help="queue the jobs and return")
    for p in runs.choices.values():
        p.set_defaults(func=cmd_bill_run)

    acct = sub.add_parser("account", help="accounts").add_subparsers(dest="account_command", required=True)
    p = acct.add_parser("stop", help="stop service and post the final bill")
    p.add_argument("account", help="account number")
    p.add_argument(
        "--on", required=True, type=_date_text, help="YYYY-MM-DD, the last day of service (billed through it)"
    )
    p.add_argument("--read", action="append", default=[], metavar="SERIAL=VALUE", help="a final read, for each meter")
    p.add_argument("--forward-street", help="forwarding address for the final bill: street")
    p.add_argument("--forward-city", help="forwarding address: city")
    p.add_argument("--forward-state", help="forwarding address: state, two letters")
    p.add_argument("--forward-zip", help="forwarding address: ZIP code")
    _as_option(p, True)
    p.set_defaults(func=cmd_account_stop)

    pay = sub.add_parser("autopay", help="autopay drafts").add_subparsers(dest="autopay_command", required=True)
    p = pay.add_parser("run", help="take the drafts due on a day (workers do this hourly by themselves)")
    p.add_argument("--on", type=_date_text, help="the day, YYYY-MM-DD (default: today in the agency's time zone)")
    p.set_defaults(func=cmd_autopay_run)

    led = sub.add_parser("ledger", help="the ledger").add_subparsers(dest="ledger_command", required=True)
    p = led.add_parser(
        "check", help="verify every transaction, reversal, payment, bill and drawer; exit 1 on a problem"
    )
    p.set_defaults(func=cmd_ledger_check)
    _returns_parsers(sub)  # returned payments and cash only
    _account_opening_parsers(sub)  # issue 16: portal accounts open
    _notices_parsers(sub)  # issue 15: collection notices (print a day's batches)

    # Bank and lockbox files (issue 14)
    pays = _commands(sub, "payments", "payments the office takes, imports and returns")
    p = pays.add_parser("import", help="import a bank or lockbox file (BAI2 or the bank's CSV)")
    p.add_argument("file", help="the file")
    p.add_argument("--format", choices=("bai2", "csv"), required=True, help="bai2, or csv through a layout")
    p.add_argument("--layout", help="the CSV layout's name (default: standard; see portal/data/lockbox_layouts.json)")
    _as_option(p, True)
    p.set_defaults(func=cmd_payments_import)
    # Deposits and refunds (issue 14 items 7 and 8)
    dep = sub.add_parser("deposits", help="security deposits").add_subparsers(dest="deposits_command", required=True)
    p = dep.add_parser("bill", help="bill a deposit on an account")
    p.add_argument("--account", required=True, help="the account number")
    p.add_argument("--amount", help="dollars and cents (default: what the money policy asks)")
    p.add_argument(
        "--reason",
        required=True,
        choices=("new_customer", "after_shutoff", "returned_payments", "other"),
        help="why the deposit is billed",
    )
    p.add_argument("--note", help="why (needed with --reason other)")
    p.add_argument("--as", dest="as_user", required=True, help="the staff sign-in acting")
    p.set_defaults(func=cmd_deposits_bill)
    p = dep.add_parser("run", help="credit back the deposits paid on time long enough (the daily job)")
    p.add_argument("--on", type=_date_text, help="the day, YYYY-MM-DD (default: today)")
    p.set_defaults(func=cmd_deposits_run)
    ref = sub.add_parser("refunds", help="refunds of credit").add_subparsers(dest="refunds_command", required=True)
    p = ref.add_parser("request", help="ask for a refund of an account's credit")
    p.add_argument("--account", required=True, help="the account number")
    p.add_argument("--amount", required=True, help="dollars and cents, at most the account's credit")
    p.add_argument("--method", required=True, choices=("card", "check"), help="back to the card, or by check")
    p.add_argument("--reason", default="Credit balance refund", help="why (closed account, overpayment)")
    p.add_argument("--as", dest="as_user", required=True, help="the staff sign-in acting")
    p.set_defaults(func=cmd_refunds_request)
    for name in ("approve", "reject"):
        p = ref.add_parser(name, help=f"{name} a refund someone else asked for")
        p.add_argument("id", type=int, help="the refund's number")
        if name == "reject":
            p.add_argument("--reason", required=True, help="why it is rejected")
        p.add_argument("--as", dest="as_user", required=True, help="the staff sign-in acting")
        p.set_defaults(func=cmd_refunds_decide)
    p = ref.add_parser("pay", help="pay an approved card refund through the payment processor")
    p.add_argument("id", type=int, help="the refund's number")
    p.add_argument("--as", dest="as_user", required=True, help="the staff sign-in acting")
    p.set_defaults(func=cmd_refunds_pay)
    p = ref.add_parser("export-checks", help="write the accounts-payable check register (each refund once)")
    p.add_argument("file", help="where to write the CSV")
    p.add_argument("--as", dest="as_user", required=True, help="the staff sign-in acting")
    p.set_defaults(func=cmd_refunds_export_checks)

    mail = sub.add_parser("emails", help="the email outbox").add_subparsers(dest="emails_command", required=True)
    p = mail.add_parser("status", help="how many emails are queued, sent, retrying, failed")
    p.set_defaults(func=cmd_emails)
    p = mail.add_parser("retry", help="send the emails whose next attempt is due, now")
    p.add_argument("--all", action="store_true", help="every email waiting to retry, even if not due yet")
    p.add_argument("--failed", action="store_true", help="also the failed ones (given up on), from a fresh count")
    p.set_defaults(func=cmd_emails)

    # Adjustments and write-offs (issue 14)
    adj = sub.add_parser("adjustments", help="adjustments with approval").add_subparsers(
        dest="adjustments_command", required=True
    )
    p = adj.add_parser("prepare", help="prepare an adjustment (posts at once within your limit, else waits)")
    p.add_argument("--account", required=True, help="account number")
    p.add_argument("--service", required=True, help="the service: water, sewer, ..., fees")
    p.add_argument("--amount", required=True, help="dollars: negative is a credit (-12.50), positive a debit")
    p.add_argument("--reason", required=True, help="leak, meter_error, billing_error, courtesy, fee_waiver, other")
    p.add_argument("--note", help="what it is for (required with --reason other)")
    p.add_argument("--bill", help="the bill number it corrects")
    _as_option(p, True)
    p = adj.add_parser("approve", help="approve and post a pending adjustment (never your own)")
    p.add_argument("id", help="the adjustment's number")
    _as_option(p, True)
    p = adj.add_parser("reject", help="reject a pending adjustment, saying why")
    p.add_argument("id", help="the adjustment's number")
    p.add_argument("--reason", required=True, help="why it is rejected")
    _as_option(p, True)
    p = adj.add_parser("leak", help="work out the leak credit from policy, print the working, prepare it")
    p.add_argument("--account", required=True, help="account number")
    p.add_argument("--proof", help="proof of repair (an invoice or receipt number)")
    _as_option(p, True)
    for p in adj.choices.values():
        p.set_defaults(func=cmd_adjustments)
    wo = sub.add_parser("write-offs", help="write-offs of final balances").add_subparsers(
        dest="write_offs_command", required=True
    )
    p = wo.add_parser("prepare", help="prepare the write-off of a final or closed account's balance")
    p.add_argument("--account", required=True, help="account number")
    p.add_argument("--amount", required=True, help="dollars, at most what the account owes")
    p.add_argument("--why", required=True, help="why it is uncollectible (the collection efforts made)")
    _as_option(p, True)
    p = wo.add_parser("approve", help="approve and post a write-off (never your own)")
    p.add_argument("id", help="the write-off's number")
    _as_option(p, True)
    p = wo.add_parser("reject", help="reject a write-off, saying why")
    p.add_argument("id", help="the write-off's number")
    p.add_argument("--reason", required=True, help="why it is rejected")
    _as_option(p, True)
    for p in wo.choices.values():
        p.set_defaults(func=cmd_write_offs)
    # Counter payments, cash drawers and the daily money reports (issue 14, counter)
    drw = sub.add_parser("drawers", help="cash drawers").add_subparsers(dest="drawers_command", required=True)
    p = drw.add_parser("open", help="open a drawer with a counted float")
    p.add_argument("--name", required=True, help="where it is, like 'Counter 1'")
    p.add_argument("--float", required=True, help="the counted float in dollars, like 150.00")
    p.add_argument("--as", dest="as_email", required=True, help="the cashier's staff sign-in")
    p.set_defaults(func=cmd_drawers_open)
    p = drw.add_parser("close", help="close a drawer with a count (JSON file)")
    p.add_argument("drawer", type=int, help="the drawer's number")
    p.add_argument(
        "--count-file",
        required=True,
        help='{"cash": {"2000": 3}, "checks": [{"number": .., "amount": ..}], "card": ".."}',
    )
    p.add_argument("--reason", default="", help="why it is over or short (required then)")
    p.add_argument("--as", dest="as_email", required=True, help="the acting staff sign-in")
    p.set_defaults(func=cmd_drawers_close)
    p = drw.add_parser("sign-off", help="sign off a closed drawer (a supervisor, not its cashier)")
    p.add_argument("drawer", type=int, help="the drawer's number")
    p.add_argument("--note", default="", help="the supervisor's note")
    p.add_argument("--as", dest="as_email", required=True, help="the acting staff sign-in")
    p.set_defaults(func=cmd_drawers_sign_off)
    cpay = _commands(sub, "payments", "payments the office takes, imports and returns")
    p = cpay.add_parser("take", help="take a counter payment into your open drawer")
    p.add_argument("--account", required=True, help="account number or the stub's scan line")
    p.add_argument("--amount", required=True, help="dollars and cents")
    p.add_argument("--tender", required=True, choices=("cash", "check", "card", "money_order"), help="how it is paid")
    p.add_argument("--tendered", help="cash handed over (change is given back)")
    p.add_argument("--check-number", help="the check or money order number")
    p.add_argument("--bank", help="the check's bank")
    p.add_argument("--approval-code", help="the card terminal's approval code (never card data)")
    p.add_argument("--as", dest="as_email", required=True, help="the acting staff sign-in")
    p.set_defaults(func=cmd_payments_take)
    rep = sub.add_parser("reports", help="daily money reports").add_subparsers(dest="reports_command", required=True)
    for name in ("deposit", "remittance"):
        p = rep.add_parser(name, help=f"the daily {name} report as CSV")
        p.add_argument("--on", required=True, type=_date_text, help="the day, YYYY-MM-DD")
        p.add_argument("--csv", help="write it to this file (default: print it)")
        p.set_defaults(func=cmd_reports_money)

    # Shutoff orders by hand (issue 15, the gate)
    shut = sub.add_parser("shutoff", help="shutoff orders by hand").add_subparsers(
        dest="shutoff_command", required=True
    )
    p = shut.add_parser("order", help="issue a shutoff order (refused naming each rule of the Act it would break)")
    p.add_argument("account", help="the account number")
    p.add_argument("--on", type=_date_text, help="the day of the order, YYYY-MM-DD (default: today)")
    p.add_argument("--as", dest="as_user", required=True, help="the supervisor acting")
    p.set_defaults(func=cmd_shutoff_order)
    # The daily delinquency run (issue 15, run)
    dq = sub.add_parser("delinquency", help="the daily delinquency run").add_subparsers(
        dest="delinquency_command", required=True
    )
    p = dq.add_parser("run", help="evaluate every delinquent account and post today's steps (each once)")
    p.add_argument("--on", type=_date_text, help="the day, YYYY-MM-DD (default: today)")
    p.add_argument("--preview", action="store_true", help="write the action list only; post nothing")
    p.add_argument(
        "--as",
        dest="as_user",
        metavar="EMAIL",
        help="the staff sign-in acting (checked: a specialist previews, a supervisor posts); "
        "without it the run acts as the daily job does",
    )
    p.set_defaults(func=cmd_delinquency_run)

    p = sub.add_parser("web", help="serve the portal in production: one process per core (the Procfile's web:)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=None, help="port (default $PORT, else 8000)")
    p.add_argument(
        "--workers", type=int, default=None, help="web processes (default $WEB_CONCURRENCY, else one per core)"
    )
    p.add_argument(
        "--no-proxy-headers",
        action="store_true",
        help="the default, said for the record: uvicorn never reads forwarding headers; the portal reads them "
        "only from FORWARDED_ALLOW_IPS",
    )
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("serve", help="run the web portal")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a job worker (PostgreSQL)")
    p.add_argument("--concurrency", type=int, default=1, help="jobs this worker runs at once (default 1)")
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # issue 17: ops: the same JSON log lines as the web app (INFO for the long-running
    # processes, WARNING for one-off commands, whose output is what they print).
    from .observability import setup_logging

    setup_logging(_settings(), "INFO" if args.func in (cmd_serve, cmd_worker) else "WARNING")
    try:
        return int(args.func(args) or 0)
    except BillingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
