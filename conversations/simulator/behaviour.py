"""What the simulator is asked to do (the `@…` spec of a model id or `X-Sim`),
and its canned words."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import unquote

from conversations.simulator.pictures import data_uri, make_png

SIMULATED_MODELS = [
    {"id": "gemini-2.5-flash", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gemini-2.5-flash-lite", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gemini-3.1-flash-lite-preview", "inputs": ["text", "image", "audio", "video", "pdf"]},
    {"id": "gpt-4o-mini", "inputs": ["text", "image"]},
    {"id": "gemini-2.5-flash-image", "inputs": ["text", "image"]},
]


FILLER = (
    "Here is a longer answer so that you can watch it stream. **Markdown** works: "
    "lists, `inline code`, and fenced blocks.\n\n"
    "1. The first point is short.\n"
    "2. The second point has *emphasis*.\n"
    "3. The third point links to [the docs](https://example.com/docs).\n\n"
    "```python\ndef greet(name: str) -> str:\n    return f\"Hello, {name}!\"\n```\n\n"
    "> A quotation, to show a block that is not a paragraph.\n\n"
    "That is the end of the simulated answer."
)


_TOKEN = re.compile(r"\s*\S+\s*|\s+")

# What a relay that substitutes models answers with, whatever was asked.
SUBSTITUTE = "gemini-2.5-flash-lite"


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text) or [text]


@dataclass
class Behaviour:
    fail: int | None = None
    code: str = ""
    message: str = ""
    empty: bool = False
    html: bool = False
    flaky: int = 0
    retry_after: int | None = None
    stall: bool = False
    stall_after: int | None = None
    cut_after: int | None = None
    error_after: int | None = None
    drop_after: int | None = None
    huge: int = 0
    no_usage: bool = False
    reasoning: bool = False
    rate: float | None = None
    tokens: int | None = None
    finish: str = "stop"
    bench: bool = False
    paragraph: int = 0
    text: bool = False
    finish_chunk: bool = False
    usage_every: bool = False
    images: bool = False
    picture: bool = False
    ignore_image_config: bool = False
    split: int = 0
    plain_json: bool = False
    linger: bool = False
    web_page: bool = False
    newapi: bool = False
    substitute: str = ""

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """Parse `key=value,flag,…`; the field's annotation says how to read a value.

        Raises ValueError naming the bad item, so the caller can answer 400.
        """
        behaviour = cls()
        kinds = {f.name: str(f.type) for f in fields(cls)}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, has_value, value = item.partition("=")
            key = key.strip().replace("-", "_")
            value = unquote(value.strip())
            kind = kinds.get(key)
            if kind is None:
                raise ValueError(f"unknown simulator behaviour {key!r}")
            try:
                if kind == "bool":
                    parsed: Any = value.lower() not in {"0", "false", "no", "off"}
                    if has_value and value.lower() not in {
                        "0", "1", "true", "false", "yes", "no", "on", "off"
                    }:
                        raise ValueError(value)
                elif kind.startswith("int"):
                    parsed = int(value)
                elif kind.startswith("float"):
                    parsed = float(value)
                else:
                    parsed = value
            except ValueError:
                raise ValueError(f"bad value {value!r} for simulator behaviour {key!r}") from None
            setattr(behaviour, key, parsed)
        return behaviour


# What a proxy in front of a relay says when the relay is down (Envoy's words).
PROXY_TEXT = "upstream connect error or disconnect/reset before headers. reset reason: overflow"


# What a relay's web site answers when the base URL misses the API.
WEB_PAGE = ("<!doctype html><html><head><title>New API</title></head>"
            "<body><div id=\"root\"></div></body></html>")


REASONING = "Let me think about what was sent and how to answer it."


def generated_image(size: int) -> str:
    """A data URI of a real PNG of about `size` characters, like an image model's output."""
    wanted = size * 3 // 4
    width = 256
    return data_uri(make_png(width, max(16, wanted // (width * 3) + 1), at_least=wanted))


# Default error bodies per status, as new-api words them.
DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("prompt_blocked", "The prompt was blocked by the upstream safety filter"),
    401: ("", "该令牌额度已用尽"),
    403: ("insufficient_user_quota", "用户额度不足, 剩余额度: ＄0.012300"),
    404: ("model_not_found", "The model does not exist"),
    413: ("request_body_too_large", "request body too large"),
    429: ("rate_limit_exceeded", "当前分组上游负载已饱和，请稍后再试"),
    500: ("do_request_failed", "upstream error: do request failed"),
    502: ("bad_response_status_code", "bad response status code 502"),
    503: ("model_not_found", "当前分组 default 下对于模型 x 无可用渠道"),
}


def new_api_error_body(status: int, code: str = "", message: str = "") -> bytes:
    default_code, default_message = DEFAULT_ERRORS.get(status, ("", f"error {status}"))
    error = {
        "message": f"{message or default_message} (request id: sim{uuid.uuid4().hex[:16]})",
        "type": "new_api_error",
        "param": "",
        "code": code or default_code or None,
    }
    return json.dumps({"error": error}, ensure_ascii=False).encode()
