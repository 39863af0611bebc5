import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from portal.billing_core.models import AuditEvent, User
from portal.cli import main
from portal.demo import build_demo


@pytest.fixture
def env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return engine


def test_migrate(env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out


def test_users_create_links_a_customer_to_an_account(env: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    build_demo(env, accounts=3, seed=1, progress=False, today="2026-11-22")
    assert (
        main(
            [
                "users",
                "create",
                "--email",
                "new@example.org",
                "--password",
                "long enough pw",
                "--role",
                "customer",
                "--account",
                "00000026",
            ]
        )
        == 0
    )
    assert "Created customer sign-in new@example.org for account 00000026" in capsys.readouterr().out
    with Session(env) as s:
        user = s.scalar(select(User).where(User.email == "new@example.org"))
        assert [a.number for a in user.accounts] == ["00000026"]
        assert s.scalar(
            select(AuditEvent).where(AuditEvent.action == "user.create", AuditEvent.entity_id == str(user.id))
        )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "customer"], "account: A customer sign-in needs the account"),
        (["--role", "customer", "--account", "12345674"], "account: No account numbered 12345674"),
        (["--role", "csr", "--account", "00000018"], "account: Only customer sign-ins"),
    ],
)
def test_users_create_explains_bad_input_and_writes_nothing(
    env: Engine, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main(["users", "create", "--email", "x@example.org", "--password", "long enough pw", *args])
    assert code == 2
    assert message in capsys.readouterr().err
    with Session(env) as s:
        assert s.scalar(select(User).where(User.email == "x@example.org")) is None


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
