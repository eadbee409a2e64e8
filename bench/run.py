"""Eventhub's throughput, latency and memory benchmark (`make bench`; see bench/README.md).

Runs against a fresh PostgreSQL database (dropped and created each run) and the brokers running on this
machine; SQS is moto's server in a subprocess on 127.0.0.1. Eventhub is measured as operators run it:
one `manage.py listen_queues --queue EVENT` subprocess with the queue config's default settings.
"""

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.brokers import BASELINE_TABLE, Broker, Internal, Nats, Rabbit, Sqs, wait_for  # noqa: E402

log = logging.getLogger("bench")
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB", "eh_bench")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
N = int(os.environ.get("BENCH_N", 2000 if QUICK else 10000))
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", 5 if QUICK else 20))
MEMORY_N = int(os.environ.get("BENCH_MEMORY_N", 20000 if QUICK else 100000))
# moto's server takes about a second per ReceiveMessage on a queue of thousands: SQS gets fewer messages.
SQS_N = int(os.environ.get("BENCH_SQS_N", 300))
HANDLERS = int(os.environ.get("BENCH_HANDLERS", 10000))
KINDS = os.environ.get("BENCH_KINDS", "conductor,amqp_queue,nats,sqs").split(",")
PARTS = os.environ.get("BENCH_PARTS", "throughput,latency,ratios,metrics,memory").split(",")
RATE = 200
RUN = uuid.uuid4().hex[:8]
FLOW = {"name": "bench_flow", "version": 1, "description": "one waiting task",
        "tasks": [{"name": "bench_task", "taskReferenceName": "bench_task_ref", "type": "SIMPLE",
                   "inputParameters": {"city": "${workflow.input.address.city}"}}]}
JS_CONDITION = "$.amount > 10 && $.customer.address.country == 'NL'"


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def body(seq: int, **extra) -> tuple[str, str]:
    mid = f"{RUN}-{seq}-{uuid.uuid4().hex[:6]}"
    payload = {"customer": {"name": f"Customer {seq}", "address": {
        "street": f"{seq} Main Street", "city": "Utrecht", "zip": "3511", "country": "NL"}},
        "amount": 42 + seq % 100, "seq": seq, **extra}
    return mid, json.dumps(payload)


# Setting up -------------------------------------------------------------------------------------


def migrated_database(server: str, name: str, env: dict[str, str] | None = None) -> str:
    """Drop and create the database `name` on `server` and migrate it, `manage.py migrate` running with `env`
    (by default this process's environment); its URL."""
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{server}/{name}"
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, check=True,
                   env={**(os.environ if env is None else env), "DATABASE_URL": url})
    return url


