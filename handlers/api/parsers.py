from rest_framework.parsers import JSONParser


class AnyJSONParser(JSONParser):
    """Read every request body as JSON, whatever its Content-Type.

    Conductor's SDKs label bodies `application/json`, `*/*` or `text/plain` depending on the call.
    """

    media_type = "*/*"
