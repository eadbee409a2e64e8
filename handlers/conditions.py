"""Handler conditions: `javascript` (V8 through mini-racer; `graaljs` is a synonym) and `value-param`."""

import json
import threading

from py_mini_racer import JSEvalException, MiniRacer

JAVASCRIPT = "javascript"
VALUE_PARAM = "value-param"
EVALUATOR_TYPES = {JAVASCRIPT: JAVASCRIPT, "graaljs": JAVASCRIPT, VALUE_PARAM: VALUE_PARAM}
COMPILE_TIMEOUT_SECONDS = 1.0

_local = threading.local()


def _context() -> MiniRacer:
    # A V8 context is not safe to share between threads; each thread keeps its own.
    context = getattr(_local, "context", None)
    if context is None:
        context = _local.context = MiniRacer()
    return context


def evaluator_of(evaluator_type: str | None) -> str | None:
    """The canonical evaluator for a handler's `evaluatorType` (absent means javascript), or None if unknown."""
    if evaluator_type in (None, ""):
        return JAVASCRIPT
    return EVALUATOR_TYPES.get(evaluator_type)


def compile_problem(condition: str, evaluator_type: str | None) -> str | None:
    """Why `condition` cannot be evaluated, or None when it compiles. Nothing is executed."""
    evaluator = evaluator_of(evaluator_type)
    if evaluator == VALUE_PARAM:
        return None if condition.strip() else "must name a top-level key of the payload"
    # `new Function` parses the source as a function body without running it.
    source = f"new Function('$', {json.dumps(condition)}); true"
    try:
        _context().eval(source, timeout_sec=COMPILE_TIMEOUT_SECONDS)
    except JSEvalException as exc:
        first_line = str(exc).strip().splitlines()
        detail = next((line for line in first_line if "Error" in line), first_line[0] if first_line else "")
        return f"does not compile as JavaScript: {detail.strip()}"
    return None
