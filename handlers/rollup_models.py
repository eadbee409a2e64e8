"""The overview's hourly rollups: counts of completed hours kept as rows, so that the day and week charts
read a few hundred rows instead of grouping every record of the week (`handlers.rollups` makes and reads
them; exported by `handlers.models`).

Only counts of facts that never change once committed are rolled up: a delivery received (a
`ReceivedMessage`, deleted only by the retention purge) and a handler's match (the first action's record of
a message whose condition held, deleted only by the purge). What can change after its hour (outcomes,
failures, quarantine entries, which a person may delete) is always counted from the records.
"""

from django.db import models


class RollupSeries(models.TextChoices):
    RECEIVED = "received", "Messages received (per queue event)"
    MATCHED = "matched", "Matches (per handler name)"


class RolledUpHour(models.Model):
    """An hour whose counts are in `HourlyCount` (a queue or handler with none that hour has no row there)."""

    hour = models.DateTimeField(unique=True, help_text="The hour's start, a whole hour (UTC).")
    rolled_up_at = models.DateTimeField()

    class Meta:
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"{self.hour.isoformat()} rolled up"


class HourlyCount(models.Model):
    """One series' count for one queue event or handler name in one rolled-up hour."""

    hour = models.DateTimeField(help_text="The hour's start, a whole hour (UTC).")
    series = models.CharField(max_length=16, choices=RollupSeries.choices)
    key = models.CharField(max_length=1040, help_text="The queue's event, or the handler's name.")
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["-hour", "series", "key"]
        # (Its index serves the page's read: a range of hours.)
        constraints = [models.UniqueConstraint(fields=["hour", "series", "key"], name="one_count_per_hour")]

    def __str__(self) -> str:
        return f"{self.hour.isoformat()} {self.series} {self.key}: {self.count}"
