"""The HTTP side: who may see and change what, what bad input gets, what pages never show."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from conversations import fragments, generation
from conversations.models import ChatModel, Conversation, Message, Relay

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-view-tests-123"
RELAY_KEY = "sk-live-7f3c9e1d-DO-NOT-LEAK"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def bob():
    return get_user_model().objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def relay() -> Relay:
    return Relay.objects.create(
        name="Test relay", base_url="http://127.0.0.1:9/never-called", api_key=RELAY_KEY
    )


@pytest.fixture
def model(relay) -> ChatModel:
    return ChatModel.objects.create(
        relay=relay, model_id="gemini-2.5-flash", display_name="Gemini Flash"
    )


@pytest.fixture
def other_model(relay) -> ChatModel:
    return ChatModel.objects.create(relay=relay, model_id="gpt-4o-mini", display_name="GPT mini")


@pytest.fixture
def conversation(alice, model) -> Conversation:
    return Conversation.objects.create(owner=alice, model=model, title="Alice's chat")


@pytest.fixture
def failed_reply(conversation) -> Message:
    question = Message.objects.create(conversation=conversation, role="user", text="Hi")
    return Message.objects.create(
        conversation=conversation, role="assistant", status="failed", model=conversation.model,
        error="The relay says your key has run out of quota.", parent=question,
    )


@pytest.fixture
def pending_reply(conversation) -> Message:
    question = Message.objects.create(conversation=conversation, role="user", text="Hi")
    return Message.objects.create(
        conversation=conversation, role="assistant", status="pending", model=conversation.model,
        parent=question,
    )


def signed_in(user, **client_options) -> Client:
    client = Client(**client_options)
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(alice) -> Client:
    return signed_in(alice)


@pytest.fixture
def as_bob(bob) -> Client:
    return signed_in(bob)


@pytest.fixture(autouse=True)
def _no_generation(monkeypatch):
    """Record generations instead of running them: there is no server loop here."""
    started: list[int] = []
    monkeypatch.setattr(generation, "start_generation",
                        lambda message_id, **_: started.append(message_id))
    return started


# -- signing in ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "needs_pk"),
    [
        ("get", "home", False),
        ("get", "conversation_new", False),
        ("post", "conversation_new", False),
        ("get", "conversation", True),
        ("post", "conversation_settings", True),
        ("post", "message_create", True),
        ("post", "conversation_delete", True),
        ("post", "message_stop", True),
        ("post", "message_retry", True),
    ],
)
def test_it_sends_anonymous_visitors_to_sign_in(client, method, name, needs_pk, conversation):
    url = reverse(name, kwargs={"pk": conversation.pk} if needs_pk else None)

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_a_person_signs_in_and_out(client, alice):
    page = client.get(reverse("login"))
    assert 'for="id_username"' in page.content.decode()

    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("conversation_new")).status_code == 200

    client.post(reverse("logout"))
    assert client.get(reverse("conversation_new")).status_code == 302


def test_a_wrong_password_gets_a_plain_message(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})

    assert response.status_code == 200
    assert "didn't match" in response.content.decode()


# -- ownership -------------------------------------------------------------------


def test_it_rejects_another_users_conversation_page(as_bob, conversation):
    response = as_bob.get(reverse("conversation", kwargs={"pk": conversation.pk}))

    assert response.status_code == 404
    assert "Alice's chat" not in response.content.decode()


def test_it_rejects_changing_another_users_settings(as_bob, conversation, other_model):
    url = reverse("conversation_settings", kwargs={"pk": conversation.pk})

    response = as_bob.post(url, {"model": other_model.pk, "temperature": "1"}, **HTMX)

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert conversation.model_id != other_model.pk
    assert conversation.temperature is None


def test_it_rejects_posting_into_another_users_conversation(as_bob, conversation,
                                                             _no_generation):
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = as_bob.post(url, {"text": "let me in"}, **HTMX)

    assert response.status_code == 404
    assert not conversation.messages.exists()
    assert _no_generation == []


def test_it_rejects_stopping_another_users_reply(as_bob, pending_reply):
    response = as_bob.post(reverse("message_stop", kwargs={"pk": pending_reply.pk}), **HTMX)

    assert response.status_code == 404
    pending_reply.refresh_from_db()
    assert pending_reply.status == "pending"


def test_it_rejects_retrying_another_users_reply(as_bob, failed_reply, _no_generation):
    response = as_bob.post(reverse("message_retry", kwargs={"pk": failed_reply.pk}), **HTMX)

    assert response.status_code == 404
    assert failed_reply.conversation.messages.count() == 2
    assert _no_generation == []


def test_it_rejects_deleting_another_users_conversation(as_bob, conversation):
    response = as_bob.post(reverse("conversation_delete", kwargs={"pk": conversation.pk}), **HTMX)

    assert response.status_code == 404
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_the_sidebar_lists_only_your_own_conversations(as_bob, bob, conversation, model):
    Conversation.objects.create(owner=bob, model=model, title="Bob's chat")

    html = as_bob.get(reverse("conversation_new")).content.decode()

    assert "Bob&#x27;s chat" in html
    assert "Alice&#x27;s chat" not in html


# -- CSRF ------------------------------------------------------------------------


def _csrf_token(client: Client) -> str:
    client.get(reverse("conversation_new"))
    return client.cookies["csrftoken"].value


def test_it_refuses_a_post_without_a_csrf_token(alice, conversation, _no_generation):
    client = signed_in(alice, enforce_csrf_checks=True)
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = client.post(url, {"text": "forged"}, **HTMX)

    assert response.status_code == 403
    assert not conversation.messages.exists()


@pytest.mark.parametrize(
    "name", ["conversation_settings", "conversation_delete", "message_stop", "message_retry"]
)
def test_every_other_write_refuses_a_post_without_a_csrf_token(alice, failed_reply, name):
    client = signed_in(alice, enforce_csrf_checks=True)
    pk = failed_reply.pk if name.startswith("message") else failed_reply.conversation_id

    response = client.post(reverse(name, kwargs={"pk": pk}), {}, **HTMX)

    assert response.status_code == 403
    assert Conversation.objects.filter(pk=failed_reply.conversation_id).exists()
    assert Message.objects.filter(conversation_id=failed_reply.conversation_id).count() == 2


def test_it_accepts_the_csrf_token_the_page_sends_as_a_header(alice, conversation):
    client = signed_in(alice, enforce_csrf_checks=True)
    token = _csrf_token(client)
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = client.post(url, {"text": "real"}, HTTP_X_CSRFTOKEN=token, **HTMX)

    assert response.status_code == 200
    assert conversation.messages.filter(role="user", text="real").exists()


def test_every_page_carries_the_csrf_token_for_htmx(as_alice, conversation):
    html = as_alice.get(reverse("conversation", kwargs={"pk": conversation.pk})).content.decode()

    assert re.search(r"hx-headers='\{&quot;X-CSRFToken&quot;: &quot;\w+&quot;\}'", html) or \
        re.search(r"hx-headers='\{\"X-CSRFToken\": \"\w+\"\}'", html)


# -- posting a message ---------------------------------------------------------------


def test_posting_stores_the_message_and_a_pending_reply_and_schedules_it_after_commit(
    as_alice, conversation, django_capture_on_commit_callbacks, _no_generation
):
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = as_alice.post(url, {"text": "  What is a relay?  "}, **HTMX)

    assert response.status_code == 200
    user_message, reply = conversation.messages.order_by("created_at", "pk")
    assert (user_message.role, user_message.text) == ("user", "What is a relay?")
    assert (reply.role, reply.status) == ("assistant", "pending")
    assert reply.model_id == conversation.model_id
    assert _no_generation == []  # nothing runs before the transaction commits
    assert len(callbacks) == 1
    callbacks[0]()
    assert _no_generation == [reply.pk]


def test_posting_answers_with_fragments_the_page_upserts(as_alice, conversation):
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    html = as_alice.post(url, {"text": "Hello <b>there</b>"}, **HTMX).content.decode()

    reply = conversation.messages.get(role="assistant")
    assert 'hx-swap-oob="beforeend:#message-list" data-upsert' in html
    assert f'id="message-{reply.pk}"' in html
    assert f'id="m{reply.pk}-text"' in html
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in html
    assert "<b>there</b>" not in html
    assert f'id="conversation-item-{conversation.pk}"' in html


@pytest.mark.django_db(transaction=True)
def test_a_post_renders_its_messages_once_for_its_answer_and_the_other_tabs(
    as_alice, conversation, monkeypatch
):
    """The announce to other tabs and the post's own answer carry the same HTML,
    rendered once (each message one render_message). Committed for real: the
    announce is rendered when the post's transaction commits, before its answer."""
    announced: list[str] = []
    monkeypatch.setattr(generation, "start_generation",
                        lambda message_id, announce: announced.append(announce[1]["html"]))
    renders: list[int] = []
    original = fragments.render_message
    monkeypatch.setattr(fragments, "render_message",
                        lambda message, **kw: renders.append(message.pk) or original(message, **kw))
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    html = as_alice.post(url, {"text": "Once, please"}, **HTMX).content.decode()

    user_message, reply = conversation.messages.order_by("created_at", "pk")
    assert renders == [user_message.pk, reply.pk]
    assert len(announced) == 1 and announced[0] in html
    assert "Once, please" in announced[0] and f'id="message-{reply.pk}"' in announced[0]


