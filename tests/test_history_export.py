"""Exports: a conversation as Markdown (files as links) or a zip of JSON plus its files,
streamed in bounded chunks; every conversation at once from the export page."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.test import AsyncClient, Client
from django.urls import reverse

from conversations import services
from conversations.models import Attachment, Message
from tests.factories import make_conversation, make_model, make_relay, make_user

pytestmark = pytest.mark.django_db
BIG = 24 * 1024 * 1024  # a 24 MB "video"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)


@pytest.fixture
def alice():
    return make_user("alice")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _conversation(owner, *, big: bytes | None = None):
    conversation = make_conversation(owner, make_model(make_relay("http://127.0.0.1:9/x")),
                                     title="Trip [plans] to 成都")
    question = Message.objects.create(conversation=conversation, role="user",
                                      text="What should I see?")
    first = Message.objects.create(conversation=conversation, role="assistant", parent=question,
                                   text="The pandas.", status="complete")
    second = Message.objects.create(conversation=conversation, role="assistant", parent=question,
                                    text="Tea houses.", status="complete")
    photo = Attachment(uuid=uuid.uuid4(), message=question, owner=owner, kind="image",
                       mime="image/png", size=4, original_name="map [old].png")
    photo.file.save("map.png", ContentFile(b"\x89PNG"), save=True)
    if big is not None:
        video = Attachment(uuid=uuid.uuid4(), message=question, owner=owner, kind="video",
                           mime="video/mp4", size=len(big), original_name="clip.mp4")
        video.file.save("clip.mp4", ContentFile(big), save=True)
    return conversation, first, second, photo


def test_markdown_has_the_branch_on_screen_and_files_as_links(alice):
    conversation, first, _, photo = _conversation(alice)
    services.show_version(message=first)

    response = _client(alice).get(reverse("conversation_markdown", args=[conversation.pk]))

    text = response.content.decode()
    assert response["Content-Type"].startswith("text/markdown")
    assert "attachment" in response["Content-Disposition"]
    assert text.startswith("# Trip [plans] to 成都")
    assert "What should I see?" in text and "The pandas." in text
    assert "Tea houses." not in text  # the other version is not on screen
    assert f"- [map \\[old\\].png](http://testserver/files/a/{photo.uuid}/)" in text


def _unzip(chunks) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(chunks)))


def test_the_zip_has_every_version_as_json_the_markdown_and_the_files(alice):
    conversation, *_ = _conversation(alice)

    response = _client(alice).get(reverse("conversation_zip", args=[conversation.pk]))

    archive = _unzip(response.streaming_content)
    names = archive.namelist()
    folder = names[0].split("/")[0]
    data = json.loads(archive.read(f"{folder}/conversation.json"))
    assert [m["text"] for m in data["messages"]] == [
        "What should I see?", "The pandas.", "Tea houses."]
    assert [m["parent_id"] for m in data["messages"]][1:] == [data["messages"][0]["id"]] * 2
    assert [m["on_screen"] for m in data["messages"]] == [True, False, True]
    path = data["messages"][0]["attachments"][0]["path"]
    assert archive.read(f"{folder}/{path}") == b"\x89PNG"
    assert "Tea houses." in archive.read(f"{folder}/conversation.md").decode()


def test_a_large_file_streams_out_in_chunks_of_about_a_megabyte(alice):
    big = os.urandom(BIG)
    conversation, *_ = _conversation(alice, big=big)

    response = _client(alice).get(reverse("conversation_zip", args=[conversation.pk]))

    sizes, chunks = [], []
    for chunk in response.streaming_content:
        sizes.append(len(chunk))
        chunks.append(chunk)
    assert max(sizes) <= 1024 * 1024 + 64 * 1024
    archive = _unzip(chunks)
    clip = next(n for n in archive.namelist() if n.endswith("clip.mp4"))
    assert archive.read(clip) == big


@pytest.mark.django_db(transaction=True)
async def test_under_asgi_the_zip_is_streamed_not_gathered_first(alice):
    big = os.urandom(BIG)
    conversation, *_ = await sync_to_async(_conversation)(alice, big=big)
    client = AsyncClient()
    await sync_to_async(client.force_login)(alice)

    response = await client.get(reverse("conversation_zip", args=[conversation.pk]))

    assert response.is_async
    sizes = [len(chunk) async for chunk in response.streaming_content]
    assert len(sizes) > 20 and max(sizes) <= 1024 * 1024 + 64 * 1024


def test_export_all_has_your_conversations_only(alice):
    mine, *_ = _conversation(alice)
    other, *_ = _conversation(alice)
    services.delete_conversation(conversation=other)
    _conversation(make_user("bob"))
    client = _client(alice)

    page = client.get(reverse("export")).content.decode()
    response = client.get(reverse("export_all"))

    assert reverse("export_all") in page
    archive = _unzip(response.streaming_content)
    folders = {n.split("/")[0] for n in archive.namelist()}
    assert folders == {f"{mine.pk}-trip-plans-to"}


def test_another_users_conversation_cannot_be_exported(alice):
    conversation, *_ = _conversation(alice)
    mallory = _client(make_user("mallory"))

    for name in ("conversation_markdown", "conversation_zip"):
        assert mallory.get(reverse(name, args=[conversation.pk])).status_code == 404
    assert Client().get(reverse("export_all")).status_code == 302
