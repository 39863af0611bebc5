"""The backup and restore drill of docs/operations.md (issue 17: ops): ``pg_dump -Fc`` of a
district with money moving, ``pg_restore`` into a fresh database, ``portal migrate`` (nothing
to do) and ``portal ledger check`` there: ``ledger ok``, every balance as in the source; and
the files folder through ``tar``. PostgreSQL only."""

from __future__ import annotations

import glob
import shutil
import subprocess
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import make_engine, transaction
from portal.billing_core import ledger, posting
from portal.billing_core.models import Payment
from portal.cli import main
from tests.conftest import _null_pool, _pg_admin, _pg_url

from .factories import district

D = date(2026, 3, 1)


def _tool(name: str) -> str:
    """The newest PostgreSQL's own binary (as scripts/test finds initdb), else the one on PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return path


def _money_moves(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        accounts = district(s, 3)
        for n, acct in enumerate(accounts):
            bill = posting.post(
                s,
                ledger.bill_transaction(acct.id, D, D + timedelta(days=21), {"water": 5_000 + n, "sewer": 3_000}),
                acct.id,
            )
            paid = 7_000 + 100 * n
            txn = posting.post(
                s, ledger.payment_transaction(acct.id, D, paid, "counter", posting.open_by_service(s, acct.id)), acct.id
            )
            s.add(
                Payment(
                    account_id=acct.id,
                    amount_cents=paid,
                    channel="counter",
                    method="check",
                    received_on=D,
                    check_number=f"10{n}",
                    status="posted",
                    ledger_transaction_id=txn.id,
                )
            )
            if n == 2:
                posting.reverse(s, bill.id, D + timedelta(days=2), "billing error")


BALANCES = text(
    "SELECT coalesce(account_id, 0), gl_account, sum(amount_cents) FROM ledger_entry GROUP BY 1, 2 ORDER BY 1, 2"
)


def _figures(engine: Engine) -> tuple[list[tuple[int, str, int]], int]:
    with engine.connect() as conn:
        balances = [tuple(row) for row in conn.execute(BALANCES)]
        payments = conn.execute(text("SELECT count(*) FROM payment")).scalar_one()
    return balances, payments  # type: ignore[return-value]


def test_a_dump_restored_into_a_fresh_database_checks_clean(
    engine: Engine,
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("pg_dump and pg_restore are PostgreSQL's; a SQLite database is backed up as a file copy")
    _money_moves(sessions)
    source = engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    dump = tmp_path / "portal.dump"
    subprocess.run([_tool("pg_dump"), "-Fc", "--no-owner", "-f", str(dump), source], check=True, timeout=60)

    restored = f"portal_restore_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{restored}"')
        admin.execute(f'ALTER DATABASE "{restored}" SET jit = off')  # as tests/conftest.py does: small tables
    target = make_engine(_pg_url(restored), poolclass=_null_pool())
    try:
        subprocess.run(
            [
                _tool("pg_restore"),
                "--no-owner",
                "--single-transaction",  # all or nothing (and one commit, not one per statement)
                "--exit-on-error",
                "-d",
                _pg_url(restored).replace("+psycopg", ""),
                str(dump),
            ],
            check=True,
            timeout=60,
        )
        monkeypatch.setenv("DATABASE_URL", _pg_url(restored))
        capsys.readouterr()
        assert main(["migrate"]) == 0  # the dump's schema is the newest: nothing to do
        assert main(["ledger", "check"]) == 0
        assert capsys.readouterr().out.splitlines()[-1] == "ledger ok"
        balances, payments = _figures(target)
        assert (balances, payments) == _figures(engine)
        assert payments == 3 and any(amount != 0 for _, _, amount in balances)
    finally:
        target.dispose()
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


def test_the_files_folder_comes_back_from_its_tar(tmp_path: Path) -> None:
    files = tmp_path / "files"
    (files / "print" / "run-1").mkdir(parents=True)
    (files / "print" / "run-1" / "part-1.pdf").write_bytes(b"%PDF-1.7 bills\n")
    (files / "cases" / "7").mkdir(parents=True)
    (files / "cases" / "7" / "photo.jpg").write_bytes(bytes(range(256)))
    archive = tmp_path / "files.tar.gz"
    subprocess.run(["tar", "-C", str(files), "-czf", str(archive), "."], check=True, timeout=30)
    back = tmp_path / "restored-files"
    back.mkdir()
    subprocess.run(["tar", "-C", str(back), "-xzf", str(archive)], check=True, timeout=30)
    got = {p.relative_to(back): p.read_bytes() for p in back.rglob("*") if p.is_file()}
    assert got == {p.relative_to(files): p.read_bytes() for p in files.rglob("*") if p.is_file()} and len(got) == 2
