"""What a Conductor workflow definition may hold, checked once for the model, the admin and the API.

Also the small parsers the runtime shares with validation: WAIT durations (`"2h 30m"`,
`"1 day 2 hours"`) and `until` timestamps (`"2026-01-31 10:00"`, ISO 8601, optional zone).
"""

import datetime as dt
import re
from typing import Any

from django.utils import timezone

from .params import template_problems

TASK_TYPES = ("SIMPLE", "WAIT", "HUMAN", "EVENT", "SET_VARIABLE", "TERMINATE")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_\-.:]+$")
TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")

_UNIT_SECONDS = {
    "d": 86400, "day": 86400, "days": 86400,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
}  # fmt: skip
_DURATION_PART = re.compile(r"\s*(\d+)\s*([A-Za-z]+)\s*")

Problems = list[tuple[str, str]]


def parse_duration(text: Any) -> dt.timedelta:
    """`"2h 30m"` → 2½ hours. Raises ValueError naming what it could not read."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"duration {text!r} is not a text such as '2h 30m'")
    seconds, position = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position or match.group(2).lower() not in _UNIT_SECONDS:
            break
        seconds += int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        position = match.end()
    if position != len(text):
        raise ValueError(f"duration {text!r} is not understood; write it like '2h 30m', '45s' or '1 day'")
    return dt.timedelta(seconds=seconds)


def parse_until(text: Any) -> dt.datetime:
    """A timestamp (`"2026-01-31 10:00"`, `"2026-01-31T10:00:00+02:00"`, `"2026-01-31"`); UTC if no zone."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"until {text!r} is not a timestamp such as '2026-01-31 10:00'")
    raw = text.strip()
    if raw.endswith(" UTC") or raw.endswith(" GMT"):
        raw = raw[:-4]
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"until {text!r} is not a timestamp such as '2026-01-31 10:00' or ISO 8601") from None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=dt.UTC)


def _is_placeholder(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def definition_problems(data: Any) -> Problems:
    """Every problem of a definition's JSON, each with its Conductor path (`tasks[1].sink`)."""
    if not isinstance(data, dict):
        return [("$", "a workflow definition must be a JSON object")]
    problems: Problems = []
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(("name", "is required: the workflow's name"))
    elif not NAME_PATTERN.match(name):
        problems.append(("name", "may hold only letters, digits and _ - . :"))
    version = data.get("version", 1)
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                or not 1 <= version <= MAX_VERSION):
        problems.append(("version", f"must be a whole number from 1 to {MAX_VERSION}"))
    inputs = data.get("inputParameters")
    if inputs is not None and (not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs)):
        problems.append(("inputParameters", "must be a list of input names"))
    if data.get("outputParameters") is not None and not isinstance(data["outputParameters"], dict):
        problems.append(("outputParameters", "must be a JSON object"))
    if data.get("description") is not None and not isinstance(data["description"], str):
        problems.append(("description", "must be a string"))
    problems.extend(_tasks_problems(data.get("tasks")))
    problems.extend(template_problems(data.get("outputParameters"), "outputParameters"))
    return problems


MAX_VERSION = 2**31 - 1  # the database column is a 32-bit integer


def _tasks_problems(tasks: Any) -> Problems:
    if not isinstance(tasks, list) or not tasks:
        return [("tasks", "at least one task is required")]
    problems: Problems = []
    seen: set[str] = set()
    for index, task in enumerate(tasks):
        path = f"tasks[{index}]"
        if not isinstance(task, dict):
            problems.append((path, "must be a JSON object"))
            continue
        problems.extend((f"{path}.{key}", message) for key, message in task_problems(task))
        problems.extend(template_problems(task, path))  # (inputParameters, sink: wherever `${...}` may be)
        ref = task.get("taskReferenceName")
        if not isinstance(ref, str):
            continue  # task_problems reported it
        if ref in seen:
            problems.append((f"{path}.taskReferenceName", f"{ref!r} is used by an earlier task"))
        seen.add(ref)
    return problems


def task_problems(task: dict) -> Problems:
    problems: Problems = []
    for key in ("name", "taskReferenceName"):
        if not isinstance(task.get(key), str) or not task[key].strip():
            problems.append((key, "is required"))
    task_type = task.get("type", "SIMPLE")
    if task_type not in TASK_TYPES:
        problems.append(("type", f"unknown task type {task_type!r}; valid types are {', '.join(TASK_TYPES)}"))
    params = task.get("inputParameters")
    if params is not None and not isinstance(params, dict):
        problems.append(("inputParameters", "must be a JSON object"))
        params = None
    params = params or {}
    if task_type == "WAIT":
        problems.extend(_wait_problems(params))
    sink = task.get("sink")
    if sink is not None and not isinstance(sink, str):
        problems.append(("sink", "must be a string, e.g. conductor or sqs:queue_name"))
    elif task_type == "EVENT" and (sink is None or not sink.strip()):
        problems.append(("sink", "is required for an EVENT task, e.g. conductor or sqs:queue_name"))
    if task_type == "TERMINATE":
        status = params.get("terminationStatus")
        if status is not None and not _is_placeholder(status) and status not in TERMINATION_STATUSES:
            problems.append(("inputParameters.terminationStatus", f"must be one of {', '.join(TERMINATION_STATUSES)}"))
    if task.get("asyncComplete") is not None and not isinstance(task["asyncComplete"], bool):
        problems.append(("asyncComplete", "must be true or false"))
    return problems


def _wait_problems(params: dict) -> Problems:
    duration, until = params.get("duration"), params.get("until")
    if duration is not None and until is not None:
        return [("inputParameters", "give a WAIT task either duration or until, not both")]
    for key, parse in (("duration", parse_duration), ("until", parse_until)):
        value = params.get(key)
        if value is not None and not _is_placeholder(value):
            try:
                parse(value)
            except ValueError as exc:
                return [(f"inputParameters.{key}", str(exc))]
    return []
