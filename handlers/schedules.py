"""Each enabled queue config's django-q2 schedule, kept in step with the config however it is saved.

The schedule drains the queue through dispatch (`handlers.tasks.drain_queue`), so it lives here, above
`queues`; it is found by its name, so syncing is idempotent. Connected in `HandlersConfig.ready`.
"""

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from queues.models import QueueConfig

DRAIN_TASK = "handlers.tasks.drain_queue"


def schedule_name(config: QueueConfig) -> str:
    return f"drain queue {config.pk}"


def sync_schedule(config: QueueConfig) -> None:
    """Create, update or remove the django-q2 schedule of `config`, found by its name."""
    from django_q.models import Schedule  # noqa: PLC0415 - django_q's models need the app registry

    name = schedule_name(config)
    if not (settings.QUEUES_SCHEDULES and config.enabled):
        Schedule.objects.filter(name=name).delete()
        return
    Schedule.objects.update_or_create(name=name, defaults={
        "func": DRAIN_TASK,
        "args": repr((config.pk, settings.QUEUES_DRAIN_SECONDS)),
        "schedule_type": Schedule.MINUTES,
        "minutes": config.poll_interval_minutes,
        "repeats": -1,
    })


def remove_schedule(config: QueueConfig) -> None:
    from django_q.models import Schedule  # noqa: PLC0415 - django_q's models need the app registry

    Schedule.objects.filter(name=schedule_name(config)).delete()


@receiver(post_save, sender=QueueConfig, dispatch_uid="handlers.sync_queue_schedule")
def config_saved(sender, instance: QueueConfig, raw: bool = False, **kwargs) -> None:
    update_fields = kwargs.get("update_fields")
    if raw or (update_fields and not {"enabled", "poll_interval_minutes"} & set(update_fields)):
        return
    sync_schedule(instance)


@receiver(post_delete, sender=QueueConfig, dispatch_uid="handlers.remove_queue_schedule")
def config_deleted(sender, instance: QueueConfig, **kwargs) -> None:
    remove_schedule(instance)
