import getpass
import io
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.billing_core import user_sessions, users
from portal.billing_core.models import AuditEvent, User
from portal.cli import build_parser, main
from portal.demo import build_demo


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_migrate(env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str, tty: bool = False) -> None:
    class Input(io.StringIO):
        def isatty(self) -> bool:
            return tty

    monkeypatch.setattr(sys, "stdin", Input(text))


def _create(monkeypatch: pytest.MonkeyPatch, *args: str, password: str = "long enough pw") -> int:
    _stdin(monkeypatch, password + "\n")
    return main(["users", "create", *args, "--password-stdin"])


def test_users_create_links_a_customer_to_an_account(
    env: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    build_demo(env, accounts=3, seed=1, progress=False, today="2026-11-22")
    code = _create(
        monkeypatch, "--email", "new@example.org", "--role", "customer", "--account", "00000026", "--name", "Pat"
    )
    assert code == 0
    assert "Created customer sign-in new@example.org for account 00000026" in capsys.readouterr().out
    with Session(env) as s:
        user = s.scalar(select(User).where(User.email == "new@example.org"))
        assert [a.number for a in user.accounts] == ["00000026"] and user.display_name == "Pat"
        assert s.scalar(
            select(AuditEvent).where(AuditEvent.action == "user.create", AuditEvent.entity_id == str(user.id))
        )
        assert users.authenticate(s, "new@example.org", "long enough pw", datetime.now(UTC)) is not None


def test_users_create_never_takes_the_password_from_the_command_line(
    env: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code = main(["users", "create", "--email", "x@example.org", "--role", "csr", "--password", "long enough pw"])
    assert code == 2 and "--password is not accepted" in capsys.readouterr().err
    # Without a terminal to ask on, and without --password-stdin: a clear error.
    _stdin(monkeypatch, "long enough pw\n")
    assert main(["users", "create", "--email", "x@example.org", "--role", "csr"]) == 2
    assert "--password-stdin" in capsys.readouterr().err
    # At a terminal it is asked twice (without echo), and must match.
    _stdin(monkeypatch, "", tty=True)
    answers = iter(["long enough pw", "something else"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt: next(answers))
    assert main(["users", "create", "--email", "x@example.org", "--role", "csr"]) == 2
    assert "not the same" in capsys.readouterr().err
    answers = iter(["long enough pw", "long enough pw"])
    assert main(["users", "create", "--email", "x@example.org", "--role", "csr"]) == 0
    with Session(env) as s:
        assert s.scalar(select(User.role).where(User.email == "x@example.org")) == "csr"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "customer"], "--account is required for a customer sign-in"),
        (["--role", "customer", "--account", "12345674"], "account: No account numbered 12345674"),
        (["--role", "csr", "--account", "00000018"], "account: Only customer sign-ins"),
    ],
)
def test_users_create_explains_bad_input_and_writes_nothing(
    env: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    assert _create(monkeypatch, "--email", "x@example.org", *args) == 2
    assert message in capsys.readouterr().err
    with Session(env) as s:
        assert s.scalar(select(User).where(User.email == "x@example.org")) is None


def test_every_users_option_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    users_parser = next(
        a for a in parser._subparsers._group_actions[0].choices["users"]._actions if a.dest == "users_command"
    )
    assert set(users_parser.choices) == {"create", "list", "deactivate", "activate", "set-role", "sign-out"}
    for name, sub in users_parser.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"portal users {name}: {action.dest} has no help"


def _session_for(engine: Engine, email: str) -> str:
    """A session started for ``email`` as signing in would; its raw id."""
    with Session(engine) as s, s.begin():
        return user_sessions.start(s, users.user_by_email(s, email), datetime.now(UTC))


def _open(engine: Engine, raw: str, email: str) -> bool:
    with Session(engine) as s, s.begin():
        user_id = users.user_by_email(s, email).id
        return user_sessions.check(s, raw, user_id, datetime.now(UTC)).user is not None


def test_users_list_deactivate_set_role_and_sign_out(
    env: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _create(monkeypatch, "--email", "clerk@example.org", "--role", "csr") == 0
    assert _create(monkeypatch, "--email", "boss@example.org", "--role", "supervisor") == 0
    capsys.readouterr()
    first, second = _session_for(env, "clerk@example.org"), _session_for(env, "clerk@example.org")

    assert main(["users", "list"]) == 0
    out = capsys.readouterr().out
    clerk = next(line for line in out.splitlines() if line.startswith("clerk@example.org"))
    assert clerk.split()[1:4] == ["csr", "on", "2"]
    assert "2 sign-ins" in out
    assert main(["users", "list", "--role", "supervisor"]) == 0
    assert "clerk@" not in capsys.readouterr().out

    # An administrator signs the clerk out everywhere: both sessions end.
    assert main(["users", "sign-out", "clerk@example.org"]) == 0
    assert "2 sessions ended" in capsys.readouterr().out
    assert not _open(env, first, "clerk@example.org") and not _open(env, second, "clerk@example.org")

    # A new role ends the sessions too, and customers and staff do not trade places.
    third = _session_for(env, "clerk@example.org")
    assert main(["users", "set-role", "clerk@example.org", "specialist"]) == 0
    assert "now specialist (was csr); 1 session ended" in capsys.readouterr().out
    assert not _open(env, third, "clerk@example.org")
    assert main(["users", "set-role", "clerk@example.org", "customer"]) == 2
    assert "cannot become" in capsys.readouterr().err

    # Turning a sign-in off ends its sessions at once.
    fourth = _session_for(env, "clerk@example.org")
    assert main(["users", "deactivate", "clerk@example.org"]) == 0
    assert "Turned off sign-in clerk@example.org; 1 session ended" in capsys.readouterr().out
    assert not _open(env, fourth, "clerk@example.org")
    assert main(["users", "list", "--active-only"]) == 0
    assert "clerk@" not in capsys.readouterr().out
    assert main(["users", "activate", "clerk@example.org"]) == 0
    assert not _open(env, fourth, "clerk@example.org")  # what ended stays ended

    assert main(["users", "sign-out", "nobody@example.org"]) == 2
    assert "No sign-in has the email address nobody@example.org" in capsys.readouterr().err
    with Session(env) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.actor_label.like("portal users %"))))
    assert {"user.sign_out_everywhere", "user.role", "user.deactivate", "user.activate"} <= actions


