from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "Eventhub"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .lib.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from .lib.login_throttle import forgive_login

        user_logged_in.connect(forgive_login, dispatch_uid="eventhub.login_throttle.forgive_login")
