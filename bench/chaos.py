"""Eventhub under faults (`make chaos`; the README's "Fault runs" says what it does and its latest figures).

It starts its own PostgreSQL, RabbitMQ and NATS on free ports under a scratch directory
(bench/services.py) and, for the internal queue, RabbitMQ and NATS in turn, publishes CHAOS_N messages
in bursts to a queue whose one handler starts one workflow per message, consumed by
`manage.py listen_queues` processes. While a burst is being consumed, one fault strikes:

- a listener is SIGKILLed and another started at once (CHAOS_KILLS times);
- three listeners consume the queue at once, and one of them is SIGKILLed meanwhile;
- the broker is killed (SIGKILL) and started again, then stopped cleanly and started again (RabbitMQ, NATS);
- PostgreSQL is restarted with `-m fast`, then with `-m immediate` (a crash).

Each fault is timed from its end (the listener started again, the broker or database answering) to the
next workflow committed: the listener has to recover by itself. Queue configs get a short visibility
timeout (CHAOS_VISIBILITY_TIMEOUT), so a killed listener's messages come back within seconds.

Once the faults are over and the broker holds nothing more, the listener is stopped with SIGTERM and every
published message id is looked for in the input of the workflows (`conductor.event.messageId`): lost (no
workflow, and not quarantined), doubled (more than one). Exit status 1 on any loss or double, or a listener
that did not recover by itself. Everything started is stopped by process id at the end, on failure and on
Ctrl-C too; the scratch directory is removed after a clean run and kept (with the logs) otherwise.
"""

import atexit
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.brokers import Broker, Internal, Nats, Rabbit, wait_for  # noqa: E402
from bench.run import FLOW, RUN, Listener, add_handler, body, fresh_database, out  # noqa: E402
from bench.services import PrivateServices  # noqa: E402

log = logging.getLogger("bench")
N = int(os.environ.get("CHAOS_N", 3000))
KINDS = os.environ.get("CHAOS_KINDS", "conductor,amqp_queue,nats").split(",")
KILLS = int(os.environ.get("CHAOS_KILLS", 8))
VISIBILITY_TIMEOUT = int(os.environ.get("CHAOS_VISIBILITY_TIMEOUT", 5))
MAX_DELIVERIES = int(os.environ.get("CHAOS_MAX_DELIVERIES", 20))
SEED = int(os.environ.get("CHAOS_SEED", random.SystemRandom().randrange(1_000_000)))
RECOVERY_LIMIT = 120.0  # no workflow this long after a fault: the listener did not recover
SETTLE_LIMIT = 300.0  # for every message to be settled once the faults are over
PROBE = 10  # messages published once a fault is over, so that there is always work to recover to
BATCH_SIZE = int(os.environ.get("CHAOS_BATCH_SIZE", 10))  # small batches: a fault finds some in flight
DB_NAME = "eventhub_chaos"
WORKFLOWS = "SELECT count(*) FROM workflows_workflow WHERE input->>'conductor.event.name' = %s"
LIVE: list[Listener] = []  # every listener process still running, for the clean-up


class Records:
    """Queries on the run's database through a connection of this process's own, opened again after a
    restart (waiting for the database up to RECOVERY_LIMIT)."""

    def __init__(self, url: str):
        self.url = url
        self._pg: psycopg.Connection | None = None

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        deadline = time.monotonic() + RECOVERY_LIMIT
        while True:
            try:
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                return self._pg.execute(sql, args).fetchall()
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self._pg = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def workflows(self, event: str) -> int:
        return self.query(WORKFLOWS, (event,))[0][0]


@dataclass
class Fault:
    what: str
    down: float  # seconds from the strike to the end of the fault
    recovery: float | None  # seconds from then to the next workflow committed (None: none came)


@dataclass
class Tally:
    kind: str
    published: int
    lost: list[str]
    doubled: dict[str, int]
    quarantined: dict[str, str]  # message id -> reason and error
    deliveries: int
    highest_delivery: int
    duplicates: int  # suppressed duplicate deliveries recorded (SKIPPED, pointing at the original)
    gap: float  # the longest time between two workflows (of a listener stalled, or faults that take long)
    dead: int | None  # in the broker's own dead-letter store at the end
    faults: list[Fault]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.doubled or any(f.recovery is None for f in self.faults) or self.notes)

    def longest(self) -> Fault | None:
        timed = [f for f in self.faults if f.recovery is not None]
        return max(timed, key=lambda f: f.recovery) if timed else None