def test_demo_prints_sign_ins_and_keeps_an_existing_district(env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--accounts", "12", "--seed", "2", "--today", "2026-11-22", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "12 accounts, 288 bills" in out
    assert "admin@demo.example" in out and "resident@demo.example" in out and "demo-password-2026" in out
    assert main(["demo", "--accounts", "12", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Keeping the district already there" in out and "resident@demo.example" in out


def test_route_file_out_and_back_in(env: Engine, capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    build_demo(env, accounts=12, seed=4, progress=False, today="2026-10-20")
    capsys.readouterr()
    assert main(["reads", "route-file", "--cycle", "C2", "--date", "2026-11-12"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 3 and "3 stops written in walking order." in out.err
    assert [line[6:11] for line in lines] == ["00001", "00002", "00003"]
    # The reader keys each new read over the previous one and a read code; the file loads.
    filled = [line[:31] + f"{int(line[31:41]) + 9:<10}" + line[41:49] + "OK" for line in lines]
    path = tmp_path / "route.txt"
    path.write_text("\n".join(filled) + "\n")
    assert main(["reads", "import", str(path), "--format", "fixed", "--layout", "handheld-60"]) == 0
    assert "3 reads added" in capsys.readouterr().out


def test_account_stop_posts_the_final_bill_and_explains_bad_input(
    env: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    from sqlalchemy import func

    from portal.billing_core.models import Account, Bill, Meter, MeterRead, Service

    build_demo(env, accounts=3, seed=1, progress=False, today="2026-11-22")
    with Session(env) as s:
        account = s.scalar(select(Account).where(Account.status == "active").order_by(Account.id))
        serials = s.scalars(
            select(Meter.serial).join(Service, Service.meter_id == Meter.id).where(Service.account_id == account.id)
        ).all()
        last_end = s.scalar(select(func.max(Bill.period_end)).where(Bill.account_id == account.id))
        last = {
            serial: s.scalar(
                select(func.max(MeterRead.value))
                .join(Meter, Meter.id == MeterRead.meter_id)
                .where(Meter.serial == serial)
            )
            for serial in serials
        }
    stop = [
        "account",
        "stop",
        account.number,
        "--on",
        str(last_end + timedelta(days=10)),
        "--as",
        "specialist@demo.example",
    ]
    reads = [f"--read={serial}={value + 3}" for serial, value in last.items()]
    capsys.readouterr()
    assert main([*stop]) == 2
    assert "enter the final read of every meter" in capsys.readouterr().err
    assert main([*stop, "--read=NOPE=1"]) == 2
    assert "meter NOPE is not on account" in capsys.readouterr().err
    assert main([*stop, *reads, "--forward-street", "1 Main St"]) == 2
    assert "Enter the city." in capsys.readouterr().err
    with Session(env) as s:
        assert s.get(Account, account.id).status == "active"
    assert main([*stop, *reads]) == 0
    out = capsys.readouterr().out
    assert f"Account {account.number} is final from {last_end + timedelta(days=10)}. Final bill" in out
    with Session(env) as s:
        assert s.get(Account, account.id).status == "final"


# =========================================================================== CLI help and arguments
# (every subcommand but `portal users`, which has its own section)


def _options(parser, path: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    """Every argument of every subcommand, as (command path, action)."""
    import argparse

    for action in parser._actions:  # noqa: SLF001 - argparse keeps them here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):  # noqa: SLF001
            yield path, action


def test_every_option_of_every_command_has_help() -> None:
    from portal.cli import build_parser

    missing = [
        f"portal {' '.join(path)} {action.option_strings[0] if action.option_strings else action.dest}"
        for path, action in _options(build_parser())
        if path[:1] != ("users",) and not (action.help or "").strip()
    ]
    assert missing == []


def test_cycles_are_named_in_the_help() -> None:
    from portal.cli import build_parser

    for path, action in _options(build_parser()):
        if "--cycle" in action.option_strings:
            assert "C1 to C4" in action.help, path


@pytest.mark.parametrize(
    "command", [["bill-run", "approve", "3"], ["bill-run", "post", "3"], ["bill-run", "deliver", "3"]]
)
def test_as_is_required_where_the_action_needs_an_actor(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(command)
    assert info.value.code == 2
    assert "error: the following arguments are required: --as" in capsys.readouterr().err


def test_a_date_that_is_not_one_gets_a_message_from_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    command = ["bill-run", "create", "--cycle", "C1", "--period-start", "2026-13-01", "--period-end", "2026-12-01"]
    with pytest.raises(SystemExit):
        main(command)
    assert "argument --period-start: '2026-13-01' is not a date: give it as YYYY-MM-DD" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["rates", "import-owrs", "a.owrs", "--effective", "July 1"])
    assert "argument --effective: 'July 1' is not a date" in capsys.readouterr().err


def test_a_wrong_cycle_gets_the_list_of_cycles_and_nothing_is_created(
    env: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlalchemy import func

    from portal.billing_core.models import BillRun

    build_demo(env, accounts=4, seed=1, progress=False, today="2026-11-22")
    capsys.readouterr()
    create = ["bill-run", "create", "--cycle", "C9", "--period-start", "2026-11-01", "--period-end", "2026-12-01"]
    assert main(create) == 2
    err = capsys.readouterr().err
    assert "no billing cycle 'C9'; the cycles are: C1 (Cycle 1 (read on the 5th))" in err
    assert "C4 (Cycle 4 (read on the 26th))" in err
    with Session(env) as s:
        assert s.scalar(select(func.count(BillRun.id))) == 0
    assert main(["reads", "route-file", "--cycle", "9", "--date", "2026-11-12"]) == 2
    assert "no billing cycle '9'; the cycles are: C1" in capsys.readouterr().err
