"""Changing what we know about a customer: the mailing address bills go to."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from . import audit
from .errors import N_, InvalidInput
from .models import Customer, User

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP AA AE AP".split()
)
ZIP = re.compile(r"\d{5}(-\d{4})?")


@dataclass(frozen=True)
class MailingAddress:
    line1: str
    city: str
    state: str
    zip: str


def parse_mailing_address(
    line1: str, city: str, state: str, zip_code: str, prefix: str = "mailing"
) -> MailingAddress | None:
    """A mailing address from a form, or None when every part is blank. A partly filled
    address is an error on the first part missing, so a bill is never mailed to half an
    address. Errors name the fields ``<prefix>_line1``, ``_city``, ``_state``, ``_zip``."""
    parts = [p.strip() for p in (line1, city, state, zip_code)]
    if not any(parts):
        return None
    line1, city, state, zip_code = parts
    state = state.upper()
    if not line1:
        raise InvalidInput(N_("Enter the street address."), f"{prefix}_line1")
    if len(line1) > 200:
        raise InvalidInput(N_("The street address is too long (200 characters at most)."), f"{prefix}_line1")
    if not city or len(city) > 100:
        raise InvalidInput(N_("Enter the city."), f"{prefix}_city")
    if state not in US_STATES:
        raise InvalidInput(N_("Enter the state as two letters, for example CA."), f"{prefix}_state")
    if not ZIP.fullmatch(zip_code):
        raise InvalidInput(N_("Enter the ZIP code as five digits (or ZIP+4, 12345-6789)."), f"{prefix}_zip")
    return MailingAddress(line1, city, state, zip_code)


def set_mailing_address(
    session: Session, customer: Customer, address: MailingAddress | None, actor: User | None, remote_addr: str | None
) -> None:
    """Mail bills to ``address`` from now on (None: to the service address). Audited."""
    before = {
        "line1": customer.mailing_line1,
        "city": customer.mailing_city,
        "state": customer.mailing_state,
        "zip": customer.mailing_zip,
    }
    after = {
        "line1": address.line1 if address else None,
        "city": address.city if address else None,
        "state": address.state if address else None,
        "zip": address.zip if address else None,
    }
    if before == after:
        return
    customer.mailing_line1, customer.mailing_city = after["line1"], after["city"]
    customer.mailing_state, customer.mailing_zip = after["state"], after["zip"]
    audit.record(
        session,
        "customer.mailing_address",
        actor=actor,
        entity_type="customer",
        entity_id=customer.id,
        before=before,
        after=after,
        remote_addr=remote_addr,
    )
