"""A reply's life: relay stream → frames → checkpoints → one final save.

These run the real generation task against the relay simulator over loopback
HTTP, with the in-memory channel layer and a real (test) database.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from conversations import generation, replies, services
from conversations.errors import ServiceError
from conversations.events import control_group, conversation_group
from conversations.models import Message, Usage
from conversations.rendering import render_markdown
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_frames(settings):
    settings.STREAM_FRAME_INTERVAL = 0.05
    settings.STREAM_CHECKPOINT_INTERVAL = 0.2
    settings.RELAY_MAX_RETRIES = 0


def _setup(simulator, model_id="gemini-2.5-flash", **conversation):
    user = make_user()
    relay = make_relay(simulator.url)
    model = make_model(relay, model_id)
    return make_conversation(user, model, **conversation)


def _post(conversation, text="Hello there"):
    """Store a message and its pending reply without starting the generation."""
    from django.db import transaction

    callbacks = []
    original = transaction.on_commit
    transaction.on_commit = lambda fn, using=None, robust=False: callbacks.append(fn)
    try:
        return services.post_message(
            conversation=conversation, author=conversation.owner, text=text
        )
    finally:
        transaction.on_commit = original


class GroupListener:
    """Collects what a browser's consumer would receive from the group."""

    def __init__(self, conversation_id: int) -> None:
        self.group = conversation_group(conversation_id)
        self.layer = get_channel_layer()
        self.events: list[dict] = []
        self.times: list[float] = []  # loop time each event arrived
        self.channel = ""

    async def __aenter__(self):
        self.channel = await self.layer.new_channel()
        await self.layer.group_add(self.group, self.channel)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self):
        while True:
            self.events.append(await self.layer.receive(self.channel))
            self.times.append(asyncio.get_running_loop().time())

    async def __aexit__(self, *exc):
        await asyncio.sleep(0.05)
        self._task.cancel()
        await self.layer.group_discard(self.group, self.channel)

    @property
    def frames(self):
        return [e for e in self.events if e["type"] == "reply.frame"]

    def blocks(self, field="text") -> dict[int, str]:
        """The page's state after applying every frame in order (upsert by index)."""
        state: dict[int, str] = {}
        for frame in self.frames:
            for index, html in frame[field]:
                state[index] = html
        return state


async def _load(pk):
    return await database_sync_to_async(
        lambda: Message.objects.select_related("usage").get(pk=pk)
    )()


async def _run(message_id):
    generation._spawn(message_id)
    task = generation.running_generations()[message_id].task
    await asyncio.wait_for(asyncio.shield(task), timeout=30)


async def test_a_reply_streams_in_frames_and_is_saved_once_with_usage(simulator):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation, "Tell me **everything**")
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    saved = await _load(reply.pk)
    sent = simulator.requests[-1]
    assert saved.status == Message.Status.COMPLETE
    assert saved.finish_reason == "stop"
    assert saved.text == sent.reply
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    # The page, built only from frames, shows exactly what a reload renders.
    state = listener.blocks()
    assert [state[i] for i in sorted(state)] == render_markdown(saved.text)
    finished = listener.events[-1]
    assert (finished["type"], finished["message_id"]) == ("reply.finished", reply.pk)
    # It carries the reply as stored, rendered once for every page watching.
    assert f'id="message-{reply.pk}"' in finished["html"]
    assert "status-complete" in finished["html"]
    # Built from the blocks the stream rendered: the same as rendering it afresh.
    from conversations.fragments import render_stored_messages

    assert finished["html"] == await database_sync_to_async(render_stored_messages)([reply.pk])
    usage = await database_sync_to_async(Usage.objects.get)(message=saved)
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.estimated is False
    assert await database_sync_to_async(Usage.objects.count)() == 1


async def test_the_request_carries_the_conversation_history_and_parameters(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, system_prompt="Be brief.", temperature=0.8, top_p=0.1, max_tokens=2000
    )
    _, first = await database_sync_to_async(_post)(conversation, "First question")
    await _run(first.pk)
    _, second = await database_sync_to_async(_post)(conversation, "Second question")
    await _run(second.pk)
    body = simulator.requests[-1].body
    assert body["temperature"] == 0.8 and body["top_p"] == 0.1 and body["max_tokens"] == 2000
    assert "steam" not in body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert body["messages"][1]["content"] == "First question"
    assert body["messages"][2]["content"] == simulator.requests[0].reply
    assert body["messages"][3]["content"] == "Second question"


