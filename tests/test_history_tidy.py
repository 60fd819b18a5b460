"""Tidying: the sidebar in keyset pages, rename, pin, archive, delete (files gone, costs kept)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conversations import replies
from conversations.billing.reports import conversation_cost
from conversations.history.search import search
from conversations.models import Attachment, Conversation, Message, Usage, UsageDay
from conversations.selectors import SIDEBAR_PAGE, sidebar_conversations
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def model():
    return make_model(make_relay("http://127.0.0.1:9/never-called"),
                      price_input=Decimal("1"), price_output=Decimal("2"))


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _many(owner, model, count: int) -> list[Conversation]:
    start = timezone.now() - timedelta(days=1)
    return Conversation.objects.bulk_create([
        Conversation(owner=owner, model=model, title=f"chat {n}",
                     updated_at=start + timedelta(seconds=n // 2))  # pairs share a time
        for n in range(count)
    ])


def _all_pages(user) -> list[list[int]]:
    pages, after = [], ""
    while True:
        page = sidebar_conversations(user=user, after=after)
        pages.append([c.pk for c in page])
        if not page.next_cursor:
            return pages
        after = page.next_cursor


def test_the_sidebar_pages_by_keyset_through_every_conversation_once_newest_first(
    alice, model,
):
    _many(alice, model, SIDEBAR_PAGE * 2 + 7)
    _many(make_user("bob"), model, 5)

    pages = _all_pages(alice)

    flat = [pk for page in pages for pk in page]
    assert [len(p) for p in pages] == [SIDEBAR_PAGE, SIDEBAR_PAGE, 7]
    expected = list(Conversation.objects.filter(owner=alice)
                    .order_by("-updated_at", "-pk").values_list("pk", flat=True))
    assert flat == expected


def test_a_late_page_runs_the_same_one_query_as_the_first_without_offset(alice, model):
    _many(alice, model, SIDEBAR_PAGE * 4)
    late_cursor = ""
    for _ in range(3):
        late_cursor = sidebar_conversations(user=alice, after=late_cursor).next_cursor

    with CaptureQueriesContext(connection) as first:
        list(sidebar_conversations(user=alice))
    with CaptureQueriesContext(connection) as late:
        list(sidebar_conversations(user=alice, after=late_cursor))

    assert len(late) == 1 and len(first) == 2  # the first page also reads the pinned
    assert "OFFSET" not in late[0]["sql"].upper()


def test_the_sidebar_loads_its_next_page_as_the_reader_scrolls(alice, model):
    _many(alice, model, SIDEBAR_PAGE + 3)
    client = _client(alice)
    home = client.get(reverse("conversation_new")).content.decode()
    assert home.count('<li id="conversation-item-') == SIDEBAR_PAGE
    assert 'hx-trigger="revealed"' in home

    cursor = sidebar_conversations(user=alice).next_cursor
    more = client.get(reverse("sidebar_more"), {"after": cursor}).content.decode()

    assert more.count('<li id="conversation-item-') == 3
    assert 'hx-trigger="revealed"' not in more  # the end


def test_pinned_conversations_come_first(alice, model):
    older = _many(alice, model, 4)[0]
    _client(alice).post(reverse("conversation_pin", args=[older.pk]), {"pinned": "1"}, **HTMX)

    first = [c.pk for c in sidebar_conversations(user=alice)]

    assert first[0] == older.pk and len(first) == 4


def test_rename_changes_the_title_and_an_empty_one_is_refused_in_plain_words(alice, model):
    conversation = make_conversation(alice, model, title="Old")
    client = _client(alice)

    client.post(reverse("conversation_rename", args=[conversation.pk]), {"title": " New  name "},
                **HTMX)
    refused = client.post(reverse("conversation_rename", args=[conversation.pk]),
                          {"title": "  "}, **HTMX)

    conversation.refresh_from_db()
    assert conversation.title == "New name"
    assert refused.status_code == 422 and "A title cannot be empty." in refused.content.decode()


def test_another_user_cannot_rename_pin_archive_or_delete(alice, model):
    conversation = make_conversation(alice, model, title="Mine")
    mallory = _client(make_user("mallory"))

    for name, data in [("conversation_rename", {"title": "x"}), ("conversation_pin",
                       {"pinned": "1"}), ("conversation_archive", {"archived": "1"}),
                       ("conversation_delete", {})]:
        assert mallory.post(reverse(name, args=[conversation.pk]), data, **HTMX).status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned, conversation.archived_at,
            conversation.deleted_at) == ("Mine", False, None, None)


def _paid_reply(conversation, text="the answer about walruses") -> Message:
    question = Message.objects.create(conversation=conversation, role="user", text="walruses?")
    reply = Message.objects.create(conversation=conversation, role="assistant", text=text,
                                   status="complete", model=conversation.model, parent=question)
    replies.record_usage(message=reply, raw={"prompt_tokens": 1000, "completion_tokens": 500})
    return question


def test_an_archived_conversation_leaves_the_sidebar_but_stays_in_search_and_costs(alice,
                                                                                  model):
    conversation = make_conversation(alice, model, title="Walruses")
    _paid_reply(conversation)

    _client(alice).post(reverse("conversation_archive", args=[conversation.pk]),
                        {"archived": "1"}, **HTMX)

    assert conversation.pk not in [c.pk for c in sidebar_conversations(user=alice)]
    assert [h.message.conversation_id for h in search(user=alice, query="walruses").hits]
    assert conversation_cost(conversation).by_currency == [("USD", Decimal("0.002"))]
    page = _client(alice).get(reverse("conversation", args=[conversation.pk]))
    assert page.status_code == 200 and "Unarchive" in page.content.decode()


def test_delete_removes_messages_and_files_from_storage_and_keeps_the_costs(
    alice, model, settings, tmp_path, django_capture_on_commit_callbacks,
):
    settings.MEDIA_ROOT = str(tmp_path)
    conversation = make_conversation(alice, model, title="Walruses")
    question = _paid_reply(conversation)
    attachment = Attachment(uuid=uuid.uuid4(), message=question, owner=alice, kind="image",
                            mime="image/png", size=3, original_name="walrus.png")
    attachment.file.save("walrus.png", ContentFile(b"png"), save=True)
    stored = attachment.file.name
    assert attachment.file.storage.exists(stored)
    days_before = list(UsageDay.objects.values_list("cost", "replies"))

    with django_capture_on_commit_callbacks(execute=True):
        response = _client(alice).post(reverse("conversation_delete", args=[conversation.pk]),
                                       **HTMX)

    assert response.status_code == 200
    assert not attachment.file.storage.exists(stored)
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert search(user=alice, query="walruses").hits == []
    usage = Usage.objects.get(conversation_id=conversation.pk)
    assert usage.cost == Decimal("0.002") and usage.message_id is None
    assert list(UsageDay.objects.values_list("cost", "replies")) == days_before
    conversation.refresh_from_db()
    assert conversation.total_cost == Decimal("0.002") and conversation.deleted_at is not None
    costs = _client(alice).get(reverse("costs")).content.decode()
    assert "0.002" in costs


def test_a_conversation_with_a_reply_being_written_is_not_deleted_and_says_why(alice, model):
    conversation = make_conversation(alice, model, title="Busy")
    question = Message.objects.create(conversation=conversation, role="user", text="Hi")
    Message.objects.create(conversation=conversation, role="assistant", status="streaming",
                           parent=question, model=model)

    response = _client(alice).post(reverse("conversation_delete", args=[conversation.pk]),
                                   **HTMX)

    assert response.status_code == 422
    assert "Stop the reply being written before deleting" in response.content.decode()
    assert conversation.messages.count() == 2
