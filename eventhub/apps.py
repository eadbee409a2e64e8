from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.contrib.auth.signals import user_logged_in


class EventhubConfig(AppConfig):
    name = "eventhub"
    verbose_name = "Eventhub"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from . import checks  # noqa: F401  (registers the system checks)
        from .lib.aggregates import register_sqlite_functions
        from .lib.api import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from .lib.login_throttle import forgive_login

        user_logged_in.connect(forgive_login, dispatch_uid="eventhub.login_throttle.forgive_login")
        connection_created.connect(register_sqlite_functions, dispatch_uid="eventhub.sqlite_functions")


class EventhubAdminConfig(AdminConfig):
    """The admin, with Eventhub's site: its landing page is the operations overview."""

    default_site = "eventhub.admin_site.EventhubAdminSite"
