"""Making and inserting many new rows at once, for the listener's hot path.

`build` makes a new, unsaved instance as the model's constructor does, at a fraction of the cost: a
batch of messages makes four instances per message, and Django's constructor (every field's default
looked up and called, every related object set through its descriptor) was the largest cost of
dispatch after the database itself.

On PostgreSQL every group of rows travels as one JSON document that `json_populate_recordset` turns back
into rows, and all the groups go in one round trip. Django's `bulk_create` sends each column as an array
for UNNEST instead, and psycopg builds those array literals in Python, element by element, which cost
more than the rest of a message's dispatch; COPY was fast for large batches but needs two round trips
per table, which small batches (low latency) felt most. Ids of auto-increment keys come from a pool
filled from the table's sequence a block at a time, so the objects have their primary keys afterwards,
as with `bulk_create`. Elsewhere (SQLite) this is `bulk_create`.

Values are read straight off the objects for the plain field types below; any other field type goes
through its own `get_db_prep_save`, so a model gaining such a field stays correct, only slower.

Django internals this relies on (none is documented API, so a Django upgrade may change any of them):

- `build`: `Model.__init__` does nothing more than set `_state = ModelState()` (imported from
  `django.db.models.base`), set each concrete field's attribute and send `pre_init`/`post_init`;
  `ModelState`'s class defaults `db = None` and `adding = True`; `_state.fields_cache`, a dict made on
  first use and keyed by the relation's name (`field.cache_name`), is where the related descriptor
  looks for the object, and setting one (`__set__`) also gives both ends a `_state.db` from
  `router.db_for_write`; `_meta.concrete_fields`, `Field.has_default`/`default`/`get_default`.
- `insert_many` (PostgreSQL): a foreign key's object assigned before it was saved is read back with
  `is_cached`/`get_cached_value` (FieldCacheMixin), as `save()` does; `Field.pre_save(obj, add=True)`,
  `get_db_prep_save`, `JSONField.encoder`, `connection.ops.quote_name`; after the insert, `_state.adding`
  and `_state.db` set as `save()` sets them; auto keys in identity columns whose sequence
  `pg_get_serial_sequence` finds; several statements with parameters in one `execute`, which works with
  psycopg's client-side binding (Django's backend uses it unless `OPTIONS["server_side_binding"]`).
- `fetch_together` (PostgreSQL): `QuerySet._prefetch_related_lookups`, `query.select_related`;
  `query.get_compiler(using).as_sql()` giving parameters in placeholder order and leaving on the compiler
  `klass_info` (`"model"`, `"select_fields"`), `select` (`column[0].target.attname`) and `col_count`;
  a compiler that runs again with other parameters; `compiler.results_iter(results=[rows])` applying the
  fields' converters; `Model.from_db`; `cursor.nextset()` reaching psycopg through Django's cursor wrapper.

How a broken upgrade shows: tests/lib/test_bulk.py compares what these functions make with what Django
makes itself (`model(**values)`, `save()`, `list(queryset)`), so a change fails them rather than this
module silently storing or reading something else. `build` and the compiler's half of `fetch_together`
(`test_build_*`, `test_a_compiled_shape_reads_rows_through_the_compilers_internals`,
`test_a_foreign_key_assigned_before_its_object_was_saved_is_read_off_the_cache`) run on every database;
the rest only meets the internals on PostgreSQL, so upgrade Django with `make test`, which runs both.
"""

import datetime
import decimal
import inspect
import json
import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

# Field types whose attribute value goes into the rows' JSON as it is (see `_as_json` for the rest).
PLAIN_FIELDS = (
    models.CharField, models.TextField, models.IntegerField, models.BooleanField, models.DateTimeField,
    models.UUIDField, models.AutoField, models.BigAutoField,
)


def build(model: type[models.Model], **values: Any) -> models.Model:
    """`model(**values)` for the hot path: the same new instance, its defaults and related objects set.

    Callable defaults run once per instance as usual, except that every `timezone.now` default of one
    instance gets the same moment. A model with `pre_init`/`post_init` receivers goes through its
    constructor, so they still run."""
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(**values)
    constants, calls, relations, attnames = _blueprint(model)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    attrs = instance.__dict__
    attrs.update(constants)
    now = None
    for attname, default in calls:
        if attname not in values:
            if default is timezone.now:
                attrs[attname] = now = now or timezone.now()
            else:
                attrs[attname] = default()
    for name, value in values.items():
        if name in relations:  # a related object: its key, and the object cached as the descriptor does
            attname, target = relations[name]
            state.fields_cache[name] = value
            if value is None:
                attrs[attname] = None
                continue
            attrs[attname] = getattr(value, target)
            # Both ends learn their database, as the related descriptor tells them.
            if state.db is None:
                state.db = router.db_for_write(model, instance=value)
            if value._state.db is None:
                value._state.db = router.db_for_write(type(value), instance=instance)
        elif name in attnames:
            attrs[name] = value
        else:
            raise TypeError(f"{model.__qualname__}() got an unexpected keyword argument '{name}'")
    return instance


