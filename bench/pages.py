"""Pages against the framework's own speed: the portal served as the Procfile's ``web:`` line
serves it, beside a bare Starlette app rendering a Jinja table of 24 rows, in the same run, on
a 100,000-account district on PostgreSQL.

    .venv/bin/python bench/pages.py --database postgresql://postgres@127.0.0.1/bench_pages \
        [--keep] [--seconds 10] [--rates 100,1000]

1. The district is ``bench/staff_account.py``'s (``--keep`` reuses one built before; it takes
   about a minute): 100,000 accounts with four monthly bills each, a meter with 24 reads, and
   twenty more years of bills and payments on one account in a hundred. ``--residents``
   customer sign-ins (one shared argon2 hash) are linked to an account each, one in ten of
   them a long-history account, and signed in once through the portal's own sign-in form.
2. **Capacity, one process each** (the ratio): the bare app (``bench/bare_app.py``) and then
   the portal, each as one uvicorn process (the Procfile's line with ``WEB_CONCURRENCY=1``),
   are driven by ``wrk`` (closed loop, ``--connections`` connections, one client thread) for
   ``--seconds`` per page, each request a different resident or account. It prints requests
   per second and wrk's p50/p99, and the ratio portal / bare.
3. **Latency at an offered rate, the Procfile's processes** (``WEB_CONCURRENCY`` unset: one
   web process per core): an open-loop client (this script, asyncio, keep-alive connections)
   sends requests on a fixed schedule of ``--rates`` per second for ``--seconds`` and times
   each from when it was *due* to be sent, so a server that falls behind shows its queue in the
   figures (no coordinated omission). It prints achieved rate, p50/p95/p99 and max.

Every response must be a 200 with the page's own heading; any other counts as an error and
the script exits 1. The portal's CPU and PostgreSQL's are printed beside (from /proc). Only
127.0.0.1. Needs ``wrk`` (Debian package ``wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import delinquency, staff_account  # noqa: E402
from bench.load.run import cpu_seconds, procfile_command, stop_all, wait_up  # noqa: E402
from portal.billing_core.users import hash_password  # noqa: E402
from portal.settings import normalise_database_url  # noqa: E402

RESIDENT_PASSWORD = "bench-resident-1234"
SECRET = "bench-pages-secret-key-not-for-production"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- The district's sign-ins ----------------------------------------------------------------


def add_residents(url: str, count: int, seed: int = 11) -> list[tuple[str, str]]:
    """``count`` resident sign-ins ``resident<i>@bench.example``, each linked to one account
    (one in ten an account with the long history): (email, account number). Made again each
    run, the same for the same seed."""
    rng = random.Random(seed)
    shared = hash_password(RESIDENT_PASSWORD)
    with psycopg.connect(plain(url)) as conn:
        cur = conn.cursor()
        total = cur.execute("SELECT max(id) FROM account").fetchone()[0]
        cur.execute(
            "DELETE FROM user_account_link WHERE user_id IN "
            "(SELECT id FROM user_account WHERE email LIKE 'resident%%@bench.example')"
        )
        for table, column in (("audit_event", "actor_id"), ("user_session", "user_id")):
            cur.execute(
                f"DELETE FROM {table} WHERE {column} IN "
                "(SELECT id FROM user_account WHERE email LIKE 'resident%%@bench.example')"
            )
        cur.execute("DELETE FROM user_account WHERE email LIKE 'resident%%@bench.example'")
        made = []
        for i in range(count):
            if i % 10 == 9:
                account_id = rng.randrange(staff_account.LONG_EVERY, total + 1, staff_account.LONG_EVERY)
            else:
                account_id = rng.randrange(1, total + 1)
            email = f"resident{i}@bench.example"
            user_id = cur.execute(
                "INSERT INTO user_account (email, password_hash, role, active, created_at, email_verified_at, "
                "language, notify_receipts, notify_updates) VALUES (%s, %s, 'customer', true, now(), now(), 'en', "
                "true, true) RETURNING id",
                (email, shared),
            ).fetchone()[0]
            cur.execute(
                "INSERT INTO user_account_link (user_id, account_id, linked_at) VALUES (%s, %s, now())",
                (user_id, account_id),
            )
            number = cur.execute("SELECT number FROM account WHERE id = %s", (account_id,)).fetchone()[0]
            made.append((email, number))
        conn.commit()
    return made


def sign_in(base: str, email: str, password: str) -> str:
    """The ``portal_session`` cookie of a fresh sign-in (taken from the header: it is marked
    Secure, and this is plain HTTP on loopback)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/sign-in")
        token = CSRF.search(page.text)
        if token is None:
            raise SystemExit("no CSRF token on /sign-in")
        cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
        response = client.post(
            "/sign-in",
            data={"email": email, "password": password, "csrf_token": token.group(1), "next": ""},
            headers={"cookie": cookie},
            follow_redirects=False,
        )
        if response.status_code != 303:
            raise SystemExit(f"sign-in as {email}: {response.status_code}")
        for header in response.headers.get_list("set-cookie"):
            if header.startswith("portal_session="):
                return header.split(";", 1)[0]
    raise SystemExit(f"sign-in as {email}: no session cookie")


