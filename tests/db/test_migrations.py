import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from portal.billing_core.models import Base
from portal.billing_core.references import SET_CHECKED, constraint_name
from portal.migrate import is_current, upgrade


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    # On PostgreSQL a few foreign keys are triggers instead (billing_core/references.py).
    set_checked = (
        {constraint_name(child, col, parent) for child, refs in SET_CHECKED.items() for col, parent in refs}
        if engine.dialect.name == "postgresql"
        else set()
    )
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda o, n, t, r, c: (
                    not (n or "").startswith("procrastinate")
                    and not (t == "foreign_key_constraint" and n in set_checked)
                ),
            },
        )
        assert compare_metadata(context, Base.metadata) == []
    assert is_current(engine)


def test_migrate_is_safe_to_run_again(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert is_current(engine)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entry SET amount_cents = 0",
        "DELETE FROM ledger_entry",
        "UPDATE ledger_transaction SET memo = 'changed'",
        "DELETE FROM ledger_transaction",
    ],
)
def test_the_database_refuses_to_change_the_ledger(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_transaction (id, kind, effective_on, memo, posted_at) "
                "VALUES (1, 'adjustment', '2026-01-01', 'x', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text("INSERT INTO ledger_entry (transaction_id, gl_account, amount_cents) VALUES (1, 'A', 5), (1, 'B', -5)")
        )
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM ledger_entry")) == 2
        assert conn.scalar(text("SELECT sum(amount_cents) FROM ledger_entry WHERE amount_cents > 0")) == 5
