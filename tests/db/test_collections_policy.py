"""The collection policy's versions, closure days, shutoff protections, a shutoff order by
hand (service and ``portal shutoff order``) through the gate, and the resident dashboard's
ladder dates, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import accounts, collection_facts, ladder_policy, ladder_versions, ledger, posting, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    AgencyClosure,
    AuditEvent,
    Bill,
    CollectionAction,
    DelinquencyPolicyVersion,
    Dispute,
    Notice,
    PaymentPlan,
    ShutoffProtection,
    User,
    WorkOrder,
)
from portal.cli import main
from portal.services import collections_policy as service
from portal.services import customers

from .factories import district

# Monday 2027-01-25; the bill was due 2026-11-20 (66 days before), the written shutoff
# notice went out 2027-01-04, the door tag was left Thursday 2027-01-21.
ON = date(2027, 1, 25)
NOW = datetime(2027, 1, 25, 17, tzinfo=UTC)
DUE = date(2026, 11, 20)


def _people(session: Session) -> dict[str, User]:
    return {
        role: users.create_user(session, f"{role}@gate.example", "a long password", role, now=NOW)
        for role in ("csr", "specialist", "supervisor")
    }


def _bill(session: Session, account: Account, due: date, cents: int, n: int) -> Bill:
    bill = Bill(
        number=f"G{account.id:03d}{n:03d}",
        account_id=account.id,
        period_start=date(due.year, due.month, 1),
        period_end=due,
        bill_date=due,
        due_date=due,
        previous_balance_cents=0,
        current_charges_cents=cents,
        total_due_cents=cents,
        status="posted",
    )
    session.add(bill)
    session.flush()
    row = posting.post(session, ledger.bill_transaction(account.id, due, due, {"water": cents}), account.id)
    bill.ledger_transaction_id = row.id
    session.flush()
    return bill


def _delinquent(sessions: sessionmaker[Session], notice: bool = True, tag: bool = True):  # type: ignore[no-untyped-def]
    """An account 66 days past due with the written notice and the door tag done."""
    with transaction(sessions) as session:
        (account,) = district(session, 1)
        people = _people(session)
        bill = _bill(session, account, DUE, 12_000, 1)
        if notice:
            session.add(
                Notice(
                    account_id=account.id,
                    kind="final",
                    name="Customer 1",
                    issued_on=date(2027, 1, 4),
                    amount_cents=12_000,
                )
            )
        if tag:
            session.add(
                WorkOrder(
                    kind="door_tag",
                    account_id=account.id,
                    premise_id=account.premise_id,
                    status="done",
                    due_on=date(2027, 1, 21),
                    completed_at=datetime(2027, 1, 21, 15, tzinfo=UTC),
                )
            )
        return account.number, account.id, bill.id, people


# --- Versions ----------------------------------------------------------------------------


def test_versions_current_and_new(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        people = _people(session)
        (account,) = district(session, 1)
        assert ladder_versions.current(session, ON) == (None, ladder_policy.DEFAULT)
        assert ladder_versions.ladder_of(account, account.services, ladder_policy.DEFAULT).service == "*"
        with pytest.raises(NotAllowed):
            ladder_versions.propose(session, people["specialist"], ladder_policy.DEFAULT, ON, "cheaper", NOW)
        body = ladder_policy.DEFAULT.to_dict()
        body["ladders"][0]["late_fee"]["cap_cents"] = 800
        water = {
            **body["ladders"][0],
            "service": "water",
            "customer_class": "COMMERCIAL",
            "minimum_shutoff_cents": 20_000,
        }
        body["ladders"].append(water)
        first = ladder_versions.propose(session, people["supervisor"], body, date(2027, 2, 1), "Cap $8", NOW)
        assert first.version == 1
        assert ladder_versions.current(session, ON) == (None, ladder_policy.DEFAULT)  # not yet in force
        row, policy = ladder_versions.current(session, date(2027, 2, 1))
        assert row is not None and row.id == first.id and policy.ladders[0].late_fee.cap_cents == 800
        account.customer_class = "COMMERCIAL"
        assert ladder_versions.ladder_of(account, account.services, policy).minimum_shutoff_cents == 20_000
        account.customer_class = "RESIDENTIAL_SINGLE"
        assert ladder_versions.ladder_of(account, account.services, policy).minimum_shutoff_cents == 5_000
        # Below the Act's floors: every problem named, nothing written.
        bad = dict(body, days_delinquent_before_shutoff=30, notice_business_days=5)
        with pytest.raises(FieldErrors) as caught:
            ladder_versions.propose(session, people["supervisor"], bad, date(2027, 3, 1), "", NOW)
        assert {"days_delinquent_before_shutoff", "notice_business_days", "note"} <= set(caught.value.errors)
        second = ladder_versions.propose(session, people["supervisor"], body, date(2027, 3, 1), "Again", NOW)
        assert second.version == 2 and first.body["ladders"][0]["late_fee"]["cap_cents"] == 800
        assert session.scalar(select(func.count()).select_from(DelinquencyPolicyVersion)) == 2
        assert session.scalar(select(func.count()).where(AuditEvent.action == "collections.policy_version")) == 2


def _form(**changes: str) -> dict[str, str]:
    values = service.form_values(ladder_policy.DEFAULT)
    return {**values, "effective_on": "2027-02-01", "note": "Lower cap", **changes}


def test_the_policy_form(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        people = _people(session)
    # The default filled in gives back the default.
    assert ladder_policy.from_dict(service.body_from_form(_form())) == ladder_policy.DEFAULT
    with pytest.raises(FieldErrors) as caught:
        service.propose(
            sessions,
            people["supervisor"],
            _form(late_fee_cap="ten", shutoff_day="40", notice_business_days="5", note="", effective_on="soon"),
            NOW,
        )
    errors = caught.value.errors
    assert set(errors) == {"late_fee_cap", "effective_on", "note"}  # the numbers are checked first
    with pytest.raises(FieldErrors) as caught:
        service.propose(sessions, people["supervisor"], _form(shutoff_day="40", notice_business_days="5"), NOW)
    assert {"shutoff_day", "notice_business_days"} <= set(caught.value.errors)
    assert "day 60" in caught.value.errors["shutoff_day"].message
    others = (
        "- service: sewer\n  customer_class: '*'\n  steps:\n"
        "  - {kind: late_fee, day: 5}\n  - {kind: shut_it, day: 70}\n"
    )
    with pytest.raises(FieldErrors) as caught:
        service.propose(sessions, people["supervisor"], _form(other_ladders=others), NOW)
    assert set(caught.value.errors) == {"other_ladders"}
    assert "ladder 1" in caught.value.errors["other_ladders"].message
    assert "shut_it" in caught.value.errors["other_ladders"].message
    with pytest.raises(FieldErrors) as caught:
        service.propose(sessions, people["supervisor"], _form(other_ladders="[unclosed"), NOW)
    assert "not YAML or JSON" in caught.value.errors["other_ladders"].message
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(DelinquencyPolicyVersion)) == 0
    json_ladder = '[{"service": "sewer", "customer_class": "*", "steps": [{"kind": "late_fee", "day": 7}]}]'
    assert (
        service.propose(sessions, people["supervisor"], _form(late_fee_cap="8.00", other_ladders=json_ladder), NOW) == 1
    )
    with sessions() as session:
        page = service.policy_page(session, people["csr"], date(2027, 2, 1))
        assert page.version is not None and page.version.version == 1 and not page.can_change
        assert page.ladders[0].sentences[0].startswith("A late fee of 1.5% of the past-due amount, at most $8.00")
        assert page.ladders[1].title == "For sewer service, every customer class"
        assert any("60 days delinquent" in s for s in page.rules)


# --- Closures ----------------------------------------------------------------------------


def test_closure_days(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        people = _people(session)
    with pytest.raises(NotAllowed):
        service.add_closure(sessions, people["csr"], "2027-03-15", "Training", NOW)
    with pytest.raises(FieldErrors) as caught:
        service.add_closure(sessions, people["supervisor"], "2027-03-13", "", NOW)
    assert set(caught.value.errors) == {"name"}
    with pytest.raises(FieldErrors) as caught:
        service.add_closure(sessions, people["supervisor"], "2027-03-13", "Saturday", NOW)
    assert "weekend" in caught.value.errors["day"].message
    with pytest.raises(FieldErrors) as caught:
        service.add_closure(sessions, people["supervisor"], "2026-11-27", "Friday", NOW)
    assert "Day After Thanksgiving" in caught.value.errors["day"].message
    assert service.add_closure(sessions, people["supervisor"], "2027-03-15", "Training day", NOW) == date(2027, 3, 15)
    with pytest.raises(FieldErrors):
        service.add_closure(sessions, people["supervisor"], "2027-03-15", "Twice", NOW)
    with sessions() as session:
        assert date(2027, 3, 15) in collection_facts.closed_days(session, date(2027, 3, 1))
        page = service.closures_page(session, people["csr"], 2027)
        assert [c.name for c in page.closures] == ["Training day"] and not page.can_change
        assert page.holidays[date(2027, 11, 26)] == "Day After Thanksgiving"
        closure_id = page.closures[0].id
    assert service.remove_closure(sessions, people["supervisor"], closure_id, NOW) == date(2027, 3, 15)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AgencyClosure)) == 0
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("collections.closure%")))
        assert sorted(actions) == ["collections.closure_added", "collections.closure_removed"]


# --- Protections and the shutoff order ---------------------------------------------------


def test_protections_are_recorded_and_revoked(sessions: sessionmaker[Session]) -> None:
    number, account_id, _bill_id, people = _delinquent(sessions)
    with pytest.raises(FieldErrors) as caught:
        service.record_protection(
            sessions, people["csr"], number, kind="medical_certification", detail="", starts_on="", ends_on="", now=NOW
        )
    assert set(caught.value.errors) == {"detail"}
    with pytest.raises(FieldErrors) as caught:
        service.record_protection(
            sessions, people["csr"], number, kind="x", detail="", starts_on="2027-01-05", ends_on="2027-01-01", now=NOW
        )
    assert set(caught.value.errors) == {"kind", "ends_on"}
    ids = [
        service.record_protection(sessions, people["csr"], number, kind=k, detail=d, starts_on="", ends_on="", now=NOW)
        for k, d in (
            ("medical_certification", "Dr. Ruiz, Chino clinic"),
            ("financial_inability", "CalFresh card seen"),
            ("willing_to_plan", ""),
        )
    ]
    with sessions() as session:
        panel = service.protections_panel(session, people["csr"], number, ON)
        assert panel.active == {"medical_certification", "financial_inability", "willing_to_plan"}
        assert [r.rule for r in panel.refusals] == ["medical_certification"] and not panel.can_order
    with pytest.raises(service.ShutoffRefused) as refused:
        service.issue_shutoff_order(sessions, people["supervisor"], number, ON, NOW)
    assert [r.rule for r in refused.value.refusals] == ["medical_certification"]
    assert service.revoke_protection(sessions, people["csr"], number, ids[0], NOW) == "medical_certification"
    with pytest.raises(FieldErrors):
        service.revoke_protection(sessions, people["csr"], number, ids[0], NOW)
    with sessions() as session:
        assert service.protections_panel(session, people["supervisor"], number, ON).refusals == []
        row = session.get(ShutoffProtection, ids[0])
        assert row is not None and row.revoked_at is not None and row.account_id == account_id
        assert session.scalar(select(func.count()).where(AuditEvent.action.like("shutoff_protection.%"))) == 4


def test_a_shutoff_order_by_hand_passes_the_gate_once(sessions: sessionmaker[Session]) -> None:
    number, account_id, bill_id, people = _delinquent(sessions)
    with pytest.raises(NotAllowed):
        service.issue_shutoff_order(sessions, people["specialist"], number, ON, NOW)
    # Saturday: refused, the rule named, nothing written but the refusal's audit.
    with pytest.raises(service.ShutoffRefused) as refused:
        service.issue_shutoff_order(sessions, people["supervisor"], number, date(2027, 1, 30), NOW)
    assert [r.rule for r in refused.value.refusals] == ["business_day"]
    done = service.issue_shutoff_order(sessions, people["supervisor"], number, ON, NOW)
    assert done.episode == f"bill:{bill_id}" and done.amount_cents == 12_000
    with sessions() as session:
        order = session.get(WorkOrder, done.order_id)
        assert order is not None and (order.kind, order.status, order.due_on) == ("shutoff", "open", ON)
        action = session.get(CollectionAction, done.action_id)
        assert action is not None and (action.step, action.status, action.work_order_id) == (
            "shutoff_order",
            "posted",
            order.id,
        )
    with pytest.raises(service.ShutoffRefused) as refused:
        service.issue_shutoff_order(sessions, people["supervisor"], number, date(2027, 1, 26), NOW)
    assert refused.value.refusals == [] and "already open" in (refused.value.already or "")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "shutoff")) == 1
        events = list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("shutoff.%"))))
        assert sorted(events) == ["shutoff.ordered", "shutoff.refused", "shutoff.refused"]


def test_a_pending_dispute_blocks_the_order(sessions: sessionmaker[Session]) -> None:
    number, account_id, _bill_id, people = _delinquent(sessions, tag=False)
    with transaction(sessions) as session:
        session.add(Dispute(account_id=account_id, amount_cents=4_000, reason="Meter misread"))
    with pytest.raises(service.ShutoffRefused) as refused:
        service.issue_shutoff_order(sessions, people["supervisor"], number, ON, NOW)
    assert [r.rule for r in refused.value.refusals] == ["door_tag", "pending_dispute"]
    assert "A bill dispute, an appeal or an investigation is pending." in refused.value.text
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "shutoff")) == 0
        assert session.scalar(select(func.count()).select_from(CollectionAction)) == 0


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_the_command_line(env: Engine, sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    number, account_id, _bill_id, _people = _delinquent(sessions)
    with transaction(sessions) as session:
        session.add(PaymentPlan(account_id=account_id, total_cents=12_000, starts_on=date(2027, 1, 10)))
    assert main(["shutoff", "order", number, "--on", ON.isoformat(), "--as", "supervisor@gate.example"]) == 3
    err = capsys.readouterr().err
    assert "kept_plan: A payment plan or an extension is being kept." in err
    with transaction(sessions) as session:
        session.scalar(select(PaymentPlan)).status = "cancelled"  # type: ignore[union-attr]
    assert main(["shutoff", "order", number, "--on", ON.isoformat(), "--as", "supervisor@gate.example"]) == 0
    assert "Shutoff order" in capsys.readouterr().out


# --- The resident dashboard's dates ---------------------------------------------------------


def _outlook(sessions: sessionmaker[Session], number: str, on: date):  # type: ignore[no-untyped-def]
    with sessions() as session:
        account = session.scalar(select(Account).where(Account.number == number))
        return customers.outlook_for(session, accounts.summarise(session, account, on), on)


def test_the_dashboard_shows_the_ladders_dates(sessions: sessionmaker[Session]) -> None:
    number, account_id, bill_id, people = _delinquent(sessions, notice=False, tag=False)
    # Ten days late: the late fee (1.5% of $120, $1.80) was due on the 5th day, and the run
    # has not posted it: it falls today; the notices on their days; the shutoff after both.
    on = date(2026, 11, 30)
    o = _outlook(sessions, number, on)
    assert o.state == "past_due" and o.past_due_since == DUE and o.protections == ()
    assert (o.step("late_fee").on, o.step("late_fee").done, o.late_fee_cents) == (on, False, 180)
    assert o.step("past_due_notice").on == on  # day 10 is today
    assert o.step("final_notice").on == date(2027, 1, 4)  # day 45, Monday 2027-01-04
    assert o.earliest_shutoff == date(2027, 1, 19)  # day 60, Tuesday 2027-01-19
    # The run posted the late fee and the notices: their days, its amount.
    episode = f"bill:{bill_id}"
    with transaction(sessions) as session:
        for step, day, cents in (
            ("late_fee", date(2026, 11, 25), 175),
            ("past_due_notice", date(2026, 11, 30), None),
            ("final_notice", date(2027, 1, 8), None),
        ):
            session.add(
                CollectionAction(
                    account_id=account_id,
                    episode=episode,
                    step=step,
                    status="posted",
                    due_on=day,
                    posted_on=day,
                    amount_cents=cents,
                )
            )
    o = _outlook(sessions, number, date(2027, 1, 11))
    assert (o.step("late_fee").on, o.step("late_fee").done, o.late_fee_cents) == (date(2026, 11, 25), True, 175)
    assert o.step("final_notice").on == date(2027, 1, 8) and o.step("final_notice").done
    # 7 business days after Friday 2027-01-08, MLK Day not counted: Wednesday 2027-01-20.
    assert o.earliest_shutoff == date(2027, 1, 20)
    # A pending dispute protects the account; the dashboard says so.
    with transaction(sessions) as session:
        session.add(Dispute(account_id=account_id, amount_cents=1_000, reason="Estimated read"))
    o = _outlook(sessions, number, date(2027, 1, 11))
    assert o.protections == ("pending_dispute",)


def test_the_dashboard_in_both_languages(sessions: sessionmaker[Session]) -> None:
    from portal import i18n
    from portal.templating import make_templates

    number, account_id, _bill_id, _people = _delinquent(sessions, notice=False, tag=False)
    with transaction(sessions) as session:
        session.add(PaymentPlan(account_id=account_id, total_cents=12_000, starts_on=date(2026, 11, 28)))
    on = date(2026, 11, 30)
    with sessions() as session:
        account = session.scalar(select(Account).where(Account.number == number))
        summary = accounts.summarise(session, account, on)
        outlook = customers.outlook_for(session, summary, on)
    assert outlook.protections == ("kept_plan",) and outlook.earliest_shutoff is not None
    texts = {}
    for language in ("en", "es"):
        with i18n.use(language):
            texts[language] = (
                make_templates()
                .env.get_template("customer/_next.html")
                .render(
                    agency_phone="(555) 010-2000", summary=summary, outlook=outlook, plan=None, autopay_outlook=None
                )
            )
    assert "a late fee of $1.80 is added on November 30, 2026" in texts["en"]
    assert "You are keeping to a payment plan or an extension" in texts["en"]
    assert "cannot be shut off for nonpayment before" not in texts["en"]  # the plan protects it
    assert "cargo por pago tardío de $1.80 el 30 de noviembre de 2026" in texts["es"]
    assert "plan de pagos" in texts["es"] and "keeping to a payment plan" not in texts["es"]