def fresh_database(server: str = PG_SERVER, name: str = DB_NAME) -> str:
    """Drop and create the database `name` on `server`, migrate it, and point DATABASE_URL at it."""
    url = migrated_database(server, name)
    os.environ["DATABASE_URL"] = url
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE TABLE {BASELINE_TABLE} (id bigserial PRIMARY KEY, message_id text, body jsonb, "
                   "received_at timestamptz NOT NULL DEFAULT now())")
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    code = ("import threading; from moto.server import ThreadedMotoServer; "
            f"ThreadedMotoServer(ip_address='127.0.0.1', port={port}).start(); threading.Event().wait()")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 30, "moto's server")
    os.environ.update({"AWS_ENDPOINT_URL_SQS": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    return process, endpoint


def make_broker(kind: str, tag: str, sqs_endpoint: str) -> Broker:
    from django.conf import settings

    name = f"bench_{RUN}_{kind}_{tag}"
    batch = settings.QUEUES_DEFAULTS["batch_size"]
    if kind == "conductor":
        return Internal(name, batch)
    if kind == "amqp_queue":
        return Rabbit(name, batch, AMQP_URL)
    if kind == "nats":
        return Nats(name.replace("_", "."), batch, NATS_URL)
    return Sqs(name, batch, sqs_endpoint)


def add_handler(event: str, condition: str = "") -> None:
    from handlers.changes import save_handler
    from handlers.models import EventHandler

    handler = EventHandler()
    handler.apply_conductor({
        "name": "start_" + re.sub(r"[^A-Za-z0-9_]", "_", event), "event": event, "condition": condition,
        "evaluatorType": "javascript",
        "active": True, "actions": [{"action": "start_workflow", "start_workflow": {
            "name": "bench_flow", "version": 1,
            "input": {"customerName": "${customer.name}", "address": "${customer.address}", "seq": "${seq}"}}}],
    })
    handler.full_clean()
    save_handler(handler, user=None, source="bench")


def add_other_handlers(count: int) -> None:
    """`count` active handlers on events nobody publishes to (no queue configs, so nothing consumes them)."""
    from handlers.models import EventHandler

    actions = [{"action": "start_workflow", "start_workflow": {"name": "bench_flow", "version": 1}}]
    EventHandler.objects.bulk_create(
        (EventHandler(name=f"other_{RUN}_{i}", event=f"amqp_queue:other_{RUN}_{i % 500}", condition="",
                      evaluator_type="javascript", actions=actions, active=True) for i in range(count)),
        batch_size=1000,
    )


def remove_other_handlers() -> None:
    from handlers.models import EventHandler

    EventHandler.objects.filter(name__startswith=f"other_{RUN}_").delete()


# Measuring -------------------------------------------------------------------------------------


class Listener:
    """A real `manage.py listen_queues --queue EVENT` process."""

    def __init__(self, event: str, output: IO | None = None, metrics: bool = False):
        """`output`: a file for its log (by default it shares the benchmark's stdout and stderr)."""
        # As in production: DEBUG off (no query log kept, no debug cursor), logging at LOG_LEVEL (INFO unless set;
        # BENCH_LOG_LEVEL wins), so a log line per message shows in the figures.
        env = {**os.environ, "DEBUG": "false", "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + RUN),
               "ALLOWED_HOSTS": "localhost"}
        if os.environ.get("BENCH_LOG_LEVEL"):
            env["LOG_LEVEL"] = os.environ["BENCH_LOG_LEVEL"]
        command = [sys.executable, "manage.py", "listen_queues", "--queue", event]
        if metrics:  # recording, and served on a free port, as an operator's would be
            command += ["--metrics-port", "0"]
            env["METRICS_TOKEN"] = "bench"
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def final_count(pg: psycopg.Connection, event: str) -> int:
    """Messages whose records are final: executions committed and the message acknowledged."""
    return pg.execute("SELECT count(*) FROM queues_receivedmessage WHERE event = %s AND outcome = 'ACKNOWLEDGED'",
                      (event,)).fetchone()[0]


def check_records(pg: psycopg.Connection, event: str, count: int, executions: bool = True) -> None:
    """Every message once, every action COMPLETED once, one workflow each: a fast wrong answer is no answer."""
    got = pg.execute(
        "SELECT count(*), count(DISTINCT message_id) FROM queues_receivedmessage WHERE event = %s", (event,)
    ).fetchone()
    done = pg.execute("SELECT count(*), count(DISTINCT workflow_id) FROM handlers_actionexecution "
                      "WHERE event = %s AND status = 'COMPLETED'", (event,)).fetchone()
    if got != (count, count) or (executions and done != (count, count)):
        raise RuntimeError(f"{event}: records {got}, completed executions {done}; expected {count} of each")


def run_eventhub(pg: psycopg.Connection, broker: Broker, count: int, memory: bool = False,
                 metrics: bool = False) -> dict:
    """Publish `count` messages, then time one listener from its first record to the last final one."""
    broker.publish(body(i) for i in range(count))
    listener = Listener(broker.event, metrics=metrics)
    samples: list[tuple[int, int]] = []
    started = None  # (messages done, listener and PostgreSQL CPU time) once the first are done
    try:
        while (done := final_count(pg, broker.event)) < count:
            if started is None and done:
                started = (done, cpu_seconds(listener.process.pid), postgres_cpu_seconds())
            if listener.process.poll() is not None:
                raise RuntimeError(f"the listener of {broker.event} exited with {listener.process.returncode}")
            if memory:
                samples.append((done, listener.rss_kb()))
            time.sleep(0.05 if not memory else 0.5)
        end = time.time()
        # CPU per message from the first done on: not the listener's start (Django, connections).
        if started is not None and started[0] < count:
            cpu = {"listener_us": (cpu_seconds(listener.process.pid) - started[1]) / (count - started[0]) * 1e6,
                   "postgres_us": (postgres_cpu_seconds() - started[2]) / (count - started[0]) * 1e6}
        else:  # (all were done at the first look)
            cpu = {"listener_us": None, "postgres_us": None}
        if memory:
            samples.append((count, listener.rss_kb()))
    finally:
        listener.stop()
    first = pg.execute("SELECT extract(epoch FROM min(received_at)) FROM queues_receivedmessage WHERE event = %s",
                       (broker.event,)).fetchone()[0]
    check_records(pg, broker.event, count)
    return {"rate": count / (end - float(first)), "seconds": end - float(first), "samples": samples, **cpu}


# One row of each table per message, as JSON: the records of one run, to be written again.
_RECORD_TABLES = [
    ("queues_receivedmessage", "SELECT id, row_to_json(r)::text FROM queues_receivedmessage r WHERE event = %s"),
    ("workflows_workflow", "SELECT e.delivery_id, row_to_json(w)::text FROM workflows_workflow w "
                           "JOIN handlers_actionexecution e ON e.workflow_id = w.id WHERE e.event = %s"),
    ("workflows_task", "SELECT e.delivery_id, row_to_json(t)::text FROM workflows_task t "
                       "JOIN handlers_actionexecution e ON e.workflow_id = t.workflow_id WHERE e.event = %s"),
    ("handlers_actionexecution", "SELECT delivery_id, row_to_json(e)::text FROM handlers_actionexecution e "
                                 "WHERE event = %s"),
]


def records_alone(pg: psycopg.Connection, event: str, count: int) -> tuple[float, float]:
    """How fast PostgreSQL alone writes the records Eventhub wrote for a run: the run's rows are deleted
    and inserted again, a batch (the queue's batch size) per transaction, as the listener's consumers do
    (the same number of connections, one multi-statement INSERT from JSON per batch), with no Python
    work between batches. A ceiling for Eventhub's rate on this machine, whatever its own cost. Returns
    the rate and the CPU time PostgreSQL spent per message (µs)."""
    batch_size, consumers = pg.execute("SELECT batch_size, concurrency FROM queues_queueconfig WHERE event = %s",
                                       (event,)).fetchone()
    rows = [dict(pg.execute(query, (event,)).fetchall()) for _, query in _RECORD_TABLES]
    messages = sorted(rows[0])
    if any(len(table) != count for table in rows):
        raise RuntimeError(f"{event}: expected {count} rows in each table, found {[len(t) for t in rows]}")
    batches = [["[" + ",".join(table[m] for m in messages[i:i + batch_size]) + "]" for table in rows]
               for i in range(0, count, batch_size)]
    statement = "; ".join(f"INSERT INTO {table} SELECT * FROM json_populate_recordset(NULL::{table}, %s)"  # noqa: S608
                          for table, _ in _RECORD_TABLES)
    with pg.transaction():
        pg.execute("CREATE TEMP TABLE gone ON COMMIT DROP AS SELECT workflow_id FROM handlers_actionexecution "
                   "WHERE event = %s", (event,))
        pg.execute("DELETE FROM workflows_task WHERE workflow_id IN (SELECT workflow_id FROM gone)")
        pg.execute("DELETE FROM handlers_actionexecution WHERE event = %s", (event,))
        pg.execute("DELETE FROM workflows_workflow WHERE id IN (SELECT workflow_id FROM gone)")
        pg.execute("DELETE FROM queues_receivedmessage WHERE event = %s", (event,))

    def write(share: list[list[str]]) -> None:
        with psycopg.connect(f"{PG_SERVER}/{DB_NAME}", cursor_factory=psycopg.ClientCursor) as connection:
            for documents in share:
                connection.execute(statement, documents)
                connection.commit()

    threads = [threading.Thread(target=write, args=(batches[k::consumers],)) for k in range(consumers)]
    start, postgres = time.time(), postgres_cpu_seconds()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rate, postgres = count / (time.time() - start), postgres_cpu_seconds() - postgres
    check_records(pg, event, count)
    return rate, postgres / count * 1e6


def postgres_cpu_seconds() -> float:
    """CPU time PostgreSQL's processes on this machine have used so far, those that ended included (the
    server adds them up as it reaps them). Includes the benchmark's own queries, which are few."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().startswith(f"{stat.parent.name} (postgres)"):
                total += cpu_seconds(int(stat.parent.name), children=True)
        except (FileNotFoundError, ProcessLookupError):
            pass  # it ended meanwhile (and is counted in the server's total next time)
    return total


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User and system CPU time a process has used; `children`: with that of its children it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def run_bare(pg: psycopg.Connection, broker: Broker, count: int) -> dict:
    broker.publish(body(i) for i in range(count))
    start, cpu, postgres = time.time(), time.process_time(), postgres_cpu_seconds()
    broker.consume_bare(pg, count)
    elapsed = time.time() - start
    cpu, postgres = time.process_time() - cpu, postgres_cpu_seconds() - postgres
    got = pg.execute(f"SELECT count(*) FROM {BASELINE_TABLE} WHERE message_id LIKE %s",  # noqa: S608
                     (f"{RUN}-%",)).fetchone()[0]
    pg.execute(f"TRUNCATE {BASELINE_TABLE}")  # noqa: S608
    if got != count:
        raise RuntimeError(f"bare consumer of {broker.event} stored {got} rows for {count} messages")
    return {"rate": count / elapsed, "consumer_us": cpu / count * 1e6, "postgres_us": postgres / count * 1e6}


def run_latency(pg_url: str, broker: Broker, seconds: float) -> tuple[float, float, int]:
    """Publish at a steady RATE; the time from publish to the record being visible (committed) in PostgreSQL."""
    listener = Listener(broker.event)
    seen: dict[int, float] = {}
    stop = threading.Event()
    try:
        with psycopg.connect(pg_url, autocommit=True) as watcher:
            def ready() -> bool:
                return bool(watcher.execute("SELECT 1 FROM queues_listenerheartbeat WHERE event = %s",
                                            (broker.event,)).fetchone())

            wait_for(ready, 60, f"the listener of {broker.event}")
            time.sleep(1.0)  # its consumer is connected and long-polling
            total = int(seconds * RATE)
            # Record ids handed out so far (to earlier runs' records): this run's are all above.
            last = watcher.execute("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence("
                                   "'queues_receivedmessage', 'id')), 0)").fetchone()[0]
            watch = threading.Thread(target=_watch, args=(pg_url, broker.event, last, total, seen, stop),
                                     daemon=True)
            watch.start()
            sent = _publish_steadily(broker, total)
            watch.join(60)
            stop.set()
    finally:
        listener.stop()
    latencies = sorted((seen[seq] - sent[seq]) * 1000 for seq in sent if seq in seen)
    if len(latencies) != len(sent):
        raise RuntimeError(f"{broker.event}: {len(sent) - len(latencies)} messages never got a record")
    return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], len(sent)


def _publish_steadily(broker: Broker, total: int) -> dict[int, float]:
    publish = broker.publisher()
    sent: dict[int, float] = {}
    start = time.monotonic()
    try:
        for seq in range(total):
            delay = start + seq / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            mid, text = body(seq)
            sent[seq] = time.time()
            publish(mid, text)
    finally:
        broker.close_publisher()
    return sent


HOLE_SECONDS = 10.0


def _watch(pg_url: str, event: str, last: int, total: int, seen: dict[int, float], stop: threading.Event) -> None:
    """Poll for newly committed records every 2 ms: a record counts when another connection can see it.

    `last`: the highest record id handed out before the first message was sent. Ids are taken in order
    but batches commit in any order (a queue has several consumers): an id below the highest seen that
    is still missing (a hole) is looked for again until it turns up or, an id no committed row will ever
    have (a rolled-back batch's), for HOLE_SECONDS."""
    with psycopg.connect(pg_url, autocommit=True) as pg:
        holes: dict[int, float] = {}
        while len(seen) < total and not stop.is_set():
            rows = pg.execute("SELECT id, (payload->>'seq')::int FROM queues_receivedmessage WHERE event = %s "
                              "AND (id > %s OR id = ANY(%s)) ORDER BY id", (event, last, list(holes))).fetchall()
            now = time.time()
            for row_id, seq in rows:
                seen.setdefault(seq, now)
                holes.pop(row_id, None)
                holes.update((hole, now) for hole in range(last + 1, row_id))
                last = max(last, row_id)
            holes = {hole: since for hole, since in holes.items() if now - since < HOLE_SECONDS}
            time.sleep(0.002)


# Reporting -------------------------------------------------------------------------------------


@dataclass
class Figure:
    what: str
    value: str
    target: str
    ok: bool | None

    def line(self) -> str:
        verdict = "" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return f"{self.what:<48} {self.value:>16}   {self.target:<22} {verdict}"


def micro(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} µs"


def figures_for(kind: str, eventhub: float, bare: float) -> list[Figure]:
    ratio = eventhub / bare
    fast = kind != "sqs"
    return [
        Figure(f"{kind}: Eventhub end to end", f"{eventhub:,.0f} msg/s", ">= 1,500 msg/s" if fast else "(none)",
               eventhub >= 1500 if fast else None),
        Figure(f"{kind}: bare baseline", f"{bare:,.0f} msg/s", "", None),
        Figure(f"{kind}: Eventhub / baseline", f"{ratio:.2f}", ">= 0.50", ratio >= 0.5),
    ]


def conditions() -> str:
    load = os.getloadavg()
    return (f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; "
            f"N={N} (SQS {SQS_N}), latency {LATENCY_SECONDS:.0f} s at {RATE}/s, memory over {MEMORY_N} messages, "
            f"batch size {os.environ.get('QUEUES_BATCH_SIZE', 'default')}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventhub.settings")
    os.environ["QUEUES_SCHEDULES"] = "false"
    out(f"Eventhub benchmark {RUN}: N={N} per run, fresh database {DB_NAME}")
    pg_url = fresh_database()
    moto, endpoint = start_moto()
    import django

    django.setup()
    from workflows.models import WorkflowDefinition

    WorkflowDefinition.from_conductor(FLOW).save()
    results: list[Figure] = []
    try:
        with psycopg.connect(pg_url, autocommit=True) as pg:
            for part in PARTS:
                if part == "latency":
                    results += latency(pg_url, endpoint)
                else:
                    results += {"throughput": throughput, "ratios": ratios, "memory": memory,
                                "metrics": metrics_cost}[part](pg, endpoint)
    finally:
        moto.terminate()
        moto.wait()
        out()
        out(f"{'figure':<48} {'value':>16}   {'target':<22} result")
        for figure in results:
            out(figure.line())
        out(f"conditions: {conditions()}")
    if any(f.ok is False for f in results):
        sys.exit(1)


def throughput(pg: psycopg.Connection, endpoint: str) -> list[Figure]:
    results = []
    for kind in KINDS:
        broker, bare = make_broker(kind, "main", endpoint), make_broker(kind, "bare", endpoint)
        add_handler(broker.event)
        broker.provision()
        bare.provision()
        count = SQS_N if kind == "sqs" else N
        run = run_eventhub(pg, broker, count)
        eventhub = run["rate"]
        bare_run = run_bare(pg, bare, count)
        baseline = bare_run["rate"]
        alone, alone_cpu = (None, None) if kind == "sqs" else records_alone(pg, broker.event, count)
        out(f"{kind}: Eventhub {eventhub:,.0f} msg/s (CPU per message: listener {micro(run['listener_us'])}, "
            f"PostgreSQL {micro(run['postgres_us'])}), bare {baseline:,.0f} msg/s (consumer "
            f"{bare_run['consumer_us']:.0f} µs, PostgreSQL {bare_run['postgres_us']:.0f} µs)" + (
            f"; PostgreSQL alone writes Eventhub's records at {alone:,.0f} msg/s, {alone_cpu:.0f} µs of its CPU "
            "per message" if alone else ""))
        results += figures_for(kind, eventhub, baseline)
        if alone:
            results.append(Figure(f"{kind}: PostgreSQL alone / baseline", f"{alone / baseline:.2f}", "(a ceiling)",
                                  None))
    return results


def latency(pg_url: str, endpoint: str) -> list[Figure]:
    results = []
    for kind in KINDS:
        broker = make_broker(kind, "latency", endpoint)
        add_handler(broker.event)
        broker.provision()
        p50, p99, count = run_latency(pg_url, broker, LATENCY_SECONDS)
        out(f"{kind}: latency over {count} messages at {RATE}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        targeted = kind in ("amqp_queue", "nats")
        results += [Figure(f"{kind}: p50 publish -> committed record", f"{p50:.1f} ms", "", None),
                    Figure(f"{kind}: p99 publish -> committed record", f"{p99:.1f} ms",
                           "< 50 ms" if targeted else "(none)", p99 < 50 if targeted else None)]
    return results


def ratios(pg: psycopg.Connection, endpoint: str) -> list[Figure]:
    """One handler, then a JavaScript condition, then 10,000 handlers on other events, then one handler
    again once they are gone; RabbitMQ each time. Every run leaves its records in the tables, which makes
    the next a little slower: the one-handler rate is the mean of the runs before and after the others."""
    kind = "amqp_queue" if "amqp_queue" in KINDS else KINDS[0]
    plain, js = make_broker(kind, "plain", endpoint), make_broker(kind, "js", endpoint)
    crowded, plain_again = make_broker(kind, "crowded", endpoint), make_broker(kind, "plain_again", endpoint)
    for broker in (plain, js, crowded, plain_again):
        add_handler(broker.event, JS_CONDITION if broker is js else "")
        broker.provision()
    before = run_eventhub(pg, plain, N)["rate"]
    with_js = run_eventhub(pg, js, N)["rate"]
    add_other_handlers(HANDLERS)
    with_many = run_eventhub(pg, crowded, N)["rate"]
    remove_other_handlers()
    after = run_eventhub(pg, plain_again, N)["rate"]
    one = (before + after) / 2
    out(f"{kind}: one handler {before:,.0f} and {after:,.0f} msg/s, with a JavaScript condition {with_js:,.0f} "
        f"msg/s, with {HANDLERS:,} other handlers {with_many:,.0f} msg/s")
    return [Figure(f"{kind}: {HANDLERS:,} other handlers / one", f"{with_many / one:.2f}", ">= 0.90",
                   with_many / one >= 0.9),
            Figure(f"{kind}: JavaScript condition / none", f"{with_js / one:.2f}", ">= 0.70", with_js / one >= 0.7)]


def metrics_cost(pg: psycopg.Connection, endpoint: str) -> list[Figure]:
    """RabbitMQ with the listener's Prometheus metrics off, on, and off again (the mean of the two off runs
    is the reference: later runs are a little slower as the tables grow)."""
    kind = "amqp_queue" if "amqp_queue" in KINDS else KINDS[0]
    brokers = [make_broker(kind, f"metrics_{name}", endpoint) for name in ("off", "on", "off_again")]
    for broker in brokers:
        add_handler(broker.event)
        broker.provision()
    runs = [run_eventhub(pg, broker, N, metrics=broker is brokers[1]) for broker in brokers]
    (off, on, off_again), cpu = ([run["rate"] for run in runs],
                                 [run["listener_us"] or float("nan") for run in runs])
    ratio = on / ((off + off_again) / 2)
    out(f"{kind}: metrics off {off:,.0f} and {off_again:,.0f} msg/s, on {on:,.0f} msg/s; listener CPU per message "
        f"{cpu[0]:.0f} and {cpu[2]:.0f} µs off, {cpu[1]:.0f} µs on")
    return [Figure(f"{kind}: metrics on / off", f"{ratio:.2f}", ">= 0.95", ratio >= 0.95),
            Figure(f"{kind}: listener CPU per message, on / off", f"{cpu[1] / ((cpu[0] + cpu[2]) / 2):.2f}",
                   "(for reference)", None)]


def memory(pg: psycopg.Connection, endpoint: str) -> list[Figure]:
    kind = "amqp_queue" if "amqp_queue" in KINDS else KINDS[0]
    broker = make_broker(kind, "memory", endpoint)
    add_handler(broker.event)
    broker.provision()
    result = run_eventhub(pg, broker, MEMORY_N, memory=True)
    samples = result["samples"]
    # Growth after warm-up: from the first sample past 10 % of the messages (V8, caches, connections are up).
    warm = next((rss for done, rss in samples if done >= MEMORY_N // 10), samples[0][1])
    final = samples[-1][1]
    growth_mb = (final - warm) / 1024
    out(f"{kind}: {MEMORY_N:,} messages at {result['rate']:,.0f} msg/s; RSS {warm / 1024:.1f} MB after warm-up, "
        f"{final / 1024:.1f} MB at the end")
    return [Figure(f"{kind}: listener RSS growth over {MEMORY_N:,} msgs", f"{growth_mb:.1f} MB", "< 20 MB",
                   growth_mb < 20)]


if __name__ == "__main__":
    main()
