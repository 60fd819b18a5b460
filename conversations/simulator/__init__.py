"""A relay simulator: a real OpenAI-compatible HTTP server (plain ASGI).

It stands in for a new-api relay in the demo and the tests. It streams at a
configurable token rate, shapes chunks and usage as new-api does, answers
honestly about what it received, records every request, and can be told per
request to fail in each way PROTOCOL.md §5 lists.

Behaviour is chosen per request by the `X-Sim` header or by the part of the
model id after `@` (so a model in the picker can fail on purpose), as a
comma-separated list, e.g. `gemini-2.5-flash@fail=401,message=该令牌额度已用尽`:

    fail=STATUS     answer STATUS with a new-api error body (code=, message=)
    empty           with fail=: an empty body
    html            with fail=: an HTML page from a "proxy"
    web_page        a 200 web page instead of an answer (a base URL that misses the API)
    text            with fail=: a plain-text body (an Envoy-style proxy message)
    flaky=N         fail (fail=, default 503) the first N times for this model, then work
    retry_after=S   with fail= or flaky=: send a `Retry-After: S` header with the failure
    stall           send headers and a role chunk, then nothing
    stall_after=N   stall after N content chunks
    cut_after=N     after N content chunks: usage + [DONE], no finish_reason
    error_after=N   after N content chunks: an {"error": …} chunk
    drop_after=N    after N content chunks: close the connection
    huge=BYTES      one delta carrying a markdown image data URI of about BYTES
    no_usage        one-api style: no usage chunk and no finish_reason
    reasoning       stream reasoning_content before the answer
    rate=N          N tokens a second (0 = as fast as possible)
    tokens=N        the answer's length in tokens (an echo + filler text)
    finish=REASON   finish_reason to send (default stop)
    finish_chunk    send finish_reason on its own chunk with an empty delta
    usage_every     repeat a running usage on every chunk (the last one is final)
    images          send a generated image (of huge= size) in `images[]` (OpenRouter)
    picture         answer as an image model (on for any model id with "-image"): a real
                    PNG of extra_body.google.image_config's aspect ratio and size class,
                    padded with noise so its data URI is about huge= characters
    ignore_image_config  with picture: 1:1 at 1K whatever was asked (new-api #2470)
    split=N         a picture's data URI cut across N deltas
    plain_json      answer a streaming request with a plain JSON completion
    linger          keep the connection open after `[DONE]`
    bench           every token is its own send time: ⟦monotonic⟧
    paragraph=N     with bench: a blank line after every N tokens (0: one paragraph)
    newapi          behave like new-api with media: drop `audio_url` and `video_url` objects
                    silently; 500 convert_request_failed for a type Gemini refuses
                    (video/quicktime, ogg, webm, …). Also on for base URLs ending /newapi
    substitute=ID   answer as model ID (the `model` field), whatever was asked. Base URLs
                    ending /substitutes answer every request as gemini-2.5-flash-lite

Beside chat it serves GET /v1/models, new-api's /api/pricing and its billing routes
/v1/dashboard/billing/subscription and /usage (404 under a base URL ending /nobilling).

A request's `max_tokens` cuts the answer there, with finish_reason `length`.

An unknown key or a malformed value is answered with HTTP 400, so a typo in a
test cannot silently turn into an ordinary reply.

Run on its own with `python manage.py relaysim` or `python -m conversations.simulator`.

Production code never imports this package: chatsite/asgi.py mounts it only
when SIMULATOR_ENABLED, and the relay setup names its models by id alone. The
mounted instance answers only the install's own key (derived from SECRET_KEY,
held by the simulated relay row) and records nothing; the request log at
/_sim/requests exists only in a standalone simulator started with `--log`
(benchmarks) and, as `Simulator.requests`, in tests.

    behaviour.py  the spec a request carries, canned words and error bodies
    pictures.py   the PNGs the simulated image models make
    received.py   what arrived: content parts described, new-api's drops, links
    billing.py    the key's limit and usage, as new-api's billing routes give them
    app.py        the ASGI app: chat completions, models, pricing, the request log
"""
