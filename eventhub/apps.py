from django.apps import AppConfig


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "Eventhub"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401  (registers the system checks)
        from .lib.aggregates import register_sqlite_functions
        from .lib.api import schema  # noqa: F401  (registers the OpenAPI auth extension)

        connection_created.connect(register_sqlite_functions, dispatch_uid="eventhub.sqlite_functions")

