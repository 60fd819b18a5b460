"""Everything a relay can do wrong (PROTOCOL.md §3 and §5), as one exception.

`RelayError.message` is written for the person using the app, not for a log
file: the relay's own words are quoted (request ids stripped, clipped), with
what it most likely means and what to do. The API key is never put in it.
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
NON_RETRYABLE_CODES = {"convert_request_failed"}
# Words new-api and one-api use (matched case-insensitively, first hit wins),
# with what they mean for the user. Order matters: specific before general.
KNOWN_RELAY_MESSAGES: list[tuple[str, Promise]] = [
    ("额度已用尽", _("your key has run out of quota")),
    ("预扣费额度失败", _("your relay account does not have enough quota for this request. "
     "new-api pre-charges prompt + max tokens, so lowering Max tokens may help")),
    ("用户额度不足", _("your relay account does not have enough balance")),
    ("余额不足", _("your relay account does not have enough balance")),
    ("无效的令牌", _("the API key is not valid")),
    ("令牌已过期", _("the API key has expired")),
    ("令牌已被禁用", _("the API key has been disabled")),
    ("令牌状态不可用", _("the API key has been disabled")),
    ("无权", _("your key is not allowed to use this model")),
    # "当前分组上游负载已饱和": the group's upstream is busy, not a forbidden model.
    ("负载已饱和", _("its upstream is overloaded right now; wait a moment and retry")),
    ("无可用渠道", _("it has no channel that can serve this model right now")),
    ("invalid api key", _("the API key is not valid")),
    ("incorrect api key", _("the API key is not valid")),
    ("invalid token", _("the API key is not valid")),
]
# Translated when used (gettext_lazy): these are read at import, in no language.
STATUS_EXPLANATIONS: dict[int, Promise] = {
    400: _("The relay refused the request as invalid"),
    401: _("The relay rejected the API key (invalid, expired or out of quota)"),
    402: _("The relay says payment is required: the account is out of balance"),
    403: _("The relay refused the request: not enough quota, or this model is not allowed "
           "for your key"),
    404: _("The relay does not know this endpoint or model"),
    408: _("The relay timed out waiting for the request"),
    413: _("The request is too large for the relay: send fewer or smaller files"),
    429: _("The relay is rate-limiting requests; wait a moment and retry"),
    500: _("The relay hit an internal error"),
    502: _("The relay's upstream gateway failed"),
    503: _("The relay has no channel available for this model right now"),
    504: _("The relay's upstream gateway timed out"),
}
# What a code means, said after "The relay says".
CODE_EXPLANATIONS: dict[str, Promise] = {
    "insufficient_user_quota": _("your relay account does not have enough quota for this "
                                 "request. new-api pre-charges prompt + max tokens, so "
                                 "lowering Max tokens may help"),
    "insufficient_quota": _("your account has run out of quota"),
    "prompt_blocked": _("the model's safety filter blocked the prompt"),
    "model_price_error": _("it has no price set for this model, so it refuses to run it"),
    "model_not_found": _("it has no channel that serves this model"),
    "convert_request_failed": _("it could not convert the request for the upstream model, "
                                "usually because of a media format it does not accept"),
    "do_request_failed": _("it could not reach the upstream model"),
    "bad_response_status_code": _("the upstream model answered with an error"),
    "empty_response": _("the upstream model returned an empty answer"),
    "rate_limit_exceeded": _("it is rate-limiting your requests; wait a moment and retry"),
}

ERROR_BODY_LIMIT = 64 * 1024
RELAY_MESSAGE_LIMIT = 300  # characters of the relay's own words quoted to the user


class RelayError(Exception):
    """A relay failed. `message` is what the user reads."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        relay_message: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.relay_message = relay_message
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the relay asked us to wait (Retry-After)

    def __str__(self) -> str:
        return self.message

    def redact(self, secret: str) -> RelayError:
        """Blank out `secret` wherever the relay echoed it (some quote the key).

        Too short a "key" (a test's "k") would blank out ordinary letters.
        """
        if len(secret) >= 6:
            self.message = self.message.replace(secret, "***")
            self.relay_message = self.relay_message.replace(secret, "***")
            self.args = (self.message,)
        return self


_REQUEST_ID = re.compile(r"\s*\(request id: [^)]*\)\s*$", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)


def _strip_request_id(message: str) -> str:
    return _REQUEST_ID.sub("", message).strip()