@cache
def _blueprint(model: type[models.Model]) -> tuple[dict, list, dict, frozenset]:
    """Per model, once: defaults that are values, defaults that are called, related fields by name
    (their key's attribute and the target's), and the attributes a keyword may set directly."""
    constants, calls, relations = {}, [], {}
    for field in model._meta.concrete_fields:
        if field.has_default() and callable(field.default):
            # (a related field's default may be an object: its own get_default turns that into a key)
            calls.append((field.attname, field.get_default if field.is_relation else field.default))
        else:
            constants[field.attname] = field.get_default()
        if field.is_relation:
            relations[field.name] = (field.attname, field.target_field.attname)
    return constants, calls, relations, frozenset(constants) | {attname for attname, _ in calls}


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
        plain_columns, read_plain, others, statement, auto_pk = _plan(model, alias)
        if auto_pk:
            _IDS.assign(connection, model, [obj for obj in group if obj.pk is None])
        statements.append(statement)
        rows = []
        for obj in group:
            row = dict(zip(plain_columns, read_plain(obj), strict=False))  # (without the trailing pk)
            for column, get in others:
                row[column] = get(obj)
            rows.append(row)
        params.append(_encode(rows))
    with connection.cursor() as cursor:
        cursor.execute("; ".join(statements), params)
    for group in groups:
        for obj in group:
            obj._state.adding = False
            obj._state.db = alias


@dataclass(frozen=True)
class Query:
    """A queryset of `model` to be made as `make(**values)`, for `fetch_together`, which on PostgreSQL
    compiles each shape once (the same names, list lengths and non-text values) and afterwards only binds
    the text values, without making the queryset again: Django compiling a batch's reads cost about
    0.6 ms of CPU per batch. `make` must be a plain module-level function of its arguments alone (nothing
    else it reads is looked at again once a shape is compiled); anything else is compiled every time."""

    model: type[models.Model]
    make: Callable[..., models.QuerySet]
    values: dict[str, Any]

    def queryset(self) -> models.QuerySet:
        return self.make(**self.values)


def _plain(query: models.QuerySet | Query) -> models.QuerySet:
    queryset = query.queryset() if isinstance(query, Query) else query
    if queryset.query.select_related or queryset._prefetch_related_lookups:
        raise ValueError("fetch_together reads plain querysets only")
    return queryset


def fetch_together(*queries: models.QuerySet | Query,
                   before: tuple[str, list] | None = None) -> list[list[models.Model]]:
    """Evaluate plain querysets (model instances; no select_related, no prefetch), on PostgreSQL in one
    round trip; a batch reads its handlers, their revisions and earlier executions this way. `before`, a
    statement (SQL, parameters) whose result is not read, runs first in the same round trip (locks)."""
    first = queries[0]
    alias = router.db_for_read(first.model) if isinstance(first, Query) else first.db  # (what QuerySet.db says)
    connection = connections[alias]
    if connection.vendor != "postgresql":
        if before is not None:
            with connection.cursor() as cursor:
                cursor.execute(*before)
        return [list(queryset) for queryset in [_plain(query) for query in queries]]
    compilers, statements, params = [], [before[0]] if before else [], list(before[1]) if before else []
    for query in queries:
        compiled = _compiled(query, alias) if isinstance(query, Query) else None
        if compiled is None:
            try:
                compiler = _plain(query).query.get_compiler(using=alias)
                sql, sql_params = compiler.as_sql()
            except EmptyResultSet:  # e.g. an empty __in: nothing to ask
                compiled = _NOTHING
            else:
                compiled = (compiler, sql, sql_params)
        if compiled is _NOTHING:
            compilers.append(None)
            continue
        compiler, sql, sql_params = compiled
        compilers.append(compiler)
        statements.append(sql)
        params.extend(sql_params)
    results: list[list[models.Model]] = []
    with connection.cursor() as cursor:
        if statements:
            cursor.execute("; ".join(statements), params)
        first = before is None  # (the statement run before has a result of its own, passed over)
        for compiler in compilers:
            if compiler is None:
                results.append([])
                continue
            if not first:
                cursor.nextset()
            first = False
            results.append(_instances(compiler, cursor.fetchall(), alias))
    return results


_NOTHING = object()  # a query that asks nothing (an empty __in)
_SHAPES: dict[tuple, Any] = {}  # (make, alias, shape) -> (compiler, sql, [(name, index, constant)]), or ...
_UNBINDABLE = object()  # ... a shape whose values do not reach the parameters as they are
# Stand-ins for text values: a lookup that changes case, spaces or accents changes them visibly.
_STAND_IN = "\x00 Stand-in é "


