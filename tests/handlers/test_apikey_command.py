from io import StringIO

import pytest
from django.core.management import CommandError, ManagementUtility, call_command

from handlers.models import ApiKey
from tests.conftest import make_user


def run(*args: str) -> str:
    out = StringIO()
    call_command("apikey", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_it_creates_a_key_and_prints_its_id_and_secret_once(django_user_model):
    worker = make_user(django_user_model, "worker", staff=False)
    output = run("create", "--user", "worker", "--name", "orders-service")
    lines = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    key = ApiKey.objects.get()
    assert (key.key_id, key.user, key.name) == (lines["Key id"], worker, "orders-service")
    assert key.check_secret(lines["Secret"])
    assert lines["Secret"] not in key.secret_hash


@pytest.mark.django_db
def test_it_refuses_an_unknown_or_inactive_user(django_user_model):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("create", "--user", "ghost", "--name", "x")
    django_user_model.objects.create_user(username="gone", is_active=False)
    with pytest.raises(CommandError, match="User 'gone' is inactive"):
        run("create", "--user", "gone", "--name", "x")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db
def test_it_lists_keys_with_their_state(django_user_model):
    assert run("list") == "No API keys.\n"
    user = make_user(django_user_model, "worker")
    live, _ = ApiKey.issue(user, "orders-service")
    dead, _ = ApiKey.issue(user, "old-service")
    dead.revoke()
    output = run("list").splitlines()
    assert output[0].split() == ["KEY", "ID", "USER", "CREATED", "LAST", "USED", "STATUS", "NAME"]
    rows = {line.split()[0]: line for line in output[1:]}
    assert "worker" in rows[live.key_id] and " active " in rows[live.key_id] and "never" in rows[live.key_id]
    assert "revoked " in rows[dead.key_id] and rows[dead.key_id].endswith("old-service")
    assert run("list", "--user", "nobody") == "No API keys.\n"


@pytest.mark.django_db
def test_it_revokes_a_key(django_user_model):
    key, _ = ApiKey.issue(make_user(django_user_model, "worker"), "orders-service")
    assert run("revoke", key.key_id) == f"Revoked API key {key.key_id} (orders-service).\n"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert run("revoke", key.key_id) == f"API key {key.key_id} (orders-service) was already revoked.\n"


@pytest.mark.django_db
def test_it_refuses_an_unknown_key():
    with pytest.raises(CommandError, match="No API key with id 'nope'"):
        run("revoke", "nope")


@pytest.mark.django_db
def test_it_exits_non_zero_with_the_error_on_the_command_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "apikey", "revoke", "nope"]).execute()
    assert exit_info.value.code == 1
    assert "No API key with id 'nope'" in capsys.readouterr().err


def test_it_requires_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "apikey"]).execute()
    assert exit_info.value.code == 2
    assert "create,list,revoke" in capsys.readouterr().err
