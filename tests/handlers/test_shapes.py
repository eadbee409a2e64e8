"""Observed shapes (`handlers.shapes`) kept by the listener from real messages, and the lint of handlers
against them (`handlers.lint`)."""

import difflib
import json
import threading
import time

import pytest
from django.db import OperationalError

from handlers import shapes
from handlers.lint import HEADER_MAX, UNSEEN, LintWarning, condition_paths, header_value, lint, lint_each
from handlers.listener import Listener
from handlers.models import EventHandler, EventShape
from handlers.tasks import purge_old_records
from queues.publish import publish

from .test_dispatch import handler, message
from .test_handler_limits import poisoned

pytestmark = pytest.mark.django_db

SIGNED = {"workflowInstanceId": "wf-1", "status": "signed", "signer": {"email": "a@example.com"},
          "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}], "first name": "Ada"}


def complete(template: str = "${workflowInstanceId}", condition: str | None = "$.status == 'signed'",
             event: str = "conductor:docusign", **output) -> dict:
    return {"name": "complete_docusign", "event": event, "active": True, "condition": condition,
            "actions": [{"action": "complete_task", "complete_task": {
                "workflowId": template, "taskRefName": "sign_ref", "output": output}}]}


def unseen(item) -> list[str]:
    return [w.expression for w in lint(item).warnings if w.kind == UNSEEN]


def test_it_warns_about_a_misspelled_path_after_real_messages_and_not_about_correct_ones(consumed):
    event = consumed(SIGNED)
    item = handler(complete("${workflowInstnceId}", event=event, email="${signer.email}", sku="${items[0].sku}",
                            skus="${items[*].sku}", name="${$['first name']}"))
    [warning] = lint(item).warnings
    assert (warning.where, warning.expression) == ("actions[0].complete_task.workflowId", "${workflowInstnceId}")
    assert "workflowInstnceId" in warning.message and "did you mean workflowInstanceId?" in warning.message
    correct = handler(complete(event=event, email="${signer.email}"), name="correct")
    assert lint(correct).warnings == [] and lint(correct).note == ""


def test_it_warns_about_condition_paths_never_seen_and_not_about_javascripts_own_properties(consumed):
    event = consumed(SIGNED)
    item = handler(complete(event=event, condition="$.statsu == 'signed' && $['signer'].emial && "
                                                   "$.items.length > 1 && $.status.toLowerCase() == 'signed' && "
                                                   "$.items[0].qty > 1 && '$.quoted' != ''"))
    assert unseen(item) == ["$.statsu", "$['signer'].emial"]


def test_a_value_param_condition_is_linted_by_its_key(consumed):
    event = consumed(SIGNED)
    assert unseen(handler(complete(event=event, condition="statsu"), evaluatorType="value-param")) == ["statsu"]
    assert unseen(handler(complete(event=event, condition="status"), name="ok", evaluatorType="value-param")) == []


def test_nothing_is_warned_before_any_message_was_sampled():
    report = lint(handler(complete("${nothing.here}")))
    assert report.warnings == [] and "no message on conductor:docusign has been sampled yet" in report.note


def test_a_path_under_a_free_form_object_counts_as_seen(consumed, settings):
    settings.SHAPES_MAX_KEYS = 5
    event = consumed({"id": 1, "attributes": {f"key{n}": n for n in range(10)}})
    assert "attributes.*" in EventShape.objects.get(event=event).paths
    assert unseen(handler(complete("${attributes.whatever.below}", None, event, other="${idd}"))) == ["${idd}"]


def test_paths_seen_on_any_sampled_message_count_and_shapes_merge(consumed):
    event = consumed({"workflowInstanceId": "wf-1"})
    consumed({"workflowInstanceId": "wf-2", "extra": {"reason": "late"}})
    assert set(EventShape.objects.get(event=event).paths) == {"workflowInstanceId", "extra", "extra.reason"}
    assert unseen(handler(complete(condition=None, event=event, why="${extra.reason}", no="${extra.reasons}"))) == [
        "${extra.reasons}"]


def test_the_shape_is_bounded_and_says_when_it_is_full(consumed, settings):
    settings.SHAPES_MAX_PATHS = 3
    event = consumed({f"field{n}": n for n in range(10)})
    shape = EventShape.objects.get(event=event)
    assert len(shape.paths) == 3 and shape.full
    report = lint(handler(complete("${nowhere}", None, event)))
    assert report.warnings == [] and "SHAPES_MAX_PATHS" in report.note


def test_depth_and_array_items_are_bounded(settings):
    settings.SHAPES_MAX_DEPTH, settings.SHAPES_ARRAY_ITEMS = 2, 1
    paths, full = shapes.paths_of({"a": {"b": {"c": 1}}, "list": [{"x": 1}, {"y": 2}]})
    assert paths == {"a", "a.b", "a.b.*", "list", "list[*]", "list[*].*"} and not full


def test_the_listener_samples_at_most_one_message_per_event_per_interval(make_config, settings):
    settings.SHAPES_SAMPLE_SECONDS, settings.SHAPES_WRITE_SECONDS = 3600, 0
    config = make_config("conductor")
    listener = Listener([config.event], relay=False)
    publish(config.event, {"first": 1})
    listener.run_once(wait=0)
    publish(config.event, {"second": 2})
    listener.run_once(wait=0)
    listener.close()
    shape = EventShape.objects.get(event=config.event)
    assert (set(shape.paths), shape.sampled) == ({"first"}, 1)


def test_what_was_seen_is_written_at_most_every_write_interval():
    sampler = shapes.Sampler()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.conf.settings.SHAPES_SAMPLE_SECONDS", 0)
        patch.setattr("django.conf.settings.SHAPES_WRITE_SECONDS", 3600)
        sampler.observe("conductor:x", [message({"a": 1})])
        sampler.observe("conductor:x", [message({"b": 1})])  # seen, not written yet
    assert set(EventShape.objects.get(event="conductor:x").paths) == {"a"}


def test_stale_paths_are_dropped_and_a_stale_event_loses_its_shape(settings):
    old = int(time.time()) - 8 * 86400
    EventShape.objects.create(event="conductor:x", paths={"gone": old, "kept": int(time.time())})
    assert set(shapes.write("conductor:x", {"new": int(time.time())}, 1)) == {"kept", "new"}
    EventShape.objects.filter(event="conductor:x").update(updated_at="2000-01-01T00:00:00Z")
    purge_old_records()
    assert not EventShape.objects.exists()


def test_a_sampling_defect_does_not_stop_the_batch(consumed, monkeypatch):
    monkeypatch.setattr(shapes, "paths_of", lambda payload: 1 / 0)
    event = consumed(SIGNED)
    assert not EventShape.objects.filter(event=event).exists()


@pytest.mark.parametrize(("path", "normalised"), [
    ("a.b", "a.b"), ("$.a[0].c", "a[*].c"), ("$['x y'].z", "['x y'].z"), ("items[*].sku", "items[*].sku"),
    ("$..id", "..id"), ("items[?(@.qty > 1)].sku", "items[*].sku"), ("a[1:3]", "a[*]"), ("my-ref.out", "my-ref.out"),
])
def test_template_paths_normalise_their_indexes(path, normalised):
    assert shapes.render(shapes.parse(path)) == normalised


@pytest.mark.parametrize("path", ["a['b','c']", "length()", "a[(@.length-1)]"])
def test_paths_that_cannot_be_told_without_running_them_are_not_checked(path):
    assert shapes.parse(path) is None


def test_javascript_paths_stop_before_a_method_and_skip_string_literals():
    found = condition_paths("$.a.b.trim() == '$.not.me' && $?.c?.['d'] && $.e[0].f", None)
    assert [(text, steps) for text, steps, _ in found] == [
        ("$.a.b.trim", ["a", "b"]), ("$?.c?.['d']", ["c", "d"]), ("$.e[0].f", ["e", 0, "f"])]


def test_the_header_value_is_one_line_of_ascii_json_and_bounded(consumed):
    event = consumed(SIGNED)
    item = handler(complete("${wörkflowId}", event=event, **{f"f{n}": "${missing" + "x" * 300 + f"{n}}}"
                                                               for n in range(30)}))
    value = header_value(lint(item).warnings)
    assert value.isascii() and "\n" not in value and len(value) <= HEADER_MAX
    assert value.endswith('more: see a dry-run"]') and "\\u00f6" in value


def test_the_header_value_encodes_only_the_messages_it_can_show(monkeypatch):
    # (re-encoding the whole list for each message left out took 4 s for 2,000 warnings)
    encoded = []
    real_dumps = json.dumps
    monkeypatch.setattr("handlers.lint.json.dumps",
                        lambda value, **kw: encoded.append(value) or real_dumps(value, **kw))
    warnings = [LintWarning(UNSEEN, f"actions[0].x.k{n}", "${x}", "m" * 490) for n in range(5000)]
    value = header_value(warnings)
    assert json.loads(value)[-1] == "... and 4998 more: see a dry-run" and len(value) <= HEADER_MAX
    assert len(encoded) <= 10, len(encoded)


def test_paths_seen_again_are_rewritten_only_once_their_last_seen_time_is_due(settings):
    settings.SHAPES_SAMPLE_SECONDS, settings.SHAPES_WRITE_SECONDS, settings.SHAPES_REFRESH_SECONDS = 0, 0, 3600
    sampler = shapes.Sampler()
    sampler.observe("conductor:x", [message({"a": 1})])
    sampler.observe("conductor:x", [message({"a": 2})])  # nothing new, nothing due: not written
    assert EventShape.objects.get(event="conductor:x").sampled == 1
    settings.SHAPES_REFRESH_SECONDS = 0
    sampler.observe("conductor:x", [message({"a": 3})])
    assert EventShape.objects.get(event="conductor:x").sampled == 3  # (the count since the last write)


def test_a_handler_saved_before_the_template_limits_is_linted_without_failing(consumed):
    event = consumed({"who": "Ada"})
    assert lint(poisoned("poisoned", event)).warnings == []


# Names escaped as JavaScript and JSONPath write them --------------------------------------------


@pytest.mark.parametrize(("condition", "name"), [
    (r"""$["it\'s"]""", "it's"), (r"""$['\x41b']""", "Ab"), (r"""$["a\0"]""", "a\0"), (r"""$['\v']""", "\v"),
    (r"""$["\u{1F600}"]""", "\U0001F600"), (r"""$['\uD83D\uDE00']""", "\U0001F600"), (r"""$["\u00e9"]""", "é"),
    (r"""$['\101']""", "A"), (r"""$["\q"]""", "q"),
])
def test_javascript_names_are_read_with_javascripts_escapes(condition, name):
    [(text, steps, _)] = condition_paths(condition + " == 1", None)
    assert (text, steps) == (condition, [name])


def test_a_javascript_name_javascript_would_refuse_is_not_checked():
    assert condition_paths(r"""$["\u{110000}"] == 1 && $.a == 1""", None) == [("$.a", ["a"], True)]


def test_a_name_escaped_as_only_javascript_does_is_linted_in_a_condition_and_not_checked_in_a_template(consumed):
    event = consumed(SIGNED | {"it's": 1})
    item = handler(complete(r"""${signer["it\'s"]}""", event=event,
                            condition=r"""$["it\'s"] == 1 && $["it\'z"] == 1"""))
    assert unseen(item) == [r"""$["it\'z"]"""]
    assert shapes.parse(r"""signer["it\'s"]""") is None  # (python-jsonpath cannot read it: null, whatever came)
    assert shapes.parse(r"""signer['it\'s']""") == ["signer", "it's"]


@pytest.mark.parametrize(("path", "steps"), [
    ("$..['id']", [shapes.DEEP, "id"]), ("$..[0]", [shapes.DEEP, 0]), ("$..[*].sku", [shapes.DEEP, shapes.ITEM, "sku"]),
    ("$..id", [shapes.DEEP, "id"]), ('..["first name"]', [shapes.DEEP, "first name"]),
])
def test_a_deep_scan_into_a_quoted_name_or_an_index_is_checked(path, steps):
    assert shapes.parse(path) == steps


def test_a_deep_scan_into_a_quoted_name_is_linted(consumed):
    event = consumed(SIGNED)
    assert unseen(handler(complete("${$..['sku']}", None, event, other="${$..['skuu']}"))) == ["${$..['skuu']}"]


# Bounded ----------------------------------------------------------------------------------------


def test_the_samplers_pending_paths_stay_bounded_while_its_writes_fail(settings, monkeypatch):
    settings.SHAPES_SAMPLE_SECONDS, settings.SHAPES_WRITE_SECONDS, settings.SHAPES_MAX_PATHS = 0, 0, 10

    def failing(*args, **kwargs):
        raise OperationalError("no such table: handlers_eventshape")  # e.g. a listener deployed before migrate

    seconds = iter(range(int(time.time()), int(time.time()) + 10_000))
    monkeypatch.setattr(time, "time", lambda: next(seconds))  # (a second between two messages)
    with monkeypatch.context() as patch:
        patch.setattr(shapes, "write", failing)
        sampler = shapes.Sampler()
        for n in range(200):  # ids as keys, in objects of fewer than SHAPES_MAX_KEYS keys: new paths each time
            sampler.observe("conductor:ids", [message({"orders": {f"order-{n}": {"total": n}}})])
            assert len(sampler._events["conductor:ids"].pending) <= settings.SHAPES_MAX_PATHS
    sampler.observe("conductor:ids", [message({"orders": {"order-200": {"total": 200}}})])
    shape = EventShape.objects.get(event="conductor:ids")
    assert shape.full and len(shape.paths) == 10  # (paths were left out: nothing is warned about)
    assert {"orders.order-199", "orders.order-200.total"} <= set(shape.paths)


def test_a_write_waiting_for_the_database_holds_up_no_other_events_consumer(settings, monkeypatch):
    settings.SHAPES_SAMPLE_SECONDS, settings.SHAPES_WRITE_SECONDS = 0, 0
    waiting, release, written = threading.Event(), threading.Event(), []

    def slow_for_orders(event, seen, sampled, overflow=False):
        if event == "conductor:orders":  # (a write that waits for a lock on the database, say)
            waiting.set()
            assert release.wait(20)
        written.append(event)
        return dict(seen)

    monkeypatch.setattr(shapes, "write", slow_for_orders)
    sampler = shapes.Sampler()
    orders = threading.Thread(target=sampler.observe, args=("conductor:orders", [message({"order": 1})]))
    orders.start()
    try:
        assert waiting.wait(20)
        sampler.observe("conductor:payments", [message({"payment": 1})])  # (returns while the other write waits)
        assert written == ["conductor:payments"]
    finally:
        release.set()
        orders.join(20)
    assert written == ["conductor:payments", "conductor:orders"]


# "Did you mean" ---------------------------------------------------------------------------------


@pytest.fixture
def compared(monkeypatch):
    """The candidates each difflib.get_close_matches of the lint was given."""
    calls: list[int] = []
    original = difflib.get_close_matches

    def counting(word, possibilities, *args, **kwargs):
        calls.append(len(possibilities))
        return original(word, possibilities, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    return calls


WIDE = {f"field_{n:03d}": {"inner_value": n, "other_value": str(n), "third": n, "fourth": n} for n in range(90)}


def test_a_misspelled_name_is_compared_with_its_siblings_only(consumed, compared):
    event = consumed(WIDE | {"customer": {"address": {"city": "Oslo"}}})
    item = handler(complete("${field_007.innr_value}", None, event, city="${customer.adress.city}",
                            top="${feild_007.inner_value}"))
    messages = [w.message for w in lint(item).warnings]
    assert [m.rsplit("; ", 1)[-1] for m in messages] == [
        "did you mean field_007.inner_value?", "did you mean customer.address.city?",
        "did you mean field_007.inner_value?"]
    assert len(compared) <= 2 * 3 and max(compared) <= 91  # (the 91 top-level names at most; never the 453 paths)


def test_suggestions_are_looked_for_at_most_ten_times_per_handler(consumed, compared):
    event = consumed(WIDE)
    item = handler(complete("${field_000.third}", None, event, **{f"o{n}": f"${{field_{n % 90:03d}.innr_value_{n}}}"
                                                                  for n in range(450)}))
    warnings = lint(item).warnings
    assert len(warnings) == 450 and sum("did you mean" in w.message for w in warnings) == 10
    assert len(compared) <= 2 * 10 and max(compared) <= 4  # (the names beside each, then the closest's paths)


def test_a_page_of_handlers_looks_for_fifty_suggestions_at_most(consumed, compared):
    event = consumed(WIDE)
    for h in range(100):  # names that all look alike (the costliest to compare), all of them different
        output = {f"o{n}": f"${{feild_{(h * 10 + n) % 90:03d}.inner_value_{h}}}" for n in range(10)}
        handler(complete("${field_001.third}", None, event, **output), name=f"h{h:03d}")
    reports = lint_each(list(EventHandler.objects.all()))
    assert sum(len(report.warnings) for report in reports) == 1000 and len(compared) <= 2 * 50
