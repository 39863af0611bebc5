"""Who may do what: one table, read by services, views, the command line and docs/roles.md.

Policy is data here, not ``if role in (...)`` scattered through the code. The table says,
for every action a person can take in the portal:

- which roles may take it (``GRANTS``);
- for actions that move money, how much each role may do on its own (``LIMITS``): above its
  limit the action waits for someone whose limit covers it;
- whether the person who approves must be someone other than the person who prepared it
  (``SEPARATE_APPROVER``: "the approver is never the preparer");
- which sensitive fields each role may see (``FIELDS``), and that each showing is audited.

``docs/roles.md`` is rendered from this module (``render_markdown``); a test checks the
file is current, so the document and the code cannot drift apart.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import NotAllowed
from .models import Role

CUSTOMER, CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN, FIELD = (
    Role.CUSTOMER,
    Role.CSR,
    Role.SPECIALIST,
    Role.CASHIER,
    Role.SUPERVISOR,
    Role.ADMIN,
    Role.FIELD,
)
STAFF = frozenset({CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN, FIELD})
OFFICE = (CSR, SPECIALIST, SUPERVISOR, ADMIN)


class Action(str, enum.Enum):
    """Everything the table grants. The value is how logs, audit rows and the doc name it."""

    # Staff pages
    STAFF_VIEW = "staff.view"
    # Rates
    RATES_EDIT = "rates.edit"
    # Meter reads and meters
    READS_REVIEW = "reads.review"
    READS_LOAD = "reads.load"
    METERS_CHANGE = "meters.change"
    # Bill runs
    BILL_RUNS_RUN = "bill_runs.run"
    BILL_RUNS_CALCULATE = "bill_runs.calculate"
    BILL_RUNS_APPROVE = "bill_runs.approve"
    # One bill
    BILLS_FINAL = "bills.final"
    BILLS_FINAL_APPROVE = "bills.final_approve"
    BILLS_FINAL_CORRECT = "bills.final_correct"
    BILLS_CORRECT = "bills.correct"
    BILLS_VOID = "bills.void"
    # Customer requests and payment plans
    REQUESTS_HANDLE = "requests.handle"
    ARRANGEMENTS_DECIDE = "arrangements.decide"
    # Money
    PAYMENTS_REVIEW_OVERPAYMENT = "payments.review_overpayment"
    DRAWERS_OPEN = "drawers.open"
    PAYMENTS_TAKE = "payments.take"
    DRAWERS_SIGN_OFF = "drawers.sign_off"
    PAYMENTS_BATCH = "payments.batch"
    PAYMENTS_IMPORT = "payments.import"
    PAYMENTS_RETURN = "payments.return"
    CASH_ONLY_LIFT = "cash_only.lift"
    ADJUSTMENTS_PREPARE = "adjustments.prepare"
    ADJUSTMENTS_APPROVE = "adjustments.approve"
    DEPOSITS_MANAGE = "deposits.manage"
    REFUNDS_REQUEST = "refunds.request"
    REFUNDS_APPROVE = "refunds.approve"
    REFUNDS_EXPORT = "refunds.export"
    WRITE_OFFS_PREPARE = "write_offs.prepare"
    WRITE_OFFS_APPROVE = "write_offs.approve"
    MONEY_REPORTS = "money.reports"
    LEDGER_CHECK = "ledger.check"
    # Delinquency and collections
    COLLECTIONS_VIEW = "collections.view"
    COLLECTIONS_POLICY = "collections.policy"
    COLLECTIONS_PREVIEW = "collections.preview"
    COLLECTIONS_POST = "collections.post"
    COLLECTIONS_HOLD = "collections.hold"
    NOTICES_PRINT = "notices.print"
    SHUTOFF_ORDER = "shutoff.order"
    FIELD_ORDERS_WORK = "field_orders.work"
    FIELD_ORDERS_MANAGE = "field_orders.manage"
    PLANS_MANAGE = "plans.manage"
    DISPUTES_OPEN = "disputes.open"
    DISPUTES_DECIDE = "disputes.decide"
    PROTECTIONS_RECORD = "protections.record"
    REFERRALS_PREPARE = "referrals.prepare"
    REFERRALS_APPROVE = "referrals.approve"
    COLLECTIONS_REPORTS = "collections.reports"
    # Sign-ins
    USERS_MANAGE = "users.manage"
    # Accounts, meters, cases, approvals, the audit trail (issue 16)
    ACCOUNTS_OPEN = "accounts.open"
    ACCOUNTS_CHANGE = "accounts.change"
    METERS_INVENTORY = "meters.inventory"
    METERS_TEST = "meters.test"
    CASES_OPEN = "cases.open"
    CASES_WORK = "cases.work"
    APPROVALS_VIEW = "approvals.view"
    RATES_APPROVE = "rates.approve"
    WORK_SUPERVISE = "work.supervise"
    AUDIT_VIEW = "audit.view"


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    #: What the action is, in a line, for docs/roles.md.
    means: str
    #: What someone without it is told (the 403 page, the command line).
    refusal: str


def _grant(roles: Iterable[Role], means: str, refusal: str) -> Grant:
    return Grant(frozenset(roles), means, refusal)


BILLING = (SPECIALIST, SUPERVISOR, ADMIN)
APPROVING = (SUPERVISOR, ADMIN)

GRANTS: dict[Action, Grant] = {
    Action.STAFF_VIEW: _grant(
        STAFF, "See the staff pages: accounts, bills, reads, runs, queues.", "Only staff see the staff pages."
    ),
    Action.RATES_EDIT: _grant(
        APPROVING,
        "Upload, edit and schedule rate structures.",
        "Only billing supervisors and administrators change rates.",
    ),
    Action.READS_REVIEW: _grant(
        BILLING,
        "Approve, correct or reject meter reads held for review.",
        "Only billing specialists and supervisors review reads.",
    ),
    Action.READS_LOAD: _grant(
        BILLING, "Load a file of meter reads.", "Only billing specialists and supervisors load reads."
    ),
    Action.METERS_CHANGE: _grant(
        # Issue 16 (field): field staff too, who set and exchange meters on their work orders.
        (*BILLING, FIELD),
        "Set, exchange and remove meters; record a read by hand.",
        "Only billing specialists and supervisors change meters. Field staff do on their work orders.",
    ),
    Action.BILL_RUNS_RUN: _grant(
        BILLING,
        "Start a bill run for a cycle and period.",
        "Only billing specialists and supervisors start bill runs.",
    ),
    Action.BILL_RUNS_CALCULATE: _grant(
        BILLING,
        "Calculate a bill run's drafts, deliver its bills, resend its failed emails.",
        "Only billing specialists and supervisors calculate bill runs.",
    ),
    Action.BILL_RUNS_APPROVE: _grant(
        APPROVING,
        "Approve a calculated bill run and post it to the ledger.",
        "Only a billing supervisor approves and posts bill runs.",
    ),
    Action.BILLS_FINAL: _grant(
        BILLING,
        "Stop service on an account and prepare its final bill.",
        "Only billing specialists and supervisors stop service and make final bills.",
    ),
    Action.BILLS_FINAL_APPROVE: _grant(
        APPROVING,
        "Approve and post a final bill held for review.",
        "Only a billing supervisor approves and posts a held final bill.",
    ),
    Action.BILLS_FINAL_CORRECT: _grant(
        BILLING,
        "Correct a final read of a final bill held for review (it stays held).",
        "Only billing specialists and supervisors correct final reads.",
    ),
    Action.BILLS_CORRECT: _grant(
        BILLING,
        "Prepare a correction of a posted bill (a corrected read, then void and rebill).",
        "Only billing specialists and supervisors correct bills.",
    ),
    Action.BILLS_VOID: _grant(
        APPROVING, "Void a posted bill and post its rebill.", "Only a billing supervisor voids and rebills a bill."
    ),
    Action.REQUESTS_HANDLE: _grant(
        (CSR, SPECIALIST, SUPERVISOR, ADMIN),
        "Work the queue of start, stop and transfer requests.",
        "Only customer service and billing staff work customer requests.",
    ),
    Action.ARRANGEMENTS_DECIDE: _grant(
        (CSR, SPECIALIST, SUPERVISOR, ADMIN),
        "Approve or decline a customer's payment plan request.",
        "Only customer service and billing staff decide payment plans.",
    ),
    Action.PAYMENTS_REVIEW_OVERPAYMENT: _grant(
        (CASHIER, SUPERVISOR, ADMIN),
        "Record the refund decision on a payment that overpaid.",
        "Only cashiers and billing supervisors record refund decisions.",
    ),
    Action.DRAWERS_OPEN: _grant(
        (CASHIER, SUPERVISOR, ADMIN),
        "Open a cash drawer with a counted float, and close it with a count.",
        "Only cashiers open and close cash drawers.",
    ),
    Action.PAYMENTS_TAKE: _grant(
        (CASHIER, SUPERVISOR, ADMIN),
        "Take a payment at the counter (cash, check, card present) into one's open drawer.",
        "Only cashiers take counter payments.",
    ),
    Action.DRAWERS_SIGN_OFF: _grant(
        APPROVING,
        "Sign off a closed drawer's count and its over or short.",
        "Only a billing supervisor signs off cash drawers.",
    ),
    Action.PAYMENTS_BATCH: _grant(
        (SPECIALIST, CASHIER, SUPERVISOR, ADMIN),
        "Key a batch of mailed checks and post it when its total matches.",
        "Only cashiers and billing specialists key mail batches.",
    ),
    Action.PAYMENTS_IMPORT: _grant(
        BILLING,
        "Import a bank or lockbox file; assign or return the payments it could not match.",
        "Only billing specialists and supervisors import bank files.",
    ),
    Action.PAYMENTS_RETURN: _grant(
        (SPECIALIST, CASHIER, SUPERVISOR, ADMIN),
        "Record a returned check or ACH return: reverse the payment and charge the fee.",
        "Only cashiers and billing staff record returned payments.",
    ),
    Action.CASH_ONLY_LIFT: _grant(
        APPROVING,
        "Lift an account's cash only (set after returned payments), with a reason.",
        "Only a billing supervisor lifts cash only.",
    ),
    Action.ADJUSTMENTS_PREPARE: _grant(
        (CSR, SPECIALIST, SUPERVISOR, ADMIN),
        "Prepare an adjustment to an account (up to the role's limit on its own).",
        "Only customer service and billing staff prepare adjustments.",
    ),
    Action.ADJUSTMENTS_APPROVE: _grant(
        APPROVING,
        "Approve an adjustment another person prepared, above the preparer's limit.",
        "Only a billing supervisor approves adjustments.",
    ),
    Action.DEPOSITS_MANAGE: _grant(
        (CSR, SPECIALIST, SUPERVISOR, ADMIN),
        "Bill a deposit the policy asks for, or cancel one billed in error.",
        "Only customer service and billing staff manage deposits.",
    ),
    Action.REFUNDS_REQUEST: _grant(
        (CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN),
        "Ask for a refund of an account's credit (by check or back to the card).",
        "Only staff ask for refunds.",
    ),
    Action.REFUNDS_APPROVE: _grant(
        APPROVING,
        "Approve or reject a refund someone else asked for.",
        "Only a billing supervisor approves refunds.",
    ),
    Action.REFUNDS_EXPORT: _grant(
        BILLING,
        "Export approved check refunds as the accounts-payable check register.",
        "Only billing specialists and supervisors export the check register.",
    ),
    Action.WRITE_OFFS_PREPARE: _grant(
        BILLING,
        "Prepare the write-off of an uncollectible final balance.",
        "Only billing specialists and supervisors prepare write-offs.",
    ),
    Action.WRITE_OFFS_APPROVE: _grant(
        APPROVING,
        "Approve or reject a write-off someone else prepared.",
        "Only a billing supervisor approves write-offs.",
    ),
    Action.MONEY_REPORTS: _grant(
        (CASHIER, SPECIALIST, SUPERVISOR, ADMIN),
        "See and download the daily deposit and remittance reports.",
        "Only cashiers and billing staff see the money reports.",
    ),
    Action.LEDGER_CHECK: _grant(
        BILLING, "Verify the whole ledger (`portal ledger check`).", "Only billing staff check the ledger."
    ),
    Action.COLLECTIONS_VIEW: _grant(
        (CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN),
        "See the collection ladder, the daily action list, holds, notices and plans.",
        "Only office staff see collections.",
    ),
    Action.COLLECTIONS_POLICY: _grant(
        APPROVING,
        "Change the collection ladder (late fees, notices, door tags, shutoff) with a new version.",
        "Only a billing supervisor changes the collection policy.",
    ),
    Action.COLLECTIONS_PREVIEW: _grant(
        BILLING,
        "Preview the daily delinquency run: what would happen today, to which accounts, and why.",
        "Only billing specialists and supervisors preview the delinquency run.",
    ),
    Action.COLLECTIONS_POST: _grant(
        APPROVING,
        "Post the daily delinquency run: its late fees, notices, door tags and shutoff orders.",
        "Only a billing supervisor posts the delinquency run.",
    ),
    Action.COLLECTIONS_HOLD: _grant(
        APPROVING,
        "Hold an account out of the delinquency run, with a reason, and release it.",
        "Only a billing supervisor holds accounts out of the delinquency run.",
    ),
    Action.NOTICES_PRINT: _grant(
        BILLING,
        "Print a day's notices for the mail house and reprint one notice.",
        "Only billing specialists and supervisors print notices.",
    ),
    Action.SHUTOFF_ORDER: _grant(
        APPROVING,
        "Issue a shutoff order by hand (it passes the same protections as the daily run).",
        "Only a billing supervisor issues shutoff orders.",
    ),
    Action.FIELD_ORDERS_WORK: _grant(
        (FIELD, SUPERVISOR, ADMIN),
        "See the field orders and door-tag routes; mark an order done or not done.",
        "Only field staff complete field orders.",
    ),
    Action.FIELD_ORDERS_MANAGE: _grant(
        OFFICE,
        "Create, assign and cancel field orders; queue a reconnection.",
        "Only customer service and billing staff manage field orders.",
    ),
    Action.PLANS_MANAGE: _grant(
        OFFICE,
        "Create, change and cancel payment plans and extensions for a customer.",
        "Only customer service and billing staff manage payment plans.",
    ),
    Action.DISPUTES_OPEN: _grant(
        OFFICE,
        "Open a bill dispute, an appeal or an investigation on an account.",
        "Only customer service and billing staff open disputes.",
    ),
    Action.DISPUTES_DECIDE: _grant(
        APPROVING,
        "Decide a dispute or an appeal (upheld, denied, withdrawn).",
        "Only a billing supervisor decides disputes and appeals.",
    ),
    Action.PROTECTIONS_RECORD: _grant(
        OFFICE,
        "Record a medical certification, financial inability or low-income status on an account.",
        "Only customer service and billing staff record shutoff protections.",
    ),
    Action.REFERRALS_PREPARE: _grant(
        BILLING,
        "Prepare a final account's referral to a collection agency or the property tax roll; record recoveries.",
        "Only billing specialists and supervisors prepare collection referrals.",
    ),
    Action.REFERRALS_APPROVE: _grant(
        APPROVING,
        "Approve or reject a referral someone else prepared, and export approved ones.",
        "Only a billing supervisor approves collection referrals.",
    ),
    Action.COLLECTIONS_REPORTS: _grant(
        (CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN),
        "See and download the aging report, the delinquency call list and the annual shutoff report.",
        "Only office staff see the collection reports.",
    ),
    Action.USERS_MANAGE: _grant(
        (ADMIN,),
        "Create sign-ins, change roles, turn sign-ins off, sign people out everywhere.",
        "Only administrators manage sign-ins.",
    ),
    Action.ACCOUNTS_OPEN: _grant(
        OFFICE,
        "Open an account: the customer, the premise, the services and their rates, the deposit, the turn-on order.",
        "Only customer service and billing staff open accounts.",
    ),
    Action.ACCOUNTS_CHANGE: _grant(
        OFFICE,
        "Change an account: billing address, contacts, class, rate, services; transfer or close it.",
        "Only customer service and billing staff change accounts.",
    ),
    Action.METERS_INVENTORY: _grant(
        (SPECIALIST, SUPERVISOR, ADMIN, FIELD),
        "Receive meters into stock, install a stocked meter at a premise, retire a meter.",
        "Only billing and field staff manage the meter inventory.",
    ),
    Action.METERS_TEST: _grant(
        (SPECIALIST, SUPERVISOR, ADMIN, FIELD),
        "Record a meter's test result.",
        "Only billing and field staff record meter tests.",
    ),
    Action.CASES_OPEN: _grant(
        (CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN, FIELD),
        "Open a case: a complaint, inquiry, dispute, appeal, high-bill investigation or claim.",
        "Only staff open cases.",
    ),
    Action.CASES_WORK: _grant(
        OFFICE,
        "Work a case: assign it, add notes and attachments, send letters, resolve and close it.",
        "Only customer service and billing staff work cases.",
    ),
    Action.APPROVALS_VIEW: _grant(
        APPROVING,
        "See the approvals queue: everything waiting for someone else's decision.",
        "Only supervisors see the approvals queue.",
    ),
    Action.RATES_APPROVE: _grant(
        APPROVING,
        "Approve or reject a rate version someone else proposed.",
        "Only a billing supervisor approves rate versions.",
    ),
    Action.WORK_SUPERVISE: _grant(
        APPROVING,
        "See the supervisor dashboard and reassign open work (orders, cases, requests).",
        "Only supervisors see the supervisor dashboard and reassign work.",
    ),
    Action.AUDIT_VIEW: _grant(
        APPROVING,
        "Search and export the audit trail.",
        "Only supervisors and administrators see the audit trail.",
    ),
}

#: Money an action may move on one person's say, by role, in cents. A role with a grant
#: but no limit here is unlimited; above the limit the step needs someone whose limit covers it.
LIMITS: dict[Action, dict[Role, int]] = {
    Action.ADJUSTMENTS_PREPARE: {CSR: 2_500, SPECIALIST: 10_000, SUPERVISOR: 100_000},
    Action.ADJUSTMENTS_APPROVE: {SUPERVISOR: 100_000},
    Action.REFUNDS_APPROVE: {SUPERVISOR: 100_000},
    Action.WRITE_OFFS_APPROVE: {SUPERVISOR: 100_000},
}

#: Actions whose approval must come from someone other than whoever prepared the thing.
SEPARATE_APPROVER: dict[Action, Action] = {
    Action.BILLS_VOID: Action.BILLS_CORRECT,
    Action.ADJUSTMENTS_APPROVE: Action.ADJUSTMENTS_PREPARE,
    Action.DRAWERS_SIGN_OFF: Action.DRAWERS_OPEN,
    Action.REFUNDS_APPROVE: Action.REFUNDS_REQUEST,
    Action.WRITE_OFFS_APPROVE: Action.WRITE_OFFS_PREPARE,
    Action.REFERRALS_APPROVE: Action.REFERRALS_PREPARE,
    Action.RATES_APPROVE: Action.RATES_EDIT,
}
# Issue 16, approvals: the approver is never the preparer for every kind in the approvals
# queue; a final bill held for review is approved by someone other than who stopped service.
SEPARATE_APPROVER[Action.BILLS_FINAL_APPROVE] = Action.BILLS_FINAL


class Field(str, enum.Enum):
    """Sensitive fields shown only to roles that need them; every showing is audited."""

    BIRTH_DATE = "start_request.birth_date"
    ID_LAST4 = "start_request.id_last4"
    CUSTOMER_BIRTH_DATE = "customer.birth_date"
    CUSTOMER_ID_LAST4 = "customer.id_last4"


@dataclass(frozen=True)
class FieldRule:
    roles: frozenset[Role]
    means: str
    #: The audit action recorded each time the field is shown.
    audit_action: str


FIELDS: dict[Field, FieldRule] = {
    Field.BIRTH_DATE: FieldRule(
        frozenset({CSR, SPECIALIST, SUPERVISOR, ADMIN}),
        "The applicant's date of birth on a start-service request (for a credit or identity check).",
        "start_request.identity_viewed",
    ),
    Field.ID_LAST4: FieldRule(
        frozenset({CSR, SPECIALIST, SUPERVISOR, ADMIN}),
        "The last four digits of the applicant's ID on a start-service request.",
        "start_request.identity_viewed",
    ),
    Field.CUSTOMER_BIRTH_DATE: FieldRule(
        frozenset({CSR, SPECIALIST, SUPERVISOR, ADMIN}),
        "A customer's date of birth (identity, and finding the same customer twice).",
        "customer.identity_viewed",
    ),
    Field.CUSTOMER_ID_LAST4: FieldRule(
        frozenset({CSR, SPECIALIST, SUPERVISOR, ADMIN}),
        "The last four digits of a customer's ID.",
        "customer.identity_viewed",
    ),
}


def _role(role: Role | str) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        return None


def can(role: Role | str | None, action: Action) -> bool:
    """May someone with ``role`` take ``action`` at all?"""
    found = _role(role) if role is not None else None
    return found is not None and found in GRANTS[action].roles


def require(actor: object, action: Action) -> None:
    """Raise ``NotAllowed`` with the action's refusal unless ``actor`` (anything with a
    ``role``; None for nobody) may take it."""
    if not can(getattr(actor, "role", None), action):
        raise NotAllowed(GRANTS[action].refusal, action=action)


def limit_cents(role: Role | str, action: Action) -> int | None:
    """How much ``role`` may do of ``action`` on its own: None is no limit, 0 is nothing."""
    if not can(role, action):
        return 0
    found = _role(role)
    return LIMITS.get(action, {}).get(found) if found is not None else 0


def within_limit(role: Role | str, action: Action, amount_cents: int) -> bool:
    limit = limit_cents(role, action)
    return limit is None or abs(amount_cents) <= limit


def require_approver(
    actor: object, action: Action, prepared_by_id: int | None, amount_cents: int | None = None
) -> None:
    """The checks an approval makes: the role may approve, the approver is not the
    preparer where the table says so, and the amount is within the approver's limit."""
    require(actor, action)
    if action in SEPARATE_APPROVER and prepared_by_id is not None and prepared_by_id == getattr(actor, "id", None):
        raise NotAllowed("The person who prepared this cannot also approve it.", action=action)
    if amount_cents is not None and not within_limit(getattr(actor, "role", ""), action, amount_cents):
        raise NotAllowed("This amount is above what your role may approve.", action=action)


