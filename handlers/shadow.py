"""Shadow twins: try an edit of a live handler on live traffic before it acts.

*Shadow copy* makes a twin of a live handler: the same definition under the name `<name>__shadow`, in shadow
mode (dispatch evaluates it on every message of its event and records SHADOW executions, running nothing),
active, and pointing at its original. People edit the twin; `compare` lists the messages where the twin and
the original decided differently; `promote` gives the original the twin's definition as one new revision and
deletes the twin, in one transaction. The original may be edited or deleted meanwhile: `original_changed` says so.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from eventhub.lib.locks import lock

from .changes import delete_handler, handlers_lock, save_handler
from .models import HANDLER_LEVEL, SHADOW_SUFFIX, ActionExecution, EventHandler, ExecutionStatus, HandlerRevision

# What Promote carries from the twin to its original; the original keeps its name, `active` and mode.
DEFINITION = ("event", "condition", "evaluator_type", "actions", "description")
COMPARE_MESSAGES = 500  # the twin's latest messages a comparison reads
SHOWN_DIFFERENCES = 100
TWIN, ORIGINAL = "twin", "original"  # the two sides of a comparison
KINDS = {
    "twin_only": "matched by the twin only",
    "original_only": "matched by the original only",
    "inputs": "both matched, different action inputs",
}


class StalePromote(ValidationError):
    """The promote page that was confirmed showed another revision of the twin or of its original than they have
    now: someone saved one of them meanwhile."""


def twin_name(name: str) -> str:
    return f"{name}{SHADOW_SUFFIX}"


def stamp(handler: EventHandler) -> str:
    """Which revision of a handler a page showed: its name and number (numbers count per name)."""
    return f"{handler.name} r{handler.revision}"


@transaction.atomic
def shadow_copy(original: EventHandler, *, user) -> EventHandler:
    """A shadow twin of a live handler, saved (its first revision). ValidationError saying why when it cannot be
    made: the handler is in shadow mode itself, has a twin already, or its twin's name is taken or too long."""
    original = EventHandler.objects.select_for_update().get(pk=original.pk)
    if original.is_shadow:
        raise ValidationError(f"{original.name} is in shadow mode already: edit it instead of copying it.")
    existing = EventHandler.objects.filter(shadow_of=original).first()
    if existing is not None:
        raise ValidationError(f"{original.name} has a shadow twin already: {existing.name}.")
    name = twin_name(original.name)
    if EventHandler.objects.filter(name=name).exists():
        raise ValidationError(f"A handler named {name} exists already: rename or delete it first.")
    twin = EventHandler()
    twin.apply_conductor({**original.to_conductor(), "name": name, "active": True, "mode": "shadow"})
    twin.shadow_of, twin.shadow_of_name, twin.shadow_base_revision = original, original.name, original.revision
    try:
        twin.full_clean()
    except ValidationError as exc:
        if "name" in exc.message_dict:
            raise ValidationError(f"The twin's name {name} would be longer than 255 characters.") from None
        raise
    save_handler(twin, user=user, source="shadow copy")
    return twin


def original_of(twin: EventHandler) -> EventHandler | None:
    return twin.shadow_of if twin.shadow_of_id else None


def original_changed(twin: EventHandler) -> str:
    """What happened to a twin's original since the copy, in words; "" when nothing."""
    if not twin.is_twin:
        return ""
    original = original_of(twin)
    if original is None:
        return (f"Its original {twin.shadow_of_name} was deleted after the copy: this is a shadow handler of its own "
                "now (set its mode to live to make it act).")
    # Revision numbers count per name (a renamed handler starts again at 1): the revision copied from is the pair
    # (name, number), which is unique, and so is the original's current one.
    base, now = (twin.shadow_of_name, twin.shadow_base_revision), (original.name, original.revision)
    if base == now:
        return ""
    if base[0] == now[0]:
        since = f"it was at revision {base[1]}, it is at revision {now[1]} now"
    else:
        since = f"it was revision {base[1]} of {base[0]}, it is revision {now[1]} of {now[0]} now"
    return f"Its original {original.name} changed since the copy: {since}. Promoting replaces that newer definition."


def take_definition(original: EventHandler, twin: EventHandler) -> EventHandler:
    """`original` with the twin's definition (what Promote saves); its name, `active` and mode stay."""
    for name in DEFINITION:
        value = getattr(twin, name)
        if value or getattr(original, name):  # (an empty text either way stays as the original has it: "" or null)
            setattr(original, name, value)
    return original


