"""Backtest speed (`make bench-backtest`; see bench/README.md, "Backtests").

Fills a fresh PostgreSQL database (BENCH_BACKTEST_DB, default eh_bench_backtest, dropped and created) with
BENCH_BACKTEST_N stored messages (100,000) of one event, one in a hundred delivered twice, and times
backtests over all of them in this process, as a django-q2 worker runs one (`handlers.backtests.run`, the
task's code, progress writes included): a handler without a condition, one with a JavaScript condition, and
a draft of that one compared with its saved version (two conditions and two sets of actions per message).
Prints messages per second, the CPU time per message of this process, and its RSS once a tenth of the
messages is done and at the end (memory must stay flat however many are scanned), against the target of
5,000 messages/s without a condition (the mean of a run first and one last).
"""

import io
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import cpu_seconds, migrated_database, out  # noqa: E402

PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_BACKTEST_DB", "eh_bench_backtest")
N = int(os.environ.get("BENCH_BACKTEST_N", 100_000))
EVENT = "conductor:bench_backtest"
TARGET = 5000
JS_CONDITION = "$.amount > 10 && $.customer.address.country == 'NL'"
HANDLER = {
    "name": "bench_backtest", "event": EVENT, "active": True,
    "actions": [{"action": "start_workflow", "start_workflow": {
        "name": "bench_flow", "correlationId": "${seq}",
        "input": {"customer": "${customer.name}", "city": "${customer.address.city}", "amount": "${amount}"}}}],
}


def fresh_database() -> str:
    url = migrated_database(PG_SERVER, DB_NAME)
    os.environ["DATABASE_URL"] = url
    return url


def fill(url: str, count: int) -> int:
    """`count` messages received over the last day, as a listener records them; returns the rows written."""
    now = datetime.now(UTC)
    buffer = io.StringIO()
    rows = 0
    for seq in range(count):
        payload = json.dumps({"customer": {"name": f"Customer {seq}", "address": {
            "street": f"{seq} Main Street", "city": "Utrecht", "zip": "3511", "country": "NL" if seq % 4 else "BE"}},
            "amount": seq % 100, "seq": seq})
        received = now - timedelta(seconds=86_400 * (count - seq) / count)
        for delivery in (1, 2) if seq % 100 == 0 else (1,):
            outcome = "RETURNED" if delivery == 1 and seq % 100 == 0 else "ACKNOWLEDGED"
            buffer.write("\t".join([EVENT, f"bench-{seq}", payload.replace("\\", "\\\\"), "", str(delivery),
                                    (received + timedelta(milliseconds=delivery)).isoformat(), outcome, "", ""]) + "\n")
            rows += 1
    with psycopg.connect(url, autocommit=True) as pg, pg.cursor() as cursor:
        with cursor.copy("COPY queues_receivedmessage (event, message_id, payload, raw_body, delivery_count, "
                         "received_at, outcome, detail, replay_reason) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
        cursor.execute("ANALYZE queues_receivedmessage")
    return rows


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(name: str, handler, compared=None) -> dict:
    from handlers import backtests
    from handlers.models import Backtest

    criteria = backtests.Criteria.of(EVENT, start=datetime.now(UTC) - timedelta(days=2))
    record = Backtest.objects.create(
        handler_name=handler.name, handler=handler.to_conductor(), criteria=criteria.as_json(),
        compared_to=compared.to_conductor() if compared else None, draft=compared is not None,
        expected=backtests.count(criteria))
    rss = {}
    write_progress = record.record_progress

    def progress(done: int, result: dict) -> None:  # (every half second) RSS once a tenth is done, as it goes
        write_progress(done, result)
        if done >= record.expected // 10:
            rss.setdefault("tenth", rss_mb())

    record.record_progress = progress
    start, cpu = time.monotonic(), cpu_seconds(os.getpid())
    done = backtests.run(record)
    seconds, cpu = time.monotonic() - start, cpu_seconds(os.getpid()) - cpu
    record.refresh_from_db()
    assert record.status == "COMPLETED", record.error
    return {"name": name, "messages": done, "seconds": seconds, "rate": done / seconds, "cpu_us": cpu / done * 1e6,
            "rss": (rss.get("tenth", 0.0), rss_mb()), "result": record.result}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    os.environ.update(DJANGO_SETTINGS_MODULE="eventhub.settings", QUEUES_SCHEDULES="false", DEBUG="false",
                      SECRET_KEY="bench-backtest", ALLOWED_HOSTS="localhost", LOG_LEVEL="WARNING")
    out(f"Backtest benchmark: {N} messages, fresh database {DB_NAME}")
    url = fresh_database()
    started = time.monotonic()
    rows = fill(url, N)
    out(f"filled {rows} rows ({N} messages) in {time.monotonic() - started:.1f} s")
    import django

    django.setup()
    from handlers.models import EventHandler

    plain, scripted = EventHandler(), EventHandler()
    plain.apply_conductor(HANDLER)
    scripted.apply_conductor({**HANDLER, "condition": JS_CONDITION})
    draft = EventHandler()
    # Over 50 instead of over 10 (30,000 messages no longer match), and the zip code added to the input
    # (every message both match resolves differently).
    action = HANDLER["actions"][0]
    draft.apply_conductor({**HANDLER, "condition": "$.amount > 50 && $.customer.address.country == 'NL'",
                           "actions": [{**action, "start_workflow": {**action["start_workflow"], "input": {
                               **action["start_workflow"]["input"], "zip": "${customer.address.zip}"}}}]})
    # The no-condition run first and again last: the first reads the table into the page cache.
    runs = [timed("no condition", plain), timed("JavaScript condition", scripted),
            timed("draft vs saved, JavaScript", draft, compared=scripted), timed("no condition, again", plain)]
    out()
    out(f"{'backtest':<28} {'messages':>9} {'seconds':>8} {'msg/s':>8} {'CPU µs/msg':>11} {'RSS MB at 10 % → end':>22}")
    for run in runs:
        out(f"{run['name']:<28} {run['messages']:>9} {run['seconds']:>8.2f} {run['rate']:>8,.0f} "
            f"{run['cpu_us']:>11.0f} {run['rss'][0]:>14.1f} → {run['rss'][1]:.1f}")
    counts = {run["name"]: {k: run["result"][k] for k in ("total", "matched", "skipped", "failed")} for run in runs}
    out(f"counts: {json.dumps(counts)}")
    difference = runs[2]["result"]["difference"]
    out(f"difference: {json.dumps({k: difference[k] for k in ('newlyMatched', 'noLongerMatched', 'changedInputs')})}")
    rate = (runs[0]["rate"] + runs[-1]["rate"]) / 2
    verdict = "PASS" if rate >= TARGET else "FAIL"
    out(f"no condition (mean of the two runs): {rate:,.0f} msg/s, target ≥ {TARGET:,}: {verdict}")
    load = os.getloadavg()
    out(f"conditions: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end")
    if verdict == "FAIL":
        sys.exit(1)


if __name__ == "__main__":
    main()