def may_see(role: Role | str | None, field: Field) -> bool:
    found = _role(role) if role is not None else None
    return found is not None and found in FIELDS[field].roles


def allowed(role: Role | str | None) -> frozenset[Action]:
    """Every action ``role`` may take (templates ask ``can.bills_void`` and the like)."""
    return frozenset(action for action in Action if can(role, action))


# --- docs/roles.md -------------------------------------------------------------------------

ROLE_NAMES = {
    CUSTOMER: "Customer",
    CSR: "Customer service",
    SPECIALIST: "Billing specialist",
    CASHIER: "Cashier",
    SUPERVISOR: "Billing supervisor",
    ADMIN: "Administrator",
    FIELD: "Field staff",
}
COLUMNS = (CSR, SPECIALIST, CASHIER, SUPERVISOR, ADMIN, FIELD)


def _dollars(cents: int) -> str:
    return f"${cents // 100:,}" + (f".{cents % 100:02d}" if cents % 100 else "")


def render_markdown() -> str:
    """docs/roles.md, from the table above."""
    lines = [
        "# Roles: who may do what",
        "",
        "<!-- Generated from portal/billing_core/permissions.py by"
        " `python -m portal.billing_core.permissions > docs/roles.md`;"
        " tests/billing_core/test_permissions.py checks it is current. -->",
        "",
        "Every check in the portal (services, staff pages, the command line) reads one table,"
        " `portal/billing_core/permissions.py`. Customers reach only their own accounts, through"
        " the accounts linked to their sign-in; they hold none of the staff actions below.",
        "",
        "## Actions",
        "",
        "| Action | What it is | " + " | ".join(ROLE_NAMES[r] for r in COLUMNS) + " |",
        "|---|---|" + "---|" * len(COLUMNS),
    ]
    for action, grant in GRANTS.items():
        cells = []
        for role in COLUMNS:
            if role not in grant.roles:
                cells.append("")
                continue
            limit = LIMITS.get(action, {}).get(role)
            cells.append("yes" if limit is None else f"up to {_dollars(limit)}")
        lines.append(f"| `{action.value}` | {grant.means} | " + " | ".join(cells) + " |")
    lines += ["", "## Approval by someone else", ""]
    for approve, prepare in SEPARATE_APPROVER.items():
        lines.append(f"- `{approve.value}` is never done by the person who did `{prepare.value}` on the same thing.")
    lines += [
        "",
        "## Limits",
        "",
        "A role with a limit does the action on its own up to that amount; above it, the step waits"
        " for someone whose limit covers it.",
        "",
    ]
    for action, limits in LIMITS.items():
        parts = ", ".join(f"{ROLE_NAMES[r]} {_dollars(c)}" for r, c in limits.items())
        lines.append(f"- `{action.value}`: {parts}.")
    lines += [
        "",
        "## Sensitive fields",
        "",
        "Shown only to these roles, and each showing is written to the audit trail.",
        "",
        "| Field | What it is | Shown to | Audited as |",
        "|---|---|---|---|",
    ]
    for field, rule in FIELDS.items():
        shown = ", ".join(ROLE_NAMES[r] for r in COLUMNS if r in rule.roles)
        lines.append(f"| `{field.value}` | {rule.means} | {shown} | `{rule.audit_action}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
