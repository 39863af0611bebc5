"""The anchor of ``bench/pages.py``: a bare Starlette app rendering a Jinja table of 24 rows
(a bill history's shape: date, period, amount, due date, state), autoescaped, per request.

    .venv/bin/uvicorn bench.bare_app:app --host 127.0.0.1 --port 8001 --no-proxy-headers
"""

from __future__ import annotations

from datetime import date, timedelta

from jinja2 import DictLoader, Environment, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><main>
<h1>{{ title }}</h1>
<table>
<thead><tr><th>Bill date</th><th>Service period</th><th>Amount</th><th>Due</th><th>Paid?</th></tr></thead>
<tbody>
{% for row in rows %}<tr><th scope="row"><a href="/bills/{{ row.number }}">{{ row.bill_date }}</a></th>
<td>{{ row.start }} to {{ row.end }}</td><td>${{ row.cents // 100 }}.{{ "%02d"|format(row.cents % 100) }}</td>
<td>{{ row.due }}</td><td>{{ row.state }}</td></tr>
{% endfor %}
</tbody></table>
</main></body></html>
"""

ENV = Environment(loader=DictLoader({"table.html": TEMPLATE}), autoescape=select_autoescape(default=True))
FIRST = date(2024, 12, 5)
ROWS = [
    {
        "number": f"B{n:09d}",
        "bill_date": (FIRST + timedelta(days=30 * n)).isoformat(),
        "start": (FIRST + timedelta(days=30 * n - 31)).isoformat(),
        "end": (FIRST + timedelta(days=30 * n)).isoformat(),
        "cents": 6_000 + 37 * n,
        "due": (FIRST + timedelta(days=30 * n + 21)).isoformat(),
        "state": "paid" if n < 23 else "due",
    }
    for n in range(24)
]


def table(request: Request) -> HTMLResponse:
    return HTMLResponse(ENV.get_template("table.html").render(title="Account 00000001", rows=ROWS))


app = Starlette(routes=[Route("/", table)])
