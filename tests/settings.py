"""Settings for the test suite: the project's own, with django-q2 run inline and fast hashing."""

from eventhub.settings import *  # noqa: F403
from eventhub.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A file rather than memory on SQLite: queue tests run `listen_queues` as a real subprocess on the test database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"{DATABASES['default']['NAME']}.test"}  # noqa: F405