def clip(text: str, limit: int = RELAY_MESSAGE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _looks_html(text: str, content_type: str = "") -> bool:
    return "html" in content_type or text.lstrip()[:15].lower().startswith(("<!doctype", "<html"))


def _html_title(text: str) -> str:
    match = _TITLE.search(text)
    return clip(match.group(1).strip(), 120) if match else ""


def _decode_body(body: bytes | str | dict | None) -> Any:
    """bytes → the parsed JSON if it is JSON, else the stripped text."""
    payload: Any = body
    if isinstance(body, bytes):
        payload = body.decode("utf-8", errors="replace")
    if isinstance(payload, str):
        payload = payload.strip()
        if payload.startswith(("{", "[")):
            try:
                return json.loads(payload)
            except ValueError:
                return payload
    return payload


def _read_error_object(payload: Any) -> tuple[str, str]:
    """(code, message) from the shapes relays use for errors."""
    if not isinstance(payload, dict):
        return "", ""
    error = payload.get("error", payload)
    code = message = ""
    if isinstance(error, dict):
        code = str(error.get("code") or "")
        kind = str(error.get("type") or "")
        if not code and kind in CODE_EXPLANATIONS:  # OpenAI puts some codes in `type`
            code = kind
        message = str(error.get("message") or "")
    elif isinstance(error, str):
        message = error
    for key in ("message", "detail", "msg"):
        if not message and isinstance(payload.get(key), str):
            message = payload[key]
    return code, message


def _reason(code: str, relay_message: str) -> str:
    """What the relay's code or words mean, in the active language ('' if unknown)."""
    if code in CODE_EXPLANATIONS:
        return str(CODE_EXPLANATIONS[code])
    lowered = relay_message.lower()
    for needle, meaning in KNOWN_RELAY_MESSAGES:
        if needle in lowered:
            return str(meaning)
    return ""


def sentence(lead: str, relay_message: str, *, empty: bool = False) -> str:
    """`lead` (a translated sentence without its final stop) with the relay's words."""
    lead = str(lead).rstrip(".。")
    if relay_message:
        return gettext("%(lead)s (relay message: “%(message)s”).") % {
            "lead": lead, "message": clip(relay_message)}
    if empty:
        return gettext("%(lead)s (with an empty answer).") % {"lead": lead}
    return gettext("%(lead)s.") % {"lead": lead}


def _reason_sentence(reason: str, relay_message: str) -> str:
    """What the relay said and what it means, as one sentence a translator can reorder."""
    if relay_message:
        return gettext("The relay says %(reason)s (relay message: “%(message)s”).") % {
            "reason": reason, "message": clip(relay_message)}
    return gettext("The relay says %(reason)s.") % {"reason": reason}


def _web_page(html: str) -> tuple[str, str]:
    """How to name an HTML answer in a message, and its title."""
    title = _html_title(html)
    if title:
        return gettext("a web page (“%(title)s”)") % {"title": title}, title
    return gettext("a web page"), title


def explain_error(
    status: int | None, body: bytes | str | dict | None, *, content_type: str = ""
) -> RelayError:
    """Turn a relay's error answer into a RelayError a person can read."""
    payload = _decode_body(body)
    code, relay_message = _read_error_object(payload)
    if isinstance(payload, str) and payload:
        if _looks_html(payload, content_type):
            page, title = _web_page(payload)
            return RelayError(
                gettext("The relay answered HTTP %(status)s with %(page)s instead of JSON; a "
                        "proxy or gateway in front of it is probably failing.")
                % {"status": status, "page": page},
                status=status,
                code="html_response",
                relay_message=title,
                retryable=status in RETRYABLE_STATUSES,
            )
        relay_message = payload
    relay_message = clip(_strip_request_id(relay_message), 2000)

    reason = _reason(code, relay_message)
    if reason:
        message = _reason_sentence(reason, relay_message)
    else:
        if status is None:
            lead = gettext("The relay reported an error")
        elif status in STATUS_EXPLANATIONS:
            lead = str(STATUS_EXPLANATIONS[status])
        else:
            lead = gettext("The relay answered HTTP %(status)s") % {"status": status}
        message = sentence(lead, relay_message, empty=not payload)
    return RelayError(
        message,
        status=status,
        code=code,
        relay_message=relay_message,
        retryable=status in RETRYABLE_STATUSES and code not in NON_RETRYABLE_CODES,
    )


def unexpected_answer(status: int, body: bytes, content_type: str) -> RelayError:
    """A 200 that is neither a stream nor JSON: usually a base URL that misses the API."""
    text = body.decode("utf-8", errors="replace")
    if _looks_html(text, content_type):
        page, title = _web_page(text)
        return RelayError(
            gettext("The relay answered with %(page)s instead of a reply; check that the base "
                    "URL points at the relay's API.") % {"page": page},
            status=status,
            code="html_response",
            relay_message=title,
        )
    return RelayError(
        sentence(gettext("The relay answered with something that is neither a stream nor JSON"),
                 clip(text, 120)),
        status=status,
        code="bad_response",
        relay_message=clip(text, 120),
    )


def short_reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RelayError(
            gettext("The relay answered with something that is not JSON."), code="bad_json"
        ) from exc


async def error_from_response(response: httpx.Response) -> RelayError:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_LIMIT:
            break
    return response_error(response, b"".join(chunks))


def response_error(response: httpx.Response, body: bytes) -> RelayError:
    """A relay's error answer explained, with how long it asks us to wait."""
    error = explain_error(response.status_code, body[:ERROR_BODY_LIMIT],
                          content_type=response.headers.get("content-type", "").lower())
    error.retry_after = retry_after_seconds(response.headers.get("retry-after"))
    return error


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def duration_words(seconds: float) -> str:
    if seconds < 90:
        count = round(seconds)
        return ngettext("%(count)s second", "%(count)s seconds", count) % {"count": count}
    if seconds < 90 * 60:
        count = round(seconds / 60)
        return ngettext("%(count)s minute", "%(count)s minutes", count) % {"count": count}
    count = round(seconds / 3600)
    return ngettext("%(count)s hour", "%(count)s hours", count) % {"count": count}


def check_error_chunk(chunk: Any, *, mid_stream: bool) -> None:
    """Raise if a chunk (or a 200 JSON answer) is really an `{"error": …}`."""
    if not (isinstance(chunk, dict) and chunk.get("error")):
        return
    error = explain_error(None, chunk)
    reason = _reason(error.code, error.relay_message)
    if mid_stream and reason:
        lead = gettext("The relay reported an error during the reply: %(reason)s") % {
            "reason": reason}
    elif mid_stream:
        lead = gettext("The relay reported an error during the reply")
    elif reason:
        lead = gettext("The relay answered with an error: %(reason)s") % {"reason": reason}
    else:
        lead = gettext("The relay answered with an error")
    error.message = sentence(lead, error.relay_message)
    error.args = (error.message,)
    error.retryable = False  # §3: the reply may have started; never send it twice
    raise error
