"""Relays and models are data: created from the environment, keys kept secret."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from conversations.models import ChatModel, Relay
from conversations.relays import setup
from tests.factories import make_relay, make_user

pytestmark = pytest.mark.django_db


def test_the_simulator_relay_is_created_when_no_relay_is_configured(settings):
    settings.RELAY_BASE_URL = ""
    relay = setup.ensure_default_relay(simulator_url="http://127.0.0.1:9/simulator")
    assert relay.is_simulated
    assert relay.base_url == "http://127.0.0.1:9/simulator"
    assert ChatModel.objects.filter(relay=relay, accepts_image=True).exists()
    # A process on another port finds the same relay and leaves its address alone: each
    # process reaches its own mount (tests/test_security_simulator.py).
    again = setup.ensure_default_relay(simulator_url="http://127.0.0.1:10/simulator")
    assert again.pk == relay.pk and again.base_url.endswith(":9/simulator")
    assert Relay.objects.count() == 1


def test_a_configured_relay_and_its_models_are_created_once(settings):
    settings.RELAY_BASE_URL = "https://relay.example.com/"
    settings.RELAY_API_KEY = "sk-live-123"
    settings.RELAY_DIALECT = "media-url-parts"
    settings.RELAY_MODELS = ["gemini-2.5-flash", "gpt-4o-mini"]
    relay = setup.ensure_default_relay()
    setup.ensure_default_relay()
    assert Relay.objects.count() == 1
    assert relay.base_url == "https://relay.example.com"
    assert relay.dialect == "media-url-parts"
    assert relay.api_key == "sk-live-123"
    assert sorted(relay.models.values_list("model_id", flat=True)) == [
        "gemini-2.5-flash", "gpt-4o-mini"
    ]
    assert not relay.is_simulated


def test_relay_keys_are_encrypted_at_rest():
    relay = make_relay("https://relay.example.com", api_key="sk-very-secret-value")
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM conversations_relay WHERE id = %s", [relay.pk])
        stored = cursor.fetchone()[0]
    assert "sk-very-secret-value" not in stored
    assert Relay.objects.get(pk=relay.pk).api_key == "sk-very-secret-value"


def test_the_admin_never_shows_a_stored_key_and_keeps_it_when_left_empty():
    admin = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay("https://relay.example.com", api_key="sk-very-secret-value")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/conversations/relay/{relay.pk}/change/")
    assert page.status_code == 200
    assert b"sk-very-secret-value" not in page.content
    response = client.post(f"/admin/conversations/relay/{relay.pk}/change/", {
        "name": relay.name, "base_url": relay.base_url, "api_key": "", "dialect": "openai",
        "is_active": "on", "currency": "USD", "exchange_rate": "1", "billing_mode": "list",
        "price_multiplier": "1", "group_ratio": "1",
        "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0",
    })
    assert response.status_code == 302, response.content[:2000]
    assert Relay.objects.get(pk=relay.pk).api_key == "sk-very-secret-value"


def test_models_are_imported_from_the_relays_model_list(simulator):
    admin = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay(simulator.url)
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/conversations/relay/", {
        "action": "import_models", "_selected_action": [relay.pk],
    }, follow=True)
    assert response.status_code == 200
    imported = set(relay.models.values_list("model_id", flat=True))
    assert {"gemini-2.5-flash", "gpt-4o-mini"} <= imported
    # Importing again adds nothing twice.
    client.post("/admin/conversations/relay/", {
        "action": "import_models", "_selected_action": [relay.pk],
    })
    assert relay.models.count() == len(imported)


def test_an_unreachable_relay_import_reports_a_readable_error():
    admin = make_user("root", is_staff=True, is_superuser=True)
    relay = make_relay("http://127.0.0.1:9")
    client = Client()
    client.force_login(admin)
    response = client.post("/admin/conversations/relay/", {
        "action": "import_models", "_selected_action": [relay.pk],
    }, follow=True)
    assert b"Could not" in response.content
    assert relay.models.count() == 0
