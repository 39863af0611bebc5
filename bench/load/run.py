"""The due-date spike on loopback: residents signing in, reading bills and paying by card
against localstripe (with its webhooks), staff searching, a steady phase then 10x.

    .venv/bin/python bench/load/run.py                       # about 2-3 minutes
    .venv/bin/python bench/load/run.py --steady-users 10 --spike-users 100 --residents 40 --spike-seconds 60

1. A fresh PostgreSQL database ``bench_load_<pid>`` gets the demo district (``portal
   demo``), ``--residents`` customer sign-ins linked to accounts that owe money (made with
   ``billing_core.users.create_user``), and the demo's staff sign-ins.
2. The demo's stand-ins start as ``portal serve`` starts them (``portal/devstack.py``):
   localstripe with the portal's webhook registered, and a mail catcher. The portal then
   runs as the Procfile's ``web:`` line runs it (its ``0.0.0.0`` made ``127.0.0.1``), and
   its ``worker:`` line beside it (receipt emails), with the demo's Stripe settings.
3. locust runs headless with ``locustfile.py``: ``--steady-users`` residents for
   ``--steady-seconds``, then ``--spike-users`` (10x) for ``--spike-seconds``; each
   resident visits once every ``--pace`` seconds, so the offered rate follows the users.
4. Once the webhooks have settled: no server error (5xx) seen by locust or by localstripe's
   webhook deliveries, no failed request or traceback in the portal's logs, nothing charged
   or posted twice (``checks.py``: locust's charges, the portal's payments and ledger,
   localstripe's PaymentIntents and charges), and ``portal ledger check`` prints ``ledger
   ok``. Prints throughput and p50/p95/p99 per page (locust's own final figures, and per
   phase; its CSVs are kept in ``--out``), the CPU the portal used, and the database
   connections it held. Exit code 1 on any error or double charge.

Everything listens on 127.0.0.1 only; the database must be on this machine too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.load import checks  # noqa: E402
from portal import devstack  # noqa: E402
from portal.adapters.database import make_engine  # noqa: E402
from portal.billing_core import users  # noqa: E402
from portal.billing_core.models import Account, LedgerEntry, Premise, User, UserAccountLink  # noqa: E402
from portal.demo import DEMO_PASSWORD  # noqa: E402
from portal.settings import Settings, normalise_database_url  # noqa: E402

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
STAFF = ("csr@demo.example", "supervisor@demo.example", "specialist@demo.example", "cashier@demo.example")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--database",
        default=os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server on this machine (its admin URL); a database bench_load_<pid> is made on it",
    )
    p.add_argument("--accounts", type=int, default=1000, help="accounts in the demo district (default 1000)")
    p.add_argument(
        "--residents",
        type=int,
        default=100,
        help="resident sign-ins, each linked to an account that owes (default 100)",
    )
    p.add_argument("--steady-users", type=int, default=5, help="residents in the steady phase (default 5)")
    p.add_argument("--spike-users", type=int, help="residents in the spike (default 10x the steady users)")
    p.add_argument("--steady-seconds", type=int, default=40, help="length of the steady phase (default 40)")
    p.add_argument("--spike-seconds", type=int, default=40, help="length of the spike (default 40)")
    p.add_argument(
        "--pace", type=float, default=8.0, help="each resident starts a visit every PACE seconds (default 8)"
    )
    p.add_argument("--staff-users", type=int, default=1, help="staff searching all through (default 1)")
    p.add_argument("--staff-pace", type=float, default=4.0, help="a staff search every STAFF_PACE seconds (default 4)")
    p.add_argument("--pay-share", type=float, default=0.5, help="share of visits that pay by card (default 0.5)")
    p.add_argument(
        "--pdf-share", type=float, default=0.1, help="share of visits that download a bill PDF (default 0.1)"
    )
    p.add_argument("--settle", type=float, default=60, help="seconds to wait for the last webhooks (default 60)")
    p.add_argument("--no-worker", action="store_true", help="do not start the Procfile's worker: line")
    p.add_argument("--out", type=Path, help="folder for the CSVs and logs (default var/load/<time>)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards (dropped by default)")
    args = p.parse_args(argv)
    if args.spike_users is None:
        args.spike_users = 10 * args.steady_users
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def procfile_command(kind: str) -> list[str] | None:
    """The Procfile's ``kind:`` line as a command for this machine, run by the shell as a
    platform runs it (``$PORT`` and any other variable from the environment, programs from
    this virtualenv first on ``PATH``), with every ``0.0.0.0`` made ``127.0.0.1``."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == kind and command.strip():
            return ["/bin/sh", "-c", "exec " + command.strip().replace("0.0.0.0", "127.0.0.1")]
    return None


