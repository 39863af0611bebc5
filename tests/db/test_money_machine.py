"""Random sequences of every money operation keep the ledger sound (see money_machine.py).

``PORTAL_MONEY_MACHINE_EXAMPLES`` sets how many sequences each database runs (25 in the
suite; run it with thousands by hand, e.g. before a release:
``PORTAL_MONEY_MACHINE_EXAMPLES=2000 .venv/bin/python -m pytest tests/db/test_money_machine.py -s``).
Hypothesis keeps the failing and interesting sequences in its example database,
``.hypothesis/examples/`` at the top of the repository (ignored by git), and every run starts
by replaying them: set here, so it is kept on CI too (Hypothesis's CI profile would turn it off
and run the same sequences every time). A run prints how many sequences and steps it ran and
how fast (``-s`` shows it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import Engine, text

from .money_machine import MoneyMachine
from .money_rules import all_mixins

EXAMPLES = int(os.environ.get("PORTAL_MONEY_MACHINE_EXAMPLES", "25"))
EXAMPLE_DATABASE = Path(__file__).resolve().parents[2] / ".hypothesis" / "examples"


def test_money_operations_keep_the_ledger_sound(engine: Engine) -> None:
    machine = type("Machine", (*all_mixins(), MoneyMachine), {})
    machine.seed(engine)
    started = time.perf_counter()
    try:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=25,
                deadline=None,
                derandomize=False,
                database=DirectoryBasedExampleDatabase(EXAMPLE_DATABASE),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        machine.finish()
    took = time.perf_counter() - started
    runs, checks = machine.counted["sequences"], machine.counted["checks"]
    steps = checks - runs
    print(
        f"\nmoney machine on {engine.dialect.name}: {runs} sequences, {steps} steps in {took:.1f} s:"
        f" {runs / took:.2f} sequences/s, {steps / took:.1f} steps/s"
    )
    # Every sequence was rolled back: the database holds the seed only.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_transaction")).scalar() == 0
