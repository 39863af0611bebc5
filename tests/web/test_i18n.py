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
