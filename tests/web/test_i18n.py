"""English and Spanish: the catalog is complete and current, and the pages speak it."""

from __future__ import annotations

from pathlib import Path

from babel.messages.checkers import python_format
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from starlette.testclient import TestClient

from portal import i18n

from .conftest import csrf_from, sign_in

PORTAL = Path(i18n.__file__).resolve().parent


def _method_map() -> list[tuple[str, str]]:
    return [
        ("**.py", "python"),
        ("templates/*.html", "jinja2"),
        ("templates/customer/**.html", "jinja2"),
        ("templates/account/**.html", "jinja2"),
        ("templates/email/**.txt", "jinja2"),
    ]


def test_every_message_has_its_spanish_translation() -> None:
    with (i18n.LOCALE_DIR / "es" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="es")
    extracted = {
        (m[2] if isinstance(m[2], str) else m[2][0])
        for m in extract_from_dir(
            str(PORTAL),
            _method_map(),
            options_map={"templates/**": {"extensions": "jinja2.ext.i18n"}},
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "N_": None},
        )
    }
    missing = []
    for msgid in sorted(extracted):
        message = catalog.get(msgid)
        strings = [] if message is None else ([message.string] if isinstance(message.string, str) else message.string)
        if message is None or not all(strings) or message.fuzzy:
            missing.append(msgid)
        else:
            python_format(catalog, message)  # the same %(name)s placeholders on both sides
    assert not missing, "run scripts/i18n and translate: " + "; ".join(missing[:10])


def test_a_visitor_switches_to_spanish_and_back(client: TestClient) -> None:
    page = client.get("/sign-in")
    assert '<html lang="en">' in page.text
    response = client.post(
        "/language", data={"csrf_token": csrf_from(page.text), "lang": "es", "next": "/sign-in"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/sign-in"
    page = client.get("/sign-in")
    assert '<html lang="es">' in page.text
    assert "Iniciar sesión" in page.text and "Correo electrónico" in page.text
    client.post("/language", data={"csrf_token": csrf_from(page.text), "lang": "en", "next": "//evil.example"})
    assert '<html lang="en">' in client.get("/sign-in").text


def test_the_browser_language_is_the_first_guess(client: TestClient) -> None:
    page = client.get("/sign-in", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es">' in page.text
    assert i18n.from_accept_language("fr, en;q=0.3, es;q=0.8") == "es"
    assert i18n.from_accept_language("fr") is None


def test_a_customer_keeps_their_language_and_sees_dates_in_it(client: TestClient) -> None:
    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    client.post("/language", data={"csrf_token": csrf_from(home.text), "lang": "es", "next": "/my"})
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    client.cookies.clear()
    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    assert "Mis cuentas" in home.text and "Importe a pagar" in home.text and " de 202" in home.text
    # Put it back for the tests that share the demo district.
    client.post("/language", data={"csrf_token": csrf_from(home.text), "lang": "en", "next": "/my"})


def test_dates_amounts_and_bill_lines_are_written_the_readers_way() -> None:
    from datetime import date

    from portal.templating import make_templates

    env = make_templates().env
    day = date(2026, 10, 5)
    with i18n.use("es"):
        assert env.filters["shortdate"](day) == "5 oct 2026"  # never 05/10/2026 or 10/05/2026
        assert env.filters["longdate"](day) == "5 de octubre de 2026"
        assert env.filters["shortmonth"](day) == "oct 26"
        # US Spanish writes dollars as English does: what residents here read on every receipt.
        assert env.filters["money"](123456) == "$1,234.56" and env.filters["money"](-5) == "-$0.05"
        assert i18n.describe_line("Water usage: 16 CCF × $2.78") == "Consumo de agua: 16 CCF × $2.78"
        assert (
            i18n.describe_line("Service charge (3/4 meter), prorated 50%")
            == "Cargo por servicio (medidor de 3/4), prorrateado al 50%"
        )
        assert (
            i18n.describe_line("Water usage, tier 2: 12 CCF × $4.29 (10/05 to 10/31, 27 days)")
            == "Consumo de agua, nivel 2: 12 CCF × $4.29 (del 5 oct al 31 oct, 27 días)"
        )
        assert i18n.describe_line("Trash, recycling and green waste (64-gallon carts)") == (
            "Basura, reciclaje y residuos de jardín (contenedores de 64 galones)"
        )
        assert i18n.describe_line("Some agency fee") == "Some agency fee"  # a name we do not know stays
    with i18n.use("en"):
        assert env.filters["shortdate"](day) == "Oct 5, 2026"
        assert env.filters["money"](123456) == "$1,234.56"
        for line in (
            "Water usage: 16 CCF × $2.78",
            "Service charge (3/4 meter), prorated 50%",
            "Utility users tax: 5% of $45.10",
        ):
            assert i18n.describe_line(line) == line
        assert i18n.describe_line("Tier 1: 4 CCF × $2.10 (10/05 to 10/31, 27 days)") == (
            "Tier 1: 4 CCF × $2.10 (Oct 5 to Oct 31, 27 days)"
        )


def test_amounts_are_what_babel_writes_for_each_language() -> None:
    from babel.numbers import format_currency

    from portal.billing_core.money import cents_to_decimal
    from portal.templating import PLAIN_DOLLARS, make_templates

    money = make_templates().env.filters["money"]
    assert PLAIN_DOLLARS >= set(i18n.BABEL_LOCALES.values())
    for code, locale in i18n.BABEL_LOCALES.items():
        with i18n.use(code):
            for cents in (0, 5, -5, 99, 100, 123456, -123456, 100_000_000_00):
                assert money(cents) == format_currency(cents_to_decimal(cents), "USD", locale=locale), (code, cents)


def test_no_customer_page_writes_a_date_by_hand() -> None:
    import re

    customer_facing = [
        *PORTAL.glob("templates/*.html"),
        *PORTAL.glob("templates/customer/*.html"),
        *PORTAL.glob("templates/account/*.html"),
        *PORTAL.glob("templates/email/*"),
    ]
    hand_made = re.compile(r"strftime|%m/%d|%d/%m|%b %y|%B")
    found = [str(p.relative_to(PORTAL)) for p in customer_facing if hand_made.search(p.read_text(encoding="utf-8"))]
    assert not found, found


def test_a_spanish_customer_sees_short_dates_with_the_month_in_words(client: TestClient) -> None:
    import re

    from babel.dates import format_date

    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    client.post("/language", data={"csrf_token": csrf_from(home.text), "lang": "es", "next": "/my"})
    try:
        number = home.context["summaries"][0].account.number
        page = client.get(f"/my/accounts/{number}")
        bill = page.context["bills"][0]
        period = f"{format_date(bill.period_start, 'medium', locale='es_US')} al"
        assert period in page.text or format_date(bill.period_start, "medium", locale="es_US") in page.text
        assert re.search(r"\d{1,2} [a-z]{3,4} 20\d\d", page.text)
        assert not re.search(r"\b\d{2}/\d{2}/\d{4}\b", page.text)
    finally:
        client.post("/language", data={"csrf_token": csrf_from(client.get("/my").text), "lang": "en", "next": "/my"})
