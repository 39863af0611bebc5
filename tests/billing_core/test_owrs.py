import io
from decimal import Decimal

import pytest

from portal.billing_core import owrs
from portal.services.rates import quote_cases

SPEC_TIERED = """
metadata: {effective_date: 2016-01-01, utility_name: Example, bill_frequency: monthly}
rate_structure:
  RESIDENTIAL_SINGLE:
    service_charge:
      depends_on: meter_size
      values:
        3/4": 14.65
        1"  : 16.77
        1|1/2": 20.10
    tier_starts: [0, 15, 41, 149]
    tier_prices: [2.87, 4.29, 6.44, 10.07]
    commodity_charge: Tiered
    bill: commodity_charge+service_charge
"""

SPEC_BUDGET = """
metadata: {effective_date: 2016-01-01}
rate_structure:
  RESIDENTIAL_SINGLE:
    service_charge: 14.65
    gpcd: 60
    landscape_factor: 0.7
    days_in_period: 30.4
    indoor: "gpcd*hhsize*days_in_period*(1/748)"
    outdoor: "landscape_factor*et_amount*irr_area*0.62*(1/748)"
    budget: "indoor+outdoor"
    tier_starts: [0, indoor, 100%, 133%]
    tier_prices: [2.87, 4.29, 6.44, 10.07]
    commodity_charge: Budget
    bill: commodity_charge+service_charge
"""


def bill(text: str, cls: str = "RESIDENTIAL_SINGLE", **data: str) -> Decimal:
    return owrs.quote(owrs.load_text(text, "test.owrs"), cls, data).bill


@pytest.mark.parametrize(
    "usage, expected",
    [
        ("0", "14.65"),
        ("14", "54.83"),  # units 1-14 at 2.87
        ("15", "59.12"),  # the 15th unit is the first at 4.29
        ("40", "166.37"),
        ("41", "172.81"),
        ("200", "1385.53"),
        ("14.5", "56.975"),
    ],
)
def test_tier_start_is_the_first_unit_at_that_price(usage: str, expected: str) -> None:
    assert bill(SPEC_TIERED, usage_ccf=usage, meter_size='3/4"') == Decimal(expected)


@pytest.mark.parametrize("size", ['1 1/2"', '1|1/2"', '1_1/2"', "1 1/2"])
def test_meter_size_spellings_match(size: str) -> None:
    assert bill(SPEC_TIERED, usage_ccf="0", meter_size=size) == Decimal("20.10")


def test_budget_allocations_round_half_even_and_usage_up_to_them_stays_below() -> None:
    # indoor = 60*4*30.4/748 = 9.75 -> 10; outdoor = 0.7*5*1000*0.62/748 = 2.90 -> 3; budget 13;
    # starts: indoor 10, 100% 13, 133% 17.29 -> 17.
    data = {"hhsize": "4", "et_amount": "5", "irr_area": "1000"}
    assert bill(SPEC_BUDGET, usage_ccf="10", **data) == Decimal("14.65") + 10 * Decimal("2.87")
    assert bill(SPEC_BUDGET, usage_ccf="13", **data) == Decimal("14.65") + 10 * Decimal("2.87") + 3 * Decimal("4.29")
    expected = 10 * Decimal("2.87") + 3 * Decimal("4.29") + 4 * Decimal("6.44") + 3 * Decimal("10.07")
    assert bill(SPEC_BUDGET, usage_ccf="20", **data) == Decimal("14.65") + expected


@pytest.mark.parametrize("hhsize, tier1", [("2.5", 2), ("3.5", 4), ("4.5", 4)])
def test_half_even(hhsize: str, tier1: int) -> None:
    text = SPEC_BUDGET.replace('"gpcd*hhsize*days_in_period*(1/748)"', "hhsize").replace(
        '"landscape_factor*et_amount*irr_area*0.62*(1/748)"', "0"
    )
    # Tier 1 holds round(hhsize) units, rounded half to even.
    quote = owrs.quote(owrs.load_text(text), "RESIDENTIAL_SINGLE", {"usage_ccf": "1000", "hhsize": hhsize})
    commodity = next(p for p in quote.parts if p.name == "commodity_charge")
    assert commodity.tiers[0].quantity == tier1


