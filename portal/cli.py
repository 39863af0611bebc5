"""The ``portal`` command: migrate, demo, users, serve, worker."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine

from .billing_core.errors import BillingError, InvalidInput
from .db import make_engine, make_sessionmaker, transaction
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


def cmd_users_create(args: argparse.Namespace) -> int:
    from .billing_core import audit, users

    try:
        with _engine() as engine, transaction(make_sessionmaker(engine)) as session:
            user = users.create_user(session, args.email, args.password, args.role, args.account)
            audit.record(
                session,
                "user.create",
                actor_label="portal users create",
                entity_type="user",
                entity_id=user.id,
                after={"email": user.email, "role": user.role, "account": args.account},
            )
    except InvalidInput as exc:
        print(f"error: {exc.field}: {exc.message}" if exc.field else f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"Created {args.role} sign-in {user.email}" + (f" for account {args.account}" if args.account else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("portal.app:create_app", factory=True, host=args.host, port=args.port, proxy_headers=True)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .jobs import run_worker

    return run_worker(_settings(), concurrency=args.concurrency)


def cmd_rates_quote(args: argparse.Namespace) -> int:
    from .rates import quote_cases

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

    from .billing_core.read_files import parse_mapping
    from .billing_core.read_import import import_reads

    settings = _settings()
    try:
        content = open(args.file, "rb").read()
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="Utility billing portal")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="build a deterministic synthetic district")
    p.add_argument("--accounts", type=int, default=500)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--today", help="the demo's 'today' (YYYY-MM-DD); default: this month")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--reset", action="store_true", help="drop everything in the database and rebuild")
    p.add_argument(
        "--workers", type=int, help="processes loading in parallel on PostgreSQL (default: one per core, at most 4)"
    )
    p.set_defaults(func=cmd_demo)

    users = sub.add_parser("users", help="manage sign-ins").add_subparsers(dest="users_command", required=True)
    p = users.add_parser("create", help="create a sign-in")
    p.add_argument("--email", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--role", required=True, choices=["customer", "csr", "specialist", "cashier", "supervisor", "admin"])
    p.add_argument("--account", help="account number (customer sign-ins)")
    p.set_defaults(func=cmd_users_create)

    rates = sub.add_parser("rates", help="rate schedules").add_subparsers(dest="rates_command", required=True)
    p = rates.add_parser("quote", help="compute bills for a CSV of cases against OWRS files")
    p.add_argument("--owrs-root", required=True, help="folder the cases' file column is relative to")
    p.add_argument("--cases", required=True, help="CSV: file, cust_class, meter_size, usage_ccf, other data columns")
    p.set_defaults(func=cmd_rates_quote)
    p = rates.add_parser("import-owrs", help="import OWRS files as rate schedules (each file whole or not at all)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--effective", help="effective date YYYY-MM-DD, when the file's own is missing or wrong")
    p.set_defaults(func=cmd_rates_import)

    reads_p = sub.add_parser("reads", help="meter reads").add_subparsers(dest="reads_command", required=True)
    p = reads_p.add_parser("import", help="import a read file (all lines or none)")
    p.add_argument("file")
    p.add_argument("--format", required=True, choices=["csv", "fixed"])
    p.add_argument("--layout", help="a layout from portal/data/read_layouts.json (fixed-width files need one)")
    p.add_argument("--map", help="CSV columns: meter_serial=Col,account_number=Col,value=Col,read_at=Col,source=Col")
    p.set_defaults(func=cmd_reads_import)

    p = sub.add_parser("serve", help="run the web portal")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run a job worker (PostgreSQL)")
    p.add_argument("--concurrency", type=int, default=1)
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BillingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
