import copy
import os

import pytest

from workflows.params import substitute

PAYLOAD = {
    "workflowInstanceId": "wf-1",
    "count": 3,
    "ratio": 0.5,
    "flag": True,
    "nothing": None,
    "signer": {"email": "a@example.com", "name": "Ann"},
    "items": [{"sku": "A1"}, {"sku": "B2"}],
    "map": {"k1": ["x", "y"], "k2": ["z"]},
    "key": "k1",
    "index": 1,
    "odd key": "spaced",
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${count}", 3),
        ("${ratio}", 0.5),
        ("${flag}", True),
        ("${nothing}", None),
        ("${signer}", {"email": "a@example.com", "name": "Ann"}),
        ("${items}", [{"sku": "A1"}, {"sku": "B2"}]),
        ("${workflowInstanceId}", "wf-1"),
    ],
)
def test_it_keeps_the_type_of_a_whole_string_placeholder(template, expected):
    assert substitute(template, PAYLOAD) == expected


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${signer.email}", "a@example.com"),
        ("${$.signer.email}", "a@example.com"),
        ("${items[0].sku}", "A1"),
        ("${$.items[1].sku}", "B2"),
        ("${items[-1].sku}", "B2"),
        ("${$['odd key']}", "spaced"),
        ("${map[\"k2\"][0]}", "z"),
    ],
)
def test_it_reads_jsonpath_from_the_root(template, expected):
    assert substitute(template, PAYLOAD) == expected


def test_it_answers_the_whole_payload_for_the_root():
    assert substitute("${$}", PAYLOAD) == PAYLOAD


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n=${count}", "n=3"),
        ("ratio ${ratio}!", "ratio 0.5!"),
        ("flag:${flag}", "flag:true"),
        ("is ${nothing}", "is null"),
        ("who: ${signer}", "who: {email=a@example.com, name=Ann}"),
        ("list ${map.k2}", "list [z]"),
        ("${signer.name} <${signer.email}>", "Ann <a@example.com>"),
        ("${missing.path} here", "null here"),
    ],
)
def test_it_turns_values_inside_a_longer_string_into_text(template, expected):
    assert substitute(template, PAYLOAD) == expected


def test_it_resolves_a_missing_path_to_null():
    assert substitute("${no.such[3].thing}", PAYLOAD) is None
    assert substitute("${items[9]}", PAYLOAD) is None
    assert substitute("${count.deeper}", PAYLOAD) is None


def test_it_makes_an_empty_placeholder_the_empty_string():
    assert substitute("${}", PAYLOAD) == ""
    assert substitute("a${}b", PAYLOAD) == "ab"
    assert substitute("${ }", PAYLOAD) == "" and substitute("x${  }y", PAYLOAD) == "xy"  # not the whole payload
    assert substitute("${${blank}}", {**PAYLOAD, "blank": " "}) == ""


def test_it_keeps_an_escaped_placeholder_literal():
    assert substitute("$${count}", PAYLOAD) == "${count}"
    assert substitute("cost: $${count} and ${count}", PAYLOAD) == "cost: ${count} and 3"


def test_it_resolves_nested_placeholders_inner_first():
    assert substitute("${map.${key}[${index}]}", PAYLOAD) == "y"
    assert substitute("got ${map.${key}[0]}", PAYLOAD) == "got x"


def test_it_leaves_an_unterminated_placeholder_as_written():
    assert substitute("${count", PAYLOAD) == "${count"


def test_it_keeps_line_breaks_around_placeholders():
    assert substitute("line1\n${signer.name}\nline3", PAYLOAD) == "line1\nAnn\nline3"
    assert substitute("${signer.name}\n", PAYLOAD) == "Ann\n"


def test_it_recurses_into_objects_and_lists():
    template = {"to": "${signer.email}", "skus": ["${items[0].sku}", "${items[1].sku}", 7], "meta": {"n": "${count}"}}
    assert substitute(template, PAYLOAD) == {"to": "a@example.com", "skus": ["A1", "B2", 7], "meta": {"n": 3}}


def test_it_never_changes_the_template_or_shares_the_payloads_objects():
    template = {"signer": "${signer}", "list": ["${items}"]}
    before = copy.deepcopy(template)
    result = substitute(template, PAYLOAD)
    assert template == before
    result["signer"]["email"] = "changed"
    assert PAYLOAD["signer"]["email"] == "a@example.com"


def test_it_never_substitutes_environment_variables_or_settings(settings):
    os.environ["EVENTHUB_TEST_SECRET"] = "leak"
    try:
        assert substitute("${EVENTHUB_TEST_SECRET}", PAYLOAD) is None
        assert substitute("${SECRET_KEY}", PAYLOAD) is None
        assert substitute("x${env.EVENTHUB_TEST_SECRET}", PAYLOAD) == "xnull"
    finally:
        del os.environ["EVENTHUB_TEST_SECRET"]


def test_it_resolves_workflow_style_paths():
    context = {"workflow": {"input": {"address": {"city": "Oslo"}}, "variables": {"n": 2}},
               "ship_ref": {"output": {"tracking": "T1"}}}
    template = {"city": "${workflow.input.address.city}", "n": "${workflow.variables.n}",
                "tracking": "${ship_ref.output.tracking}"}
    assert substitute(template, context) == {"city": "Oslo", "n": 2, "tracking": "T1"}


# Java's String.valueOf for what a placeholder splices into a longer string ---------------------------------


def test_maps_and_lists_inside_a_longer_string_read_as_javas_to_string():
    payload = {"m": {"k": "v", "n": None, "ok": True, "list": [1, "two", [3]], "inner": {"a": {}}}, "empty": []}
    assert substitute("m=${m}", payload) == "m={k=v, n=null, ok=true, list=[1, two, [3]], inner={a={}}}"
    assert substitute("${empty}!", payload) == "[]!"
    assert substitute("${m}", payload) == payload["m"]  # the whole string keeps the map


@pytest.mark.parametrize(
    ("number", "text"),
    [(1, "1"), (1.0, "1.0"), (0.5, "0.5"), (-2.25, "-2.25"), (100.0, "100.0"), (1234567.0, "1234567.0"),
     (1e7, "1.0E7"), (12345678.9, "1.23456789E7"), (0.001, "0.001"), (0.0001, "1.0E-4"), (1.5e-05, "1.5E-5"),
     (1e21, "1.0E21"), (-0.0, "-0.0"), (12345678901234567890, "12345678901234567890")],
)
def test_numbers_inside_a_longer_string_read_as_java_prints_them(number, text):
    assert substitute("n=${n}", {"n": number}) == f"n={text}"
    assert substitute("l=${l}", {"l": [number]}) == f"l=[{text}]"