SUFFIXED = """
rate_structure:
  RESIDENTIAL_SINGLE:
    service_charge: 10
    commodity_charge: Budget
    gpcd_commodity: 50
    indoor_commodity: hhsize*gpcd*days_in_period*(1/748)
    outdoor_commodity: 0
    budget_commodity: indoor+outdoor
    tier_starts_commodity: [0, indoor, 150%]
    tier_prices_commodity: [1, 2, 3]
    variable_drought_surcharge: Budget
    gpcd_drought: 100
    indoor_drought: hhsize*gpcd*days_in_period*(1/748)
    outdoor_drought: 0
    budget_drought: indoor+outdoor
    tier_starts_drought: [0, indoor, 150%]
    tier_prices_drought: [0.1, 0.2, 0.3]
    bill: service_charge+commodity_charge+variable_drought_surcharge
"""


def test_bare_names_resolve_to_the_charges_own_suffix() -> None:
    # commodity: indoor = 50*4*30/748 = 8.02 -> 8, 150% = 12; drought: indoor 16.04 -> 16, 150% = 24.
    quote = owrs.quote(
        owrs.load_text(SUFFIXED), "RESIDENTIAL_SINGLE", {"usage_ccf": "20", "hhsize": "4", "days_in_period": "30"}
    )
    parts = {p.name: p for p in quote.parts}
    assert [(t.quantity, t.price) for t in parts["commodity_charge"].tiers] == [(8, 1), (4, 2), (8, 3)]
    assert [t.quantity for t in parts["variable_drought_surcharge"].tiers] == [16, 4]
    assert quote.bill == 10 + (8 + 8 + 24) + (Decimal("1.6") + Decimal("0.8"))


JOINED = """
rate_structure:
  COMMERCIAL:
    service_charge:
      depends_on: [meter_size, city_limits]
      values:
        1"|inside: 20
        1"|outside: 30
    zone_price:
      depends_on: pressure_zone
      values:
        1: 2.5
        2: 3.0
    days_in_period: 30.4
    commodity_charge: zone_price*usage_ccf*days_in_period/30.4
    bill: service_charge+commodity_charge
"""


def test_joined_keys_integer_keys_and_data_over_file_fields() -> None:
    f = owrs.load_text(JOINED)
    base = {"meter_size": '1"', "city_limits": "outside", "pressure_zone": "2", "usage_ccf": "10"}
    assert owrs.quote(f, "COMMERCIAL", base).bill == Decimal("60")
    assert owrs.quote(f, "COMMERCIAL", {**base, "days_in_period": "60.8"}).bill == Decimal("90")
    assert owrs.quote(f, "COMMERCIAL", {**base, "days_in_period": ""}).bill == Decimal("60")


@pytest.mark.parametrize(
    "text, cls, data, message",
    [
        ("rate_structure: [1, 2", "X", {}, "not valid YAML"),
        ("metadata: {}", "X", {}, "no rate_structure"),
        (SPEC_TIERED, "COMMERCIAL", {"usage_ccf": "1"}, "no rates for customer class 'COMMERCIAL'"),
        (
            SPEC_TIERED,
            "RESIDENTIAL_SINGLE",
            {"usage_ccf": "1", "meter_size": '9"'},
            "class RESIDENTIAL_SINGLE, field service_charge: no value for meter_size = '9\"'",
        ),
        (SPEC_BUDGET, "RESIDENTIAL_SINGLE", {"usage_ccf": "1"}, "needs 'hhsize'"),
        (
            SPEC_TIERED.replace("[2.87, 4.29, 6.44, 10.07]", "[2.87, 4.29]"),
            "RESIDENTIAL_SINGLE",
            {"usage_ccf": "1", "meter_size": '1"'},
            "4 tier starts but 2 tier prices",
        ),
        (
            SPEC_TIERED.replace("commodity_charge+service_charge", "__import__('os').system('x')"),
            "RESIDENTIAL_SINGLE",
            {"usage_ccf": "1", "meter_size": '1"'},
            "cannot read formula",
        ),
    ],
)
def test_errors_name_file_class_field_and_reason(text: str, cls: str, data: dict, message: str) -> None:
    with pytest.raises(owrs.OwrsError) as info:
        owrs.quote(owrs.load_text(text, "rates.owrs"), cls, data)
    assert message in str(info.value)
    assert "rates.owrs" in str(info.value)


