"""How fast the operations overview answers with a million stored messages (`make bench-overview`).

For each of BENCH_OVERVIEW_DAYS (`7,30`), a fresh PostgreSQL database (BENCH_OVERVIEW_DB, `eh_bench_overview`)
is migrated and filled by PostgreSQL itself (INSERT … SELECT over generate_series) with BENCH_OVERVIEW_N
messages (1,000,000) spread evenly over the last that many days (7 puts them all in the week the widest chart
reads; 30 is the default retention), on three queues with five handlers, and their execution records as the
listener writes them:

- `conductor:bench_orders`: `start_order` matches every message (1 % of its actions fail);
- `amqp_queue:bench_payments`: `start_payment` matches every message, `notify_ledger` matches 30 % of them
  (5 % of those fail) and records a false condition for the rest;
- `sqs:bench_shipments`: `ship` matches every message; `never_matches` records a false condition for every
  one (the slowest case for its "last match", which looks back through all of its records);
- outcomes: 97 % acknowledged, 1 % quarantined, 1 % returned, 1 % still received; about 1.7 records a message.

Then VACUUM ANALYZE (what autovacuum keeps doing in production), and the admin's landing page is requested
in-process through Django's test client, logged in as a superuser. First cold: the week's first request after
filling, which rolls up the week's hours itself (handlers.rollups), and, with those rollups deleted again,
the schedule's task rolling up the week alone. Then warm, for each chart range (hour, day, week): one warm-up
request, then BENCH_OVERVIEW_RUNS (5) timed ones. Printed: each request's time, its SQL statements, and the
lists two of its numbers open (a queue's failed messages, a handler's matches of the hour).
`BENCH_OVERVIEW_PARTS=index` also times what the overview's indexes cost the message path's inserts;
`BENCH_OVERVIEW_REUSE=1` measures the last run's database again instead of making a new one.
"""

import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import migrated_database, out  # noqa: E402

ENVIRON = dict(os.environ)  # (as started: django_client sets DEBUG and others for its own process only)
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_OVERVIEW_DB", "eh_bench_overview")
N = int(os.environ.get("BENCH_OVERVIEW_N", 1_000_000))
DAYS_EACH = [float(days) for days in os.environ.get("BENCH_OVERVIEW_DAYS", "7,30").split(",")]
RUNS = int(os.environ.get("BENCH_OVERVIEW_RUNS", 5))
PARTS = os.environ.get("BENCH_OVERVIEW_PARTS", "page").split(",")
QUEUES = ["conductor:bench_orders", "amqp_queue:bench_payments", "sqs:bench_shipments"]
HANDLERS = [("start_order", QUEUES[0]), ("start_payment", QUEUES[1]), ("notify_ledger", QUEUES[1]),
            ("ship", QUEUES[2]), ("never_matches", QUEUES[2])]

# Message i (1..N) is received i/N of the span ago, on queue i % 3. Its outcome by i % 100.
MESSAGES = """
INSERT INTO queues_receivedmessage (config_id, event, message_id, payload, raw_body, delivery_count, received_at,
                                    outcome, detail, replay_reason)
SELECT c.id, c.event, 'bench-' || i, jsonb_build_object('n', i, 'customer', 'Customer ' || i), '', 1,
       now() - (%(span)s::interval * i / %(n)s),
       CASE WHEN i %% 100 = 1 THEN 'QUARANTINED' WHEN i %% 100 = 2 THEN 'RETURNED'
            WHEN i %% 100 = 3 THEN 'RECEIVED' ELSE 'ACKNOWLEDGED' END, '', ''
FROM generate_series(1, %(n)s) AS i
JOIN queues_queueconfig c ON c.event = (%(queues)s::text[])[1 + i %% 3]
"""
# One record per (message, handler) as dispatch writes them: index 0 for a match, -1 for a false condition.
EXECUTIONS = """
INSERT INTO handlers_actionexecution (execution_id, delivery_id, event, message_id, handler_id, handler_name,
    "index", action, status, condition_value, reason, error, retryable, attempts, workflow_id, started_at,
    finished_at, created_at)
SELECT m.message_id || '_0', m.id, m.event, m.message_id, h.id, h.name, r.idx,
       CASE WHEN r.idx = 0 THEN 'start_workflow' ELSE '' END, r.status, '', '', '', false, 1, '',
       m.received_at + interval '2 ms', m.received_at + (interval '1 ms' * (3 + m.id %% 40)),
       m.received_at + interval '1 ms'
FROM queues_receivedmessage m
CROSS JOIN LATERAL (VALUES
    ('start_order', 0, CASE WHEN m.id %% 100 = 7 THEN 'FAILED' ELSE 'COMPLETED' END, m.event = %(orders)s),
    ('start_payment', 0, 'COMPLETED', m.event = %(payments)s),
    ('notify_ledger', CASE WHEN m.id %% 10 < 3 THEN 0 ELSE -1 END,
     CASE WHEN m.id %% 10 >= 3 THEN 'SKIPPED' WHEN m.id %% 20 = 1 THEN 'FAILED' ELSE 'COMPLETED' END,
     m.event = %(payments)s),
    ('ship', 0, 'COMPLETED', m.event = %(shipments)s),
    ('never_matches', -1, 'SKIPPED', m.event = %(shipments)s)
) AS r(handler, idx, status, applies)
JOIN handlers_eventhandler h ON h.name = r.handler
WHERE r.applies
"""


