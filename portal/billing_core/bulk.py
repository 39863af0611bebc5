"""Writing many rows in one go, inside the caller's transaction.

On PostgreSQL rows go in with COPY and updates with one ``UPDATE ... FROM
unnest(...)``; on SQLite (one writer, no network) an ``executemany`` is as fast.
Rows are tuples in the order of ``columns``; every column the table needs must
be given, since COPY applies no Python-side defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, FromClause, Table, any_, bindparam, literal, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.types import TypeEngine


def _connection(db: Session | Connection) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def reserve_ids(db: Session | Connection, table: str, n: int) -> list[int]:
    """``n`` fresh primary keys for ``table``, taken before the rows are written."""
    if n <= 0:
        return []
    connection = _connection(db)
    if connection.dialect.name == "postgresql":
        return list(
            connection.scalars(
                text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
                {"n": n},
            )
        )
    # SQLite has one writer at a time, and this transaction is it.
    top = connection.scalar(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")) or 0
    return list(range(top + 1, top + n + 1))


#: Values bound in one ``IN (...)`` on SQLite, well under its 32,766 parameters a statement
#: (PostgreSQL allows 65,535, but there ``among`` binds one array whatever its length).
IN_CHUNK = 5000


def among(
    session: Session,
    column: ColumnElement[Any] | QueryableAttribute[Any],
    ids: Iterable[Any],
    type_: TypeEngine | None = None,
) -> ColumnElement[bool]:
    """``column IN (ids)``; on PostgreSQL ``column = ANY(array)``, one parameter however many
    ids, so the driver parses the statement once instead of once per chunk. On SQLite each
    id is a parameter: give it at most ``IN_CHUNK`` ids at a time (``chunks``)."""
    values = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(type_ if type_ is not None else BigInteger())))
    return column.in_(values)


def chunks(session: Session, values: Iterable[Any], per_statement: int = 1) -> Iterator[list[Any]]:
    """``values`` in lists ``among`` can bind: all at once on PostgreSQL (one array), else
    ``IN_CHUNK`` at a time, or a ``per_statement``-th of that for a statement that binds the
    list that many times (SQLite counts every value of every IN as a variable)."""
    items = list(values)
    size = (len(items) or 1) if session.get_bind().dialect.name == "postgresql" else IN_CHUNK // per_statement
    for start in range(0, len(items), size):
        yield items[start : start + size]


def custom_plans(session: Session) -> None:
    """Plan each statement for its own ids (PostgreSQL, this transaction only). The driver
    prepares statements it sees often, and a generic plan for ``= ANY(array)`` cannot know
    the array holds 500 ids, not millions: it chose sequential scans of the biggest tables."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def _as_table(table: FromClause) -> Table:
    """An ORM class's ``__table__`` (typed ``FromClause``) as the ``Table`` it always is here."""
    assert isinstance(table, Table)
    return table


def insert_rows(db: Session | Connection, table: FromClause, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    if not rows:
        return
    table = _as_table(table)
    connection = _connection(db)
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        assert raw is not None  # a live pooled connection always has its driver connection
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        try:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except raw.IntegrityError as exc:  # as SQLAlchemy raises it for its own statements
            raise IntegrityError(statement, None, exc) from exc
        return
    # One executemany of plain tuples, each value through its column type's bind processing
    # (what ``insert(table)`` with dicts does, without building and reading a dict per row).
    processors = [table.c[c].type.dialect_impl(connection.dialect).bind_processor(connection.dialect) for c in columns]
    if any(processors):
        rows = [tuple(v if f is None else f(v) for v, f in zip(row, processors, strict=True)) for row in rows]
    marks = ", ".join("?" for _c in columns)
    connection.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", list(rows))


def update_rows(session: Session, table: FromClause, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Set ``columns`` on the rows whose ``id`` is each tuple's first item."""
    if not rows:
        return
    table = _as_table(table)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        names = ["id", *columns]
        types = [table.c[n].type.compile(dialect=connection.dialect) for n in names]
        unnest = ", ".join(f"%s::{t}[]" for t in types)
        sets = ", ".join(f"{c} = v.{c}" for c in columns)
        arrays = [list(col) for col in zip(*rows, strict=True)]
        raw = connection.connection.driver_connection
        assert raw is not None  # a live pooled connection always has its driver connection
        with raw.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table.name} AS t SET {sets} FROM unnest({unnest}) AS v({', '.join(names)}) WHERE t.id = v.id",
                arrays,
            )
        return
    stmt = update(table).where(table.c.id == bindparam("_id")).values({c: bindparam(f"_{c}") for c in columns})
    session.execute(
        stmt, [{"_id": row[0], **{f"_{c}": v for c, v in zip(columns, row[1:], strict=True)}} for row in rows]
    )
