from django.apps import AppConfig
from django.db.models.signals import post_migrate


class QueuesConfig(AppConfig):
    name = "queues"
    verbose_name = "Queues"

    def ready(self) -> None:
        from .outbox import sync_schedule

        # The outbox relay's schedule, synced by name after every migrate (django_q's tables exist then).
        post_migrate.connect(sync_schedule, sender=self, dispatch_uid="queues.outbox.sync_schedule")
