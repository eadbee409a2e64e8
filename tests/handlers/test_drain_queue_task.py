"""The django-q2 side: each enabled queue's schedule drains it through the same entry point."""

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from django.conf import settings
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage
from django_q.tasks import async_task, result

from handlers.schedules import schedule_name
from handlers.tasks import drain_queue
from queues.configs import ensure_config
from queues.models import InternalMessage, ListenerHeartbeat, ReceivedMessage
from queues.publish import publish

from ..brokers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_keeps_a_schedule_in_step_with_each_config():
    config = ensure_config("conductor:orders")
    schedule = Schedule.objects.get(name=schedule_name(config))
    assert (schedule.func, schedule.args, schedule.minutes) == ("handlers.tasks.drain_queue", f"({config.pk}, 50)", 1)

    config.poll_interval_minutes = 5
    config.save()
    assert Schedule.objects.get(name=schedule_name(config)).minutes == 5

    config.enabled = False
    config.save()
    assert not Schedule.objects.filter(name=schedule_name(config)).exists()

    config.enabled = True
    config.save()
    assert Schedule.objects.filter(name=schedule_name(config)).count() == 1
    config.delete()
    assert not Schedule.objects.filter(name=schedule_name(config)).exists()


def test_it_drains_every_message_of_a_queue(make_config):
    config = make_config("conductor", batch_size=2)
    for n in range(5):
        publish(config.event, {"n": n})
    assert drain_queue(config.pk, 30) == 5
    assert ReceivedMessage.objects.filter(outcome=ReceivedMessage.Outcome.ACKNOWLEDGED).count() == 5
    assert not InternalMessage.objects.exists()
    assert ListenerHeartbeat.objects.get().stopped_at is not None


def test_it_leaves_a_disabled_queue_alone(make_config):
    config = make_config("conductor", enabled=False)
    publish(config.event, {})
    assert drain_queue(config.pk, 30) == 0
    assert InternalMessage.objects.count() == 1


def test_it_stops_between_two_batches_when_the_cluster_is_stopping(make_config, monkeypatch):
    from handlers import tasks

    config = make_config("conductor", batch_size=1)
    for n in range(3):
        publish(config.event, {"n": n})
    asked = iter([False, True])  # the stop comes while the first batch is in hand
    monkeypatch.setattr(tasks, "stop_requested", lambda: next(asked))
    assert drain_queue(config.pk, 30) == 1
    assert ReceivedMessage.objects.get().outcome == ReceivedMessage.Outcome.ACKNOWLEDGED
    assert InternalMessage.objects.filter(delivery_count=0).count() == 2


def test_it_runs_the_drain_as_a_django_q_task(make_config):
    config = make_config("amqp_queue")
    publish(config.event, {"via": "django-q"}, message_id="q-1")
    task_id = async_task("handlers.tasks.drain_queue", config.pk, 10)  # inline: the test settings say sync
    assert result(task_id) == 1
    assert ReceivedMessage.objects.get().message_id == "q-1"


def test_it_drains_each_queue_when_its_schedule_is_due(make_config):
    config = make_config("conductor")
    publish(config.event, {"scheduled": True})
    assert Schedule.objects.get(name=schedule_name(config)).func == "handlers.tasks.drain_queue"
    scheduler(broker=get_broker())
    assert ReceivedMessage.objects.get().payload == {"scheduled": True}


def test_it_queues_the_drain_on_redis_when_configured(make_config):
    config = make_config("conductor")
    publish(config.event, {"on": "redis"})
    list_key = f"eventhub-test-{config.pk}-{os.getpid()}"
    with mock.patch.object(Conf, "ORM", None), mock.patch.object(Conf, "SYNC", False), \
            mock.patch.object(Conf, "REDIS", "redis://127.0.0.1:6379/0"):
        broker = get_broker(list_key)
        assert type(broker).__name__ == "Redis"
        async_task("handlers.tasks.drain_queue", config.pk, 10, broker=broker)
        [(package_id, package)] = [broker.dequeue()[0]]
        broker.acknowledge(package_id)
        broker.delete_queue()
    task = SignedPackage.loads(package)
    assert (task["func"], task["args"]) == ("handlers.tasks.drain_queue", (config.pk, 10))
    assert drain_queue(*task["args"]) == 1  # what the cluster's worker then runs


def test_it_switches_django_q_to_redis_with_one_variable():
    code = "from django.conf import settings; import json; print(json.dumps(settings.Q_CLUSTER))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "eventhub.settings", "Q_REDIS_URL": "redis://127.0.0.1:6379/3"}
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    cluster = json.loads(out.strip().splitlines()[-1])
    assert cluster["redis"] == "redis://127.0.0.1:6379/3" and "orm" not in cluster
    assert settings.Q_CLUSTER["orm"] == "default"  # the embedded default
