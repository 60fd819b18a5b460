"""How many requests run Django's synchronous code at once.

Under ASGI, Django runs each request's views and middleware in a thread of
its own, while one event loop streams every reply to every socket. All of
them share one GIL. When a dozen request threads want it at once, the loop
waits behind each of them in turn (up to 5 ms a hand-over), and every
reply's frames are late: at 100 concurrent conversations that was the
largest delay `bench/streaming.py` measured (tens of milliseconds added to
the first chunk, over 100 ms at p99).

`SyncWorkLimit` lets `SYNC_REQUEST_LIMIT` requests (default 1) run their
synchronous part at a time; the others wait on a lock, which holds no GIL.
The work done is the same and in the same order, and the loop keeps its
share of the CPU. Request bodies are read, and responses (files included)
sent, outside the limit: it covers the middleware and the view.

Kept by measurement, for the embedded configuration: at 100 conversations
the relay → socket targets were met in 50 of 52 scenario runs with a limit
of 1, 5 of 8 with 2, 0 of 4 with 4 and 0 of 2 with none (issue 2's closing
note, bench/streaming.py).

With 0 there is no limit: a web process whose replies are generated in
worker processes (GENERATION_MODE=workers) has no streaming loop to protect,
and a slow page then holds up no other (see bench/streaming.py's head-of-line
figure, both ways).

A request that waits on something slow that is not Python work (ffmpeg, a
relay's HTTP answer) steps out of the limit meanwhile with `outside_limit()`,
so one user's video conversion does not hold up everyone's pages.

`database_work` is where async code (sockets, generations) runs its database
calls: channels' `database_sync_to_async` runs them all in one thread per
process, so on PostgreSQL each waited for the one before it to hear back
from the database. On SQLite, whose writes go one at a time anyway, they keep
that one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection

_held = threading.local()  # .slots: the semaphore this thread's request holds


class SyncWorkLimit:
    """Middleware, first in the list: the whole synchronous chain runs inside."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        limit = settings.SYNC_REQUEST_LIMIT
        self.slots = threading.BoundedSemaphore(limit) if limit > 0 else None

    def __call__(self, request):
        if self.slots is None or getattr(_held, "slots", None) is not None:
            # Already inside a request in this thread (a view calling another
            # through the test client): waiting for a slot would wait for itself.
            return self.get_response(request)
        with self.slots:
            _held.slots = self.slots
            try:
                return self.get_response(request)
            finally:
                _held.slots = None


@contextmanager
def outside_limit() -> Iterator[None]:
    """Give this request's slot to another while blocking on a subprocess or
    the network; take it back after. Outside a limited request, does nothing."""
    slots = getattr(_held, "slots", None)
    if slots is None:
        yield
        return
    _held.slots = None
    slots.release()
    try:
        yield
    finally:
        slots.acquire()
        _held.slots = slots


def database_work(function):
    """`function` as a coroutine function run off the loop: side by side in the
    loop's thread pool on PostgreSQL (each call takes a pooled connection),
    in the one shared database thread on SQLite."""
    return database_sync_to_async(function, thread_sensitive=connection.vendor == "sqlite")