def test_a_posts_sidebar_entry_leaves_its_cost_to_the_page(as_alice, conversation):
    """A post spends nothing: its sidebar entry carries a blank label marked for
    the page to fill with the one it shows (static/js/chat.js), and no query
    costs the conversation."""
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    with CaptureQueriesContext(connection) as queries:
        html = as_alice.post(url, {"text": "Costs nothing yet"}, **HTMX).content.decode()

    label = f'<span class="meta cost" id="conversation-item-{conversation.pk}-cost" data-unchanged>'
    assert label + "</span>" in html
    assert not [q for q in queries.captured_queries if "usageday" in q["sql"].lower()]
    # The sidebar itself still costs every entry.
    page = as_alice.get(reverse("conversation", kwargs={"pk": conversation.pk})).content.decode()
    assert f'id="conversation-item-{conversation.pk}-cost">' in page


def test_the_first_message_names_the_conversation(as_alice, alice, model):
    conversation = Conversation.objects.create(owner=alice, model=model)
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    html = as_alice.post(url, {"text": "Plan a trip to Kyoto"}, **HTMX).content.decode()

    conversation.refresh_from_db()
    assert conversation.title == "Plan a trip to Kyoto"
    assert 'id="conversation-title"' in html
    assert "Plan a trip to Kyoto" in html


