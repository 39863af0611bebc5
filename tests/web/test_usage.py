"""Usage history: 12 months beside the year before, as an SVG chart and a table with the
same figures, from the water lines of the customer's own bills."""

from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core import accounts
from portal.billing_core.models import Account, Bill, BillLine

from .conftest import linked_numbers, sign_in


def test_usage_shows_twelve_months_against_the_year_before(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    (number, *_) = linked_numbers(demo_engine, "resident@demo.example")
    page = client.get(f"/my/accounts/{number}/usage")
    assert page.status_code == 200
    history = page.context["history"]
    assert len(history) == 12 and history[-1].this_year is not None
    assert sum(1 for m in history if m.last_year is not None) >= 11  # the demo has 24 months of bills
    assert '<svg viewBox="0 0 640 256" role="img" aria-labelledby="compare-title"' in page.text
    rows = re.findall(r'<tr>\s*<th scope="row" data-label="Month">', page.text)
    assert len(rows) == 12
    # The latest month's figure is the water billed on the latest bill, to the unit.
    with Session(demo_engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        latest = s.scalar(
            select(Bill.id)
            .where(Bill.account_id == account_id, Bill.status == "posted")
            .order_by(Bill.period_end.desc())
        )
        billed = sum(
            s.scalars(
                select(BillLine.quantity).where(
                    BillLine.bill_id == latest, BillLine.service_type == "water", BillLine.unit == "CCF"
                )
            ),
            Decimal(0),
        )
        assert history[-1].this_year == billed
        assert accounts.usage_history(s, account_id)[1] == "CCF"
    assert f'<td class="num" data-label="Last 12 months">{billed.normalize():f}</td>' in page.text
