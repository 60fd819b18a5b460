"""The staff's relays page: each relay's set-up and how it behaved lately."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from conversations.relays.health import WINDOW, relay_health


@login_required
def relays_page(request: HttpRequest) -> HttpResponse:
    if not request.user.is_staff:
        raise PermissionDenied
    return render(request, "conversations/relays.html", {
        "lines": relay_health(), "window_hours": int(WINDOW.total_seconds() // 3600),
    })
