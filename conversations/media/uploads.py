"""Uploads → checked, converted where needed, stored attachments.

Everything is decided from the bytes: the type is sniffed from the content
(the name and the browser's Content-Type are ignored), each kind has its own
allowlist and size limit, and the file is opened the way the model would
open it (a full image decode, the WAV header against its data, every
MP4/MOV box, ffprobe, pypdf), so an empty, cut-off or disguised file is
refused with its name and the reason before anything is stored.

Files are stored through Django's storage API under generated names; the
user's file name is cleaned and kept only as data. A format that relays do
not accept (ogg, m4a, webm, gif, …) is converted on upload when ffmpeg is
installed, so what is stored can be sent through every dialect.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.translation import gettext, ngettext, pgettext
from django.utils.translation import gettext_lazy as _
from PIL import Image

from conversations.capabilities import kind_refusal
from conversations.errors import ServiceError
from conversations.infra.concurrency import outside_limit
from conversations.media import probe
from conversations.media.formats import RELAY_MIME
from conversations.media.probe import KIND_OF_MIME, Details
from conversations.models import Attachment, ChatModel, Message, Relay

MAX_NAME_CHARS = 120
MAX_PIXELS = 60_000_000
CONVERT_TIMEOUT = 600

# Translated where used (gettext_lazy: read at import, in no language).
KIND_NOUNS = {"image": _("images"), "audio": _("audio files"), "video": _("videos"),
              "pdf": _("PDFs")}
FORMAT_NAMES = {
    "image/gif": _("a GIF"), "audio/mp4": _("an M4A/AAC recording"),
    "audio/ogg": _("an OGG recording"), "audio/flac": _("a FLAC recording"),
    "audio/aac": _("an AAC recording"), "audio/webm": _("a WebM recording"),
    "video/webm": _("a WebM video"), "video/x-matroska": _("an MKV video"),
    "video/3gpp": _("a 3GP video"), "video/ogg": _("an OGG video"),
    "audio/x-ms-wma": _("a WMA recording"),
}
# What a file relays do not accept becomes.
CONVERT_TARGET = {"image": "image/png", "audio": "audio/mpeg", "video": "video/mp4"}
CONVERT_EXTENSION = {"image/png": "png", "audio/mpeg": "mp3", "video/mp4": "mp4"}


class UploadRejected(ServiceError):
    """One or more files cannot be sent; the message names each and says why."""


class FileProblem(Exception):
    """Why one file cannot be taken, in words that follow its name."""


@dataclass
class CheckedUpload:
    upload: BinaryIO
    name: str
    kind: str
    mime: str
    size: int
    details: Details

    @property
    def convert_to(self) -> str | None:
        return None if self.mime in RELAY_MIME else CONVERT_TARGET[self.kind]


# -- names --------------------------------------------------------------------------


def clean_name(raw: str | None) -> str:
    """A display name: no folders, control or direction-override characters, not too long."""
    name = unicodedata.normalize("NFC", str(raw or ""))
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Cc: NUL and other controls; Cf: right-to-left overrides and invisible marks.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co"})
    name = " ".join(name.split()).strip(" .")
    if not name:
        return "attachment"
    if len(name) > MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            name = f"{stem[: MAX_NAME_CHARS - len(extension) - 2]}….{extension}"
        else:
            name = name[: MAX_NAME_CHARS - 1] + "…"
    return name


def _size_words(size: int, decimals: int = 1) -> str:
    if size >= 1024 * 1024:
        number = f"{size / (1024 * 1024):.{decimals}f}".rstrip("0").rstrip(".")
        return gettext("%(size)s MB") % {"size": number}
    return gettext("%(size)s KB") % {"size": max(1, round(size / 1024))}


def _sizes_apart(size: int, limit: int) -> tuple[str, str]:
    """`size` and `limit` in words that never read the same: a file just over the
    limit is not "20 MB, at most 20 MB"."""
    limit_words = _size_words(limit, decimals=2)
    for decimals in (1, 2, 3):
        size_words = _size_words(size, decimals)
        if size_words != limit_words and size_words != _size_words(limit, decimals):
            return size_words, limit_words
    return (gettext("%(count)s bytes") % {"count": f"{size:,}"},
            gettext("%(count)s bytes (%(size)s)") % {"count": f"{limit:,}", "size": limit_words})


# -- checking -------------------------------------------------------------------------


def check_uploads(*, files: list, model: ChatModel | None, relay: Relay) -> list[CheckedUpload]:
    """Check every file; raise UploadRejected naming each bad one and why."""
    if len(files) > settings.UPLOAD_MAX_FILES:
        raise UploadRejected(ngettext(
            "Attach at most %(limit)s file to one message (this one has %(count)s). Nothing "
            "was sent.",
            "Attach at most %(limit)s files to one message (this one has %(count)s). Nothing "
            "was sent.", settings.UPLOAD_MAX_FILES,
        ) % {"limit": settings.UPLOAD_MAX_FILES, "count": len(files)})
    total = sum(int(getattr(f, "size", 0) or 0) for f in files)
    if total > settings.UPLOAD_MAX_MESSAGE_BYTES:
        total_words, limit_words = _sizes_apart(total, settings.UPLOAD_MAX_MESSAGE_BYTES)
        raise UploadRejected(gettext(
            "These files add up to %(total)s; one message can carry at most %(limit)s. Send "
            "them in several messages. Nothing was sent."
        ) % {"total": total_words, "limit": limit_words})
    checked, problems = [], []
    for upload in files:
        name = clean_name(getattr(upload, "name", ""))
        try:
            checked.append(check_upload(upload, name=name, model=model, relay=relay))
        except FileProblem as problem:
            problems.append(file_problem(name, problem))
    if problems:
        raise UploadRejected(gettext("%(problems)s Nothing was sent.") % {
            "problems": pgettext("sentence separator", " ").join(problems)})
    return checked


def file_problem(name: str, problem: FileProblem | str) -> str:
    """One file's refusal as a sentence: its name, then why."""
    return gettext("“%(name)s”: %(problem)s.") % {"name": name, "problem": problem}


