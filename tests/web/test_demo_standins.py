"""The demo stand-ins are for a developer's own machine: refused in production, and the
outbox at /dev/outbox does not exist unless they are on."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from portal import cli, devstack
from portal.app import create_app
from portal.settings import Settings

MESSAGE = (
    b"From: billing@example.org\r\nTo: robin@example.net\r\nSubject: Confirm your email address\r\n"
    b"Date: Wed, 02 Dec 2026 01:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    b"Open this link: http://127.0.0.1:8000/confirm-email?token=abc&x=1\r\n<script>alert(1)</script>\r\n"
)


def standins(tmp_path: Path, **changes: object) -> Settings:
    values: dict = {
        "secret_key": "t",
        "development": True,
        "demo_standins": True,
        "public_url": "http://127.0.0.1:8000",
        "files_dir": str(tmp_path),
    }
    values.update(changes)
    return Settings(**values)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"development": False}, "without PORTAL_DEVELOPMENT=1"),
        ({"public_url": "https://billing.example.gov"}, "billing.example.gov"),
        ({"public_url": "http://10.0.0.5:8000"}, "10.0.0.5"),
    ],
)
def test_the_portal_refuses_to_start_with_stand_ins_outside_development(
    tmp_path: Path, changes: dict, reason: str
) -> None:
    with pytest.raises(devstack.StandinsRefused, match=reason):
        create_app(standins(tmp_path, **changes))


def test_stand_ins_start_on_this_machine_only(tmp_path: Path) -> None:
    create_app(standins(tmp_path))  # development on 127.0.0.1: allowed
    create_app(standins(tmp_path, public_url="http://localhost:8000"))
    create_app(Settings(secret_key="t", development=False))  # no stand-ins: production as ever
    with pytest.raises(devstack.StandinsRefused, match="0.0.0.0"):
        devstack.check(standins(tmp_path), host="0.0.0.0")


def test_portal_serve_refuses_stand_ins_on_a_public_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORTAL_DEMO_STANDINS", "1")
    monkeypatch.setenv("PORTAL_DEVELOPMENT", "1")
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the portal must not start"))
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "8765"]) == 2
    assert "serves this machine only" in capsys.readouterr().err
    monkeypatch.delenv("PORTAL_DEVELOPMENT")
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "8765"]) == 2
    assert "without PORTAL_DEVELOPMENT=1" in capsys.readouterr().err


def _caught(tmp_path: Path) -> str:
    folder = tmp_path / "dev-outbox"
    folder.mkdir()
    (folder / "1764637200000000000-1.eml").write_bytes(MESSAGE)
    return "1764637200000000000-1.eml"


def test_the_outbox_lists_caught_emails_with_their_links_clickable(tmp_path: Path) -> None:
    name = _caught(tmp_path)
    client = TestClient(create_app(standins(tmp_path)), base_url="http://127.0.0.1:8000")
    listing = client.get("/dev/outbox/")
    assert listing.status_code == 200 and "Confirm your email address" in listing.text
    assert f'href="/dev/outbox/{name}"' in listing.text and "robin@example.net" in listing.text
    message = client.get(f"/dev/outbox/{name}")
    assert message.status_code == 200
    assert '<a href="http://127.0.0.1:8000/confirm-email?token=abc&amp;x=1">' in message.text
    assert "<script>alert(1)</script>" not in message.text and "&lt;script&gt;" in message.text
    assert message.headers["cache-control"] == "no-store"
    assert client.get("/dev/outbox/..%2F..%2Fportal.sqlite3").status_code == 404
    assert client.get("/dev/outbox/123-4.eml").status_code == 404


def test_the_outbox_does_not_exist_without_the_stand_ins(tmp_path: Path) -> None:
    name = _caught(tmp_path)
    for settings in (
        Settings(secret_key="t", development=True, files_dir=str(tmp_path)),
        Settings(secret_key="t", development=False, files_dir=str(tmp_path)),
    ):
        client = TestClient(create_app(settings), base_url="http://127.0.0.1:8000")
        assert client.get("/dev/outbox/").status_code == 404
        assert client.get(f"/dev/outbox/{name}").status_code == 404
    # Asked for by another name than this machine's (through a proxy, say): not there either.
    client = TestClient(create_app(standins(tmp_path)), base_url="http://billing.example.gov")
    assert client.get("/dev/outbox/").status_code == 404
