import json

import pytest

from handlers.conditions import compile_problem, evaluate, evaluate_batch
from handlers.payload import expand_inline_json

SIGNED = {"status": "signed", "amount": 12.5, "count": 0, "flag": "true", "items": [1, 2], "nested": {"a": None}}


@pytest.mark.parametrize(
    "condition,matched",
    [
        ("$.status == 'signed'", True),
        ("$.status === 'draft'", False),
        ("$.amount", True),  # a number above 0
        ("$.count", False),  # 0 is not above 0
        ("-1", False),
        ("$.flag", False),  # the string "true" is not true
        ("'yes'", False),
        ("$.items", False),  # an array is not true
        ("$.missing", False),  # undefined
        ("$.nested.a", False),  # null
        ("$.items.length > 1 && $.amount < 20", True),
        ("var total = $.items[0] + $.items[1];\ntotal == 3", True),  # a script: its last value counts
        ("function f(x) { return x * 2 }\nf($.amount) > 20", True),
    ],
)
def test_it_follows_conductors_truthiness(condition, matched):
    result = evaluate(condition, "javascript", SIGNED)
    assert result.error is None
    assert result.matched is matched


def test_graaljs_is_a_synonym_of_javascript():
    assert evaluate("$.status == 'signed'", "graaljs", SIGNED).matched is True


def test_an_empty_condition_always_matches():
    assert evaluate("", None, SIGNED).matched is True
    assert evaluate(None, "javascript", SIGNED).matched is True


@pytest.mark.parametrize("key,matched", [("amount", True), ("count", False), ("flag", False), ("absent", False)])
def test_value_param_takes_a_top_level_value_as_the_result(key, matched):
    assert evaluate(key, "value-param", SIGNED).matched is matched


@pytest.mark.parametrize(
    ("payload", "kind"), [([{"amount": 1}], "an array"), ("amount", "a string"), (5, "a number"), (None, "null")]
)
def test_value_param_on_a_payload_that_is_not_an_object_is_an_evaluation_error(payload, kind):
    result = evaluate("amount", "value-param", payload)
    assert result.failed and not result.matched
    assert result.error == f"value-param needs a JSON object as payload, not {kind}"


def test_it_records_what_the_condition_returned():
    assert evaluate("$.amount * 2", None, SIGNED).value == "25"
    assert evaluate("$.status", None, SIGNED).value == '"signed"'
    assert evaluate("$.missing", None, SIGNED).value == "undefined"


def test_an_error_fails_only_that_condition():
    [[broken, fine]] = evaluate_batch([("$.nested.a.b.c", None), ("$.amount > 1", None)], [SIGNED])
    assert broken.failed and not broken.matched
    assert "TypeError" in broken.error
    assert fine.matched and not fine.failed


def test_it_evaluates_every_condition_against_every_payload():
    rows = evaluate_batch([("$.n > 1", None), ("n", "value-param"), ("", None)], [{"n": 0}, {"n": 2}, {"n": 5}])
    assert [[r.matched for r in row] for row in rows] == [[False, False, True], [True, True, True], [True, True, True]]


def test_a_condition_that_never_ends_fails_within_its_time_limit(settings):
    settings.CONDITION_TIME_LIMIT_SECONDS = 0.2
    rows = evaluate_batch([("while (true) {}", None), ("$.n == 1", None)], [{"n": 1}, {"n": 2}, {"n": 1}])
    loops = [row[0] for row in rows]
    assert [r.failed for r in loops] == [True, True, False] and not any(r.matched for r in loops)
    assert "time limit" in loops[0].error
    # The third message is spared the wait, and not decided without its condition: it is to come again.
    assert "not evaluated" in loops[2].deferred
    assert [row[1].matched for row in rows] == [True, False, True]
    assert evaluate("$.n == 1", None, {"n": 1}).matched is True  # the isolate still works


def test_a_condition_that_allocates_without_bound_fails_and_the_isolate_recovers(settings):
    settings.CONDITION_MEMORY_LIMIT_BYTES = 32 * 1024 * 1024
    settings.CONDITION_TIME_LIMIT_SECONDS = 10
    hog = "var a = []; while (true) { a.push(new Array(100000).fill($.n)) }"
    [[result, other]] = evaluate_batch([(hog, None), ("$.n == 1", None)], [{"n": 1}])
    assert result.failed and "memory limit" in result.error
    assert other.matched is True
    assert evaluate("$.n == 1", None, {"n": 1}).matched is True


