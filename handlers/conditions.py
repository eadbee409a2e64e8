"""Handler conditions: `javascript` (V8 through mini-racer; `graaljs` is a synonym) and `value-param`.

JavaScript runs in an embedded V8 isolate with nothing but the language: no file, network or process
access exists there, and nothing that queues work for later but promise jobs. Each evaluation has a time
limit that covers its promise jobs too (a call's results count only once they have finished), and the
isolate a memory limit; a condition that loops or allocates without bound fails that evaluation only,
and the isolate is renewed after running out of memory or time (closing it stops a job still running).
An evaluation sees its own payload only, and leaves nothing for the next: see `_RUNTIME`. A process has
at most CONDITION_ISOLATES isolates, shared by its threads (`_Pool`), so concurrent web requests cannot
multiply the memory limit.

Conductor's truthiness decides a match: a boolean true or a number above 0. Anything else (the string
"true" included) is false.

Calls into V8 cost far more than evaluating a typical condition, so a batch of messages is evaluated
against a batch of conditions in one call; per-item errors are caught inside JavaScript. Only when the
whole call hits its time or memory limit are the items evaluated one by one to find the culprit.
"""

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from py_mini_racer import JSEvalException, JSOOMException, JSTimeoutException, MiniRacer

logger = logging.getLogger(__name__)

JAVASCRIPT = "javascript"
VALUE_PARAM = "value-param"
EVALUATOR_TYPES = {JAVASCRIPT: JAVASCRIPT, "graaljs": JAVASCRIPT, VALUE_PARAM: VALUE_PARAM}
COMPILE_TIMEOUT_SECONDS = 1.0
# After this many items of one batch time out on the same condition, the rest of the batch is not
# evaluated against it: a condition that loops would otherwise cost its time limit on every message.
# Those messages are returned for redelivery (`ConditionResult.deferred`), to be evaluated another time.
MAX_TIMEOUTS_PER_CONDITION = 2

