"""One reply: history → relay → frames to the browsers → the database.

A generation is an asyncio task on the server's event loop, started after
the posting transaction commits and tied to no socket. It

- reads the relay's stream and cuts the text into markdown blocks;
- publishes frames to the conversation's group at most every
  STREAM_FRAME_INTERVAL (the first content goes out at once), each carrying
  only the blocks that changed: newly closed ones, once, and the open one;
- checkpoints the partial text at least every STREAM_CHECKPOINT_INTERVAL;
- listens on the conversation's control group for Stop and for pages that
  (re)connect and need every block so far;
- saves the final text, usage and cost once, whatever happened.

All it writes and renders for the person (errors, warnings, the finished
message's HTML) is in the owner's language (ReplyJob.language), active for
the task and, explicitly, in the database threads it hands work to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import translation
from django.utils.translation import gettext

from conversations import replies, titles
from conversations.accounts import language as languages
from conversations.events import (
    GenerationRequest,
    ReplyFrame,
    control_group,
    conversation_group,
    publish,
    requests_channel_for,
    send_to_channel,
)
from conversations.fragments import messages_upsert, render_message, render_stored_messages, upsert
from conversations.infra.concurrency import database_work
from conversations.models import Message
from conversations.prompt import carries_media
from conversations.relays.client import RelayClient, shared_http_client
from conversations.relays.errors import RelayError
from conversations.relays.pictures import Picture
from conversations.rendering import StreamedText

logger = logging.getLogger(__name__)

# While the channel layer is away, how often a reply tries again, and how long
# it keeps trying to tell pages it finished (a page reconnecting later reads
# the stored reply anyway).
PUBLISH_RETRY_INTERVAL = 0.5
FINISHED_PUBLISH_PATIENCE = 30.0

# While the database is away (restarting, failing over), how long a reply's begin
# and final save keep trying, the reply's text kept in memory meanwhile, and the
# longest wait between two tries. Without it a save that met the outage ended
# the reply as failed (or left it to the sweep, as if its server had died).
DATABASE_PATIENCE = 60.0
DATABASE_RETRY_MAX_INTERVAL = 2.0

_loop: asyncio.AbstractEventLoop | None = None
_running: dict[int, Generation] = {}


def bind_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the server's event loop, where generations run."""
    global _loop
    _loop = loop


def running_generations() -> dict[int, Generation]:
    return _running


def start_generation(message_id: int, *, announce: tuple[str, dict] | None = None) -> None:
    """Start generating a reply; safe to call from any thread (e.g. on_commit).

    `announce`: (group, event) the generation publishes before anything else,
    e.g. the new messages for the conversation's other pages, so that they
    have the reply's container before its first frame. Sent from the task,
    not the caller's thread: a request does not wait for the loop's turn.

    With GENERATION_MODE=workers the reply is handed to the generation
    workers (conversations/workers.py) over the channel layer instead.
    """
    if settings.GENERATION_MODE == "workers":
        request: GenerationRequest = {
            "type": "generation.request", "message_id": message_id,
            "announce_group": announce[0] if announce else "",
            "announce": announce[1] if announce else None,
        }
        _hand_off(request)
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        _spawn(message_id, announce)
        return
    if _loop is None or not _loop.is_running():
        raise RuntimeError("No server event loop is bound; cannot start a generation.")
    _loop.call_soon_threadsafe(_spawn, message_id, announce, context=contextvars.Context())


def _hand_off(request: GenerationRequest) -> None:
    """Send the request from the server's loop without the caller waiting for
    it: a post's response does not wait its turn on a loop busy with frames.
    One that is lost is found by the workers' scan for pending replies."""
    if _loop is None or not _loop.is_running():
        async_to_sync(_send_request)(request)  # e.g. a shell
        return
    _loop.call_soon_threadsafe(
        lambda: _loop.create_task(_send_request(request)), context=contextvars.Context())


async def _send_request(request: GenerationRequest) -> None:
    channel = requests_channel_for(request["message_id"], settings.GENERATION_WORKERS)
    try:
        await send_to_channel(channel, request)
    except Exception:
        logger.warning("handing reply %s to the workers failed; they will find it pending",
                       request["message_id"], exc_info=True)


def spawn(message_id: int, announce: tuple[str, dict] | None = None) -> None:
    """Start the reply's task on this loop (a worker's, or the server's own)."""
    _spawn(message_id, announce)


