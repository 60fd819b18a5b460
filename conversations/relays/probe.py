"""Probing a relay: what it really does with each medium, per model and dialect.

For each model: one text-only request (the baseline: its prompt tokens, the
time to first token, tokens per second, and the model the answer names),
then one tiny file of each kind the model claims (a 64×48 PNG, a 1-second
WAV, a 1-second MP4, a one-page PDF, made here) spelled in each dialect that
has a way to carry it. Each is judged from the relay's answer and usage:

    counted   the usage shows it (audio_tokens, or prompt tokens above the
              baseline by at least half of what Gemini charges for it)
    dropped   answered, but the usage shows nothing of it: new-api dropped
              the part without a word (PROTOCOL §2)
    refused   the relay said no (its words are kept)
    unknown   the relay reported no usage

The proposal is the dialect that carries the most claimed kinds across the
models (the relay's current one on a tie), and per model the flags of the
kinds counted in it. Nothing changes until staff apply it. Probes run from
`manage.py probe_relay` or in a background thread started by the admin, never
inside a user's request. What each request cost is worked out by the caller
(`price`, from billing), as this room does not know prices.
"""

from __future__ import annotations

import io
import math
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import wave
from base64 import b64encode
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from django.db import close_old_connections
from django.utils import timezone, translation
from django.utils.translation import gettext, ngettext, pgettext, pgettext_lazy

from conversations.capabilities import DIALECT_KINDS
from conversations.models import ChatModel, Relay, RelayProbe
from conversations.relays.checks import is_substitution
from conversations.relays.client import RelayClient
from conversations.relays.dialects import spell_part
from conversations.relays.errors import RelayError
from conversations.relays.setup import relay_target
from conversations.tokens import (
    TOKENS_PER_AUDIO_SECOND,
    TOKENS_PER_IMAGE,
    TOKENS_PER_PDF_PAGE,
    TOKENS_PER_VIDEO_SECOND,
)

KINDS = ("image", "audio", "video", "pdf")
PROMPT = "Name in three words what is attached."
MAX_TOKENS = 16
# What one sample should add to the prompt on Gemini; half of it is proof enough.
EXPECTED_TOKENS = {"image": TOKENS_PER_IMAGE, "audio": TOKENS_PER_AUDIO_SECOND,
                   "video": TOKENS_PER_VIDEO_SECOND, "pdf": TOKENS_PER_PDF_PAGE}
COUNTED_SHARE = 0.5
# How the report names a verdict and a kind (the stored report keeps the English keys).
VERDICT_WORDS = {
    "answered": pgettext_lazy("probe verdict", "answered"),
    "counted": pgettext_lazy("probe verdict", "counted"),
    "dropped": pgettext_lazy("probe verdict", "dropped"),
    "refused": pgettext_lazy("probe verdict", "refused"),
    "unknown": pgettext_lazy("probe verdict", "unknown"),
    "skipped": pgettext_lazy("probe verdict", "skipped"),
}
KIND_WORDS = {
    "text": pgettext_lazy("probe kind", "text"),
    "image": pgettext_lazy("probe kind", "image"),
    "audio": pgettext_lazy("probe kind", "audio"),
    "video": pgettext_lazy("probe kind", "video"),
    "pdf": pgettext_lazy("probe kind", "pdf"),
}


def _word(table: dict, key: str) -> str:
    return str(table.get(key, key))

Pricer = Callable[[str, dict | None], Decimal | None]


@dataclass(frozen=True)
class Sample:
    kind: str
    mime: str
    name: str
    data: bytes


@dataclass
class Attempt:
    kind: str  # "text" for the baseline
    dialect: str
    verdict: str  # answered (text), counted, dropped, refused, unknown
    detail: str = ""
    prompt_tokens: int | None = None
    usage: dict | None = None
    served_model: str = ""
    first_token_s: float | None = None
    tokens_per_s: float | None = None
    seconds: float = 0.0
    cost_usd: str | None = None  # Decimal as text, so the report stores as JSON


@dataclass
class ModelProbe:
    model_id: str
    claimed: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    proposed_flags: dict[str, bool] = field(default_factory=dict)
    note: str = ""

    def counted(self, dialect: str) -> set[str]:
        return {a.kind for a in self.attempts
                if a.dialect == dialect and a.verdict == "counted"}

    @property
    def baseline(self) -> Attempt | None:
        return next((a for a in self.attempts if a.kind == "text"), None)

    @property
    def cost_usd(self) -> Decimal | None:
        costs = [a.cost_usd for a in self.attempts]
        if not costs or any(c is None for c in costs):
            return None
        return sum((Decimal(c) for c in costs), Decimal(0))