# The runtime inside the isolate. What it uses is captured before any condition runs. Then the built-in
# objects and their prototypes (those reached only through an instance too, such as the iterators') are
# frozen, and the global object's existing names made read-only: no condition can change what another
# sees (`Map.prototype.get`, `Object.prototype.x`, `JSON`). Globals a condition creates (`i = 0` in a
# loop) are deleted after its call, and each condition gets its own copy of the payload, which it may
# change (`$.items.sort()`) without the next one seeing it. A condition's own function is frozen: no
# state carries from one message to the next. (Frozen prototypes mean that assigning over an inherited
# property, `o.toString = f`, is ignored, as in any frozen JavaScript realm.)
_RUNTIME = r"""
(function () {
  'use strict';  // (the runtime's own functions: a condition cannot walk to them through `.caller`)
  var parse = JSON.parse, stringify = JSON.stringify, freeze = Object.freeze, isFrozen = Object.isFrozen,
      ownKeys = Reflect.ownKeys, getPrototypeOf = Object.getPrototypeOf, describeKey = Object.getOwnPropertyDescriptor,
      defineProperty = Object.defineProperty, apply = Reflect.apply, mapHas = Map.prototype.has,
      mapGet = Map.prototype.get, mapSet = Map.prototype.set, toText = String, fns = new Map(), global = globalThis,
      isExtensible = Object.isExtensible, deleteKey = Reflect.deleteProperty, globalProto = getPrototypeOf(global);
  // Work a condition could leave queued to run after its evaluation, outside its time limit: timers,
  // finalization callbacks, asynchronous waits and compiles. (Promise jobs cannot be removed with the
  // syntax that makes them; the caller waits for them to finish within the time limit instead.) And the
  // legacy RegExp statics, which would show the next condition the last match of the one before.
  var queuers = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'FinalizationRegistry',
                 'WebAssembly'];
  for (var q = 0; q < queuers.length; q++) {
    // (mini-racer's timers cannot be deleted, only overwritten: they are writable but not configurable)
    if (!deleteKey(global, queuers[q])) defineProperty(global, queuers[q], {value: undefined, writable: false});
  }
  deleteKey(Atomics, 'waitAsync');
  var statics = ['input', '$_', 'lastMatch', '$&', 'lastParen', '$+', 'leftContext', '$`', 'rightContext', "$'",
                 '$1', '$2', '$3', '$4', '$5', '$6', '$7', '$8', '$9'];
  for (var r = 0; r < statics.length; r++) deleteKey(RegExp, statics[r]);
  function deepFreeze(v) {
    if (v !== null && v !== global && (typeof v === 'object' || typeof v === 'function') && !isFrozen(v)) {
      freeze(v);
      var keys = ownKeys(v);
      for (var k = 0; k < keys.length; k++) {
        var d = describeKey(v, keys[k]);
        if (d && 'value' in d) deepFreeze(d.value);
        if (d && d.get) deepFreeze(d.get);
        if (d && d.set) deepFreeze(d.set);
      }
      deepFreeze(getPrototypeOf(v));
    }
    return v;
  }
  // An expression; else statements, whose last value counts; else a function body that returns its
  // value (`return $.a > 0`), which only the first call of the statements form can tell.
  function compile(src) {
    if (apply(mapHas, fns, [src])) return;
    var fn;
    try { fn = new Function('$', 'return (' + src + '\n);'); }
    catch (e) { fn = statements(src); }
    apply(mapSet, fns, [src, freeze(fn)]);
  }
  function statements(src) {
    var asScript = new Function('$', 'return eval(' + stringify(src) + ');'), asBody = null;
    return function ($) {
      if (asBody) return asBody($);
      try { return asScript($); }
      catch (e) {
        if (!(e instanceof SyntaxError && e.message === 'Illegal return statement')) throw e;
        asBody = new Function('$', src);
        return asBody($);
      }
    };
  }
  function describe(v) {
    if (v === undefined) return 'undefined';
    try { var s = stringify(v); return s === undefined ? toText(v) : s; } catch (e) { return toText(v); }
  }
  var baseline = {}, baselineCount = 0;
  // Globals an evaluation created are deleted after it; false when it left state that cannot be undone
  // here (a global it made non-configurable, a global object it made non-extensible, or a prototype it
  // gave the global object): the caller then replaces the whole isolate before the next evaluation.
  function clean() {
    var keys = ownKeys(global), clear = true;
    if (keys.length !== baselineCount) {
      for (var k = 0; k < keys.length; k++) {
        if (!(typeof keys[k] === 'string' && baseline[keys[k]] === true)) clear = deleteKey(global, keys[k]) && clear;
      }
    }
    return clear && isExtensible(global) && getPrototypeOf(global) === globalProto;
  }
  // Rows of [ok, truthy, text], one per condition, for each payload from payload `fromPayload`'s condition
  // `fromCondition` on; `spoiled` says the last evaluation left state behind and the rest was not evaluated.
  function run(conditionsJson, payloadsJson, fromPayload, fromCondition) {
    var conditions = parse(conditionsJson), payloads = parse(payloadsJson), out = [];
    if (!clean()) return stringify({rows: out, spoiled: true});  // (promise jobs of an earlier call)
    for (var i = fromPayload; i < payloads.length; i++) {
      var row = [];
      out[out.length] = row;
      for (var j = i === fromPayload ? fromCondition : 0; j < conditions.length; j++) {
        try {
          compile(conditions[j]);
          var v = apply(mapGet, fns, [conditions[j]])(parse(payloads[i]));
          var truthy = typeof v === 'boolean' ? v : (typeof v === 'number' ? v > 0 : false);
          row[row.length] = [true, truthy, describe(v)];
        } catch (e) {
          row[row.length] = [false, false, toText(e)];
        }
        if (!clean()) return stringify({rows: out, spoiled: true});
      }
    }
    return stringify({rows: out, spoiled: false});
  }
  defineProperty(global, '__eventhub', {value: freeze({run: run})});
  var hidden = [[][Symbol.iterator](), ''[Symbol.iterator](), new Map()[Symbol.iterator](),
                new Set()[Symbol.iterator](), /a/[Symbol.matchAll](''), function* () {}, async function () {},
                async function* () {}, (function* () {})(), (async function* () {})()];
  for (var h = 0; h < hidden.length; h++) deepFreeze(hidden[h]);
  deepFreeze(globalProto);  // (names found through it are globals too)
  var names = ownKeys(global);
  for (var n = 0; n < names.length; n++) {
    var d = describeKey(global, names[n]);
    if (d && 'value' in d) {
      if (d.value !== global) deepFreeze(d.value);  // (`globalThis` itself stays open to new names)
      if (d.configurable || d.writable) defineProperty(global, names[n], {writable: false, configurable: false});
    }
    if (typeof names[n] === 'string') baseline[names[n]] = true;
  }
  baselineCount = names.length;
})();
"""


@dataclass(frozen=True)
class ConditionResult:
    matched: bool
    value: str = ""  # what the condition returned, as text, for the audit record
    error: str | None = None
    # Not evaluated this time (why): the message must come again rather than be decided without it.
    deferred: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


ALWAYS = ConditionResult(matched=True, value="no condition")


def evaluator_of(evaluator_type: str | None) -> str | None:
    """The canonical evaluator for a handler's `evaluatorType` (absent means javascript), or None if unknown."""
    if evaluator_type in (None, ""):
        return JAVASCRIPT
    return EVALUATOR_TYPES.get(evaluator_type)