class Chaos:
    """One broker's run: its queue, its listener processes, what was published and the faults so far."""

    def __init__(self, broker: Broker, services: PrivateServices, records: Records, rng: random.Random, logs: Path):
        self.broker, self.services, self.records, self.rng, self.logs = broker, services, records, rng, logs
        self.listeners: list[Listener] = []
        self.started = 0
        self.published: list[str] = []
        self.faults: list[Fault] = []
        self.notes: list[str] = []

    @property
    def event(self) -> str:
        return self.broker.event

    # Listeners ---------------------------------------------------------------------------------

    def start_listener(self) -> Listener:
        self.started += 1
        with open(self.logs / f"{self.broker.kind}-listener-{self.started}.log", "w") as output:
            listener = Listener(self.event, output)
        self.listeners.append(listener)
        LIVE.append(listener)
        return listener

    def wait_ready(self, listener: Listener) -> None:
        """Until its consumers have polled once (their heartbeat)."""
        sql = "SELECT 1 FROM queues_listenerheartbeat WHERE pid = %s AND event = %s AND stopped_at IS NULL"
        wait_for(lambda: bool(self.records.query(sql, (listener.process.pid, self.event))), RECOVERY_LIMIT,
                 f"listener {listener.process.pid} of {self.event}", every=0.1)

    def kill(self, listener: Listener) -> None:
        listener.process.kill()
        listener.process.wait()
        self._forget(listener)

    def terminate(self, listener: Listener) -> None:
        """SIGTERM: it finishes and acknowledges what it holds, and exits 0."""
        listener.stop()
        self._forget(listener)
        if listener.process.returncode != 0:
            self.notes.append(f"listener {listener.process.pid} exited with {listener.process.returncode} on SIGTERM")

    def _forget(self, listener: Listener) -> None:
        self.listeners.remove(listener)
        LIVE.remove(listener)

    def check_listeners(self, after: str) -> None:
        """A listener must outlive the brokers' and the database's faults by itself."""
        for listener in list(self.listeners):
            if listener.process.poll() is not None:
                self.notes.append(f"listener {listener.process.pid} exited with {listener.process.returncode} "
                                  f"after: {after}")
                self._forget(listener)
                self.start_listener()

    # Publishing and faults ---------------------------------------------------------------------

    def publish(self, count: int) -> None:
        """`count` new messages, published again whole until the broker confirms them all: a message may
        be in the queue twice (the same id), as after any publisher's retry."""
        bodies = [body(seq) for seq in range(len(self.published), len(self.published) + count)]
        wait_for(lambda: self._try_publish(bodies), RECOVERY_LIMIT, f"publishing to {self.event}", every=0.5)
        self.published += [mid for mid, _ in bodies]

    def _try_publish(self, bodies: list[tuple[str, str]]) -> bool:
        from django.db import connection

        try:
            self.broker.publish(bodies)
        except Exception as exc:  # noqa: BLE001 - the broker (or the database) is still coming back
            log.info("publishing to %s failed, again in a moment: %s", self.event, str(exc).splitlines()[0])
            connection.close()
            return False
        return True

    def fault(self, what: str, strike: Callable[[], None], mend: Callable[[], object], size: int) -> None:
        """Publish a burst, strike while it is being consumed, mend, and time the recovery."""
        before = self.records.workflows(self.event)
        self.publish(size - PROBE)
        # Strike while the queue is being consumed (once a random number of workflows more, up to half a burst,
        # are committed): other batches are then received and not yet committed, or not yet acknowledged.
        target = before + self.rng.randint(1, max(1, (size - PROBE) // 2))
        wait_for(lambda: self.records.workflows(self.event) >= target, RECOVERY_LIMIT,
                 f"{self.event} to consume a burst", every=0.01)
        struck = time.monotonic()
        strike()
        mend()
        back = time.monotonic()
        done = self.records.workflows(self.event)
        self.publish(PROBE)
        try:
            wait_for(lambda: self.records.workflows(self.event) > done, RECOVERY_LIMIT, what, every=0.05)
            recovery = time.monotonic() - back
        except TimeoutError:
            recovery = None
        self.faults.append(Fault(what, back - struck, recovery))
        out(f"  {what}: over after {back - struck:.1f} s, next workflow "
            + (f"{recovery:.1f} s later" if recovery is not None else f"not within {RECOVERY_LIMIT:.0f} s"))

    def kill_one(self, size: int, what: str = "listener SIGKILLed") -> None:
        victim = self.rng.choice(self.listeners)
        self.fault(what, lambda: self.kill(victim), self.start_listener, size)

    def three_listeners(self, size: int) -> None:
        """Three processes on the queue at once for three bursts; one of them is SIGKILLed in the second.
        Two are then stopped with SIGTERM."""
        for listener in [self.start_listener() for _ in range(3 - len(self.listeners))]:
            self.wait_ready(listener)
        self.burst(size)
        self.kill_one(size, "one of three listeners SIGKILLed")
        self.burst(size)
        for listener in self.listeners[:-1]:
            self.terminate(listener)

    def burst(self, size: int) -> None:
        before = self.records.workflows(self.event)
        self.publish(size)
        wait_for(lambda: self.records.workflows(self.event) >= before + size, RECOVERY_LIMIT,
                 f"{self.event} to consume a burst", every=0.1)

    def restart_faults(self) -> list[tuple[str, Callable[[], None], Callable[[], object]]]:
        """The broker's (the internal queue's broker is PostgreSQL), then PostgreSQL's."""
        postgres, nothing = self.services.postgres, lambda: None
        broker = {"amqp_queue": self.services.rabbit, "nats": self.services.nats}.get(self.broker.kind)
        faults = [] if broker is None else [
            (f"{broker.name} killed (SIGKILL) and started", broker.kill, broker.start),
            (f"{broker.name} stopped and started", broker.stop_gracefully, broker.start)]
        return faults + [("PostgreSQL restart -m fast", lambda: postgres.restart("fast"), nothing),
                         ("PostgreSQL restart -m immediate", lambda: postgres.restart("immediate"), nothing)]

    # The end -----------------------------------------------------------------------------------

    def drain(self) -> int | None:
        """Wait until every message has a workflow (or is quarantined) and the broker holds nothing, then
        stop the listeners with SIGTERM. Returns what the broker's dead-letter store holds."""
        for _ in range(3):
            try:
                wait_for(self._settled, SETTLE_LIMIT, f"every message of {self.event} to be settled", every=0.5)
            except TimeoutError as exc:
                self.notes.append(f"{exc}: {self.stuck()}")
            for listener in list(self.listeners):
                self.terminate(listener)
            depth = self.depth()
            if depth is not None and not depth.ready and not depth.in_flight:
                return depth.dead
            self.notes.append(f"the broker still held {depth} once the listeners had stopped; listening again")
            self.start_listener()
        return None

    def _settled(self) -> bool:
        settled = self.records.query(
            "SELECT count(DISTINCT id) FROM (SELECT input->>'conductor.event.messageId' AS id FROM workflows_workflow "
            "WHERE input->>'conductor.event.name' = %s UNION SELECT message_id FROM queues_quarantinedmessage "
            "WHERE event = %s) AS done WHERE id = ANY(%s)", (self.event, self.event, self.published))[0][0]
        depth = self.depth() if settled == len(self.published) else None
        return depth is not None and not depth.ready and not depth.in_flight

    def stuck(self) -> str:
        """What the messages without a workflow are waiting for, as far as the records say."""
        missing = len(self.published) - self.records.query(
            "SELECT count(DISTINCT input->>'conductor.event.messageId') FROM workflows_workflow "
            "WHERE input->>'conductor.event.name' = %s AND input->>'conductor.event.messageId' = ANY(%s)",
            (self.event, self.published))[0][0]
        errors = self.records.query(
            "SELECT consumer, last_beat_at, last_error FROM queues_listenerheartbeat WHERE event = %s AND "
            "stopped_at IS NULL AND last_error != '' ORDER BY consumer", (self.event,))
        return f"{missing} messages without a workflow; " + ("; ".join(
            f"consumer {consumer}, last beat {beat:%H:%M:%S}: {error.splitlines()[0][:200]}"
            for consumer, beat, error in errors) or "no listener reports an error")

    def depth(self):
        """Eventhub's own view of the broker: messages ready, in flight (held unacknowledged), dead-lettered."""
        from django.db import connection

        from queues.configs import config_for
        from queues.kinds import provider_for

        connection.close()  # (this process's may not have outlived a restart of PostgreSQL)
        try:
            with provider_for(config_for(self.event).spec()) as provider:
                return provider.depth()
        except Exception as exc:  # noqa: BLE001 - e.g. the broker is not answering yet
            log.info("depth of %s unavailable: %s", self.event, exc)
            return None

    def tally(self, dead: int | None) -> Tally:
        q, event = self.records.query, self.event
        workflows = dict(q("SELECT input->>'conductor.event.messageId', count(*) FROM workflows_workflow "
                           "WHERE input->>'conductor.event.name' = %s GROUP BY 1", (event,)))
        quarantined = {mid: f"{reason}: {error}" for mid, reason, error in q(
            "SELECT message_id, reason, last_error FROM queues_quarantinedmessage WHERE event = %s", (event,))}
        deliveries, highest = q("SELECT count(*), coalesce(max(delivery_count), 0) FROM queues_receivedmessage "
                                "WHERE event = %s", (event,))[0]
        duplicates = q("SELECT count(*) FROM handlers_actionexecution WHERE event = %s AND duplicate_of_id IS NOT NULL",
                       (event,))[0][0]
        gap = q("SELECT coalesce(extract(epoch FROM max(gap)), 0) FROM (SELECT created_at - lag(created_at) "
                "OVER (ORDER BY created_at) AS gap FROM workflows_workflow "
                "WHERE input->>'conductor.event.name' = %s) AS gaps", (event,))[0][0]
        published = set(self.published)
        tally = Tally(self.broker.kind, len(published), sorted(published - set(workflows) - set(quarantined)),
                      {mid: n for mid, n in workflows.items() if n > 1}, quarantined, deliveries, highest,
                      duplicates, float(gap), dead, self.faults, self.notes)
        if stray := set(workflows) - published:
            tally.notes.append(f"{len(stray)} workflows for message ids never published, e.g. {sorted(stray)[:3]}")
        return tally

    def explain(self, message_id: str) -> list[str]:
        """A lost or doubled message's deliveries, executions and workflows, for the report."""
        q, event = self.records.query, self.event
        lines = [f"{self.event} {message_id}:"]
        lines += [f"  delivery {n} at {at:%H:%M:%S.%f}: {outcome} {detail[:300]}" for n, at, outcome, detail in q(
            "SELECT delivery_count, received_at, outcome, detail FROM queues_receivedmessage WHERE event = %s "
            "AND message_id = %s ORDER BY id", (event, message_id))]
        lines += [f"  execution {eid} {status} workflow {wf or '-'} attempts {attempts} duplicate of {dup or '-'}: "
                  f"{(error or reason)[:300]}" for eid, status, wf, attempts, dup, error, reason in q(
            "SELECT execution_id, status, workflow_id, attempts, duplicate_of_id, error, reason FROM "
            "handlers_actionexecution WHERE event = %s AND message_id = %s ORDER BY id", (event, message_id))]
        lines += [f"  workflow {wid} created {at:%H:%M:%S.%f}" for wid, at in q(
            "SELECT id, created_at FROM workflows_workflow WHERE input->>'conductor.event.name' = %s AND "
            "input->>'conductor.event.messageId' = %s ORDER BY created_at", (event, message_id))]
        return lines


def make_broker(kind: str, services: PrivateServices) -> Broker:
    from django.conf import settings

    name, batch = f"chaos_{RUN}_{kind}", settings.QUEUES_DEFAULTS["batch_size"]
    if kind == "conductor":
        return Internal(name, batch)
    if kind == "amqp_queue":
        return Rabbit(name, batch, services.rabbit.url)
    if kind == "nats":
        return Nats(name.replace("_", "."), batch, services.nats.url)
    raise ValueError(f"CHAOS_KINDS: {kind!r} is none of conductor, amqp_queue, nats")


def run_broker(kind: str, services: PrivateServices, records: Records, rng: random.Random, logs: Path) -> Tally:
    broker = make_broker(kind, services)
    add_handler(broker.event)
    broker.provision()
    chaos = Chaos(broker, services, records, rng, logs)
    restarts = chaos.restart_faults()
    size = N // (KILLS + 3 + len(restarts))  # messages per burst
    out(f"{broker.event}: {N} messages in bursts of {size}")
    chaos.wait_ready(chaos.start_listener())
    for _ in range(KILLS):
        chaos.kill_one(size)
    chaos.three_listeners(size)
    for what, strike, mend in restarts:
        chaos.fault(what, strike, mend, size)
        chaos.check_listeners(what)
    chaos.publish(N - len(chaos.published))
    tally = chaos.tally(chaos.drain())
    details = [line for mid in [*tally.lost, *tally.doubled] for line in chaos.explain(mid)]
    if details:
        (logs / f"{kind}-problems.txt").write_text("\n".join(details) + "\n")
        for line in details[:40]:
            out(line)
    return tally


# Reporting -------------------------------------------------------------------------------------


def report(tallies: list[Tally], started: float) -> None:
    out()
    out(f"{'broker':<12} {'published':>9} {'lost':>5} {'doubled':>7} {'quarantined':>11} {'max delivery':>12} "
        f"{'longest recovery':>16}  after")
    for t in tallies:
        longest = t.longest()
        out(f"{t.kind:<12} {t.published:>9,} {len(t.lost):>5} {len(t.doubled):>7} {len(t.quarantined):>11} "
            f"{t.highest_delivery:>12} {(f'{longest.recovery:.1f} s' if longest else 'n/a'):>16}  "
            f"{longest.what if longest else ''}")
    out()
    for t in tallies:
        kills = sum("SIGKILLed" in f.what for f in t.faults)
        out(f"{t.kind}: {len(t.faults)} faults ({kills} listener kills); {t.deliveries:,} deliveries recorded, "
            f"{t.duplicates:,} suppressed duplicates; at most {t.gap:.1f} s between two workflows; "
            f"{t.dead if t.dead is not None else '?'} left in the broker's dead-letter store (messages it no "
            "longer delivers; not counted as lost while they have their workflow)")
        for mid, why in list(t.quarantined.items())[:5]:
            out(f"  quarantined {mid}: {why[:200]}")
        for note in t.notes:
            out(f"  ! {note}")
    load = os.getloadavg()
    out(f"conditions: N={N} per broker, {KILLS} kills (+1 among three listeners), visibility timeout "
        f"{VISIBILITY_TIMEOUT} s, max deliveries {MAX_DELIVERIES}, batch size {BATCH_SIZE}, seed {SEED}; "
        f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; "
        f"{time.time() - started:.0f} s in all")


# Setting up and cleaning up --------------------------------------------------------------------


def configure() -> None:
    """This process's settings and the listeners' (which inherit the environment)."""
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "eventhub.settings", "DEBUG": "false", "ALLOWED_HOSTS": "localhost",
        "SECRET_KEY": os.environ.get("SECRET_KEY", f"chaos-{RUN}"), "QUEUES_SCHEDULES": "false",
        # The defaults of the queue configs the handlers create: redeliveries within seconds, deliveries
        # enough for every fault to strike a message more than once, a short long poll.
        "QUEUES_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "QUEUES_MAX_DELIVERIES": str(MAX_DELIVERIES),
        "QUEUES_WAIT_SECONDS": "2", "QUEUES_BATCH_SIZE": str(BATCH_SIZE),
    })


