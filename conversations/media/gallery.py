"""The gallery: every picture a model made for the signed-in person, newest first.

Each picture shows with the prompt that asked for it (the user message the
reply answered), its model, its share of the reply's cost and a link to its
conversation. One query per page: the prompt and the reply's picture count
are subqueries, the rest joins.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations.models import Attachment, Message

PER_PAGE = 24


def generated_pictures(*, user):
    """The user's generated pictures, newest first, each with its `prompt` and the
    number of pictures its reply made (`siblings`)."""
    prompt = (
        Message.objects.filter(
            conversation_id=OuterRef("message__conversation_id"), role=Message.Role.USER,
            created_at__lt=OuterRef("message__created_at"),
        )
        .order_by("-created_at", "-pk")
        .values("text")[:1]
    )
    siblings = (
        Attachment.objects.filter(message_id=OuterRef("message_id"), generated=True)
        .order_by().values("message_id").annotate(n=Count("pk")).values("n")[:1]
    )
    return (
        Attachment.objects.filter(owner=user, generated=True, message__conversation__owner=user)
        .select_related("message__model", "message__usage", "message__conversation")
        .annotate(prompt=Subquery(prompt), siblings=Subquery(siblings))
        .order_by("-created_at", "-pk")
    )


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    page = Paginator(generated_pictures(user=request.user), PER_PAGE).get_page(
        request.GET.get("page"))
    return render(request, "conversations/gallery.html", {"page": page})