@dataclass
class ProbeReport:
    relay: str
    dialect: str  # the relay's dialect when probed
    models: list[ModelProbe]
    proposed_dialect: str = ""
    seconds: float = 0.0

    @property
    def cost_usd(self) -> Decimal | None:
        costs = [m.cost_usd for m in self.models]
        if not costs or any(c is None for c in costs):
            return None
        return sum(costs, Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ProbeReport:
        models = [ModelProbe(**{**m, "attempts": [Attempt(**a) for a in m["attempts"]]})
                  for m in data["models"]]
        return cls(**{**data, "models": models})

    def lines(self) -> list[str]:
        """The report for people to read (the command prints it; the admin shows it)."""
        out = [ngettext(
            "Relay “%(relay)s”, dialect %(dialect)s: probed %(count)s model in %(seconds)s s, "
            "cost %(cost)s at list price.",
            "Relay “%(relay)s”, dialect %(dialect)s: probed %(count)s models in %(seconds)s s, "
            "cost %(cost)s at list price.", len(self.models),
        ) % {"relay": self.relay, "dialect": self.dialect, "count": len(self.models),
             "seconds": f"{self.seconds:.1f}", "cost": _usd(self.cost_usd)}]
        for model in self.models:
            base = model.baseline
            values = {"model": model.model_id, "cost": _usd(model.cost_usd)}
            if base is not None and base.first_token_s is not None and base.tokens_per_s:
                line = gettext("%(model)s: cost %(cost)s, first token %(ms)s ms, %(speed)s "
                               "tokens/s")
                values |= {"ms": f"{base.first_token_s * 1000:.0f}",
                           "speed": f"{base.tokens_per_s:.0f}"}
            elif base is not None and base.first_token_s is not None:
                line = gettext("%(model)s: cost %(cost)s, first token %(ms)s ms")
                values["ms"] = f"{base.first_token_s * 1000:.0f}"
            else:
                line = gettext("%(model)s: cost %(cost)s")
            out.append(line % values)
            for attempt in model.attempts:
                out.append(f"  {_word(KIND_WORDS, attempt.kind):<5} {attempt.dialect:<17} "
                           f"{_word(VERDICT_WORDS, attempt.verdict):<8} "
                           f"{attempt.detail}".rstrip())
            if model.note:
                out.append("  " + gettext("note: %(note)s") % {"note": model.note})
            if model.proposed_flags:
                takes = [_word(KIND_WORDS, k) for k in KINDS if model.proposed_flags.get(k)]
                out.append("  " + (gettext("proposed: takes %(kinds)s") % {
                    "kinds": pgettext("list separator", ", ").join(takes)} if takes
                    else gettext("proposed: takes text only")))
        if self.proposed_dialect == self.dialect:
            out.append(gettext("Proposed dialect: %(dialect)s (unchanged)")
                       % {"dialect": self.proposed_dialect})
        else:
            out.append(gettext("Proposed dialect: %(dialect)s")
                       % {"dialect": self.proposed_dialect})
        return out


def _usd(value: Decimal | None) -> str:
    return pgettext("cost", "unknown") if value is None else f"${value:.6f}"


# -- samples ----------------------------------------------------------------------


def make_samples() -> dict[str, Sample]:
    """One tiny file of each kind; video only where ffmpeg can make it."""
    samples = {"image": Sample("image", "image/png", "probe.png", _png()),
               "audio": Sample("audio", "audio/wav", "probe.wav", _wav()),
               "pdf": Sample("pdf", "application/pdf", "probe.pdf", _pdf())}
    video = _mp4()
    if video:
        samples["video"] = Sample("video", "video/mp4", "probe.mp4", video)
    return samples


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _wav(rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{rate}h", *(
            int(8000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate))))
    return out.getvalue()


def _pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _mp4() -> bytes:
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return b""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as out:
        command = [ffmpeg, "-nostdin", "-v", "error", "-y",
                   "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1",
                   "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                   "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                   "-movflags", "+faststart", out.name]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return b""
        return out.read()


# -- running ----------------------------------------------------------------------


def claimed_kinds(model: ChatModel) -> list[str]:
    return [kind for kind in KINDS if getattr(model, f"accepts_{kind}")]