def check_upload(
    upload, *, name: str, model: ChatModel | None, relay: Relay
) -> CheckedUpload:
    size = int(upload.size or 0)
    if size == 0:
        raise FileProblem(gettext("the file is empty (0 bytes)"))
    upload.seek(0)
    head = upload.read(probe.HEAD_BYTES)
    upload.seek(0)
    mime = probe.sniff(head)
    if mime is None:
        raise FileProblem(_unknown_content(head, name))
    kind = KIND_OF_MIME[mime]
    limit = settings.UPLOAD_LIMITS[kind]
    if size > limit:
        size_words, limit_words = _sizes_apart(size, limit)
        raise FileProblem(gettext("it is %(size)s, and %(kinds)s can be at most %(limit)s") % {
            "size": size_words, "kinds": KIND_NOUNS[kind], "limit": limit_words})
    details = _inspect(upload, mime=mime, kind=kind, size=size)
    if details.problem:
        raise FileProblem(details.problem)
    if kind == "video" and details.has_video is False and mime in probe.AUDIO_ONLY_MIME:
        mime, kind = probe.AUDIO_ONLY_MIME[mime], "audio"  # e.g. a voice memo in .mp4
    refusal = kind_refusal(kind=kind, model=model, relay=relay)
    if refusal:
        raise FileProblem(refusal)
    checked = CheckedUpload(upload, name, kind, mime, size, details)
    if checked.convert_to and kind != "image" and not probe.FFMPEG:
        raise FileProblem(gettext(
            "it is %(format)s, which relays do not accept, and ffmpeg is not installed on "
            "this server to convert it. Save it as %(target)s and attach it again"
        ) % {"format": FORMAT_NAMES.get(mime, mime),
             "target": gettext("MP3 or WAV") if kind == "audio" else "MP4"})
    return checked


