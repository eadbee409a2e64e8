"""The condition sandbox, tried as an attacker would: nothing an evaluation does outlives its time limit,
reaches another message, or stays for a later evaluation; and the web process shares a few isolates."""

import threading
import time

import pytest

from handlers import conditions
from handlers.conditions import IsolatesBusy, evaluate, evaluate_batch

CARD = "4111111111111111"
PAYLOADS = [{"note": f"card={CARD}", "n": 1}, {"probe": True, "n": 2}]


@pytest.fixture(autouse=True)
def short_limit(settings):
    settings.CONDITION_TIME_LIMIT_SECONDS = 0.3


def js(*scripts: str, payloads=PAYLOADS) -> list[list[conditions.ConditionResult]]:
    return evaluate_batch([(script, "javascript") for script in scripts], payloads)


# 1. Queued work is held to the time limit -----------------------------------------------------------

QUEUED = {
    "a promise job": "Promise.resolve().then(function () { while (true) {} }); 1",
    "an await": "(async function () { await 0; while (true) {} })(); true",
    "a thenable": "Promise.resolve({then: function () { while (true) {} }}); true",
    "a rejection handler": "Promise.reject(1).catch(function () { while (true) {} }); true",
}


@pytest.mark.parametrize("script", QUEUED.values(), ids=QUEUED.keys())
def test_queued_work_that_overruns_fails_the_evaluation_and_the_next_one_goes_straight_on(script):
    result = evaluate(script, "javascript", {"n": 1})
    assert not result.matched
    assert result.error == "the condition exceeded its 0.3 s time limit"
    started = time.monotonic()
    assert evaluate("$.n == 2", "javascript", {"n": 2}).matched
    assert time.monotonic() - started < 2  # the spinning job was stopped, not waited for


def test_queued_work_that_finishes_in_time_leaves_the_result_as_it_was():
    assert evaluate("Promise.resolve().then(function () { return 1 }); $.n == 1", "javascript", {"n": 1}).matched


def test_no_api_that_queues_work_for_later_is_there():
    check = ("typeof setTimeout + typeof setInterval + typeof FinalizationRegistry + typeof WebAssembly"
             " + typeof Atomics.waitAsync + typeof queueMicrotask")
    assert evaluate(check, "javascript", {}).value == '"' + "undefined" * 6 + '"'


# 2. No state carries from one evaluation to the next --------------------------------------------

PINNED = {
    "a non-configurable global": "Object.defineProperty(globalThis, 'persist', {value: 1, configurable: false}), 1",
    "Reflect.defineProperty": "Reflect.defineProperty(globalThis, 'persist', {get: function () { return 1 }}), 1",
    "a non-extensible global object": "Object.preventExtensions(globalThis), 1",
    "a sealed global object": "Object.seal(globalThis), 1",
    "a frozen global object": "Object.freeze(globalThis), 1",
    "a new prototype of the global object": "Object.setPrototypeOf(globalThis, {persist: 1}), 1",
    "the global object's prototype": "Object.getPrototypeOf(globalThis).persist = 1",
    "a promise job after the evaluation": "Promise.resolve().then(function () { globalThis.persist = 1 }), 1",
}
UNTOUCHED = "typeof persist == 'undefined' && (function () { for (i = 0; i < 2; i++) {} return i == 2 })()"


@pytest.mark.parametrize("script", PINNED.values(), ids=PINNED.keys())
def test_an_evaluation_leaves_nothing_for_the_next_in_the_same_batch_or_a_later_one(script):
    # Conditions run in the order of their text, per payload: "Z" comes after any of the scripts above.
    check = "'Z', " + UNTOUCHED
    first, second = js(script, check, payloads=[{"n": 1}, {"n": 2}])
    assert [first[1].error, second[1].error] == [None, None]
    assert first[1].matched and second[1].matched
    assert evaluate(UNTOUCHED, "javascript", {}).matched  # the next batch too


def test_a_condition_assigning_an_implicit_global_keeps_sloppy_semantics():
    assert evaluate("total = $.a + 1; total == 3", "javascript", {"a": 2}).matched
    assert evaluate("typeof total == 'undefined'", "javascript", {}).matched


# 3. A condition sees its own message and nothing else -------------------------------------------

