"""What the observed-shapes sampler (`handlers.shapes.Sampler`) adds to the listener's message path.

In process, no broker and no database write: the listener calls `SAMPLER.observe(event, batch)` once per
handled batch. Measured here:
- a batch between two samples (the common case: one clock read and a comparison);
- a sampled batch: one message (inline JSON expanded) walked into its paths, nothing new to write;
- the same per message, for batches of the default size (10), at the default rate of one sample per event per
  second, against the listener's ~1,500-3,000 messages/s.

Run: `.venv/bin/python bench/shapes.py` (uses the settings' defaults; SQLite in var/ for Django's setup only).
"""

import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "eventhub.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{ROOT / 'var' / 'bench_shapes.sqlite3'}")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from handlers import shapes  # noqa: E402
from handlers.shapes import Sampler, paths_of  # noqa: E402
from queues.providers.base import Message  # noqa: E402

# A payload like the benchmark's and Conductor's examples: a few nested objects, an array, an inline JSON string.
PAYLOAD = {"workflowInstanceId": "wf-1", "status": "signed", "amount": 25, "country": "NL",
           "customer": {"name": "Ada", "address": {"street": "1 Main St", "city": "Leiden", "zip": "2311"}},
           "items": [{"sku": f"A-{n}", "qty": n, "price": {"amount": 10, "currency": "EUR"}} for n in range(5)],
           "meta": '{"source": "shop", "trace": {"id": "abc"}}'}
BATCH = [Message(message_id=uuid.uuid4().hex, body="", delivery_count=1, payload=PAYLOAD) for _ in range(10)]


def per_call(function, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    sampler = Sampler()
    # Nothing written: what the message path pays, not the database (a write is one short transaction per event
    # at most every SHAPES_WRITE_SECONDS, and only when a path is new or due for a refresh).
    shapes.write = lambda event, seen, sampled, overflow=False: dict(seen)
    sampler.observe("conductor:bench", BATCH)  # the first sample
    skipped = per_call(lambda: sampler.observe("conductor:bench", BATCH), 200_000)
    walked = per_call(lambda: paths_of(PAYLOAD), 20_000)
    settings.SHAPES_SAMPLE_SECONDS = 0
    sampled = per_call(lambda: sampler.observe("conductor:bench", BATCH), 20_000)
    paths = len(paths_of(PAYLOAD)[0])
    print(f"batch between samples: {skipped * 1e6:.2f} µs per batch ({skipped * 1e6 / len(BATCH):.3f} µs per message)")
    print(f"sampled batch: {sampled * 1e6:.1f} µs (the walk alone {walked * 1e6:.1f} µs, {paths} paths)")
    rate = 3000  # messages/s, above the listener's measured rate
    per_second = rate / len(BATCH) * skipped + sampled  # one sample a second per event
    print(f"at {rate} msg/s in batches of {len(BATCH)}: {per_second * 1e3:.3f} ms of CPU per second "
          f"({per_second * 100:.3f} % of one core)")


if __name__ == "__main__":
    main()
