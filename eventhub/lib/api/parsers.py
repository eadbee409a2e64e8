from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..storable import MAX_PAYLOAD_DEPTH, has_unstorable_text, payload_depth

TOO_DEEP = f"JSON parse error - nested more than {MAX_PAYLOAD_DEPTH} levels deep, more than any record can hold."


class StorableJSONParser(JSONParser):
    """JSON whose text every database and response can hold.

    `"\\u0000"` and unpaired surrogates (`"\\ud800"`) are valid JSON escapes that Python accepts, but
    PostgreSQL cannot store them and UTF-8 cannot encode them: refused here, once, for every route. So is
    JSON nested deeper than the records hold (the limit queue bodies have), which Python may not even
    read (RecursionError).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(TOO_DEEP) from None
        if payload_depth(data) > MAX_PAYLOAD_DEPTH:
            raise ParseError(TOO_DEEP)
        if has_unstorable_text(data):
            raise ParseError("The body holds a NUL character or an unpaired surrogate, which cannot be stored.")
        return data


class AnyJSONParser(StorableJSONParser):
    """Read every request body as JSON, whatever its Content-Type.

    Conductor's SDKs label bodies `application/json`, `*/*` or `text/plain` depending on the call.
    """

    media_type = "*/*"