# --- Servers --------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    base: str
    log: Path

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


def start(name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path, ready: str) -> Server:
    log = log_dir / f"{name}.log"
    proc = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    wait_up(base + ready, proc, log)
    return Server(name, proc, base, log)


def portal_env(url: str, port: int, processes: int | None, metrics_dir: Path) -> dict[str, str]:
    # Nothing of this shell's portal settings but the web threads (to compare settings).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTAL_", "STRIPE_")) or k == "PORTAL_WEB_THREADS"}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY=SECRET,
        PORT=str(port),
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    env.pop("WEB_CONCURRENCY", None)
    if processes is not None:
        env["WEB_CONCURRENCY"] = str(processes)
    return env


def postgres_cpu() -> float:
    """CPU seconds of every postgres process on this machine so far."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(") ")
        if name.endswith("(postgres"):
            fields = rest.split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# --- Requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One page: the requests to rotate over (path, cookie header) and a string every good
    response holds."""

    name: str
    requests: list[tuple[str, str]]
    marker: str


def check(base: str, target: Target) -> None:
    for path, cookie in target.requests[:20]:
        r = httpx.get(base + path, headers={"cookie": cookie} if cookie else {}, timeout=30)
        if r.status_code != 200 or target.marker not in r.text:
            raise SystemExit(f"{target.name}: {path} gave {r.status_code} without {target.marker!r}")


