"""Settings for the test suite: the project's own, with django-q2 run inline and fast hashing."""

from eventhub.settings import *  # noqa: F403
from eventhub.settings import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "sync": True}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