async def probe_relay(
    *, relay: Relay, models: list[ChatModel], price: Pricer, samples: dict[str, Sample],
    client_options: dict | None = None,
) -> ProbeReport:
    started = time.monotonic()
    report = ProbeReport(relay=relay.name, dialect=relay.dialect, models=[])
    options = {"max_retries": 1, **(client_options or {})}
    async with RelayClient(relay_target(relay), **options) as client:
        for model in models:
            report.models.append(
                await _probe_model(client, model.model_id, claimed_kinds(model), price, samples))
    report.proposed_dialect = propose_dialect(report)
    for model in report.models:
        if model.baseline is None or model.baseline.verdict == "refused":
            continue  # nothing learned: nothing proposed
        counted = model.counted(report.proposed_dialect)
        model.proposed_flags = {kind: kind in counted for kind in KINDS}
        elsewhere = {kind: [d for d in DIALECT_KINDS if kind in model.counted(d)]
                     for kind in model.claimed if kind not in counted}
        notes = [gettext("%(kind)s is counted only in %(dialects)s") % {
                     "kind": _word(KIND_WORDS, kind),
                     "dialects": pgettext("list separator", ", ").join(ds)} if ds
                 else gettext("%(kind)s was not counted in any dialect")
                 % {"kind": _word(KIND_WORDS, kind)}
                 for kind, ds in elsewhere.items()]
        base = model.baseline
        if base is not None and is_substitution(requested=model.model_id,
                                                served=base.served_model):
            notes.append(gettext("the relay answered as “%(model)s”")
                         % {"model": base.served_model})
        model.note = pgettext("clause separator", "; ").join(notes)
    report.seconds = time.monotonic() - started
    return report


async def _probe_model(client: RelayClient, model_id: str, claimed: list[str], price: Pricer,
                       samples: dict[str, Sample]) -> ModelProbe:
    result = ModelProbe(model_id=model_id, claimed=claimed)
    baseline = await _attempt(client, model_id, "text", "", None, None, price)
    result.attempts.append(baseline)
    if baseline.verdict == "refused":
        result.note = gettext("the relay refused even a text-only request")
        return result
    for kind in claimed:
        sample = samples.get(kind)
        if sample is None:
            result.attempts.append(Attempt(kind, "-", "skipped",
                                           gettext("no sample (ffmpeg missing)")))
            continue
        # Dialects that spell this kind the same way (image_url for an image in
        # all five) share one request: its verdict stands for each of them.
        sent: dict[str, Attempt] = {}
        for dialect, kinds in DIALECT_KINDS.items():
            if kind not in kinds:
                continue
            spelling = _part(sample, dialect)["type"]
            if spelling in sent:
                first = sent[spelling]
                result.attempts.append(replace(
                    first, dialect=dialect, cost_usd="0",
                    detail=gettext("as %(dialect)s (the same `%(part)s` part)")
                    % {"dialect": first.dialect, "part": spelling}))
                continue
            sent[spelling] = await _attempt(client, model_id, kind, dialect, sample,
                                            baseline, price)
            result.attempts.append(sent[spelling])
    return result


async def _attempt(client: RelayClient, model_id: str, kind: str, dialect: str,
                   sample: Sample | None, baseline: Attempt | None,
                   price: Pricer) -> Attempt:
    content: list[dict] = [{"type": "text", "text": PROMPT}]
    if sample is not None:
        content.append(_part(sample, dialect))
    body = {"model": model_id, "messages": [{"role": "user", "content": content}],
            "stream": True, "max_tokens": MAX_TOKENS}
    attempt = Attempt(kind, dialect or "-", "answered")
    started = time.monotonic()
    first = None
    completion_chars = 0
    try:
        async for event in client.stream_chat(body):
            if event.kind in ("content", "reasoning"):
                first = first if first is not None else time.monotonic()
                completion_chars += len(event.text)
            elif event.kind == "usage":
                attempt.usage = event.usage
            elif event.kind == "model":
                attempt.served_model = event.text
    except RelayError as exc:
        attempt.seconds = time.monotonic() - started
        attempt.verdict = "refused"
        attempt.detail = exc.message
        attempt.cost_usd = "0"
        return attempt
    ended = time.monotonic()
    attempt.seconds = ended - started
    if first is not None:
        attempt.first_token_s = first - started
    usage = attempt.usage or {}
    completion = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if first is not None and isinstance(completion, int) and ended - first > 0.001:
        attempt.tokens_per_s = completion / (ended - first)
    attempt.prompt_tokens = _int(usage.get("prompt_tokens")) if usage else None
    cost = price(model_id, attempt.usage)
    attempt.cost_usd = None if cost is None else str(cost)
    if sample is not None:
        attempt.verdict, attempt.detail = _judge(kind, attempt, baseline)
    elif attempt.prompt_tokens is not None:
        attempt.detail = ngettext("%(count)s prompt token", "%(count)s prompt tokens",
                                  attempt.prompt_tokens) % {"count": attempt.prompt_tokens}
    return attempt


