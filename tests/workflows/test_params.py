import copy
import os
from unittest import mock

import pytest

from workflows import params
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


# Jayway JSONPath (Conductor's ParametersUtils reads every path with it) ---------------------------------

ORDER = {
    "id": "o-1",
    "items": [{"sku": "A1", "qty": 1, "tags": ["x"]}, {"sku": "B2", "qty": 3}, {"sku": "C3", "qty": 5, "tags": []}],
    "customer": {"id": "c-9", "address": {"id": "addr-4", "city": "Oslo"}},
    "my-task_ref": {"output": {"0": "zero"}},
}


def test_a_deep_scan_gives_every_match_in_document_order_as_a_list():
    assert substitute("${$..id}", ORDER) == ["o-1", "c-9", "addr-4"]
    assert substitute("${$..sku}", ORDER) == ["A1", "B2", "C3"]
    assert substitute("${$..city}", ORDER) == ["Oslo"]  # one match is still a list


def test_an_indefinite_path_that_matches_nothing_is_an_empty_list_and_a_definite_one_null():
    assert substitute("${$..nothing}", ORDER) == []
    assert substitute("${items[*].nothing}", ORDER) == []
    assert substitute("${items[?(@.qty > 100)].sku}", ORDER) == []
    assert substitute("${items[7].sku}", ORDER) is None
    assert substitute("${customer.address.zip}", ORDER) is None


def test_a_wildcard_slice_or_union_gives_the_list_of_what_it_matched():
    assert substitute("${items[*].sku}", ORDER) == ["A1", "B2", "C3"]
    assert substitute("${$.items[*].qty}", ORDER) == [1, 3, 5]
    assert substitute("${items[0:2].sku}", ORDER) == ["A1", "B2"]
    assert substitute("${items[0,2].sku}", ORDER) == ["A1", "C3"]
    assert substitute("${customer.address.*}", ORDER) == ["addr-4", "Oslo"]


@pytest.mark.parametrize(
    ("path", "skus"),
    [
        ("items[?(@.qty > 1)].sku", ["B2", "C3"]),
        ("$.items[?(@.qty >= 3 && @.sku != 'C3')].sku", ["B2"]),
        ("items[?(@.qty == 1 || @.sku == \"C3\")].sku", ["A1", "C3"]),
        ("items[?(@.tags)].sku", ["A1", "C3"]),  # the member exists
        ("items[?(!@.tags)].sku", ["B2"]),
        ("items[?(@.sku in ['A1', 'B2'])].sku", ["A1", "B2"]),
        ("items[?(@.sku =~ /[AB].*/)].sku", ["A1", "B2"]),  # the whole string matches, as Java's matches()
        ("items[?(@.qty > $.items[0].qty)].sku", ["B2", "C3"]),
    ],
)
def test_a_filter_keeps_the_items_it_accepts(path, skus):
    assert substitute("${" + path + "}", ORDER) == skus


def test_a_filter_may_hold_a_nested_placeholder():
    assert substitute("${items[?(@.sku == '${wanted}')].qty}", {**ORDER, "wanted": "B2"}) == [3]


def test_plain_names_are_read_as_jayway_reads_them():
    assert substitute("${my-task_ref.output.0}", ORDER) == "zero"
    assert substitute("${$['my-task_ref'].output['0']}", ORDER) == "zero"


@pytest.mark.parametrize("template", ["${items[}", "${a.}", "${a b}", "${items[?(@.qty >)]}"])
def test_a_path_that_cannot_be_read_is_null(template):
    assert substitute(template, ORDER) is None


def test_a_deep_scan_reaches_the_bottom_of_the_deepest_payload_the_records_hold():
    payload = leaf = {}
    for _ in range(199):
        leaf["next"] = leaf = {}
    leaf["id"] = "bottom"
    assert substitute("${$..id}", payload) == ["bottom"]


def test_only_the_payload_is_reachable_from_scans_and_filters():
    os.environ["EVENTHUB_TEST_SECRET"] = "leak"
    try:
        assert substitute("${$..EVENTHUB_TEST_SECRET}", ORDER) == []
        assert substitute("${$..SECRET_KEY}", ORDER) == []
        assert substitute("${items[?(_.x == 1)].sku}", ORDER) == []  # (python-jsonpath's extra context: empty)
    finally:
        del os.environ["EVENTHUB_TEST_SECRET"]


def test_each_path_is_compiled_once_and_plain_paths_never_reach_the_library():
    params._compile.cache_clear()
    params._path.cache_clear()
    compile_path = mock.Mock(wraps=params._ENVIRONMENT.compile)
    template = {"first": "${items[?(@.qty > 2)].sku}", "name": "${customer.address.city}", "n": "${items[1].qty}"}
    with mock.patch.object(params._ENVIRONMENT, "compile", compile_path):
        results = [substitute(template, {**ORDER, "run": run}) for run in range(50)]
        substitute({"again": "x ${items[?(@.qty > 2)].sku}"}, ORDER)  # another template, the same path
    assert results[-1] == {"first": ["B2", "C3"], "name": "Oslo", "n": 3}
    assert [call.args for call in compile_path.call_args_list] == [("items[?(@.qty > 2)].sku",)]


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


def test_what_an_indefinite_path_matched_reads_as_json_inside_a_longer_string():
    # Jayway collects the matches in a json-smart array, whose text is JSON (strings quoted, `/` escaped).
    payload = {"items": [{"sku": "A/1", "at": {"x": 1.0}}, {"sku": "B\"2", "at": None}]}
    assert substitute("skus: ${items[*].sku}", payload) == 'skus: ["A\\/1","B\\"2"]'
    assert substitute("at: ${$..at}", payload) == 'at: [{"x":1.0},null]'
    assert substitute("none: ${$..nothing}", payload) == "none: []"
