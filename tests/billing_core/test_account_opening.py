"""Service addresses read with usaddress: stored in a standard form, keyed to find the same
premise typed another way, refused when they are not a street address."""

from __future__ import annotations

import pytest

from portal.billing_core.account_opening import parse_premise_address
from portal.billing_core.errors import FieldErrors


@pytest.mark.parametrize(
    ("line1", "line2", "stored", "unit", "key"),
    [
        ("742 North Evergreen Terrace", "", "742 N Evergreen Ter", None, "742 N EVERGREEN TER 91710"),
        ("742 N. Evergreen Ter.", "", "742 N Evergreen Ter", None, "742 N EVERGREEN TER 91710"),
        ("100 West 1st Street", "", "100 W 1st St", None, "100 W 1ST ST 91710"),
        ("123 Avenue B", "", "123 Ave B", None, "123 AVE B 91710"),
        ("123 Main St Apt 4", "", "123 Main St", "APT 4", "123 MAIN ST #4 91710"),
        ("123 Main Street", "Apartment 4", "123 Main St", "APT 4", "123 MAIN ST #4 91710"),
        ("12 Calle Peña", "Rear", "12 Calle Peña", "#REAR", "12 CALLE PEÑA #REAR 91710"),
    ],
)
def test_addresses_are_standardised_and_keyed(line1: str, line2: str, stored: str, unit: str | None, key: str) -> None:
    parsed = parse_premise_address(line1, line2, "Chino", "ca", "91710-1234")
    assert (parsed.line1, parsed.line2, parsed.key, parsed.state) == (stored, unit, key, "CA")


@pytest.mark.parametrize(
    ("line1", "words"),
    [("Evergreen Terrace", "street number"), ("PO Box 12", "post office box"), ("", "Enter the street address")],
)
def test_what_is_not_a_street_address_is_refused(line1: str, words: str) -> None:
    with pytest.raises(FieldErrors) as caught:
        parse_premise_address(line1, "", "Chino", "CA", "91710")
    assert words in caught.value.errors["service_line1"].message


def test_every_part_of_the_address_is_checked_at_once() -> None:
    with pytest.raises(FieldErrors) as caught:
        parse_premise_address("Main St", "", "", "XX", "9171")
    assert {"service_line1", "service_city", "service_state"} <= set(caught.value.errors)