def is_truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, int | float) and value > 0


class IsolatesBusy(Exception):  # noqa: N818 - a state, not a defect
    """Every isolate of the process was in use for longer than the caller would wait."""


# Contexts are made one at a time. A listener whose two threads made their first contexts at about the same
# moment aborted once in the benchmark, inside V8 ("Check failed: !IsConfigurablePoolInitialized()"); that
# could not be reproduced on its own, and no run has aborted since contexts are made under this lock.
_CREATING = threading.Lock()


class _Isolate:
    """One V8 context with the runtime loaded. Renewed (the old one closed, which also stops anything
    still running in it) after it ran out of memory, overran its time limit, or kept an evaluation's state."""

    def __init__(self) -> None:
        self.context = self.run = None
        self.memory_limit = 0
        self.renew()

    def renew(self) -> None:
        if self.context is not None:
            self.context.close()
        with _CREATING:
            self.context = MiniRacer()
        self.context.eval(_RUNTIME)
        self.run = self.context.eval("__eventhub.run")
        self.memory_limit = 0


class _Pool:
    """At most `size` isolates per process, each used by one thread at a time (a V8 context is not safe to
    share), so that concurrent evaluations (web requests, consumer threads) cannot multiply the memory
    limit. An idle isolate is reused."""

    def __init__(self) -> None:
        self._idle: list[_Isolate] = []
        self._lock = threading.Lock()
        self._size = 0
        self._slots = threading.BoundedSemaphore(1)

    def _resize(self, size: int) -> None:
        with self._lock:
            if size != self._size:  # (a changed setting: tests, or a reload)
                self._size, self._slots = size, threading.BoundedSemaphore(size)

    @contextmanager
    def borrow(self, wait: float | None = None) -> Iterator[_Isolate]:
        """An isolate for this thread alone; `wait` seconds at most for one to be free (None: as long as it
        takes), else IsolatesBusy."""
        self._resize(settings.CONDITION_ISOLATES)
        slots = self._slots
        if not slots.acquire(timeout=wait):
            raise IsolatesBusy(f"all {self._size} condition isolates were busy for {wait:g} s")
        try:
            with self._lock:
                isolate = self._idle.pop() if self._idle else None
            isolate = isolate or _Isolate()
            try:
                yield isolate
            finally:
                with self._lock:
                    self._idle.append(isolate)
        finally:
            slots.release()


_pool = _Pool()


def compile_problem(condition: str, evaluator_type: str | None) -> str | None:
    """Why `condition` cannot be evaluated, or None when it compiles. Nothing is executed."""
    evaluator = evaluator_of(evaluator_type)
    if evaluator == VALUE_PARAM:
        return None if condition.strip() else "must name a top-level key of the payload"
    # `new Function` parses the source as a function body without running it.
    source = f"new Function('$', {json.dumps(condition)}); true"
    try:
        with _pool.borrow() as isolate:
            isolate.context.eval(source, timeout_sec=COMPILE_TIMEOUT_SECONDS)
    except JSEvalException as exc:
        lines = str(exc).strip().splitlines()
        detail = next((line for line in lines if "Error" in line), lines[0] if lines else "")
        return f"does not compile as JavaScript: {detail.strip()}"
    return None


def _limits() -> tuple[float, int]:
    return settings.CONDITION_TIME_LIMIT_SECONDS, settings.CONDITION_MEMORY_LIMIT_BYTES


def _call(isolate: _Isolate, conditions: list[str], payloads: list[Any]) -> list[list[ConditionResult]]:
    """Every condition against every payload, in as few calls as it takes: a call stops after an evaluation
    that left state behind, and the rest goes on in the renewed isolate."""
    rows: list[list[ConditionResult]] = [[] for _ in payloads]
    cursor = 0  # the first payload not evaluated against every condition yet
    while cursor < len(payloads):
        done, spoiled = _run(isolate, conditions, payloads, cursor, len(rows[cursor]))
        for offset, row in enumerate(done):
            rows[cursor + offset].extend(row)
        while cursor < len(payloads) and len(rows[cursor]) == len(conditions):
            cursor += 1
        if spoiled:
            isolate.renew()
    return rows