class CleanUp:
    """Stop every listener and service this run started, by process id; remove the scratch directory after
    a clean run (kept, with its logs, otherwise). Safe to call twice (from `finally` and atexit)."""

    def __init__(self, services: PrivateServices, scratch: Path):
        self.services, self.scratch = services, scratch
        self.clean = False
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        for listener in list(LIVE):
            listener.process.kill()
            listener.process.wait()
            LIVE.remove(listener)
        self.services.stop()
        if self.clean:
            shutil.rmtree(self.scratch, ignore_errors=True)
        else:
            out(f"kept for a look: {self.scratch} (logs in {self.scratch / 'logs'})")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started = time.time()
    configure()
    scratch = Path(tempfile.mkdtemp(prefix="eventhub-chaos-"))
    scratch.chmod(0o755)  # PostgreSQL and RabbitMQ run as their own users below it
    (scratch / "logs").mkdir()
    services = PrivateServices(scratch, RUN)
    clean_up = CleanUp(services, scratch)
    atexit.register(clean_up)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # so that the clean-up runs
    out(f"Eventhub under faults {RUN}: {', '.join(KINDS)}; {N} messages each; seed {SEED}; scratch {scratch}")
    tallies: list[Tally] = []
    try:
        services.start()
        fresh_database(services.postgres.url, DB_NAME)
        import django

        django.setup()
        from workflows.models import WorkflowDefinition

        WorkflowDefinition.from_conductor(FLOW).save()
        records, rng = Records(os.environ["DATABASE_URL"]), random.Random(SEED)
        for kind in KINDS:
            tallies.append(run_broker(kind, services, records, rng, scratch / "logs"))
        clean_up.clean = len(tallies) == len(KINDS) and not any(t.failed for t in tallies)
    finally:
        clean_up()
        report(tallies, started)
    if not clean_up.clean:
        sys.exit(1)


if __name__ == "__main__":
    main()
