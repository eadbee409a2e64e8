"""The default rules: one per kind, for every handler and queue without a rule of its own."""

from django.db import migrations

DEFAULTS = [
    # kind, threshold, window in minutes
    ("handler_silent", 0, 60 * 24),
    ("failure_rate", 0.5, 15),
    ("backlog", 1000, 15),
    ("quarantine_growing", 0, 15),
    ("no_consumer", 0, 5),
]


def create(apps, schema_editor):
    rule = apps.get_model("handlers", "AlertRule")
    for kind, threshold, window in DEFAULTS:
        rule.objects.get_or_create(kind=kind, handler=None, queue=None,
                                   defaults={"threshold": threshold, "window_minutes": window})


def remove(apps, schema_editor):
    apps.get_model("handlers", "AlertRule").objects.filter(handler=None, queue=None).delete()


class Migration(migrations.Migration):
    dependencies = [("handlers", "0007_alerts")]
    operations = [migrations.RunPython(create, remove)]
