"""Relay addresses: the app sends requests and keys only where a relay can be."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from conversations.models import Relay
from conversations.relays import setup
from conversations.relays.addresses import RelayAddressError, check_relay_url
from tests.factories import make_relay, make_user

ALWAYS_REFUSED = [
    "http://169.254.169.254",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]",
    "http://[::ffff:a9fe:a9fe]/",
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://169.254.43518/",
    "http://[fe80::1]/",
    "http://[fd00:ec2::254]/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://100.100.100.200/",
    "http://0.0.0.0:8000/",
    "http://[::]:8000/",
    "ftp://127.0.0.1/",
    "ftp://relay.example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/",
    "http://user:sk-123@relay.example.com/",
]
PRIVATE = [
    "http://127.0.0.1:3000",
    "http://localhost:3000/v1",
    "http://[::1]:3000/",
    "http://[::ffff:127.0.0.1]:3000/",
    "http://2130706433:3000/",
    "http://10.0.0.5:3000",
    "http://192.168.1.20:3000",
    "http://172.16.3.4/",
    "http://[fd12:3456::1]/",
    "http://100.64.1.1/",
]
PUBLIC = ["https://api.example.com", "https://api.example.com/v1", "http://8.8.8.8:3000/",
          "https://[2001:4860:4860::8888]/"]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_link_local_metadata_and_other_schemes_are_refused_even_where_private_is_allowed(url):
    with pytest.raises(RelayAddressError):
        check_relay_url(url, allow_private=True)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_loopback_addresses_need_the_setting(url):
    with pytest.raises(RelayAddressError, match="RELAY_ALLOW_PRIVATE"):
        check_relay_url(url, allow_private=False)
    assert check_relay_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", PUBLIC)
def test_public_https_and_http_relays_are_accepted(url):
    assert check_relay_url(url, allow_private=False) == url


def test_a_host_name_is_judged_by_what_it_resolves_to(monkeypatch):
    answers = {"metadata.attacker.example": "169.254.169.254",
               "lan.attacker.example": "10.1.2.3", "relay.example.org": "93.184.215.14"}

    def fake_dns(host, port, *args, **kwargs):  # the outside world: DNS
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    with pytest.raises(RelayAddressError, match="metadata"):
        check_relay_url("https://metadata.attacker.example/", allow_private=True)
    with pytest.raises(RelayAddressError, match="RELAY_ALLOW_PRIVATE"):
        check_relay_url("https://lan.attacker.example/", allow_private=False)
    assert check_relay_url("https://lan.attacker.example/", allow_private=True)
    assert check_relay_url("https://relay.example.org/v1", allow_private=False)
    with pytest.raises(RelayAddressError, match="RELAY_ALLOW_PRIVATE"):
        check_relay_url("http://localhost.:3000", allow_private=False)


def _admin_client() -> Client:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def _relay_form(**fields) -> dict:
    return {"name": "Mine", "base_url": "https://api.example.com", "api_key": "",
            "dialect": "openai", "is_active": "on", "currency": "USD", "exchange_rate": "1",
            "billing_mode": "list", "price_multiplier": "1", "group_ratio": "1",
            "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0", **fields}


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://169.254.169.254", "http://[::ffff:169.254.169.254]",
                                 "ftp://127.0.0.1/", "http://127.0.0.1:3000"])
def test_the_admin_refuses_a_relay_address_it_must_not_call(url, settings):
    settings.RELAY_ALLOW_PRIVATE = False
    response = _admin_client().post("/admin/conversations/relay/add/",
                                    _relay_form(base_url=url, api_key="sk-1"))
    assert response.status_code == 200
    assert not Relay.objects.filter(name="Mine").exists()
    errors = response.context["adminform"].form.errors["base_url"]
    assert errors and ("relay" in errors[0] or "address" in errors[0] or "URL" in errors[0])


@pytest.mark.django_db
def test_the_admin_accepts_a_relay_on_the_own_network_with_the_setting(settings):
    settings.RELAY_ALLOW_PRIVATE = True
    response = _admin_client().post("/admin/conversations/relay/add/",
                                    _relay_form(base_url="http://192.168.1.20:3000",
                                                api_key="sk-1"))
    assert response.status_code == 302
    assert Relay.objects.get(name="Mine").api_key == "sk-1"


@pytest.mark.django_db
def test_a_new_host_needs_the_key_entered_again_and_a_new_path_does_not():
    relay = make_relay("https://api.example.com", api_key="sk-for-example")
    client = _admin_client()
    url = f"/admin/conversations/relay/{relay.pk}/change/"
    moved = client.post(url, _relay_form(name=relay.name, base_url="https://evil.example.net"))
    assert moved.status_code == 200
    assert "enter the key again" in moved.content.decode()
    kept = Relay.objects.get(pk=relay.pk)
    assert kept.base_url == "https://api.example.com" and kept.api_key == "sk-for-example"

    same_host = client.post(url, _relay_form(name=relay.name,
                                             base_url="https://api.example.com/v1"))
    assert same_host.status_code == 302
    assert Relay.objects.get(pk=relay.pk).api_key == "sk-for-example"

    with_key = client.post(url, _relay_form(name=relay.name,
                                            base_url="https://other.example.net",
                                            api_key="sk-for-other"))
    assert with_key.status_code == 302
    moved = Relay.objects.get(pk=relay.pk)
    assert (moved.base_url, moved.api_key) == ("https://other.example.net", "sk-for-other")


@pytest.mark.django_db
def test_a_relay_base_url_it_must_not_call_stops_the_start(settings):
    settings.RELAY_BASE_URL = "http://169.254.169.254"
    with pytest.raises(ImproperlyConfigured, match=r"RELAY_BASE_URL: .*metadata"):
        setup.ensure_default_relay()
    assert not Relay.objects.exists()


@pytest.mark.django_db
def test_the_simulated_relay_on_loopback_keeps_working_without_the_setting(settings):
    settings.RELAY_BASE_URL = ""
    settings.RELAY_ALLOW_PRIVATE = False
    relay = setup.ensure_default_relay(simulator_url="http://127.0.0.1:8000/simulator")
    assert relay.is_simulated and relay.base_url == "http://127.0.0.1:8000/simulator"