def fresh_database() -> str:
    return migrated_database(PG_SERVER, DB_NAME, {**ENVIRON, "QUEUES_SCHEDULES": "false", "OUTBOX_SCHEDULE": "false"})


def fill(url: str, days: float) -> None:
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as pg:
        for event in QUEUES:
            kind, name = event.split(":", 1)
            pg.execute("""INSERT INTO queues_queueconfig (kind, name, event, enabled, url, url_ref, region,
                endpoint_url, batch_size, wait_seconds, visibility_timeout, max_deliveries, concurrency, unmatched,
                poll_interval_minutes, authorized_accounts, provision, depth, last_poll_at, last_error, created_at,
                updated_at) VALUES (%s, %s, %s, true, '', '', '', '', 100, 20, 60, 5, 2, 'record', 1, '[]', true,
                0, now(), '', now(), now())""", (kind, name, event))
        for name, event in HANDLERS:
            pg.execute("""INSERT INTO handlers_eventhandler (name, event, actions, active, mode, shadow_of_name,
                revision, created_at, updated_at) VALUES (%s, %s, '[]', true, 'live', '', 0, now(), now())""",
                       (name, event))
        pg.execute(MESSAGES, {"span": f"{days} days", "n": N, "queues": QUEUES})
        pg.execute(EXECUTIONS, {"orders": QUEUES[0], "payments": QUEUES[1], "shipments": QUEUES[2]})
        pg.execute("""INSERT INTO queues_quarantinedmessage (event, message_id, payload, raw_body, reason, last_error,
            delivery_count, history, status, quarantined_at, resolution)
            SELECT event, message_id, payload, '', 'max_deliveries', 'gave up', 5, '[]',
                   CASE WHEN id % 3 = 0 THEN 'RETRIED' ELSE 'QUARANTINED' END, received_at, ''
            FROM queues_receivedmessage WHERE outcome = 'QUARANTINED'""")
        filled = time.monotonic()
        pg.execute("VACUUM ANALYZE")
        messages = pg.execute("SELECT count(*) FROM queues_receivedmessage").fetchone()[0]
        records = pg.execute("SELECT count(*) FROM handlers_actionexecution").fetchone()[0]
        size = pg.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
    out(f"filled: {messages:,} messages and {records:,} execution records over {days:g} days in "
        f"{filled - started:.0f} s, VACUUM ANALYZE {time.monotonic() - filled:.0f} s; database {size}")


