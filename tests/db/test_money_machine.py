"""Random sequences of every money operation keep the ledger sound (see money_machine.py).

``PORTAL_MONEY_MACHINE_EXAMPLES`` sets how many sequences each database runs (a few dozen
in the suite; run it with thousands by hand, e.g. before a release). Hypothesis keeps the
failing and interesting sequences in its example database (.hypothesis/), so every run
starts with those."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import Engine, text

from .money_machine import MoneyMachine
from .money_rules import all_mixins

EXAMPLES = int(os.environ.get("PORTAL_MONEY_MACHINE_EXAMPLES", "25"))


def test_money_operations_keep_the_ledger_sound(engine: Engine) -> None:
    machine = type("Machine", (*all_mixins(), MoneyMachine), {})
    machine.seed(engine)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # Every sequence was rolled back: the database holds the seed only.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_transaction")).scalar() == 0