@pytest.mark.parametrize("formula", ["1 +", "(2*3", "2 ** 3", "a.b", "x[0]", "lambda: 1"])
def test_formula_parser_refuses_anything_but_arithmetic(formula: str) -> None:
    with pytest.raises(ValueError):
        owrs.parse_formula(formula)


def test_formula_precedence() -> None:
    node = owrs.parse_formula("2+3*4-(1-5)/2--1")
    assert owrs.evaluate_node(node, lambda n: Decimal(0)) == Decimal(2 + 12 + 2 + 1)


def test_quote_contract_keeps_rows_and_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "a.owrs").write_text(SPEC_TIERED)
    cases = io.StringIO(
        "file,cust_class,meter_size,usage_ccf,hhsize\n"
        'u/a.owrs,RESIDENTIAL_SINGLE,"3/4""",15,\n'
        'u/missing.owrs,RESIDENTIAL_SINGLE,1",3,\n'
        'u/a.owrs,RESIDENTIAL_SINGLE,"1""",0.5,2\n'
        '../etc/passwd,RESIDENTIAL_SINGLE,1",3,\n'
    )
    out = io.StringIO()
    assert quote_cases(tmp_path, cases, out) == (4, 2)
    lines = out.getvalue().splitlines()
    assert lines[0] == "file,cust_class,meter_size,usage_ccf,hhsize,bill,error"
    assert lines[1] == 'u/a.owrs,RESIDENTIAL_SINGLE,"3/4""",15,,59.12,'
    assert "cannot read the file" in lines[2] and lines[2].count(",,") >= 1
    assert lines[3].endswith(",2,18.21,")  # 0.5*2.87 + 16.77 = 18.205 -> 18.21
    assert "outside the OWRS root" in lines[4]


@pytest.mark.parametrize("amount, shown", [("0", "0.00"), ("-0.001", "0.00"), ("12.345", "12.35"), ("-1.005", "-1.01")])
def test_dollars(amount: str, shown: str) -> None:
    assert owrs.dollars(Decimal(amount)) == shown


# --------------------------------------------------------------------------- hostile and broken files

# The "billion laughs": nine lines that expand to 10**9 values when aliases are followed.
ALIAS_BOMB = """
metadata: {effective_date: 2016-01-01}
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
rate_structure:
  RESIDENTIAL_SINGLE:
    tier_starts: *i
    bill: 1
"""


def problems_of(text: str) -> list[owrs.OwrsError]:
    from portal.billing_core.rate_schedules import validate_owrs

    return validate_owrs(owrs.load_text(text, "rates.owrs"))


def test_an_alias_bomb_is_refused_at_its_first_alias_quickly() -> None:
    import time

    started = time.monotonic()
    with pytest.raises(owrs.OwrsError) as info:
        owrs.load_text(ALIAS_BOMB, "bomb.owrs")
    assert time.monotonic() - started < 1
    assert str(info.value) == (
        "file bomb.owrs: line 4: YAML aliases (*a) are not allowed in a rate file: write the value out where it is used"
    )


def test_a_small_alias_is_refused_too_but_an_unused_anchor_is_only_a_label() -> None:
    aliased = SPEC_TIERED.replace("tier_prices: [2.87, 4.29, 6.44, 10.07]", "tier_prices: *starts").replace(
        "tier_starts: [0, 15, 41, 149]", "tier_starts: &starts [0, 15, 41, 149]"
    )
    with pytest.raises(owrs.OwrsError, match=r"line 12: YAML aliases \(\*starts\) are not allowed"):
        owrs.load_text(aliased, "a.owrs")
    merged = "rate_structure:\n  X:\n    <<: {bill: 1}\n"
    with pytest.raises(owrs.OwrsError, match=r"line 3: YAML merge keys \(<<\) are not allowed"):
        owrs.load_text(merged, "m.owrs")
    labelled = SPEC_TIERED.replace("tier_starts: [0", "tier_starts: &starts [0")
    assert bill(labelled, usage_ccf="15", meter_size='3/4"') == Decimal("59.12")


