"""The page a person gets when the database is away (restarting, failed over).

Django's handler500 (chatsite/urls.py): when the error behind it is the
database not answering, a 503 that says so in plain words, whatever part of
the request met it (a view, the session, the language preference); any other
error gets Django's own 500 page. The page itself reads nothing from the
database.

`WhileDatabaseAway` (middleware): once a request has waited the pool's whole
timeout for a connection, the requests right behind it are answered at once.
SyncWorkLimit runs requests one at a time, so each would otherwise wait out
that timeout in turn: three reloads during an outage took 5, 9 and 9 s (the
last two served only once the database was back), ten would take 50.
"""

from __future__ import annotations

import sys
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views import defaults
from psycopg_pool import PoolTimeout

RETRY_AFTER = 5  # seconds, in the 503's Retry-After
# How long after a request found no connection the next ones are answered at
# once; the first after it tries the database again.
ANSWER_AT_ONCE_FOR = 2.0

_no_connection_at: float | None = None  # time.monotonic() a request last found none


def database_away(exception: BaseException | None) -> bool:
    """The database could not be reached, dropped the connection or timed out (on
    PostgreSQL a bad query is a ProgrammingError, not one of these)."""
    return isinstance(exception, OperationalError | InterfaceError)


def _no_connection(exception: BaseException | None) -> bool:
    """The pool had no connection to give within its timeout."""
    while exception is not None:
        if isinstance(exception, PoolTimeout):
            return True
        exception = exception.__cause__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    exception = sys.exc_info()[1]
    if not database_away(exception):
        return defaults.server_error(request)
    if _no_connection(exception):
        global _no_connection_at
        _no_connection_at = time.monotonic()
    return _away(request)


def _away(request: HttpRequest) -> HttpResponse:
    message = gettext(
        "The database is not answering; nothing you sent is lost. Try again in a moment."
    )
    response = render(request, "503.html", {"message": message}, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    return response


class WhileDatabaseAway:
    """Middleware, after LocaleMiddleware (the page in the person's language) and
    before anything that reads the database."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        seen = _no_connection_at
        if seen is not None and time.monotonic() - seen < ANSWER_AT_ONCE_FOR:
            return _away(request)
        return self.get_response(request)
