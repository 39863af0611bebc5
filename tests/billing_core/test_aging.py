from datetime import date

import pytest

from portal.billing_core.aging import Posting, age, bucket_for

D = date.fromisoformat


@pytest.mark.parametrize(
    "days, bucket",
    [
        (-5, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "over 90"),
    ],
)
def test_buckets(days: int, bucket: str) -> None:
    assert bucket_for(days) == bucket


CASES = [
    # name, postings, as_of, balance, past_due, days_past_due, buckets that are non-zero
    ("nothing", [], "2026-03-01", 0, 0, 0, {}),
    (
        "one bill, not yet due",
        [Posting(D("2026-02-01"), 10000, D("2026-02-22"))],
        "2026-02-10",
        10000,
        0,
        0,
        {"current": 10000},
    ),
    (
        "one bill, 7 days late",
        [Posting(D("2026-02-01"), 10000, D("2026-02-22"))],
        "2026-03-01",
        10000,
        10000,
        7,
        {"1-30": 10000},
    ),
    (
        "paid in full",
        [Posting(D("2026-02-01"), 10000, D("2026-02-22")), Posting(D("2026-02-15"), -10000)],
        "2026-06-01",
        0,
        0,
        0,
        {},
    ),
    (
        "partial payment applies to the oldest bill first",
        [
            Posting(D("2026-01-01"), 5000, D("2026-01-22")),
            Posting(D("2026-02-01"), 6000, D("2026-02-22")),
            Posting(D("2026-02-25"), -7000),
        ],
        "2026-03-30",
        4000,
        4000,
        36,
        {"31-60": 4000},
    ),
    (
        "three months behind",
        [
            Posting(D("2026-01-01"), 5000, D("2026-01-22")),
            Posting(D("2026-02-01"), 5000, D("2026-02-22")),
            Posting(D("2026-03-01"), 5000, D("2026-03-22")),
            Posting(D("2026-04-01"), 5000, D("2026-04-22")),
        ],
        "2026-04-25",
        20000,
        20000,
        93,
        {"over 90": 5000, "61-90": 5000, "31-60": 5000, "1-30": 5000, "current": 0},
    ),
    (
        "overpayment is a credit",
        [Posting(D("2026-02-01"), 5000, D("2026-02-22")), Posting(D("2026-02-10"), -8000)],
        "2026-03-01",
        -3000,
        0,
        0,
        {},
    ),
    (
        "credit pays a later bill",
        [Posting(D("2026-01-10"), -3000), Posting(D("2026-02-01"), 5000, D("2026-02-22"))],
        "2026-03-01",
        2000,
        2000,
        7,
        {"1-30": 2000},
    ),
]


@pytest.mark.parametrize("name, postings, as_of, balance, past_due, days, buckets", CASES, ids=[c[0] for c in CASES])
def test_aging(name, postings, as_of, balance, past_due, days, buckets) -> None:  # type: ignore[no-untyped-def]
    aged = age(postings, D(as_of))
    assert aged.balance_cents == balance
    assert aged.past_due_cents == past_due
    assert aged.days_past_due == days
    for bucket, cents in buckets.items():
        assert aged.buckets[bucket] == cents, bucket
    assert sum(aged.buckets.values()) == max(balance, 0)