REACH = {
    "the caller's arguments": "$.probe ? JSON.stringify(arguments.callee.caller.arguments) : 0",
    "a nested function's caller": "$.probe ? (function f() { return JSON.stringify(f.caller.caller.arguments) })() : 0",
    "a statement's caller": "var x = 1; $.probe ? JSON.stringify(arguments.callee.caller.caller.arguments) : 0",
    "the last RegExp match": "/card=(\\d+)/.test($.note || '') ; $.probe ? String(RegExp.$1 || RegExp.lastMatch) : 0",
}


@pytest.mark.parametrize("script", REACH.values(), ids=REACH.keys())
def test_a_condition_reaches_no_other_message_nor_another_conditions_source(script):
    other = "$.note && $.note.indexOf('card=') == 0 && /card=(\\d+)/.exec($.note)[1].length > 0"
    _, (probe_other, probe) = js(other, script)
    assert CARD not in f"{probe.value} {probe.error}"
    assert "indexOf('card=')" not in f"{probe.value} {probe.error}"


def test_the_caller_a_condition_can_walk_to_is_null():
    assert evaluate("arguments.callee.caller === null", "javascript", {}).matched
    assert evaluate("var a = 1;\narguments.callee.caller === null", "javascript", {}).matched


# 4. Isolates are few per process, shared by every thread -------------------------------------------

def test_concurrent_evaluations_share_at_most_the_configured_isolates(settings, monkeypatch):
    settings.CONDITION_ISOLATES = 2
    made = []
    real_renew = conditions._Isolate.renew
    monkeypatch.setattr(conditions, "_pool", conditions._Pool())
    monkeypatch.setattr(conditions._Isolate, "renew", lambda self: (made.append(self), real_renew(self)))
    errors = []

    def evaluate_some() -> None:
        try:
            for n in range(5):
                assert evaluate("$.n >= 0", "javascript", {"n": n}).matched
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert 1 <= len(made) <= 2


def test_a_caller_that_would_wait_too_long_for_an_isolate_is_told_so(settings, monkeypatch):
    settings.CONDITION_ISOLATES = 1
    monkeypatch.setattr(conditions, "_pool", conditions._Pool())
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with conditions._pool.borrow():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(IsolatesBusy, match="all 1 condition isolates were busy for 0.05 s"):
            evaluate("1", "javascript", {}, wait=0.05)
    finally:
        release.set()
        holder.join()
    assert evaluate("1", "javascript", {}, wait=0.05).matched


@pytest.mark.django_db
def test_a_dry_run_that_finds_every_isolate_busy_answers_503(settings, monkeypatch, django_user_model):
    from ..conftest import make_user, token_client

    settings.CONDITION_ISOLATES, settings.CONDITION_ISOLATE_WAIT_SECONDS = 1, 0.05
    monkeypatch.setattr(conditions, "_pool", conditions._Pool())
    from .test_dispatch import handler

    viewer = token_client(make_user(django_user_model, "viewer", "view_eventhandler"))
    handler({"name": "orders", "event": "conductor:orders", "condition": "$.n > 1",
             "actions": [{"action": "start_workflow", "start_workflow": {"name": "wf"}}]})
    asked = {"name": "orders", "payload": {"n": 2}}
    with conditions._pool.borrow():  # another request holds the only isolate
        busy = viewer.post("/api/eventhub/handlers/dry-run", asked, format="json")
    assert busy.status_code == 503
    body = busy.json()
    assert (body["status"], body["retryable"]) == (503, True)
    assert "all 1 condition isolates were busy" in body["message"]
    free = viewer.post("/api/eventhub/handlers/dry-run", asked, format="json")
    assert (free.status_code, free.json()["matched"]) == (200, True)


@pytest.mark.django_db(transaction=True)
def test_dispatch_records_an_overrunning_promise_job_as_failed_and_goes_on():
    from handlers.dispatch import dispatch_batch
    from handlers.models import ActionExecution
    from queues.configs import ensure_config

    from .test_dispatch import handler, message

    handler({"name": "spin", "event": "conductor:spin", "condition": QUEUED["a promise job"], "active": True,
             "actions": [{"action": "start_workflow", "start_workflow": {"name": "wf"}}]})
    config = ensure_config("conductor:spin")
    [spun] = dispatch_batch(config, [message({"n": 1})])
    execution = ActionExecution.objects.get()
    assert (spun.action, execution.status, execution.index) == ("ack", "FAILED", -1)
    assert "exceeded its 0.3 s time limit" in execution.error
    started = time.monotonic()
    dispatch_batch(config, [message({"n": 2})])
    assert time.monotonic() - started < 2 and ActionExecution.objects.count() == 2
