"""The chat core in Simplified Chinese: refusals in the request's language, and
what a reply writes without a request (its errors, warnings and HTML) in its
owner's language, wherever the generation runs."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation

from chatsite.asgi import application
from conversations import fragments, generation, replies
from conversations.models import Conversation, Message, Preferences
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.test_consumers import _receive_until
from tests.test_generation import GroupListener, _post, _run

PASSWORD = "pw-for-tests-123"  # tests.factories.make_user's

NO_MODEL_ZH = "此对话已没有模型；请选择一个模型后重试。"
NO_MODEL_EN = "This conversation has no model any more; pick one and retry."
EMPTY_ZH = "请先输入消息或添加附件。"
CUT_ZH = "中转站结束了回复，但没有表明已完成，因此回复可能不完整。"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0


def _conversation(username="alice", language="", base_url="http://127.0.0.1:9",
                  model_id="gemini-2.5-flash"):
    user = make_user(username)
    if language:
        Preferences.objects.create(user=user, language=language)
    return make_conversation(user, make_model(make_relay(base_url), model_id))


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _without_model(reply: Message) -> None:
    Message.objects.filter(pk=reply.pk).update(model=None)
    Conversation.objects.filter(pk=reply.conversation_id).update(model=None)


# -- requests ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_refusal_is_said_in_the_browsers_language():
    conversation = _conversation()
    client = _signed_in(conversation.owner)
    url = reverse("message_create", kwargs={"pk": conversation.pk})
    chinese = client.post(url, {"text": ""}, HTTP_HX_REQUEST="true",
                          HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert chinese.status_code == 422
    assert EMPTY_ZH in chinese.content.decode()
    english = _signed_in(conversation.owner).post(url, {"text": ""}, HTTP_HX_REQUEST="true",
                                                  HTTP_ACCEPT_LANGUAGE="en")
    assert "Write a message or attach a file first." in english.content.decode()


@pytest.mark.django_db
def test_the_400_handlers_words_follow_the_browser(settings):
    from django.core.exceptions import RequestDataTooBig
    from django.test import RequestFactory

    from conversations.views import bad_request

    request = RequestFactory().post("/", HTTP_HX_REQUEST="true")
    with translation.override("zh-hans"):
        html = bad_request(request, RequestDataTooBig()).content.decode()
    assert "此消息太长，无法发送" in html and "未发送任何内容。" in html


@pytest.mark.django_db
def test_a_language_chosen_from_the_menu_follows_the_person_to_a_new_sign_in():
    conversation = _conversation()
    first = Client()
    assert first.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    first.post(reverse("choose_language"), {"language": "zh-hans", "next": "/"})
    assert Preferences.objects.get(user=conversation.owner).language == "zh-hans"
    # Another browser, asking for English: the choice is copied into its session at sign-in.
    other = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert other.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 302
    assert other.session["language"] == "zh-hans"
    refused = other.post(reverse("message_create", kwargs={"pk": conversation.pk}),
                         {"text": ""}, HTTP_HX_REQUEST="true")
    assert EMPTY_ZH in refused.content.decode()


@pytest.mark.django_db
def test_the_browsers_language_is_noted_for_work_done_later():
    conversation = _conversation()
    _signed_in(conversation.owner).get("/", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert Preferences.objects.get(user=conversation.owner).browser_language == "zh-hans"
    _, reply = _post(conversation)
    _without_model(reply)
    assert replies.begin_reply(reply.pk) is None
    assert Message.objects.get(pk=reply.pk).error == NO_MODEL_ZH


@pytest.mark.django_db
def test_the_javascript_catalogue_carries_the_scripts_chinese():
    response = Client().get(reverse("javascript-catalog"), HTTP_ACCEPT_LANGUAGE="zh-CN")
    text = response.content.decode()
    assert response.status_code == 200
    for chinese in ("已复制", "连接已断开，正在重新连接"):  # JSON: non-ASCII as \\u escapes
        assert json.dumps(chinese)[1:-1] in text


# -- work done without a request ---------------------------------------------------


@pytest.mark.django_db
def test_a_reply_that_fails_to_begin_says_why_in_its_owners_language():
    chinese = _conversation("li", language="zh-hans")
    english = _conversation("bob")
    _, reply_zh = _post(chinese)
    _, reply_en = _post(english)
    _without_model(reply_zh)
    _without_model(reply_en)
    with translation.override("en"):  # whatever the caller's
        assert replies.begin_reply(reply_zh.pk) is None
    with translation.override("zh-hans"):
        assert replies.begin_reply(reply_en.pk) is None
    assert Message.objects.get(pk=reply_zh.pk).error == NO_MODEL_ZH
    assert Message.objects.get(pk=reply_en.pk).error == NO_MODEL_EN


@pytest.mark.django_db
def test_a_reply_job_carries_its_owners_language_read_in_begin_replys_own_query():
    conversation = _conversation("li", language="zh-hans")
    _, reply = _post(conversation)
    with CaptureQueriesContext(connection) as queries:
        job = replies.begin_reply(reply.pk)
    assert job.language == "zh-hans"
    # No query more for it: the Preferences are joined into the read of the reply.
    table = Preferences._meta.db_table
    reading = [q["sql"] for q in queries.captured_queries if table in q["sql"]]
    assert len(reading) == 1 and Message._meta.db_table in reading[0]


@pytest.mark.django_db
def test_dead_replies_are_closed_in_each_owners_language_and_still_reopen():
    chinese = _conversation("li", language="zh-hans")
    english = _conversation("bob")
    _, reply_zh = _post(chinese)
    _, reply_en = _post(english)
    job = replies.begin_reply(reply_zh.pk)
    replies.begin_reply(reply_en.pk)
    # As if generated on another machine: only the heartbeat tells (see test_orphaned_replies).
    Message.objects.filter(pk__in=[reply_zh.pk, reply_en.pk]).update(generated_by="elsewhere:1:1")
    assert sorted(replies.close_dead_replies(older_than=timedelta(0))) == sorted(
        [reply_zh.pk, reply_en.pk])
    assert Message.objects.get(pk=reply_zh.pk).error == (
        "输出此回复时服务器停止了运行；此前收到的内容已保留。")
    assert Message.objects.get(pk=reply_en.pk).error.startswith("The server stopped")
    # The generation that was in fact alive still has the last word.
    replies.finish_reply(message_id=reply_zh.pk, job=job, outcome=replies.ReplyOutcome(
        status=Message.Status.COMPLETE, text="全部回答。", finish_reason="stop"))
    assert Message.objects.get(pk=reply_zh.pk).status == Message.Status.COMPLETE


def test_the_writing_badge_is_rendered_per_language(monkeypatch):
    fragments.writing_badge.cache_clear()
    monkeypatch.setattr(fragments, "render_to_string",
                        lambda *args, **kwargs: translation.get_language())
    frame = {"type": "reply.frame", "message_id": 7, "status": "streaming", "text": [],
             "reasoning": [], "snapshot": False}
    with translation.override("en"):
        assert "zh-hans" in fragments.frame_html(frame, "zh-hans")
        assert "en</div>" in fragments.frame_html(frame)
    with translation.override("zh-hans"):
        assert "zh-hans" in fragments.frame_html(frame)
    fragments.writing_badge.cache_clear()


@pytest.mark.django_db(transaction=True)
async def test_the_database_threads_of_a_generation_speak_the_jobs_language():
    with translation.override("en"):
        spoken = await generation._in_database(translation.get_language, "zh-hans")()
        loop = asyncio.get_running_loop()
        # A bare executor thread does not inherit the language; the wrapper sets it.
        bare = await loop.run_in_executor(
            None, generation._speaking("zh-hans", translation.get_language))
    assert spoken == "zh-hans" and bare == "zh-hans"


@pytest.mark.django_db(transaction=True)
async def test_a_finished_reply_is_saved_and_rendered_in_its_owners_language(simulator):
    conversation = await database_sync_to_async(_conversation)(
        "li", language="zh-hans", base_url=simulator.url,
        model_id="gemini-2.5-flash@cut_after=8")
    _, reply = await database_sync_to_async(_post)(conversation)
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    saved = await database_sync_to_async(Message.objects.get)(pk=reply.pk)
    assert saved.status == Message.Status.COMPLETE
    assert CUT_ZH in saved.warning
    finished = [e for e in listener.events if e["type"] == "reply.finished"]
    assert finished and CUT_ZH in finished[-1]["html"]


@pytest.mark.django_db(transaction=True)
async def test_a_reply_that_never_began_is_announced_in_its_owners_language(simulator):
    conversation = await database_sync_to_async(_conversation)(
        "li", language="zh-hans", base_url=simulator.url)
    _, reply = await database_sync_to_async(_post)(conversation)
    await database_sync_to_async(_without_model)(reply)
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    finished = [e for e in listener.events if e["type"] == "reply.finished"]
    assert finished and NO_MODEL_ZH in finished[-1]["html"]


async def _socket(conversation, accept_language: bytes):
    cookie = await database_sync_to_async(
        lambda: _signed_in(conversation.owner).cookies["sessionid"].value)()
    communicator = WebsocketCommunicator(
        application, f"/ws/conversations/{conversation.pk}/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode()),
                 (b"accept-language", accept_language)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_a_sockets_catch_up_is_rendered_in_the_sockets_language():
    conversation = await database_sync_to_async(_conversation)()
    _, reply = await database_sync_to_async(_post)(conversation)
    await database_sync_to_async(replies.begin_reply)(reply.pk)  # streaming from now on
    # A reply being written is rendered afresh for each page (a picture's label).
    await database_sync_to_async(
        Message.objects.filter(pk=reply.pk).update)(text="![a cat](picture:1)")
    for header, label in ((b"zh-CN,zh;q=0.9", "[图片 1]"), (b"en", "[picture 1]")):
        communicator = await _socket(conversation, header)
        try:
            await _receive_until(communicator, lambda text, label=label: label in text)
        finally:
            await communicator.disconnect()
