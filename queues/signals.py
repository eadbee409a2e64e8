"""Keep each queue config's django-q2 schedule in step with the config, however it is saved."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .configs import remove_schedule, sync_schedule
from .models import QueueConfig


@receiver(post_save, sender=QueueConfig, dispatch_uid="queues.sync_schedule")
def config_saved(sender, instance: QueueConfig, raw: bool = False, **kwargs) -> None:
    update_fields = kwargs.get("update_fields")
    if raw or (update_fields and not {"enabled", "poll_interval_minutes"} & set(update_fields)):
        return
    sync_schedule(instance)


@receiver(post_delete, sender=QueueConfig, dispatch_uid="queues.remove_schedule")
def config_deleted(sender, instance: QueueConfig, **kwargs) -> None:
    remove_schedule(instance)
