"""The page a person gets when the database is away (restarting, failed over).

Django's handler500 (chatsite/urls.py): when the error behind it is the
database not answering, a 503 that says so in plain words, whatever part of
the request met it (a view, the session, the language preference); any other
error gets Django's own 500 page. The page itself reads nothing from the
database.
"""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views import defaults

RETRY_AFTER = 5  # seconds, in the 503's Retry-After


def database_away(exception: BaseException | None) -> bool:
    """The database could not be reached or dropped the connection (not a bad query)."""
    return isinstance(exception, OperationalError | InterfaceError)


def server_error(request: HttpRequest) -> HttpResponse:
    if not database_away(sys.exc_info()[1]):
        return defaults.server_error(request)
    message = gettext(
        "The database is not answering; nothing you sent is lost. Try again in a moment."
    )
    response = render(request, "503.html", {"message": message}, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    return response
