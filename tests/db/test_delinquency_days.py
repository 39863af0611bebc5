"""120 simulated days of a small district through the daily delinquency run, on SQLite and
PostgreSQL: monthly bills; some accounts never pay, one pays late every month, one pays in
full after its shutoff notice, one disputes its bill, one keeps a payment plan, one is a
landlord's (the Occupant gets copies). Every fee, notice and order happens once, on a
business day, in the ladder's order; no shutoff order is one the gate would refuse; a
payment stops the ladder."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import collection_facts, collection_run, ladder_policy, ledger_check, shutoff_gate
from portal.billing_core.models import (
    CollectionAction,
    Dispute,
    LedgerTransaction,
    Notice,
    PaymentPlan,
    WorkOrder,
)

from .collection_helpers import balance, bill, complete_door_tags, moment, pay, user
from .factories import district

POLICY = ladder_policy.DEFAULT
START = date(2026, 1, 5)
DAYS = 120
PROFILES = ("ontime", "never", "never", "late", "pays_after_notice", "dispute", "plan", "landlord")


def test_120_days_of_collections(session: Session) -> None:
    accounts = district(session, len(PROFILES))
    boss = user(session)
    who = dict(zip(PROFILES[:1] + tuple(f"{p}{i}" for i, p in enumerate(PROFILES) if i), accounts, strict=True))
    landlord = who["landlord7"]
    landlord.customer.mailing_line1, landlord.customer.mailing_city = "9 Harbor Way", "Long Beach"
    landlord.customer.mailing_state, landlord.customer.mailing_zip = "CA", "90802"
    session.flush()
    by_id = {a.id: name for name, a in who.items()}
    bills: dict[str, list] = defaultdict(list)
    paid_after_notice: date | None = None
    shutoffs_checked = 0
    closed = collection_facts.closed_days(session, START) | collection_facts.closed_days(
        session, START + timedelta(days=DAYS)
    )

    for n in range(DAYS):
        day = START + timedelta(days=n)
        if day.day == 5:  # the cycle bills on the 5th, due 21 days later
            for name, account in who.items():
                bills[name].append(bill(session, account, day, 8_000 + 500 * accounts.index(account)))
            if day == START:
                first = bills["dispute5"][0]
                session.add(
                    Dispute(account_id=who["dispute5"].id, bill_id=first.id, amount_cents=4_000, reason="Meter misread")
                )
        for name, account in who.items():
            for b in bills[name]:
                if name == "ontime" and day == b.due_date - timedelta(days=3):
                    pay(session, account, b.total_due_cents, day)
                if name == "late3" and day == b.due_date + timedelta(days=15):
                    fee = session.scalar(
                        select(func.coalesce(func.sum(CollectionAction.amount_cents), 0)).where(
                            CollectionAction.episode == f"bill:{b.id}", CollectionAction.step == "late_fee"
                        )
                    )
                    pay(session, account, b.total_due_cents + int(fee or 0), day)  # this bill and its fee
        if day == START + timedelta(days=40):
            session.add(
                PaymentPlan(
                    account_id=who["plan6"].id,
                    kind="plan",
                    status="active",
                    total_cents=balance(session, who["plan6"]),
                    starts_on=day,
                )
            )
        notice = session.scalar(
            select(Notice).where(Notice.account_id == who["pays_after_notice4"].id, Notice.kind == "final")
        )
        if notice is not None and paid_after_notice is None and day == notice.issued_on + timedelta(days=3):
            pay(session, who["pays_after_notice4"], balance(session, who["pays_after_notice4"]), day)
            paid_after_notice = day
        session.flush()

        collection_run.run_day(session, day, moment(day, 6), post=True, actor=boss, policy=POLICY)
        # The gate agrees with every shutoff order written today (its facts as they stand).
        for action in session.scalars(
            select(CollectionAction).where(
                CollectionAction.step == "shutoff_order",
                CollectionAction.status == "posted",
                CollectionAction.posted_on == day,
            )
        ):
            facts = collection_facts.facts_for(session, action.account_id, day)
            assert shutoff_gate.check(facts, day, POLICY, 48, 5_000) == [], by_id[action.account_id]
            shutoffs_checked += 1
        complete_door_tags(session, day)  # field staff leave the day's door tags

    posted = list(
        session.scalars(
            select(CollectionAction).where(CollectionAction.status == "posted").order_by(CollectionAction.id)
        )
    )
    steps: dict[str, dict[str, list[CollectionAction]]] = defaultdict(lambda: defaultdict(list))
    for a in posted:
        steps[by_id[a.account_id]][a.step].append(a)
        assert shutoff_gate.is_business_day(a.posted_on, closed), (by_id[a.account_id], a.step, a.posted_on)

    # Once each, per episode, in the ladder's order.
    episodes: dict[tuple[int, str], list[CollectionAction]] = defaultdict(list)
    for a in posted:
        episodes[(a.account_id, a.episode)].append(a)
    for acts in episodes.values():
        kinds = [a.step for a in sorted(acts, key=lambda a: (a.posted_on, ladder_policy.STEP_KINDS.index(a.step)))]
        assert len(kinds) == len(set(kinds))
        assert kinds == [k for k in ladder_policy.STEP_KINDS if k in kinds]
        assert kinds == list(ladder_policy.STEP_KINDS[: len(kinds)])  # no step skipped on the way

    # Each posted step wrote exactly its one fee, notice or order.
    fee_ids = [a.ledger_transaction_id for a in posted if a.step == "late_fee"]
    assert None not in fee_ids and len(set(fee_ids)) == len(fee_ids)
    fees = session.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee"))
    assert fees == len(fee_ids)
    notice_actions = [a for a in posted if a.step in ("past_due_notice", "final_notice", "door_tag")]
    customer_notices = dict(
        session.execute(
            select(Notice.action_id, func.count()).where(Notice.addressee == "customer").group_by(Notice.action_id)
        ).all()
    )
    assert customer_notices == {a.id: 1 for a in notice_actions}
    occupant = session.scalars(select(Notice.account_id).where(Notice.addressee == "occupant")).all()
    assert set(occupant) == {landlord.id} and len(occupant) == len(steps["landlord7"]["past_due_notice"]) + len(
        steps["landlord7"]["final_notice"]
    ) + len(steps["landlord7"]["door_tag"])
    orders = list(session.scalars(select(WorkOrder)))
    assert sorted(o.id for o in orders) == sorted(
        a.work_order_id for a in posted if a.step in ("door_tag", "shutoff_order") and a.work_order_id
    )
    assert len(orders) == len([a for a in posted if a.step in ("door_tag", "shutoff_order")])

    # Who got what.
    for name in ("never1", "never2", "landlord7"):
        assert set(steps[name]) == set(ladder_policy.STEP_KINDS), name
        assert len(steps[name]["shutoff_order"]) == 1
    assert shutoffs_checked == 3
    assert steps["ontime"] == {}
    # Paying late each month: a late fee and a past-due notice per bill, never a final notice.
    assert len(steps["late3"]["late_fee"]) >= 3 and "final_notice" not in steps["late3"]
    # Paid in full after the shutoff notice: the ladder stopped there.
    assert paid_after_notice is not None
    assert set(steps["pays_after_notice4"]) == {"late_fee", "past_due_notice", "final_notice"}
    assert balance(session, who["pays_after_notice4"]) > 0  # later bills, not yet past due long
    # The dispute: its amount kept out of the fee; the shutoff refused, naming the rule.
    refused = session.scalar(
        select(CollectionAction).where(
            CollectionAction.account_id == who["dispute5"].id, CollectionAction.step == "shutoff_order"
        )
    )
    assert refused is not None and (refused.status, refused.rule) == ("refused", "pending_dispute")
    # The kept plan: nothing after the plan began.
    assert all(a.posted_on < START + timedelta(days=40) for acts in steps["plan6"].values() for a in acts)
    assert "shutoff_order" not in steps["plan6"]
    assert ledger_check.run(session) == []
