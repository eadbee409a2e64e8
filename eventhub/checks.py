"""System checks: configuration mistakes reported by `manage.py check` and at start-up."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=False)
def check_production_settings(app_configs, **kwargs) -> list:
    if settings.DEBUG:
        return []
    problems = []
    if not settings.ALLOWED_HOSTS:
        problems.append(
            Error(
                "ALLOWED_HOSTS is empty while DEBUG is off: every request would be refused.",
                hint="Set ALLOWED_HOSTS to a comma-separated list, e.g. ALLOWED_HOSTS=eventhub.example.com",
                id="eventhub.E001",
            )
        )
    if "*" in settings.ALLOWED_HOSTS:
        problems.append(
            Warning(
                "ALLOWED_HOSTS contains '*' while DEBUG is off.",
                hint="Name the hosts Eventhub is served on.",
                id="eventhub.W001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(
            Warning(
                "DEBUG is off but the database is SQLite: fine for one machine, not for several listeners.",
                hint="Set DATABASE_URL=postgres://user@host:5432/eventhub for production.",
                id="eventhub.W002",
            )
        )
    return problems