@transaction.atomic
def promote(twin: EventHandler, *, user, seen: tuple[str, str] | None = None) -> HandlerRevision:
    """The original takes the twin's definition (one new revision of it, source "promote") and the twin is
    deleted, together or not at all. ValidationError when the twin has no original any more; StalePromote when
    `seen`, the `stamp`s of the twin and of its original that the confirmed page showed, are not theirs now."""
    # First the twin's event's handlers lock (delete_handler's): the batches in flight that read the twin end
    # before any row here is locked, or a batch's records, pointing at these rows, would wait for this
    # transaction while it waits for them.
    lock([handlers_lock(twin.event)])
    locked = {h.pk: h for h in EventHandler.objects.select_for_update().filter(
        pk__in=[twin.pk, twin.shadow_of_id]).order_by("pk")}  # (in id order, as every writer locks them)
    twin = locked.get(twin.pk)
    if twin is None or not twin.is_twin:
        raise ValidationError("This handler is not a shadow twin (any more): there is nothing to promote.")
    original = locked.get(twin.shadow_of_id)
    if original is None:
        raise ValidationError(f"Its original {twin.shadow_of_name} was deleted: there is nothing to promote it into. "
                              "Set its mode to live to make it act.")
    if seen is not None:
        _check_seen(seen, twin, original)
    take_definition(original, twin)
    original.full_clean()
    revision = save_handler(original, user=user, source="promote")
    delete_handler(twin, user=user, source="promote")
    return revision


def _check_seen(seen: tuple[str, str], twin: EventHandler, original: EventHandler) -> None:
    changed = [who for who, shown, now in zip(("the twin", "its original"), seen, (stamp(twin), stamp(original)),
                                               strict=True) if shown != now]
    if changed:
        raise StalePromote(f"{' and '.join(changed)} changed since the page you confirmed was shown (saved "
                           "meanwhile). Below is what the original becomes now: confirm again if it is still right.")


# Comparison ------------------------------------------------------------------------------------------------


@dataclass
class Side:
    """What one of the two handlers decided for one message, from its execution records."""

    records: list[ActionExecution] = field(default_factory=list)

    @property
    def decided(self) -> bool:
        return bool(self.records)

    @property
    def matched(self) -> bool:
        return any(r.index != HANDLER_LEVEL for r in self.records)

    @property
    def inputs(self) -> list[tuple]:
        return sorted((r.index, r.action, r.input) for r in self.records if r.index != HANDLER_LEVEL)

    @property
    def inputs_shown(self) -> list | None:
        """Each action's input as resolved, or why it could not be built; None when it did not match."""
        if not self.matched:
            return None
        return [r.input if r.input is not None else {"error": r.error or "no input recorded"}
                for r in self.records if r.index != HANDLER_LEVEL]

    @property
    def summary(self) -> str:
        if not self.records:
            return "no record (the handler was inactive, or listens on another event)"
        condition = next((r for r in self.records if r.index == HANDLER_LEVEL), None)
        if condition is not None:
            if condition.error:
                return f"condition failed: {condition.error}"
            return f"condition returned {condition.condition_value or 'nothing'}: not matched"
        return "matched"


@dataclass
class Difference:
    kind: str
    event: str
    message_id: str
    delivery_id: int | None
    received_at: datetime | None
    twin: Side
    original: Side

    @property
    def label(self) -> str:
        return KINDS[self.kind]


@dataclass
class Comparison:
    twin: EventHandler
    original_name: str
    compared: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    differences: list[Difference] = field(default_factory=list)


def compare(twin: EventHandler, *, messages: int = COMPARE_MESSAGES) -> Comparison:
    """The twin's latest `messages` messages, and among them those the twin and its original decided differently:
    one matched and the other not, or both matched with different action inputs (as resolved from the message;
    what the original's engine then did is not compared)."""
    original = original_of(twin)
    result = Comparison(twin, original.name if original else twin.shadow_of_name)
    # One record per message holds index HANDLER_LEVEL (not matched) or 0 (matched): the messages, newest first.
    firsts = list(ActionExecution.objects.filter(
        handler_name=twin.name, duplicate_of__isnull=True, status=ExecutionStatus.SHADOW, index__lte=0,
        index__gte=HANDLER_LEVEL,
    ).select_related("delivery").order_by("-created_at", "-id")[:messages])
    if not firsts:
        return result
    # The original's records by the handler they belong to, whatever its name then (a rename keeps them; a handler
    # that took an old name since is another one); by name once it is deleted (its records lose the link).
    of_original = Q(handler=original) if original is not None else Q(handler_name=result.original_name)
    records = ActionExecution.objects.filter(
        Q(handler_name=twin.name) | of_original, message_id__in={f.message_id for f in firsts},
        duplicate_of__isnull=True,
    ).order_by("index", "id")
    sides: dict[tuple[str, str, str], Side] = {}
    for record in records:
        side = TWIN if record.handler_name == twin.name else ORIGINAL
        sides.setdefault((side, record.event, record.message_id), Side()).records.append(record)
    seen: set[tuple[str, str]] = set()
    for first in firsts:
        if (first.event, first.message_id) in seen:
            continue
        seen.add((first.event, first.message_id))
        mine = sides.get((TWIN, first.event, first.message_id), Side())
        theirs = sides.get((ORIGINAL, first.event, first.message_id), Side())
        result.compared += 1
        kind = _difference(mine, theirs)
        if kind:
            result.counts[kind] += 1
            if len(result.differences) < SHOWN_DIFFERENCES:
                received = first.delivery.received_at if first.delivery_id else None
                result.differences.append(Difference(kind, first.event, first.message_id, first.delivery_id,
                                                      received, mine, theirs))
    return result


def _difference(twin: Side, original: Side) -> str | None:
    if twin.matched != original.matched:
        return "twin_only" if twin.matched else "original_only"
    if twin.matched and twin.inputs != original.inputs:
        return "inputs"
    return None
