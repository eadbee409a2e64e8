from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HandlersConfig(AppConfig):
    name = "handlers"
    verbose_name = "Event handlers"

    def ready(self) -> None:
        from . import schedules  # noqa: F401  (keeps each queue config's drain schedule in step)
        from .alerts import sync_evaluate_schedule
        from .rollups import sync_schedule as sync_rollup_schedule
        from .tasks import sync_schedules

        # After migrate (and flush), when django_q's tables exist; synced by name, so it is idempotent.
        post_migrate.connect(sync_schedules, sender=self, dispatch_uid="handlers.sync_schedules")
        post_migrate.connect(sync_evaluate_schedule, sender=self, dispatch_uid="handlers.sync_evaluate_schedule")
        post_migrate.connect(sync_rollup_schedule, sender=self, dispatch_uid="handlers.sync_rollup_schedule")