def test_an_empty_message_gets_a_readable_422_and_stores_nothing(as_alice, conversation,
                                                                 _no_generation):
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = as_alice.post(url, {"text": "   "}, **HTMX)

    assert response.status_code == 422
    assert "Write a message or attach a file first." in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not conversation.messages.exists()
    assert _no_generation == []


def test_a_message_that_is_too_long_gets_a_readable_422(as_alice, conversation):
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = as_alice.post(url, {"text": "x" * 200_001}, **HTMX)

    assert response.status_code == 422
    assert "at most 200000 characters" in response.content.decode()
    assert "data-until-reply-ends" not in response.content.decode()  # it stays on the page
    assert not conversation.messages.exists()


def test_sending_while_a_reply_is_being_written_is_refused_in_plain_words(as_alice,
                                                                          pending_reply):
    url = reverse("message_create", kwargs={"pk": pending_reply.conversation_id})

    response = as_alice.post(url, {"text": "another"}, **HTMX)

    assert response.status_code == 422
    assert "Wait for the current reply to finish" in response.content.decode()
    assert "data-until-reply-ends" in response.content.decode()  # gone when the reply ends
    assert pending_reply.conversation.messages.count() == 2


def test_a_conversation_without_a_model_asks_for_one(as_alice, alice):
    conversation = Conversation.objects.create(owner=alice, model=None)
    url = reverse("message_create", kwargs={"pk": conversation.pk})

    response = as_alice.post(url, {"text": "hi"}, **HTMX)

    assert response.status_code == 422
    assert "Pick a model" in response.content.decode()


# -- new conversations -----------------------------------------------------------------


def test_a_new_conversation_takes_the_model_and_parameters_picked(
    as_alice, model, other_model, django_capture_on_commit_callbacks, _no_generation
):
    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(
            reverse("conversation_new"),
            {"model": other_model.pk, "temperature": "0.3", "top_p": "0.9", "max_tokens": "256",
             "system_prompt": "Be brief.", "text": "First question"},
            **HTMX,
        )

    conversation = Conversation.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("conversation", kwargs={"pk": conversation.pk})
    assert (conversation.model, conversation.temperature, conversation.top_p,
            conversation.max_tokens, conversation.system_prompt) == (
        other_model, 0.3, 0.9, 256, "Be brief.")
    assert conversation.title == "First question"
    reply = conversation.messages.get(role="assistant")
    assert _no_generation == [reply.pk]


