"""Uploads: checked from their bytes, converted where relays need it, stored, served.

Real small files throughout (tests/fixtures/media.py); nothing is faked but
the presence of ffmpeg in the tests that show what happens without it.
"""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from django.core import signing
from django.urls import reverse

from conversations import services
from conversations.errors import ServiceError
from conversations.media import probe
from conversations.media.links import SIGNING_SALT, signed_url
from conversations.media.uploads import KIND_NOUNS, clean_name
from conversations.models import Attachment, Conversation, Dialect, Message
from tests.factories import make_conversation, make_model, make_relay, make_user
from tests.fixtures import media
from tests.fixtures.media import upload

pytestmark = pytest.mark.django_db

needs_ffmpeg = pytest.mark.skipif(not probe.FFMPEG, reason="ffmpeg is not installed")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def conversation():
    owner = make_user()
    relay = make_relay("http://127.0.0.1:9", dialect=Dialect.IMAGE_URL_FOR_ALL)
    return make_conversation(owner, make_model(relay))


def post(conversation, *files, text="What is in these?"):
    return services.post_message(
        conversation=conversation, author=conversation.owner, text=text, files=list(files)
    )


def stored_files(root) -> list:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def refused(conversation, *files) -> str:
    with pytest.raises(ServiceError) as caught:
        post(conversation, *files)
    return caught.value.message


# -- what is accepted, and what is learnt from the bytes ------------------------------


def test_it_stores_each_kind_with_the_facts_read_from_its_bytes(conversation, media_root):
    files = {
        "photo.png": media.png(64, 48),
        "snap.jpg": media.jpeg(40, 30),
        "memo.wav": media.wav(1.5),
        "song.mp3": media.shipped("voice.mp3"),
        "clip.mp4": media.shipped("clip.mp4"),
        "clip.mov": media.shipped("clip.mov"),
        "paper.pdf": media.pdf(2),
    }
    user_message, _ = post(conversation, *(upload(n, d) for n, d in files.items()))

    got = {a.original_name: a for a in user_message.attachments.all()}
    assert {n: (a.kind, a.mime) for n, a in got.items()} == {
        "photo.png": ("image", "image/png"),
        "snap.jpg": ("image", "image/jpeg"),
        "memo.wav": ("audio", "audio/wav"),
        "song.mp3": ("audio", "audio/mpeg"),
        "clip.mp4": ("video", "video/mp4"),
        "clip.mov": ("video", "video/quicktime"),
        "paper.pdf": ("pdf", "application/pdf"),
    }
    assert (got["photo.png"].width, got["photo.png"].height) == (64, 48)
    assert got["memo.wav"].duration_seconds == pytest.approx(1.5)
    assert got["clip.mp4"].duration_seconds == pytest.approx(1.0, abs=0.1)
    assert got["clip.mov"].duration_seconds == pytest.approx(1.0, abs=0.1)
    assert got["paper.pdf"].pages == 2
    for name, data in files.items():
        attachment = got[name]
        assert attachment.size == len(data)
        assert attachment.sha256 == hashlib.sha256(data).hexdigest()
        assert attachment.owner == conversation.owner
        # Stored under a generated name; the user's name is only data.
        assert re.fullmatch(rf"attachments/{conversation.owner.pk}/[0-9a-f]{{32}}",
                            attachment.file.name)
        with attachment.file.open("rb") as fh:
            assert fh.read() == data
    assert len(stored_files(media_root)) == len(files)


def test_it_trusts_the_bytes_not_the_name_or_the_browsers_type(conversation):
    user_message, _ = post(conversation, upload("notes.pdf", media.png(), "application/pdf"))
    attachment = user_message.attachments.get()
    assert (attachment.kind, attachment.mime) == ("image", "image/png")


def test_a_voice_memo_in_an_mp4_container_is_audio(conversation):
    user_message, _ = post(conversation, upload("memo.m4a", media.shipped("memo.m4a")))
    attachment = user_message.attachments.get()
    assert attachment.kind == "audio"


# -- what is refused, with the file's name and the reason, storing nothing ------------

PNG = media.png(64, 48)
JPEG = media.jpeg(64, 48)
MP4 = media.shipped("clip.mp4")
PDF = media.pdf(2)
WAV = media.wav(1.0)

