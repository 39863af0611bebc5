"""A bill says what was true on its bill date, whenever it is opened or printed again."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.billing_core import accounts
from portal.billing_core.models import Account, Bill, User, UserAccountLink


def test_a_bill_opened_later_shows_the_past_due_of_its_own_date(demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        account = s.scalars(
            select(Account)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .join(User, User.id == UserAccountLink.user_id)
            .where(User.email == "pastdue@demo.example")
        ).first()
        bills = s.scalars(
            select(Bill).where(Bill.account_id == account.id, Bill.status == "posted").order_by(Bill.bill_date)
        ).all()
        assert len(bills) >= 4
        for bill in bills[-4:]:
            # What was past due on the bill's own date: never more than the bill's total
            # ("$X of this is past due"), however much more is past due today.
            doc = accounts.bill_document(s, account, bill)
            assert 0 <= doc.past_due_cents <= max(bill.total_due_cents, 0)
        # The batch path (print files) agrees with the single bill.
        docs = accounts.bill_documents(s, [b.id for b in bills[-4:]])
        assert [d.past_due_cents for d in docs] == [
            accounts.bill_document(s, account, b).past_due_cents for b in bills[-4:]
        ]
