import os
import subprocess
import sys

from django.conf import settings


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_manage("check", DEBUG="false", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_it_rejects_a_boolean_it_cannot_parse():
    result = run_manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_it_reports_empty_allowed_hosts_in_production():
    result = run_manage("check", DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="")
    assert result.returncode != 0
    assert "eventhub.E001" in result.stderr


def test_it_accepts_a_production_configuration():
    result = run_manage(
        "check", DEBUG="off", SECRET_KEY="x" * 50, ALLOWED_HOSTS="eventhub.example.com",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
    )
    assert result.returncode == 0, result.stderr


def test_it_rejects_a_database_url_it_does_not_understand():
    result = run_manage("check", DATABASE_URL="nosuchdb://somewhere/x")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_it_refuses_more_consumers_per_queue_than_a_queue_config_allows():
    from queues.models import MAX_CONCURRENCY

    assert settings.QUEUES_DEFAULTS["concurrency"] <= MAX_CONCURRENCY
    result = run_manage("check", QUEUES_CONCURRENCY=str(MAX_CONCURRENCY + 1))
    assert result.returncode != 0
    assert f"QUEUES_CONCURRENCY='{MAX_CONCURRENCY + 1}' must be at most {MAX_CONCURRENCY}" in result.stderr
    assert run_manage("check", QUEUES_CONCURRENCY=str(MAX_CONCURRENCY)).returncode == 0


def test_it_rejects_a_trusted_proxy_that_is_no_address_or_network():
    result = run_manage("check", TRUSTED_PROXIES="10.0.0.0/8, 10.0.0.0/33")
    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr and "10.0.0.0/33" in result.stderr
    assert run_manage("check", TRUSTED_PROXIES="10.0.0.0/8, 2001:db8::1").returncode == 0
