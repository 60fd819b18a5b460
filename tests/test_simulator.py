"""The relay simulator, spoken to with plain HTTP: is it a faithful new-api?

These tests read the bytes it puts on the wire, so the relay client's tests
(tests/test_relay_client.py) can trust what they compare against.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from conversations.simulator.behaviour import Behaviour, tokenize

SEEDS = Path("/work/shared/relay/seeds")
AUTH = {"Authorization": "Bearer k"}


def post(simulator, body: dict, *, headers: dict | None = None, **options) -> httpx.Response:
    return httpx.post(f"{simulator.url}/v1/chat/completions", json=body,
                      headers=AUTH if headers is None else headers, timeout=10, **options)


def chat(spec: str = "", text: str = "Hello relay", *, stream: bool = True, **extra) -> dict:
    model = f"gemini-2.5-flash@{spec}" if spec else "gemini-2.5-flash"
    return {"model": model, "messages": [{"role": "user", "content": text}],
            "stream": stream, **extra}


def sse_lines(response: httpx.Response) -> list[str]:
    return response.text.split("\n")


def data_chunks(response: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in sse_lines(response) if line.startswith("data: {")]


def streamed_text(response: httpx.Response) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in data_chunks(response) if c["choices"])


def seed_answer(prefix: str) -> dict:
    text = next(SEEDS.glob(f"{prefix}_*.txt")).read_text()
    return json.loads(text[text.index('{\n"id"'):])


# -- recording and honesty ---------------------------------------------------------


def test_it_records_every_chat_request_with_its_headers_and_body(simulator):
    body = chat(text="记录我", temperature=0.3)
    post(simulator, body, headers={**AUTH, "X-Trace": "t1"})
    post(simulator, chat(text="second"))

    first, second = simulator.requests
    assert first.body == body and first.method == "POST"
    assert first.path == "/v1/chat/completions"
    assert first.headers["x-trace"] == "t1"
    assert first.headers["authorization"] == "Bearer k"
    assert second.body["messages"][0]["content"] == "second"
    assert first.received_at <= second.received_at


def test_it_answers_401_without_a_key(simulator):
    response = post(simulator, chat(), headers={})

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"].startswith("无效的令牌 (request id: ")
    assert error["type"] == "new_api_error"


def test_it_echoes_the_users_text(simulator):
    response = post(simulator, chat(text="What colour is the sky?"))

    assert streamed_text(response).startswith("You said: What colour is the sky?")
    assert streamed_text(response) == simulator.requests[0].reply


def test_its_usage_is_derived_from_what_it_received_and_sent(simulator):
    short = data_chunks(post(simulator, chat("tokens=10", text="hi")))[-1]["usage"]
    long_text = "a fairly long question about many things " * 20
    long = data_chunks(post(simulator, chat("tokens=25", text=long_text)))[-1]["usage"]

    assert long["prompt_tokens"] > short["prompt_tokens"] + 150
    assert short["completion_tokens"] == 10 and long["completion_tokens"] == 25
    for usage in (short, long):
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens_details"]["text_tokens"] == usage["prompt_tokens"]


def test_it_streams_at_the_rate_it_is_told(simulator):
    started = time.monotonic()
    response = post(simulator, chat("rate=40,tokens=20"))
    elapsed = time.monotonic() - started

    assert len([c for c in data_chunks(response) if c["choices"]]) == 21  # role + 20 tokens
    assert 0.4 <= elapsed < 1.2  # 19 gaps of 1/40 s


def test_its_default_token_rate_applies_when_none_is_given(simulator):
    simulator.sim.token_rate = 100
    started = time.monotonic()
    post(simulator, chat("tokens=21"))

    assert 0.18 <= time.monotonic() - started < 1.0


# -- the shape of what it sends -----------------------------------------------------


def test_its_stream_is_shaped_like_new_apis(simulator):
    response = post(simulator, chat("tokens=5"))

    assert response.headers["content-type"].startswith("text/event-stream")
    lines = sse_lines(response)
    assert lines[0] == ": PING"
    assert lines[-3:] == ["data: [DONE]", "", ""]
    chunks = data_chunks(response)
    keys = {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"}
    assert all(set(c) == keys for c in chunks)
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "gemini-2.5-flash" for c in chunks)
    role, *deltas, usage = chunks
    assert role["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                "logprobs": None, "finish_reason": None}]
    assert all(c["usage"] is None for c in [role, *deltas])
    assert [c["choices"][0]["finish_reason"] for c in deltas] == [None] * 4 + ["stop"]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5


def test_its_usage_has_exactly_the_keys_seed_000_shows(simulator):
    seed_000 = seed_answer("000")["usage"]
    seed_001 = seed_answer("001")["usage"]
    usage = data_chunks(post(simulator, chat("tokens=3")))[-1]["usage"]

    assert set(usage) == set(seed_000)
    assert set(usage) <= set(seed_001)
    for key in ("prompt_tokens_details", "completion_tokens_details"):
        assert set(usage[key]) == set(seed_000[key])
    assert usage["input_tokens_details"] is None


def test_its_non_streaming_answer_is_shaped_like_the_seeds(simulator):
    answer = post(simulator, chat("tokens=4", stream=False)).json()
    seed = seed_answer("001")

    assert set(answer) == set(seed)
    assert answer["object"] == "chat.completion"
    assert set(answer["choices"][0]) == set(seed["choices"][0])
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert set(answer["usage"]) == set(seed_answer("000")["usage"])


def test_its_error_bodies_are_new_api_shaped(simulator):
    response = post(simulator, chat("fail=403,code=insufficient_user_quota"))

    assert response.status_code == 403
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "insufficient_user_quota"
    assert error["type"] == "new_api_error" and error["param"] == ""
    assert "(request id: " in error["message"]


# -- behaviours ------------------------------------------------------------------------


def test_behaviour_comes_from_the_model_suffix_or_the_x_sim_header(simulator):
    by_model = post(simulator, chat("fail=429"))
    by_header = post(simulator, chat(), headers={**AUTH, "X-Sim": "fail=418"})

    assert by_model.status_code == 429
    assert by_header.status_code == 418


def test_an_unknown_behaviour_is_answered_400_not_ignored(simulator):
    response = post(simulator, chat("fial=401"))

    assert response.status_code == 400
    assert "fial" in response.json()["error"]["message"]


def test_a_malformed_behaviour_value_is_answered_400(simulator):
    response = post(simulator, chat("tokens=many"))

    assert response.status_code == 400
    assert "tokens" in response.json()["error"]["message"]


def test_behaviour_values_are_url_decoded():
    behaviour = Behaviour.parse("fail=500,message=a%2Cb,rate=2.5,no_usage,reasoning=0")

    assert behaviour.fail == 500 and behaviour.message == "a,b" and behaviour.rate == 2.5
    assert behaviour.no_usage is True and behaviour.reasoning is False


def test_flaky_fails_n_times_then_works(simulator):
    statuses = [post(simulator, chat("flaky=2,fail=429,tokens=2")).status_code
                for _ in range(4)]

    assert statuses == [429, 429, 200, 200]


@pytest.mark.parametrize(("spec", "content_type", "start"), [
    ("fail=429,empty", "text/plain", ""),
    ("fail=502,html", "text/html", "<html>"),
    ("fail=500,text", "text/plain", "upstream connect error"),
])
def test_it_fails_with_the_bodies_proxies_send(simulator, spec, content_type, start):
    response = post(simulator, chat(spec))

    assert response.headers["content-type"].startswith(content_type)
    assert response.text.startswith(start)
    assert bool(response.text) == bool(start)


def test_cut_after_sends_usage_and_done_but_no_finish_reason(simulator):
    response = post(simulator, chat("cut_after=3,tokens=10"))

    chunks = data_chunks(response)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks if c["choices"])
    assert chunks[-1]["usage"] is not None
    assert "data: [DONE]" in sse_lines(response)
    assert streamed_text(response) == "".join(tokenize(simulator.requests[0].reply)[:3])


def test_no_usage_sends_neither_usage_nor_finish_reason(simulator):
    chunks = data_chunks(post(simulator, chat("no_usage,tokens=6")))

    assert all(c["usage"] is None for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_error_after_sends_an_error_chunk_then_done(simulator):
    response = post(simulator, chat("error_after=2,message=boom"))

    chunks = data_chunks(response)
    assert chunks[-1]["error"]["message"].startswith("boom (request id:")
    assert sse_lines(response)[-3] == "data: [DONE]"


def test_drop_after_breaks_the_connection_mid_stream(simulator):
    with pytest.raises(httpx.RemoteProtocolError):
        post(simulator, chat("drop_after=3,tokens=10"))


def test_stall_sends_the_role_chunk_then_nothing(simulator):
    received: list[str] = []
    with httpx.stream("POST", f"{simulator.url}/v1/chat/completions", json=chat("stall"),
                      headers=AUTH, timeout=httpx.Timeout(5, read=0.4)) as response:
        with pytest.raises(httpx.ReadTimeout):
            for line in response.iter_lines():
                received.append(line)

    data_lines = [line for line in received if line.startswith("data:")]
    assert len(data_lines) == 1 and '"role": "assistant"' in data_lines[0]


def test_huge_sends_the_image_as_one_sse_line(simulator):
    response = post(simulator, chat("huge=2000000,tokens=3"))

    image_lines = [line for line in sse_lines(response) if "data:image/png" in line]
    assert len(image_lines) == 1 and len(image_lines[0]) > 2_000_000
    assert streamed_text(response) == simulator.requests[0].reply


def test_images_come_in_an_openrouter_images_list_not_the_text(simulator):
    answer = post(simulator, chat("images,tokens=3", stream=False)).json()

    message = answer["choices"][0]["message"]
    assert message["images"][0]["type"] == "image_url"
    assert message["images"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "data:image" not in message["content"]


def test_plain_json_answers_a_streaming_request_without_sse(simulator):
    response = post(simulator, chat("plain_json,tokens=3"))

    assert response.headers["content-type"] == "application/json"
    assert response.json()["object"] == "chat.completion"


def test_models_and_pricing_are_served(simulator):
    models = httpx.get(f"{simulator.url}/v1/models", headers=AUTH).json()
    pricing = httpx.get(f"{simulator.url}/api/pricing").json()

    assert models["object"] == "list" and models["data"][0]["id"] == "gemini-2.5-flash"
    assert pricing["success"] is True and pricing["group_ratio"] == {"default": 1}


def test_it_serves_new_apis_billing_routes_limit_in_dollars_usage_in_cents(simulator):
    post(simulator, {"model": "gemini-2.5-flash-lite",
                     "messages": [{"role": "user", "content": "hello " * 50}]})
    usage = simulator.requests[-1].usage
    limit = httpx.get(f"{simulator.url}/v1/dashboard/billing/subscription").json()
    used = httpx.get(f"{simulator.url}/v1/dashboard/billing/usage",
                     params={"start_date": "2026-01-01", "end_date": "2026-12-31"}).json()
    assert limit["hard_limit_usd"] == 100.0
    # new-api quota (ratio 0.05, completion ratio 4) → relay dollars → cents
    quota = round((usage["prompt_tokens"] + usage["completion_tokens"] * 4) * 0.05)
    assert used["total_usage"] == pytest.approx(quota / 500_000 * 100)
    missing = httpx.get(f"{simulator.url}/nobilling/v1/dashboard/billing/subscription")
    assert missing.status_code == 404


def test_it_answers_as_another_model_when_told_to_substitute(simulator):
    body = {"model": "gemini-2.5-pro", "messages": [{"role": "user", "content": "hi"}]}
    assert post(simulator, {**body, "model": "gemini-2.5-pro@substitute=gpt-4o-mini"}
                ).json()["model"] == "gpt-4o-mini"
    family = httpx.post(f"{simulator.url}/substitutes/v1/chat/completions", json=body,
                        headers={"Authorization": "Bearer sk"})
    assert family.json()["model"] == "gemini-2.5-flash-lite"
    assert post(simulator, body).json()["model"] == "gemini-2.5-pro"


def test_it_cuts_the_answer_at_max_tokens_and_says_length(simulator):
    answer = post(simulator, chat(stream=False, max_tokens=3)).json()
    assert len(tokenize(answer["choices"][0]["message"]["content"])) == 3
    assert answer["choices"][0]["finish_reason"] == "length"