def _run(isolate: _Isolate, conditions: list[str], payloads: list[Any], from_payload: int,
         from_condition: int) -> tuple[list[list[ConditionResult]], bool]:
    seconds, memory = _limits()
    if isolate.memory_limit != memory:
        isolate.context.set_hard_memory_limit(memory)
        isolate.memory_limit = memory
    try:
        # Each payload as its own text: every condition parses a copy of its own.
        raw = isolate.run(json.dumps(conditions), json.dumps([json.dumps(p) for p in payloads]), from_payload,
                          from_condition, timeout_sec=seconds)
        # Promise jobs the evaluations queued run once the call has returned: the results count only once
        # they have finished, within the time limit too.
        isolate.context.eval("0", timeout_sec=seconds)
    except JSTimeoutException:
        raise
    except JSEvalException as exc:
        # Errors of the conditions are caught inside the runtime; what escapes it is the isolate
        # being stopped, which mini-racer reports in more than one way when memory runs out.
        raise JSOOMException(str(exc)) from exc
    result = json.loads(raw)
    rows = [[ConditionResult(matched=ok and truthy, value=text if ok else "", error=None if ok else text)
             for ok, truthy, text in row] for row in result["rows"]]
    return rows, result["spoiled"]
def _one_by_one(isolate: _Isolate, conditions: list[str], payloads: list[Any]) -> list[list[ConditionResult]]:
    seconds, memory = _limits()
    timeouts = [0] * len(conditions)
    rows = []
    for payload in payloads:
        row = []
        for index, condition in enumerate(conditions):
            if timeouts[index] >= MAX_TIMEOUTS_PER_CONDITION:
                why = f"the condition was not evaluated: it exceeded its {seconds:g} s time limit on earlier messages"
                row.append(ConditionResult(False, deferred=why + " of this batch"))
                continue
            try:
                row.append(_call(isolate, [condition], [payload])[0][0])
            except JSTimeoutException:
                timeouts[index] += 1
                isolate.renew()  # (what overran may still be running in it)
                row.append(ConditionResult(False, error=f"the condition exceeded its {seconds:g} s time limit"))
            except JSOOMException:
                isolate.renew()
                row.append(ConditionResult(False, error=f"the condition exceeded its {memory // 2**20} MiB "
                                                        "memory limit"))
        rows.append(row)
    return rows


def evaluate_javascript(conditions: list[str], payloads: list[Any],
                        wait: float | None = None) -> list[list[ConditionResult]]:
    """Results indexed [payload][condition]. Payloads must already have inline JSON expanded. `wait`: how
    long to wait for a free isolate (None: as long as it takes), else IsolatesBusy."""
    if not conditions or not payloads:
        return [[] for _ in payloads]
    with _pool.borrow(wait) as isolate:
        try:
            return _call(isolate, conditions, payloads)
        except JSTimeoutException:
            logger.warning("A batch of conditions hit its time limit; evaluating one by one")
        except JSOOMException:
            logger.warning("A batch of conditions hit its memory limit; evaluating one by one")
        isolate.renew()
        return _one_by_one(isolate, conditions, payloads)


def evaluate_value_param(key: str, payload: Any) -> ConditionResult:
    """The payload's top-level `key` as the result. A payload that is not a JSON object has no keys: an
    evaluation error (Conductor's ValueParamEvaluator throws), not false."""
    if not isinstance(payload, dict):
        return ConditionResult(False, error=f"value-param needs a JSON object as payload, not {_json_type(payload)}")
    value = payload.get(key)
    return ConditionResult(matched=is_truthy(value), value=json.dumps(value, default=str))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = {list: "an array", str: "a string", int: "a number", float: "a number"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), type(value).__name__)


def evaluate(condition: str | None, evaluator_type: str | None, payload: Any,
             wait: float | None = None) -> ConditionResult:
    """One condition against one payload (a dry run, a replay); dispatch evaluates whole batches."""
    return evaluate_batch([(condition, evaluator_type)], [payload], wait)[0][0]


def evaluate_batch(conditions: list[tuple[str | None, str | None]], payloads: list[Any],
                   wait: float | None = None) -> list[list[ConditionResult]]:
    """Every (condition, evaluatorType) against every payload: results indexed [payload][condition]. `wait`:
    see `evaluate_javascript`."""
    scripts = sorted({c for c, kind in conditions if c and c.strip() and evaluator_of(kind) == JAVASCRIPT})
    column = {script: index for index, script in enumerate(scripts)}
    script_results = evaluate_javascript(scripts, payloads, wait)
    rows = []
    for payload, script_row in zip(payloads, script_results, strict=True):
        row = []
        for condition, kind in conditions:
            evaluator = evaluator_of(kind)
            if not condition or not condition.strip():
                row.append(ALWAYS)
            elif evaluator == VALUE_PARAM:
                row.append(evaluate_value_param(condition.strip(), payload))
            elif evaluator is None:
                row.append(ConditionResult(False, error=f"unknown evaluatorType {kind!r}"))
            else:
                row.append(script_row[column[condition]])
        rows.append(row)
    return rows