def prepare(url: str, residents: int) -> tuple[list[dict[str, str]], list[str], list[str]]:
    """``residents`` customer sign-ins, each linked to an active account not on autopay or
    cash only that owes at least $40, and words a clerk would search for."""
    engine = make_engine(url)
    # One argon2 hash for all (the same password): create_user would otherwise spend
    # ~0.2 s of CPU hashing each; signing in still verifies the hash as for anyone.
    shared = users.hash_password(DEMO_PASSWORD)
    try:
        with Session(engine) as s, s.begin(), mock.patch.object(users, "hash_password", lambda _password: shared):
            balance = (
                select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents).label("owed"))
                .where(LedgerEntry.account_id.is_not(None))
                .group_by(LedgerEntry.account_id)
                .subquery()
            )
            rows = s.execute(
                select(Account.number)
                .join(balance, balance.c.account_id == Account.id)
                .where(
                    Account.status == "active",
                    Account.autopay.is_(False),
                    Account.cash_only.is_(False),
                    Account.id.not_in(select(UserAccountLink.account_id)),
                    balance.c.owed >= 4000,
                )
                .order_by(Account.id)
                .limit(residents)
            ).all()
            if len(rows) < residents:
                raise SystemExit(
                    f"only {len(rows)} accounts owe $40 or more; ask for fewer --residents or more --accounts"
                )
            made = []
            for i, (number,) in enumerate(rows, 1):
                email = f"resident-{i:04d}@load.example"
                users.create_user(s, email, DEMO_PASSWORD, "customer", number, display_name=f"Load resident {i}")
                made.append({"email": email, "account": number})
            streets = [r[0].split(" ", 1)[1] for r in s.execute(select(Premise.address_line1).limit(40)).all()]
            staff = [e for e in STAFF if s.scalar(select(User.id).where(User.email == e)) is not None]
        terms = sorted({w.split()[0] for w in streets if w}) + [m["account"][:5] for m in made[:10]]
        return made, staff, terms
    finally:
        engine.dispose()


def wait_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the portal did not start; see {log}")
        time.sleep(0.2)


def stripe_list(base: str, what: str) -> list[dict[str, Any]]:
    """Every object of a kind at localstripe, page by page."""
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if after:
            params["starting_after"] = after
        page = httpx.get(f"{base}/v1/{what}", params=params, auth=("sk_test_demo_standin", ""), timeout=30).json()
        out.extend(page["data"])
        if not page.get("has_more") or not page["data"]:
            return out
        after = page["data"][-1]["id"]


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def page_table(pages: dict[str, dict[str, float]]) -> str:
    """Locust's own final figures per page: requests, failures, req/s, p50/p95/p99."""
    lines = [f"{'page (whole run)':52} {'requests':>8} {'fail':>5} {'req/s':>6} {'p50':>6} {'p95':>6} {'p99':>6} ms"]
    for name in sorted(pages, key=lambda n: (n == "Aggregated", n)):
        p = pages[name]
        lines.append(
            f"{'all requests' if name == 'Aggregated' else name:52} {p['requests']:>8} {p['failures']:>5} "
            f"{p['rps']:6.2f} {p['p50']:>6.0f} {p['p95']:>6.0f} {p['p99']:>6.0f}"
        )
    return "\n".join(lines)