def _spawn(message_id: int, announce: tuple[str, dict] | None = None) -> None:
    if message_id in _running:
        return
    generation = Generation(message_id, announce)
    _running[message_id] = generation
    # A fresh context: the generation must not inherit the posting request's
    # (its thread-sensitive executor dies with the request).
    generation.task = asyncio.get_running_loop().create_task(
        generation.run(), name=f"generation-{message_id}", context=contextvars.Context()
    )


_checkpointer: asyncio.Task | None = None


def _ensure_checkpointer() -> None:
    global _checkpointer
    loop = asyncio.get_running_loop()
    if _checkpointer is None or _checkpointer.done() or _checkpointer.get_loop() is not loop:
        _checkpointer = loop.create_task(
            _checkpoint_periodically(), name="checkpoints", context=contextvars.Context()
        )


async def _checkpoint_periodically() -> None:
    """Save every streaming reply's text so far, once an interval, in one write.

    One task for the whole process rather than one per reply: a hundred
    streams cost one trip to the database thread and one commit a second, and
    frames never wait for it. It doubles as the heartbeat that tells other
    processes a reply is alive, so it runs even while a relay is silent. It
    ends when no reply is running and is started again by the next one.
    """
    while _running:
        await asyncio.sleep(settings.STREAM_CHECKPOINT_INTERVAL)
        batch = [
            (g.message_id, g.text.value, g.reasoning.value)
            for g in list(_running.values())
            if g.streaming
        ]
        if batch:
            try:
                await database_sync_to_async(replies.checkpoint_replies)(batch)
            except (OperationalError, InterfaceError) as exc:
                # The database is away: the text is kept here, for the next
                # checkpoint or the final save (which waits for the database).
                logger.warning("checkpoint of %d replies failed: %s", len(batch), exc)
            except Exception:
                logger.exception("checkpoint of %d replies failed", len(batch))


def _in_database(function, language: str | None = None):
    """A reply's begin and save, off the loop (infra.concurrency.database_work):
    on PostgreSQL a hundred replies beginning at once wait for the database
    side by side, not in a queue (a hundred begin_reply calls of some 8 ms
    each were most of the time from Send to the first token).

    `language`: active in the thread while `function` runs (what it writes or
    renders for the person is in it), whatever that thread's context holds."""
    if language is not None:
        function = _speaking(language, function)
    return database_work(function)


def _speaking(language: str, function):
    def in_language(*args, **kwargs):
        with translation.override(language):
            return function(*args, **kwargs)

    return in_language


