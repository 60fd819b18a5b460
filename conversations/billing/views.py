"""The costs page, its CSV, and the small cost fragments of the chat pages.

Thin views: authorise → validate the filter → one read → render. Everything
is scoped to the signed-in user; staff may look at one other user or at
everyone.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from conversations.billing import reports as cost_reports
from conversations.billing.balances import relay_balances
from conversations.billing.budgets import budget_status
from conversations.models import ChatModel, Conversation, Usage
from conversations.selectors import get_conversation_for_user, sidebar_conversations

MAX_PERIOD_DAYS = 366 * 5

PERIODS = [
    ("this_month", _("This month")),
    ("last_month", _("Last month")),
    ("last_30_days", _("Last 30 days")),
    ("this_year", _("This year")),
    ("last_365_days", _("Last 365 days")),
    ("custom", _("Dates…")),
]


class CostFilterForm(forms.Form):
    period = forms.ChoiceField(choices=PERIODS, required=False, initial="this_month")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    user = forms.CharField(required=False)

    def __init__(self, *args, viewer, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.viewer = viewer

    def clean_user(self) -> str | int:
        value = (self.cleaned_data.get("user") or "").strip()
        if not self.viewer.is_staff or value in ("", "me"):
            return "me"
        if value == "all":
            return "all"
        if not value.isdigit() or not get_user_model().objects.filter(pk=int(value)).exists():
            raise forms.ValidationError(gettext("There is no such user."))
        return int(value)

    def clean(self) -> dict:
        data = super().clean()
        period = data.get("period") or "this_month"
        if period == "custom":
            start, end = data.get("start"), data.get("end")
            if not start or not end:
                raise forms.ValidationError(gettext("Give both a first and a last day."))
            if start > end:
                raise forms.ValidationError(
                    gettext("The first day must come before the last day."))
            if (end - start).days > MAX_PERIOD_DAYS:
                raise forms.ValidationError(gettext("Pick a period of at most five years."))
            data["period_obj"] = cost_reports.Period(start, end)
        else:
            data["period_obj"] = preset_period(period, timezone.localdate())
        data["period"] = period
        return data


def preset_period(name: str, today: date) -> cost_reports.Period:
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return cost_reports.Period(last.replace(day=1), last)
    if name == "last_30_days":
        return cost_reports.Period(today - timedelta(days=29), today)
    if name == "this_year":
        return cost_reports.Period(today.replace(month=1, day=1), today)
    if name == "last_365_days":
        return cost_reports.Period(today - timedelta(days=364), today)
    return cost_reports.Period(today.replace(day=1), today)


def _filter(request: HttpRequest) -> tuple[CostFilterForm, dict | None]:
    form = CostFilterForm(request.GET or None, viewer=request.user)
    if not request.GET:
        form = CostFilterForm({"period": "this_month"}, viewer=request.user)
    return form, (form.cleaned_data if form.is_valid() else None)


def _sidebar_context(request: HttpRequest) -> dict:
    return {
        "conversations": sidebar_conversations(user=request.user),
        "has_models": ChatModel.objects.usable().exists(),
    }


@login_required
@require_GET
def costs_page(request: HttpRequest) -> HttpResponse:
    form, data = _filter(request)
    report = None
    if data is not None:
        days = cost_reports.days_for(viewer=request.user, scope=data["user"],
                                     period=data["period_obj"])
        report = cost_reports.cost_report(
            days=days, period=data["period_obj"],
            per_user=request.user.is_staff and data["user"] == "all",
            substituted=cost_reports.substitutions_by_relay(
                viewer=request.user, scope=data["user"], period=data["period_obj"]),
        )
    context = {
        **_sidebar_context(request),
        "form": form,
        "report": report,
        "scope": data["user"] if data else "me",
        "users": get_user_model().objects.order_by("username").only("pk", "username")
        if request.user.is_staff else [],
        "csv_query": request.GET.urlencode(),
        # The dates shown are the period's, so a preset can be adjusted by hand.
        "start_value": report.period.start.isoformat() if report else request.GET.get("start", ""),
        "end_value": report.period.end.isoformat() if report else request.GET.get("end", ""),
    }
    return render(request, "conversations/costs.html", context,
                  status=200 if data is not None else 422)


def _csv_cell(value):
    # A cell starting with = + - @ would be a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@login_required
@require_GET
def costs_balances(request: HttpRequest) -> HttpResponse:
    """Staff: each relay's own balance beside the product's figure (loaded after the page)."""
    if not request.user.is_staff:
        return HttpResponse(gettext("Only staff can read relays' balances."), status=403)
    _form, data = _filter(request)
    if data is None:
        return HttpResponse("")
    return render(request, "conversations/_balances.html",
                  {"lines": relay_balances(period=data["period_obj"]),
                   "period": data["period_obj"]})


@login_required
@require_GET
def costs_csv(request: HttpRequest) -> HttpResponse:
    form, data = _filter(request)
    if data is None:
        return HttpResponse(" ".join(e for errors in form.errors.values() for e in errors),
                            status=422, content_type="text/plain; charset=utf-8")
    period = data["period_obj"]
    days = cost_reports.days_for(viewer=request.user, scope=data["user"], period=period)
    # Built whole rather than streamed: under ASGI Django would read a sync
    # iterator to the end before sending anyway, and the rows are daily sums
    # (a year of everyone is a few MB), not every reply.
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    writer = csv.writer(response)
    writer.writerow(cost_reports.CSV_HEADER)
    for row in cost_reports.csv_rows(days=days):
        writer.writerow([_csv_cell(cell) for cell in row])
    name = f"costs-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
@require_GET
def conversation_cost(request: HttpRequest, pk: int) -> HttpResponse:
    """The header total, the sidebar label and the budget banner, refreshed after a reply."""
    conversation = get_conversation_for_user(user=request.user, pk=pk)
    costs = cost_reports.sidebar_costs([conversation])
    html = render_to_string(
        "conversations/_conversation_cost.html",
        {"conversation": conversation, "cost": cost_reports.conversation_cost(conversation)},
        request=request,
    )
    html += render_to_string(
        "conversations/_sidebar_cost.html",
        {"item": conversation, "sidebar_cost": costs[conversation.pk], "oob": True},
        request=request,
    )
    html += render_to_string(
        "conversations/_budget_banner.html",
        {"budget": budget_status(user=request.user), "oob": True}, request=request,
    )
    return HttpResponse(html)


SORTS = {
    "recent": ["-updated_at"],
    "cost_desc": ["-total_cost", "-updated_at"],
    "cost_asc": ["total_cost", "-updated_at"],
}
FILTERS = {"all", "costly", "unknown"}
@login_required
@require_GET
def sidebar_list(request: HttpRequest) -> HttpResponse:
    """The sidebar's conversations sorted or filtered by what they cost."""
    sort = request.GET.get("sort", "recent")
    show = request.GET.get("show", "all")
    sort = sort if sort in SORTS else "recent"
    show = show if show in FILTERS else "all"
    request.session[cost_reports.SIDEBAR_SESSION_KEY] = {"sort": sort, "show": show}
    conversations = Conversation.objects.for_user(request.user).select_related("model__relay")
    if show == "costly":
        conversations = conversations.filter(total_cost__gt=0)
    elif show == "unknown":
        conversations = conversations.filter(
            Exists(Usage.objects.filter(conversation=OuterRef("pk"), cost__isnull=True))
        )
    conversations = list(conversations.order_by(*SORTS[sort])[:100])
    current = request.GET.get("current", "")
    current_pk = int(current) if current.isdigit() else None
    if current_pk is not None and all(c.pk != current_pk for c in conversations):
        # The chat one is in stays in sight whatever the filter: first, marked current.
        here = (Conversation.objects.for_user(request.user).select_related("model__relay")
                .filter(pk=current_pk).first())
        if here is not None:
            conversations.insert(0, here)
    context = {
        "items": conversations,
        "sidebar_cost_map": cost_reports.sidebar_costs(conversations),
        "current": {"pk": current_pk} if current_pk is not None else None,
        "show": show,
    }
    return render(request, "conversations/_sidebar_list.html", context)


@login_required
@require_GET
def set_price(request: HttpRequest, pk: int) -> HttpResponse:
    """Where "price unknown" links to: staff go to the model's prices, others learn who can."""
    model = get_object_or_404(ChatModel, pk=pk)
    if request.user.is_staff:
        return redirect(reverse("admin:conversations_chatmodel_change", args=[model.pk]))
    return render(request, "conversations/price_unknown.html",
                  {**_sidebar_context(request), "model": model})
