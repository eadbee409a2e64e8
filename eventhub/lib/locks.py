"""Locks on names for the length of a transaction: two processes about to act on one thing take turns.

On PostgreSQL these are advisory locks (`pg_advisory_xact_lock`), released when the transaction ends,
taken in one order (the keys sorted) so that two holders of overlapping sets cannot deadlock. A name maps
to a 64-bit key by a stable hash: two names sharing a key only wait for each other, never more. SQLite
needs none: its write transactions start IMMEDIATE, so a second writer waits for the first to end.
"""

import hashlib
from collections.abc import Iterable

from django.db import connections


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name`, the same in every process (unlike `hash()`)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big",
                          signed=True)


def lock_statement(names: Iterable[str], using: str = "default", shared: Iterable[str] = ()) -> tuple[str, list] | None:
    """The statement (SQL, parameters) that locks `names` until the transaction ends; None where no lock is
    needed (SQLite) or nothing is named. Run it before reading what the lock protects: under READ COMMITTED
    each later statement then sees what the previous holder committed. The `shared` names are locked first,
    in shared mode: holders of a shared lock do not wait for one another, only for (and block) an exclusive
    holder of the same name (`lock`)."""
    keys = sorted({lock_key(name) for name in names})
    shared_keys = sorted({lock_key(name) for name in shared})
    if not (keys or shared_keys) or connections[using].vendor != "postgresql":
        return None
    # unnest() hands the keys over in the arrays' order, so they are locked in that order: shared ones first.
    return ("SELECT CASE WHEN shared THEN pg_advisory_xact_lock_shared(key) ELSE pg_advisory_xact_lock(key) END "
            "FROM unnest(%s::bigint[], %s::boolean[]) AS locks(key, shared)",
            [shared_keys + keys, [True] * len(shared_keys) + [False] * len(keys)])


def lock(names: Iterable[str], using: str = "default") -> None:
    """Lock `names` exclusively until the transaction ends (inside transaction.atomic), waiting for every
    holder of one of them, shared or not."""
    statement = lock_statement(names, using)
    if statement is not None:
        with connections[using].cursor() as cursor:
            cursor.execute(*statement)
