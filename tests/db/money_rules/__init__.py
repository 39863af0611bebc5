"""Each area's operations for the money state machine (``tests/db/money_machine.py``): a
module per area, holding mixin classes named ``...Rules``."""

from __future__ import annotations

import importlib
import pkgutil


def all_mixins() -> list[type]:
    found: list[type] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            obj
            for name, obj in vars(module).items()
            if isinstance(obj, type) and name.endswith("Rules") and obj.__module__ == module.__name__
        ]
    return found