async def test_frames_are_coalesced_and_finished_blocks_are_never_resent(simulator):
    simulator.sim.token_rate = 400  # ~400 tokens in ~1 s: about 20 frames, not 400
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=400"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    async with GroupListener(conversation.pk) as listener:
        await _run(reply.pk)
    frames = listener.frames
    assert 5 <= len(frames) <= 60, len(frames)
    # Never two frames within one interval (0.05 s here), give or take timer slack.
    arrivals = [t for t, e in zip(listener.times, listener.events, strict=True)
                if e["type"] == "reply.frame" and not e["snapshot"]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.04, sorted(gaps)[:5]
    closed_seen: set[int] = set()
    for frame in frames:
        indexes = [index for index, _ in frame["text"]]
        assert not closed_seen.intersection(indexes), "a finished block was sent again"
        # Every block in a frame but the last one is finished from now on.
        closed_seen.update(indexes[:-1])
    saved = await _load(reply.pk)
    state = listener.blocks()
    assert [state[i] for i in sorted(state)] == render_markdown(saved.text)


async def test_the_first_content_goes_out_at_once(simulator):
    simulator.sim.token_rate = 2  # the second token comes 0.5 s after the first
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=3"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    async with GroupListener(conversation.pk) as listener:
        started = asyncio.get_running_loop().time()
        generation._spawn(reply.pk)
        while not listener.frames and asyncio.get_running_loop().time() - started < 2:
            await asyncio.sleep(0.005)
        elapsed = asyncio.get_running_loop().time() - started
        assert listener.frames, "no frame within two seconds"
        # Well before the second token (0.5 s later): the first frame is not held back.
        assert elapsed < 0.4, elapsed
        assert "You" in listener.frames[0]["text"][0][1]
        await asyncio.wait_for(generation.running_generations()[reply.pk].task, 10)


@pytest.mark.django_db
def test_a_checkpoint_saves_streaming_replies_and_leaves_finished_ones_alone(simulator):
    conversation = _setup(simulator)
    _, streaming = _post(conversation, "first")
    Message.objects.filter(pk=streaming.pk).update(status=Message.Status.STREAMING)
    _, finished = _post_after(conversation, streaming, "second")
    Message.objects.filter(pk=finished.pk).update(
        status=Message.Status.COMPLETE, text="final text"
    )
    before = timezone.now()
    replies.checkpoint_replies([
        (streaming.pk, "so far, 你好 **bold**", "thinking"),
        (finished.pk, "a late checkpoint", ""),
    ])
    streaming.refresh_from_db()
    finished.refresh_from_db()
    assert (streaming.text, streaming.reasoning) == ("so far, 你好 **bold**", "thinking")
    assert streaming.updated_at >= before  # the heartbeat other processes read
    assert finished.text == "final text"


def _post_after(conversation, reply, text):
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    user_message, second = _post(conversation, text)
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.STREAMING)
    return user_message, second


async def test_partial_text_is_checkpointed_while_streaming(simulator):
    simulator.sim.token_rate = 20
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=40"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    generation._spawn(reply.pk)
    await asyncio.sleep(1.0)
    midway = await _load(reply.pk)
    assert midway.status == Message.Status.STREAMING
    assert midway.text, "no checkpoint after a second of streaming"
    assert (timezone.now() - midway.updated_at) < timedelta(seconds=1)
    await asyncio.wait_for(generation.running_generations()[reply.pk].task, 10)
    final = await _load(reply.pk)
    assert final.text.startswith(midway.text)
    assert len(final.text) > len(midway.text)


async def test_stop_keeps_what_arrived(simulator):
    simulator.sim.token_rate = 20
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=200"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    async with GroupListener(conversation.pk) as listener:
        generation._spawn(reply.pk)
        task = generation.running_generations()[reply.pk].task
        await asyncio.sleep(0.6)
        # Stop travels through the control group, as it would from another process.
        await get_channel_layer().group_send(
            control_group(conversation.pk), {"type": "generation.stop", "message_id": reply.pk}
        )
        await asyncio.wait_for(task, 5)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.CANCELLED
    assert saved.text and len(saved.text) < len(simulator.requests[-1].reply)
    assert listener.events[-1]["type"] == "reply.finished"
    usage = await database_sync_to_async(Usage.objects.get)(message=saved)
    assert usage.estimated is True and usage.completion_tokens > 0


