"""What a media file really is, read from its bytes (no Django here).

Used by the upload checks (conversations.attachments) and by the relay
simulator, which describes what it received. The name a browser gives a file
is never consulted: the type comes from the content, the details from
Pillow, pypdf, the standard library and ffprobe when it is installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass, field
from typing import BinaryIO

import puremagic
from django.utils.translation import gettext
from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from conversations.infra.concurrency import outside_limit

HEAD_BYTES = 4096

# Found once; tests set these to None to behave like a machine without ffmpeg.
FFMPEG: str | None = shutil.which("ffmpeg")
FFPROBE: str | None = shutil.which("ffprobe")
PROBE_TIMEOUT = 60

# The true type of every file we take, and the kind it belongs to.
KIND_OF_MIME: dict[str, str] = {
    "image/png": "image",
    "image/jpeg": "image",
    "image/webp": "image",
    "image/gif": "image",
    "image/heic": "image",
    "image/heif": "image",
    "audio/wav": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "audio/flac": "audio",
    "audio/aac": "audio",
    "audio/webm": "audio",
    "video/mp4": "video",
    "video/quicktime": "video",
    "video/webm": "video",
    "video/x-matroska": "video",
    "video/x-msvideo": "video",
    "video/mpeg": "video",
    "video/x-flv": "video",
    "video/x-ms-wmv": "video",
    "video/3gpp": "video",
    "video/ogg": "video",
    "application/pdf": "pdf",
}

# Containers that may hold only sound; ffprobe tells which it is.
AUDIO_ONLY_MIME = {
    "video/mp4": "audio/mp4",
    "video/3gpp": "audio/mp4",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/webm",
    "video/ogg": "audio/ogg",
    "video/x-ms-wmv": "audio/x-ms-wma",
}

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P "}
_QUICKTIME_FIRST_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def sniff(head: bytes) -> str | None:
    """The MIME type of an accepted format, from the first bytes; None if not one.

    puremagic knows thousands of formats but ranks an .m4a as video and a
    QuickTime file as 3GPP; for the few formats we accept, the signatures
    below decide, including the ISO-BMFF brand that separates them.
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}.get(
            head[8:12]
        )
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _sniff_ftyp(head)
    if head[4:8] in _QUICKTIME_FIRST_ATOMS:
        return "video/quicktime"  # old QuickTime files start without an ftyp box
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if head.startswith(b"OggS"):
        return "video/ogg" if b"\x80theora" in head else "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0x03
        return "audio/aac" if layer == 0 else "audio/mpeg"  # ADTS AAC has layer 0
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    if head.startswith(b"FLV\x01"):
        return "video/x-flv"
    if head.startswith(_ASF_GUID):
        return "video/x-ms-wmv"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def _sniff_ftyp(head: bytes) -> str | None:
    size = struct.unpack(">I", head[:4])[0]
    major = head[8:12]
    brands = {major} | {head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if brands & _HEIC_BRANDS:
        return "image/heic"
    if major in _HEIF_BRANDS:
        return "image/heif"
    if major in (b"avif", b"avis"):
        return None
    if major == b"qt  ":
        return "video/quicktime"
    if major in _MP4_AUDIO_BRANDS:
        return "audio/mp4"
    if major.startswith((b"3gp", b"3g2")):
        return "video/3gpp"
    if major == b"crx ":
        return None  # a Canon raw photo, not a video
    return "video/mp4"


def is_svg(head: bytes) -> bool:
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped)


