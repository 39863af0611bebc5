"""Adjustments (with and without approval), write-offs and recoveries, for the money state
machine: each rule calls the service the office uses."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import rule
from sqlalchemy import select

from portal.adapters.database import transaction
from portal.billing_core import permissions
from portal.billing_core.models import Account, Adjustment, User, WriteOff
from portal.billing_core.permissions import Action
from portal.services import adjustments, write_offs

from ..money_machine import after_writes

PREPARERS = ("csr", "specialist", "supervisor", "admin", "cashier")
DECIDERS = ("specialist", "supervisor", "supervisor2", "admin")
REASONS = ("leak", "meter_error", "billing_error", "courtesy", "fee_waiver", "other")


class AdjustRules:
    @rule(
        account=st.integers(0, 2),
        who=st.sampled_from(PREPARERS),
        cents=st.integers(-150_000, 150_000).filter(lambda c: c != 0),
        service=st.sampled_from(("water", "sewer", "fees", "gas")),
        reason=st.sampled_from(REASONS),
    )
    def prepare_adjustment(self, account: int, who: str, cents: int, service: str, reason: str) -> None:
        number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]
        values = {
            "service": service,
            "amount": f"{cents / 100:.2f}",
            "reason": reason,
            "note": "machine" if reason == "other" else "",
        }

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                adjustments.prepare(session, self.staff[who], number, values, self.today, self.now)  # type: ignore[attr-defined]

        self.expect_refused(act)  # type: ignore[attr-defined]

    @rule(pick=st.integers(0, 5), who=st.sampled_from(DECIDERS), approve=st.booleans())
    def decide_adjustment(self, pick: int, who: str, approve: bool) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            waiting = session.scalars(select(Adjustment.id).where(Adjustment.status == "pending")).all()
        if not waiting:
            return
        item_id = waiting[pick % len(waiting)]

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                adjustments.decide(
                    session,
                    self.staff[who],  # type: ignore[attr-defined]
                    item_id,
                    "approve" if approve else "reject",
                    "machine says no",
                    self.today,  # type: ignore[attr-defined]
                    self.now,  # type: ignore[attr-defined]
                )

        self.expect_refused(act)  # type: ignore[attr-defined]

    @rule(account=st.integers(0, 2))
    def account_goes_final(self, account: int) -> None:
        """Stand-in for a stop of service (not a money operation): the account becomes final,
        so its balance may be written off; payments are still taken."""
        with transaction(self.sessions) as session:  # type: ignore[attr-defined]
            session.get_one(Account, self.accounts[account]).status = "final"  # type: ignore[attr-defined]

    @rule(
        account=st.integers(0, 2),
        who=st.sampled_from(("specialist", "supervisor", "csr")),
        cents=st.integers(1, 60_000),
    )
    def prepare_write_off(self, account: int, who: str, cents: int) -> None:
        number = self.numbers[self.accounts[account]]  # type: ignore[attr-defined]

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                write_offs.prepare(
                    session,
                    self.staff[who],  # type: ignore[attr-defined]
                    number,
                    {"amount": f"{cents / 100:.2f}", "reason": "uncollectible"},
                    self.now,  # type: ignore[attr-defined]
                )

        self.expect_refused(act)  # type: ignore[attr-defined]

    @rule(pick=st.integers(0, 5), who=st.sampled_from(DECIDERS), approve=st.booleans())
    def decide_write_off(self, pick: int, who: str, approve: bool) -> None:
        with self.sessions() as session:  # type: ignore[attr-defined]
            waiting = session.scalars(select(WriteOff.id).where(WriteOff.status == "pending")).all()
        if not waiting:
            return
        item_id = waiting[pick % len(waiting)]

        def act() -> None:
            with transaction(self.sessions) as session:  # type: ignore[attr-defined]
                write_offs.decide(
                    session,
                    self.staff[who],  # type: ignore[attr-defined]
                    item_id,
                    "approve" if approve else "reject",
                    "still collecting",
                    self.today,  # type: ignore[attr-defined]
                    self.now,  # type: ignore[attr-defined]
                )

        self.expect_refused(act)  # type: ignore[attr-defined]

    @after_writes
    def maker_checker_holds(self) -> None:
        """A posted adjustment is within its preparer's limit or was approved by someone
        else within theirs; a posted write-off always by someone else; a rejection says why."""
        with self.sessions() as session:  # type: ignore[attr-defined]
            people = {u.id: u for u in session.scalars(select(User))}
            for a in session.scalars(select(Adjustment)):
                preparer = people[a.prepared_by_id]
                if a.status == "posted" and a.decided_by_id is None:
                    assert permissions.within_limit(preparer.role, Action.ADJUSTMENTS_PREPARE, a.amount_cents)
                if a.decided_by_id is not None:
                    assert a.decided_by_id != a.prepared_by_id
                if a.status == "posted" and a.decided_by_id is not None:
                    approver = people[a.decided_by_id]
                    assert permissions.within_limit(approver.role, Action.ADJUSTMENTS_APPROVE, a.amount_cents)
                if a.status == "rejected":
                    assert a.decision_note
            for w in session.scalars(select(WriteOff)):
                if w.status == "posted":
                    assert w.decided_by_id is not None and w.decided_by_id != w.prepared_by_id
                    assert session.get_one(Account, w.account_id).status in ("final", "closed")