WRK_SCRIPT = """
local requests = {}
local i = 0
init = function(args)
  local f = io.open(args[1])
  for line in f:lines() do
    local path, cookie = line:match("^(%S+)\\t?(.*)$")
    local headers = {}
    if cookie ~= "" then headers["Cookie"] = cookie end
    requests[#requests + 1] = wrk.format("GET", path, headers)
  end
  f:close()
end
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


@dataclass
class Capacity:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float
    db_cpu: float
    seconds: float


def wrk(server: Server, target: Target, seconds: int, connections: int, work: Path) -> Capacity:
    """Closed loop: ``connections`` connections, each sending its next request as soon as
    the last is answered, one client thread."""
    listing = work / f"{target.name.replace(' ', '_')}.txt"
    listing.write_text("".join(f"{path}\t{cookie}\n" for path, cookie in target.requests))
    script = work / "rotate.lua"
    script.write_text(WRK_SCRIPT)
    cpu0, db0, t0 = server.cpu(), postgres_cpu(), time.monotonic()
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            server.base,
            "--",
            str(listing),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.monotonic() - t0
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    # No Lua response() (it would make wrk hand every body to Lua): wrk counts the rest.
    other = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(other.group(1)) if other else 0
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        print(f"    wrk socket errors: {socket_errors.group(1)}")
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Capacity(rate, pct("50"), pct("99"), errors, server.cpu() - cpu0, postgres_cpu() - db0, elapsed)


@dataclass
class Offered:
    offered: int
    sent: int
    achieved: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    server_cpu: float
    db_cpu: float
    seconds: float
    unanswered: int


async def _open_loop(
    host: str, port: int, target: Target, rate: int, seconds: int, limit: int, drain: float = 10.0
) -> tuple[list[float], int, float]:
    """Send ``rate`` requests a second on a fixed schedule over up to ``limit`` keep-alive
    connections; each latency runs from the request's due time to its response's last byte."""
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0
    latencies: list[float] = []
    errors = 0
    marker = target.marker.encode()
    requests = [
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n"
        ).encode()
        for path, cookie in target.requests
    ]
    loop = asyncio.get_running_loop()

    writers: list[asyncio.StreamWriter] = []

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal opened
        if idle.empty() and opened < limit:
            opened += 1
            conn = await asyncio.open_connection(host, port)
            writers.append(conn[1])
            return conn
        return await idle.get()

    async def one(i: int, due: float) -> None:
        nonlocal errors
        conn = await connection()
        reader, writer = conn
        try:
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            body = await reader.readexactly(length)
            latencies.append((loop.time() - due) * 1000)
            if status != 200 or marker not in body:
                errors += 1
            idle.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, AttributeError):
            errors += 1
            writer.close()
            nonlocal opened
            opened -= 1

    start = loop.time() + 0.05
    tasks = []
    total = rate * seconds
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    # A server that cannot keep up would take minutes to answer the queue: what is not
    # answered within ``drain`` seconds of the last send counts as that slow (and is cut off).
    _done, late = await asyncio.wait(tasks, timeout=drain)
    for task in late:
        task.cancel()
    elapsed = loop.time() - start
    latencies.extend([float("inf")] * len(late))
    for writer in writers:
        writer.close()
    return latencies, errors, elapsed


def settle(server: Server, timeout: float = 300) -> None:
    """Wait until the server has worked off what an overloaded run left it (its health check
    answers within 50 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            httpx.get(server.base + "/healthz", timeout=60)
        except httpx.TransportError:
            pass
        if time.monotonic() - t0 < 0.05:
            return
        time.sleep(0.5)
    raise SystemExit(f"{server.name} did not settle within {timeout:.0f} s")


def open_loop(server: Server, target: Target, rate: int, seconds: int) -> Offered:
    port = int(server.base.rsplit(":", 1)[1])
    cpu0, db0 = server.cpu(), postgres_cpu()
    latencies, errors, elapsed = asyncio.run(
        _open_loop("127.0.0.1", port, target, rate, seconds, limit=max(16, rate // 4))
    )
    cpu, db = server.cpu() - cpu0, postgres_cpu() - db0  # before the backlog is worked off
    settle(server)
    answered = [x for x in latencies if x != float("inf")]
    return Offered(
        rate,
        len(latencies),
        len(answered) / elapsed,
        nearest(latencies, 50),
        nearest(latencies, 95),
        nearest(latencies, 99),
        max(latencies, default=0),
        errors,
        cpu,
        db,
        elapsed,
        len(latencies) - len(answered),
    )


def nearest(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least ``p`` percent of them at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    return "unanswered" if value == float("inf") else f"{value:.1f}"


# --- The run --------------------------------------------------------------------------------


def targets(residents: list[tuple[str, str]], cookies: list[str], staff_cookie: str, total: int) -> dict[str, Target]:
    rng = random.Random(5)
    staff_numbers = [f"{rng.randrange(1, total + 1):08d}" for _ in range(500)]
    return {
        "resident account page": Target(
            "resident account page",
            [(f"/my/accounts/{number}", cookie) for (_email, number), cookie in zip(residents, cookies)],
            "status-heading",
        ),
        "resident accounts list": Target(
            "resident accounts list", [("/my", cookie) for cookie in cookies], "/my/accounts/"
        ),
        "staff account view": Target(
            "staff account view",
            [(f"/staff/accounts/{n}", staff_cookie) for n in staff_numbers],
            "Account ",
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL of the district (rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="reuse the district already built")
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=10, help="per page and per rate")
    parser.add_argument("--connections", type=int, default=8, help="wrk's connections (closed loop)")
    parser.add_argument("--rates", default="100,1000", help="offered requests per second, comma-separated")
    parser.add_argument("--pages", default="", help="only these pages (comma-separated names)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    url = normalise_database_url(args.database)
    if not args.keep:
        delinquency.build(url, args.accounts, 0.12)
        staff_account.add_meters_and_history(url, args.accounts)
    residents = add_residents(url, args.residents)
    with psycopg.connect(plain(url), autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM account").fetchone()[0]
        conn.execute("VACUUM ANALYZE user_account, user_account_link")
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    web = procfile_command("web")
    if web is None:
        raise SystemExit("the Procfile has no web: line")
    print(f"Procfile web: {' '.join(web[2:])}")
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        work = Path(tmp)
        # The anchor: one uvicorn process of the bare app, flags as the Procfile's.
        port = free_port()
        bare_cmd = [
            str(Path(sys.executable).parent / "uvicorn"),
            "bench.bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-proxy-headers",
            "--no-access-log",
        ]
        bare = start("bare", bare_cmd, {**os.environ, "PYTHONPATH": str(ROOT)}, port, work, "/")
        bare_target = Target("bare table", [("/", "")], "Bill date")
        try:
            wrk(bare, bare_target, 2, args.connections, work)  # warm-up
            anchor = wrk(bare, bare_target, args.seconds, args.connections, work)
        finally:
            stop_all([("bare", bare.proc)])
        print(
            f"bare Starlette + Jinja table of 24 rows, 1 process: {anchor.rate:,.0f} req/s, "
            f"p50 {anchor.p50_ms:.1f} ms, p99 {anchor.p99_ms:.1f} ms, "
            f"server CPU {anchor.server_cpu / anchor.seconds:.2f} cores"
        )
        results: dict[str, tuple[Capacity, list[Offered]]] = {}
        for processes in (1, None):
            port = free_port()
            metrics_dir = work / f"metrics-{processes}"
            metrics_dir.mkdir()
            env = portal_env(url, port, processes, metrics_dir)
            portal = start("portal", web, env, port, work, "/healthz")
            try:
                if processes == 1:
                    cookies = [sign_in(portal.base, email, RESIDENT_PASSWORD) for email, _ in residents]
                    staff_cookie = sign_in(portal.base, staff_account.EMAIL, staff_account.PASSWORD)
                    pages = targets(residents, cookies, staff_cookie, total)
                    if args.pages:
                        pages = {k: v for k, v in pages.items() if k in args.pages.split(",")}
                for page in pages.values():
                    check(portal.base, page)
                    if processes == 1:
                        wrk(portal, page, 2, args.connections, work)  # warm-up
                        results[page.name] = (wrk(portal, page, args.seconds, args.connections, work), [])
                    else:
                        open_loop(portal, page, rates[0], 2)  # warm-up
                        for rate in rates:
                            results[page.name][1].append(open_loop(portal, page, rate, args.seconds))
            finally:
                stop_all([("portal", portal.proc)])
            if processes is None:
                where = "Procfile's web processes"
            else:
                where = "1 process"
            print(f"portal ({where}) done; log {portal.log.stat().st_size} bytes")
        print()
        print(
            "| page | portal, 1 process | bare Starlette, 1 process | ratio | "
            + " | ".join(f"offered {r}/s: achieved, p50 / p95 / p99" for r in rates)
            + " |"
        )
        print("| --- | --- | --- | --- | " + " | ".join("---" for _ in rates) + " |")
        for name, (cap, offered) in results.items():
            cells = [
                f"{o.achieved:,.0f}/s, {ms(o.p50_ms)} / {ms(o.p95_ms)} / {ms(o.p99_ms)} ms"
                + (f", {o.unanswered:,} not answered within 10 s" if o.unanswered else "")
                + (f", {o.errors} errors" if o.errors else "")
                for o in offered
            ]
            print(
                f"| {name} | {cap.rate:,.0f} req/s, p99 {cap.p99_ms:.1f} ms | {anchor.rate:,.0f} req/s, p99 "
                f"{anchor.p99_ms:.1f} ms | {cap.rate / anchor.rate:.3f} | " + " | ".join(cells) + " |"
            )
            failed |= cap.errors > 0 or any(o.errors for o in offered)
        print()
        for name, (cap, offered) in results.items():
            print(
                f"{name}: 1 process at capacity used {cap.server_cpu / cap.seconds:.2f} cores of portal CPU and "
                f"{cap.db_cpu / cap.seconds:.2f} of PostgreSQL "
                f"({cap.server_cpu / max(cap.rate * cap.seconds, 1) * 1000:.2f} ms portal CPU a page); "
                + "; ".join(
                    f"at {o.offered}/s the web processes used {o.server_cpu / o.seconds:.2f} cores, PostgreSQL "
                    f"{o.db_cpu / o.seconds:.2f}"
                    for o in offered
                )
            )
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 1 if failed else 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(main())