def phase_table(times: dict[str, dict[str, list[float]]], seconds: dict[str, float]) -> str:
    """Per page and phase: req/s, p50/p95/p99 (from every response time locust saw)."""
    phases = [p for p in ("steady", "spike") if p in times]
    head = f"{'page':52}" + "".join(f" | {ph + ' req/s':>12} {'p50':>6} {'p95':>6} {'p99':>6}" for ph in phases)
    lines = [head]
    names = sorted({n for ph in phases for n in times[ph]})
    for name in [*names, "all requests"]:
        row = f"{name:52}"
        for ph in phases:
            xs = [x for n in names for x in times[ph].get(n, [])] if name == "all requests" else times[ph].get(name, [])
            row += (
                f" | {len(xs) / seconds[ph]:12.2f} {percentile(xs, 0.5):6.0f} {percentile(xs, 0.95):6.0f} "
                f"{percentile(xs, 0.99):6.0f}"
            )
        lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin = make_url(args.database)
    if not devstack.is_loopback(admin.host or "127.0.0.1"):
        raise SystemExit("the load test runs on this machine only: give a PostgreSQL server on 127.0.0.1")
    out = args.out or ROOT / "var" / "load" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    name = f"bench_load_{os.getpid()}"
    url = normalise_database_url(admin.set(database=name).render_as_string(hide_password=False))
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    before = loadavg()
    print(f"load average before: {before}", flush=True)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    problems: list[str] = []
    with ExitStack() as stack:
        if not args.keep:
            stack.callback(drop_database, admin_dsn, name)
        port = free_port()
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "PORTAL_DEVELOPMENT": "1",
            "PORTAL_DEMO_STANDINS": "1",
            "FILES_DIR": str(out / "files"),
            "PORT": str(port),
        }
        t0 = time.monotonic()
        subprocess.run(
            [str(BIN / "portal"), "demo", "--accounts", str(args.accounts), "--seed", "1", "--quiet"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        residents, staff, terms = prepare(url, args.residents)
        print(
            f"district of {args.accounts} accounts, {len(residents)} resident sign-ins: {time.monotonic() - t0:.0f} s",
            flush=True,
        )

        standins = devstack.start(Settings.from_env(env), "127.0.0.1", port, env=env, quiet=True)
        assert standins is not None
        stack.callback(standins.stop)
        portal = f"http://127.0.0.1:{port}"
        procs: list[tuple[str, subprocess.Popen]] = []
        stack.callback(stop_all, procs)
        web = procfile_command("web")
        if web is None:
            raise SystemExit("the Procfile has no web: line")
        web_log = out / "web.log"
        procs.append(
            (
                "web",
                subprocess.Popen(
                    web, env=env, cwd=ROOT, stdout=web_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
                ),
            )
        )
        worker = None if args.no_worker else procfile_command("worker")
        if worker:
            procs.append(
                (
                    "worker",
                    subprocess.Popen(
                        worker,
                        env=env,
                        cwd=ROOT,
                        stdout=(out / "worker.log").open("wb"),
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    ),
                )
            )
        wait_up(portal + "/healthz", procs[0][1], web_log)
        print(f"portal: {web[-1]}  (PORT={port})", flush=True)
        print(f"worker: {worker[-1] if worker else 'none'}; localstripe at {standins.stripe_url}", flush=True)

        with Session(make_engine(url)) as s:
            mark = checks.marks(s)
        config = {
            "residents": residents,
            "staff": staff,
            "password": DEMO_PASSWORD,
            "stripe_url": standins.stripe_url,
            "search_terms": terms,
            "pace": args.pace,
            "staff_pace": args.staff_pace,
            "staff_users": args.staff_users,
            "staff_open_share": 0.3,
            "steady_users": args.steady_users,
            "spike_users": args.spike_users,
            "steady_seconds": args.steady_seconds,
            "spike_seconds": args.spike_seconds,
            "spawn_rate": max(1, args.spike_users // 5),
            "pay_share": args.pay_share,
            "pdf_share": args.pdf_share,
            "min_cents": 100,
            "max_cents": 500,
        }
        (out / "config.json").write_text(json.dumps(config, indent=1))
        results_path = out / "locust-results.json"
        locust = [
            str(BIN / "locust"), "-f", str(HERE / "locustfile.py"), "--headless", "--host", portal,
            "--csv", str(out / "locust"), "--csv-full-history", "--only-summary", "--stop-timeout", "60",
            "--loglevel", "WARNING", "--exit-code-on-error", "0",
        ]  # fmt: skip
        print(
            f"locust: steady {args.steady_users} residents for {args.steady_seconds} s, spike {args.spike_users} "
            f"for {args.spike_seconds} s, {args.staff_users} staff; a visit every {args.pace:g} s each",
            flush=True,
        )
        cpu_before = {name: cpu_seconds(proc.pid) for name, proc in procs}
        started = time.monotonic()
        load_during = []
        lenv = {**env, "LOAD_CONFIG": str(out / "config.json"), "LOAD_RESULTS": str(results_path)}
        connections: Counter[str] = Counter()  # the most the portal's database had in each state
        idle_after: Counter[str] = Counter()  # what connections idle in a transaction last ran
        watch = stack.enter_context(psycopg.connect(admin_dsn, autocommit=True))
        with (out / "locust.log").open("wb") as log:
            lproc = subprocess.Popen(locust, env=lenv, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
            limit = args.steady_seconds + args.spike_seconds + 120
            while lproc.poll() is None:
                if time.monotonic() - started > limit:
                    lproc.send_signal(signal.SIGINT)
                    problems.append(f"locust ran past {limit} s and was stopped")
                    lproc.wait(30)
                    break
                time.sleep(2)
                load_during.append(os.getloadavg()[0])
                states = watch.execute(
                    "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
                    (name,),
                ).fetchall()
                for state, n in states:
                    connections[state] = max(connections[state], n)
                for (query,) in watch.execute(
                    "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_activity"
                    " WHERE datname = %s AND state = 'idle in transaction'",
                    (name,),
                ):
                    idle_after[query] += 1
        ran = time.monotonic() - started
        cpu = {name: cpu_seconds(proc.pid) - cpu_before[name] for name, proc in procs}
        results = json.loads(results_path.read_text())
        paid = results["paid"]

        # The last webhooks (localstripe waits 1 s before each delivery).
        deadline = time.monotonic() + args.settle
        with Session(make_engine(url)) as s:
            while checks.pending_among(s, [p["payment"] for p in paid if p["payment"]]) and time.monotonic() < deadline:
                time.sleep(1)
                s.rollback()
            intents = stripe_list(standins.stripe_url, "payment_intents")
            charges = stripe_list(standins.stripe_url, "charges")
            found = checks.check_payments(s, mark, [r["account"] for r in residents], paid, intents, charges)
            outcomes = checks.webhook_outcomes(s)
        problems.extend(found.problems)
        ledger = subprocess.run([str(BIN / "portal"), "ledger", "check"], env=env, capture_output=True, text=True)
        ledger_line = ledger.stdout.strip().splitlines()[-1] if ledger.stdout.strip() else ledger.stderr.strip()
        if ledger.returncode != 0 or ledger.stdout.strip() != "ledger ok":
            problems.append(f"portal ledger check: {ledger.stdout.strip()} {ledger.stderr.strip()}")
        for what, n in results.get("exceptions", {}).items():
            problems.append(f"{n} exceptions in locust's visits: {what[:200]}")
        for what, n in results["failures"].items():
            problems.append(f"{n} failures: {what[:200]}")
        server_errors = results["server_errors"]
        for what, n in server_errors.items():
            problems.append(f"{n} server errors: {what}")
        stripe_log = (
            (out / "files" / "localstripe.log").read_text(errors="replace")
            if (out / "files" / "localstripe.log").exists()
            else ""
        )
        webhook_failed = re.findall(r'webhook "([^"]+)" failed(.*)', stripe_log)
        webhook_ok = len(re.findall(r'webhook "[^"]+" successfully delivered', stripe_log))
        for kind, why in webhook_failed[:10]:
            problems.append(f"webhook {kind} failed{why}")
        tracebacks = []
        for log_path in (web_log, out / "worker.log"):
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            for chunk in text.split("Traceback (most recent call last)")[1:]:
                last = next(
                    (ln for ln in chunk.splitlines() if re.match(r"^\w[\w.]*(Error|Exception|Closed|Timeout)\b", ln)),
                    "",
                )
                tracebacks.append(f"{log_path.name}: {last.strip()[:160]}")
        for what, n in Counter(tracebacks).items():
            problems.append(f"{n} tracebacks in {what}")

    pages = results["pages"]
    seconds = {"steady": float(args.steady_seconds), "spike": float(args.spike_seconds)}
    visits = results["visits"]
    total = pages.get("Aggregated", {"requests": 0, "failures": 0, "rps": 0.0})
    print()
    print(page_table(pages))
    print()
    print(phase_table(results["times"], seconds))
    print()
    paid_in = {ph: sum(1 for p in paid if p.get("phase") == ph and p["payment"]) for ph in ("steady", "spike", "drain")}
    steady_rate = sum(map(len, results["times"].get("steady", {}).values())) / seconds["steady"]
    spike_rate = sum(map(len, results["times"].get("spike", {}).values())) / seconds["spike"]
    print(
        f"ran {ran:.0f} s: {total['requests']} requests ({total['rps']:.1f}/s), {total['failures']} failures; "
        f"steady {steady_rate:.1f} req/s and {visits.get('steady', 0) / seconds['steady']:.2f} visits/s, "
        f"spike {spike_rate:.1f} req/s and {visits.get('spike', 0) / seconds['spike']:.2f} visits/s "
        f"({spike_rate / steady_rate if steady_rate else 0:.1f}x the requests of the steady phase)"
    )
    print(
        f"card payments: {paid_in['steady']} in the steady phase, {paid_in['spike']} in the spike, "
        f"{paid_in['drain']} after it"
    )
    print(f"status codes seen by locust: {dict(sorted(results['status'].items()))}")
    retries = results.get("stand_in_retries", [])
    print(f"connections to localstripe dropped and tried again: {len(retries)} {sorted(set(retries))[:3]}")
    for what, n in sorted(results["failures"].items()):
        print(f"  failure x{n}: {what[:160]}")
    print(
        f"server errors (5xx): {sum(server_errors.values())}; "
        f"webhooks delivered {webhook_ok}, failed {len(webhook_failed)}; "
        f"tracebacks in the portal's and worker's logs: {len(tracebacks)}"
    )
    all_visits = sum(visits.values())
    print(
        "CPU seconds used while locust ran: "
        + ", ".join(f"{name} {sec:.1f}" for name, sec in cpu.items())
        + (
            f"; the portal's web processes {cpu.get('web', 0) / all_visits:.2f} s a resident visit"
            if all_visits
            else ""
        )
        + f" ({all_visits} visits)"
    )
    for k, v in found.figures.items():
        print(f"  {k}: {v}")
    print(f"  webhook events by outcome: {outcomes}")
    print(f"charged or posted twice, or charged and not posted: {len(found.problems)}")
    print(f"portal ledger check: {ledger_line}")
    print(f"the portal's database connections, the most seen at once (every 2 s) by state: {dict(connections)}")
    for query, n in idle_after.most_common(3):
        print(f"  idle in a transaction after: {query}  ({n} samples)")
    print(f"load average: before {before}; peak during the run {max(load_during, default=0):.2f}; after {loadavg()}")
    print(f"CSVs and logs in {out}")
    if problems:
        print("\nPROBLEMS:")
        for problem in problems[:50]:
            print(f"  {problem}")
        return 1
    print("\nOK: no server error, nothing charged or posted twice, ledger ok")
    return 0


def cpu_seconds(group: int) -> float:
    """User + system CPU of every process in the process group ``group`` (a Procfile line
    and whatever workers it forks), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def stop_all(procs: list[tuple[str, subprocess.Popen]]) -> None:
    for _name, proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for _name, proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    raise SystemExit(main())
