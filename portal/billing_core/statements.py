"""Statements built once per process and run many times with fresh parameters.

Building a ``select()`` (coercing every column and operator) and computing its cache key
costs more Python than running the compiled SQL SQLAlchemy already caches: a page that asks
a dozen small questions spends a few milliseconds just building them. A statement kept here
is built on first use with ``bindparam`` placeholders, memoizes its cache key, and is then
executed with the request's values (``session.execute(stmt, {...})``).

A statement may differ by dialect (``among``'s array on PostgreSQL); the key then names it.
Two threads building the same key at once both build it, and one keeps it: harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute, Session

T = TypeVar("T")

_BUILT: dict[tuple[Any, ...], Any] = {}


def once(key: tuple[Any, ...], build: Callable[[], T]) -> T:
    """The statement kept under ``key``, built by ``build`` the first time."""
    try:
        return _BUILT[key]
    except KeyError:
        statement = _BUILT[key] = build()
        return statement


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def among(dialect_name: str, column: ColumnElement[Any] | QueryableAttribute[Any], name: str) -> ColumnElement[bool]:
    """``column IN (:name)`` for a list bound at execution: one array parameter on
    PostgreSQL (``= ANY``), an expanding ``IN`` on SQLite, where every value is a variable:
    at most ``bulk.IN_CHUNK`` values in a statement, all its INs counted (``bulk.chunks``'
    ``per_statement``)."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger())))
    return column.in_(bindparam(name, expanding=True))
