"""Mail batches and bank/lockbox files in the money state machine (see ../money_machine.py)."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sqlalchemy import func, select

from portal.adapters.database import transaction
from portal.billing_core.models import Account, Payment, PaymentBatch, PaymentImportRow
from portal.billing_core.numbers import scan_line
from portal.services import batches, lockbox

from ..money_machine import after_writes

amounts = st.integers(min_value=1, max_value=30_000)


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class BatchRules:
    """Key and post mail batches (sometimes with a wrong control total), import lockbox files
    (sometimes repeating a file or a bank reference), and resolve the unmatched queue."""

    @rule(
        items=st.lists(st.tuples(st.integers(0, 2), amounts, st.booleans()), min_size=1, max_size=4),
        off=st.sampled_from([0, 0, 0, 1, -1]),
    )
    def mail_batch(self, items: list[tuple[int, int, bool]], off: int) -> None:
        who = self.staff["specialist"]  # type: ignore[attr-defined]
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            # A cash-only account's check is refused when keyed (tests/db/test_batches.py): leave them out.
            items = [i for i in items if not session.get_one(Account, self.accounts[i[0]]).cash_only]  # type: ignore[attr-defined]
            if not items:
                return
            total = sum(c for _a, c, _s in items) + off
            batch = self.expect_refused(  # type: ignore[attr-defined]
                lambda: batches.create_batch(
                    session,
                    who,
                    {"deposit_date": self.today.isoformat(), "control_total": _dollars(total)},
                    self.now,  # type: ignore[attr-defined]
                )
            )
            if batch is None:
                return
            for account, cents, by_scan in items:
                number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]
                values = (
                    {"scan_line": scan_line(number, cents), "amount": _dollars(cents)}
                    if by_scan
                    else {"account_number": number, "amount": _dollars(cents), "check_number": "100"}
                )
                batches.add_item(session, who, batch.id, values)
            posted = self.expect_refused(lambda: batches.post_batch(session, who, batch.id, self.now))  # type: ignore[attr-defined]
            assert (posted is not None) == (off == 0)

    @rule(
        rows=st.lists(st.tuples(st.integers(0, 3), amounts, st.integers(0, 5)), min_size=1, max_size=5),
        repeat=st.booleans(),
    )
    def lockbox_file(self, rows: list[tuple[int, int, int]], repeat: bool) -> None:
        lines = ["Reference,Account,ScanLine,Amount,CheckNumber,DepositDate"]
        for account, cents, ref in rows:
            number = self.numbers[self.accounts[account]] if account < 3 else "00000000"  # type: ignore[attr-defined]
            lines.append(f"REF{ref},{number},,{_dollars(cents)},{ref},{self.today.isoformat()}")  # type: ignore[attr-defined]
        content = ("\n".join(lines) + "\n").encode()
        who = self.staff["specialist"]  # type: ignore[attr-defined]
        for _time in range(2 if repeat else 1):
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                before = session.scalar(select(func.count()).select_from(Payment))
                report = self.expect_refused(  # type: ignore[attr-defined]
                    lambda: lockbox.import_file(
                        session,
                        who,
                        content,
                        "box.csv",
                        "csv",
                        None,
                        today=self.today,
                        now=self.now,  # type: ignore[attr-defined]
                    )
                )
                after = session.scalar(select(func.count()).select_from(Payment))
                if report is not None:
                    assert after - before == report.matched
                    if report.already_imported_at is not None:
                        assert report.matched == 0

    @rule(account=st.integers(0, 2), assign=st.booleans())
    def resolve_queue(self, account: int, assign: bool) -> None:
        who = self.staff["specialist"]  # type: ignore[attr-defined]
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            waiting = lockbox.queue(session, limit=1)
            if not waiting:
                return
            row = waiting[0]
            if assign:
                number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]
                lockbox.assign(session, who, row.id, number, "", self.now)  # type: ignore[attr-defined]
            else:
                lockbox.mark_returned(session, who, row.id, "unknown payer", self.now)  # type: ignore[attr-defined]

    @after_writes
    def each_bank_reference_is_paid_once_and_open_batches_hold_no_payments(self) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            paid = session.scalar(select(func.count()).select_from(Payment).where(Payment.channel == "lockbox"))
            rows = session.scalar(
                select(func.count())
                .select_from(PaymentImportRow)
                .where((PaymentImportRow.outcome == "matched") | (PaymentImportRow.resolution == "assigned"))
            )
            assert paid == rows
            in_open = session.scalar(
                select(func.count())
                .select_from(Payment)
                .join(PaymentBatch, PaymentBatch.id == Payment.batch_id)
                .where(PaymentBatch.status == "open")
            )
            assert in_open == 0
