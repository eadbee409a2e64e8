"""The drain task moved from queues to handlers: a data migration rewrites the schedules that name it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("handlers", "0004_lean_execution_indexes")]
AFTER = [("handlers", "0005_drain_task_moved")]
DJANGO_Q = ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    # The state of these targets and of django_q's tables (not an ancestor of handlers' early migrations).
    return executor.loader.project_state([*targets, DJANGO_Q]).apps


@pytest.fixture(autouse=True)
def latest_migrations_afterwards(transactional_db):
    """Leave the database as every other test expects it: at each app's latest migration, not at AFTER (tables
    of later handlers migrations would be missing for the rest of the run)."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_it_rewrites_schedules_that_name_the_drain_task_by_its_old_path():
    old_apps = migrate(BEFORE)
    schedule = old_apps.get_model("django_q", "Schedule")
    schedule.objects.create(name="drain queue 41", func="queues.tasks.drain_queue", args="(41, 50)")
    schedule.objects.create(name="relay", func="queues.tasks.relay_outbox", args="(20,)")
    new_apps = migrate(AFTER)
    funcs = dict(new_apps.get_model("django_q", "Schedule").objects.values_list("name", "func"))
    assert funcs["drain queue 41"] == "handlers.tasks.drain_queue"
    assert funcs["relay"] == "queues.tasks.relay_outbox"  # the outbox relay stayed in queues


def test_it_names_the_old_path_again_when_reversed():
    migrate(AFTER)
    from django_q.models import Schedule

    Schedule.objects.create(name="drain queue 42", func="handlers.tasks.drain_queue", args="(42, 50)")
    old_apps = migrate(BEFORE)
    assert old_apps.get_model("django_q", "Schedule").objects.get(name="drain queue 42").func == \
        "queues.tasks.drain_queue"
    migrate(AFTER)
