"""OpenAPI descriptions of Eventhub's authentication schemes (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ConductorTokenScheme(OpenApiAuthenticationExtension):
    target_class = "eventhub.lib.api.auth.ConductorTokenAuthentication"
    name = "conductorToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-Authorization",
            "description": "A token from POST /api/token (key id and secret of an Eventhub API key).",
        }


def canonical_paths(endpoints: list) -> list:
    """Document each route without its optional trailing slash, as Conductor's clients call it."""
    return [(path.rstrip("/") or "/", regex, method, callback) for path, regex, method, callback in endpoints]


def json_request_bodies(result: dict, generator, request, public) -> dict:
    """Bodies are JSON: the catch-all parser only tolerates clients that label them otherwise."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                content.pop("*/*", None)
    return result
