import re
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree

from portal.charts import usage_chart

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1))


def test_bars_are_drawn_to_scale_with_a_label_for_every_period() -> None:
    uses = [(date(2026, 1, 5), Decimal(10)), (date(2026, 2, 5), None), (date(2026, 3, 5), Decimal("20.5"))]
    root = parse(usage_chart(uses, "CCF"))
    assert root.find(f"{SVG}title").text == "Use per read period, in CCF"
    heights = [int(h) for h in re.findall(r"v(\d+)", root.find(f"{SVG}path").get("d"))]
    assert heights == [int(156 * 10 / Decimal("20.5")), 156]  # no bar for the period with no use known
    months, values = root.findall(f"{SVG}text")
    assert [t.text for t in months] == ["Jan", "Feb", "Mar"]
    assert [t.text for t in values] == ["10", "20.5"]


def test_no_history_draws_nothing_and_all_zero_draws_no_bars() -> None:
    assert usage_chart([], "CCF") == ""
    root = parse(usage_chart([(date(2026, 1, 5), Decimal(0))], "kgal"))
    assert root.find(f"{SVG}path").get("d") == ""
    assert [t.text for t in root.findall(f"{SVG}text")[1]] == ["0"]


def test_bill_bars_fill_one_column_per_period_and_the_labels_line_up_under_them() -> None:
    from portal.charts import LABEL_WIDTH, usage_bars, usage_labels

    uses = [(date(2025, 12, 5), Decimal(8)), (date(2026, 1, 5), None), (date(2026, 2, 5), Decimal(16))]
    root = parse(usage_bars(uses))
    assert root.get("viewBox") == "0 0 30 100" and root.get("preserveAspectRatio") == "none"
    assert root.find(f"{SVG}path").get("d") == "M2 52h6v48h-6zM22 4h6v96h-6z"  # no bar for January
    months, values = usage_labels(uses).split("\n")
    assert months == " Dec 25  Jan 26  Feb 26" and len("Dec 25".center(LABEL_WIDTH)) == LABEL_WIDTH
    assert [values[i * LABEL_WIDTH : (i + 1) * LABEL_WIDTH].strip() for i in range(3)] == ["8", "", "16"]
    assert usage_bars([]) == ""
