"""Failed sign-ins are throttled per client address (and per address and username), never per username
alone: after LOGIN_FAILURE_LIMIT (10) failures within LOGIN_COOLOFF_SECONDS (60) an address gets 429
with Retry-After on the admin login.

Time is moved by ageing the failure records, not by sleeping."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db.models import F, Sum
from django.test import Client

pytestmark = pytest.mark.django_db

ATTACKER, OWNER = "198.51.100.7", "192.0.2.44"
LIMIT = 10


def failures_recorded(**where) -> int:
    attempts = apps.get_model("axes", "AccessAttempt").objects.filter(**where)
    return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0


def age_failures(seconds: int) -> None:
    attempts = apps.get_model("axes", "AccessAttempt").objects
    attempts.update(attempt_time=F("attempt_time") - timedelta(seconds=seconds))


def retry_after(response) -> int:
    seconds = int(response["Retry-After"])
    assert 0 < seconds <= 60
    return seconds


def admin_login(address: str, password: str):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/", {"username": "root", "password": password, "next": "/admin/"})
    return client, response


def lock_the_admin_login_from(address: str) -> None:
    answers = [admin_login(address, "wrong")[1].status_code for _ in range(LIMIT)]
    assert answers == [200] * (LIMIT - 1) + [429]  # 200: the login form again, with its error


def test_the_admin_login_answers_429_with_retry_after_after_ten_wrong_passwords(superuser):
    lock_the_admin_login_from(ATTACKER)
    client, response = admin_login(ATTACKER, "pw-root")
    assert response.status_code == 429
    retry_after(response)
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert failures_recorded(ip_address=ATTACKER, username="root") == LIMIT


def test_the_admin_can_still_log_in_from_another_address(superuser):
    lock_the_admin_login_from(ATTACKER)
    client, response = admin_login(OWNER, "pw-root")
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.session["_auth_user_id"] == str(superuser.pk)


def test_the_admin_login_opens_again_once_the_cool_off_is_over(superuser):
    lock_the_admin_login_from(ATTACKER)
    age_failures(61)
    _, response = admin_login(ATTACKER, "pw-root")
    assert response.status_code == 302
    assert failures_recorded(ip_address=ATTACKER) == 0