def test_a_key_given_twice_with_different_values_is_refused_naming_the_key_and_lines() -> None:
    twice = SPEC_TIERED.replace("    bill: commodity_charge+service_charge", "    bill: commodity_charge\n    bill: 0")
    with pytest.raises(owrs.OwrsError) as info:
        owrs.load_text(twice, "twice.owrs")
    assert str(info.value) == (
        "file twice.owrs: line 15: the key 'bill' is given twice in the same mapping (first at line 14), "
        "with different values; keep one"
    )
    # The same key with the same value loses nothing.
    same = SPEC_TIERED.replace(
        "    bill: commodity_charge+service_charge", "    bill: service_charge\n    bill: service_charge"
    )
    assert bill(same, usage_ccf="15", meter_size='3/4"') == Decimal("14.65")


def two_classes(second: str) -> str:
    """A file whose first class is fine and whose second (COMMERCIAL) has the given parts."""
    return (
        "metadata: {effective_date: 2016-01-01}\n"
        "rate_structure:\n"
        "  RESIDENTIAL_SINGLE:\n"
        "    flat_rate: 2.5\n"
        "    commodity_charge: flat_rate*usage_ccf\n"
        "    bill: commodity_charge\n"
        "  COMMERCIAL:\n" + "".join(f"    {line}\n" for line in second.strip().splitlines())
    )


@pytest.mark.parametrize(
    "parts, field_name, reason",
    [
        # Division by zero, however it comes about.
        (
            "flat_rate: 2\ncommodity_charge: flat_rate*usage_ccf/0\nbill: commodity_charge",
            "commodity_charge",
            "division by zero",
        ),
        ("a: 3\nb: 3\nsurcharge: 10/(a-b)\nbill: surcharge", "surcharge", "division by zero ((a-b) is 0)"),
        ('x:\n  depends_on: meter_size\n  values:\n    1": 2\n    2": 4/0\nbill: x', "x", "division by zero"),
        ("fee: usage_ccf/usage_ccf\nbill: fee", "fee", "division by zero"),  # at no usage
        # Names that are neither a field nor a data column.
        (
            "commodity_charge: __import__*usage_ccf\nbill: commodity_charge",
            "commodity_charge",
            "unknown name '__import__'",
        ),
        ("commodity_charge: NaN*usage_ccf\nbill: commodity_charge", "commodity_charge", "unknown name 'NaN'"),
        # NaN and infinities, as YAML writes them and as text.
        ("flat_rate: .nan\nbill: flat_rate*usage_ccf", "flat_rate", "NaN (not a number) is not a rate"),
        ("flat_rate: .inf\nbill: flat_rate*usage_ccf", "flat_rate", "an infinite number is not a rate"),
        ("flat_rate: -.Inf\nbill: flat_rate", "flat_rate", "an infinite number is not a rate"),
        (
            "tier_starts: [0, 10]\ntier_prices: [1, Infinity]\ncommodity_charge: Tiered\nbill: commodity_charge",
            "tier_prices",
            "Infinity is not a finite number",
        ),
        # Numbers over the bound: in a field, in a list, in a formula, too long to read.
        (
            "flat_rate: 1e300\nbill: flat_rate*usage_ccf",
            "flat_rate",
            "the number 1e300 is over the limit of 1,000,000,000",
        ),
        ("service_charge: 2000000000\nbill: service_charge", "service_charge", "over the limit of 1,000,000,000"),
        (
            "tier_starts: [0, 10]\ntier_prices: [1, 1E+1000000]\ncommodity_charge: Tiered\nbill: commodity_charge",
            "tier_prices",
            "over the limit",
        ),
        ("bill: 1E+999999*usage_ccf", "bill", "the number 1E+999999 is over the limit of 1,000,000,000"),
        (
            "service_charge: 1" + "0" * 99 + "\nbill: service_charge",
            "service_charge",
            "has 100 characters; at most 40",
        ),
        (
            "tier_starts: [0, 10]\ntier_prices: [1, 2]\ncommodity_charge: Budget\nbudget: 10\nbill: commodity_charge\n"
            "tier_starts_x: [0, 1e99%]",
            "tier_starts_x",
            "over the limit",
        ),
        # Values that only grow past the bound as they are computed.
        ("a: 999999999\nb: a*a*a\nbill: b", "b", "(a*a) comes to 1.000E+18, over the limit of 1,000,000,000,000"),
        # Formulas over the length and depth limits, and references too deep.
        ("bill: " + "+".join(["usage_ccf"] * 50), "bill", "the formula has 499 characters; at most 400"),
        ("bill: " + "(" * 30 + "usage_ccf" + ")" * 30, "bill", "the formula nests deeper than 24 levels"),
        ("bill: " + "-" * 30 + "usage_ccf", "bill", "the formula nests deeper than 24 levels"),
        ("bill: " + "+".join(f"x{i}" for i in range(30)), "bill", "the formula nests deeper than 24 levels"),
        ("\n".join(f"f{i}: f{i + 1}+1" for i in range(30)) + "\nf30: 1\nbill: f0", "f16", "more than 16 levels deep"),
    ],
)
def test_a_class_that_cannot_be_computed_is_refused_naming_class_and_field(
    parts: str, field_name: str, reason: str
) -> None:
    problems = problems_of(two_classes(parts))
    assert problems, "the file must be refused"
    problem = problems[0]
    assert (problem.cust_class, problem.field_name) == ("COMMERCIAL", field_name), str(problem)
    assert reason in problem.reason
    assert str(problem).startswith(f"file rates.owrs, class COMMERCIAL, field {field_name}: ")


