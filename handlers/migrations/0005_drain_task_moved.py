"""The queue drain task moved from `queues.tasks` to `handlers.tasks` (it calls dispatch, which lives in
handlers): rewrite the django-q2 schedules that name it by its old dotted path, and back on reversal."""

from django.db import migrations

OLD, NEW = "queues.tasks.drain_queue", "handlers.tasks.drain_queue"


def _rename(old: str, new: str):
    def rename(apps, schema_editor) -> None:
        schedule = apps.get_model("django_q", "Schedule")
        schedule.objects.using(schema_editor.connection.alias).filter(func=old).update(func=new)

    return rename


class Migration(migrations.Migration):

    dependencies = [
        ("handlers", "0004_lean_execution_indexes"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(_rename(OLD, NEW), _rename(NEW, OLD))]
