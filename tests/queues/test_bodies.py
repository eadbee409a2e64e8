"""Reading a body as it comes off a broker: whatever it holds, a result comes back, never an exception."""

import pytest

from queues.providers.bodies import decode_body


@pytest.mark.parametrize(("raw", "text", "error"), [
    ('{"a": "x\ud800y"}', '{"a": "x\ufffdy"}', "NUL or unpaired surrogate"),  # a str from a client library
    (b'{"a": "x\x00y"}', '{"a": "x\ufffdy"}', "NUL or unpaired surrogate"),
    ("[" * 5000 + "]" * 5000, "[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"a": NaN}', '{"a": NaN}', "body is not JSON: NaN is not a JSON value"),  # (Python alone would read it)
    ("[1, -Infinity]", "[1, -Infinity]", "body is not JSON: -Infinity is not a JSON value"),
    ('{"a": "\\ud83d\\ude00"}', '{"a": "\\ud83d\\ude00"}', ""),  # an escaped pair: one character, stored fine
])
def test_a_body_is_read_or_marked_unreadable_with_its_reason(raw, text, error):
    decoded_text, payload, parse_error = decode_body(raw, 10**6)
    assert decoded_text == text
    assert (parse_error == "") if not error else (error in parse_error and payload is None)
    if not error:
        assert payload == {"a": "\U0001F600"}


def test_a_message_id_is_stored_cut_to_its_column_and_without_nul():
    from queues.models import MESSAGE_ID_LENGTH, stored_message_id

    assert stored_message_id("m" * 300) == "m" * MESSAGE_ID_LENGTH
    assert stored_message_id("a\x00b\ud800") == "a\ufffdb\ufffd"
