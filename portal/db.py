"""TEMPORARY, for the merge of issue 13 only: the database adapter is
``portal/adapters/database.py``. This module remains because files outside this branch's
area still import it (portal/autopay.py, portal/cli.py, portal/demo.py,
portal/devstack.py); delete it when their imports point at ``portal.adapters.database``."""

from .adapters.database import make_engine, make_sessionmaker, transaction

__all__ = ["make_engine", "make_sessionmaker", "transaction"]
