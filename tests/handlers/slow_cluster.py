"""`run_cluster` on the tests' database whose dispatch sleeps SLOW_DISPATCH_SECONDS after each batch (as
`slow_listener`'s does), so that a drain task is still running when a test stops the cluster."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.core.management import call_command  # noqa: E402
from django_q.conf import Conf  # noqa: E402

from tests.handlers import slow_listener  # noqa: E402, F401 - slows dispatch down

Conf.SYNC = False  # the test settings run tasks inline; a cluster runs them in its workers
call_command("run_cluster")
