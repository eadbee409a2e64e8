"""SQL Django does not ship, the same answer on PostgreSQL and SQLite: a percentile, and time buckets.

`PercentileDisc(expression, fraction)` is the first value whose place in the sorted values reaches the
fraction (SQL's `percentile_disc`: an observed value, never an interpolated one). PostgreSQL has it
built in; SQLite has no percentile function in the builds Python ships, so `register_sqlite_functions`
adds one to each new SQLite connection (it holds a group's values in memory, as PostgreSQL's sort does).
"""

import math
from typing import Any

from django.db.models import Aggregate, BigIntegerField, FloatField, Func, Value


class PercentileDisc(Aggregate):
    """`PERCENTILE_DISC(fraction) WITHIN GROUP (ORDER BY expression)`; no `filter=` (filter the rows)."""

    name = "PercentileDisc"
    function = "EVENTHUB_PERCENTILE_DISC"  # SQLite's, registered below
    allow_distinct = False

    def __init__(self, expression: Any, fraction: float, **extra: Any):
        if not 0 < fraction <= 1:
            raise ValueError(f"a percentile's fraction is in (0, 1], not {fraction}")
        self.fraction = float(fraction)
        super().__init__(expression, Value(self.fraction, FloatField()), **extra)

    def _resolve_output_field(self):
        return self.get_source_expressions()[0].output_field  # a value of what is ordered, not the fraction

    def as_postgresql(self, compiler, connection, **extra_context):
        values, params = compiler.compile(self.get_source_expressions()[0])
        # The fraction is this class's own float, never user input: it goes in the SQL as a literal.
        return f"PERCENTILE_DISC({self.fraction!r}) WITHIN GROUP (ORDER BY {values})", params


class EpochBucket(Func):
    """Which bucket of `seconds` since 1970-01-01 UTC a time falls in: its epoch seconds // `seconds`.

    Cheaper than truncating (`Trunc` converts each row to the time zone first, which cost PostgreSQL more
    than reading the row from an index), and it makes buckets of any size, four hours as well as a minute.
    """

    output_field = BigIntegerField()

    def __init__(self, expression: Any, seconds: int, **extra: Any):
        self.seconds = int(seconds)
        super().__init__(expression, **extra)

    def as_postgresql(self, compiler, connection, **extra_context):
        moment, params = compiler.compile(self.get_source_expressions()[0])
        return f"FLOOR(EXTRACT(EPOCH FROM {moment}) / {self.seconds})::bigint", params

    def as_sqlite(self, compiler, connection, **extra_context):
        # Django stores SQLite datetimes as UTC text; strftime('%s') reads them as such.
        moment, params = compiler.compile(self.get_source_expressions()[0])
        return f"(CAST(strftime('%%s', {moment}) AS INTEGER) / {self.seconds})", params


def percentile_disc(values: list, fraction: float) -> Any:
    """The value at `fraction` of the sorted `values` (None when there are none), as PERCENTILE_DISC."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


class _SqlitePercentile:
    def __init__(self) -> None:
        self.values: list = []
        self.fraction = 0.5

    def step(self, value: Any, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(value)

    def finalize(self) -> Any:
        return percentile_disc(self.values, self.fraction)


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: SQLite connections get EVENTHUB_PERCENTILE_DISC(value, fraction)."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("EVENTHUB_PERCENTILE_DISC", 2, _SqlitePercentile)
