"""What we know about a customer: the mailing address, checked by field and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import customers
from portal.billing_core.customers import MailingAddress
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import AuditEvent

from .factories import district


def test_a_blank_address_is_none_and_a_whole_one_is_cleaned() -> None:
    assert customers.parse_mailing_address(" ", "", "", "") is None
    assert customers.parse_mailing_address(" 1 Main St ", "Reno", "nv", "89501-1234") == MailingAddress(
        "1 Main St", "Reno", "NV", "89501-1234"
    )


@pytest.mark.parametrize(
    "parts, field",
    [
        (("", "Reno", "NV", "89501"), "mailing_line1"),
        (("x" * 201, "Reno", "NV", "89501"), "mailing_line1"),
        (("1 Main St", "", "NV", "89501"), "mailing_city"),
        (("1 Main St", "Reno", "Nevada", "89501"), "mailing_state"),
        (("1 Main St", "Reno", "NV", "8950"), "mailing_zip"),
    ],
)
def test_a_part_missing_or_wrong_is_named(parts: tuple[str, str, str, str], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        customers.parse_mailing_address(*parts)
    assert caught.value.field == field
    with pytest.raises(InvalidInput) as caught:
        customers.parse_mailing_address(*parts, prefix="forward")
    assert caught.value.field == field.replace("mailing", "forward")


def test_setting_the_address_writes_it_and_the_audit_once(session: Session) -> None:
    (account,) = district(session, 1)
    customer = account.customer
    address = MailingAddress("PO Box 7", "Chino", "CA", "91710")
    customers.set_mailing_address(session, customer, address, None, "192.0.2.1")
    assert (customer.mailing_line1, customer.mailing_zip) == ("PO Box 7", "91710")
    customers.set_mailing_address(session, customer, address, None, None)  # the same: nothing written
    customers.set_mailing_address(session, customer, None, None, None)  # back to the service address
    assert customer.mailing_line1 is None and customer.mailing_state is None
    events = list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == "customer.mailing_address").order_by(AuditEvent.id)
        )
    )
    assert [e.after["line1"] for e in events] == ["PO Box 7", None]
    assert events[0].before == {"line1": None, "city": None, "state": None, "zip": None}
    assert events[0].entity_id == str(customer.id) and events[0].remote_addr == "192.0.2.1"
