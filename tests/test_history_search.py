"""Search: English words, Chinese two-character words, owner scope, escaped snippets,
filters, sorting, pages, and opening a result at its message. Runs on SQLite (FTS5)
and, with DATABASE_URL set to PostgreSQL, on its tsvector index."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conversations import services
from conversations.history.search import PAGE_SIZE, SearchFilters, search
from conversations.models import Attachment, Conversation, Message
from conversations.search_terms import index_text
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice():
    return make_user("alice")


@pytest.fixture
def model():
    return make_model(make_relay("http://127.0.0.1:9/never-called"))


def _chat(owner, model, *turns: str, title: str = "", **extra) -> Conversation:
    conversation = make_conversation(owner, model, title=title or turns[0][:40], **extra)
    parent = None
    for n, text in enumerate(turns):
        parent = Message.objects.create(conversation=conversation, parent=parent, text=text,
                                        role="user" if n % 2 == 0 else "assistant")
    return conversation


def _texts(page) -> list[str]:
    return [hit.message.text for hit in page.hits]


def test_english_words_are_found_in_any_case_and_ranked(alice, model):
    _chat(alice, model, "Tell me about sourdough", "Sourdough bread uses a starter.")
    _chat(alice, model, "What is a relay?", "A relay resells model access; sourdough aside.")
    _chat(alice, model, "Unrelated", "Nothing to see here.")

    page = search(user=alice, query="SOURDOUGH bread")

    assert _texts(page) == ["Sourdough bread uses a starter."]
    assert set(_texts(search(user=alice, query="sourdough"))) == {
        "Tell me about sourdough", "Sourdough bread uses a starter.",
        "A relay resells model access; sourdough aside."}


def test_a_chinese_two_character_word_is_found_inside_a_longer_sentence(alice, model):
    sentence = "我们昨天试用了智谱清言的新模型，效果不错。"
    _chat(alice, model, "国内有哪些大模型？", sentence)
    _chat(alice, model, "天气怎么样", "今天是晴天。")

    assert _texts(search(user=alice, query="智谱")) == [sentence]
    assert _texts(search(user=alice, query="清言的新")) == [sentence]
    assert _texts(search(user=alice, query="智言")) == []  # not adjacent: not a match


def test_another_users_conversation_is_never_found(alice, model):
    bob = make_user("bob")
    _chat(bob, model, "Bob's secret plan about zeppelins", "Zeppelins float.", title="zeppelins")

    assert search(user=alice, query="zeppelins").hits == []
    assert search(user=alice, query="zeppelins").titles == []
    page = Client()
    page.force_login(alice)
    html = page.get(reverse("search"), {"q": "zeppelins"}).content.decode()
    assert "secret plan" not in html and "Nothing found" in html


def test_snippets_are_escaped_before_the_words_are_marked(alice, model):
    _chat(alice, model, "x", 'Try <script>alert("mark")</script> then <b>mark</b> it')

    snippet = str(search(user=alice, query="mark").hits[0].snippet)

    assert "<script>" not in snippet and "<b>" not in snippet
    assert "&lt;script&gt;alert(&quot;<mark>mark</mark>&quot;)&lt;/script&gt;" in snippet
    assert "&lt;b&gt;<mark>mark</mark>&lt;/b&gt;" in snippet


def test_titles_are_found_by_any_part(alice, model):
    conversation = _chat(alice, model, "hello", title="Quarterly planning with 智谱")

    page = search(user=alice, query="智谱")

    assert page.titles == [conversation]


def test_filters_by_model_relay_date_and_files_and_sorts_by_cost(alice, model):
    other = make_model(make_relay("http://127.0.0.1:9/other"), "gpt-4o-mini")
    cheap = _chat(alice, model, "budget question", "answer")
    dear = _chat(alice, other, "budget question again", "answer", total_cost=Decimal("3"))
    old = cheap.messages.get(text="budget question")
    Message.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    Attachment.objects.create(uuid="00000000-0000-0000-0000-000000000001",
                              message=dear.messages.first(), owner=alice, kind="image",
                              mime="image/png", size=1, original_name="a.png", file="x")

    def found(**filters):
        return _texts(search(user=alice, query="budget", filters=SearchFilters(**filters)))

    assert found(model_id=other.pk) == ["budget question again"]
    assert found(relay_id=model.relay_id) == ["budget question"]
    assert found(since=date.today() - timedelta(days=1)) == ["budget question again"]
    assert found(until=date.today() - timedelta(days=30)) == ["budget question"]
    assert found(has_files=True) == ["budget question again"]
    assert found(has_pictures=True) == []  # an upload is no picture a model made
    Attachment.objects.create(uuid="00000000-0000-0000-0000-000000000002",
                              message=cheap.messages.last(), owner=alice, kind="image",
                              mime="image/png", size=1, original_name="made.png", file="y",
                              generated=True)
    assert found(has_pictures=True) == ["budget question"]
    assert found(sort="cost") == ["budget question again", "budget question"]
    assert found(sort="recent") == ["budget question again", "budget question"]


def test_results_come_in_pages(alice, model):
    for n in range(PAGE_SIZE + 5):
        _chat(alice, model, f"pagination topic number {n}")

    first, second = (search(user=alice, query="pagination", page=p) for p in (1, 2))

    assert len(first.hits) == PAGE_SIZE and first.has_next
    assert len(second.hits) == 5 and not second.has_next
    assert not {h.message.pk for h in first.hits} & {h.message.pk for h in second.hits}


def test_ranking_is_among_the_newest_matches_and_the_page_says_so(alice, model,
                                                                  monkeypatch):
    from conversations.history import search as search_module

    monkeypatch.setattr(search_module, "RANKED_MATCHES", 3)
    oldest = _chat(alice, model, "kiwi kiwi kiwi kiwi, the best match of all").messages.get()
    newer = [_chat(alice, model, f"kiwi in passing, number {n}, among many other words")
             .messages.get() for n in range(4)]

    page = search(user=alice, query="kiwi")
    recent = search(user=alice, query="kiwi", filters=SearchFilters(sort="recent"))

    # Only the three newest are ranked, so the oldest (best) match is not among them.
    assert page.capped and recent.capped
    assert {h.message.pk for h in page.hits} == {m.pk for m in newer[1:]}
    assert [h.message.pk for h in recent.hits] == [m.pk for m in reversed(newer[1:])]
    assert not search(user=alice, query="best match").capped
    assert search(user=alice, query="best match").hits[0].message.pk == oldest.pk

    client = Client()
    client.force_login(alice)
    html = client.get(reverse("search"), {"q": "kiwi"}).content.decode()
    assert "the newest 3 matches" in html


def test_a_finished_reply_and_an_edited_question_are_found(alice, model, monkeypatch):
    from conversations import generation, replies

    monkeypatch.setattr(generation, "start_generation", lambda *a, **k: None)
    conversation = make_conversation(alice, model)
    question, reply = services.post_message(conversation=conversation, author=alice,
                                            text="first words")
    replies.begin_reply(reply.pk)
    replies.finish_reply(message_id=reply.pk, outcome=replies.ReplyOutcome(
        status="complete", text="the answer mentions 智谱AI", finish_reason="stop"))
    services.edit_message(message=question, text="second thoughts")

    assert _texts(search(user=alice, query="智谱")) == ["the answer mentions 智谱AI"]
    assert _texts(search(user=alice, query="thoughts")) == ["second thoughts"]
    assert Message.objects.get(pk=question.pk).search_text == index_text("first words")


def test_a_result_opens_its_conversation_at_that_message_on_its_branch(alice, model,
                                                                       monkeypatch):
    from conversations import generation

    monkeypatch.setattr(generation, "start_generation", lambda *a, **k: None)
    conversation = _chat(alice, model, "the original wording", "reply one")
    original = conversation.messages.get(text="the original wording")
    services.edit_message(message=original, text="the edited wording")
    client = Client()
    client.force_login(alice)

    results = client.get(reverse("search"), {"q": "original"}).content.decode()
    url = f"/c/{conversation.pk}/?m={original.pk}#message-{original.pk}"
    assert url.replace("&", "&amp;") in results or url in results
    page = client.get(f"/c/{conversation.pk}/", {"m": original.pk}).content.decode()

    assert f'id="message-{original.pk}"' in page and "the edited wording" not in page
    conversation.refresh_from_db()
    assert conversation.current_children.get("root") != original.pk  # nothing saved


def test_the_search_page_needs_signing_in():
    response = Client().get(reverse("search"), {"q": "x"})

    assert response.status_code == 302 and "/login/" in response["Location"]
