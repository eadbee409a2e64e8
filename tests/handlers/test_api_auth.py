import json
import time

import pytest
from django.core import signing
from rest_framework.test import APIClient

from eventhub.lib.api.auth import TOKEN_SALT, issue_token
from handlers.models import ApiKey, EventHandler

from ..conftest import make_user, token_client
from .seeds import START_SHIPPING

pytestmark = pytest.mark.django_db


def exchange(client: APIClient, key_id: str, secret: str):
    return client.post("/api/token", data=json.dumps({"keyId": key_id, "keySecret": secret}), content_type="*/*")


@pytest.mark.parametrize(
    "method,path",
    [("get", "/api/event"), ("post", "/api/event"), ("put", "/api/event"), ("get", "/api/event/sqs:x"),
     ("delete", "/api/event/x"), ("get", "/api/schema")],
)
def test_it_answers_401_without_credentials(method, path):
    response = getattr(APIClient(), method)(path, HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert json.loads(response.content)["status"] == 401
    assert response.has_header("WWW-Authenticate")


def test_it_stores_only_a_hash_of_the_secret(superuser):
    key, secret = ApiKey.issue(superuser, "orders worker")
    stored = ApiKey.objects.get(pk=key.pk)
    assert secret not in stored.secret_hash
    assert stored.check_secret(secret) and not stored.check_secret(secret + "x")


def test_it_exchanges_a_key_for_a_token_that_authenticates(superuser):
    key, secret = ApiKey.issue(superuser, "orders worker")
    response = exchange(APIClient(), key.key_id, secret)
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_X_AUTHORIZATION=response.json()["token"])
    assert client.get("/api/event").status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.parametrize("field", ["keyId", "keySecret"])
def test_it_rejects_a_wrong_key_id_or_secret(superuser, field):
    key, secret = ApiKey.issue(superuser, "orders worker")
    credentials = {"keyId": key.key_id, "keySecret": secret, field: "wrong"}
    response = APIClient().post("/api/token", data=credentials, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_CREDENTIALS"


def test_it_asks_for_both_key_id_and_secret():
    response = APIClient().post("/api/token", data={"keyId": "abc"}, format="json")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["validationErrors"]] == ["keySecret"]


def test_a_revoked_key_gets_no_token_and_its_tokens_stop_working(superuser):
    key, secret = ApiKey.issue(superuser, "orders worker")
    token = exchange(APIClient(), key.key_id, secret).json()["token"]
    assert key.revoke() is True
    assert key.revoke() is False
    assert exchange(APIClient(), key.key_id, secret).status_code == 401
    client = APIClient()
    client.credentials(HTTP_X_AUTHORIZATION=token)
    response = client.get("/api/event")
    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_TOKEN"


def test_an_expired_token_is_refused_with_conductors_code(superuser, settings):
    key, _ = ApiKey.issue(superuser, "orders worker")
    settings.API_TOKEN_TTL_SECONDS = 60
    # The token issue_token would have made two minutes ago.
    value = signing.TimestampSigner(salt=TOKEN_SALT).unsign(issue_token(key))
    stale = _sign_at(value, int(time.time()) - 120)
    client = APIClient()
    client.credentials(HTTP_X_AUTHORIZATION=stale)
    response = client.get("/api/event")
    assert response.status_code == 401
    assert response.json()["error"] == "EXPIRED_TOKEN"
    client.credentials(HTTP_X_AUTHORIZATION=issue_token(key))
    assert client.get("/api/event").status_code == 200


def _sign_at(value: str, when: int) -> str:
    signer = signing.TimestampSigner(salt=TOKEN_SALT)
    signer.timestamp = lambda: signing.b62_encode(when)
    return signer.sign(value)


def test_a_forged_token_is_invalid():
    client = APIClient()
    client.credentials(HTTP_X_AUTHORIZATION="not-a-token")
    response = client.get("/api/event")
    assert response.status_code == 401
    assert response.json()["error"] == "INVALID_TOKEN"


def test_a_token_for_an_inactive_user_is_refused(superuser):
    key, _ = ApiKey.issue(superuser, "orders worker")
    token = issue_token(key)
    superuser.is_active = False
    superuser.save()
    client = APIClient()
    client.credentials(HTTP_X_AUTHORIZATION=token)
    assert client.get("/api/event").status_code == 401


def test_the_admin_session_authenticates(superuser):
    client = APIClient()
    client.force_login(superuser)
    assert client.get("/api/event").status_code == 200


def test_a_view_only_user_reads_but_cannot_write(django_user_model):
    viewer = token_client(make_user(django_user_model, "viewer", "view_eventhandler"))
    assert viewer.get("/api/event").status_code == 200
    response = viewer.post("/api/event", data=START_SHIPPING, format="json")
    assert response.status_code == 403
    assert response.json()["status"] == 403
    assert viewer.delete("/api/event/start_shipping_workflow").status_code == 403
    assert not EventHandler.objects.exists()


def test_a_user_without_view_permission_cannot_read(django_user_model):
    nobody = token_client(make_user(django_user_model, "nobody"))
    assert nobody.get("/api/event").status_code == 403


def test_a_user_with_change_permission_writes(django_user_model):
    editor = token_client(make_user(django_user_model, "editor", "view_eventhandler", "change_eventhandler"))
    assert editor.post("/api/event", data=START_SHIPPING, format="json").status_code == 200
    assert editor.delete("/api/event/start_shipping_workflow").status_code == 200


@pytest.mark.parametrize("case", ["wrong secret", "unknown key id", "revoked key", "right secret"])
def test_every_key_exchange_hashes_one_secret_so_its_time_tells_no_key_id(superuser, monkeypatch, case):
    from django.contrib.auth.hashers import MD5PasswordHasher  # (the test settings' hasher)

    key, secret = ApiKey.issue(superuser, "orders worker")
    if case == "revoked key":
        key.revoke()
    verified = []
    real_verify = MD5PasswordHasher.verify
    monkeypatch.setattr(MD5PasswordHasher, "verify", lambda self, *a: verified.append(1) or real_verify(self, *a))
    key_id = "no-such-key" if case == "unknown key id" else key.key_id
    response = exchange(APIClient(), key_id, secret if case in ("right secret", "revoked key") else "wrong")
    assert response.status_code == (200 if case == "right secret" else 401)
    assert len(verified) == 1
