"""The Content-Security-Policy as a browser enforces it: every page works with it.

Chromium reports each blocked script, style, picture or socket on the console;
a page that needed anything inline or from elsewhere would show it there.
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, sign_in, start_chat

PICTURE = "Gemini 2.5 Flash Image (simulated)"


def _watch_violations(page: Page) -> list[str]:
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text)
            if "Content Security Policy" in message.text else None)
    return seen


def test_every_page_carries_the_policy(live_app):
    response = httpx.get(f"{live_app.url}/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "'unsafe-inline'" not in policy and "data:" not in policy
    assert f"ws://127.0.0.1:{live_app.port}" in policy


def test_a_reply_with_a_picture_streams_under_the_policy_with_nothing_blocked(
    page: Page, live_app
):
    violations = _watch_violations(page)
    sign_in(page, live_app)
    start_chat(page, live_app, PICTURE, "Draw me something")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    # The picture is a stored file shown by its own URL, allowed by img-src 'self'.
    picture = reply.locator("img[alt^='Picture 1']")
    expect(picture).to_have_count(1)
    assert picture.evaluate("img => img.complete && img.naturalWidth > 0")
    page.reload()
    expect(last_reply(page).locator("img[alt^='Picture 1']")).to_have_count(1)
    for path in ["/c/new/", "/costs/", "/people/", "/account/password/", "/admin/",
                 "/admin/conversations/relay/add/"]:
        page.goto(f"{live_app.url}{path}")
        page.wait_for_load_state("networkidle")
    assert violations == []
    # The watch sees what the policy refuses: a data: picture outside a conversation.
    page.evaluate("() => { const i = new Image(); i.src = 'data:image/gif;base64,"
                  "R0lGODlhAQABAAAAACwAAAAAAQABAAA='; document.body.append(i); }")
    page.wait_for_timeout(500)
    assert any("img-src" in v for v in violations), violations


SLOWISH = "Five-second answer (simulated)"


def test_a_message_over_10_mb_is_refused_in_words_under_the_composer(page: Page, live_app):
    live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "relay = Relay.objects.get(is_simulated=True, name='Relay simulator')\n"
        "ChatModel.objects.get_or_create(relay=relay, model_id='gemini-2.5-flash@tokens=40,rate=8',"
        f" defaults={{'display_name': '{SLOWISH}'}})\n"
    )
    sign_in(page, live_app)
    start_chat(page, live_app, SLOWISH, "A first message")
    page.evaluate("() => { document.querySelector('#id_text').value ="
                  " 'x'.repeat(10 * 1024 * 1024 + 1); }")
    page.get_by_role("button", name="Send").click()
    too_long = "This message is too long to send: its text and settings can be at most 10 MB"
    expect(page.locator("#composer-error")).to_contain_text(too_long, timeout=REPLY_TIMEOUT)
    # The first reply ending (it may still be streaming) does not take the error away.
    expect(page.get_by_role("button", name="Stop")).to_have_count(0, timeout=REPLY_TIMEOUT)
    expect(page.locator("#composer-error")).to_contain_text(too_long)
    expect(page.locator("article.message-user")).to_have_count(1)


LONG = "Long answer for the network test (simulated)"
REPLY_TEXT_JS = ("document.querySelector(\"article.message-assistant:last-of-type"
                 " div.md[id$='-text']\")")


@pytest.fixture(scope="module")
def _long_model(live_app):
    live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "relay = Relay.objects.get(is_simulated=True, name='Relay simulator')\n"
        "ChatModel.objects.get_or_create(relay=relay,"
        " model_id='gemini-2.5-flash@tokens=400,rate=10',"
        f" defaults={{'display_name': '{LONG}'}})\n"
    )


def test_a_page_whose_network_returns_reconnects_within_2_s_and_catches_up(
    page: Page, live_app, _long_model
):
    sign_in(page, live_app)
    start_chat(page, live_app, LONG, "Keep talking")
    text = last_reply(page).locator("div.md[id$='-text']")
    expect(text).not_to_be_empty(timeout=REPLY_TIMEOUT)
    status = page.locator("#connection-status")

    page.context.set_offline(True)
    expect(status).to_be_visible(timeout=10_000)
    expect(status).to_contain_text("offline")
    page.wait_for_timeout(8_000)  # long enough for htmx's default delay to have grown
    shown_offline = len(text.inner_text())

    page.context.set_offline(False)
    expect(status).to_be_hidden(timeout=2_000)
    # The current state arrives with the connection: what was written meanwhile.
    page.wait_for_function(f"n => {REPLY_TEXT_JS}.innerText.length > n + 40",
                           arg=shown_offline, timeout=2_000)


def test_a_socket_the_network_drops_comes_back_by_itself_with_retries_capped_at_2_s(
    page: Page, live_app, _long_model
):
    live = []

    def route(ws):  # between the page and the server, so the test can drop the socket
        ws.connect_to_server()
        live.append(ws)

    page.route_web_socket(re.compile(r".*/ws/conversations/.*"), route)
    sign_in(page, live_app)
    start_chat(page, live_app, LONG, "Keep talking")
    text = last_reply(page).locator("div.md[id$='-text']")
    expect(text).not_to_be_empty(timeout=REPLY_TIMEOUT)
    status = page.locator("#connection-status")

    for ws in live:
        ws.close(code=1011, reason="dropped")  # an abnormal close: the page retries
    expect(status).to_be_visible(timeout=2_000)
    shown = len(text.inner_text())
    expect(status).to_be_hidden(timeout=2_500)
    page.wait_for_function(f"n => {REPLY_TEXT_JS}.innerText.length > n", arg=shown,
                           timeout=2_000)
    # However many retries failed before (a long outage), the next waits at most 2 s.
    delays = page.evaluate("() => [0, 1, 2, 3, 5, 8, 20, 100]"
                           ".map(n => htmx.config.wsReconnectDelay(n))")
    assert all(0 < d <= 2000 for d in delays), delays


def test_a_page_that_reconnects_hands_back_its_stamp_and_keeps_its_messages(
    page: Page, live_app
):
    """After a catch-up the page keeps the consumer's stamp; anything the socket
    brings later drops it. Reconnecting with it, a page that has every message
    is sent the stamp alone, and shows what it showed."""
    urls: list[str] = []
    live = []

    def route(ws):
        urls.append(ws.url)
        ws.connect_to_server()
        live.append(ws)

    page.route_web_socket(re.compile(r".*/ws/conversations/.*"), route)
    sign_in(page, live_app)
    start_chat(page, live_app, "Gemini 2.5 Flash (simulated)", "Hand back the stamp")
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    marker = page.locator("#catch-up-stamp")
    # The reply's frames and its end came after the first catch-up: no stamp kept.
    expect(marker).not_to_have_attribute("data-stamp", re.compile("."))
    messages = page.locator("#message-list > article")
    shown = (messages.count(), page.locator("#message-list").inner_text())
    status = page.locator("#connection-status")

    for attempt in range(2):
        for ws in live:
            ws.close(code=1011, reason="dropped")
        live.clear()
        expect(status).to_be_visible(timeout=2_000)
        expect(status).to_be_hidden(timeout=5_000)
        expect(marker).to_have_attribute("data-stamp", re.compile(r"^[0-9a-f]{24}$"))
        assert ("seen=" in urls[-1]) == (attempt == 1), urls
    assert f"seen={marker.get_attribute('data-stamp')}" in urls[-1]
    assert (messages.count(), page.locator("#message-list").inner_text()) == shown
    expect(reply).to_contain_text("Hand back the stamp")
