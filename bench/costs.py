"""How fast is the costs page on a large history?

Seeds 1,000,000 replies (messages + usage) over the past year across 50 users,
10 models and 3 relays (one of them billing in CNY), then times GET /costs/
through Django's full stack (middleware, queries, template) for one month
and for the whole year — as staff looking at everyone (the heaviest view)
and as one user looking at their own — on SQLite and on PostgreSQL.

    .venv/bin/python bench/costs.py                   # both databases, 1M rows
    .venv/bin/python bench/costs.py --db sqlite --rows 200000

Target: ≤ 200 ms median for the month, on both databases.
PostgreSQL: creates and drops its own database (bench_costs) on
postgres://postgres@127.0.0.1:5432 (override with BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = "bench_costs"
USERS = 50
CONVERSATIONS_PER_USER = 20
BATCH = 20_000

RELAYS = [  # name, currency, exchange rate, billing mode
    ("Bench relay A", "USD", Decimal(1), "list"),
    ("Bench relay B", "USD", Decimal(1), "new_api"),
    ("Bench relay C", "CNY", Decimal("6.8"), "new_api"),
]
MODELS = [  # relay index, model id
    (0, "gemini-2.5-flash"), (0, "gemini-2.5-flash-lite"), (0, "gpt-4o-mini"),
    (0, "gemini-2.5-pro"), (1, "gemini-2.5-flash"), (1, "gemini-3.1-flash-lite-preview"),
    (1, "claude-3-5-sonnet"), (2, "gemini-2.5-flash"), (2, "deepseek-chat"),
    (2, "gemini-2.0-flash"),
]


# -- parent: one worker process per database -------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.rows, args.repeat)
        return
    results = []
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        results.append(run_database(db, args.rows, args.repeat))
    print()
    print(f"costs page, {args.rows:,} replies, median of {args.repeat} requests (ms)")
    print(f"{'database':<11}{'seed s':>8}{'rollup s':>10}{'month all':>11}{'year all':>10}"
          f"{'month user':>12}{'year user':>11}{'month csv':>11}")
    for r in results:
        t = r["timings"]
        print(f"{r['db']:<11}{r['seed_seconds']:>8.1f}{r['rollup_seconds']:>10.1f}"
              f"{t['month_all']['median']:>11.1f}"
              f"{t['year_all']['median']:>10.1f}{t['month_user']['median']:>12.1f}"
              f"{t['year_user']['median']:>11.1f}{t['month_csv']['median']:>11.1f}")
    worst = max(r["timings"]["month_all"]["median"] for r in results)
    print(f"target ≤ 200 ms median for the month: {'met' if worst <= 200 else 'NOT met'} "
          f"(worst {worst:.1f} ms)")


def run_database(db: str, rows: int, repeat: int) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DEBUG": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32)}
    env.pop("REDIS_URL", None)
    tmp = None
    if db == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="bench-costs-")
        env["DATABASE_URL"] = f"sqlite:///{tmp.name}/bench.sqlite3"
    else:
        _psql(f"DROP DATABASE IF EXISTS {PG_DB}")
        _psql(f"CREATE DATABASE {PG_DB}")
        env["DATABASE_URL"] = f"{PG_SERVER}/{PG_DB}"
    print(f"--- {db}: seeding {rows:,} replies …", flush=True)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--rows", str(rows), "--repeat", str(repeat)],
            cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
        ).stdout
    finally:
        if db == "postgres":
            _psql(f"DROP DATABASE IF EXISTS {PG_DB}")
        if tmp is not None:
            tmp.cleanup()
    result = json.loads(out.strip().splitlines()[-1])
    result["db"] = db
    for name, figures in result["timings"].items():
        print(f"    {name:<11} median {figures['median']:7.1f} ms   min {figures['min']:7.1f}"
              f"   max {figures['max']:7.1f}")
    return result


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql)


# -- worker: inside Django, on the database given by DATABASE_URL ---------------------------


def worker(rows: int, repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from conversations.billing.rollup import rebuild

    started = time.perf_counter()
    staff, user = seed(rows)
    seed_seconds = time.perf_counter() - started
    print(f"    seeded in {seed_seconds:.1f} s", file=sys.stderr, flush=True)
    # The rows went in as raw SQL, past the signals that keep the daily sums:
    # build them the way `manage.py rebuild_cost_rollup` does.
    started = time.perf_counter()
    day_rows = rebuild()
    analyze()
    rollup_seconds = time.perf_counter() - started
    print(f"    {day_rows:,} daily rows built in {rollup_seconds:.1f} s", file=sys.stderr,
          flush=True)
    timings = measure(staff, user, repeat)
    print(json.dumps({"seed_seconds": seed_seconds, "rollup_seconds": rollup_seconds,
                      "day_rows": day_rows, "timings": timings}))


def seed(rows: int):
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from conversations.models import ChatModel, Conversation, Message, Relay, Usage

    rng = random.Random(20250301)
    User = get_user_model()
    staff = User.objects.create_user("bench-staff", is_staff=True, is_superuser=True)
    users = User.objects.bulk_create(
        [User(username=f"bench-user-{n:02d}", password="!") for n in range(USERS)]
    )
    users = list(User.objects.filter(username__startswith="bench-user-").order_by("pk"))
    relays = [Relay.objects.create(name=name, base_url=f"http://127.0.0.1:9/{n}",
                                   currency=currency, exchange_rate=rate, billing_mode=mode)
              for n, (name, currency, rate, mode) in enumerate(RELAYS)]
    models = [ChatModel.objects.create(relay=relays[r], model_id=m, display_name=m)
              for r, m in MODELS]
    conversations = Conversation.objects.bulk_create([
        Conversation(owner=u, model=rng.choice(models), title=f"{u.username} chat {n}")
        for u in users for n in range(CONVERSATIONS_PER_USER)
    ])
    conversations = list(Conversation.objects.select_related("model__relay").order_by("pk"))

    now = timezone.now()
    year_seconds = 365 * 24 * 3600
    moments = sorted(rng.random() * year_seconds for _ in range(rows))
    message_table = Writer(connection, Message)
    usage_table = Writer(connection, Usage)

    def write_batch(batch_start):
        messages, usages = [], []
        for offset in range(batch_start, min(rows, batch_start + BATCH)):
            pk = offset + 1
            at = now - timedelta(seconds=year_seconds - moments[offset])
            conversation = conversations[rng.randrange(len(conversations))]
            model = conversation.model
            prompt, completion = rng.randint(20, 6000), rng.randint(10, 1500)
            estimated = rng.random() < 0.03
            unknown = rng.random() < 0.01
            cost = None if unknown else (
                Decimal(prompt * 3 + completion * 25) / Decimal(10_000_000)
                * model.relay.exchange_rate
            ).quantize(Decimal("1e-10"))
            messages.append({"id": pk, "conversation_id": conversation.pk, "role": "assistant",
                             "text": "bench reply", "status": "complete", "model_id": model.pk,
                             "created_at": at, "updated_at": at, "completed_at": at,
                             "finish_reason": "stop"})
            usages.append({
                "id": pk, "message_id": pk, "owner_id": conversation.owner_id,
                "conversation_id": conversation.pk, "relay_id": model.relay_id,
                "model_id": model.pk, "model_name": model.model_id, "prompt_tokens": prompt,
                "completion_tokens": completion, "total_tokens": prompt + completion,
                "estimated": estimated, "cost": cost, "currency": model.relay.currency,
                "price_source": "" if unknown else "list", "created_at": at,
                "raw": None if estimated else {"prompt_tokens": prompt,
                                               "completion_tokens": completion},
                "prices_used": None if unknown else {"model_ref": model.model_id,
                                                     "exchange_rate": "1"},
            })
        message_table.write(messages)
        usage_table.write(usages)
        print(f"    {min(rows, batch_start + BATCH):,} rows", file=sys.stderr, end="\r",
              flush=True)

    for batch_start in range(0, rows, BATCH):
        with transaction.atomic():  # one commit per batch, not per row
            write_batch(batch_start)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE conversations_conversation SET total_cost = COALESCE((SELECT SUM(u.cost) "
            "FROM conversations_usage u WHERE u.conversation_id = "
            "conversations_conversation.id), 0)"
        )
        if connection.vendor == "postgresql":
            from django.core.management.color import no_style

            for sql in connection.ops.sequence_reset_sql(no_style(), [Message, Usage]):
                cursor.execute(sql)
    return staff, users[0]


def analyze() -> None:
    """Fresh statistics (and PostgreSQL's visibility map), as autovacuum would leave them."""
    from django.db import connection

    if connection.vendor == "postgresql":
        connection.ensure_connection()
        connection.connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    else:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


class Writer:
    """Bulk-inserts rows of one model: COPY on PostgreSQL, executemany on SQLite.

    Columns not given take the model field's default, so a field added later
    does not break the bench.
    """

    def __init__(self, connection, model) -> None:
        self.connection = connection
        self.vendor = connection.vendor
        self.table = model._meta.db_table
        fields = list(model._meta.concrete_fields)
        self.columns = [f.column for f in fields]
        self.plan = []  # (column, default, converter) per column, worked out once
        for f in fields:
            if f.has_default():
                default = f.get_default()
            elif f.null:
                default = None
            else:
                default = "" if f.get_internal_type() in ("CharField", "TextField") else None
            convert = self._converter(f.get_internal_type())
            self.plan.append((f.column, convert(default) if default is not None else None,
                              convert))

    def _converter(self, kind: str):
        if kind == "JSONField":
            return json.dumps
        if self.vendor == "sqlite":
            if kind == "DateTimeField":
                return lambda value: value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
            if kind == "DecimalField":
                return str
            if kind == "BooleanField":
                return int
        return lambda value: value

    def write(self, rows: list[dict]) -> None:
        plan = self.plan
        tuples = [
            tuple(
                (convert(row[column]) if row[column] is not None else None)
                if column in row else default
                for column, default, convert in plan
            )
            for row in rows
        ]
        with self.connection.cursor() as cursor:
            if self.vendor == "postgresql":
                raw = cursor.cursor
                columns = ", ".join(f'"{c}"' for c in self.columns)
                with raw.copy(f'COPY "{self.table}" ({columns}) FROM STDIN') as copy:
                    for values in tuples:
                        copy.write_row(values)
            else:
                marks = ", ".join("?" for _ in self.columns)
                columns = ", ".join(f'"{c}"' for c in self.columns)
                cursor.cursor.executemany(
                    f'INSERT INTO "{self.table}" ({columns}) VALUES ({marks})', tuples
                )


def measure(staff, user, repeat: int) -> dict:
    from django.test import Client
    from django.utils import timezone

    today = timezone.localdate()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    month = {"period": "custom", "start": last_month_end.replace(day=1).isoformat(),
             "end": last_month_end.isoformat()}
    year = {"period": "custom", "start": (today - timedelta(days=364)).isoformat(),
            "end": today.isoformat()}
    staff_client, user_client = Client(HTTP_HOST="localhost"), Client(HTTP_HOST="localhost")
    staff_client.force_login(staff)
    user_client.force_login(user)
    cases = {
        "month_all": (staff_client, "/costs/", {**month, "user": "all"}),
        "year_all": (staff_client, "/costs/", {**year, "user": "all"}),
        "month_user": (user_client, "/costs/", month),
        "year_user": (user_client, "/costs/", year),
        "month_csv": (staff_client, "/costs/export.csv", {**month, "user": "all"}),
    }
    timings = {}
    for name, (client, url, params) in cases.items():
        samples = []
        for attempt in range(repeat + 1):
            started = time.perf_counter()
            response = client.get(url, params)
            body = b"".join(response.streaming_content) if response.streaming else \
                response.content
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}\n{body[:2000]!r}")
            if attempt:  # the first request warms caches and connections
                samples.append(elapsed)
        assert b"cost-chart" in body or url.endswith(".csv"), name
        timings[name] = {"median": statistics.median(samples), "min": min(samples),
                         "max": max(samples)}
    return timings


if __name__ == "__main__":
    main()
