"""The staff's relays page: each relay's set-up and its last 24 hours."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations.models import Message, RelayProbe
from conversations.relays.health import relay_health
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_generation import _post, _run, _setup

pytestmark = pytest.mark.django_db


def _reply(conversation, model, *, status=Message.Status.COMPLETE, first_token_ms=None,
           warning="", substituted=False, hours_ago=1):
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, model=model, status=status,
        first_token_ms=first_token_ms, warning=warning, model_substituted=substituted,
        created_at=timezone.now() - timedelta(hours=hours_ago),
    )


@pytest.fixture
def two_relays():
    owner = make_user()
    busy, quiet = make_relay("http://busy.example", name="Busy"), make_relay(
        "http://quiet.example", name="Quiet")
    model = make_model(busy, "gemini-2.5-flash")
    make_model(quiet, "gpt-4o-mini")
    conversation = make_conversation(owner, model)
    for ms in (300, 500, 900):
        _reply(conversation, model, first_token_ms=ms)
    _reply(conversation, model, status=Message.Status.FAILED)
    _reply(conversation, model, warning="The relay dropped the audio without a word.",
           first_token_ms=700)
    _reply(conversation, model, warning="Answered by gemini-2.0-flash.", substituted=True)
    _reply(conversation, model, status=Message.Status.FAILED, hours_ago=30)  # too old
    RelayProbe.objects.create(relay=busy, proposed_dialect="image_url-for-all",
                              created_at=timezone.now() - timedelta(days=2))
    latest = RelayProbe.objects.create(relay=busy, proposed_dialect="openai")
    return busy, quiet, latest


def test_each_relay_with_its_last_day_in_figures(two_relays, django_assert_max_num_queries):
    _busy, _quiet, latest = two_relays
    with django_assert_max_num_queries(5):
        lines = {line.relay.name: line for line in relay_health()}

    line = lines["Busy"]
    assert (line.replies, line.failed, line.silent_drops, line.substituted) == (6, 1, 1, 1)
    assert line.error_rate == pytest.approx(1 / 6)
    assert line.median_first_token_ms == 600  # of 300, 500, 700, 900
    assert line.last_probe == latest
    assert [m.model_id for m in line.models] == ["gemini-2.5-flash"]
    quiet_line = lines["Quiet"]
    assert quiet_line.replies == 0 and quiet_line.error_rate is None
    assert quiet_line.median_first_token_ms is None and quiet_line.last_probe is None


def test_the_page_is_for_staff_only(two_relays):
    person = make_user("pat")
    client = Client()
    client.force_login(person)
    assert client.get(reverse("relays")).status_code == 403
    assert Client().get(reverse("relays")).status_code == 302  # to sign in

    staff = make_user("sam")
    staff.is_staff = True
    staff.save()
    client.force_login(staff)
    html = client.get(reverse("relays")).content.decode()
    assert "Busy" in html and "Quiet" in html
    assert '<td class="num first-token">600 ms</td>' in html
    assert '<td class="num error-rate">17%</td>' in html
    assert "never probed" in html  # Quiet


@pytest.mark.django_db(transaction=True)
async def test_a_reply_keeps_its_time_to_first_token(simulator):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "How fast?")
    await _run(reply.pk)
    saved = await database_sync_to_async(Message.objects.get)(pk=reply.pk)
    assert saved.status == Message.Status.COMPLETE
    assert saved.first_token_ms is not None and 0 <= saved.first_token_ms < 5_000
