"""The costs page, its CSV, the conversation totals, and the daily sums behind them."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import replies
from conversations.billing import prices as pricing
from conversations.billing import reports as cost_reports
from conversations.billing import rollup as cost_rollup
from conversations.models import Conversation, Message, Usage, UsageDay
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db


def _spend(conversation, tokens: int, *, model=None, when=None, text="answer") -> Usage:
    model = model or conversation.model
    reply = Message.objects.create(conversation=conversation, role="assistant", text=text,
                                   status="complete", model=model)
    usage = replies.record_usage(message=reply, raw={"prompt_tokens": tokens,
                                                      "completion_tokens": 0})
    if when is not None:
        usage.created_at = when
        usage.save()
    return usage


@pytest.fixture
def world():
    """Alice on a USD relay and a CNY relay; Bob on the USD relay; a staff member."""
    alice, bob = make_user("alice"), make_user("bob")
    staff = make_user("boss", is_staff=True)
    dollars = make_relay("http://127.0.0.1:9", name="Dollar relay")
    yuan = make_relay("http://127.0.0.1:9", name="Yuan relay", currency="CNY",
                      exchange_rate=Decimal(7))
    flash = make_model(dollars, "gemini-2.5-flash", price_input=Decimal(1),
                       price_output=Decimal(0))
    mini = make_model(dollars, "gpt-4o-mini", price_input=Decimal(2), price_output=Decimal(0))
    cheap = make_model(yuan, "deepseek-chat", price_input=Decimal(1), price_output=Decimal(0))
    research = make_conversation(alice, flash, title="Research notes")
    chat = make_conversation(alice, cheap, title="Cheap chat")
    secret = make_conversation(bob, mini, title="Bob's secret plans")
    _spend(research, 1_000_000)  # $1
    _spend(research, 500_000, model=mini)  # $1
    _spend(chat, 1_000_000)  # ¥7
    _spend(secret, 3_000_000)  # $6
    return {"alice": alice, "bob": bob, "staff": staff, "research": research, "chat": chat,
            "secret": secret, "flash": flash, "mini": mini}


def _page(viewer, **params) -> str:
    client = Client()
    client.force_login(viewer)
    response = client.get(reverse("costs"), params)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def _table(html: str, table_id: str) -> str:
    return html.split(f'id="{table_id}"')[1].split("</table>")[0]


def test_the_costs_page_breaks_this_months_spending_down_by_day_model_relay_conversation(world):
    html = _page(world["alice"])

    totals = html.split('id="cost-totals"')[1].split("</div>\n\n")[0]
    assert "$2.00" in totals and "¥7.00" in totals  # never added together
    assert 'id="cost-chart-USD"' in html and 'id="cost-chart-CNY"' in html
    today = timezone.localdate()
    bars = re.findall(r'<rect class="bar"[^>]*height="([\d.]+)"><title>([^<]*)</title>', html)
    assert len([b for b in bars if "$" in b[1]]) == today.day  # one bar a day this month
    assert any(float(h) == 160 and today.strftime("%-d %b %Y") in t for h, t in bars)
    models = _table(html, "cost-by-model")
    assert "gemini-2.5-flash" in models and "gpt-4o-mini" in models and "deepseek-chat" in models
    relays = _table(html, "cost-by-relay")
    assert "Dollar relay" in relays and "$2.00" in relays and "¥7.00" in relays
    conversations = _table(html, "cost-by-conversation")
    assert "Research notes" in conversations and "Cheap chat" in conversations
    assert 'id="cost-by-user"' not in html


def test_a_user_sees_only_their_own_costs_whatever_they_ask_for(world):
    html = _page(world["alice"], user="all")
    assert "Bob&#x27;s secret plans" not in html and "Bob's secret plans" not in html
    assert "$6.00" not in html
    html = _page(world["alice"], user=str(world["bob"].pk))
    assert "secret" not in html


def test_staff_see_everyone_with_a_per_user_breakdown_or_one_chosen_user(world):
    html = _page(world["staff"], user="all")
    users = _table(html, "cost-by-user")
    assert "alice" in users and "bob" in users and "$6.00" in users
    assert "$8.00" in html.split('id="cost-totals"')[1].split("</div>\n\n")[0]

    html = _page(world["staff"], user=str(world["bob"].pk))
    assert "Bob&#x27;s secret plans" in _table(html, "cost-by-conversation")
    assert "Research notes" not in html


def test_staff_asking_for_a_user_that_does_not_exist_get_a_plain_error(world):
    client = Client()
    client.force_login(world["staff"])
    response = client.get(reverse("costs"), {"user": "99999"})
    assert response.status_code == 422
    assert "There is no such user." in response.content.decode()


def test_a_backwards_period_is_refused_in_plain_words(world):
    client = Client()
    client.force_login(world["alice"])
    response = client.get(reverse("costs"), {"period": "custom", "start": "2025-05-02",
                                              "end": "2025-05-01"})
    assert response.status_code == 422
    assert "The first day must come before the last day." in response.content.decode()


def test_the_period_decides_what_is_counted(world):
    last_month = timezone.localdate().replace(day=1) - timedelta(days=3)
    when = timezone.make_aware(timezone.datetime.combine(last_month, timezone.datetime.min.time())
                               ) + timedelta(hours=12)
    _spend(world["research"], 4_000_000, when=when)  # $4, last month

    assert "$4.00" not in _page(world["alice"]).split('id="cost-totals"')[1][:400]
    html = _page(world["alice"], period="last_month")
    assert "$4.00" in html.split('id="cost-totals"')[1][:400]
    html = _page(world["alice"], period="custom", start=last_month.isoformat(),
                 end=timezone.localdate().isoformat())
    assert "$6.00" in html.split('id="cost-totals"')[1][:400]


def test_unknown_prices_are_counted_apart_never_as_zero(world):
    unpriced = make_model(world["flash"].relay, "private-model-x")
    _spend(make_conversation(world["alice"], unpriced, title="Mystery"), 1000, model=unpriced)
    html = _page(world["alice"])
    assert "1 with unknown price" in html
    assert "1 price unknown" in _table(html, "cost-by-model")


def test_the_csv_has_a_line_per_day_user_relay_model_and_currency(world):
    client = Client()
    client.force_login(world["staff"])
    response = client.get(reverse("costs_csv"), {"user": "all"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert re.match(r'attachment; filename="costs-\d{4}-\d\d-01-\d{4}-\d\d-\d\d\.csv"',
                    response["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 4
    by_model = {(r["user"], r["model"], r["currency"]): r for r in rows}
    assert by_model[("alice", "deepseek-chat", "CNY")]["cost"] == "7.0000000000"
    assert by_model[("bob", "gpt-4o-mini", "USD")]["prompt_tokens"] == "3000000"
    assert sum(Decimal(r["cost"]) for r in rows if r["currency"] == "USD") == Decimal(8)


def test_a_users_csv_holds_only_their_rows(world):
    client = Client()
    client.force_login(world["bob"])
    body = client.get(reverse("costs_csv"), {"user": "all"}).content
    assert b"alice" not in body and b"bob" in body


def test_names_that_look_like_spreadsheet_formulas_are_defused_in_the_csv(world):
    evil = make_model(world["flash"].relay, "=HYPERLINK(\"http://x\")", price_input=Decimal(1),
                      price_output=Decimal(0))
    _spend(make_conversation(world["alice"], evil), 1000, model=evil)
    client = Client()
    client.force_login(world["alice"])
    body = client.get(reverse("costs_csv")).content.decode()
    assert "'=HYPERLINK" in body
    assert "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body


def test_the_conversation_header_shows_its_total_per_currency(world):
    mixed = world["research"]
    _spend(mixed, 1_000_000, model=world["chat"].model)  # ¥7 in a dollar conversation
    client = Client()
    client.force_login(world["alice"])
    html = client.get(reverse("conversation", args=[mixed.pk])).content.decode()
    header = html.split('id="conversation-cost"')[1].split("</span>\n")[0]
    assert "¥7.00 + $2.00" in header


def test_the_cost_fragment_refreshes_header_sidebar_and_banner_for_the_owner_only(world):
    client = Client()
    client.force_login(world["alice"])
    url = reverse("cost_conversation", args=[world["research"].pk])
    html = client.get(url).content.decode()
    assert 'id="conversation-cost"' in html and "$2.00" in html
    assert f'id="conversation-item-{world["research"].pk}-cost" hx-swap-oob="true"' in html
    assert 'id="budget-banner" hx-swap-oob="true"' in html
    client.force_login(world["bob"])
    assert client.get(url).status_code == 404


def test_the_sidebar_shows_each_conversations_cost_and_sorts_and_filters_by_it(world):
    alice = world["alice"]
    cheap = make_conversation(alice, world["flash"], title="Tiny")
    _spend(cheap, 10_000)  # $0.01
    empty = make_conversation(alice, world["flash"], title="Nothing yet")
    client = Client()
    client.force_login(alice)

    page = client.get(reverse("conversation", args=[cheap.pk])).content.decode()
    assert re.search(rf'id="conversation-item-{world["research"].pk}-cost">\$2\.00', page)

    html = client.get(reverse("cost_sidebar"), {"sort": "cost_desc"}).content.decode()
    order = re.findall(r'id="conversation-item-(\d+)"', html)
    assert order[:3] == [str(world["chat"].pk), str(world["research"].pk), str(cheap.pk)]
    html = client.get(reverse("cost_sidebar"), {"sort": "cost_asc", "show": "costly"}).content
    order = re.findall(rb'id="conversation-item-(\d+)"', html)
    assert str(empty.pk).encode() not in order and order[0] == str(cheap.pk).encode()
    # ... unless one is in it: the chat on screen stays in sight, first and current.
    html = client.get(reverse("cost_sidebar"),
                      {"sort": "cost_asc", "show": "costly", "current": empty.pk}).content
    order = re.findall(rb'id="conversation-item-(\d+)"', html)
    assert order[0] == str(empty.pk).encode() and order.count(str(empty.pk).encode()) == 1

    # the choice is remembered: the next page re-sorts its sidebar on load
    page = client.get(reverse("conversation", args=[cheap.pk])).content.decode()
    assert 'hx-trigger="change, load"' in page
    assert '<option value="cost_asc" selected>' in page


def test_the_sidebar_can_show_conversations_with_unknown_prices(world):
    unpriced = make_model(world["flash"].relay, "private-model-x")
    mystery = make_conversation(world["alice"], unpriced, title="Mystery")
    _spend(mystery, 1000, model=unpriced)
    client = Client()
    client.force_login(world["alice"])
    html = client.get(reverse("cost_sidebar"), {"show": "unknown"}).content.decode()
    assert re.findall(r'id="conversation-item-(\d+)"', html) == [str(mystery.pk)]


# -- the daily sums -----------------------------------------------------------------


def _sums() -> dict:
    return {
        (d.day, d.conversation_id, d.relay_id, d.model_name, d.currency):
        (d.replies, d.priced, d.estimated, d.prompt_tokens, d.completion_tokens, d.cost)
        for d in UsageDay.objects.exclude(replies=0)
    }


def test_the_daily_sums_follow_every_write_and_match_a_rebuild(world):
    research = world["research"]
    moved = _spend(research, 2_000_000, when=timezone.now() - timedelta(days=40))
    deleted = _spend(research, 3_000_000)
    recomputed = _spend(research, 1_000_000)
    world["flash"].price_input = Decimal(5)
    world["flash"].save()

    pricing.recompute_costs(usages=Usage.objects.filter(pk=recomputed.pk))
    deleted.message.delete()
    incremental = _sums()

    assert cost_rollup.rebuild() > 0
    assert _sums() == incremental
    day_of_move = timezone.localdate(moved.created_at)
    assert incremental[(day_of_move, research.pk, research.model.relay_id, "gemini-2.5-flash",
                        "USD")][0] == 1


def test_deleting_a_conversation_takes_its_daily_sums_with_it(world):
    world["research"].delete()
    assert not UsageDay.objects.filter(conversation_id=world["research"].pk).exists()
    assert _sums() == (cost_rollup.rebuild() and _sums())


def test_days_are_local_days_across_a_daylight_saving_change(settings, world):
    settings.TIME_ZONE = "Europe/Berlin"
    conversation = world["research"]
    # 2025-03-30: clocks go from 02:00 to 03:00. 23:30 UTC on the 29th is
    # 00:30 local on the 30th; 22:30 UTC on the 30th is 00:30 on the 31st.
    from datetime import UTC, datetime

    for moment in ["2025-03-29T22:30", "2025-03-29T23:30", "2025-03-30T21:59",
                   "2025-03-30T22:30"]:
        _spend(conversation, 1000, when=datetime.fromisoformat(moment).replace(tzinfo=UTC))
    incremental = {k: v for k, v in _sums().items() if k[0].year == 2025}
    cost_rollup.rebuild()
    rebuilt = {k: v for k, v in _sums().items() if k[0].year == 2025}

    assert rebuilt == incremental
    assert sorted((k[0], v[0]) for k, v in rebuilt.items()) == [
        (date(2025, 3, 29), 1), (date(2025, 3, 30), 2), (date(2025, 3, 31), 1)]
    segments = cost_reports.utc_offset_segments(
        datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    assert [(until.isoformat(), minutes) for until, minutes in segments] == [
        ("2025-03-30T01:00:00+00:00", 60), ("2025-04-01T00:00:00+00:00", 120)]


def test_a_conversation_total_in_the_database_is_the_sum_of_its_replies(world):
    research = Conversation.objects.get(pk=world["research"].pk)
    assert research.total_cost == Decimal(2)


def test_models_are_named_as_the_chat_names_them_and_one_day_is_one_bar(world):
    thinking = make_model(world["flash"].relay, "gemini-2.5-flash@reasoning",
                          display_name="Thinking model")
    chat = make_conversation(world["alice"], thinking, title="Deep thoughts")
    _spend(chat, 1000, model=thinking)
    client = Client()
    client.force_login(world["alice"])
    today = timezone.localdate().isoformat()

    html = client.get(reverse("costs"), {"period": "custom", "start": today, "end": today}
                      ).content.decode()

    models = _table(html, "cost-by-model")
    assert "Thinking model" in models and "gemini-2.5-flash@reasoning" not in models
    bars = re.findall(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', html)
    assert bars and all(float(width) <= 48 for _, width in bars)  # a bar, not a slab
    axis = html.split('class="chart-axis')[1].split("</div>")[0]
    assert axis.count("<span>") == 1 and "one-day" in axis  # the date once, not at both ends
