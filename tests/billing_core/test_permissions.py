"""The one permission table: what it grants, its limits, separation of duties, and its doc."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from portal.billing_core import permissions
from portal.billing_core.errors import NotAllowed
from portal.billing_core.permissions import Action, Field

ROOT = Path(__file__).resolve().parents[2]


def test_docs_roles_md_is_rendered_from_the_table():
    assert (ROOT / "docs" / "roles.md").read_text() == permissions.render_markdown(), (
        "docs/roles.md is stale: python -m portal.billing_core.permissions > docs/roles.md"
    )


def test_every_action_has_a_grant_and_customers_hold_none():
    assert set(permissions.GRANTS) == set(Action)
    assert permissions.allowed("customer") == frozenset()
    assert not permissions.can("customer", Action.STAFF_VIEW)
    assert not permissions.can("nobody", Action.STAFF_VIEW)
    assert not permissions.can(None, Action.STAFF_VIEW)


@pytest.mark.parametrize(
    ("role", "action", "expected"),
    [
        ("specialist", Action.BILL_RUNS_RUN, True),
        ("specialist", Action.BILL_RUNS_APPROVE, False),
        ("supervisor", Action.BILL_RUNS_APPROVE, True),
        ("csr", Action.REQUESTS_HANDLE, True),
        ("cashier", Action.REQUESTS_HANDLE, False),
        ("cashier", Action.PAYMENTS_REVIEW_OVERPAYMENT, True),
        ("specialist", Action.RATES_EDIT, False),
        ("admin", Action.USERS_MANAGE, True),
    ],
)
def test_grants(role, action, expected):
    assert permissions.can(role, action) is expected


def test_require_raises_the_actions_own_refusal():
    with pytest.raises(NotAllowed) as caught:
        permissions.require(SimpleNamespace(role="csr", id=1), Action.RATES_EDIT)
    assert caught.value.message == "Only billing supervisors and administrators change rates."
    assert caught.value.action is Action.RATES_EDIT
    permissions.require(SimpleNamespace(role="admin", id=1), Action.RATES_EDIT)
    with pytest.raises(NotAllowed):
        permissions.require(None, Action.STAFF_VIEW)


def test_money_limits_per_role():
    assert permissions.limit_cents("csr", Action.ADJUSTMENTS_PREPARE) == 2_500
    assert permissions.within_limit("csr", Action.ADJUSTMENTS_PREPARE, -2_500)
    assert not permissions.within_limit("csr", Action.ADJUSTMENTS_PREPARE, 2_501)
    assert permissions.within_limit("specialist", Action.ADJUSTMENTS_PREPARE, 10_000)
    assert not permissions.within_limit("specialist", Action.ADJUSTMENTS_PREPARE, 25_000)
    assert permissions.within_limit("supervisor", Action.ADJUSTMENTS_APPROVE, 100_000)
    assert not permissions.within_limit("supervisor", Action.ADJUSTMENTS_APPROVE, 100_001)
    assert permissions.limit_cents("admin", Action.ADJUSTMENTS_APPROVE) is None
    assert permissions.limit_cents("cashier", Action.ADJUSTMENTS_PREPARE) == 0
    assert permissions.limit_cents("supervisor", Action.BILL_RUNS_APPROVE) is None


def test_the_approver_is_never_the_preparer():
    boss = SimpleNamespace(role="supervisor", id=7)
    with pytest.raises(NotAllowed, match="prepared this"):
        permissions.require_approver(boss, Action.ADJUSTMENTS_APPROVE, prepared_by_id=7)
    permissions.require_approver(boss, Action.ADJUSTMENTS_APPROVE, prepared_by_id=8)
    with pytest.raises(NotAllowed):
        permissions.require_approver(SimpleNamespace(role="specialist", id=9), Action.ADJUSTMENTS_APPROVE, 8)


def test_a_cashier_never_signs_off_their_own_drawer():
    boss = SimpleNamespace(role="supervisor", id=7)
    with pytest.raises(NotAllowed, match="prepared this"):
        permissions.require_approver(boss, Action.DRAWERS_SIGN_OFF, prepared_by_id=7)
    with pytest.raises(NotAllowed):
        permissions.require_approver(SimpleNamespace(role="cashier", id=9), Action.DRAWERS_SIGN_OFF, 8)
    for approve in (Action.REFUNDS_APPROVE, Action.WRITE_OFFS_APPROVE):
        with pytest.raises(NotAllowed, match="prepared this"):
            permissions.require_approver(boss, approve, prepared_by_id=7)


def test_sensitive_fields_only_for_roles_that_need_them():
    assert permissions.may_see("specialist", Field.BIRTH_DATE)
    assert not permissions.may_see("cashier", Field.ID_LAST4)
    assert not permissions.may_see("customer", Field.BIRTH_DATE)
    assert all(rule.audit_action for rule in permissions.FIELDS.values())