def _judge(kind: str, attempt: Attempt, baseline: Attempt | None) -> tuple[str, str]:
    usage = attempt.usage
    if not usage or attempt.prompt_tokens is None:
        return "unknown", gettext("the relay reported no usage")
    base = (baseline.prompt_tokens if baseline else None) or 0
    extra = attempt.prompt_tokens - base
    expected = EXPECTED_TOKENS[kind]
    audio = _int((usage.get("prompt_tokens_details") or {}).get("audio_tokens"))
    values = {"extra": f"{extra:+d}", "expected": expected}
    if kind == "audio" and audio:
        return "counted", ngettext("%(count)s audio token", "%(count)s audio tokens",
                                   audio) % {"count": audio}
    if extra >= expected * COUNTED_SHARE:
        return "counted", gettext(
            "%(extra)s prompt tokens over text alone (expected about %(expected)s)") % values
    return "dropped", gettext(
        "%(extra)s prompt tokens over text alone (expected about %(expected)s): the relay "
        "dropped it without a word") % values


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _part(sample: Sample, dialect: str) -> dict:
    data = b64encode(sample.data).decode()
    uri = f"data:{sample.mime};base64,{data}"
    return spell_part(kind=sample.kind, dialect=dialect, mime=sample.mime, name=sample.name,
                      inline=lambda bare: data if bare else uri, url=lambda: uri)


def propose_dialect(report: ProbeReport) -> str:
    """The dialect that carries the most claimed kinds, over every model."""
    scores = {dialect: sum(len(m.counted(dialect)) for m in report.models)
              for dialect in DIALECT_KINDS}
    best = max(scores.values(), default=0)
    if scores.get(report.dialect) == best:
        return report.dialect
    return next(d for d, score in scores.items() if score == best)


# -- recording and applying ---------------------------------------------------------


def run_probe(*, relay: Relay, models: list[ChatModel] | None = None,
              price: Pricer) -> RelayProbe:
    """Probe and record; the proposal waits for staff (apply_probe)."""
    chosen = models if models is not None else list(relay.models.filter(is_active=True))
    report = async_to_sync(probe_relay)(relay=relay, models=chosen, price=price,
                                        samples=make_samples())
    return RelayProbe.objects.create(
        relay=relay, report=report.as_json(), proposed_dialect=report.proposed_dialect,
        cost_usd=report.cost_usd, seconds=report.seconds,
    )


def start_in_background(*, relay_id: int, model_ids: list[int] | None,
                        price: Pricer) -> threading.Thread:
    """The admin's probe: its own thread, so no request waits on the relay. Its
    report is written in the language of the staff member who started it."""
    language = translation.get_language()

    def run() -> None:
        close_old_connections()
        try:
            with translation.override(language):
                relay = Relay.objects.get(pk=relay_id)
                models = (list(relay.models.filter(pk__in=model_ids)) if model_ids else None)
                run_probe(relay=relay, models=models, price=price)
        finally:
            close_old_connections()

    thread = threading.Thread(target=run, name=f"probe-relay-{relay_id}", daemon=True)
    thread.start()
    return thread


def apply_probe(*, probe: RelayProbe) -> list[str]:
    """Set the relay's dialect and its models' flags as the probe proposed."""
    report = ProbeReport.from_json(probe.report)
    relay = probe.relay
    changes = []
    if probe.proposed_dialect and relay.dialect != probe.proposed_dialect:
        changes.append(gettext("dialect %(old)s → %(new)s")
                       % {"old": relay.dialect, "new": probe.proposed_dialect})
        relay.dialect = probe.proposed_dialect
        relay.save(update_fields=["dialect"])
    for model_probe in report.models:
        if not model_probe.proposed_flags:
            continue
        model = relay.models.filter(model_id=model_probe.model_id).first()
        if model is None:
            continue
        updates = [f"accepts_{kind}" for kind in model_probe.claimed
                   if getattr(model, f"accepts_{kind}") != model_probe.proposed_flags[kind]]
        for name in updates:
            setattr(model, name, model_probe.proposed_flags[name.removeprefix("accepts_")])
        if updates:
            model.save(update_fields=updates)
            flags = pgettext("list separator", ", ").join(
                (gettext("%(kind)s on") if getattr(model, name) else gettext("%(kind)s off"))
                % {"kind": _word(KIND_WORDS, name.removeprefix("accepts_"))}
                for name in updates)
            changes.append(gettext("%(model)s: %(flags)s")
                           % {"model": model.model_id, "flags": flags})
    probe.applied_at = timezone.now()
    probe.save(update_fields=["applied_at"])
    return changes
