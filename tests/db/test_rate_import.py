from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import owrs
from portal.billing_core.models import AuditEvent, RateSchedule, RateScheduleVersion
from portal.billing_core.rate_schedules import import_owrs
from tests.billing_core.test_owrs import SPEC_TIERED
from tests.owrs_corpus import CORPUS, FILES, MALFORMED, needs_corpus, relative


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count(RateSchedule.id))),
        session.scalar(select(func.count(RateScheduleVersion.id))),
    )


def test_import_creates_a_schedule_per_class_and_is_idempotent(session: Session) -> None:
    file = owrs.load_text(SPEC_TIERED, "x/u - 1/a.owrs")
    result = import_owrs(session, file, actor_label="test")
    assert result.ok and result.created_schedules == 1 and result.created_versions == 1
    again = import_owrs(session, file, actor_label="test")
    assert again.ok and again.created_versions == 0 and again.unchanged_versions == 1
    assert counts(session) == (1, 1)
    version = session.scalar(select(RateScheduleVersion))
    assert version.definition["format"] == "owrs" and version.definition["class"] == "RESIDENTIAL_SINGLE"
    assert str(version.effective_on) == "2016-01-01"
    assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "rates.import_owrs")) == 2


def test_a_changed_file_for_the_same_date_is_refused_and_changes_nothing(session: Session) -> None:
    import_owrs(session, owrs.load_text(SPEC_TIERED, "u - 1/a.owrs"), actor_label="test")
    before = counts(session)
    changed = owrs.load_text(SPEC_TIERED.replace("2.87", "2.97"), "u - 1/a.owrs")
    result = import_owrs(session, changed, actor_label="test")
    assert not result.ok and "already has a different version effective 01/01/2016" in str(result.error)
    assert counts(session) == before


def test_a_malformed_file_names_file_class_field_and_writes_nothing(session: Session) -> None:
    bad = SPEC_TIERED.replace("commodity_charge+service_charge", "commodity_charge+service_charge flat:1")
    result = import_owrs(session, owrs.load_text(bad, "bad.owrs"), actor_label="test")
    assert not result.ok
    assert str(result.error).startswith("file bad.owrs, class RESIDENTIAL_SINGLE, field bill: cannot read formula")
    assert counts(session) == (0, 0)


@needs_corpus
def test_corpus_files_import_into_the_database(session: Session) -> None:
    sample = FILES[::12] + [CORPUS / "full_utility_rates" / name for name in sorted(MALFORMED)[:3]]
    imported = failed = 0
    for path in sample:
        try:
            file = owrs.load_path(path)
        except owrs.OwrsError:
            failed += 1
            assert relative(Path(path)) in MALFORMED
            continue
        result = import_owrs(session, file, actor_label="test")
        if result.ok:
            imported += 1
        else:
            failed += 1
            assert relative(Path(path)) in MALFORMED, str(result.error)
    session.commit()
    assert imported == len([p for p in FILES[::12] if relative(p) not in MALFORMED]) and failed >= 3
    # Rating an imported version gives the same bill as the quote contract.
    version = session.scalars(select(RateScheduleVersion).order_by(RateScheduleVersion.id)).first()
    assert version is not None and version.definition["format"] == "owrs"
