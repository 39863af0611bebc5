"""``portal notices print``: a day's notices of each kind as one PDF per kind, ZIP order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.billing_core import notices
from portal.billing_core.models import NoticeBatch, User
from portal.cli import main
from tests.db.factories import district

ON = date(2026, 3, 2)


def test_notices_print_makes_one_pdf_per_kind(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("FILES_DIR", str(tmp_path))
    now = datetime(2026, 3, 2, 17, tzinfo=UTC)
    with Session(engine) as s, s.begin():
        a, b = district(s, 2)
        notices.issue(s, a, "final", ON, 5_000, date(2026, 3, 13), date(2026, 3, 16), None, now)
        notices.issue(s, b, "final", ON, 7_000, date(2026, 3, 13), date(2026, 3, 16), None, now)
        notices.issue(s, b, "past_due", ON, 7_000, date(2026, 3, 13), None, None, now)
        s.add_all([User(email="spec@example.net", role="specialist"), User(email="cash@example.net", role="cashier")])
    assert main(["notices", "print", "--on", "2026-03-02", "--as", "cash@example.net"]) == 2  # not allowed
    assert main(["notices", "print", "--on", "2026-03-02", "--as", "spec@example.net"]) == 0
    out = capsys.readouterr().out
    assert "final: 2 notices" in out and "past_due: 1 notices" in out
    with Session(engine) as s:
        batches = {b.kind: b for b in s.scalars(select(NoticeBatch))}
    assert set(batches) == {"final", "past_due"}
    with pikepdf.open(batches["final"].pdf_path) as pdf:
        assert len(pdf.pages) >= 2
    assert main(["notices", "print", "--on", "2026-03-03", "--as", "spec@example.net"]) == 0
    assert "no notices were issued on 2026-03-03" in capsys.readouterr().out