def test_the_new_chat_page_offers_every_usable_model_with_its_parameters(as_alice, model,
                                                                         other_model):
    ChatModel.objects.create(relay=model.relay, model_id="retired", is_active=False)

    html = as_alice.get(reverse("conversation_new")).content.decode()

    assert 'id="id_model"' in html
    assert "Gemini Flash" in html and "GPT mini" in html
    assert "retired" not in html
    for label in ("Temperature", "Top P", "Max tokens", "System prompt", "Message"):
        assert f">{label}</label>" in html


def test_a_new_conversation_remembers_the_last_models_settings(as_alice, alice, other_model):
    Conversation.objects.create(owner=alice, model=other_model, temperature=1.5)

    html = as_alice.get(reverse("conversation_new")).content.decode()

    assert re.search(rf'<option value="{other_model.pk}"\s+selected', html)
    assert 'value="1.5"' in html


def test_bad_parameters_get_a_readable_422_and_keep_the_message(as_alice, model):
    response = as_alice.post(
        reverse("conversation_new"), {"model": model.pk, "temperature": "7", "text": "keep me"}
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "less than or equal to 2" in html
    assert "keep me</textarea>" in html
    assert not Conversation.objects.exists()


def test_bad_parameters_over_htmx_get_a_readable_422(as_alice, model):
    response = as_alice.post(
        reverse("conversation_new"), {"model": model.pk, "top_p": "3", "text": "hi"}, **HTMX
    )

    assert response.status_code == 422
    assert "Top P: Ensure this value is less than or equal to 1." in response.content.decode()
    assert not Conversation.objects.exists()


def test_an_empty_first_message_leaves_no_empty_conversation_behind(as_alice, model):
    response = as_alice.post(reverse("conversation_new"), {"model": model.pk, "text": ""}, **HTMX)

    assert response.status_code == 422
    assert "Write a message or attach a file first." in response.content.decode()
    assert not Conversation.objects.exists()


def test_a_first_message_that_is_too_long_shows_why_without_htmx(as_alice, model):
    response = as_alice.post(
        reverse("conversation_new"), {"model": model.pk, "text": "y" * 200_001}
    )

    assert response.status_code == 422
    assert "at most 200000 characters" in response.content.decode()


def test_without_models_the_new_chat_page_says_what_to_do(as_alice):
    html = as_alice.get(reverse("conversation_new")).content.decode()

    assert "No models are set up yet." in html
    assert 'id="composer"' not in html


# -- settings, stop, retry, delete -------------------------------------------------------


def test_settings_switch_the_model_and_parameters(as_alice, conversation, other_model):
    url = reverse("conversation_settings", kwargs={"pk": conversation.pk})

    response = as_alice.post(
        url, {"model": other_model.pk, "temperature": "0.7", "max_tokens": "100"}, **HTMX
    )

    assert response.status_code == 200
    assert "Saved." in response.content.decode()
    conversation.refresh_from_db()
    assert (conversation.model, conversation.temperature, conversation.max_tokens) == (
        other_model, 0.7, 100)


def test_a_settings_save_answers_with_the_forms_inside_alone(as_alice, conversation,
                                                             other_model):
    """The page keeps the form htmx has wired up: a second Save pressed while the
    answer is being swapped in must not find a bare form (sent without script)."""
    url = reverse("conversation_settings", kwargs={"pk": conversation.pk})

    html = as_alice.post(url, {"model": other_model.pk}, **HTMX).content.decode()

    assert 'id="settings-form"' not in html
    assert 'name="model"' in html and "Save settings" in html


def test_settings_and_a_model_sent_without_script_are_saved_and_lead_back_to_the_chat(
        as_alice, conversation, other_model):
    url = reverse("conversation_settings", kwargs={"pk": conversation.pk})

    model_url = reverse("conversation_model", kwargs={"pk": conversation.pk})
    assert as_alice.post(model_url, {"model": other_model.pk}).status_code == 302

    response = as_alice.post(url, {"model": other_model.pk})

    assert response.status_code == 302
    assert response["Location"] == reverse("conversation", kwargs={"pk": conversation.pk})
    conversation.refresh_from_db()
    assert conversation.model == other_model


def test_every_form_that_posts_with_htmx_would_post_to_the_same_place_without_it(
        as_alice, failed_reply):
    """Sent before htmx has wired a form up (a swap in progress, a script that failed
    to load), a form without method="post" goes out as a GET: the page is left and
    what was typed ends up in the address."""
    url = reverse("conversation", kwargs={"pk": failed_reply.conversation_id})
    html = as_alice.get(url).content.decode()

    forms = re.findall(r"<form\b[^>]*\bhx-post=[^>]*>", html)
    assert len(forms) >= 7  # composer, model, settings, rename, pin, archive, delete, edit
    for form in forms:
        assert 'method="post"' in form, form
        assert re.search(r'\baction="([^"]+)"', form)[1] == re.search(
            r'\bhx-post="([^"]+)"', form)[1], form


def test_invalid_settings_get_a_readable_422_and_change_nothing(as_alice, conversation, model):
    inactive = ChatModel.objects.create(relay=model.relay, model_id="off", is_active=False)
    url = reverse("conversation_settings", kwargs={"pk": conversation.pk})

    response = as_alice.post(url, {"model": inactive.pk, "max_tokens": "0"}, **HTMX)

    html = response.content.decode()
    assert response.status_code == 422
    assert "Select a valid choice" in html
    assert "greater than or equal to 1" in html
    conversation.refresh_from_db()
    assert conversation.model == model


def test_stop_cancels_a_reply_that_has_not_started(as_alice, pending_reply):
    response = as_alice.post(reverse("message_stop", kwargs={"pk": pending_reply.pk}), **HTMX)

    assert response.status_code == 200
    pending_reply.refresh_from_db()
    assert pending_reply.status == "cancelled"
    assert "stopped" in response.content.decode()
    assert f'id="message-{pending_reply.pk}"' in response.content.decode()


def test_retry_starts_a_new_reply_after_a_failure(as_alice, failed_reply, _no_generation,
                                                  django_capture_on_commit_callbacks):
    url = reverse("message_retry", kwargs={"pk": failed_reply.pk})

    with django_capture_on_commit_callbacks(execute=True):
        response = as_alice.post(url, **HTMX)

    new_reply = failed_reply.conversation.messages.latest("created_at")
    assert response.status_code == 200
    assert new_reply.pk != failed_reply.pk
    assert new_reply.status == "pending"
    assert f'id="message-{new_reply.pk}"' in response.content.decode()
    assert _no_generation == [new_reply.pk]


def test_retry_while_a_reply_is_running_is_refused_in_plain_words(as_alice, pending_reply):
    response = as_alice.post(reverse("message_retry", kwargs={"pk": pending_reply.pk}), **HTMX)

    assert response.status_code == 422
    assert "Only a finished reply can be retried." in response.content.decode()


def test_delete_removes_the_conversation_and_goes_home(as_alice, failed_reply):
    conversation_pk = failed_reply.conversation_id

    response = as_alice.post(reverse("conversation_delete", kwargs={"pk": conversation_pk}),
                             **HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("home")
    owner = failed_reply.conversation.owner
    assert not Conversation.objects.for_user(owner).filter(pk=conversation_pk).exists()
    assert not Message.objects.filter(conversation_id=conversation_pk).exists()
    gone = as_alice.get(reverse("conversation", kwargs={"pk": conversation_pk}))
    assert gone.status_code == 404


# -- pages ---------------------------------------------------------------------------------


def test_home_opens_the_latest_conversation_or_a_new_one(as_alice, alice, model):
    assert as_alice.get(reverse("home"))["Location"] == reverse("conversation_new")
    Conversation.objects.create(owner=alice, model=model, title="old")
    latest = Conversation.objects.create(owner=alice, model=model, title="new")

    assert as_alice.get(reverse("home"))["Location"] == reverse(
        "conversation", kwargs={"pk": latest.pk})


def test_the_sidebar_shows_newest_first_and_marks_the_current_one(as_alice, alice, model):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    older = Conversation.objects.create(owner=alice, model=model, title="Older chat",
                                        updated_at=now - timedelta(days=1))
    newer = Conversation.objects.create(owner=alice, model=model, title="Newer chat",
                                        updated_at=now)

    html = as_alice.get(reverse("conversation", kwargs={"pk": older.pk})).content.decode()

    sidebar = html[html.index('id="conversation-list"'):]
    assert sidebar.index("Newer chat") < sidebar.index("Older chat")
    current = re.search(r'<li id="conversation-item-(\d+)"[^>]*aria-current="page"', html)
    assert current and int(current.group(1)) == older.pk
    assert f'id="conversation-item-{newer.pk}"' in html


def test_a_conversation_page_shows_its_messages_as_stored(as_alice, failed_reply):
    again = failed_reply.conversation.messages.create(role="user", text="Again",
                                                      parent=failed_reply)
    failed_reply.conversation.messages.create(
        role="assistant", status="complete", text="# Heading\n\n<script>x()</script>",
        model=failed_reply.model, parent=again,
    )

    html = as_alice.get(
        reverse("conversation", kwargs={"pk": failed_reply.conversation_id})
    ).content.decode()

    assert "The relay says your key has run out of quota." in html
    assert ">Retry</button>" in html
    assert "<h1>Heading</h1>" in html
    assert "<script>x()" not in html
    assert 'aria-label="Message"' in html or 'for="id_text"' in html


# -- secrets ---------------------------------------------------------------------------------


def test_the_relay_key_never_appears_on_any_page(alice, relay, model, failed_reply):
    admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
    conversation = failed_reply.conversation
    pages = {}
    as_owner = signed_in(alice)
    as_admin = signed_in(admin)
    for name, response in [
        ("login", Client().get(reverse("login"))),
        ("new", as_owner.get(reverse("conversation_new"))),
        ("detail", as_owner.get(reverse("conversation", kwargs={"pk": conversation.pk}))),
        ("settings", as_owner.post(
            reverse("conversation_settings", kwargs={"pk": conversation.pk}),
            {"model": model.pk}, **HTMX)),
        ("retry", as_owner.post(reverse("message_retry", kwargs={"pk": failed_reply.pk}),
                                **HTMX)),
        ("post refused", as_owner.post(
            reverse("message_create", kwargs={"pk": conversation.pk}), {"text": "x"}, **HTMX)),
        ("admin index", as_admin.get(reverse("admin:index"))),
        ("relay list", as_admin.get(reverse("admin:conversations_relay_changelist"))),
        ("relay form", as_admin.get(
            reverse("admin:conversations_relay_change", args=[relay.pk]))),
        ("model form", as_admin.get(
            reverse("admin:conversations_chatmodel_change", args=[model.pk]))),
        ("conversation form", as_admin.get(
            reverse("admin:conversations_conversation_change", args=[conversation.pk]))),
        ("message form", as_admin.get(
            reverse("admin:conversations_message_change", args=[failed_reply.pk]))),
        ("admin new chat page", as_admin.get(reverse("conversation_new"))),
    ]:
        assert response.status_code in (200, 422), (name, response.status_code)
        pages[name] = response.content.decode()

    for name, html in pages.items():
        assert RELAY_KEY not in html, name
        assert RELAY_KEY[:12] not in html, name
    assert 'name="api_key"' in pages["relay form"]  # the form is there, just without the key



def test_reasoning_is_shown_folded_below_a_summary(as_alice, conversation):
    conversation.messages.create(
        role="assistant", status="complete", text="Answer.", reasoning="Step *one*.",
        model=conversation.model,
    )

    html = as_alice.get(reverse("conversation", kwargs={"pk": conversation.pk})).content.decode()

    details = re.search(r"<details class=\"reasoning\"[^>]*>", html)
    assert details and "open" not in details.group(0) and "hidden" not in details.group(0)
    assert "<summary>Reasoning</summary>" in html
    assert "<em>one</em>" in html


def test_a_first_chat_starts_on_the_model_that_takes_the_most_kinds_of_file(as_alice, relay):
    ChatModel.objects.create(relay=relay, model_id="a-text-only", display_name="A text only")
    ChatModel.objects.create(relay=relay, model_id="b-images", display_name="B images",
                             accepts_image=True)
    ChatModel.objects.create(relay=relay, model_id="z-everything", display_name="Z everything",
                             accepts_image=True, accepts_audio=True, accepts_video=True,
                             accepts_pdf=True)
    page = as_alice.get(reverse("conversation_new")).content.decode()
    selected = re.search(r'<option value="\d+" selected[^>]*>([^<]+)</option>', page)
    assert selected and selected.group(1) == "Z everything · pictures, audio, video, PDF"
