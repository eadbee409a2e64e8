from django.apps import AppConfig


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "Eventhub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .lib.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
