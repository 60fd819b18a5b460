"""The search page (the sidebar's box and Ctrl+K lead here) and the exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from conversations.history import export
from conversations.history.forms import SearchForm
from conversations.history.search import SearchFilters, search
from conversations.models import Conversation
from conversations.selectors import get_conversation_for_user, sidebar_conversations

UNPROCESSABLE = 422


@login_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET)
    context: dict = {"form": form, "results": None}
    status = 200
    if not form.is_valid():
        status = UNPROCESSABLE
    elif form.cleaned_data["q"]:
        data = form.cleaned_data
        context["search_query"] = data["q"]
        filters = SearchFilters(
            model_id=data["model"].pk if data["model"] else None,
            relay_id=data["relay"].pk if data["relay"] else None,
            since=data["since"], until=data["until"], has_files=data["files"],
            has_pictures=data["pictures"],
            sort=data["sort"] or "relevance",
        )
        context["results"] = search(user=request.user, query=data["q"], filters=filters,
                                    page=data["page"] or 1)
        context["next_query"] = _with_page(request, (data["page"] or 1) + 1)
    template = ("conversations/_search_results.html" if request.htmx
                else "conversations/search.html")
    if not request.htmx:
        context["conversations"] = sidebar_conversations(user=request.user)
    return render(request, template, context, status=status)


def _with_page(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return query.urlencode()


@login_required
@require_GET
def export_page(request: HttpRequest) -> HttpResponse:
    """Settings → export: every conversation at once."""
    count = Conversation.objects.for_user(request.user).count()
    return render(request, "conversations/export.html", {
        "conversations": sidebar_conversations(user=request.user), "count": count,
    })


@login_required
@require_GET
def conversation_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    text = export.markdown(conversation, file_url=_file_url(request))
    response = HttpResponse(text, content_type="text/markdown; charset=utf-8")
    return _as_download(response, export.export_filename(conversation, "md"))


@login_required
@require_GET
def conversation_zip(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    return _zip_response(request, [conversation], export.export_filename(conversation, "zip"))


@login_required
@require_GET
def all_zip(request: HttpRequest) -> HttpResponse:
    # An iterator: one conversation's rows in memory at a time.
    conversations = (Conversation.objects.for_user(request.user).select_related("model")
                     .order_by("pk").iterator(chunk_size=100))
    return _zip_response(request, conversations, "conversations.zip")


def _zip_response(request: HttpRequest, conversations, filename: str) -> HttpResponse:
    chunks = export.zip_stream(conversations, file_url=_file_url(request))
    content = _in_sync_thread(chunks) if isinstance(request, ASGIRequest) else chunks
    return _as_download(StreamingHttpResponse(content, content_type="application/zip"), filename)


async def _in_sync_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Under ASGI, Django would read a sync iterator whole into memory before
    sending it; this steps it a chunk at a time in the thread that owns the
    request's database connection."""
    step = sync_to_async(next, thread_sensitive=True)
    while (chunk := await step(chunks, None)) is not None:
        if chunk:
            yield chunk


def _file_url(request: HttpRequest):
    return lambda attachment: request.build_absolute_uri(
        reverse("attachment", kwargs={"uuid": attachment.uuid}))


def _as_download(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    return response
