from .errors import ConductorValidationError

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def query_bool(request, name: str, default: bool) -> bool:
    """A boolean query parameter as Conductor's clients send it: `true`/`false`, `True`/`False`."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConductorValidationError([(name, f"must be true or false, not {raw!r}")])