def what_is_it(head: bytes) -> str:
    """A few plain words for content we do not take ("a Windows program")."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"MZ"):
        return gettext("a Windows program")
    if head.startswith(b"\x7fELF"):
        return gettext("a Linux program")
    if head.startswith((b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")):
        return gettext("a macOS program")
    if is_svg(head):
        return gettext("an SVG drawing")
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return gettext("a web page (HTML)")
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return gettext("an AVIF image")
    with contextlib.suppress(puremagic.PureError, ValueError):
        matches = puremagic.magic_string(head)
        if matches:
            return f"“{matches[0].name}”"
    if _looks_like_text(head):
        return gettext("plain text")
    return gettext("a format we do not recognise")


def _looks_like_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


# -- details --------------------------------------------------------------------


@dataclass
class Details:
    """What we could learn about one file; `problem` set means it is unusable."""

    mime: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    pages: int | None = None
    has_video: bool | None = None
    has_audio: bool | None = None
    problem: str = ""
    notes: list[str] = field(default_factory=list)


def image_details(fh: BinaryIO, mime: str, *, max_pixels: int) -> Details:
    """Size from the header, then a full decode so a cut-off file is caught."""
    details = Details(mime)
    if mime in ("image/heic", "image/heif"):
        return details  # Pillow cannot decode HEIC; the relay's model can
    try:
        fh.seek(0)
        with Image.open(fh) as image:
            details.width, details.height = image.size
            if details.width * details.height > max_pixels:
                details.problem = gettext(
                    "the picture is %(width)s×%(height)s pixels, more than the %(limit)s "
                    "million we accept") % {"width": details.width, "height": details.height,
                                            "limit": max_pixels // 1_000_000}
                return details
            if image.format == "PNG":
                image.verify()  # every chunk's checksum, through to the end marker
            else:
                if image.format == "JPEG":  # decoding at 1/8 scale still reads every byte
                    image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Image.DecompressionBombError:
        details.problem = gettext("the picture has far too many pixels to open safely")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error):
        details.problem = gettext("the picture is damaged or incomplete")
    return details


def wav_details(fh: BinaryIO, size: int) -> Details:
    details = Details("audio/wav", has_audio=True, has_video=False)
    try:
        fh.seek(0)
        with wave.open(fh, "rb") as wav:  # uploads say "w+b"; wave would refuse them
            frames = wav.getnframes()
            rate = wav.getframerate()
            frame_bytes = wav.getsampwidth() * wav.getnchannels()
    except (wave.Error, EOFError, struct.error) as exc:
        details.problem = gettext("the WAV file cannot be read (%(reason)s)") % {"reason": exc}
        return details
    if not rate:
        details.problem = gettext("the WAV file has no sample rate")
        return details
    details.duration = frames / rate
    if frames * frame_bytes > size:
        details.problem = gettext("the WAV file is incomplete (its sound data is cut off)")
    return details


def iso_bmff_problem(fh: BinaryIO, size: int) -> str:
    """MP4/MOV: every top-level box must end inside the file, and a movie box must exist."""
    offset = 0
    found_moov = False
    while offset < size:
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return gettext("the file is incomplete (it ends in the middle of a box)")
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1:
            if len(header) < 16:
                return gettext("the file is incomplete")
            box_size = struct.unpack(">Q", header[8:16])[0]
        elif box_size == 0:
            box_size = size - offset
        if box_size < 8:
            return gettext("the file is damaged (a box has an impossible size)")
        if offset + box_size > size:
            return gettext("the file is incomplete: it was cut off before its end")
        found_moov = found_moov or box_type == b"moov"
        offset += box_size
    if found_moov:
        return ""
    return gettext("the file has no movie header, so it cannot be played")


def mvhd_duration(fh: BinaryIO, size: int) -> float | None:
    """The duration in an MP4/MOV movie header, without ffprobe."""
    moov = _find_box(fh, 0, size, b"moov")
    if moov is None:
        return None
    mvhd = _find_box(fh, moov[0], moov[1], b"mvhd")
    if mvhd is None:
        return None
    fh.seek(mvhd[0])
    version = fh.read(1)
    if not version:
        return None
    fh.read(3)
    if version[0] == 1:
        data = fh.read(28)
        if len(data) < 28:
            return None
        timescale, duration = struct.unpack(">IQ", data[16:28])
    else:
        data = fh.read(16)
        if len(data) < 16:
            return None
        timescale, duration = struct.unpack(">II", data[8:16])
    return duration / timescale if timescale else None


def _find_box(fh: BinaryIO, start: int, end: int, wanted: bytes) -> tuple[int, int] | None:
    """(start of payload, end) of the first box named `wanted` within [start, end)."""
    offset = start
    while offset + 8 <= end:
        fh.seek(offset)
        header = fh.read(16)
        if len(header) < 8:
            return None
        box_size, box_type = struct.unpack(">I4s", header[:8])
        payload = offset + 8
        if box_size == 1 and len(header) == 16:
            box_size = struct.unpack(">Q", header[8:16])[0]
            payload = offset + 16
        elif box_size == 0:
            box_size = end - offset
        if box_size < 8:
            return None
        if box_type == wanted:
            return payload, min(offset + box_size, end)
        offset += box_size
    return None


def pdf_details(fh: BinaryIO, size: int) -> Details:
    details = Details("application/pdf")
    fh.seek(max(0, size - 2048))
    if b"%%EOF" not in fh.read():
        details.problem = gettext("the PDF is incomplete (its end is missing)")
        return details
    try:
        fh.seek(0)
        reader = PdfReader(fh, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            details.problem = gettext("the PDF is password-protected, so the model could not "
                                      "read it")
            return details
        details.pages = len(reader.pages)
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, struct.error,
            RecursionError):
        details.problem = gettext("the PDF is damaged and cannot be read")
        return details
    if not details.pages:
        details.problem = gettext("the PDF has no pages")
    return details


def ffprobe(path: str) -> Details | None:
    """Streams and duration from ffprobe; None when ffprobe is not installed."""
    if not FFPROBE:
        return None
    try:
        with outside_limit():
            result = subprocess.run(
                [FFPROBE, "-v", "error", "-print_format", "json", "-show_format",
                 "-show_streams", path],
                capture_output=True, timeout=PROBE_TIMEOUT, check=False,
            )
    except subprocess.TimeoutExpired:
        return Details("", problem=gettext("the file took too long to inspect"))
    except OSError:
        return None
    if result.returncode != 0:
        return Details("", problem=gettext("the file is damaged or incomplete and cannot be "
                                           "played"))
    try:
        info = json.loads(result.stdout or b"{}")
    except ValueError:
        return Details("", problem=gettext("the file could not be inspected"))
    streams = info.get("streams") or []
    video = [s for s in streams if s.get("codec_type") == "video"
             and not (s.get("disposition") or {}).get("attached_pic")]
    details = Details(
        "",
        has_video=bool(video),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )
    with contextlib.suppress(TypeError, ValueError):
        details.duration = float((info.get("format") or {}).get("duration"))
    if video:
        with contextlib.suppress(TypeError, ValueError):
            details.width = int(video[0].get("width"))
            details.height = int(video[0].get("height"))
    if not details.has_video and not details.has_audio:
        details.problem = gettext("the file holds neither sound nor pictures")
    return details


def describe_bytes(data: bytes, mime_hint: str = "") -> tuple[str, Details | None]:
    """For the simulator: (true MIME, details) of a whole file held in memory."""
    mime = sniff(data[:HEAD_BYTES]) or mime_hint
    kind = KIND_OF_MIME.get(mime, "")
    fh = io.BytesIO(data)
    if kind == "image":
        return mime, image_details(fh, mime, max_pixels=400_000_000)
    if mime == "audio/wav":
        return mime, wav_details(fh, len(data))
    if mime == "application/pdf":
        return mime, pdf_details(fh, len(data))
    if kind in ("audio", "video") and FFPROBE:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            details = ffprobe(tmp.name)
        if details is not None:
            details.mime = mime
            return mime, details
    if mime in ("video/mp4", "video/quicktime", "audio/mp4", "video/3gpp"):
        duration = mvhd_duration(fh, len(data))
        if duration is not None:
            return mime, Details(mime, duration=duration)
    return mime, None


FORMAT_LABELS = {
    "image/jpeg": "JPEG", "audio/mpeg": "MP3", "audio/mp4": "M4A", "video/quicktime": "MOV",
    "video/x-msvideo": "AVI", "video/x-matroska": "MKV", "video/x-ms-wmv": "WMV",
    "video/x-flv": "FLV", "video/3gpp": "3GP",
}


def format_label(mime: str) -> str:
    """A short name for a type, as people say it: "MOV", "MP3", "PNG"."""
    return FORMAT_LABELS.get(mime) or mime.split("/")[-1].upper()