def test_the_sandbox_has_no_io():
    for probe in ("typeof require", "typeof process", "typeof fetch", "typeof XMLHttpRequest"):
        assert evaluate(probe, None, {}).value == '"undefined"'


def test_a_condition_cannot_break_the_evaluation_of_others():
    evaluate("JSON.parse = function () { return {n: 99} }; __eventhub = null; true", None, {"n": 1})
    assert evaluate("$.n == 1", None, {"n": 1}).matched is True


@pytest.mark.parametrize("meddler", [
    "!($.status = 'signed')",  # the message itself
    "(Map.prototype.get = function () { return function () { return true } }, false)",  # the runtime's Map
    "(Object.prototype.status = 'signed', false)",  # every object's prototype
    "(Array.prototype.push = function () {}, false)",
    "(JSON.stringify = function () { return '[[[true, true, \"x\"]]]' }, false)",
    "(status = 'signed', false)",  # a global
    "(Object.getPrototypeOf([][Symbol.iterator]()).next = () => ({done: true}), false)",  # an intrinsic
    "(Object.getPrototypeOf(''[Symbol.iterator]()).next = () => ({done: true}), false)",
])
def test_a_condition_cannot_change_what_other_conditions_see(meddler):
    # (In a batch, each message meets every condition: the second message comes after the meddling.)
    rows = evaluate_batch([(meddler, None), ("$.status == 'signed'", None), ("typeof status", None)],
                          [{"status": "draft"}, {"status": "draft"}])
    rows += evaluate_batch([("$.status == 'signed'", None), ("typeof status", None)], [{"status": "draft"}])
    assert [row[-2].value for row in rows] == ["false"] * 3  # the next batch too
    assert [row[-1].value for row in rows] == ['"undefined"'] * 3
    assert not rows[0][0].matched
    assert evaluate("$.status == 'signed'", None, {"status": "signed"}).matched is True


@pytest.mark.parametrize("condition", [
    "$.items.sort()[0] == 1",  # the payload is the condition's own copy: it may change it
    "$.items.reverse()[0] == 2",
    "const l = $.items; l.push(4); l.length == 4",
    "total = 0; for (i = 0; i < $.items.length; i++) total += $.items[i]; total == 6",  # implicit globals
    "[...$.items].length == 3 && Array.from('abc').length == 3 && new Map([[1, 2]]).get(1) == 2",
])
def test_ordinary_conditions_still_work_and_leave_nothing_behind(condition):
    [[result, other]] = evaluate_batch([(condition, None), ("typeof total + typeof i + $.items.join()", None)],
                                       [{"items": [3, 1, 2]}])
    assert (result.matched, result.error) == (True, None)
    assert other.value == '"undefinedundefined3,1,2"'  # neither its globals nor its sorting reached this one


def test_a_condition_keeps_no_state_from_one_message_to_the_next():
    counter = "(arguments.callee.n = (arguments.callee.n || 0) + 1)"
    rows = evaluate_batch([(counter, None), ("this.seen = (this.seen || 0) + 1", None)], [{}, {}, {}])
    assert [row[0].value for row in rows] == ["1", "1", "1"]
    assert [row[1].value for row in rows] == ["1", "1", "1"]


def test_conditions_may_be_statements_or_a_function_body():
    assert evaluate("var total = $.a + $.b; total > 2", None, {"a": 1, "b": 2}).matched is True
    assert evaluate("return $.a > 0", None, {"a": 1}).matched is True
    assert evaluate("return $.a > 0", None, {"a": 0}).value == "false"
    assert compile_problem("return $.a > 0", None) is None
    assert "SyntaxError" in evaluate("JSON.parse($.s); true", None, {"s": "{"}).error  # not a `return`


def test_inline_json_is_expanded_without_changing_the_original():
    payload = {"data": '{"id": 7, "tags": [1, 2]}', "note": "{not json}", "list": ['["a"]']}
    expanded = expand_inline_json(payload)
    assert expanded == {"data": {"id": 7, "tags": [1, 2]}, "note": "{not json}", "list": [["a"]]}
    assert payload["data"] == '{"id": 7, "tags": [1, 2]}'


def test_inline_json_is_expanded_once_and_what_it_yields_is_not_expanded_again():
    inner = json.dumps({"id": 7})
    payload = {"data": json.dumps({"inner": inner, "list": [inner]}), "nested": {"data": json.dumps([inner])}}
    assert expand_inline_json(payload) == {"data": {"inner": inner, "list": [inner]}, "nested": {"data": [inner]}}
