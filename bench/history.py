"""How fast are the sidebar, search and a long conversation on a large history?

Seeds 10,000 conversations of 100 messages each (1,000,000 messages of mixed
English and Chinese) for one user among 50 (the other 49 have 20 each), plus
one conversation of 600 messages (300 short markdown replies), then times,
through Django's full stack (middleware, queries, templates):

- the sidebar's first page and its hundredth page (keyset, 50 a page);
- a search for a Chinese two-character word (智谱) and for an English word;
- opening the 600-message conversation (its first visit renders the replies
  saved before their HTML was kept; every later visit shows the kept HTML);

on SQLite and on PostgreSQL.

    .venv/bin/python bench/history.py                 # both databases
    .venv/bin/python bench/history.py --db sqlite --conversations 2000

Targets: sidebar ≤ 50 ms median on both; search ≤ 300 ms on PostgreSQL and
≤ 500 ms on SQLite; the 600-message conversation ≤ 150 ms.
PostgreSQL: creates and drops its own database (BENCH_POSTGRES_DB, default
bench_history) on postgres://postgres@127.0.0.1:5432 (BENCH_POSTGRES_URL).
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
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("BENCH_POSTGRES_DB", "bench_history")
USERS = 50
OTHER_CONVERSATIONS = 20
MESSAGES_PER_CONVERSATION = 100
LONG_TURNS = 300
BATCH = 20_000

ENGLISH = [
    "How do I configure the relay for streaming replies?",
    "The model answered with a long explanation about sourdough starters.",
    "Please summarise this PDF and list the three main points.",
    "Compare the latency of the two gateways under load.",
    "Here is the **markdown** table you asked for, with `code` inline.",
    "Try lowering the temperature and raising max tokens.",
    "What is the difference between a token and a character?",
    "The invoice shows a charge for cached input tokens.",
]
CHINESE = [
    "我们昨天试用了新的大模型，效果还不错。",
    "这个中转站的价格比官方便宜很多。",
    "请帮我把这段话翻译成英文，并保持语气。",
    "上传的视频太大了，需要先压缩一下。",
    "今天的天气很好，适合出去散步。",
    "这个问题的关键在于上下文窗口的长度。",
]
RARE_CHINESE = "顺便说一下，智谱清言的新版本支持更长的上下文。"  # in 1 message of 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.conversations, args.repeat)
        return
    results = [run_database(db, args.conversations, args.repeat)
               for db in (["sqlite", "postgres"] if args.db == "both" else [args.db])]
    print()
    print(f"history, {args.conversations:,} conversations × {MESSAGES_PER_CONVERSATION} "
          f"messages for one user of {USERS}; median of {args.repeat} requests (ms)")
    names = ["sidebar_page_1", "sidebar_page_100", "search_zh", "search_en",
             "open_600_first", "open_600"]
    print(f"{'database':<10}{'seed s':>8}" + "".join(f"{n:>18}" for n in names))
    for r in results:
        t = r["timings"]
        print(f"{r['db']:<10}{r['seed_seconds']:>8.0f}"
              + "".join(f"{t[n]['median']:>18.1f}" for n in names))
    for r in results:
        print(f"{r['db']}: 600-message page {r['page_bytes']:,} bytes; search 智谱 found "
              f"{r['zh_hits']} on its first page")


def run_database(db: str, conversations: int, repeat: int) -> dict:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DEBUG": "false",
           "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32)}
    env.pop("REDIS_URL", None)
    tmp = None
    if db == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="bench-history-")
        env["DATABASE_URL"] = f"sqlite:///{tmp.name}/bench.sqlite3"
    else:
        _psql(f"DROP DATABASE IF EXISTS {PG_DB}")
        _psql(f"CREATE DATABASE {PG_DB}")
        env["DATABASE_URL"] = f"{PG_SERVER}/{PG_DB}"
    print(f"--- {db}: seeding {conversations:,} conversations …", flush=True)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--worker", "--conversations", str(conversations),
             "--repeat", str(repeat)],
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
        print(f"    {name:<17} median {figures['median']:7.1f} ms   min {figures['min']:7.1f}"
              f"   max {figures['max']:7.1f}")
    return result


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as connection:
        connection.execute(sql)


# -- worker: inside Django, on the database given by DATABASE_URL ---------------------------


def worker(conversations: int, repeat: int) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    user, long_conversation = seed(conversations)
    seed_seconds = time.perf_counter() - started
    print(f"    seeded in {seed_seconds:.0f} s", file=sys.stderr, flush=True)
    from costs import analyze

    analyze()
    print(json.dumps({"seed_seconds": seed_seconds,
                      **measure(user, long_conversation, repeat)}))


def _text(rng: random.Random) -> str:
    parts = [rng.choice(ENGLISH if rng.random() < 0.5 else CHINESE)
             for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.005:
        parts.insert(rng.randrange(len(parts) + 1), RARE_CHINESE)
    return " ".join(parts)


def seed(count: int):
    from costs import Writer
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.utils import timezone

    from conversations.models import ChatModel, Conversation, Message, Relay
    from conversations.search_terms import index_text

    rng = random.Random(20261201)
    User = get_user_model()
    User.objects.bulk_create([User(username=f"bench-user-{n:02d}", password="!")
                              for n in range(USERS)])
    users = list(User.objects.filter(username__startswith="bench-user-").order_by("pk"))
    relay = Relay.objects.create(name="Bench relay", base_url="http://127.0.0.1:9/")
    model = ChatModel.objects.create(relay=relay, model_id="gemini-2.5-flash")
    now = timezone.now()
    owners = [users[0]] * count + [u for u in users[1:] for _ in range(OTHER_CONVERSATIONS)]
    Conversation.objects.bulk_create([
        Conversation(owner=owner, model=model, title=_text(rng)[:60], title_source="model",
                     created_at=now - timedelta(days=365),
                     updated_at=now - timedelta(seconds=rng.randrange(365 * 86400)))
        for owner in owners
    ], batch_size=5000)
    long_conversation = Conversation.objects.create(owner=users[0], model=model,
                                                    title="A long conversation",
                                                    updated_at=now)
    ids = list(Conversation.objects.order_by("pk").values_list("pk", flat=True))
    table = Writer(connection, Message)
    rows: list[dict] = []
    pk = 0

    def flush() -> None:
        with transaction.atomic():
            table.write(rows)
        rows.clear()
        print(f"    {pk:,} messages", file=sys.stderr, end="\r", flush=True)

    for conversation_id in ids:
        turns = (LONG_TURNS * 2 if conversation_id == long_conversation.pk
                 else MESSAGES_PER_CONVERSATION)
        start = now - timedelta(days=30)
        parent = None
        for n in range(turns):
            pk += 1
            text = _text(rng)
            if conversation_id == long_conversation.pk and n % 2:
                text = f"Reply {n}: **bold** words, a `snippet`, and a list:\n\n- one\n- two"
            at = start + timedelta(seconds=n)
            rows.append({"id": pk, "conversation_id": conversation_id, "parent_id": parent,
                         "role": "user" if n % 2 == 0 else "assistant", "text": text,
                         "search_text": index_text(text), "status": "complete",
                         "finish_reason": "" if n % 2 == 0 else "stop",
                         "model_id": None if n % 2 == 0 else model.pk,
                         "created_at": at, "updated_at": at, "completed_at": at})
            parent = pk
            if len(rows) >= BATCH:
                flush()
    if rows:
        flush()
    if connection.vendor == "postgresql":
        from django.core.management.color import no_style

        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Message]):
                cursor.execute(sql)
    return users[0], long_conversation


def measure(user, long_conversation, repeat: int) -> dict:
    from django.test import Client

    from conversations.models import Conversation
    from conversations.selectors import SIDEBAR_PAGE

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    listed = (Conversation.objects.for_user(user).in_sidebar().filter(pinned=False)
              .order_by("-updated_at", "-pk"))
    # The row before page 100 starts (or before the last full page of a smaller seed).
    page = min(100, listed.count() // SIDEBAR_PAGE)
    at_100 = listed[SIDEBAR_PAGE * (page - 1) - 1]
    cursor = f"{at_100.updated_at.isoformat()}_{at_100.pk}"
    htmx = {"HTTP_HX_REQUEST": "true"}
    conversation_url = f"/c/{long_conversation.pk}/"

    def timed(url, params=None, headers=None, *, first_only=False):
        samples, body = [], b""
        for attempt in range(1 if first_only else repeat + 1):
            started = time.perf_counter()
            response = client.get(url, params or {}, **(headers or {}))
            body = response.content
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{url}: HTTP {response.status_code}\n{body[:2000]!r}")
            if attempt or first_only:
                samples.append(elapsed)
        return {"median": statistics.median(samples), "min": min(samples),
                "max": max(samples)}, body

    timings = {}
    timings["sidebar_page_1"], _ = timed("/sidebar/more/")
    timings["sidebar_page_100"], page_100 = timed("/sidebar/more/", {"after": cursor})
    assert page_100.count(b'<li id="conversation-item-') == SIDEBAR_PAGE
    timings["search_zh"], zh = timed("/search/", {"q": "智谱"}, htmx)
    timings["search_en"], _ = timed("/search/", {"q": "sourdough starters"}, htmx)
    timings["open_600_first"], _ = timed(conversation_url, first_only=True)
    timings["open_600"], page = timed(conversation_url)
    return {"timings": timings, "page_bytes": len(page),
            "zh_hits": zh.count(b'class="search-hit"')}


if __name__ == "__main__":
    main()
