"""`python -m eventhub.processes start`: honcho (`make run` starts the Procfile with it), with a stop that
says how it went.

honcho runs each Procfile line in a session of its own. On SIGTERM or SIGINT (Ctrl-C) it sends SIGTERM to
each one's process group, and SIGKILL to those left some seconds after the first has exited. As shipped
it allows 5 s and then exits 143 or 130 whatever its processes did. Here it allows GRACE_SECONDS, the
time Eventhub's processes promise to stop in (they take a few), and exits 0 when every process exited 0;
otherwise with honcho's own status (that of the first process to exit, or 143/130 after a signal). The
Procfile's lines `exec` their program, so that honcho sees the program's status and not its shell's.

The arguments are honcho's (`start`, `-f Procfile`, process names, ...).
"""

import honcho.command
import honcho.manager

GRACE_SECONDS = 10


class Manager(honcho.manager.Manager):
    def loop(self) -> None:
        super().loop()
        if all(process.get("returncode") == 0 for process in self._processes.values()):
            self.returncode = 0


def main() -> None:
    # honcho reads both names from its modules when it needs them: patched here, before it starts.
    honcho.manager.KILL_WAIT = GRACE_SECONDS
    honcho.command.Manager = Manager
    honcho.command.main()


if __name__ == "__main__":
    main()
