"""Time the OWRS quote contract on cases drawn from the whole corpus.

    .venv/bin/python bench/quote.py [--cases 60000] [--owrs-root ../shared/owrs]

Writes a cases CSV (every class of every file, with map keys picked from the
file so most cases can be billed, and usage spread from 0 to 200 units), then
runs `portal rates quote` on it in a fresh process and prints cases per second.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_cases(owrs_root: Path, n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    templates = []
    for path in sorted(owrs_root.glob("full_utility_rates/**/*.owrs")):
        rel = str(path.relative_to(owrs_root))
        try:
            doc = yaml.load(path.read_text(errors="replace"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            doc = None
        structure = doc.get("rate_structure") if isinstance(doc, dict) else None
        if not isinstance(structure, dict):
            templates.append((rel, "RESIDENTIAL_SINGLE", []))
            continue
        for cls, body in structure.items():
            maps = [v for v in (body or {}).values() if isinstance(v, dict) and isinstance(v.get("values"), dict)]
            templates.append((rel, str(cls), maps))
    cases = []
    for i in range(n):
        rel, cls, maps = templates[i % len(templates)]
        row = {
            "file": rel,
            "cust_class": cls,
            "meter_size": '5/8"',
            "usage_ccf": str(rng.choice([rng.randint(0, 30), rng.randint(0, 200), round(rng.uniform(0, 60), 1)])),
            "hhsize": str(rng.randint(1, 7)),
            "et_amount": f"{rng.uniform(1, 8):.2f}",
            "irr_area": str(rng.randint(0, 6000)),
            "days_in_period": str(rng.choice([28, 30, 31, 59, 61])),
            "number_dwelling_units": str(rng.randint(1, 40)),
        }
        for m in maps:
            deps = m.get("depends_on")
            deps = [deps] if isinstance(deps, str) else list(deps or [])
            key = str(rng.choice(list(m["values"])))
            parts = key.split("|") if len(deps) > 1 else [key]
            if len(parts) == len(deps):
                for dep, part in zip(deps, parts, strict=True):
                    row.setdefault(dep, part)
                    if dep == "meter_size" and row["meter_size"] == '5/8"':
                        row["meter_size"] = part
        cases.append(row)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=60_000)
    parser.add_argument("--owrs-root", default=str(ROOT.parent / "shared" / "owrs"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    root = Path(args.owrs_root)
    cases = make_cases(root, args.cases, args.seed)
    columns: list[str] = []
    for row in cases:
        columns += [c for c in row if c not in columns]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cases.csv"
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(cases)
        portal = Path(sys.executable).with_name("portal")
        start = time.perf_counter()
        done = subprocess.run(
            [str(portal), "rates", "quote", "--owrs-root", str(root), "--cases", str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ},
        )
        elapsed = time.perf_counter() - start
    rows = list(csv.DictReader(done.stdout.splitlines()))
    billed = sum(1 for r in rows if r["bill"])
    print(
        f"cases: {len(rows):,} across {len({r['file'] for r in rows})} files; billed {billed:,}, "
        f"explained errors {len(rows) - billed:,}"
    )
    print(
        f"wall time {elapsed:.1f} s (whole command, start-up and file parsing included): "
        f"{len(rows) / elapsed:,.0f} cases/s"
    )


if __name__ == "__main__":
    main()
