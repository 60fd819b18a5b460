"""Versions and branches: regenerate, retry in place, edit into a branch, switch,
continue a cut reply; the history sent to the relay follows the branch on screen."""

from __future__ import annotations

import importlib
import re
import uuid
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse

from conversations import generation, replies, services
from conversations.models import Attachment, Conversation, Message
from conversations.prompt import CONTINUE_INSTRUCTION
from conversations.selectors import conversation_branch, recent_messages
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def _no_generation(monkeypatch):
    """Record generations instead of running them; each test finishes replies itself."""
    started: list[int] = []
    monkeypatch.setattr(generation, "start_generation",
                        lambda message_id, **_: started.append(message_id))
    return started


@pytest.fixture
def conversation() -> Conversation:
    relay = make_relay("http://127.0.0.1:9/never-called")
    model = make_model(relay, price_input=Decimal("1"), price_output=Decimal("2"))
    return make_conversation(make_user(), model, system_prompt="Be brief.")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _finish(reply: Message, text: str, *, finish_reason="stop", tokens=(1000, 500)) -> Message:
    job = replies.begin_reply(reply.pk)  # None when _sent began it already
    outcome = replies.ReplyOutcome(
        status="complete", text=text, finish_reason=finish_reason,
        usage={"prompt_tokens": tokens[0], "completion_tokens": tokens[1]},
    )
    return replies.finish_reply(message_id=reply.pk, outcome=outcome, job=job)


def _ask(conversation, text: str, answer: str | None = None) -> tuple[Message, Message]:
    question, reply = services.post_message(
        conversation=conversation, author=conversation.owner, text=text
    )
    if answer is not None:
        reply = _finish(reply, answer)
    return question, reply


def _sent(reply: Message) -> list[tuple[str, str]]:
    """The messages the relay would receive for this reply, as (role, content)."""
    job = replies.begin_reply(reply.pk)
    assert job is not None
    return [(m["role"], m["content"]) for m in job.body["messages"]]


def _on_screen(conversation) -> list[str]:
    conversation.refresh_from_db()
    return [m.text for m, _ in conversation_branch(conversation=conversation)]


def test_after_an_edit_the_relay_gets_the_edited_branch_and_not_the_old_one(conversation):
    _ask(conversation, "What is 2+2?", "4")
    question, _ = _ask(conversation, "And times 3?", "12")
    _ask(conversation, "Thanks", "You're welcome")

    edited, reply = services.edit_message(message=question, text="And times 5?")

    assert edited.parent_id == question.parent_id
    assert _sent(reply) == [
        ("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"),
        ("user", "And times 5?"),
    ]


def test_switching_back_to_the_old_branch_shows_it_and_the_next_message_follows_it(
    conversation,
):
    _ask(conversation, "What is 2+2?", "4")
    question, _ = _ask(conversation, "And times 3?", "12")
    _, reply = services.edit_message(message=question, text="And times 5?")
    _finish(reply, "20")
    assert _on_screen(conversation) == ["What is 2+2?", "4", "And times 5?", "20"]

    services.show_version(message=question)

    assert _on_screen(conversation) == ["What is 2+2?", "4", "And times 3?", "12"]
    _, next_reply = _ask(conversation, "Minus 2?")
    assert _sent(next_reply) == [
        ("system", "Be brief."), ("user", "What is 2+2?"), ("assistant", "4"),
        ("user", "And times 3?"), ("assistant", "12"), ("user", "Minus 2?"),
    ]


def test_regenerating_keeps_both_versions_and_the_next_message_sees_the_one_on_screen(
    conversation,
):
    question, first = _ask(conversation, "A colour?", "Red")
    second = _finish(services.regenerate_reply(message=first), "Blue")

    assert second.parent_id == question.pk
    assert _on_screen(conversation) == ["A colour?", "Blue"]
    services.show_version(message=first)
    assert _on_screen(conversation) == ["A colour?", "Red"]
    _, reply = _ask(conversation, "Why?")
    assert _sent(reply)[-2:] == [("assistant", "Red"), ("user", "Why?")]


def test_each_version_keeps_its_usage_and_the_total_counts_every_version_paid_for(
    conversation,
):
    _, first = _ask(conversation, "A colour?", "Red")
    second = _finish(services.regenerate_reply(message=first), "Blue", tokens=(2000, 1000))

    first.refresh_from_db()
    second.refresh_from_db()
    conversation.refresh_from_db()
    # $1 and $2 per million tokens in and out
    assert first.usage.cost == Decimal("0.002")
    assert second.usage.cost == Decimal("0.004")
    assert conversation.total_cost == Decimal("0.006")


def test_the_page_shows_one_version_with_its_position_and_switches_on_click(conversation):
    _, first = _ask(conversation, "A colour?", "Red")
    second = _finish(services.regenerate_reply(message=first), "Blue")
    client = _client(conversation.owner)

    page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()

    assert f'id="message-{second.pk}"' in page and f'id="message-{first.pk}"' not in page
    assert re.search(r'class="version-position">2/2<', page)
    switched = client.post(reverse("message_show", args=[first.pk]), **HTMX).content.decode()
    assert 'hx-swap-oob="innerHTML:#message-list"' in switched
    assert f'id="message-{first.pk}"' in switched and f'id="message-{second.pk}"' not in switched
    assert re.search(r'class="version-position">1/2<', switched)


