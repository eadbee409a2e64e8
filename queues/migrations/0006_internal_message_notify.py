"""PostgreSQL: every insert into the internal queue's table notifies the channel `eventhub_internal` with
the queue's name, once per queue per statement, when it commits. Waiting consumers wake at once instead of
at their next poll (`queues.providers.internal`). A trigger rather than the publisher's own NOTIFY, so rows
inserted any other way (bulk inserts, SQL by hand) wake them too. Nothing on SQLite, whose consumers poll."""

from django.db import migrations

CREATE = """
CREATE FUNCTION eventhub_internal_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('eventhub_internal', queue) FROM (SELECT DISTINCT queue FROM inserted) AS queues;
    RETURN NULL;
END $$;
CREATE TRIGGER internal_message_notify AFTER INSERT ON queues_internalmessage
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION eventhub_internal_notify();
"""
DROP = """
DROP TRIGGER IF EXISTS internal_message_notify ON queues_internalmessage;
DROP FUNCTION IF EXISTS eventhub_internal_notify();
"""


def on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)
    return run


class Migration(migrations.Migration):

    dependencies = [
        ("queues", "0005_queue_concurrency"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP)),
    ]
