"""API authentication the way Conductor's SDKs do it.

A client posts its key id and secret to `/api/token` and gets a signed token back, which it sends in
`X-Authorization` until it expires. The token names the key, so revoking a key stops its tokens at
once. Expired or unreadable tokens answer 401 with Conductor's error codes (`EXPIRED_TOKEN`,
`INVALID_TOKEN`), on which the SDKs fetch a new token and retry. Failed exchanges are counted per client
address (`eventhub.lib.login_throttle`): past the limit the address gets 429 with `Retry-After`.

The key model is the one the `EVENTHUB_API_KEY_MODEL` setting names (`"app_label.ModelName"`, as
`AUTH_USER_MODEL` names the user model). It needs a unique `key_id` field, a `user` foreign key, a
`last_used_at` field, an `is_active` property and a `check_secret(secret)` method.
"""

import secrets
from functools import cache

from django.apps import apps
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from .. import login_throttle

TOKEN_SALT = "eventhub.api-token"


def get_api_key_model() -> type[models.Model]:
    """The model of API keys named by `EVENTHUB_API_KEY_MODEL`, as `get_user_model()` for users."""
    try:
        return apps.get_model(settings.EVENTHUB_API_KEY_MODEL, require_ready=False)
    except ValueError:
        raise ImproperlyConfigured("EVENTHUB_API_KEY_MODEL must be of the form 'app_label.model_name'") from None
    except LookupError:
        raise ImproperlyConfigured(
            f"EVENTHUB_API_KEY_MODEL refers to model {settings.EVENTHUB_API_KEY_MODEL!r} that has not been installed"
        ) from None


class TokenRejected(exceptions.AuthenticationFailed):
    def __init__(self, detail: str, error_code: str):
        super().__init__(detail)
        self.error_code = error_code


class KeyExchangeLockedOut(exceptions.Throttled):
    def __init__(self, seconds: int):
        super().__init__(detail=login_throttle.lockout_message(seconds, "key exchanges"))
        self.wait = seconds  # the exception handler sends it as Retry-After (DRF's own would repeat it in the text)


def issue_token(key: models.Model) -> str:
    return signing.dumps({"kid": key.key_id}, salt=TOKEN_SALT, compress=True)


def exchange_key(request, key_id, key_secret) -> models.Model:
    """The key these credentials name, or 401; 429 while the client's address is locked out.

    A locked-out client is refused before its secret is checked: it learns nothing and costs no hash.
    """
    credentials = login_throttle.key_exchange_credentials(key_id)
    if login_throttle.is_locked_out(request, credentials):
        raise KeyExchangeLockedOut(login_throttle.seconds_until_unlocked(request, credentials))
    key = key_for_credentials(key_id, key_secret)
    if key is None:
        if login_throttle.record_failure(request, credentials):
            raise KeyExchangeLockedOut(login_throttle.seconds_until_unlocked(request, credentials))
        raise TokenRejected("Unknown key id, wrong secret, or a revoked key.", "INVALID_CREDENTIALS")
    login_throttle.forgive(request, credentials["username"])
    return key


def key_for_credentials(key_id, key_secret) -> models.Model | None:
    if not isinstance(key_id, str) or not isinstance(key_secret, str):
        return None
    key = get_api_key_model().objects.select_related("user").filter(key_id=key_id).first()
    # The secret is hashed and compared whatever the key: an unknown or revoked key id costs as much time
    # as a wrong secret, so the time of an answer does not tell which key ids exist.
    matches = key.check_secret(key_secret) if key is not None else check_password(key_secret, _dummy_hash())
    return key if key is not None and matches and key.is_active else None


@cache
def _dummy_hash() -> str:
    """A hash of a random secret, made by the default hasher as a key's secret is, for unknown key ids."""
    return make_password(secrets.token_urlsafe(32))


class ConductorTokenAuthentication(BaseAuthentication):
    header = "HTTP_X_AUTHORIZATION"

    def authenticate(self, request):
        token = request.META.get(self.header)
        if not token:
            return None
        try:
            claims = signing.loads(token, salt=TOKEN_SALT, max_age=settings.API_TOKEN_TTL_SECONDS)
        except signing.SignatureExpired:
            raise TokenRejected("The token has expired; exchange the API key for a new one.", "EXPIRED_TOKEN")
        except signing.BadSignature:
            raise TokenRejected("The token is not valid.", "INVALID_TOKEN")
        api_keys = get_api_key_model().objects
        key = api_keys.select_related("user").filter(key_id=claims.get("kid")).first()
        if key is None or not key.is_active:
            raise TokenRejected("The API key behind this token is revoked or its user is inactive.", "INVALID_TOKEN")
        api_keys.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key.user, key

    def authenticate_header(self, request) -> str:
        # Present, so DRF answers 401 (not 403) to requests without credentials.
        return 'Token realm="api"'