def test_retry_on_a_failed_reply_replaces_its_card_with_a_new_version(
    conversation, _no_generation, django_capture_on_commit_callbacks,
):
    _, failed = _ask(conversation, "Hello")
    replies.finish_reply(message_id=failed.pk, outcome=replies.ReplyOutcome(
        status="failed", text="", error="The relay is down."))

    client = _client(conversation.owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("message_retry", args=[failed.pk]), **HTMX)
    response = response.content.decode()

    retried = Message.objects.get(pk=_no_generation[-1])
    assert retried.parent_id == failed.parent_id
    assert f'id="message-{retried.pk}"' in response
    assert f'id="message-{failed.pk}"' not in response  # no second card under the question
    assert response.count('class="retry"') == 0 and "2/2" in response


def test_continuing_a_cut_reply_sends_it_and_asks_for_the_rest(conversation):
    _, cut = _ask(conversation, "Write a long poem")
    cut = _finish(cut, "Roses are red,\nviolets", finish_reason="length")

    rest = services.continue_reply(message=cut)

    assert rest.parent_id == cut.pk
    assert _sent(rest)[-2:] == [("assistant", "Roses are red,\nviolets"),
                                ("user", CONTINUE_INSTRUCTION)]
    _finish(rest, " are blue.")
    _, later = _ask(conversation, "Another")
    # The cut reply and its rest are one answer to the model.
    assert _sent(later)[-2:] == [("assistant", "Roses are red,\nviolets are blue."),
                                 ("user", "Another")]


def test_only_a_reply_cut_at_the_length_limit_offers_and_takes_continue(conversation):
    _, whole = _ask(conversation, "Hi", "Hello!")
    client = _client(conversation.owner)

    response = client.post(reverse("message_continue", args=[whole.pk]), **HTMX)

    assert response.status_code == 422
    assert "Only a reply cut at the length limit can be continued." in response.content.decode()
    page = client.get(reverse("conversation", args=[conversation.pk])).content.decode()
    assert 'class="continue"' not in page


def test_an_edit_keeps_the_questions_files_and_deleting_one_branch_keeps_the_file(
    conversation, settings, tmp_path, django_capture_on_commit_callbacks,
):
    settings.MEDIA_ROOT = str(tmp_path)
    question, _ = _ask(conversation, "What is this?", "A cat")
    original = Attachment(uuid=uuid.uuid4(), message=question,
                          owner=conversation.owner, kind="image", mime="image/png", size=3,
                          original_name="cat.png")
    original.file.save("cat.png", ContentFile(b"png"), save=True)
    question = Message.objects.get(pk=question.pk)  # as the edit view reads it, with its file

    edited, _ = services.edit_message(message=question, text="What animal is this?")

    copy = edited.attachments.get()
    assert copy.file.name == original.file.name and copy.pk != original.pk
    with django_capture_on_commit_callbacks(execute=True):
        original.delete()
    assert copy.file.storage.exists(copy.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        copy.delete()
    assert not copy.file.storage.exists(copy.file.name)


def test_a_page_that_reconnects_catches_up_on_the_branch_on_screen(conversation):
    _, first = _ask(conversation, "A colour?", "Red")
    _finish(services.regenerate_reply(message=first), "Blue")

    caught_up = recent_messages(conversation_id=conversation.pk, user=conversation.owner,
                                limit=4)

    assert [(m.text, v.index, v.count) for m, v in caught_up.items] == [
        ("A colour?", 1, 1), ("Blue", 2, 2)]


def test_another_user_cannot_switch_edit_or_continue_your_messages(conversation):
    question, reply = _ask(conversation, "Private", "Secret")
    mallory = _client(make_user("mallory"))

    for name, pk in [("message_show", reply.pk), ("message_edit", question.pk),
                     ("message_continue", reply.pk), ("message_retry", reply.pk)]:
        assert mallory.post(reverse(name, args=[pk]), {"text": "x"}, **HTMX).status_code == 404
    assert conversation.messages.count() == 2


def test_the_migration_turns_a_linear_conversation_with_old_retries_into_one_branch(
    conversation,
):
    """Before trees, each Retry added another reply card under the question."""
    rows = []
    for role, text, status in [("user", "Hi", "complete"), ("assistant", "", "failed"),
                               ("assistant", "Hello", "complete"), ("user", "Bye", "complete"),
                               ("assistant", "Goodbye", "complete")]:
        rows.append(Message.objects.create(conversation=conversation, role=role, text=text,
                                           status=status))
    migration = importlib.import_module("conversations.migrations.0004_history")

    migration.link_linear_conversations(apps, None)

    parents = dict(Message.objects.values_list("pk", "parent_id"))
    hi, failed, hello, bye, goodbye = (m.pk for m in rows)
    assert parents == {hi: None, failed: hi, hello: hi, bye: hello, goodbye: bye}
    assert _on_screen(conversation) == ["Hi", "Hello", "Bye", "Goodbye"]
    assert Message.objects.count() == 5
