"""The search page: validate the filters, search, render.

The sidebar's search box (Ctrl+K) leads here.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from conversations.history.forms import SearchForm
from conversations.history.search import SearchFilters, search
from conversations.selectors import sidebar_conversations

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
