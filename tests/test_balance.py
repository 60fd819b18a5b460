"""A relay's balance on the costs page, and "not available" where it serves none."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from conversations.relays.balance import balance_from
from tests.factories import make_relay, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_balance_is_the_limit_in_dollars_minus_the_usage_in_cents():
    balance = balance_from({"hard_limit_usd": 25}, {"total_usage": 1234.5})
    assert balance.used_usd == Decimal("12.345")
    assert balance.remaining_usd == Decimal("12.655")
    assert balance_from({"hard_limit_usd": 100000000}, {"total_usage": 0}).remaining_usd is None
    with pytest.raises(ValueError):
        balance_from({"error": "nope"}, {"total_usage": 1})


def test_staff_see_each_relays_balance_beside_the_products_figure(simulator):
    staff = make_user("boss", is_staff=True)
    make_relay(simulator.url, name="Honest relay")
    make_relay(simulator.url + "/nobilling", name="Quiet relay")
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("costs")).content.decode()
    assert 'hx-get="/costs/balances/' in page  # loaded after the page, never holding it up
    fragment = client.get(reverse("costs_balances")).content.decode()
    honest = fragment.split("Honest relay", 1)[1].split("</tr>", 1)[0]
    assert "$100.00" in honest
    quiet = fragment.split("Quiet relay", 1)[1].split("</tr>", 1)[0]
    assert "balance not available" in quiet and "$0" not in quiet.split("</td>")[0]
    assert "sk-test-secret-key" not in fragment


def test_balances_are_staff_only(simulator):
    make_relay(simulator.url)
    client = Client()
    client.force_login(make_user("alice"))
    assert client.get(reverse("costs_balances")).status_code == 403
    assert 'id="relay-balances"' not in client.get(reverse("costs")).content.decode()


def test_a_budgets_user_is_picked_by_name():
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    make_user("carol")
    page = client.get("/admin/conversations/budget/add/").content.decode()
    assert "admin-autocomplete" in page
    found = client.get("/admin/autocomplete/", {
        "term": "car", "app_label": "conversations", "model_name": "budget",
        "field_name": "user"}).json()
    assert [r["text"] for r in found["results"]] == ["carol"]