def django_client(url: str):
    """A logged-in client of the database at `url` (the same name in every case: Django is set up once)."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventhub.settings")
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-overview-only")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
        from django.test.utils import setup_test_environment

        setup_test_environment()  # lets the test client's host in, as in the test suite
    from django.contrib.auth import get_user_model
    from django.db import connections
    from django.test import Client

    connections.close_all()  # (an earlier case's connection went with its database)
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True,
                                                                                  "is_superuser": True})
    client = Client()
    client.force_login(user)
    return client


def timed(client, url: str) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code}")
    return seconds, len(queries)


def measure(client, label: str, url: str) -> list[float]:
    timed(client, url)  # warm-up: connection, templates, PostgreSQL's buffers
    times, queries = [], 0
    for _ in range(RUNS):
        seconds, queries = timed(client, url)
        times.append(seconds)
    runs = ", ".join(f"{t * 1000:.0f}" for t in times)
    out(f"{label:<44} median {statistics.median(times) * 1000:5.0f} ms  (runs: {runs} ms; {queries} statements)")
    return times


def cold(client) -> None:
    """The week's first request after filling (it rolls up the week's settled hours), then the schedule's task
    rolling up the same hours alone."""
    from handlers import rollups
    from handlers.models import HourlyCount, RolledUpHour

    timed(client, "/admin/?range=hour")  # (the hour reads no rollups: it warms the rest, templates and all)
    seconds, queries = timed(client, "/admin/?range=week")
    hours = RolledUpHour.objects.count()
    out(f"\ncold: the first GET /admin/?range=week after filling  {seconds * 1000:5.0f} ms  ({queries} statements; "
        f"it rolled up {hours} hours into {HourlyCount.objects.count():,} counts)")
    HourlyCount.objects.all().delete()
    RolledUpHour.objects.all().delete()
    started = time.perf_counter()
    rolled = rollups.roll_up()
    out(f"cold: the schedule's task (handlers.rollups.roll_up) rolls up {rolled} hours in "
        f"{(time.perf_counter() - started) * 1000:.0f} ms")


def page(url: str) -> None:
    client = django_client(url)
    from handlers import overview

    if not os.environ.get("BENCH_OVERVIEW_REUSE"):
        cold(client)
    out(f"\nwarm: the overview, {RUNS} requests each after one warm-up (target: under 1 s):")
    worst = 0.0
    for span in ("hour", "day", "week"):
        worst = max(worst, *measure(client, f"GET /admin/?range={span}", f"/admin/?range={span}"))
    data = overview.build()
    payments = next(row for row in data.queues if row.config.event == QUEUES[1])
    orders = next(row for row in data.handlers if row.name == "start_order")
    out("\nlists the overview's numbers open:")
    measure(client, f"{QUEUES[1]} failed in the hour ({payments.failed.value:,})", payments.failed.url)
    measure(client, f"start_order matched in the hour ({orders.matched.value:,})", orders.matched.url)
    out(f"\nslowest overview request: {worst * 1000:.0f} ms ({'PASS' if worst < 1 else 'FAIL'}: under 1 s)")


def index_cost(url: str) -> None:
    """The message path's inserts with the single-column indexes (before), the widened ones (after) and the
    failed records' partial index (rollups, the failures' counts; 2 % of the records here are failed): rows
    written 100 to a statement, as a batch is, into copies of the two record tables with the indexes the
    overview changed and the others of a message's path, alternated."""
    variants = {
        "before: (event); (handler_name), (status)": ("(event)", ["(handler_name)", "(status)"]),
        "after: (event, received_at); (handler_name, index, created_at), (status, created_at)": (
            "(event, received_at)", ['(handler_name, "index", created_at) INCLUDE (duplicate_of_id)',
                                     "(status, created_at)"]),
        "rollups: and the failed records' partial index": (
            "(event, received_at)", ['(handler_name, "index", created_at) INCLUDE (duplicate_of_id)',
                                     "(status, created_at)", "(created_at) INCLUDE (handler_name, delivery_id, "
                                     "duplicate_of_id) WHERE status = 'FAILED'"]),
    }
    out("\nindex cost on the message path (20,000 messages and their records, 100 to a statement):")
    with psycopg.connect(url, autocommit=True) as pg:
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(3):
            for name, (received, executed) in variants.items():
                results[name].append(_insert_copy(pg, received, executed))
        for name, times in results.items():
            out(f"  {name:<86} {statistics.median(times) * 1000:6.0f} ms (runs: "
                f"{', '.join(f'{t * 1000:.0f}' for t in times)})")


def _insert_copy(pg: psycopg.Connection, received_index: str, execution_indexes: list[str]) -> float:
    pg.execute("DROP TABLE IF EXISTS bench_received, bench_execution")
    pg.execute("CREATE TABLE bench_received (LIKE queues_receivedmessage INCLUDING DEFAULTS)")
    pg.execute("CREATE TABLE bench_execution (LIKE handlers_actionexecution INCLUDING DEFAULTS)")
    pg.execute(f"CREATE INDEX ON bench_received {received_index}")
    for columns in ["(received_at)", "(message_id)"]:
        pg.execute(f"CREATE INDEX ON bench_received {columns}")
    for columns in [*execution_indexes, "(created_at)", "(message_id, event)", "(delivery_id)"]:
        pg.execute(f"CREATE INDEX ON bench_execution {columns}")
    started = time.perf_counter()
    for first in range(0, 20_000, 100):
        with pg.transaction():
            pg.execute("INSERT INTO bench_received SELECT * FROM queues_receivedmessage WHERE id > %s AND id <= %s",
                       (first, first + 100))
            pg.execute("INSERT INTO bench_execution SELECT * FROM handlers_actionexecution WHERE delivery_id > %s "
                       "AND delivery_id <= %s", (first, first + 100))
    return time.perf_counter() - started


def main() -> None:
    reuse = bool(os.environ.get("BENCH_OVERVIEW_REUSE"))  # (the last run's database, as it was: to try a change)
    for days in DAYS_EACH[:1] if reuse else DAYS_EACH:
        with open("/proc/loadavg") as load:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
            what = "the last run's database (its last case)" if reuse else f"{N:,} messages over {days:g} days"
            out(f"\n== overview bench: {what}; {when}, load average {' '.join(load.read().split()[:3])}")
        url = f"{PG_SERVER}/{DB_NAME}" if reuse else fresh_database()
        if not reuse:
            fill(url, days)
        if "index" in PARTS:
            index_cost(url)
        if "page" in PARTS:
            page(url)

if __name__ == "__main__":
    main()