def _compiled(query: Query, alias: str) -> tuple | object | None:
    """The query's compiler, SQL and parameters, from the compiled shape; None: compile it as it is."""
    if not inspect.isfunction(query.make) or query.make.__closure__:
        return None
    key = (query.make, alias, tuple(
        (name, len(value)) if isinstance(value, list) and all(isinstance(v, str) for v in value)
        else (name, None) if isinstance(value, str) else (name, type(value), value)  # (1 == True == 1.0)
        for name, value in sorted(query.values.items())
    ))
    try:
        shape = _SHAPES.get(key)
    except TypeError:  # a value that cannot be part of the key: compiled every time
        return None
    if shape is None:
        shape = _SHAPES[key] = _compile_shape(query, alias)
        if len(_SHAPES) > 1000:  # (shapes are few: the batch sizes of a few queues' reads)
            _SHAPES.clear()
    if shape is _UNBINDABLE:
        return None
    if shape is _NOTHING:
        return _NOTHING
    compiler, sql, template = shape
    params = [value if name is None else query.values[name] if index is None else query.values[name][index]
              for name, index, value in template]
    return compiler, sql, params


def _compile_shape(query: Query, alias: str):
    """Compile the query with stand-ins for its text values and note where each lands in the parameters."""
    stand_ins, values = {}, {}
    for name, value in query.values.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[name] = [f"{_STAND_IN}{name} {i}\x00" for i in range(len(value))]
            stand_ins.update((stand_in, (name, i)) for i, stand_in in enumerate(values[name]))
        elif isinstance(value, str):
            values[name] = f"{_STAND_IN}{name}\x00"
            stand_ins[values[name]] = (name, None)
        else:
            values[name] = value
    try:
        compiler = _plain(query.make(**values)).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
    except EmptyResultSet:
        return _NOTHING
    except Exception:  # noqa: BLE001 - a stand-in a field refuses (a number, a date): compiled every time
        return _UNBINDABLE
    template = []
    for param in params:
        if isinstance(param, str) and param in stand_ins:
            name, index = stand_ins.pop(param)
            template.append((name, index, None))
        else:
            template.append((None, None, param))
    if stand_ins or "\x00" in sql or any(isinstance(p, str) and "\x00" in p for _, _, p in template):
        return _UNBINDABLE  # a value was changed on its way (e.g. __contains) or written into the SQL
    return compiler, sql, template


def _instances(compiler, rows: list[tuple], alias: str) -> list[models.Model]:
    """Rows to model instances, as Django's ModelIterable makes them (field converters applied)."""
    info = compiler.klass_info
    model, columns = info["model"], info["select_fields"]
    start, end = columns[0], columns[-1] + 1
    names = [column[0].target.attname for column in compiler.select[start:end]]
    return [model.from_db(alias, names, row[start:end]) for row in compiler.results_iter(results=[rows])]


@cache
def _plan(model: type[models.Model], alias: str) -> tuple[list[str], Callable, list[tuple[str, Callable]], str, bool]:
    """Per model, once: its plain columns and one call reading all of them off an object, the other
    columns with how to read each, the INSERT (the rows travel as one JSON document per table, which
    PostgreSQL turns back into rows), and whether ids come from a sequence."""
    connection = connections[alias]
    fields = model._meta.concrete_fields
    plain = [field for field in fields if _getter(field, connection) is None]
    others = [(field.column, _getter(field, connection)) for field in fields if field not in plain]
    # ("pk" last, which zip leaves out, so that even one plain field reads as a tuple)
    read_all = operator.attrgetter(*[field.attname for field in plain], "pk")
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    statement = f"INSERT INTO {table} ({names}) SELECT {names} FROM json_populate_recordset(NULL::{table}, %s)"  # noqa: S608
    auto_pk = any(isinstance(field, models.AutoField | models.BigAutoField) for field in fields)
    return [field.column for field in plain], read_all, others, statement, auto_pk


def _getter(field: models.Field, connection) -> Callable[[models.Model], Any] | None:
    """How to read the field's column value off an object; None: its attribute as it is."""
    attname = field.attname
    if isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add):
        return lambda obj: field.pre_save(obj, add=True)  # sets the attribute, like save() does
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        if encoder is None:
            return None  # nested in the rows' JSON as it is

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
        return None
    return lambda obj: field.get_db_prep_save(field.pre_save(obj, add=True), connection)


class _IdPool:
    """Primary keys taken from each table's sequence a block at a time, so that a batch's inserts need
    no round trip of their own for them. Unused ids of a stopped process are gaps, as after a rollback.

    A block belongs to the connection that took it, and goes with it: `nextval` is durable only once a
    later commit flushes the write-ahead log, so after PostgreSQL crashes the sequence may hand out again
    ids a block still holds. A new connection (every one is new after a crash) starts a new block. Django
    gives each thread its own connection, so no two threads share a block either."""

    BLOCK = 200

    def assign(self, connection, model: type[models.Model], objects: list[models.Model]) -> None:
        if not objects:
            return
        table = model._meta.db_table
        owner, blocks = getattr(connection, "_eventhub_ids", (None, {}))
        if owner is not connection.connection:  # (a new connection: what an old block holds may come again)
            blocks = {}
            connection._eventhub_ids = (connection.connection, blocks)
        free = blocks.setdefault(table, [])
        if len(free) < len(objects):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                    [table, model._meta.pk.column, max(self.BLOCK, len(objects) - len(free))],
                )
                free.extend(pk for (pk,) in cursor.fetchall())
        taken, blocks[table] = free[: len(objects)], free[len(objects) :]
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
