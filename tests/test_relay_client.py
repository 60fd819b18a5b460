"""The relay client against the relay simulator, over real loopback HTTP.

Every test drives `RelayClient` the way the app does and checks what it made
of the relay's answer against what the simulator says it sent (its request
record), so PROTOCOL.md §3, §4 and §5 are each proven on the wire.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conversations.relays.client import RelayClient, RelayTarget
from conversations.relays.errors import RelayError, explain_error
from conversations.relays.stream import Completion, StreamEvent
from conversations.simulator.behaviour import REASONING, SIMULATED_MODELS, tokenize
from tests.conftest import free_port

SEEDS = Path("/work/shared/relay/seeds")
MODEL = "gemini-2.5-flash"


def make_client(simulator, *, api_key: str = "k", **options) -> RelayClient:
    options.setdefault("backoff", 0.01)
    return RelayClient(RelayTarget(base_url=simulator.url, api_key=api_key), **options)


def chat(spec: str = "", text: str = "Hello relay", **extra) -> dict:
    model = f"{MODEL}@{spec}" if spec else MODEL
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def stream(simulator, spec: str = "", **options) -> list[StreamEvent]:
    async with make_client(simulator, **options) as client:
        return [event async for event in client.stream_chat(chat(spec))]


async def collect(simulator, spec: str = "", **options) -> Completion:
    async with make_client(simulator, **options) as client:
        return await client.stream_collect(chat(spec))


async def stream_until_error(
    simulator, spec: str, **options
) -> tuple[list[StreamEvent], RelayError]:
    """The events that arrived before the client raised, and the error."""
    events: list[StreamEvent] = []
    async with make_client(simulator, **options) as client:
        with pytest.raises(RelayError) as caught:
            async for event in client.stream_chat(chat(spec)):
                events.append(event)
    return events, caught.value


async def failure(simulator, spec: str, **options) -> RelayError:
    return (await stream_until_error(simulator, spec, **options))[1]


def raw_sse(simulator, spec: str) -> list[str]:
    """What the simulator puts on the wire for a streamed chat, line by line."""
    response = httpx.post(
        f"{simulator.url}/v1/chat/completions",
        json={**chat(spec), "stream": True},
        headers={"Authorization": "Bearer k"},
        timeout=10,
    )
    return response.text.split("\n")


def data_chunks(lines: list[str]) -> list[dict]:
    return [json.loads(line[6:]) for line in lines
            if line.startswith("data: {")]


def content(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if e.kind == "content")


def seed_answer(prefix: str) -> dict:
    text = next(SEEDS.glob(f"{prefix}_*.txt")).read_text()
    return json.loads(text[text.index('{\n"id"'):])


def seed_request(prefix: str) -> dict:
    text = next(SEEDS.glob(f"{prefix}_*.txt")).read_text()
    start = text.index("{")
    return json.JSONDecoder().raw_decode(text[start:])[0]


# -- §3 streaming: the normal shape ---------------------------------------------


async def test_content_deltas_add_up_to_exactly_the_reply_the_relay_sent(simulator):
    events = await stream(simulator, "tokens=60")

    assert content(events) == simulator.requests[0].reply
    assert len([e for e in events if e.kind == "content"]) == 60


async def test_the_role_chunk_yields_no_event(simulator):
    lines = raw_sse(simulator, "tokens=5")
    assert data_chunks(lines)[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}

    events = await stream(simulator, "tokens=5")

    assert all(e.text or e.usage for e in events)
    assert events[0] == StreamEvent("content", text=tokenize(simulator.requests[-1].reply)[0])


async def test_reasoning_content_deltas_are_kept_apart_from_the_answer(simulator):
    events = await stream(simulator, "reasoning,tokens=10")

    reasoning = "".join(e.text for e in events if e.kind == "reasoning")
    assert reasoning == REASONING
    assert content(events) == simulator.requests[0].reply
    kinds = [e.kind for e in events]
    assert kinds.index("content") > max(i for i, k in enumerate(kinds) if k == "reasoning")


async def test_finish_reason_on_the_last_content_chunk_is_taken(simulator):
    last = [c for c in data_chunks(raw_sse(simulator, "tokens=4,finish=length")) if c["choices"]]
    assert last[-1]["choices"][0]["delta"]["content"]
    assert last[-1]["choices"][0]["finish_reason"] == "length"

    result = await collect(simulator, "tokens=4,finish=length")

    assert result.finish_reason == "length"
    assert result.content == simulator.requests[-1].reply


async def test_finish_reason_on_its_own_empty_delta_chunk_is_taken(simulator):
    spec = "tokens=4,finish_chunk,finish=content_filter"
    last = [c for c in data_chunks(raw_sse(simulator, spec)) if c["choices"]]
    assert last[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                      "finish_reason": "content_filter"}
    assert last[-2]["choices"][0]["finish_reason"] is None

    result = await collect(simulator, spec)

    assert result.finish_reason == "content_filter"
    assert result.content == simulator.requests[-1].reply


async def test_usage_from_the_chunk_with_empty_choices_is_taken(simulator):
    usage_chunks = [c for c in data_chunks(raw_sse(simulator, "tokens=7")) if c["usage"]]
    assert [c["choices"] for c in usage_chunks] == [[]]

    result = await collect(simulator, "tokens=7")

    assert result.usage == simulator.requests[-1].usage
    assert result.usage["completion_tokens"] == 7


async def test_the_last_usage_wins_when_a_relay_repeats_it_on_every_chunk(simulator):
    repeated = [c["usage"] for c in data_chunks(raw_sse(simulator, "tokens=6,usage_every"))
                if c["usage"]]
    assert len(repeated) == 7 and repeated[0] != repeated[-1]

    result = await collect(simulator, "tokens=6,usage_every")

    assert result.usage == simulator.requests[-1].usage == repeated[-1]


async def test_usage_null_on_every_chunk_does_not_erase_the_usage(simulator):
    chunks = data_chunks(raw_sse(simulator, "tokens=5"))
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])

    result = await collect(simulator, "tokens=5")

    assert result.usage is not None
    assert result.usage == simulator.requests[-1].usage


async def test_the_done_marker_ends_the_reply_even_if_the_connection_stays_open(simulator):
    lines = raw_sse(simulator, "tokens=3")
    assert "data: [DONE]" in lines

    started = time.monotonic()
    result = await collect(simulator, "tokens=3,linger", read_timeout=5)

    assert time.monotonic() - started < 2
    assert result.finish_reason == "stop"
    assert result.content == simulator.requests[-1].reply


async def test_ping_comment_lines_are_ignored(simulator):
    lines = raw_sse(simulator, "tokens=120")
    assert lines.count(": PING") >= 3

    result = await collect(simulator, "tokens=120")

    assert result.content == simulator.requests[-1].reply
    assert "PING" not in result.content


async def test_streamed_openrouter_images_arrive_decoded_as_image_events(simulator):
    events = await stream(simulator, "images,huge=5000,tokens=3")

    pictures = [e.picture for e in events if e.kind == "image"]
    sent = simulator.requests[0].images[0]
    assert len(pictures) == 1
    assert pictures[0].read() == base64.b64decode(sent.removeprefix("data:image/png;base64,"))
    assert "![image](picture:1)" in content(events)
    assert "base64" not in content(events)
    assert events[-3:] == [StreamEvent("finish", text="stop"),
                           StreamEvent("model", text="gemini-2.5-flash"),
                           StreamEvent("usage", usage=simulator.requests[0].usage)]


# -- §1 the request itself ------------------------------------------------------


async def test_it_always_asks_for_usage_when_streaming(simulator):
    async with make_client(simulator) as client:
        await client.stream_collect({**chat("tokens=2"),
                                     "stream_options": {"include_usage": False}})
        await client.stream_collect(chat("tokens=2"))

    assert [r.body["stream_options"] for r in simulator.requests] == [
        {"include_usage": True}, {"include_usage": True}]


async def test_it_sends_stream_and_never_the_docs_typo_steam(simulator):
    async with make_client(simulator) as client:
        await client.stream_collect({**chat("tokens=2"), "steam": False})
        await client.complete_chat({**chat("tokens=2"), "steam": False})

    streamed, plain = (r.body for r in simulator.requests)
    assert streamed["stream"] is True and "steam" not in streamed
    assert plain["stream"] is False and "steam" not in plain
    assert "stream_options" not in plain


async def test_the_relay_receives_exactly_the_json_body_given(simulator):
    body = {
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "简洁地回答"},
            {"role": "user", "content": [
                {"type": "text", "text": "请分析下面附件的内容"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
            ]},
        ],
        "temperature": 0.8,
        "top_p": 0.1,
        "max_tokens": 2000,
        "extra_body": {"google": {"image_config": {"aspect_ratio": "16:9",
                                                   "image_size": "2K"}}},
    }

    async with make_client(simulator, api_key="sk-test") as client:
        await client.stream_collect(body)

    record = simulator.requests[0]
    assert record.body == {**body, "stream": True, "stream_options": {"include_usage": True}}
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.headers["content-type"] == "application/json"
    assert record.path == "/v1/chat/completions"


# -- §3 edge cases ------------------------------------------------------------------


async def test_a_multi_megabyte_single_sse_line_arrives_as_one_decoded_picture(simulator):
    events = await stream(simulator, "huge=4000000,tokens=5")

    reply = simulator.requests[0].reply
    uri = reply[reply.index("data:image/png;base64,"):-1]
    assert len(uri) > 4_000_000
    assert content(events) == reply.replace(uri, "picture:1")
    pictures = [e.picture for e in events if e.kind == "image"]
    assert len(pictures) == 1
    png = base64.b64decode(uri.removeprefix("data:image/png;base64,"), validate=True)
    assert pictures[0].read() == png and png.startswith(b"\x89PNG\r\n\x1a\n")


async def test_a_stream_without_finish_reason_reports_no_finish_but_keeps_usage(simulator):
    result = await collect(simulator, "cut_after=5,tokens=40")

    record = simulator.requests[0]
    assert result.finish_reason == ""
    assert result.content == "".join(tokenize(record.reply)[:5])
    assert result.usage == record.usage


async def test_a_one_api_stream_without_usage_or_finish_still_delivers_the_text(simulator):
    result = await collect(simulator, "no_usage,tokens=12")

    assert result.content == simulator.requests[0].reply
    assert result.finish_reason == ""
    assert result.usage is None


async def test_an_error_chunk_mid_stream_raises_with_the_relay_message(simulator):
    events, error = await stream_until_error(
        simulator, "error_after=3,tokens=20,message=upstream exploded")

    assert content(events) == "".join(tokenize(simulator.requests[0].reply)[:3])
    assert error.relay_message == "upstream exploded"
    assert error.code == "bad_response_status_code"
    assert "upstream exploded" in error.message
    assert "request id" not in error.message
    assert not error.retryable


async def test_an_error_chunk_before_any_text_is_not_retried(simulator):
    error = await failure(simulator, "error_after=0,code=do_request_failed,message=boom")

    assert error.relay_message == "boom"
    assert len(simulator.requests) == 1


# -- §5 error statuses --------------------------------------------------------------

STATUS_CASES = [
    # spec, status, code, relay message, words the user must read
    ("fail=400,code=prompt_blocked", 400, "prompt_blocked",
     "The prompt was blocked by the upstream safety filter", "safety filter blocked"),
    ("fail=400,code=model_price_error,message=模型 x 倍率或价格未配置", 400,
     "model_price_error", "模型 x 倍率或价格未配置", "no price set for this model"),
    ("fail=401,message=该令牌额度已用尽", 401, "", "该令牌额度已用尽",
     "your key has run out of quota"),
    ("fail=401,message=无效的令牌", 401, "", "无效的令牌", "the API key is not valid"),
    ("fail=403,code=insufficient_user_quota", 403, "insufficient_user_quota",
     "用户额度不足, 剩余额度: ＄0.012300", "not have enough quota"),
    ("fail=413", 413, "request_body_too_large", "request body too large",
     "too large for the relay"),
    ("fail=429", 429, "rate_limit_exceeded", "当前分组上游负载已饱和，请稍后再试",
     "wait a moment"),
    ("fail=500,code=convert_request_failed,message=mime type is not supported", 500,
     "convert_request_failed", "mime type is not supported", "media format"),
    ("fail=500,code=do_request_failed", 500, "do_request_failed",
     "upstream error: do request failed", "could not reach the upstream model"),
    ("fail=503,code=model_not_found", 503, "model_not_found",
     "当前分组 default 下对于模型 x 无可用渠道", "no channel"),
]


@pytest.mark.parametrize(
    ("spec", "status", "code", "relay_message", "words"), STATUS_CASES,
    ids=[case[0] for case in STATUS_CASES],
)
async def test_each_error_status_becomes_a_relay_error_in_plain_words(
    simulator, spec, status, code, relay_message, words
):
    error = await failure(simulator, spec, max_retries=0)

    assert error.status == status
    assert error.code == code
    assert error.relay_message == relay_message
    assert words in error.message
    assert relay_message in error.message
    assert "request id" not in error.message
    assert "Traceback" not in error.message and "{" not in error.message


async def test_an_exhausted_key_is_explained_with_the_relays_own_words(simulator):
    error = await failure(simulator, "fail=401,message=该令牌额度已用尽")

    assert error.message == (
        "The relay says your key has run out of quota (relay message: “该令牌额度已用尽”)."
    )
    assert len(simulator.requests) == 1


async def test_a_busy_group_is_not_mistaken_for_a_forbidden_model(simulator):
    error = await failure(simulator, "fail=429", max_retries=0)

    assert "not allowed" not in error.message
    assert "wait a moment" in error.message


async def test_an_empty_429_body_still_explains_the_rate_limit(simulator):
    error = await failure(simulator, "fail=429,empty", max_retries=0)

    assert error.status == 429
    assert error.relay_message == ""
    assert "rate-limiting" in error.message
    assert "empty" in error.message


async def test_an_html_page_from_a_proxy_is_summarised_not_dumped(simulator):
    error = await failure(simulator, "fail=502,html", max_retries=0)

    assert error.status == 502
    assert error.code == "html_response"
    assert "502 Bad Gateway" in error.message
    assert "web page" in error.message
    assert "<" not in error.message


async def test_a_plain_text_error_body_is_quoted(simulator):
    error = await failure(simulator, "fail=500,text", max_retries=0)

    assert error.status == 500
    assert error.relay_message.startswith("upstream connect error")
    assert "upstream connect error" in error.message
    assert error.message.startswith("The relay hit an internal error")


async def test_a_web_page_instead_of_a_reply_points_at_the_base_url(simulator):
    error = await failure(simulator, "web_page")

    assert error.status == 200
    assert "base URL" in error.message
    assert "New API" in error.message
    assert len(simulator.requests) == 1


def test_an_error_body_that_is_not_json_is_still_quoted():
    error = explain_error(400, b"{not json at all")

    assert error.relay_message == "{not json at all"
    assert error.status == 400


# -- §5 retries ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["flaky=2,fail=429", "flaky=2,fail=429,empty",
                                  "flaky=2,fail=500,code=do_request_failed",
                                  "flaky=2,fail=502,html", "flaky=2,fail=503"])
async def test_it_retries_429_and_5xx_before_the_first_token_then_succeeds(simulator, spec):
    result = await collect(simulator, f"{spec},tokens=5")

    assert len(simulator.requests) == 3
    assert result.content == simulator.requests[-1].reply
    assert result.finish_reason == "stop"


async def test_retries_back_off_longer_each_time(simulator):
    await collect(simulator, "flaky=3,tokens=2", backoff=0.1)

    times = [r.received_at for r in simulator.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39


async def test_a_retry_waits_as_long_as_the_relays_retry_after_asks(simulator):
    result = await collect(simulator, "flaky=1,fail=429,retry_after=1,tokens=2", backoff=0.01)

    first, second = (r.received_at for r in simulator.requests)
    assert second - first >= 0.95  # not the 0.01 s backoff
    assert result.finish_reason == "stop"


async def test_a_retry_after_too_long_to_wait_is_not_waited_but_told(simulator):
    started = time.monotonic()
    error = await failure(simulator, "flaky=5,fail=429,retry_after=600")

    assert time.monotonic() - started < 5
    assert len(simulator.requests) == 1
    assert error.status == 429
    assert "asks to wait 10 minutes before trying again" in error.message


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), (" 2.5 ", 2.5), ("", None), ("soon", None), ("-3", 0.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: no wait
])
def test_retry_after_headers_are_read_as_seconds(header, seconds):
    from conversations.relays.errors import retry_after_seconds

    assert retry_after_seconds(header) == seconds


def test_a_retry_after_date_in_the_future_is_seconds_from_now():
    from email.utils import format_datetime

    from conversations.relays.errors import retry_after_seconds

    when = datetime.now(UTC) + timedelta(seconds=120)
    assert 110 < retry_after_seconds(format_datetime(when, usegmt=True)) <= 120


async def test_it_gives_up_after_the_last_retry_and_says_how_often_it_tried(simulator):
    error = await failure(simulator, "flaky=10,fail=503", max_retries=2)

    assert len(simulator.requests) == 3
    assert error.status == 503
    assert "3 times" in error.message


async def test_convert_request_failed_is_never_retried(simulator):
    error = await failure(simulator, "flaky=5,fail=500,code=convert_request_failed")

    assert error.code == "convert_request_failed"
    assert not error.retryable
    assert len(simulator.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413])
async def test_4xx_is_never_retried(simulator, status):
    error = await failure(simulator, f"flaky=5,fail={status}")

    assert error.status == status
    assert len(simulator.requests) == 1


async def test_it_never_retries_after_the_first_token(simulator):
    events, error = await stream_until_error(simulator, "drop_after=3,tokens=30")

    assert content(events)
    assert "broke off" in error.message
    assert len(simulator.requests) == 1


# -- timeouts and broken connections --------------------------------------------


async def test_a_relay_that_stalls_before_the_first_token_times_out_on_time(simulator):
    started = time.monotonic()
    events, error = await stream_until_error(simulator, "stall", read_timeout=0.5)
    elapsed = time.monotonic() - started

    assert events == []
    assert error.code == "idle_timeout"
    assert "0.5 seconds" in error.message
    assert 0.45 <= elapsed < 1.5
    assert len(simulator.requests) == 1


async def test_a_relay_that_stalls_mid_reply_times_out_keeping_the_text(simulator):
    started = time.monotonic()
    events, error = await stream_until_error(
        simulator, "stall_after=4,tokens=30", read_timeout=0.5)
    elapsed = time.monotonic() - started

    assert content(events) == "".join(tokenize(simulator.requests[0].reply)[:4])
    assert error.code == "idle_timeout"
    assert 0.45 <= elapsed < 1.5


async def test_a_closed_port_gives_a_clear_connection_error():
    port = free_port()
    target = RelayTarget(base_url=f"http://127.0.0.1:{port}", api_key="k")
    started = time.monotonic()
    async with RelayClient(target, backoff=0.01, connect_timeout=1) as client:
        with pytest.raises(RelayError) as caught:
            await client.stream_collect(chat())

    assert time.monotonic() - started < 3
    assert caught.value.code == "connect_failed"
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "Check the address" in caught.value.message


async def test_a_connection_dropped_mid_stream_breaks_off_after_the_partial_text(simulator):
    events, error = await stream_until_error(simulator, "drop_after=5,tokens=40")

    assert content(events) == "".join(tokenize(simulator.requests[0].reply)[:5])
    assert error.code == "connection_lost"
    assert "broke off" in error.message
    assert len(simulator.requests) == 1


# -- §4 non-streaming ---------------------------------------------------------------


async def test_complete_chat_reads_an_answer_shaped_like_seed_000(simulator):
    request = seed_request("000")
    assert request["steam"] is False

    async with make_client(simulator) as client:
        result = await client.complete_chat(request)

    record = simulator.requests[0]
    assert record.body["stream"] is False and "steam" not in record.body
    assert result.content == record.reply
    assert result.finish_reason == "stop"
    assert result.usage == record.usage
    assert set(result.usage) == set(seed_answer("000")["usage"])


async def test_complete_chat_reads_seed_001s_own_answer(simulator):
    # The seed's answer itself, served by a stub relay, is read as the seed says.
    seed = seed_answer("001")
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=seed))
    target = RelayTarget(base_url="http://relay.test", api_key="k")
    async with RelayClient(target, transport=transport) as client:
        result = await client.complete_chat(seed_request("001"))

    assert result.content == seed["choices"][0]["message"]["content"]
    assert result.usage == seed["usage"]
    assert result.usage["prompt_tokens_details"]["audio_tokens"] == 399
    assert result.finish_reason == "stop"


async def test_complete_chat_collects_openrouter_message_images(simulator):
    async with make_client(simulator) as client:
        result = await client.complete_chat(chat("images,huge=3000,tokens=4"))

    record = simulator.requests[0]
    assert [p.read() for p in result.images] == [
        base64.b64decode(record.images[0].removeprefix("data:image/png;base64,"))]
    assert result.content == record.reply + "\n\n![image](picture:1)\n\n"


async def test_complete_chat_turns_markdown_data_uri_images_into_pictures(simulator):
    async with make_client(simulator) as client:
        result = await client.complete_chat(chat("huge=3000,tokens=4"))

    reply = simulator.requests[0].reply
    uri = reply[reply.index("data:image/png;base64,"):-1]
    assert result.content == reply.replace(uri, "picture:1")
    assert [p.read() for p in result.images] == [
        base64.b64decode(uri.removeprefix("data:image/png;base64,"))]


async def test_complete_chat_keeps_reasoning_content(simulator):
    async with make_client(simulator) as client:
        result = await client.complete_chat(chat("reasoning,tokens=4"))

    assert result.reasoning == REASONING
    assert result.content == simulator.requests[0].reply


async def test_complete_chat_explains_errors_like_streaming_does(simulator):
    async with make_client(simulator) as client:
        with pytest.raises(RelayError) as caught:
            await client.complete_chat(chat("fail=401,message=该令牌额度已用尽"))

    assert caught.value.status == 401
    assert "run out of quota" in caught.value.message
    assert len(simulator.requests) == 1


async def test_a_json_answer_to_a_streaming_request_is_read_as_a_whole_reply(simulator):
    events = await stream(simulator, "plain_json,tokens=8")

    record = simulator.requests[0]
    assert record.body["stream"] is True
    assert content(events) == record.reply
    assert StreamEvent("finish", text="stop") in events
    assert events[-1] == StreamEvent("usage", usage=record.usage)


# -- models and pricing -------------------------------------------------------------


async def test_list_models_reads_get_v1_models(simulator):
    async with make_client(simulator) as client:
        models = await client.list_models()

    assert models == [m["id"] for m in SIMULATED_MODELS]


async def test_fetch_pricing_reads_new_apis_api_pricing(simulator):
    async with make_client(simulator) as client:
        pricing = await client.fetch_pricing()

    assert pricing["success"] is True
    names = {row["model_name"] for row in pricing["data"]}
    assert names == {m["id"] for m in SIMULATED_MODELS}


async def test_a_base_url_ending_in_v1_reaches_the_same_endpoints(simulator):
    target = RelayTarget(base_url=f"{simulator.url}/v1/", api_key="k")
    async with RelayClient(target, backoff=0.01) as client:
        models = await client.list_models()
        pricing = await client.fetch_pricing()
        await client.stream_collect(chat("tokens=2"))

    assert models and pricing["success"]
    assert simulator.requests[0].path == "/v1/chat/completions"


# -- the key stays secret --------------------------------------------------------------


def test_the_api_key_never_appears_in_the_targets_repr():
    target = RelayTarget(base_url="https://relay.example/v1", api_key="sk-topsecret42")

    assert "sk-topsecret42" not in repr(target)
    assert "sk-topsecret42" not in str(target)
    assert "relay.example" in repr(target)


@pytest.mark.parametrize("spec", [
    "fail=401,message=令牌 sk-topsecret42 已过期",
    "error_after=2,message=bad key sk-topsecret42",
    "fail=500,text",
    "drop_after=2",
    "stall",
])
async def test_the_api_key_never_appears_in_relay_errors(simulator, spec):
    error = await failure(simulator, spec, api_key="sk-topsecret42", read_timeout=0.3,
                          max_retries=0)

    for text in (error.message, error.relay_message, str(error), repr(error)):
        assert "sk-topsecret42" not in text


async def test_the_api_key_never_appears_in_a_connection_error():
    target = RelayTarget(base_url=f"http://127.0.0.1:{free_port()}", api_key="sk-topsecret42")
    async with RelayClient(target, max_retries=0) as client:
        with pytest.raises(RelayError) as caught:
            await client.list_models()

    assert "sk-topsecret42" not in caught.value.message