async def test_a_relay_error_mid_stream_keeps_the_partial_text_and_the_relays_words(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@error_after=5,message=upstream exploded"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    await _run(reply.pk)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.FAILED
    assert saved.text == "".join(re.findall(r"\s*\S+\s*", simulator.requests[-1].reply)[:5])
    assert "upstream exploded" in saved.error


async def test_an_exhausted_key_is_explained_in_plain_words(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@fail=401,message=该令牌额度已用尽"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    await _run(reply.pk)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.FAILED
    assert "run out of quota" in saved.error
    assert "该令牌额度已用尽" in saved.error
    assert saved.error_status == 401
    assert await database_sync_to_async(Usage.objects.count)() == 0


async def test_a_reply_without_finish_reason_is_marked_as_possibly_cut(simulator):
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@cut_after=8"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    await _run(reply.pk)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.COMPLETE
    assert saved.finish_reason == ""
    assert "may be cut short" in saved.warning


async def test_a_page_that_reconnects_gets_every_block_so_far(simulator):
    simulator.sim.token_rate = 100
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=150"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    layer = get_channel_layer()
    generation._spawn(reply.pk)
    await asyncio.sleep(0.8)
    inbox = await layer.new_channel()
    await layer.group_send(
        control_group(conversation.pk), {"type": "generation.resync", "reply_channel": inbox}
    )
    snapshot = await asyncio.wait_for(layer.receive(inbox), 2)
    assert snapshot["snapshot"] is True
    indexes = [index for index, _ in snapshot["text"]]
    assert indexes == list(range(len(indexes))) and len(indexes) >= 2
    await asyncio.wait_for(generation.running_generations()[reply.pk].task, 10)


async def test_server_shutdown_marks_running_replies_interrupted_with_their_text(simulator):
    simulator.sim.token_rate = 20
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=200"
    )
    _, reply = await database_sync_to_async(_post)(conversation)
    generation._spawn(reply.pk)
    await asyncio.sleep(0.5)
    await generation.shutdown(grace=5)
    saved = await _load(reply.pk)
    assert saved.status == Message.Status.INTERRUPTED
    assert saved.text


@pytest.mark.django_db
def test_replies_left_streaming_by_a_dead_process_become_interrupted(simulator):
    conversation = _setup(simulator)
    _, reply = _post(conversation)
    Message.objects.filter(pk=reply.pk).update(
        status=Message.Status.STREAMING, text="half an ans",
        updated_at=timezone.now() - timedelta(minutes=5),
    )
    fresh = Message.objects.create(
        conversation=conversation, role="assistant", status=Message.Status.STREAMING,
    )
    assert len(replies.close_dead_replies()) == 1
    reply.refresh_from_db()
    fresh.refresh_from_db()
    assert reply.status == Message.Status.INTERRUPTED
    assert reply.text == "half an ans"
    assert fresh.status == Message.Status.STREAMING  # alive elsewhere: left alone


@pytest.mark.django_db
def test_stopping_a_reply_that_has_not_started_cancels_it_before_it_is_sent(simulator):
    conversation = _setup(simulator)
    _, reply = _post(conversation)
    assert services.request_stop(message=reply) is True
    reply.refresh_from_db()
    assert reply.status == Message.Status.CANCELLED
    assert replies.begin_reply(reply.pk) is None
    assert simulator.requests == []


@pytest.mark.django_db
def test_a_second_message_waits_for_the_reply_in_flight(simulator):
    conversation = _setup(simulator)
    _post(conversation)
    with pytest.raises(ServiceError, match="Wait for the current reply"):
        _post(conversation, "again")


async def test_the_announcement_goes_out_before_the_first_frame_and_its_failure_costs_no_reply(
    simulator, monkeypatch
):
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation)
    group = conversation_group(conversation.pk)
    announced = {"type": "messages.created", "html": "<p>the new messages</p>"}
    async with GroupListener(conversation.pk) as listener:
        generation._spawn(reply.pk, (group, announced))
        await asyncio.wait_for(generation.running_generations()[reply.pk].task, timeout=30)
    assert listener.events[0] == announced
    assert listener.events[1]["type"] == "reply.frame"

    # A channel layer that fails the announcement: the reply is written all the same.
    _, second = await database_sync_to_async(_post)(conversation, "And again")
    real_publish = generation.publish

    async def failing_first(group_name, event):
        if event["type"] == "messages.created":
            raise ConnectionError("the channel layer is down")
        await real_publish(group_name, event)

    monkeypatch.setattr(generation, "publish", failing_first)
    generation._spawn(second.pk, (group, announced))
    await asyncio.wait_for(generation.running_generations()[second.pk].task, timeout=30)
    assert (await _load(second.pk)).status == Message.Status.COMPLETE


async def test_a_reply_begins_while_its_announcement_is_on_its_way(simulator, monkeypatch):
    """begin_reply does not wait for the announcement (a round trip to the channel
    layer, on the way to the first token); the reply's frames do."""
    conversation = await database_sync_to_async(_setup)(simulator)
    _, reply = await database_sync_to_async(_post)(conversation)
    group = conversation_group(conversation.pk)
    announced = {"type": "messages.created", "html": "<p>the new messages</p>"}
    real_publish = generation.publish
    released = asyncio.Event()

    async def slow_announcement(group_name, event):
        if event["type"] == "messages.created":
            await released.wait()
        await real_publish(group_name, event)

    monkeypatch.setattr(generation, "publish", slow_announcement)
    async with GroupListener(conversation.pk) as listener:
        generation._spawn(reply.pk, (group, announced))
        async with asyncio.timeout(10):
            while (await _load(reply.pk)).status == Message.Status.PENDING:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert listener.events == []  # begun, and nothing published before the announcement
        released.set()
        await asyncio.wait_for(generation.running_generations()[reply.pk].task, timeout=30)
    assert listener.events[0] == announced
    assert listener.events[1]["type"] == "reply.frame"
    assert (await _load(reply.pk)).status == Message.Status.COMPLETE


