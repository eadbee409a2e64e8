"""Failed sign-ins are throttled per client address (and per address and key id or username), never per
key id or username alone: after LOGIN_FAILURE_LIMIT (10) failures within LOGIN_COOLOFF_SECONDS (60) an
address gets 429 with Retry-After, on the key exchange (`POST /api/token`) and on the admin login alike.

Time is moved by ageing the failure records, not by sleeping."""

import json
from datetime import timedelta
from ipaddress import ip_network

import pytest
from django.apps import apps
from django.db.models import F, Sum
from django.test import Client
from rest_framework.test import APIClient

from handlers.models import ApiKey

pytestmark = pytest.mark.django_db

ATTACKER, OWNER = "198.51.100.7", "192.0.2.44"
LIMIT = 10


@pytest.fixture
def key(superuser) -> tuple[ApiKey, str]:
    return ApiKey.issue(superuser, "orders worker")


def exchange(address: str, key_id: str, secret: str, **headers):
    client = APIClient(REMOTE_ADDR=address, **headers)
    return client.post("/api/token", data=json.dumps({"keyId": key_id, "keySecret": secret}),
                       content_type="application/json")


def fail_until_locked(address: str, key_ids: list[str], **headers):
    """Exchange wrong secrets from `address`: every failure but the last is a 401, the last a 429."""
    answers = [exchange(address, key_id, "wrong", **headers).status_code for key_id in key_ids]
    assert answers == [401] * (len(key_ids) - 1) + [429]


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


# --- the key exchange ---


def test_it_answers_429_with_retry_after_once_an_address_has_failed_ten_times(key):
    api_key, _ = key
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)
    response = exchange(ATTACKER, api_key.key_id, "wrong again")
    assert response.status_code == 429
    retry_after(response)
    body = response.json()
    assert (body["status"], body["retryable"]) == (429, True)
    assert "Too many failed key exchanges" in body["message"]
    # The refused attempt was not checked, so it is not counted (and does not push the lock further out).
    assert failures_recorded(ip_address=ATTACKER) == LIMIT


def test_it_refuses_even_the_right_secret_from_a_locked_out_address(key):
    api_key, secret = key
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)
    response = exchange(ATTACKER, api_key.key_id, secret)
    assert response.status_code == 429
    assert "token" not in response.json()
    retry_after(response)


def test_the_keys_owner_still_gets_a_token_from_another_address(key):
    api_key, secret = key
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)
    response = exchange(OWNER, api_key.key_id, secret)
    assert response.status_code == 200
    assert response.json()["token"]


def test_failures_spread_over_many_key_ids_lock_the_address(key):
    api_key, secret = key
    fail_until_locked(ATTACKER, [f"guess-{n}" for n in range(LIMIT)])
    assert exchange(ATTACKER, api_key.key_id, secret).status_code == 429
    assert failures_recorded(username__startswith="apikey:guess-") == LIMIT


def test_it_lets_the_address_in_again_once_the_cool_off_is_over(key):
    api_key, secret = key
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)
    age_failures(61)
    assert exchange(ATTACKER, api_key.key_id, secret).status_code == 200


def test_retry_after_counts_down_to_the_end_of_the_cool_off(key):
    api_key, _ = key
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)
    age_failures(45)
    assert retry_after(exchange(ATTACKER, api_key.key_id, "wrong")) <= 15


def test_a_success_forgives_that_clients_failures_on_that_key(key):
    api_key, secret = key
    for _ in range(LIMIT - 1):
        assert exchange(ATTACKER, api_key.key_id, "typo").status_code == 401
    assert exchange(ATTACKER, api_key.key_id, secret).status_code == 200
    assert failures_recorded(ip_address=ATTACKER) == 0
    fail_until_locked(ATTACKER, [api_key.key_id] * LIMIT)


def test_a_success_on_ones_own_key_does_not_forgive_guesses_at_another(key, superuser):
    victim, _ = key
    own_key, own_secret = ApiKey.issue(superuser, "the attacker's own key")
    for _ in range(LIMIT - 1):
        assert exchange(ATTACKER, victim.key_id, "guess").status_code == 401
    assert exchange(ATTACKER, own_key.key_id, own_secret).status_code == 200
    assert exchange(ATTACKER, victim.key_id, "one more guess").status_code == 429


# --- the client address ---


def test_it_ignores_x_forwarded_for_without_trusted_proxies(key, settings):
    settings.TRUSTED_PROXIES = []
    api_key, secret = key
    for n in range(LIMIT - 1):
        forged = exchange(ATTACKER, api_key.key_id, "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert forged.status_code == 401
    assert exchange(ATTACKER, api_key.key_id, "wrong", HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429
    assert exchange(ATTACKER, api_key.key_id, secret, HTTP_X_FORWARDED_FOR=OWNER).status_code == 429
    assert failures_recorded(ip_address=ATTACKER) == LIMIT


def test_behind_a_trusted_proxy_it_counts_each_forwarded_client_apart(key, settings):
    settings.TRUSTED_PROXIES = [ip_network("10.0.0.0/8")]
    api_key, secret = key
    fail_until_locked("10.1.2.3", [api_key.key_id] * LIMIT, HTTP_X_FORWARDED_FOR=ATTACKER)
    assert failures_recorded(ip_address=ATTACKER) == LIMIT
    assert failures_recorded(ip_address="10.1.2.3") == 0
    assert exchange("10.1.2.3", api_key.key_id, secret, HTTP_X_FORWARDED_FOR=ATTACKER).status_code == 429
    assert exchange("10.1.2.3", api_key.key_id, secret, HTTP_X_FORWARDED_FOR=OWNER).status_code == 200


# --- the admin login ---


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
