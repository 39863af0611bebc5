"""Bank and lockbox files: matched, duplicate, unmatched, rejected; the same file or bank
reference twice adds nothing; the queue's assign and return; a malformed file writes nothing."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, posting, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import Payment, PaymentImport, PaymentImportRow
from portal.billing_core.numbers import scan_line
from portal.services import lockbox

from .factories import district

NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)
TODAY = date(2026, 11, 20)
D = date(2026, 10, 1)


def _setup(session: Session):  # type: ignore[no-untyped-def]
    accts = district(session, 3)
    for a in accts:
        posting.post(
            session, ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 4000, "sewer": 2000}), a.id
        )
    staff = users.create_user(session, "spec@example.org", "long enough password", "specialist", now=NOW)
    session.flush()
    return accts, staff


def _csv(lines: list[str]) -> bytes:
    return ("Reference,Account,ScanLine,Amount,CheckNumber,DepositDate\n" + "\n".join(lines) + "\n").encode()


def _count(session: Session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_a_file_is_matched_and_posted_and_the_same_file_or_reference_again_adds_nothing(session: Session) -> None:
    (a, b, c), staff = _setup(session)
    content = _csv(
        [
            f"R1,,{scan_line(a.number, 6000)},60.00,101,2026-11-19",
            f"R2,{b.number},,75.00,102,2026-11-19",  # 15.00 beyond what b owes: credit
            "R3,00000000,,10.00,103,2026-11-19",  # no such account (Luhn-valid 00000000)
            f"R4,{c.number},,12.345,104,2026-11-19",  # fractional cents
            f"R1,{c.number},,60.00,105,2026-11-19",  # the same bank reference twice in one file
        ]
    )
    report = lockbox.import_file(session, staff, content, "box.csv", "csv", None, today=TODAY, now=NOW)
    assert (report.matched, report.duplicate, report.unmatched, report.rejected) == (2, 1, 1, 1)
    assert posting.account_balance(session, a.id) == 0
    assert posting.account_balance(session, b.id) == -1500
    pb = session.scalar(select(Payment).where(Payment.bank_reference == "R2"))
    assert pb is not None and (pb.channel, pb.method, pb.check_number, pb.overpaid_cents) == (
        "lockbox",
        "check",
        "102",
        1500,
    )
    assert pb.batch_id is not None and pb.status == "posted" and pb.ledger_transaction_id
    assert ledger_check.run(session) == []
    before = (_count(session, Payment), _count(session, PaymentImportRow), posting.account_balance(session, b.id))

    again = lockbox.import_file(session, staff, content, "box-again.csv", "csv", None, today=TODAY, now=NOW)
    assert again.already_imported_at is not None and again.matched == 0
    assert (
        _count(session, Payment),
        _count(session, PaymentImportRow),
        posting.account_balance(session, b.id),
    ) == before

    # A new file that repeats bank references already seen (matched R2, unmatched R3) adds nothing for them.
    other = _csv(
        [f"R2,{b.number},,75.00,102,2026-11-19", "R3,00000000,,10.00,103,2026-11-19", f"R9,{c.number},,5.00,,"]
    )
    third = lockbox.import_file(session, staff, other, "box2.csv", "csv", None, today=TODAY, now=NOW)
    assert (third.matched, third.duplicate, third.unmatched, third.rejected) == (1, 2, 0, 0)
    assert posting.account_balance(session, b.id) == -1500
    assert _count(session, PaymentImport) == 2
    assert ledger_check.run(session) == []


def test_unmatched_rows_wait_to_be_assigned_or_returned(session: Session) -> None:
    (a, b, _c), staff = _setup(session)
    content = _csv(["Q1,00000000,,20.00,1,2026-11-19", "Q2,,1234 5678 9,30.00,2,2026-11-19"])
    report = lockbox.import_file(session, staff, content, "q.csv", "csv", None, today=TODAY, now=NOW)
    assert report.unmatched == 2
    first, second = lockbox.queue(session)
    assert "scan line" in (second.reason or "")
    with pytest.raises(FieldErrors) as bad:
        lockbox.assign(session, staff, first.id, "12345670", "", NOW)
    assert "account_number" in bad.value.errors
    payment = lockbox.assign(session, staff, first.id, a.number, "phoned the customer", NOW)
    assert payment.status == "posted" and payment.bank_reference == "Q1"
    assert posting.account_balance(session, a.id) == 4000
    with pytest.raises(FieldErrors):
        lockbox.mark_returned(session, staff, second.id, "  ", NOW)
    lockbox.mark_returned(session, staff, second.id, "no stub, no account", NOW)
    assert lockbox.queue(session) == []
    assert ledger_check.run(session) == []
    text = lockbox.report_csv(session, report.import_id or 0)
    assert "assigned" in text and "returned" in text and text.startswith("line,bank_reference")


BAI2 = """01,BANK,DISTRICT,261120,0800,1,80,,2/
02,DISTRICT,BANK,1,261119,0800,USD,2/
03,123456789,USD,,,,/
16,115,6000,Z,B1,{scan},CHECK 501/
16,115,2500,Z,B2,{number},/
16,475,100,Z,B3,,/
49,8600,5/
98,8600,1,7/
99,8600,1,9/
"""


def test_bai2_file(session: Session) -> None:
    (a, b, _c), staff = _setup(session)
    content = BAI2.format(scan=scan_line(a.number, 6000), number=b.number).encode()
    report = lockbox.import_file(session, staff, content, "day.bai", "bai2", None, today=TODAY, now=NOW)
    assert (report.matched, report.duplicate, report.unmatched, report.rejected) == (2, 0, 0, 1)
    p = session.scalar(select(Payment).where(Payment.bank_reference == "B1"))
    assert p is not None and p.check_number == "501" and p.received_on == date(2026, 11, 19)
    assert ledger_check.run(session) == []


def test_a_malformed_bai2_file_is_refused_whole(session: Session) -> None:
    (a, b, _c), staff = _setup(session)
    good = BAI2.format(scan=scan_line(a.number, 6000), number=b.number)
    for bad in (good.replace("49,8600,5/", "49,9999,5/"), good.replace("99,8600,1,9/", ""), "hello\n"):
        with pytest.raises(FieldErrors) as exc:
            lockbox.import_file(session, staff, bad.encode(), "bad.bai", "bai2", None, today=TODAY, now=NOW)
        assert "Nothing was imported" in exc.value.errors["file"].message
    assert _count(session, Payment) == 0 and _count(session, PaymentImport) == 0


def test_only_staff_allowed_import(session: Session) -> None:
    _accts, _staff = _setup(session)
    cashier = users.create_user(session, "cash@example.org", "long enough password", "cashier", now=NOW)
    with pytest.raises(NotAllowed):
        lockbox.import_file(session, cashier, b"x", "x.csv", "csv", None, today=TODAY, now=NOW)


def test_the_command_prints_the_counts_and_refuses_a_malformed_file(
    engine, monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from portal.cli import main

    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    with Session(engine) as s, s.begin():
        (a, b, _c), _staff = _setup(s)
        numbers = (a.number, b.number)
    path = tmp_path / "box.csv"
    path.write_bytes(_csv([f"C1,{numbers[0]},,60.00,1,2026-11-19", "C2,00000000,,1.00,2,2026-11-19", "C3,,,1.001,,"]))
    assert main(["payments", "import", str(path), "--format", "csv", "--as", "spec@example.org"]) == 0
    assert "1 matched / 0 duplicate / 1 unmatched / 1 rejected" in capsys.readouterr().out
    assert main(["payments", "import", str(path), "--format", "csv", "--as", "spec@example.org"]) == 0
    out = capsys.readouterr().out
    assert "already imported" in out and "0 matched / 3 duplicate" in out
    bad = tmp_path / "bad.bai"
    bad.write_text("01,BANK,X,261120,0800,1,80,,2/\n99,1,1,2/\n")
    assert main(["payments", "import", str(bad), "--format", "bai2", "--as", "spec@example.org"]) == 1
    assert "Nothing was imported" in capsys.readouterr().err