def _unknown_content(head: bytes, name: str) -> str:
    if probe.is_svg(head):
        return gettext("SVG drawings are not accepted because they can carry scripts; export "
                       "it as PNG or JPEG")
    what = probe.what_is_it(head)
    claimed = name.rpartition(".")[2].lower() if "." in name else ""
    if claimed and len(claimed) <= 5:
        return gettext("its content is %(what)s (whatever its .%(extension)s name says), not "
                       "an image, audio, video or PDF file we can send") % {
            "what": what, "extension": claimed}
    return gettext("its content is %(what)s, not an image, audio, video or PDF file we can "
                   "send") % {"what": what}


def _inspect(upload, *, mime: str, kind: str, size: int) -> Details:
    if kind == "image":
        return probe.image_details(upload, mime, max_pixels=MAX_PIXELS)
    if kind == "pdf":
        return probe.pdf_details(upload, size)
    details = Details(mime)
    if mime == "audio/wav":
        details = probe.wav_details(upload, size)
        if details.problem:
            return details
    if mime in ("video/mp4", "video/quicktime", "audio/mp4", "video/3gpp"):
        problem = probe.iso_bmff_problem(upload, size)
        if problem:
            return Details(mime, problem=problem)
        details.duration = probe.mvhd_duration(upload, size)
    with _local_path(upload) as path:
        probed = probe.ffprobe(path)
    if probed is None:
        return details  # no ffprobe: the checks above are all we can do
    if probed.problem:
        return Details(mime, problem=probed.problem)
    if kind == "video" and not probed.has_video and mime not in probe.AUDIO_ONLY_MIME:
        return Details(mime, problem=gettext("the video has no pictures in it"))
    if kind == "audio" and not probed.has_audio:
        return Details(mime, problem=gettext("the recording has no sound in it"))
    probed.mime = mime
    probed.duration = probed.duration or details.duration
    return probed


@contextlib.contextmanager
def _local_path(upload) -> Iterator[str]:
    """A path on disk for ffprobe/ffmpeg: the upload's own temp file, or a copy."""
    path = getattr(upload, "temporary_file_path", None)
    if path is not None:
        yield path()
        return
    with tempfile.NamedTemporaryFile(prefix="upload-") as tmp:
        upload.seek(0)
        shutil.copyfileobj(upload, tmp, 1024 * 1024)
        tmp.flush()
        upload.seek(0)
        yield tmp.name


# -- converting ---------------------------------------------------------------------------


@dataclass
class Prepared:
    """A checked file in the form it will be stored (converted when relays need it)."""

    checked: CheckedUpload
    content: BinaryIO
    mime: str
    size: int
    details: Details
    sha256: str = ""

    def discard(self) -> None:
        if self.content is not self.checked.upload:
            self.content.close()  # a converted temporary file: gone when closed


def _prepare(checked: CheckedUpload) -> Prepared:
    target = checked.convert_to
    if target is None:
        prepared = Prepared(checked, checked.upload, checked.mime, checked.size,
                            checked.details)
    else:
        # Lives until stored or discarded; ffmpeg picks the container from the extension.
        out = tempfile.NamedTemporaryFile(
            prefix="converted-", suffix=f".{CONVERT_EXTENSION[target]}"
        )
        try:
            if checked.kind == "image":
                _gif_to_png(checked.upload, out.name)
                details = probe.image_details(out, target, max_pixels=MAX_PIXELS)
            else:
                with _local_path(checked.upload) as source:
                    _ffmpeg(source, out.name, checked)
                details = probe.ffprobe(out.name) or Details(target)
                if details.problem:
                    raise FileProblem(gettext("converting it for the relay failed (%(reason)s)")
                                      % {"reason": details.problem})
        except BaseException:
            out.close()
            raise
        details.mime = target
        prepared = Prepared(checked, out, target, os.path.getsize(out.name), details)
    prepared.sha256 = _sha256(prepared.content)
    return prepared


def _gif_to_png(upload, out: str) -> None:
    upload.seek(0)
    with Image.open(upload) as image:
        image.seek(0)  # relays take still images: the first frame of an animation
        image.convert("RGBA").save(out, "PNG")


