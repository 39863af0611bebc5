from datetime import date
from decimal import Decimal

import pytest

from portal.billing_core.errors import InvalidInput
from portal.billing_core.read_files import RouteStop, parse, parse_mapping, write_route_file

TODAY = date(2026, 11, 22)


def test_standard_csv() -> None:
    content = (
        b"meter_serial,account_number,read_value,read_time,source\n"
        b"m1000001,,1234,2026-11-05T08:12:00,ami\n"
        b",00000018,88.5,11/05/2026,\n"
    )
    reads, rejected, lines = parse(content, "csv", today=TODAY)
    assert (lines, rejected) == (2, [])
    assert (reads[0].meter_serial, reads[0].value, reads[0].read_on, reads[0].source) == (
        "M1000001",
        Decimal(1234),
        date(2026, 11, 5),
        "ami",
    )
    assert (reads[1].account_number, reads[1].value, reads[1].source) == ("00000018", Decimal("88.5"), "amr")


def test_a_column_mapping_reads_any_csv() -> None:
    content = b"MeterNo,Reading,When\nM7,10,2026-11-01\n"
    mapping = parse_mapping("meter_serial=MeterNo,value=Reading,read_at=When")
    reads, rejected, _ = parse(content, "csv", mapping=mapping, today=TODAY)
    assert rejected == [] and reads[0].meter_serial == "M7"


@pytest.mark.parametrize(
    "row, value, reason",
    [
        ("M1,abc,2026-11-05", "abc", "not a number"),
        ("M1,-5,2026-11-05", "-5", "negative"),
        ("M1,-1,2026-11-05", "-1", "negative"),
        ("M1,Infinity,2026-11-05", "Infinity", "not a number"),
        ("M1,NaN,2026-11-05", "NaN", "not a number"),
        ("M1,1E+1000000,2026-11-05", "1E+1000000", "digits 0-9"),
        ("M1,12.3456,2026-11-05", "12.3456", "at most 3 decimal places"),
        ("M1,5,yesterday", "yesterday", "not a date"),
        ("M1,5,2027-01-01", "2027-01-01", "in the future"),
        (",5,2026-11-05", ",5,2026-11-05", "no meter serial"),
    ],
)
def test_each_bad_line_is_rejected_with_its_line_value_and_reason(row: str, value: str, reason: str) -> None:
    content = f"meter_serial,read_value,read_time\nM2,5,2026-11-05\n{row}\n".encode()
    reads, rejected, lines = parse(content, "csv", today=TODAY)
    assert lines == 2 and len(reads) == 1
    (r,) = rejected
    assert r.line == 3 and r.value == value and reason in r.reason


@pytest.mark.parametrize(
    "content, fmt, layout, message",
    [
        (b"serial,reading\nM1,5\n", "csv", None, "no column read_value"),
        (b"x", "fixed", None, "needs --layout"),
        (b"x", "csv", "handheld-60", "is for fixed files"),
        (b"x", "xml", None, "unknown format"),
        (b"x", "csv", "nope", "no read file layout named 'nope'"),
        (b"\xff\xfe", "csv", None, "not UTF-8"),
    ],
)
def test_file_level_problems(content: bytes, fmt: str, layout: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(content, fmt, layout, today=TODAY)


def test_route_file_round_trip_in_walking_order() -> None:
    stops = [
        RouteStop("1-001", 2, "00000026", "M1000002", Decimal(500), date(2026, 12, 5)),
        RouteStop("1-001", 1, "00000018", "M1000001", Decimal(1234), date(2026, 12, 5)),
    ]
    text = write_route_file(stops)
    lines = text.splitlines()
    assert [line[11:19] for line in lines] == ["00000018", "00000026"]
    assert all(len(line) == 51 for line in lines)
    # A handheld writes the new read and code over the previous read; the file imports.
    filled = "\n".join(line[:31] + f"{'1250':<10}" + line[41:49] + "OK" for line in lines).encode()
    reads, rejected, _ = parse(filled, "fixed", "handheld-60", today=date(2026, 12, 6))
    assert rejected == [] and [(r.meter_serial, r.value, r.read_on) for r in reads] == [
        ("M1000001", Decimal(1250), date(2026, 12, 5)),
        ("M1000002", Decimal(1250), date(2026, 12, 5)),
    ]


def test_fixed_width_skips_no_read_codes_and_rejects_short_records() -> None:
    good = "1-001 0000100000018M1000001    1250      20261105OK"
    skipped = "1-001 0000200000026M1000002              20261105NR"
    reads, rejected, lines = parse(f"{good}\n{skipped}\nshort\n".encode(), "fixed", "handheld-60", today=TODAY)
    assert lines == 3 and len(reads) == 1
    assert rejected[0].line == 3 and "the layout needs 51" in rejected[0].reason


def test_an_over_long_field_is_a_clear_rejection_not_a_crash() -> None:
    content = b"meter_serial,read_value,read_time\nM2,5,2026-11-05\nM3," + b"9" * 200_000 + b",2026-11-05\n"
    with pytest.raises(InvalidInput, match="line 3: a field is longer than") as caught:
        parse(content, "csv", today=TODAY)
    assert caught.value.field == "file"


def test_an_unclosed_quote_swallowing_the_file_is_a_clear_rejection() -> None:
    content = b'meter_serial,read_value,read_time\nM2,"5,2026-11-05\n' + b"M3,5,2026-11-05\n" * 20_000
    with pytest.raises(InvalidInput, match="a field is longer than"):
        parse(content, "csv", today=TODAY)


def test_a_rejected_value_is_shown_shortened() -> None:
    content = b"meter_serial,read_value,read_time\nM2," + b"x" * 5000 + b",2026-11-05\n"
    _reads, (rejected,), _ = parse(content, "csv", today=TODAY)
    assert len(rejected.value) <= 81 and rejected.value.endswith("\u2026")


def test_ragged_rows_are_rejected_or_read_never_crash() -> None:
    content = b"meter_serial,read_value,read_time\nM2\nM3,5,2026-11-05,extra,fields\n,\n"
    reads, rejected, lines = parse(content, "csv", today=TODAY)
    assert [r.meter_serial for r in reads] == ["M3"]
    assert [(r.line, r.reason) for r in rejected] == [
        (2, "the read value is not a number"),
        (4, "no meter serial or account number"),
    ]


@pytest.mark.parametrize("serial", ["M\x002", "M" * 41, "M\u200b2"])
def test_a_serial_no_meter_can_have_is_rejected_before_any_lookup(serial: str) -> None:
    content = f"meter_serial,read_value,read_time\n{serial},5,2026-11-05\n".encode()
    _reads, (rejected,), _ = parse(content, "csv", today=TODAY)
    assert "the meter serial is not one" in rejected.reason


def test_a_route_file_writes_any_stored_previous_read() -> None:
    stops = [RouteStop("1-001", 1, "00000018", "M1", Decimal("1E+1000000"), date(2026, 12, 5))]
    (line,) = write_route_file(stops).splitlines()
    assert len(line) == 51 and line[31:41].strip() == "1e+1000000"
