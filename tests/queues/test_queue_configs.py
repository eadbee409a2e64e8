"""Queue configs: defaults from settings, validation per kind, secrets by reference, django-q2 schedules."""

import pytest
from django.core.exceptions import ValidationError

from queues.configs import ensure_config
from queues.kinds import UnknownQueueKind
from queues.models import QueueConfig

pytestmark = pytest.mark.django_db


def errors_of(**fields) -> dict:
    with pytest.raises(ValidationError) as caught:
        QueueConfig(**fields).full_clean()
    return caught.value.message_dict


def test_it_creates_a_config_with_the_defaults_from_settings(settings):
    settings.QUEUES_DEFAULTS = {**settings.QUEUES_DEFAULTS, "max_deliveries": 7, "visibility_timeout": 90}
    config = ensure_config("sqs:orders")
    assert (config.kind, config.name, config.event, config.enabled) == ("sqs", "orders", "sqs:orders", True)
    assert (config.max_deliveries, config.visibility_timeout) == (7, 90)
    assert config.pk is not None


def test_it_returns_the_existing_config_of_an_event():
    first = ensure_config("conductor:shipping:wait_ref")
    first.batch_size = 3
    first.save()
    again = ensure_config("conductor:shipping:wait_ref")
    assert (again.pk, again.batch_size) == (first.pk, 3)
    assert QueueConfig.objects.count() == 1


def test_it_refuses_an_event_it_cannot_consume():
    with pytest.raises(UnknownQueueKind, match="valid kinds are sqs, conductor"):
        ensure_config("kafka:orders")
    with pytest.raises(ValidationError, match="exchangeType"):
        ensure_config("amqp_exchange:orders?exchangeType=bogus")
    assert not QueueConfig.objects.exists()


def test_it_explains_what_is_wrong_with_an_sqs_config():
    errors = errors_of(kind="sqs", name="orders*", batch_size=11, wait_seconds=21,
                       authorized_accounts=["12345"], url="amqp://x")
    assert "letters, digits" in errors["name"][0]
    assert "at most 10" in errors["batch_size"][0]
    assert "at most 20" in errors["wait_seconds"][0]
    assert "12-digit" in errors["authorized_accounts"][0]
    assert "endpoint URL and region" in errors["url"][0]
    assert "arn:aws:sqs" in errors_of(kind="sqs", name="arn:aws:sqs:orders")["name"][0]


def test_it_explains_what_is_wrong_with_amqp_and_nats_configs():
    assert "unknown option(s) color" in errors_of(kind="amqp_queue", name="q?color=red")["name"][0]
    assert "deliveryMode" in errors_of(kind="amqp_queue", name="q?deliveryMode=3")["name"][0]
    assert "must be true or false" in errors_of(kind="amqp_exchange", name="x?durable=yes")["name"][0]
    assert "wildcards" in errors_of(kind="nats", name="orders.>")["name"][0]
    assert "only SQS" in errors_of(kind="nats", name="orders", authorized_accounts=["123456789012"])[
        "authorized_accounts"][0]


def test_it_keeps_secrets_out_of_the_database(monkeypatch):
    assert "must not hold a password" in errors_of(kind="amqp_queue", name="q", url="amqp://u:secret@h/")["url"][0]
    assert "neither set" in errors_of(kind="amqp_queue", name="q", url_ref="NO_SUCH_VARIABLE_X")["url_ref"][0]
    monkeypatch.setenv("AMQP_URL_ORDERS", "amqp://orders:secret@127.0.0.1:5672/")
    config = QueueConfig(kind="amqp_queue", name="q", url_ref="AMQP_URL_ORDERS")
    config.full_clean()
    assert config.spec().url == "amqp://orders:secret@127.0.0.1:5672/"
    assert "secret" not in str(QueueConfig._meta.get_field("url_ref").value_from_object(config))


def test_it_takes_broker_urls_from_settings_unless_overridden(settings):
    settings.AMQP_URL = "amqp://guest:guest@rabbit.test:5672/"
    settings.NATS_URL = "nats://nats.test:4222"
    assert QueueConfig(kind="amqp_queue", name="q").spec().url == "amqp://guest:guest@rabbit.test:5672/"
    assert QueueConfig(kind="nats", name="s").spec().url == "nats://nats.test:4222"
    assert QueueConfig(kind="nats", name="s", url="nats://other:4222").spec().url == "nats://other:4222"


def test_it_refuses_a_second_config_for_the_same_event():
    ensure_config("nats:orders.created")
    assert "exists already" in errors_of(kind="nats", name="orders.created")["name"][0]


def test_it_reports_a_url_reference_that_went_missing(monkeypatch):
    from handlers.listener import Listener

    monkeypatch.setenv("AMQP_URL_GONE", "amqp://guest:guest@127.0.0.1:5672/")
    config = QueueConfig(kind="amqp_queue", name="eh.test.gone", url_ref="AMQP_URL_GONE")
    config.full_clean()
    config.save()
    monkeypatch.delenv("AMQP_URL_GONE")
    assert Listener().run_once(wait=0) == 0
    config.refresh_from_db()
    assert "AMQP_URL_GONE (the URL reference) is not set" in config.last_error
