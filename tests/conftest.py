import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def make_user(django_user_model, username: str, *codenames: str, staff: bool = True):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username, is_staff=staff)
    if codenames:
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture(autouse=True)
def _fresh_shape_sampler():
    """The listener's shape sampler remembers, per process, what it wrote: each test starts it afresh, as its
    database does."""
    from handlers.shapes import SAMPLER  # noqa: PLC0415 - (Django is set up by now)

    SAMPLER.reset()


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw-root", email="")


@pytest.fixture
def api(superuser) -> APIClient:
    """An API client acting as a superuser, through a DRF token."""
    return token_client(superuser)


# Broker fixtures for every test package (queues, dispatch end to end, crash tests).
from .brokers import kind, listener_process, make_config, providers, spawn_listener, sqs_server  # noqa: E402, F401

# A real browser for the admin's pages (tests/browser.py).
from .browser import browser, logged_in_page, page, screenshot, site  # noqa: E402, F401