async def _while_database_away(call, message_id: int, what: str):
    """`await call()`, tried again while the database does not answer, for up to
    DATABASE_PATIENCE. A step is one transaction (replies.py): a try that failed
    saved nothing, and one whose commit landed unseen is found finished by the
    next (finish_reply saves once), so nothing is lost or counted twice."""
    deadline = time.monotonic() + DATABASE_PATIENCE
    delay = first_delay = 0.25
    while True:
        try:
            return await call()
        except (OperationalError, InterfaceError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            if delay == first_delay:
                logger.warning("reply %s: the database is not answering (%s); trying to %s "
                               "again for up to %.0f s", message_id, exc, what,
                               DATABASE_PATIENCE)
            await asyncio.sleep(delay)
            delay = min(delay * 2, DATABASE_RETRY_MAX_INTERVAL)


def shut_down_soon() -> None:
    """From a signal handler: end every running reply as interrupted, on the loop,
    without waiting for the server's connections to close first (a reply that
    streams from this server's own simulator mount would otherwise hold the
    server open until it finished)."""
    if _loop is not None and _loop.is_running():
        _loop.call_soon_threadsafe(
            lambda: _loop.create_task(shutdown()), context=contextvars.Context())


async def shutdown(grace: float = 5.0) -> None:
    """Server stopping: end every running reply as interrupted, keeping its text."""
    for generation in list(_running.values()):
        generation.interrupt()
    tasks = [g.task for g in _running.values() if g.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=grace)






class Generation:
    def __init__(self, message_id: int, announce: tuple[str, dict] | None = None) -> None:
        self.message_id = message_id
        self.announce = announce
        self.task: asyncio.Task | None = None
        self.text = StreamedText()
        self.reasoning = StreamedText()
        self.status = Message.Status.STREAMING
        self.stop_requested = False
        self.interrupted = False
        self._dirty = asyncio.Event()  # changes wait for the flusher
        self._frame_due = 0.0  # time.monotonic() before which _changed sends nothing
        self._flusher_idle = False  # waiting for changes, not sleeping out an interval
        self._done = False
        self._resync_channels: list[str] = []
        self._frames_lost = False  # a publish failed: the next frame carries every block
        self._retry_at = 0.0
        self.streaming = False  # begun at the relay: its text is worth checkpointing
        self.job: replies.ReplyJob | None = None  # what begin_reply read, once begun
        self.language: str | None = None  # the owner's, once known (job.language)
        self.conversation_id: int | None = None
        self._announcing: asyncio.Task | None = None  # the announcement, until it is out

    # -- control ------------------------------------------------------------

    def stop(self) -> None:
        self.stop_requested = True
        if self.task is not None:
            self.task.cancel()

    def interrupt(self) -> None:
        self.interrupted = True
        if self.task is not None:
            self.task.cancel()

    # -- the task -----------------------------------------------------------

    async def run(self) -> None:
        if self.announce is not None:
            # Beside begin_reply, not before it: the announcement need only go out
            # before anything else this reply publishes (_after_announcement).
            self._announcing = asyncio.create_task(self._announce(*self.announce))
        try:
            job = await _while_database_away(
                lambda: _in_database(replies.begin_reply)(self.message_id),
                self.message_id, "begin")
            if job is None:
                await self._announce_finished_if_known()
                return
            self.conversation_id = job.conversation_id
            self.language = job.language
            with translation.override(job.language):  # the task's, and its subtasks'
                await self._generate(job)
        except Exception:
            logger.exception("generation %s crashed", self.message_id)
            with contextlib.suppress(Exception):
                if self.language is None:  # crashed before begin_reply said whose it is
                    self.language = await database_sync_to_async(self._owner_language)()
                with translation.override(self.language):
                    error = gettext("Something went wrong on our side while writing this "
                                    "reply; what arrived is kept. Retry to try again.")
                await self._save(
                    replies.ReplyOutcome(
                        status=Message.Status.FAILED,
                        text=self.text.value,
                        reasoning=self.reasoning.value,
                        error=error,
                    )
                )
            # Its pages are told, as after any end (else they show it streaming until
            # reloaded); one that could not be saved is closed and announced by the sweep.
            with contextlib.suppress(Exception):
                await self._announce_finished_if_known()
        finally:
            _running.pop(self.message_id, None)

    async def _generate(self, job: replies.ReplyJob) -> None:
        self.job = job
        group = conversation_group(job.conversation_id)
        listener = asyncio.create_task(self._listen_for_control(job.conversation_id))
        flusher = asyncio.create_task(self._flush_frames(group))
        self.streaming = True
        _ensure_checkpointer()
        outcome = replies.ReplyOutcome(status=Message.Status.COMPLETE, text="")
        finish_reason = ""
        usage: dict[str, Any] | None = None
        images: list[Picture] = []  # decoded as they arrived (relays/pictures.py)
        client = RelayClient(
            job.target,
            connect_timeout=settings.RELAY_CONNECT_TIMEOUT,
            read_timeout=settings.RELAY_READ_TIMEOUT,
            max_retries=settings.RELAY_MAX_RETRIES,
            client=shared_http_client(),
        )
        asked_at = time.monotonic()
        try:
            # aclosing: however the loop ends (a Stop lands while a frame is
            # being sent, say), the relay's response is closed right away.
            async with contextlib.aclosing(client.stream_chat(job.body)) as events:
                async for event in events:
                    if self.stop_requested or self.interrupted:
                        # Cancelled while a library was awaiting, which took the
                        # cancellation for its own: honour it here.
                        raise asyncio.CancelledError
                    if outcome.first_token_ms is None and event.kind in {"content",
                                                                          "reasoning"}:
                        outcome.first_token_ms = round((time.monotonic() - asked_at) * 1000)
                    if event.kind == "content":
                        self.text.feed(event.text)
                        await self._changed(group)
                    elif event.kind == "reasoning":
                        self.reasoning.feed(event.text)
                        await self._changed(group)
                    elif event.kind == "finish":
                        finish_reason = event.text
                    elif event.kind == "usage":
                        usage = event.usage
                    elif event.kind == "image":
                        images.append(event.picture)
                    elif event.kind == "model":
                        outcome.served_model = event.text
            outcome.finish_reason = finish_reason
        except RelayError as exc:
            outcome.status = Message.Status.FAILED
            outcome.error = exc.message
            outcome.error_code = exc.code
            outcome.error_status = exc.status
        except asyncio.CancelledError:
            outcome.status = (
                Message.Status.CANCELLED if self.stop_requested else Message.Status.INTERRUPTED
            )
            if outcome.status == Message.Status.INTERRUPTED:
                outcome.error = str(replies.DEAD_REPLY_ERROR)
        finally:
            await asyncio.shield(client.aclose())
        outcome.text = self.text.value
        outcome.reasoning = self.reasoning.value
        outcome.sent_media = carries_media(job.body)
        outcome.usage = usage
        outcome.images = images
        self.status = outcome.status
        self._done = True
        self._dirty.set()
        listener.cancel()
        # From here the checkpointer leaves this reply alone; a checkpoint already
        # handed to the database thread runs before the final save, queued behind it.
        self.streaming = False
        # The last frame and the save must happen even if we were cancelled.
        await asyncio.shield(self._finish(flusher, outcome, group))

    async def _finish(
        self, flusher: asyncio.Task, outcome: replies.ReplyOutcome, group: str
    ) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        html = await self._save(outcome)
        finished = {"type": "reply.finished", "message_id": self.message_id, "html": html}
        # Saved already; the pages are told as soon as the channel layer takes it.
        self._frames_lost = False
        for _ in range(int(FINISHED_PUBLISH_PATIENCE / PUBLISH_RETRY_INTERVAL)):
            if await self._publish(group, finished):
                break
            await asyncio.sleep(PUBLISH_RETRY_INTERVAL)
        if outcome.status == Message.Status.COMPLETE and self.job is not None:
            titles.start_titling(self.job.conversation_id)  # its own task: never waited for

    async def _save(self, outcome: replies.ReplyOutcome) -> str:
        """Save the outcome; the reply as stored, rendered for the pages.

        The blocks the stream already rendered are reused: the page's
        splitter is the stream's, so they are what rendering the saved text
        would give (tests/test_generation.py holds the two equal).
        """
        text_html = [html for _, html in self.text.snapshot()]
        reasoning_html = [html for _, html in self.reasoning.snapshot()]

        outcome.rendered = {"text": text_html, "reasoning": reasoning_html}

        def save() -> str:
            message = replies.finish_reply(
                message_id=self.message_id, outcome=outcome, job=self.job
            )
            if message is None:
                return ""
            if (message.text, message.reasoning) != (outcome.text, outcome.reasoning):
                return render_stored_messages([self.message_id])  # finished elsewhere
            return str(upsert("message-list", render_message(
                message, text_html=text_html, reasoning_html=reasoning_html)))

        return await _while_database_away(_in_database(save, self.language), self.message_id,
                                          "save")

    def _owner_language(self) -> str:
        owner_id = (Message.objects.filter(pk=self.message_id)
                    .values_list("conversation__owner_id", flat=True).first())
        return languages.for_user(owner_id) if owner_id is not None else settings.LANGUAGE_CODE

    async def _announce(self, group: str, event: dict) -> None:
        try:
            await publish(group, event)
        except Exception:  # pages that miss it catch up on their next connect
            logger.exception("announcing reply %s failed", self.message_id)

    async def _after_announcement(self) -> None:
        """Wait until the announcement is out (or failed): the pages need the
        reply's container before its frames or its end."""
        if self._announcing is not None:
            await asyncio.shield(self._announcing)
            self._announcing = None

    async def _announce_finished_if_known(self) -> None:
        def load() -> tuple[int | None, str]:
            message = (
                Message.objects.select_related("model", "usage")
                .annotate(**languages.owner_columns("conversation__owner"))
                .filter(pk=self.message_id).first()
            )
            if message is None or message.is_in_flight:
                return None, ""  # gone, or being generated by another worker
            with translation.override(languages.of_row(message)):
                return message.conversation_id, str(messages_upsert([message]))

        conversation_id, html = await database_sync_to_async(load)()
        await self._after_announcement()
        if conversation_id is not None:
            await publish(
                conversation_group(conversation_id),
                {"type": "reply.finished", "message_id": self.message_id, "html": html},
            )

    # -- frames and checkpoints --------------------------------------------------

    async def _changed(self, group: str) -> None:
        """New text: if the flusher is idle (the stream was quiet for a frame
        interval, as before its first content), send it in this step; else
        leave it to the flusher's next frame.

        Sending here rather than waking the flusher saves a turn of the event
        loop, which under load is most of a first chunk's delay.
        """
        if not self._flusher_idle or self._dirty.is_set() or time.monotonic() < self._frame_due:
            self._dirty.set()
            return
        self._flusher_idle = False  # until this frame is out, the flusher must not send
        try:
            await self._send_frame(group)
        finally:
            self._flusher_idle = True
            self._frame_due = time.monotonic() + settings.STREAM_FRAME_INTERVAL

    async def _flush_frames(self, group: str) -> None:
        """Send what changed at most once a frame interval, and the snapshots
        pages asked for."""
        interval = settings.STREAM_FRAME_INTERVAL
        while True:
            self._flusher_idle = True
            await self._dirty.wait()
            self._flusher_idle = False
            wait = self._frame_due - time.monotonic()  # after a frame sent by _changed
            if wait > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            await self._send_frame(group)
            for channel in self._take_resyncs():
                with contextlib.suppress(Exception):  # that page asks again when it reconnects
                    await self._send_snapshot(channel)
            if self._done:
                return
            await asyncio.sleep(interval)

    def _take_resyncs(self) -> list[str]:
        channels, self._resync_channels = self._resync_channels, []
        return channels

    async def _send_frame(self, group: str) -> None:
        """The blocks that changed; after frames were lost (the channel layer was
        down), every block so far, so that pages miss nothing once it is back."""
        lost = self._frames_lost
        text, reasoning = self.text.changed(), self.reasoning.changed()
        if lost:
            text, reasoning = self.text.snapshot(), self.reasoning.snapshot()
        if not text and not reasoning:
            return
        frame: ReplyFrame = {
            "type": "reply.frame",
            "message_id": self.message_id,
            "status": str(self.status),
            "text": text,
            "reasoning": reasoning,
            "snapshot": lost,
        }
        if not await self._publish(group, dict(frame)):
            self._dirty.set()  # try again at the next frame, with everything

    async def _publish(self, group: str, event: dict) -> bool:
        """Publish, surviving a channel layer that is away (Redis restarting):
        the reply goes on and is saved as it is; pages catch up when it returns."""
        await self._after_announcement()
        now = time.monotonic()
        if self._frames_lost and now < self._retry_at:
            return False
        try:
            await publish(group, event)
        except Exception:
            if not self._frames_lost:
                logger.warning("reply %s: publishing failed; the reply goes on and its "
                               "pages get every block once it works again", self.message_id,
                               exc_info=True)
            self._frames_lost = True
            self._retry_at = now + PUBLISH_RETRY_INTERVAL
            return False
        self._frames_lost = False
        return True

    async def _send_snapshot(self, channel: str) -> None:
        frame: ReplyFrame = {
            "type": "reply.frame",
            "message_id": self.message_id,
            "status": str(self.status),
            "text": self.text.snapshot(),
            "reasoning": self.reasoning.snapshot(),
            "snapshot": True,
        }
        await self._after_announcement()
        await send_to_channel(channel, dict(frame))

    # -- control group ----------------------------------------------------------

    async def _listen_for_control(self, conversation_id: int) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        group = control_group(conversation_id)
        channel = ""
        try:
            while True:
                try:
                    if not channel:
                        channel = await layer.new_channel()
                        await layer.group_add(group, channel)
                    message = await layer.receive(channel)
                except Exception:  # the channel layer is away: listen again when it is back
                    logger.info("reply %s: control channel lost; joining again",
                                self.message_id, exc_info=True)
                    channel = ""
                    await asyncio.sleep(PUBLISH_RETRY_INTERVAL)
                    continue
                kind = message.get("type")
                if kind == "generation.stop" and message.get("message_id") == self.message_id:
                    self.stop()
                elif kind == "generation.resync":
                    self._resync_channels.append(message["reply_channel"])
                    self._dirty.set()
        finally:
            if channel:
                with contextlib.suppress(Exception):
                    await asyncio.shield(layer.group_discard(group, channel))
