"""Changes to handlers, each kept as a revision: the API, the admin and imports all go through here."""

from django.db import transaction
from django.db.models import Max

from eventhub.lib.locks import lock
from queues.configs import ensure_config

from .models import EventHandler, HandlerRevision

Change = HandlerRevision.Change


def handlers_lock(event: str) -> str:
    """The lock name of an event's handlers. Every batch holds it shared while it runs (a batch reads the
    event's handlers when it starts and writes records pointing at them when it ends); deleting a handler
    holds it exclusively, so the deletion waits for the batches in flight to commit their records (then
    detached from it like the earlier ones), and later batches no longer read it."""
    return f"handlers of\n{event}"


def _record(handler: EventHandler, name: str, change: str, source: str, user) -> HandlerRevision:
    last = HandlerRevision.objects.filter(handler_name=name).aggregate(n=Max("number"))["n"] or 0
    return HandlerRevision.objects.create(
        handler=handler if change != Change.DELETED else None,
        handler_name=name,
        number=last + 1,
        change=change,
        source=source,
        snapshot=handler.to_conductor(),
        changed_by=user if user is not None and user.is_authenticated else None,
        changed_by_name=getattr(user, "get_username", lambda: "")() if user is not None else "",
    )


@transaction.atomic
def save_handler(handler: EventHandler, *, user, source: str, change: str | None = None) -> HandlerRevision:
    """Save a validated handler and keep the result as its next revision."""
    if change is None:
        change = Change.CHANGED if handler.pk else Change.CREATED
    handler.save()
    ensure_config(handler.event)
    revision = _record(handler, handler.name, change, source, user)
    EventHandler.objects.filter(pk=handler.pk).update(revision=revision.number)
    handler.revision = revision.number
    return revision


@transaction.atomic
def delete_handler(handler: EventHandler, *, user, source: str) -> HandlerRevision:
    lock([handlers_lock(handler.event)])
    revision = _record(handler, handler.name, Change.DELETED, source, user)
    handler.delete()
    return revision


@transaction.atomic
def restore_revision(revision: HandlerRevision, *, user) -> EventHandler:
    """Make the handler what it was at `revision` (recreating it if it was deleted since)."""
    handler = EventHandler.objects.select_for_update().filter(name=revision.handler_name).first()
    handler = handler or EventHandler()
    # (a snapshot leaves `mode` out when live: restoring it makes the handler live again)
    handler.apply_conductor({"mode": "live", **revision.snapshot})
    handler.full_clean()
    save_handler(handler, user=user, source="restore", change=Change.RESTORED)
    return handler
