"""Inserting many new rows at once, for the listener's hot path.

On PostgreSQL every group of rows travels as one JSON document that `json_populate_recordset` turns back
into rows, and all the groups go in one round trip. Django's `bulk_create` sends each column as an array
for UNNEST instead, and psycopg builds those array literals in Python, element by element, which cost
more than the rest of a message's dispatch; COPY was fast for large batches but needs two round trips
per table, which small batches (low latency) felt most. Ids of auto-increment keys come from a pool
filled from the table's sequence a block at a time, so the objects have their primary keys afterwards,
as with `bulk_create`. Elsewhere (SQLite) this is `bulk_create`.

Values are read straight off the objects for the plain field types below; any other field type goes
through its own `get_db_prep_save`, so a model gaining such a field stays correct, only slower.
"""

import datetime
import decimal
import json
import operator
import threading
import uuid
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction

# Field types whose attribute value goes into the rows' JSON as it is (see `_as_json` for the rest).
PLAIN_FIELDS = (
    models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.DateTimeField,
    models.UUIDField, models.AutoField, models.BigAutoField,
)


def insert_many(*groups: Sequence[models.Model]) -> None:
    """Insert each group of new, unsaved objects (one model per group), in order; afterwards they are
    saved instances with primary keys. On PostgreSQL all groups go in one round trip."""
    groups = tuple(group for group in groups if group)
    if not groups:
        return
    alias = router.db_for_write(type(groups[0][0]))
    connection = connections[alias]
    if connection.vendor != "postgresql":
        with transaction.atomic(using=alias):  # all or nothing, as the one statement is on PostgreSQL
            for group in groups:
                type(group[0]).objects.using(alias).bulk_create(group)
        return
    statements, params = [], []
    for group in groups:
        model = type(group[0])
        columns, getters, statement, auto_pk = _plan(model, alias)
        if auto_pk:
            _IDS.assign(connection, model, [obj for obj in group if obj.pk is None])
        statements.append(statement)
        rows = [dict(zip(columns, [get(obj) for get in getters], strict=True)) for obj in group]
        params.append(_encode(rows))
    with connection.cursor() as cursor:
        cursor.execute("; ".join(statements), params)
    for group in groups:
        for obj in group:
            obj._state.adding = False
            obj._state.db = alias


def fetch_together(*querysets: models.QuerySet) -> list[list[models.Model]]:
    """Evaluate plain querysets (model instances; no select_related, no prefetch), on PostgreSQL in one
    round trip; a batch reads its handlers, their revisions and earlier executions this way."""
    if any(queryset.query.select_related or queryset._prefetch_related_lookups for queryset in querysets):
        raise ValueError("fetch_together reads plain querysets only")
    alias = querysets[0].db
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return [list(queryset) for queryset in querysets]
    compilers, statements, params = [], [], []
    for queryset in querysets:
        compiler = queryset.query.get_compiler(using=alias)
        try:
            sql, sql_params = compiler.as_sql()
        except EmptyResultSet:  # e.g. an empty __in: nothing to ask
            compilers.append(None)
            continue
        compilers.append(compiler)
        statements.append(sql)
        params.extend(sql_params)
    results: list[list[models.Model]] = []
    with connection.cursor() as cursor:
        if statements:
            cursor.execute("; ".join(statements), params)
        first = True
        for compiler in compilers:
            if compiler is None:
                results.append([])
                continue
            if not first:
                cursor.nextset()
            first = False
            results.append(_instances(compiler, cursor.fetchall(), alias))
    return results


def _instances(compiler, rows: list[tuple], alias: str) -> list[models.Model]:
    """Rows to model instances, as Django's ModelIterable makes them (field converters applied)."""
    info = compiler.klass_info
    model, columns = info["model"], info["select_fields"]
    start, end = columns[0], columns[-1] + 1
    names = [column[0].target.attname for column in compiler.select[start:end]]
    return [model.from_db(alias, names, row[start:end]) for row in compiler.results_iter(results=[rows])]


@cache
def _plan(model: type[models.Model], alias: str) -> tuple[list[str], list[Callable[[models.Model], Any]], str, bool]:
    """Per model, once: its columns, how to read each off an object, the INSERT (the rows travel as one
    JSON document per table, which PostgreSQL turns back into rows), and whether ids come from a sequence."""
    connection = connections[alias]
    fields = model._meta.concrete_fields
    columns = [field.column for field in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in columns)
    statement = f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, %s)"  # noqa: S608
    auto_pk = any(isinstance(field, models.AutoField | models.BigAutoField) for field in fields)
    return columns, [_getter(field, connection) for field in fields], statement, auto_pk


def _getter(field: models.Field, connection) -> Callable[[models.Model], Any]:
    attname = field.attname
    if isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add):
        return lambda obj: field.pre_save(obj, add=True)  # sets the attribute, like save() does
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        if encoder is None:
            return operator.attrgetter(attname)  # nested in the rows' JSON as it is

        def encoded(obj: models.Model) -> Any:
            value = getattr(obj, attname)
            return None if value is None else json.loads(json.dumps(value, cls=encoder))

        return encoded
    if isinstance(field, models.ForeignKey):
        def related(obj: models.Model) -> Any:
            # An object assigned before it was saved leaves the id empty; save() would take it now.
            value = getattr(obj, attname)
            if value is None and field.is_cached(obj) and (target := field.get_cached_value(obj)) is not None:
                value = target.pk
                setattr(obj, attname, value)
            return value

        return related
    if isinstance(field, PLAIN_FIELDS):
        return operator.attrgetter(attname)
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, add=True), connection)


class _IdPool:
    """Primary keys taken from each table's sequence a block at a time, so that a batch's inserts need
    no round trip of their own for them. Unused ids of a stopped process are gaps, as after a rollback."""

    BLOCK = 200

    def __init__(self):
        self.free: dict[str, list[int]] = {}
        self.lock = threading.Lock()

    def assign(self, connection, model: type[models.Model], objects: list[models.Model]) -> None:
        if not objects:
            return
        table = model._meta.db_table
        with self.lock:
            free = self.free.setdefault(table, [])
            if len(free) < len(objects):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                        [table, model._meta.pk.column, max(self.BLOCK, len(objects) - len(free))],
                    )
                    free.extend(pk for (pk,) in cursor.fetchall())
            taken, self.free[table] = free[: len(objects)], free[len(objects) :]
        for obj, pk in zip(objects, taken, strict=True):
            obj.pk = pk


_IDS = _IdPool()


def _encode(rows: list[dict]) -> str:
    try:
        return orjson.dumps(rows, default=_as_json, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # what orjson refuses and json takes (integers beyond 64 bits)
        return json.dumps(rows, default=_as_json)


def _as_json(value: Any) -> Any:
    """What the JSON encoders leave to us, as PostgreSQL reads it back from text."""
    if isinstance(value, datetime.date | datetime.time):  # (orjson writes these itself)
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot insert a {type(value).__name__} through JSON: {value!r}")
