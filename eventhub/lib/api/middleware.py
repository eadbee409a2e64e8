from django.conf import settings
from django.http import HttpResponse, JsonResponse

from ..storable import has_unstorable_text
from .errors import api_not_found, error_body, is_api


class LimitRequestBodies:
    """Answer 413 to a request, on any route and before anything reads it or checks who sent it, whose
    body is declared larger than REQUEST_MAX_BYTES (Django reads no more than a declared length, so a
    body without one is empty to it). API routes get Conductor's error body."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # (Django reads an unreadable length as none)
        if length > settings.REQUEST_MAX_BYTES:
            message = (f"The request body is {length} bytes; at most {settings.REQUEST_MAX_BYTES} are accepted "
                       "(REQUEST_MAX_BYTES).")
            if is_api(request):
                return JsonResponse(error_body(request, 413, message), status=413)
            return HttpResponse(message, status=413, content_type="text/plain")
        return self.get_response(request)


class RefuseUnstorableText:
    """Answer 400 to an API request whose path or query holds NUL (`%00`): PostgreSQL cannot compare or
    store such text, so it would fail deep inside a query. Bodies get the same check in the parser."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api(request) and (
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
        if response.status_code == 404 and request.resolver_match is None and is_api(request):
            return api_not_found(request)  # (a route's own 404, e.g. the browsable API's page, is kept)
        return response
