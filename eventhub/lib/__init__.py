"""Shared plumbing: code every app may use that belongs to none of them.

It imports no app (`handlers`, `workflows`, `queues`) and nothing from `eventhub` outside `eventhub.lib`,
function bodies included; a model it needs is named by a setting and looked up through `apps.get_model`.

- `api/`: the cross-app parts of the HTTP API, wired in by `eventhub/settings.py` and `eventhub/urls.py`:
  Conductor's error body and the exception handler (`errors`), middleware, parsers, content negotiation,
  the model permission, query parameters (`params`), drf-spectacular hooks (`schema`) and the
  `X-Authorization` token authentication with its token helpers (`auth`, model `EVENTHUB_API_KEY_MODEL`).
- `bulk`: making and inserting many rows at once, and reading several querysets in one round trip, for
  the listener's hot path (relies on Django internals; its docstring lists them).
- `storable`: whether text and JSON can be stored at all (NUL, unpaired surrogates, nesting depth).
"""
