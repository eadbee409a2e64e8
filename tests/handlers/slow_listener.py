"""`listen_queues` whose dispatch records the batch, then sleeps: messages stay in flight long enough
for a test to signal or kill the process. Arguments are passed to the command. (Imported, it only slows
dispatch down: `slow_cluster` does so.)"""

import os
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from handlers import dispatch  # noqa: E402

recorded_and_acked = dispatch.dispatch_batch


def slow_dispatch(config, messages, acknowledge=None):
    def sleep() -> None:
        time.sleep(float(os.environ.get("SLOW_DISPATCH_SECONDS", "60")))

    if acknowledge is None:  # a broker's messages: recorded and committed, not acknowledged yet
        decisions = recorded_and_acked(config, messages)
        sleep()
        return decisions

    def sleep_then_acknowledge(to_ack):  # the database queue's: claimed, their batch not committed yet
        sleep()
        acknowledge(to_ack)

    return recorded_and_acked(config, messages, acknowledge=sleep_then_acknowledge)


dispatch.dispatch_batch = slow_dispatch
if __name__ == "__main__":
    call_command("listen_queues", *sys.argv[1:])
