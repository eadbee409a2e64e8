from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class LenientContentNegotiation(DefaultContentNegotiation):
    """Never answer 406: Conductor's clients send `Accept: text/plain` and break on it.

    Views that have a text form (a bare workflow or task id) render it themselves; otherwise the
    first renderer, JSON, answers.
    """

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type