def test_the_first_class_of_those_files_is_fine_and_data_columns_are_allowed() -> None:
    assert problems_of(two_classes("bill: 1")) == []
    # A name that is not a field is a data column the rate needs (OWRS allows any, e.g. cii_allocation).
    assert problems_of(two_classes("price: 3\nbill: price*cii_allocation")) == []
    assert problems_of(two_classes("bill: " + "+".join(["1234567.12345678"] * 23))) == []  # 390 characters


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "rate_structure:\n" + "".join(f"  C{i}:\n    bill: 1\n" for i in range(51)),
            "51 customer classes; at most 50",
        ),
        ("rate_structure:\n  X:\n    bill: 1\n    note: " + "x" * 2001 + "\n", "line 4: a value of 2,001 characters"),
        (
            "metadata: {"
            + ", ".join(f"k{i}: {'x' * 90}" for i in range(50))
            + "}\nrate_structure:\n  X:\n    bill: 1\n",
            "the metadata takes 5,040 characters; at most 4,000",
        ),
        ("rate_structure:\n  X:\n    bill: 1\n    deep: " + "[" * 13 + "]" * 13 + "\n", "nests deeper than 12 levels"),
        ("rate_structure:\n  X:\n    bill: 1\n    l: [" + ", ".join(["1"] * 10_001) + "]\n", "more than 10,000 values"),
    ],
)
def test_files_too_big_to_show_quickly_are_refused(text: str, message: str) -> None:
    with pytest.raises(owrs.OwrsError, match=message.replace("(", r"\(").replace("[", r"\[")):
        owrs.load_text(text, "big.owrs")


def test_classes_too_big_are_refused_by_class_and_field() -> None:
    many = "\n".join(f"p{i}: 1" for i in range(100)) + "\nbill: 1"
    assert "101 parts; at most 100" in problems_of(two_classes(many))[0].reason
    long_map = "x:\n  depends_on: zone\n  values:\n" + "".join(f"    z{i}: 1\n" for i in range(501)) + "bill: x"
    (problem,) = problems_of(two_classes(long_map))
    assert (problem.field_name, problem.reason) == ("x", "the map has 501 values; at most 500 are allowed")


@pytest.mark.parametrize("usage", ["1E+1000000", "Infinity", "NaN", "99999999999999999999"])
def test_absurd_data_gets_a_clear_error_not_a_crash(usage: str) -> None:
    with pytest.raises(owrs.OwrsError) as info:
        bill(SPEC_TIERED, usage_ccf=usage, meter_size='3/4"')
    assert "class RESIDENTIAL_SINGLE" in str(info.value)