async def test_a_channel_layer_away_mid_reply_loses_no_text_and_pages_catch_up_after(
    simulator, monkeypatch
):
    """Redis restarting for a while: the reply goes on and is saved complete; the
    first frame after it is back carries every block, so a page misses nothing."""
    monkeypatch.setattr(generation, "PUBLISH_RETRY_INTERVAL", 0.05)
    conversation = await database_sync_to_async(_setup)(
        simulator, model_id="gemini-2.5-flash@tokens=120,rate=200,paragraph=5")
    _, reply = await database_sync_to_async(_post)(conversation, "a long answer please")
    real_publish = generation.publish
    down = {"frames": 0}

    async def flaky(group_name, event):
        # Down after the first frame, for the next several, then back.
        if event["type"] == "reply.frame" and 1 <= down["frames"] < 8:
            down["frames"] += 1
            raise ConnectionError("the channel layer is down")
        if event["type"] == "reply.frame":
            down["frames"] += 1
        await real_publish(group_name, event)

    monkeypatch.setattr(generation, "publish", flaky)
    async with GroupListener(conversation.pk) as listener:
        generation._spawn(reply.pk)
        await asyncio.wait_for(generation.running_generations()[reply.pk].task, timeout=30)
    stored = await _load(reply.pk)
    assert stored.status == Message.Status.COMPLETE
    frames = [e for e in listener.events if e["type"] == "reply.frame"]
    assert down["frames"] >= 8, "the outage did not happen"
    # The first frame published after the outage is a snapshot of every block so far.
    after = next(f for f in frames[1:] if f["snapshot"])
    assert [index for index, _ in after["text"]] == list(range(len(after["text"])))
    # What the page would show equals what was stored.
    shown: dict[int, str] = {}
    for frame in frames:
        shown.update(dict(frame["text"]))
    assert [shown[i] for i in sorted(shown)] == render_markdown(stored.text)
    assert listener.events[-1]["type"] == "reply.finished"


@pytest.mark.django_db(transaction=True)
def test_a_reply_closed_as_dead_while_its_generation_lives_is_saved_as_it_really_ended(
    simulator,
):
    """A database outage kept its heartbeat from landing and another process's
    sweep closed it: the generation, which has every token, has the last word."""
    conversation = _setup(simulator)
    _, reply = _post(conversation)
    job = replies.begin_reply(reply.pk)
    # Generated on another machine, as far as this sweep can tell: only the heartbeat counts.
    Message.objects.filter(pk=reply.pk).update(generated_by="another-host:1:1")
    assert replies.close_dead_replies(older_than=timedelta(0)) == [reply.pk]
    assert Message.objects.get(pk=reply.pk).status == Message.Status.INTERRUPTED
    saved = replies.finish_reply(message_id=reply.pk, job=job, outcome=replies.ReplyOutcome(
        status=Message.Status.COMPLETE, text="The whole answer.", finish_reason="stop"))
    stored = Message.objects.get(pk=reply.pk)
    assert (stored.status, stored.text, stored.error) == (
        Message.Status.COMPLETE, "The whole answer.", "")
    assert saved.pk == reply.pk
    # A reply a person stopped is not reopened: only a sweep's verdict gives way.
    _, second = _post(conversation, "again")
    replies.begin_reply(second.pk)
    Message.objects.filter(pk=second.pk).update(status=Message.Status.CANCELLED)
    replies.finish_reply(message_id=second.pk, outcome=replies.ReplyOutcome(
        status=Message.Status.COMPLETE, text="late"))
    assert Message.objects.get(pk=second.pk).status == Message.Status.CANCELLED


@pytest.mark.django_db
def test_a_reply_waiting_to_begin_is_not_taken_for_dead_as_soon_as_a_silent_stream():
    conversation = make_conversation(make_user(), make_model(make_relay("http://127.0.0.1:9")))
    waiting = Message.objects.create(conversation=conversation, role="assistant",
                                     status=Message.Status.PENDING)
    Message.objects.filter(pk=waiting.pk).update(
        updated_at=timezone.now() - timedelta(seconds=30))
    assert replies.close_dead_replies() == []
    Message.objects.filter(pk=waiting.pk).update(
        updated_at=timezone.now() - timedelta(seconds=replies.PENDING_STALE_AFTER + 1))
    assert replies.close_dead_replies() == [waiting.pk]
