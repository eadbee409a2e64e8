"""Profile the listener's consumer loop in-process (cProfile): `python bench/profile_listener.py KIND [N]`.

Uses the database of the last `bench/run.py` (eh_bench, kept after the run): publishes N messages to a
fresh queue of KIND with the benchmark's handler, then drives `Consumer.poll_once` until they are all
handled, under cProfile, and prints the top functions by cumulative and by own time, the queries and
this process's CPU time per message. Any database works (the benchmark's workflow definition is made if
missing); every message is checked to have its records. BENCH_PROFILE=0: timings without cProfile.
"""

import cProfile
import os
import pstats
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventhub.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/" + os.environ.get("BENCH_DB", "eh_bench"))
os.environ.setdefault("AWS_REGION", "us-east-1")


def main() -> None:
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench import run
    from handlers.listener import Consumer
    from queues.models import QueueConfig
    from workflows.models import WorkflowDefinition

    if not WorkflowDefinition.objects.filter(name=run.FLOW["name"]).exists():  # (a database made for this)
        WorkflowDefinition.from_conductor(run.FLOW).save()
    kind = sys.argv[1] if len(sys.argv) > 1 else "conductor"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    broker = run.make_broker(kind, "profile", os.environ.get("AWS_ENDPOINT_URL_SQS", ""))
    run.add_handler(broker.event)
    broker.provision()
    broker.publish(run.body(i) for i in range(count))
    consumer = Consumer(QueueConfig.objects.get(event=broker.event))
    profile = cProfile.Profile()
    handled = 0
    start, cpu = time.perf_counter(), time.process_time()
    with CaptureQueriesContext(connection) as queries:
        if os.environ.get("BENCH_PROFILE", "1") == "1":
            profile.enable()
        while handled < count:
            handled += consumer.poll_once(wait=1)
        profile.disable()
    if os.environ.get("BENCH_PROFILE_OUT"):
        profile.dump_stats(os.environ["BENCH_PROFILE_OUT"])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    consumer.close()
    with connection.cursor() as cursor:
        run.check_records(cursor, broker.event, count)  # a fast wrong answer is no answer
    sys.stdout.write(f"{handled} messages in {elapsed:.2f} s: {handled / elapsed:,.0f} msg/s in-process, "
                     f"{len(queries) / handled:.1f} queries per message, "
                     f"{cpu / handled * 1e6:.0f} µs of this process's CPU per message\n")
    slowest: dict[str, list[float]] = {}
    for query in queries.captured_queries:
        key = re.sub(r"\d+", "N", query["sql"])[:110]
        slowest.setdefault(key, []).append(float(query["time"]))
    for key, times in sorted(slowest.items(), key=lambda kv: -sum(kv[1]))[:15]:
        sys.stdout.write(f"{sum(times):7.3f} s {len(times):6d}x  {key}\n")
    if os.environ.get("BENCH_PROFILE", "1") != "1":
        return
    stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
