"""Private PostgreSQL, RabbitMQ and NATS for `make chaos`, so that it may kill and restart them.

Each runs on a free port with its data under one scratch directory, and is stopped by its own process
id: the machine's own services on the standard ports are never touched (a RabbitMQ node of its own name
and configuration file beside the shared node, which shares only epmd). `PrivateServices.stop()` stops
whatever is still running; it is safe to call twice, and `make chaos` calls it from `finally` and atexit.
"""

import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.brokers import wait_for
from bench.run import free_port

log = logging.getLogger("bench")
PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), default=None)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended (its parent has not read its status yet)


def end(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Signal one process by its id and wait for it to end; SIGKILL it if it has not by `timeout`."""
    if not alive(pid):
        return
    os.kill(pid, sig)
    try:
        wait_for(lambda: not alive(pid), timeout, f"process {pid} to end", every=0.1)
    except TimeoutError:
        log.warning("process %s did not end on %s; killing it", pid, signal.Signals(sig).name)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 10, f"process {pid} to end", every=0.1)


class Postgres:
    """A PostgreSQL cluster of its own (initdb as the `postgres` user, which refuses nothing but root)."""

    name = "PostgreSQL"

    def __init__(self, root: Path):
        if PG_BIN is None:
            raise RuntimeError("no PostgreSQL under /usr/lib/postgresql/<version>/bin")
        self.dir = root / "pg"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}"

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        command = [str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"),
                   "-w", "-t", "60", *args]
        subprocess.run(["su", "postgres", "-c", shlex.join(command)], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        if not (self.dir / "data").exists():
            self.dir.mkdir()
            shutil.chown(self.dir, "postgres")
            subprocess.run(["su", "postgres", "-c", shlex.join([
                str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres"])],
                check=True, stdout=subprocess.DEVNULL)
        self._pg_ctl("start")

    def restart(self, mode: str) -> None:
        """`fast` (connections are ended, a clean shutdown) or `immediate` (a crash: recovery from the WAL)."""
        self._pg_ctl("restart", "-m", mode)

    @property
    def pid(self) -> int | None:
        pid_file = self.dir / "data" / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None

    def stop(self) -> None:
        end(self.pid, signal.SIGINT)  # fast shutdown


class Rabbit:
    """A second RabbitMQ node (`eventhub_chaos_<token>@localhost`) with its own port, data, log and config."""

    name = "RabbitMQ"

    def __init__(self, root: Path, token: str):
        self.dir = root / "rmq"
        self.port = free_port()
        self.node = f"eventhub_chaos_{token}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.env = {
            **os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()), "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "pid"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "plugins"),
            # Not the machine's files: /etc/rabbitmq/rabbitmq.conf puts the shared node's listener on 5672.
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "env.conf"),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "HOME": "/var/lib/rabbitmq",  # (its Erlang cookie, for rabbitmqctl)
        }
        self._pid: int | None = None

    def start(self) -> None:
        if not self.dir.exists():
            self.dir.mkdir()
            (self.dir / "plugins").write_text("[].\n")  # none: it boots in seconds
            (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
            (self.dir / "env.conf").write_text("")
            for path in (self.dir, *self.dir.iterdir()):
                shutil.chown(path, "rabbitmq")  # the server runs as that user
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, cwd="/tmp", check=True)  # noqa: S108
        wait_for(lambda: listening(self.port), 120, f"RabbitMQ on port {self.port}", every=0.2)
        self._pid = int((self.dir / "pid").read_text().split()[0])

    def kill(self) -> None:
        """A crash: SIGKILL to the Erlang VM."""
        end(self._pid, signal.SIGKILL)

    def stop_gracefully(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env, check=True, stdout=subprocess.DEVNULL)
        end(self._pid, signal.SIGTERM, timeout=60)  # (it has usually ended by now)

    def stop(self) -> None:
        end(self._pid, signal.SIGTERM)


class Nats:
    """nats-server with JetStream, its store under the scratch directory (kept across restarts)."""

    name = "NATS"

    def __init__(self, root: Path):
        self.dir = root / "nats"
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        with open(self.dir / "log", "a") as output:
            self.process = subprocess.Popen(
                ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.dir / "store")],
                stdout=output, stderr=output)
        wait_for(lambda: listening(self.port), 60, f"NATS on port {self.port}", every=0.1)

    def _end(self, sig: int) -> None:
        if self.process is not None:
            end(self.process.pid, sig)
            self.process.wait()

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def stop_gracefully(self) -> None:
        self._end(signal.SIGTERM)

    def stop(self) -> None:
        self._end(signal.SIGTERM)


class PrivateServices:
    """All three, under `root`; Eventhub (and this process) pointed at them through the environment."""

    def __init__(self, root: Path, token: str):
        self.root = root
        self.postgres = Postgres(root)
        self.rabbit = Rabbit(root, token)
        self.nats = Nats(root)

    def start(self) -> None:
        for service in (self.postgres, self.rabbit, self.nats):
            started = time.monotonic()
            service.start()
            log.info("%s started on port %s in %.1f s", service.name, service.port, time.monotonic() - started)
        os.environ.update({"AMQP_URL": self.rabbit.url, "NATS_URL": self.nats.url})

    def stop(self) -> None:
        for service in (self.nats, self.rabbit, self.postgres):
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others whatever happens to one
                log.error("could not stop %s: %s", service.name, exc)