def _ffmpeg(source: str, out: str, checked: CheckedUpload) -> None:
    if checked.kind == "audio":
        codec = ["-vn", "-c:a", "libmp3lame", "-q:a", "4"]
    else:
        codec = ["-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast",
                 "-crf", "23", "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2",
                 "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"]
    command = [probe.FFMPEG or "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", source,
               "-map_metadata", "-1", *codec, out]
    try:
        with outside_limit():
            result = subprocess.run(command, capture_output=True, timeout=CONVERT_TIMEOUT,
                                    check=False)
    except subprocess.TimeoutExpired as exc:
        raise FileProblem(gettext("converting it for the relay took too long")) from exc
    except OSError as exc:
        raise FileProblem(gettext("ffmpeg could not be started to convert it")) from exc
    if result.returncode != 0 or not os.path.exists(out) or not os.path.getsize(out):
        raise FileProblem(gettext(
            "it is %(format)s, which relays do not accept, and converting it failed"
        ) % {"format": FORMAT_NAMES.get(checked.mime, checked.mime)})


def _sha256(fh: BinaryIO) -> str:
    digest = hashlib.sha256()
    fh.seek(0)
    for chunk in iter(lambda: fh.read(1024 * 1024), b""):
        digest.update(chunk)
    fh.seek(0)
    return digest.hexdigest()


# -- storing ---------------------------------------------------------------------------------

_PREPARED = "_relay_workbench_prepared"


def prepare_uploads(*, files: list, model: ChatModel) -> list[Prepared]:
    """Check and convert a message's files: the slow part (decoding, ffprobe, ffmpeg).

    Callers run it before their transaction, so that no database lock is held
    while a video converts; the result rides on the upload objects and
    `store_attachments` then only saves. Raises UploadRejected naming each
    bad file.
    """
    cached = [getattr(f, _PREPARED, None) for f in files]
    if all(c is not None and c[0] == model.pk for c in cached):
        return [c[1] for c in cached]
    checked = check_uploads(files=files, model=model, relay=model.relay)
    prepared: list[Prepared] = []
    for item in checked:
        try:
            prepared.append(_prepare(item))
        except FileProblem as problem:
            for done in prepared:
                done.discard()
            raise UploadRejected(gettext("%(problems)s Nothing was sent.") % {
                "problems": file_problem(item.name, problem)}) from problem
    for upload, item in zip(files, prepared, strict=True):
        setattr(upload, _PREPARED, (model.pk, item))
    return prepared


def store_attachments(*, message: Message, owner, files: list) -> list[Attachment]:
    """Store a message's files (checked and converted first if not yet); all or none."""
    model = message.conversation.model
    if model is None:
        raise ServiceError(gettext("Pick a model for this conversation first."))
    prepared = prepare_uploads(files=files, model=model)
    stored: list[Attachment] = []
    try:
        for item in prepared:
            stored.append(_store(item, message=message, owner=owner))
    except BaseException:
        for attachment in stored:
            attachment.file.storage.delete(attachment.file.name)
        raise
    finally:
        for item in prepared:
            item.discard()
    return stored


def _store(item: Prepared, *, message: Message, owner) -> Attachment:
    details = item.details
    attachment = Attachment(
        uuid=uuid.uuid4(), message=message, owner=owner, kind=item.checked.kind,
        mime=item.mime, size=item.size, original_name=item.checked.name, sha256=item.sha256,
        width=details.width, height=details.height, duration_seconds=details.duration,
        pages=details.pages,
    )
    content = item.content if isinstance(item.content, File) else File(item.content)
    content.seek(0)
    # The name passed here is ignored: models.attachment_path generates the stored one.
    attachment.file.save(item.checked.name, content, save=False)
    attachment.save()
    return attachment


@receiver(post_delete, sender=Attachment, dispatch_uid="attachments-delete-stored-file")
def _delete_stored_file(sender, instance: Attachment, **kwargs) -> None:
    name, storage = instance.file.name, instance.file.storage
    # An edited question's copy shares its original's stored file.
    if name and not Attachment.objects.filter(file=name).exists():
        transaction.on_commit(lambda: storage.delete(name))
