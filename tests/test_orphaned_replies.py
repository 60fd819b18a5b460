"""A restarted server closes at once the replies a process of this machine left
streaming when it died (no waiting for their heartbeat to go stale)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.utils import timezone

from conversations import replies
from conversations.models import Message
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db


def _streaming(conversation, generated_by: str) -> Message:
    return Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, model=conversation.model,
        status=Message.Status.STREAMING, text="Half an ans", generated_by=generated_by,
        updated_at=timezone.now(),  # a fresh heartbeat: the stale-heartbeat sweep waits
    )


def _a_process_that_died(*, reaped: bool = True) -> str:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    name = f"{replies.HOST}:{child.pid}:{replies._started_ticks(child.pid)}"
    child.kill()
    if reaped:
        child.wait()
    else:  # killed, its parent not yet told: a zombie still in the process table
        import time

        time.sleep(0.3)
        _zombies.append(child)
    return name


_zombies: list = []


def test_a_killed_process_not_yet_reaped_counts_as_gone():
    name = _a_process_that_died(reaped=False)
    try:
        assert replies._gone(name)
    finally:
        for child in _zombies:
            child.wait()


def test_a_reply_whose_process_on_this_machine_died_is_closed_at_once_and_no_other():
    conversation = make_conversation(make_user(), make_model(make_relay("http://127.0.0.1:9")))
    orphan = _streaming(conversation, _a_process_that_died())
    alive = _streaming(conversation, replies.THIS_PROCESS)
    elsewhere = _streaming(conversation, "another-host:1:12345")
    unknown = _streaming(conversation, "")  # written before processes were named

    assert replies.close_orphaned_replies() == [orphan.pk]

    orphan.refresh_from_db()
    assert orphan.status == Message.Status.INTERRUPTED and orphan.text == "Half an ans"
    assert orphan.error
    for left in (alive, elsewhere, unknown):
        left.refresh_from_db()
        assert left.status == Message.Status.STREAMING
    assert replies.close_dead_replies() == []  # their heartbeats are fresh


def test_a_reused_pid_is_not_taken_for_the_process_that_died():
    pid, started = replies.THIS_PROCESS.split(":")[1:]
    assert not replies._gone(replies.THIS_PROCESS)
    assert replies._gone(f"{replies.HOST}:{pid}:{int(started) + 1}")  # same pid, other start
    assert replies._gone(f"{replies.HOST}:999999999:1")


def test_begin_reply_names_the_process_that_generates(simulator):
    from tests.test_generation import _post, _setup

    conversation = _setup(simulator)
    _, reply = _post(conversation, "Who writes me?")
    job = replies.begin_reply(reply.pk)
    assert job is not None
    reply.refresh_from_db()
    assert reply.generated_by == replies.THIS_PROCESS


def test_a_reply_whose_process_runs_here_is_never_taken_for_dead_by_a_silent_heartbeat():
    from datetime import timedelta

    conversation = make_conversation(make_user(), make_model(make_relay("http://127.0.0.1:9")))
    long_silent = timezone.now() - timedelta(minutes=5)  # e.g. the database was away
    alive = _streaming(conversation, replies.THIS_PROCESS)
    dead = _streaming(conversation, _a_process_that_died())
    elsewhere = _streaming(conversation, "another-host:1:12345")
    Message.objects.filter(pk__in=[alive.pk, dead.pk, elsewhere.pk]).update(
        updated_at=long_silent)

    assert sorted(replies.close_dead_replies()) == sorted([dead.pk, elsewhere.pk])
    alive.refresh_from_db()
    assert alive.status == Message.Status.STREAMING
