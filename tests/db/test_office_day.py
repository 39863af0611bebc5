"""Issue 14's "Done when": a day at the office, run through ``portal ...`` as the staff would.

Drawers opened and balanced, counter, mail and lockbox payments posted, a returned check
handled, an adjustment approved, a deposit refunded at a final bill, and ``portal ledger
check`` says ``ledger ok`` afterwards. Mail batches have no command: that step calls the
service, as the staff page does."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import deposits, posting, users
from portal.billing_core.models import (
    Account,
    Adjustment,
    Bill,
    CashDrawer,
    Deposit,
    LedgerTransaction,
    Payment,
    Refund,
    User,
)
from portal.cli import main
from portal.demo import build_demo
from portal.services import batches

PASSWORD = "long enough password"
STAFF = {
    "cashier": "till@example.org",
    "specialist": "keys@example.org",
    "supervisor": "boss@example.org",
    "supervisor2": "boss2@example.org",
}


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def portal(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> str:
    """Run ``portal ARGS``; check its exit code; return what it printed (stdout, then stderr)."""
    got = main(list(args))
    out, err = capsys.readouterr()
    assert got == code, f"portal {' '.join(args)} -> {got}\n{out}{err}"
    return out + err


def mail_batch(sessions: sessionmaker, total: str, checks: list[tuple[str, str, str]]) -> list[Payment]:
    """A specialist keys mailed checks (account, amount, check number) and posts the batch."""
    now = datetime.now(UTC)
    with transaction(sessions) as session:
        specialist = users.user_by_email(session, STAFF["specialist"])
        values = {"label": "Mail", "deposit_date": now.date().isoformat(), "control_total": total}
        batch = batches.create_batch(session, specialist, {**values, "control_count": str(len(checks))}, now)
        for number, amount, check in checks:
            batches.add_item(
                session, specialist, batch.id, {"account_number": number, "amount": amount, "check_number": check}
            )
        return batches.post_batch(session, specialist, batch.id, now).payments


def test_a_day_at_the_office(env: Engine, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    build_demo(env, accounts=12, seed=3, progress=False, today="2026-11-22")
    sessions = sessionmaker(env, expire_on_commit=False)
    with transaction(sessions) as session:
        for key, email in STAFF.items():
            users.create_user(session, email, PASSWORD, key.rstrip("2"), now=datetime.now(UTC))

    def one(query):  # type: ignore[no-untyped-def]
        with sessions() as session:
            return session.scalar(query)

    def balance(number: str) -> int:
        with sessions() as session:
            return posting.account_balance(session, session.scalar(select(Account.id).where(Account.number == number)))

    # 1. The counter: a $100 float, cash and a check, a count $1 short, a supervisor signs off.
    cashier = STAFF["cashier"]
    out = portal(capsys, "drawers", "open", "--name", "Counter 1", "--float", "100.00", "--as", cashier)
    drawer = one(select(CashDrawer))
    assert out == f"drawer {drawer.id} (Counter 1) open with a float of 100.00\n"
    before = balance("00000018")
    out = portal(capsys, "payments", "take", "--account", "00000018", "--amount", "100.00", "--tender", "cash",
                 "--tendered", "120.00", "--as", cashier)  # fmt: skip
    assert out.startswith("receipt ") and out.endswith(": change due 20.00\n")
    assert balance("00000018") == before - 10_000
    out = portal(capsys, "payments", "take", "--account", "00000026", "--amount", "50.00", "--tender", "check",
                 "--check-number", "1001", "--bank", "First County", "--as", cashier)  # fmt: skip
    assert out.startswith("receipt ")
    counter_check = one(select(Payment).where(Payment.drawer_id == drawer.id, Payment.method == "check"))
    assert (counter_check.amount_cents, counter_check.check_number) == (5_000, "1001")
    # $199 counted against $200 expected (the float and the cash payment).
    count = tmp_path / "count.json"
    cash = {"10000": 1, "5000": 1, "2000": 2, "500": 1, "100": 4}
    count.write_text(json.dumps({"cash": cash, "checks": [{"number": "1001", "amount": "50.00"}]}))
    close = ["drawers", "close", str(drawer.id), "--count-file", str(count), "--as", cashier]
    assert "say why" in portal(capsys, *close, code=2)
    out = portal(capsys, *close, "--reason", "a dollar short")
    assert out == f"drawer {drawer.id} closed: over/short cash -1.00, checks 0.00, card 0.00\n"
    sign_off = ["drawers", "sign-off", str(drawer.id), "--note", "counted again"]
    assert "Only a billing supervisor signs off" in portal(capsys, *sign_off, "--as", cashier, code=2)
    assert portal(capsys, *sign_off, "--as", STAFF["supervisor"]) == f"drawer {drawer.id} signed off\n"
    drawer = one(select(CashDrawer))
    assert (drawer.status, drawer.over_short["cash_cents"]) == ("signed_off", -100)
    assert drawer.ledger_transaction_id is not None  # the short is posted
    report = portal(capsys, "reports", "deposit", "--on", drawer.business_date.isoformat())
    assert "Counter 1" in report and "a dollar short" in report

    # 2. The mail: two checks whose total matches the batch's, posted all at once.
    mailed = mail_batch(sessions, "261.50", [("00000075", "141.27", "2001"), ("00000117", "120.23", "2002")])
    assert [(p.channel, p.amount_cents, p.status) for p in mailed] == [
        ("mail", 14_127, "posted"),
        ("mail", 12_023, "posted"),
    ]
    assert balance("00000075") == balance("00000117") == 0

    # 3. The lockbox file, twice: the second time adds nothing.
    lockbox = tmp_path / "lockbox.csv"
    with lockbox.open("w", newline="") as f:
        rows = [("LB-1", "00000034", "147.38", "5001"), ("LB-2", "00000125", "60.00", "5002")]
        writer = csv.writer(f)
        writer.writerow(["Reference", "Account", "ScanLine", "Amount", "CheckNumber", "DepositDate"])
        writer.writerows([(ref, acct, "", amount, check, "2026-11-23") for ref, acct, amount, check in rows])
    specialist = STAFF["specialist"]
    load = ["payments", "import", str(lockbox), "--format", "csv", "--layout", "standard", "--as", specialist]
    assert portal(capsys, *load) == f"{lockbox}: 2 matched / 0 duplicate / 0 unmatched / 0 rejected\n"
    out = portal(capsys, *load)
    assert "was already imported" in out and "0 matched / 2 duplicate" in out
    with sessions() as session:
        lockboxed = session.scalars(select(Payment).where(Payment.channel == "lockbox")).all()
    assert sorted((p.bank_reference, p.amount_cents) for p in lockboxed) == [("LB-1", 14_738), ("LB-2", 6_000)]
    assert balance("00000034") == 0

    # 4. The counter check comes back NSF: reversed, the fee charged.
    before = balance("00000026")
    out = portal(capsys, "payments", "return", str(counter_check.id), "--reason", "NSF",
                 "--on", counter_check.received_on.isoformat(), "--as", specialist)  # fmt: skip
    assert f"Payment {counter_check.id} of account 00000026 returned (NSF)" in out and "fee $25.00" in out
    assert balance("00000026") == before + 5_000 + 2_500
    returned = one(select(Payment).where(Payment.id == counter_check.id))
    assert returned.return_code == "NSF" and returned.return_fee_transaction_id is not None
    assert one(select(LedgerTransaction).where(LedgerTransaction.reverses_id == returned.ledger_transaction_id))

    # 5. A $250 credit, above the specialist's limit, waits; a supervisor (not the preparer) approves it.
    before = balance("00000091")
    out = portal(capsys, "adjustments", "prepare", "--account", "00000091", "--service", "water",
                 "--amount", "-250.00", "--reason", "meter_error", "--as", specialist)  # fmt: skip
    adjustment = one(select(Adjustment))
    assert out.endswith(f"Adjustment {adjustment.id}: credit $250.00 on water ($250.00), waiting for approval.\n")
    assert balance("00000091") == before
    assert "Only a billing supervisor" in portal(capsys, "adjustments", "approve", str(adjustment.id),
                                                 "--as", specialist, code=2)  # fmt: skip
    out = portal(capsys, "adjustments", "approve", str(adjustment.id), "--as", STAFF["supervisor"])
    assert out.endswith("posted.\n") and balance("00000091") == before - 25_000
    adjustment = one(select(Adjustment))
    assert adjustment.decided_by_id == one(select(User.id).where(User.email == STAFF["supervisor"]))

    # 6. A deposit billed and paid; service stops, the final bill takes the deposit, the rest is refunded.
    out = portal(capsys, "deposits", "bill", "--account", "00000042", "--amount", "150.00",
                 "--reason", "new_customer", "--as", specialist)  # fmt: skip
    deposit = one(select(Deposit))
    assert out == f"Deposit {deposit.id} billed on account 00000042.\n" and balance("00000042") == 15_000
    mail_batch(sessions, "150.00", [("00000042", "150.00", "3001")])
    with sessions() as session:
        assert deposits.held_cents(session, deposit.account_id) == 15_000 and balance("00000042") == 0
    out = portal(capsys, "account", "stop", "00000042", "--on", "2026-11-30", "--read", "M1000004=47680",
                 "--as", specialist)  # fmt: skip
    final = one(select(Bill).where(Bill.account_id == deposit.account_id).order_by(Bill.id.desc()))
    assert f"Account 00000042 is final from 2026-11-30. Final bill {final.number}" in out
    assert one(select(Deposit.status)) == "applied"
    refund = one(select(Refund))
    left = 15_000 - final.current_charges_cents
    assert 0 < left and (refund.account_id, refund.amount_cents) == (deposit.account_id, left)
    assert (refund.status, refund.method) == ("requested", "check") and balance("00000042") == -left
    assert portal(capsys, "refunds", "approve", str(refund.id), "--as", STAFF["supervisor2"]) == (
        f"Refund {refund.id} approved.\n"
    )
    register = tmp_path / "checks.csv"
    out = portal(capsys, "refunds", "export-checks", str(register), "--as", specialist)
    assert out == f"1 check refunds in {register}.\n"
    [row] = list(csv.DictReader(register.read_text().splitlines()))
    assert (row["account"], row["amount"]) == ("00000042", f"{left // 100}.{left % 100:02d}")
    assert one(select(Refund.status)) == "paid" and balance("00000042") == 0

    # 7. The whole ledger checks out.
    assert portal(capsys, "ledger", "check") == "ledger ok\n"
