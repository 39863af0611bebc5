"""Every corpus file is read and checked; the ones that fail are exactly the malformed ones."""

from portal.billing_core import owrs
from portal.billing_core.rate_schedules import parse_effective_date, validate_owrs
from tests.owrs_corpus import FILES, MALFORMED, needs_corpus, relative


@needs_corpus
def test_every_valid_corpus_file_passes_and_the_malformed_ones_fail_clearly() -> None:
    failures: dict[str, str] = {}
    for path in FILES:
        try:
            file = owrs.load_path(path)
            problems = validate_owrs(file)
            if problems:
                raise problems[0]
            parse_effective_date(file.metadata.get("effective_date"), file.path)
        except owrs.OwrsError as exc:
            failures[relative(path)] = str(exc)
    assert set(failures) == set(MALFORMED)
    for name, message in failures.items():
        assert name in message, "the message names the file"
        assert MALFORMED[name] in message
    assert len(FILES) - len(failures) >= 474