BAD_FILES = [
    ("empty.png", b"", "the file is empty"),
    ("setup.jpg", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 200, "a Windows program"),
    ("page.png", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
     "a web page (HTML)"),
    ("logo.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>',
     "SVG drawings are not accepted"),
    ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>',
     "SVG drawings are not accepted"),
    ("notes.txt", b"just some words\n", "plain text"),
    ("cut.png", PNG[: len(PNG) // 2], "damaged or incomplete"),
    ("cut.jpg", JPEG[: len(JPEG) // 2], "damaged or incomplete"),
    ("cut.wav", WAV[: len(WAV) // 2], "incomplete"),
    ("cut.mp4", MP4[: len(MP4) - 500], "incomplete"),
    ("cut.pdf", PDF[: len(PDF) // 2], "incomplete"),
    ("garbage.pdf", b"%PDF-1.7\nnot really a pdf\n%%EOF\n", "damaged"),
]


@pytest.mark.parametrize(("name", "data", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_it_refuses_a_bad_file_by_name_and_reason_and_stores_nothing(
    conversation, media_root, name, data, reason
):
    message = refused(conversation, upload("fine.png", PNG), upload(name, data, "image/png"))

    assert f"“{name}”" in message
    assert reason in message
    assert "fine.png" not in message
    assert "Nothing was sent" in message
    assert not Message.objects.exists()
    assert not Attachment.objects.exists()
    assert stored_files(media_root) == []


def test_it_names_every_bad_file_at_once(conversation):
    message = refused(conversation, upload("a.png", b""), upload("b.jpg", b"MZ" + b"\0" * 64))
    assert "“a.png”: the file is empty" in message
    assert "“b.jpg”: its content is a Windows program" in message


def test_it_refuses_a_picture_with_too_many_pixels(conversation, monkeypatch):
    from conversations.media import uploads as attachments

    monkeypatch.setattr(attachments, "MAX_PIXELS", 1000)
    message = refused(conversation, upload("huge.png", media.png(100, 100)))
    assert "100×100 pixels" in message


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\windows\\evil.png", "evil.png"),
        ("a\x00b.png", "ab.png"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("\u2067photo\u2069.png", "photo.png"),
        ("  ..hidden. ", "hidden"),
        ("", "attachment"),
        ("x" * 300 + ".png", "x" * 115 + "….png"),
    ],
)
def test_file_names_are_cleaned_for_display(raw, clean):
    assert clean_name(raw) == clean
    assert len(clean_name(raw)) <= 120


def test_an_overlong_right_to_left_name_is_stored_clean(conversation):
    name = "report\u202e" + "y" * 400 + ".png"
    user_message, _ = post(conversation, upload(name, PNG))
    stored = user_message.attachments.get().original_name
    assert "\u202e" not in stored
    assert len(stored) <= 120
    assert stored.endswith(".png")


def test_each_kind_has_its_own_size_limit(conversation, settings):
    settings.UPLOAD_LIMITS = {**settings.UPLOAD_LIMITS, "audio": 1024}
    message = refused(conversation, upload("long.wav", media.wav(1.0)))
    assert "“long.wav”" in message
    assert "audio files can be at most 1 KB" in message
    post(conversation, upload("photo.png", PNG))  # images still have their own limit


def test_the_number_of_files_and_their_total_are_limited(conversation, settings):
    settings.UPLOAD_MAX_FILES = 2
    message = refused(conversation, *(upload(f"{i}.png", PNG) for i in range(3)))
    assert "at most 2 files" in message

    settings.UPLOAD_MAX_FILES = 10
    settings.UPLOAD_MAX_MESSAGE_BYTES = len(PNG) * 2
    message = refused(conversation, *(upload(f"{i}.png", PNG) for i in range(3)))
    assert "one message can carry at most" in message
    assert not Message.objects.exists()


def test_the_default_limits_are_the_issues(settings):
    mb = 1024 * 1024
    assert settings.UPLOAD_LIMITS == {"image": 20 * mb, "audio": 50 * mb, "video": 200 * mb,
                                      "pdf": 50 * mb}
    assert settings.UPLOAD_MAX_FILES == 10


def test_it_refuses_a_kind_the_model_does_not_accept(conversation):
    relay = conversation.model.relay
    conversation.model = make_model(relay, "gpt-4o-mini", display_name="GPT-4o mini",
                                    accepts_audio=False, accepts_video=False,
                                    accepts_pdf=False)
    conversation.save()
    message = refused(conversation, upload("memo.wav", WAV))
    assert "“memo.wav”: GPT-4o mini does not accept audio" in message


@pytest.mark.parametrize(
    ("dialect", "name", "data", "words"),
    [
        (Dialect.IMAGES_ONLY, "paper.pdf", PDF, "has no way to send a PDF"),
        (Dialect.IMAGES_ONLY, "memo.wav", WAV, "has no way to send audio"),
        (Dialect.OPENAI, "clip.mp4", MP4, "has no way to send a video"),
    ],
)
def test_it_refuses_a_kind_the_relays_dialect_cannot_carry(conversation, dialect, name, data,
                                                           words):
    relay = conversation.model.relay
    relay.dialect = dialect
    relay.save()
    message = refused(conversation, upload(name, data))
    assert f"“{name}”" in message
    assert words in message
    assert f"“{dialect}” dialect" in message


# -- conversion of what relays refuse ----------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize(
    ("name", "kind", "mime"),
    [
        ("voice.ogg", "audio", "audio/mpeg"),
        ("memo.m4a", "audio", "audio/mpeg"),
        ("clip.webm", "video", "video/mp4"),
    ],
)
def test_formats_relays_refuse_are_converted_with_ffmpeg(conversation, name, kind, mime):
    data = media.shipped(name)
    user_message, _ = post(conversation, upload(name, data))
    attachment = user_message.attachments.get()
    assert (attachment.kind, attachment.mime) == (kind, mime)
    assert attachment.original_name == name
    assert attachment.duration_seconds == pytest.approx(1.0, abs=0.3)  # codec padding
    with attachment.file.open("rb") as fh:
        stored = fh.read()
    assert probe.sniff(stored[:64]) == mime
    assert attachment.size == len(stored)
    assert attachment.sha256 == hashlib.sha256(stored).hexdigest()


def test_a_gif_becomes_a_png(conversation):
    user_message, _ = post(conversation, upload("anim.gif", media.gif(16, 16)))
    attachment = user_message.attachments.get()
    assert (attachment.mime, attachment.width, attachment.height) == ("image/png", 16, 16)


def test_without_ffmpeg_a_format_needing_conversion_is_refused_clearly(conversation,
                                                                       monkeypatch):
    monkeypatch.setattr(probe, "FFMPEG", None)
    monkeypatch.setattr(probe, "FFPROBE", None)
    message = refused(conversation, upload("voice.ogg", media.shipped("voice.ogg")))
    assert "“voice.ogg”: it is an OGG recording, which relays do not accept" in message
    assert "ffmpeg is not installed" in message
    assert "MP3 or WAV" in message


def test_without_ffmpeg_mp4_and_mov_still_get_their_duration(conversation, monkeypatch):
    monkeypatch.setattr(probe, "FFMPEG", None)
    monkeypatch.setattr(probe, "FFPROBE", None)
    user_message, _ = post(conversation, upload("a.mp4", MP4),
                           upload("b.mov", media.shipped("clip.mov")))
    durations = [a.duration_seconds for a in user_message.attachments.all()]
    assert durations == [pytest.approx(1.0, abs=0.1)] * 2


def test_deleting_a_conversation_deletes_its_stored_files(conversation, media_root,
                                                          django_capture_on_commit_callbacks):
    post(conversation, upload("a.png", PNG), upload("b.pdf", PDF))
    assert len(stored_files(media_root)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        conversation.delete()
    assert stored_files(media_root) == []


# -- serving files ----------------------------------------------------------------------


def _attach(conversation, name, data):
    user_message, _ = post(conversation, upload(name, data))
    return user_message.attachments.get()


def test_the_owner_gets_the_file_with_its_stored_type_and_no_sniffing(client, conversation):
    attachment = _attach(conversation, "photo.png", PNG)
    client.force_login(conversation.owner)
    response = client.get(reverse("attachment", kwargs={"uuid": attachment.uuid}))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Content-Disposition"].startswith("inline")
    assert b"".join(response.streaming_content) == PNG


def test_files_a_browser_could_run_or_render_are_downloads(client, conversation):
    attachment = _attach(conversation, "paper.pdf", PDF)
    client.force_login(conversation.owner)
    response = client.get(reverse("attachment", kwargs={"uuid": attachment.uuid}))
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="paper.pdf"'


def test_a_download_link_forces_a_download_with_the_stored_extension(client, conversation):
    attachment = _attach(conversation, "photo", PNG)
    client.force_login(conversation.owner)
    response = client.get(reverse("attachment", kwargs={"uuid": attachment.uuid}),
                          {"download": "1"})
    assert response["Content-Disposition"] == 'attachment; filename="photo.png"'


def test_another_user_gets_404_and_a_stranger_is_sent_to_sign_in(client, conversation):
    attachment = _attach(conversation, "photo.png", PNG)
    url = reverse("attachment", kwargs={"uuid": attachment.uuid})
    assert client.get(url).status_code == 302
    client.force_login(make_user("mallory"))
    assert client.get(url).status_code == 404


def test_a_range_request_gets_just_those_bytes(client, conversation):
    attachment = _attach(conversation, "clip.mp4", MP4)
    client.force_login(conversation.owner)
    url = reverse("attachment", kwargs={"uuid": attachment.uuid})
    response = client.get(url, HTTP_RANGE="bytes=100-199")
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-199/{len(MP4)}"
    assert b"".join(response.streaming_content) == MP4[100:200]
    tail = client.get(url, HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == MP4[-10:]
    assert client.get(url, HTTP_RANGE=f"bytes={len(MP4)}-").status_code == 416


def test_a_signed_link_works_without_a_session_with_the_relays_label(client, conversation,
                                                                     settings):
    settings.PUBLIC_BASE_URL = "https://chat.example.com"
    attachment = _attach(conversation, "clip.mov", media.shipped("clip.mov"))
    url = signed_url(attachment)
    assert url.startswith("https://chat.example.com/files/s/")
    assert url.endswith("/file.mov")
    response = client.get(url.removeprefix("https://chat.example.com"))
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mov"  # new-api's allowlist spelling
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("attachment")
    assert b"".join(response.streaming_content) == media.shipped("clip.mov")


def test_a_signed_link_expires_and_cannot_be_forged(client, conversation, settings):
    settings.PUBLIC_BASE_URL = "https://chat.example.com"
    attachment = _attach(conversation, "photo.png", PNG)
    expired = signed_url(attachment, ttl=-1).removeprefix("https://chat.example.com")
    assert client.get(expired).status_code == 404
    forged_token = signing.dumps({"a": attachment.uuid.hex, "e": int(time.time()) + 60},
                                 salt="another-salt")
    forged = reverse("attachment_signed", kwargs={"token": forged_token, "name": "x.png"})
    assert client.get(forged).status_code == 404
    good = signing.dumps({"a": attachment.uuid.hex, "e": int(time.time()) + 60},
                         salt=SIGNING_SALT)
    assert client.get(reverse("attachment_signed",
                              kwargs={"token": good, "name": "x.png"})).status_code == 200


# -- the composer's answer ---------------------------------------------------------------


def test_a_refused_file_answers_the_composer_with_422_and_stores_nothing(client, conversation,
                                                                         media_root):
    client.force_login(conversation.owner)
    response = client.post(
        reverse("message_create", kwargs={"pk": conversation.pk}),
        {"text": "look", "files": [upload("fine.png", PNG),
                                   upload("virus.jpg", b"MZ" + b"\0" * 100, "image/jpeg")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="composer-error"' in html
    assert "“virus.jpg”: its content is a Windows program" in html
    assert not Message.objects.exists()
    assert stored_files(media_root) == []


def test_a_file_name_is_escaped_in_the_error(client, conversation):
    client.force_login(conversation.owner)
    response = client.post(
        reverse("message_create", kwargs={"pk": conversation.pk}),
        {"files": [upload("<img src=x onerror=alert(1)>.png", b"")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "<img src=x" not in response.content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in response.content.decode()


def test_a_refused_first_message_leaves_no_conversation_behind(client, conversation):
    client.force_login(conversation.owner)
    before = Conversation.objects.count()
    response = client.post(
        reverse("conversation_new"),
        {"model": conversation.model.pk, "text": "hi",
         "files": [upload("page.png", b"<html><body>hi</body></html>")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "“page.png”" in response.content.decode()
    assert Conversation.objects.count() == before


def test_an_accepted_upload_shows_the_attachments_in_the_conversation(client, conversation):
    client.force_login(conversation.owner)
    response = client.post(
        reverse("message_create", kwargs={"pk": conversation.pk}),
        {"text": "look", "files": [upload("photo.png", PNG), upload("paper.pdf", PDF),
                                   upload("memo.wav", WAV), upload("clip.mp4", MP4)]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    page = client.get(reverse("conversation", kwargs={"pk": conversation.pk})).content.decode()
    for attachment in Attachment.objects.all():
        assert reverse("attachment", kwargs={"uuid": attachment.uuid}) in page
    assert 'alt="photo.png"' in page
    assert "<audio controls" in page and "<video controls" in page
    assert "PDF · 2 pages" in page


def test_large_uploads_spooled_to_disk_are_checked_and_moved_into_storage(client, conversation,
                                                                          settings, media_root):
    # Above FILE_UPLOAD_MAX_MEMORY_SIZE Django hands over a temporary file on disk.
    big_wav = media.wav(30.0, rate=48000)
    assert len(big_wav) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE
    client.force_login(conversation.owner)
    with_big = {"text": "long", "files": [upload("long.wav", big_wav, "audio/wav"),
                                          upload("clip.mp4", MP4, "video/mp4")]}
    response = client.post(reverse("message_create", kwargs={"pk": conversation.pk}),
                           with_big, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    wav_row = Attachment.objects.get(original_name="long.wav")
    assert wav_row.duration_seconds == pytest.approx(30.0)
    with wav_row.file.open("rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(big_wav).hexdigest()
    assert len(stored_files(media_root)) == 2


def test_a_large_cut_off_upload_is_refused_too(client, conversation, media_root):
    big_wav = media.wav(30.0, rate=48000)
    client.force_login(conversation.owner)
    response = client.post(
        reverse("message_create", kwargs={"pk": conversation.pk}),
        {"files": [upload("cut.wav", big_wav[: len(big_wav) - 1000], "audio/wav")]},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert "“cut.wav”: the WAV file is incomplete" in response.content.decode()
    assert stored_files(media_root) == []


@pytest.mark.django_db(transaction=True)
def test_files_are_checked_and_converted_before_any_transaction_holds_locks(client, monkeypatch):
    from django.db import connection

    from conversations import services as services_module

    monkeypatch.setattr(services_module, "_start", lambda message_id, **_: None)
    inside_transaction = []
    real_ffprobe = probe.ffprobe

    def ffprobe(path):
        inside_transaction.append(connection.in_atomic_block)
        return real_ffprobe(path)

    monkeypatch.setattr(probe, "ffprobe", ffprobe)
    owner = make_user()
    relay = make_relay("http://127.0.0.1:9", dialect=Dialect.IMAGE_URL_FOR_ALL)
    model = make_model(relay)
    client.force_login(owner)
    response = client.post(reverse("conversation_new"),
                           {"model": model.pk, "text": "first", "files": [upload("a.mp4", MP4)]},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    conversation = make_conversation(owner, model)
    response = client.post(reverse("message_create", kwargs={"pk": conversation.pk}),
                           {"files": [upload("b.mp4", MP4)]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    assert Attachment.objects.count() == 2
    assert inside_transaction and not any(inside_transaction)


def test_a_files_only_message_is_titled_by_the_clean_file_names(conversation):
    post(conversation, upload("..\\secret\\photo\u202egnp.png", PNG), text="")
    conversation.refresh_from_db()
    assert conversation.title == "photognp.png"


def test_a_file_just_over_the_limit_says_both_sizes_in_numbers_that_differ(
    conversation, settings
):
    # One byte over: not "1 KB, and images can be at most 1 KB".
    settings.UPLOAD_LIMITS = {**settings.UPLOAD_LIMITS, "image": len(PNG) - 1}
    message = refused(conversation, upload("photo.png", PNG))
    assert (f"it is {len(PNG):,} bytes, and {KIND_NOUNS['image']} can be at most "
            f"{len(PNG) - 1:,} bytes") in message
