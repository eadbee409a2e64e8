"""django-q2 entry points of the workflow runtime, referenced by dotted path from their schedules."""

import logging

from django.conf import settings

from .runtime import complete_due_waits

logger = logging.getLogger(__name__)

WAIT_SWEEP_SCHEDULE = "workflows: complete due WAIT tasks"


def sweep_due_waits() -> int:
    """Complete every WAIT task whose duration or `until` has passed; returns how many."""
    done = complete_due_waits()
    if done:
        logger.info("Completed %d due WAIT task(s)", done)
    return done


def sync_schedules(using: str = "default", **kwargs) -> None:
    """Create or update the sweep's schedule, found by its name (run after every migrate)."""
    from django_q.models import Schedule  # noqa: PLC0415 - the app registry must be ready.

    Schedule.objects.using(using).update_or_create(
        name=WAIT_SWEEP_SCHEDULE,
        defaults={
            "func": "workflows.tasks.sweep_due_waits",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.WORKFLOW_WAIT_SWEEP_MINUTES,
            "repeats": -1,
        },
    )
