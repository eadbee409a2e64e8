from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class WorkflowsConfig(AppConfig):
    name = "workflows"

    def ready(self) -> None:
        from .engine import engine_class
        from .tasks import sync_schedules

        # A WORKFLOW_ENGINE that names no engine, or an engine missing its settings, stops start-up (every
        # process, whether or not it runs the system checks) with a message naming the variable.
        engine_class(settings.WORKFLOW_ENGINE).configuration()
        # After migrate (and flush), when django_q's tables exist; synced by name, so it is idempotent.
        post_migrate.connect(sync_schedules, sender=self, dispatch_uid="workflows.sync_schedules")
