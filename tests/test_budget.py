"""Monthly budgets: a warning at 80%, a plain refusal at 100%, before anything is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from conversations import replies
from conversations.billing import budgets
from conversations.errors import ServiceError
from conversations.models import Budget, Message, Usage
from tests.conftest import require_service
from tests.factories import make_conversation, make_model, make_relay, make_user

ROOT = Path(__file__).resolve().parents[1]
HTMX = {"HTTP_HX_REQUEST": "true"}


def _spend(conversation, dollars: str, *, status: str = "complete") -> Usage:
    """A finished reply that cost `dollars` (the model is priced $1 per million input)."""
    reply = Message.objects.create(conversation=conversation, role="assistant", text="answer",
                                   status=status, model=conversation.model)
    tokens = int(Decimal(dollars) * 1_000_000)
    return replies.record_usage(message=reply, raw={"prompt_tokens": tokens,
                                                     "completion_tokens": 0})


@pytest.fixture
def setup(db, simulator):
    owner = make_user("budgeted")
    relay = make_relay(simulator.url)
    model = make_model(relay, "gemini-2.5-flash", price_input=Decimal(1),
                       price_output=Decimal(0))
    conversation = make_conversation(owner, model, title="Spending")
    Message.objects.create(conversation=conversation, role="user", text="Hello")
    client = Client()
    client.force_login(owner)
    return owner, conversation, client


def test_without_a_budget_nothing_is_limited(setup):
    owner, conversation, _client = setup
    _spend(conversation, "1000")
    assert budgets.budget_status(user=owner) is None
    budgets.enforce_budget(owner=owner)  # no refusal


def test_under_80_percent_there_is_no_warning(setup):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "7.90")
    html = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert "budget-banner" not in html.split('id="budget-banner"')[1].split("</div>")[0]


def test_at_80_percent_the_user_is_warned(setup):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "8.25")
    html = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert "You have used 83% of your monthly budget: $8.25 of $10.00" in html
    status = budgets.budget_status(user=owner)
    assert status.level == "warning"


def test_at_100_percent_a_message_is_refused_before_anything_is_sent(setup, simulator):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "10.00")
    messages_before = Message.objects.count()

    response = client.post(reverse("message_create", args=[conversation.pk]),
                           {"text": "One more question"}, **HTMX)

    assert response.status_code == 422
    html = response.content.decode()
    # The composer points to the banner, which says it in full (and is sent along).
    assert "Not sent: your monthly budget is used up (see above)." in html
    assert 'id="budget-banner" hx-swap-oob="true"' in html
    assert "Your monthly budget of $10.00 is used up" in html
    assert Message.objects.count() == messages_before
    assert simulator.requests == []
    page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert "is used up" in page and 'class="budget-banner exceeded"' in page


def test_a_retry_is_refused_as_well(setup, simulator):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(5))
    failed = Message.objects.create(conversation=conversation, role="assistant",
                                    status="failed", model=conversation.model, error="boom")
    _spend(conversation, "6")

    response = client.post(reverse("message_retry", args=[failed.pk]), **HTMX)

    assert response.status_code == 422
    assert "is used up" in response.content.decode()
    assert not Message.objects.filter(status="pending").exists()
    assert simulator.requests == []


def test_a_new_conversation_refused_by_the_budget_leaves_nothing_behind(setup):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(1))
    _spend(conversation, "2")
    conversations_before = owner.conversations.count()

    response = client.post(reverse("conversation_new"),
                           {"model": conversation.model_id, "text": "Hi"}, **HTMX)

    assert response.status_code == 422
    assert "is used up" in response.content.decode()
    assert owner.conversations.count() == conversations_before


def test_raising_the_budget_lets_messages_through_again(setup):
    owner, conversation, _client = setup
    budget = Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "10")
    with pytest.raises(ServiceError):
        budgets.enforce_budget(owner=owner)
    budget.monthly_limit = Decimal(20)
    budget.save()
    budgets.enforce_budget(owner=owner)


def test_replies_still_being_written_hold_back_their_likely_cost(setup):
    owner, conversation, _client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "4")
    _spend(conversation, "4")
    other = make_conversation(owner, conversation.model)
    Message.objects.create(conversation=other, role="assistant", status="streaming",
                           model=conversation.model)

    status = budgets.budget_status(user=owner)

    assert (status.spent, status.reserved, status.in_flight) == (Decimal(8), Decimal(4), 1)
    with pytest.raises(ServiceError, match="still being written"):
        budgets.enforce_budget(owner=owner)


def test_last_months_spending_does_not_count(setup):
    owner, conversation, _client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    usage = _spend(conversation, "50")
    usage.created_at = budgets.month_start() - timedelta(minutes=1)
    usage.save()
    assert budgets.budget_status(user=owner).spent == 0


def test_spending_in_another_currency_is_shown_apart_not_added(setup):
    owner, conversation, client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10), currency="USD")
    relay = make_relay("http://127.0.0.1:9", currency="CNY", exchange_rate=Decimal(7))
    yuan_model = make_model(relay, "gemini-2.5-flash", price_input=Decimal(1),
                            price_output=Decimal(0))
    _spend(make_conversation(owner, yuan_model), "2")  # $2 list × 7 = ¥14
    _spend(conversation, "8.5")

    status = budgets.budget_status(user=owner)

    assert status.spent == Decimal("8.5")
    assert status.other_currencies == {"CNY": Decimal(14)}
    html = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert "Not counted against it: ¥14.00" in html


def test_the_budget_admin_shows_this_months_spending(setup):
    owner, conversation, _client = setup
    Budget.objects.create(user=owner, monthly_limit=Decimal(10))
    _spend(conversation, "2.5")
    staff = make_user("admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    html = client.get(reverse("admin:conversations_budget_changelist")).content.decode()
    assert "$2.50 (25%)" in html


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_racing_posts_cannot_both_take_the_last_of_the_budget(database, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings", "DEBUG": "false"}
    env.pop("REDIS_URL", None)
    cleanup = None
    if database == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'race.sqlite3'}"
    else:
        require_service("PostgreSQL", "127.0.0.1", 5432)
        import psycopg

        server = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
        server = server.rsplit("/", 1)[0]
        name = f"budget_race_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")

        def cleanup():
            with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
                connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

        env["DATABASE_URL"] = f"{server}/{name}"
    try:
        result = subprocess.run(
            [sys.executable, "tests/budget_race.py"], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=180,
        )
    finally:
        if cleanup:
            cleanup()
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["admitted"] == 1
    assert len(outcome["started"]) == 1 and outcome["pending"] == 1
    assert len(outcome["refused"]) == 1
    assert "still being written" in outcome["refused"][0]
