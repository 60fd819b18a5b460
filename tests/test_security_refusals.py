"""Posts Django refuses before any view runs are said in plain words, where the
composer shows them, instead of a bare "Bad Request (400)"."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from conversations.media.uploads import _sizes_apart
from conversations.models import Message
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def signed_in():
    """A signed-in browser with CSRF checks on, as a real one is, and its conversation."""
    user = make_user("alice")
    conversation = make_conversation(user, make_model(make_relay("https://relay.example.com")))
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(f"/c/{conversation.pk}/")
    return client, conversation


def _csrf(client: Client) -> dict:
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


def _composer_error(response) -> str:
    match = re.search(r'<p id="composer-error" role="alert">(.*?)</p>', response.content.decode())
    assert match, response.content[:500]
    return match.group(1)


def test_a_message_over_10_mb_is_refused_in_words_the_composer_shows(signed_in):
    client, conversation = signed_in
    response = client.post(f"/c/{conversation.pk}/messages/", {"text": "x" * (10 * MB + 1)},
                           **HTMX, **_csrf(client))
    assert response.status_code == 422  # swapped by the composer (base.html's htmx-config)
    assert 'hx-swap-oob' in response.content.decode()
    assert _composer_error(response) == (
        "This message is too long to send: its text and settings can be at most 10 MB "
        "(attached files have their own limits). Nothing was sent.")
    assert not Message.objects.exists()


def test_a_multipart_post_without_a_boundary_is_refused_in_words(signed_in):
    client, conversation = signed_in
    response = client.generic("POST", f"/c/{conversation.pk}/messages/", b"text=hello",
                              content_type="multipart/form-data", **HTMX, **_csrf(client))
    assert response.status_code == 422
    assert "could not read what was sent" in _composer_error(response)
    assert not Message.objects.exists()


def test_without_htmx_the_refusal_is_a_page_in_plain_words(signed_in):
    client, conversation = signed_in
    response = client.generic("POST", f"/c/{conversation.pk}/messages/", b"text=hello",
                              content_type="multipart/form-data", **_csrf(client))
    assert response.status_code == 400
    text = response.content.decode()
    assert "could not read what was sent" in text and "Bad Request (400)" not in text


@pytest.mark.parametrize("size,limit,words", [
    (20 * MB + 1, 20 * MB, ("20,971,521 bytes", "20,971,520 bytes (20 MB)")),
    (int(20.04 * MB), 20 * MB, ("20.04 MB", "20 MB")),
    (int(20.4 * MB), 20 * MB, ("20.4 MB", "20 MB")),
    (21 * MB, 20 * MB, ("21 MB", "20 MB")),
    (int(250.001 * MB), 250 * MB, ("250.001 MB", "250 MB")),
])
def test_a_size_over_the_limit_never_reads_the_same_as_the_limit(size, limit, words):
    assert _sizes_apart(size, limit) == words
