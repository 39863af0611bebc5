"""References checked a statement at a time on PostgreSQL.

A bill run writes about 15 rows per bill into three tables whose references a
foreign key would check one row at a time (a query and a row lock each): bill lines,
usage and ledger entries. On PostgreSQL those foreign keys are replaced by triggers
that check a whole statement's rows at once (a COPY of a chunk is one statement):
every reference must name an existing row, which is locked ``FOR KEY SHARE`` just as a
foreign key would lock it, once per distinct row. Deleting or renumbering a row that
is still referenced is refused the same way. SQLite keeps ordinary foreign keys.

The models still declare these columns as foreign keys (for the ORM and for SQLite);
``SET_CHECKED`` lists the ones that are triggers on PostgreSQL instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: child table -> [(column, parent table)]
SET_CHECKED: dict[str, list[tuple[str, str]]] = {
    "bill_line": [("bill_id", "bill"), ("rate_version_id", "rate_schedule_version")],
    "bill_usage": [
        ("bill_id", "bill"),
        ("meter_id", "meter"),
        ("previous_read_id", "meter_read"),
        ("current_read_id", "meter_read"),
    ],
    "ledger_entry": [("transaction_id", "ledger_transaction"), ("account_id", "account")],
    # Issue 17 (migration 0019): a bill run also writes a bill and a ledger transaction per
    # account; their row-by-row foreign keys were three quarters of inserting them.
    "bill": [("account_id", "account"), ("bill_run_id", "bill_run"), ("ledger_transaction_id", "ledger_transaction")],
    "ledger_transaction": [
        ("account_id", "account"),
        ("posted_by_id", "user_account"),
        ("reverses_id", "ledger_transaction"),
    ],
}
#: The child tables each migration switched to statement-level checks.
FIRST = ("bill_line", "bill_usage", "ledger_entry")  # migration 0005
BILLS = ("bill", "ledger_transaction")  # migration 0019


def constraint_name(child: str, column: str, parent: str) -> str:
    return f"fk_{child}_{column}_{parent}"


#: Parents that need no delete check: the ledger is append-only (its own triggers refuse
#: every UPDATE and DELETE, migration 0001).
APPEND_ONLY = frozenset({"ledger_transaction"})


def _parents(children: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for child in children:
        for column, parent in SET_CHECKED[child]:
            if parent not in APPEND_ONLY:
                out.setdefault(parent, []).append((child, column))
    return out


def install_sql(children: Sequence[str] = tuple(SET_CHECKED), checked: Sequence[str] = tuple(SET_CHECKED)) -> list[str]:
    """PostgreSQL statements that swap the foreign keys of ``children`` for statement-level
    checks, and make each parent's delete check cover the references of every table in
    ``checked`` (those switched so far, ``children`` among them)."""
    sql: list[str] = []
    for child in children:
        refs = SET_CHECKED[child]
        checks = []
        for column, parent in refs:
            sql.append(f"ALTER TABLE {child} DROP CONSTRAINT IF EXISTS {constraint_name(child, column, parent)}")
            checks.append(
                f"""
  WITH wanted AS (SELECT DISTINCT {column} AS id FROM new_rows WHERE {column} IS NOT NULL),
       found AS (SELECT p.id FROM {parent} p JOIN wanted w ON p.id = w.id FOR KEY SHARE OF p)
  SELECT (SELECT count(*) FROM wanted) - (SELECT count(*) FROM found) INTO missing;
  IF missing > 0 THEN
    RAISE EXCEPTION 'insert or update on table "{child}" violates foreign key "{column}": '
      '% row(s) refer to no {parent}', missing USING ERRCODE = 'foreign_key_violation';
  END IF;"""
            )
        sql.append(
            f"CREATE OR REPLACE FUNCTION check_refs_{child}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"DECLARE missing bigint;\nBEGIN{''.join(checks)}\n  RETURN NULL;\nEND $$"
        )
        for event in ("INSERT", "UPDATE"):
            name = f"check_refs_{child}_{event.lower()}"
            sql.append(f"DROP TRIGGER IF EXISTS {name} ON {child}")
            sql.append(
                f"CREATE TRIGGER {name} AFTER {event} ON {child} REFERENCING NEW TABLE AS new_rows "
                f"FOR EACH STATEMENT EXECUTE FUNCTION check_refs_{child}()"
            )
    sql += _parent_sql(checked)
    return sql


def _parent_sql(checked: Sequence[str]) -> list[str]:
    """Each parent's delete check, over the references of the tables in ``checked``; a
    parent none of them refers to loses its check."""
    sql: list[str] = []
    wanted = _parents(checked)
    for parent in _parents(SET_CHECKED):
        if parent not in wanted:
            sql.append(f"DROP TRIGGER IF EXISTS check_referenced_{parent} ON {parent}")
            sql.append(f"DROP FUNCTION IF EXISTS check_referenced_{parent}()")
    for parent, refs in wanted.items():
        checks = []
        for child, column in refs:
            checks.append(
                f"""
  IF EXISTS (SELECT 1 FROM {child} c WHERE c.{column} = OLD.id) THEN
    RAISE EXCEPTION 'update or delete on table "{parent}" violates foreign key "{column}" on table "{child}"'
      USING ERRCODE = 'foreign_key_violation';
  END IF;"""
            )
        sql.append(
            f"CREATE OR REPLACE FUNCTION check_referenced_{parent}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN{''.join(checks)}\n  RETURN OLD;\nEND $$"
        )
        name = f"check_referenced_{parent}"
        sql.append(f"DROP TRIGGER IF EXISTS {name} ON {parent}")
        sql.append(
            f"CREATE TRIGGER {name} BEFORE DELETE OR UPDATE OF id ON {parent} "
            f"FOR EACH ROW EXECUTE FUNCTION check_referenced_{parent}()"
        )
    return sql


def uninstall_sql(children: Sequence[str] = tuple(SET_CHECKED), checked: Sequence[str] = ()) -> list[str]:
    """Back to ordinary foreign keys for ``children`` (a migration's downgrade); the parents'
    delete checks then cover the tables still in ``checked``."""
    sql: list[str] = _parent_sql(checked)
    for child in children:
        refs = SET_CHECKED[child]
        for event in ("insert", "update"):
            sql.append(f"DROP TRIGGER IF EXISTS check_refs_{child}_{event} ON {child}")
        sql.append(f"DROP FUNCTION IF EXISTS check_refs_{child}()")
        for column, parent in refs:
            sql.append(
                f"ALTER TABLE {child} ADD CONSTRAINT {constraint_name(child, column, parent)} "
                f"FOREIGN KEY ({column}) REFERENCES {parent} (id)"
            )
    return sql
