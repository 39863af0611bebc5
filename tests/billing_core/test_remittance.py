"""Remittance rules: amounts, scan lines, batch totals, BAI2 files and CSV layouts."""

import json
from datetime import date

import pytest

from portal.billing_core import remittance
from portal.billing_core.errors import InvalidInput
from portal.billing_core.numbers import account_number, scan_line

TODAY = date(2026, 11, 20)
A = account_number(1)
B = account_number(2)


@pytest.mark.parametrize(("text", "cents"), [("25", 2500), ("$1,234.56", 123456), ("0.5", 50), ("10.05", 1005)])
def test_amounts(text: str, cents: int) -> None:
    assert remittance.amount_cents(text) == cents


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("12.345", "fractions of a cent"),
        ("0", "more than zero"),
        ("-5", "negative"),
        ("ten", "dollars and cents"),
        ("", "Enter"),
    ],
)
def test_bad_amounts(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        remittance.amount_cents(text)
    assert says in exc.value.message


def test_account_from_scan_line_or_number() -> None:
    assert remittance.account_from(scan_line(A, 1234), None) == A
    assert remittance.account_from("", A[:4] + "-" + A[4:]) == A
    assert remittance.account_from(scan_line(A, 1), A) == A
    for scan, number, field in (
        (
            scan_line(A, 1)[:-1] + "0" if not scan_line(A, 1).endswith("0") else scan_line(A, 1)[:-1] + "1",
            None,
            "scan_line",
        ),
        (None, A[:-1] + str((int(A[-1]) + 1) % 10), "account_number"),
        (scan_line(A, 1), B, "account_number"),
        (None, None, "scan_line"),
    ):
        with pytest.raises(InvalidInput) as exc:
            remittance.account_from(scan, number)
        assert exc.value.field == field


def test_batch_difference_says_by_how_much() -> None:
    assert remittance.batch_difference(3000, 2, [1000, 2000]) is None
    assert "$5.00 more" in (remittance.batch_difference(3000, None, [3500]) or "")
    assert "control count is 3" in (remittance.batch_difference(3000, 3, [1000, 2000]) or "")
    assert remittance.batch_difference(0, None, []) == "The batch has no items yet."


GOOD = f"""01,BANK,DISTRICT,261120,0800,1,80,,2/
02,DISTRICT,BANK,1,261119,0800,USD,2/
03,123456789,USD,,,,/
16,115,6000,Z,B1,{scan_line(A, 6000)},CHECK 501/
16,115,2500,Z,B2,{B},/
88,more text
16,475,100,Z,B3,,/
49,8600,6/
98,8600,1,8/
99,8600,1,10/
"""


def test_bai2_credits_are_remittances() -> None:
    rows = remittance.parse_bai2(GOOD.encode(), TODAY)
    assert [(r.bank_reference, r.amount_cents, r.rejected is None) for r in rows] == [
        ("B1", 6000, True),
        ("B2", 2500, True),
        ("B3", 100, False),
    ]
    assert rows[0].scan_line == scan_line(A, 6000) and rows[0].check_number == "501"
    assert rows[1].account_text == B and rows[0].received_on == date(2026, 11, 19)
    assert "not a credit" in (rows[2].rejected or "")


@pytest.mark.parametrize(
    "bad",
    [
        GOOD.replace("49,8600,6/", "49,9999,6/"),  # account control total
        GOOD.replace("98,8600,1,8/", "98,8600,1,3/"),  # group record count
        GOOD.replace("99,8600,1,10/\n", ""),  # no file trailer
        GOOD.replace("16,115,2500", "16,115,25.00"),  # a decimal point in an amount
        GOOD.replace("02,", "07,", 1),  # an unknown record code
        "not a bank file\n",
        "",
        "\xff\xfe".encode("latin-1").decode("latin-1"),
    ],
)
def test_a_malformed_bai2_file_is_refused_whole(bad: str) -> None:
    with pytest.raises(remittance.MalformedFile) as exc:
        remittance.parse_bai2(bad.encode("latin-1"), TODAY)
    assert "Nothing was imported" in exc.value.message


def test_shipped_layouts_are_valid_and_read_their_files() -> None:
    layouts = remittance.load_layouts()
    assert {"standard", "first-county-bank"} <= set(layouts)
    rows = remittance.parse_csv(
        f"ITEM_SEQ,REMIT_ACCT,OCR_LINE,AMT_CENTS,CHK_NO,PROC_DATE\n7,{A},,1250,44,11/19/2026\n8,{A},,12.50,45,11/19/2026\n".encode(),
        layouts["first-county-bank"],
        TODAY,
    )
    assert (rows[0].amount_cents, rows[0].received_on, rows[0].check_number) == (1250, date(2026, 11, 19), "44")
    assert "whole number of cents" in (rows[1].rejected or "")
    std = remittance.parse_csv(
        b"Reference,Account,ScanLine,Amount,CheckNumber,DepositDate\nR1,,,12.345,,2026-11-19\nR2,,,5.00,,19/11/2026\n",
        layouts["standard"],
        TODAY,
    )
    assert "fractions of a cent" in (std[0].rejected or "") and "is not" in (std[1].rejected or "")


def test_a_file_without_the_layouts_columns_is_refused() -> None:
    with pytest.raises(remittance.MalformedFile):
        remittance.parse_csv(b"Foo,Bar\n1,2\n", remittance.load_layouts()["standard"], TODAY)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"columns": {"amount": "A"}}, "must map bank_reference"),
        ({"columns": {"amount": "A", "bank_reference": "R"}}, "account_number or scan_line"),
        ({"columns": {"amount": "A", "bank_reference": "R", "account_number": "N", "color": "C"}}, "unknown fields"),
        (
            {"columns": {"amount": "A", "bank_reference": "R", "account_number": "N"}, "amount_format": "euros"},
            "amount_format",
        ),
        (
            {"columns": {"amount": "A", "bank_reference": "R", "account_number": "N"}, "date_format": "YYYY"},
            "date_format",
        ),
        ({"columns": {"amount": "A", "bank_reference": "R", "account_number": "N"}, "extra": 1}, "unknown keys"),
        ("not an object", "must be an object"),
    ],
)
def test_layouts_are_checked(spec: object, says: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        remittance.check_layout("x", spec)
    assert says in exc.value.message


def test_an_override_file_adds_and_replaces_layouts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "layouts.json"
    path.write_text(
        json.dumps({"standard": {"columns": {"amount": "Amt", "bank_reference": "Ref", "account_number": "Acct"}}})
    )
    layouts = remittance.load_layouts(str(path))
    assert layouts["standard"].columns["amount"] == "Amt" and "first-county-bank" in layouts
    path.write_text(json.dumps({"bad": {"columns": {}}}))
    with pytest.raises(InvalidInput):
        remittance.load_layouts(str(path))
