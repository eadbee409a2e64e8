"""`check --deploy`: each warning it gives can be answered from the environment, and with the variables
README "Production serving" documents there is none left."""

import pytest

from .production import documented_environment, readme_section, run_manage

# The variable that answers each of `check --deploy`'s warnings about it.
WARNING_ANSWERED_BY = {
    "security.W004": "SECURE_HSTS_SECONDS",
    "security.W005": "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "security.W008": "SECURE_SSL_REDIRECT",
    "security.W012": "SESSION_COOKIE_SECURE",
    "security.W016": "CSRF_COOKIE_SECURE",
    "security.W021": "SECURE_HSTS_PRELOAD",
}


def deploy_check(**variables: str):
    return run_manage("check", "--deploy", "--fail-level", "WARNING", **variables)


def test_it_passes_the_deploy_check_with_the_documented_variables():
    result = deploy_check(**documented_environment())
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@pytest.mark.parametrize(("warning", "variable"), sorted(WARNING_ANSWERED_BY.items()))
def test_it_names_the_warning_of_each_variable_left_out(warning, variable):
    env = documented_environment()
    del env[variable]
    result = deploy_check(**env)
    assert result.returncode != 0
    assert f"({warning})" in result.stderr
    assert result.stderr.count("(security.W") == 1, result.stderr


def test_it_gives_the_four_warnings_of_the_issue_without_the_variables():
    env = {name: value for name, value in documented_environment().items() if not name.startswith("SECURE_")}
    del env["SESSION_COOKIE_SECURE"], env["CSRF_COOKIE_SECURE"]
    result = deploy_check(**env)
    assert result.returncode != 0
    assert [w for w in ("W004", "W008", "W012", "W016") if f"(security.{w})" in result.stderr] == [
        "W004", "W008", "W012", "W016"]


def test_it_documents_each_variable_as_name_equals_value():
    section = readme_section()
    for name, value in documented_environment().items():
        if name not in ("SECRET_KEY", "DATABASE_URL"):
            assert f"`{name}={value}`" in section, name


def test_it_leaves_https_off_by_default_so_make_run_works_over_plain_http():
    result = run_manage("shell", "--no-imports", "-c", (
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_PROXY_SSL_HEADER)"
    ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "0", "False", "False", "False", "False", "None"]


def test_it_reads_the_proxy_header_as_django_names_it():
    code = "from django.conf import settings; print(settings.SECURE_PROXY_SSL_HEADER)"
    result = run_manage("shell", "--no-imports", "-c", code, SECURE_PROXY_SSL_HEADER=" HTTP_X_FORWARDED_PROTO , https ")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"


@pytest.mark.parametrize("value", ["X-Forwarded-Proto,https", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_PROTO,"])
def test_it_refuses_a_proxy_header_it_cannot_read(value):
    result = run_manage("check", SECURE_PROXY_SSL_HEADER=value)
    assert result.returncode != 0
    assert f"SECURE_PROXY_SSL_HEADER={value!r} is not a header and a value" in result.stderr


def test_it_refuses_hsts_seconds_that_are_not_a_number():
    result = run_manage("check", SECURE_HSTS_SECONDS="a year")
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS='a year' is not a whole number" in result.stderr
