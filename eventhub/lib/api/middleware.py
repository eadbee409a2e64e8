from django.http import JsonResponse

from ..storable import has_unstorable_text
from .errors import api_not_found, error_body


class RefuseUnstorableText:
    """Answer 400 to an API request whose path or query holds NUL (`%00`): PostgreSQL cannot compare or
    store such text, so it would fail deep inside a query. Bodies get the same check in the parser."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/") and (
            has_unstorable_text(request.path) or has_unstorable_text(dict(request.GET.lists()))
        ):
            message = "The path or query holds a NUL character or an unpaired surrogate, which cannot be stored."
            return JsonResponse(error_body(request, 400, message), status=400)
        return self.get_response(request)


class ApiNotFoundAsJson:
    """An API path no route matches answers Conductor's JSON error body, as its clients expect, also with
    DEBUG on (where Django would answer its HTML debug page, not the project's handler404)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 404 and request.resolver_match is None and request.path.startswith("/api/"):
            return api_not_found(request)  # (a route's own 404, e.g. the browsable API's page, is kept)
        return response
