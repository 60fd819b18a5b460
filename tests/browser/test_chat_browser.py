"""What a person sees: a real Chromium against `manage.py serve` and its relay simulator.

The simulator streams at 25 tokens a second here; models whose id carries
`@rate=` or `@tokens=` make a reply slow or long enough to reload, open a
second tab or press Stop while it is still being written.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    REPLY_TIMEOUT,
    last_reply,
    message_box,
    pick_model,
    sign_in,
    start_chat,
)

SLOW = "Slow answer (simulated)"  # ~76 tokens at 8 a second: about 10 s
LONG = "Long answer (simulated)"  # 600 tokens at 10 a second: a minute, never awaited
WORKING = "Gemini 2.5 Flash (simulated)"
OUT_OF_QUOTA = "Out-of-quota key (simulated failure)"
END_OF_ANSWER = "That is the end of the simulated answer."
LIVE_TEXT_TIMEOUT = 2_000  # ms: "at once" after a reload or in a new tab


@pytest.fixture(scope="module", autouse=True)
def _models(live_app):
    live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "relay = Relay.objects.get(is_simulated=True)\n"
        f"ChatModel.objects.get_or_create(relay=relay, model_id='gemini-2.5-flash@rate=8',"
        f" defaults={{'display_name': '{SLOW}'}})\n"
        f"ChatModel.objects.get_or_create(relay=relay,"
        f" model_id='gemini-2.5-flash@tokens=600,rate=10', defaults={{'display_name': '{LONG}'}})\n"
    )


def _reply_text(page: Page):
    return last_reply(page).locator("div.md[id$='-text']")


def _length(locator) -> int:
    return len(locator.inner_text())


def _wait_until_longer_than(page: Page, locator, chars: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        length = _length(locator)
        if length > chars:
            return length
        page.wait_for_timeout(100)
    raise AssertionError(f"the reply did not grow past {chars} characters in {timeout}s")


def test_a_person_picks_a_model_and_parameters_and_watches_the_answer_stream(page, live_app):
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, SLOW)
    page.get_by_text("Parameters and system prompt").click()  # one click away
    page.get_by_label("Temperature").fill("0.4")
    page.get_by_label("Top P").fill("0.9")
    page.get_by_label("Max tokens").fill("2000")
    box = message_box(page)
    box.fill("Tell me about relays")
    box.press("Shift+Enter")
    box.press_sequentially("in two lines")
    assert box.input_value() == "Tell me about relays\nin two lines"  # Shift+Enter: no send
    assert "/c/new/" in page.url

    box.press("Enter")

    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    expect(page.locator("#conversation-title")).to_have_text("Tell me about relays in two lines")
    expect(page).to_have_title(re.compile("^Tell me about relays in two lines"))
    expect(page.locator("article.message-user").last).to_contain_text(
        "Tell me about relays\nin two lines", use_inner_text=True)
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    text = _reply_text(page)
    first = _wait_until_longer_than(page, text, 0)
    later = _wait_until_longer_than(page, text, first + 20)
    assert later > first
    expect(stop).to_be_visible()  # it grew while the reply was still being written
    expect(text).not_to_contain_text(END_OF_ANSWER)

    expect(text).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(stop).to_have_count(0)
    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reply.locator("strong", has_text="Markdown")).to_be_visible()  # live markdown
    expect(reply.locator("pre.highlight code.language-python .k").first).to_have_text("def")
    expect(reply.get_by_role("button", name="Copy", exact=True)).to_be_visible()
    expect(message_box(page)).to_be_focused()

    page.locator("summary", has_text="Settings").click()
    expect(page.get_by_label("Temperature")).to_have_value("0.4")
    expect(page.get_by_label("Top P")).to_have_value("0.9")
    expect(page.get_by_label("Max tokens")).to_have_value("2000")
    expect(page.get_by_label("Model", exact=True)).to_have_value(re.compile(r"\d+"))
    expect(page.locator("#model-label")).to_contain_text(SLOW)


def test_reloading_mid_stream_shows_the_text_so_far_at_once_and_keeps_streaming(page,
                                                                                live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, SLOW, "Reload while you write")
    so_far = _wait_until_longer_than(page, _reply_text(page), 60)

    page.reload()

    expect(page.get_by_role("button", name="Stop")).to_be_visible(timeout=LIVE_TEXT_TIMEOUT)
    page.wait_for_function(
        "n => { const el = [...document.querySelectorAll('article.message-assistant')].pop()"
        "?.querySelector('div.md[id$=\"-text\"]'); return el && el.innerText.length >= n; }",
        arg=so_far, timeout=LIVE_TEXT_TIMEOUT,
    )
    expect(_reply_text(page)).to_contain_text("You said: Reload while you write")
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    # Every block arrived exactly once: nothing duplicated by the catch-up.
    assert _reply_text(page).inner_text().count("You said:") == 1
    assert _reply_text(page).inner_text().count(END_OF_ANSWER) == 1


def test_a_second_tab_opened_mid_stream_sees_the_same_reply_continue(page, live_app):
    sign_in(page, live_app)
    url = start_chat(page, live_app, SLOW, "Two tabs please")
    _wait_until_longer_than(page, _reply_text(page), 30)

    second = page.context.new_page()
    second.goto(url)

    expect(second.get_by_role("button", name="Stop")).to_be_visible(timeout=LIVE_TEXT_TIMEOUT)
    expect(_reply_text(second)).to_contain_text("You said: Two tabs please",
                                                timeout=LIVE_TEXT_TIMEOUT)
    expect(_reply_text(second)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    # Live frames, before the reply's final copy replaces them, are in order too.
    assert _reply_text(second).inner_text().index("You said:") == 0
    for tab in (page, second):
        expect(tab.get_by_role("button", name="Stop")).to_have_count(0, timeout=REPLY_TIMEOUT)
    assert _reply_text(second).inner_text() == _reply_text(page).inner_text()
    second.close()


def test_blocks_that_arrive_out_of_order_are_shown_in_order(page, live_app):
    """A tab that joins mid-reply gets the open block live before the snapshot
    brings the earlier ones: each block lands in its place, once."""
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/c/new/")
    shown = page.evaluate("""() => {
      const box = document.createElement('div');
      box.id = 'm999999-text';
      document.querySelector('main').appendChild(box);
      const frame = numbers => '<div hx-swap-oob="beforeend:#m999999-text" data-upsert>' +
        numbers.map(n => `<div class="md-block" id="m999999-t${n}">b${n}</div>`).join('') +
        '</div>';
      htmx.swap(box, frame([3]), {swapStyle: 'none'});
      htmx.swap(box, frame([0, 1, 2, 3]), {swapStyle: 'none'});
      htmx.swap(box, frame([4, 1]), {swapStyle: 'none'});
      return [...box.children].map(c => c.textContent).join(' ');
    }""")
    assert shown == "b0 b1 b2 b3 b4"


def test_stop_keeps_what_arrived_even_after_a_reload(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, LONG, "Go on for a while")
    text = _reply_text(page)
    _wait_until_longer_than(page, text, 80)
    message_box(page).fill("Too soon")
    message_box(page).press("Enter")
    expect(page.locator("#composer-error")).to_have_text(
        re.compile("Wait for the current reply to finish"))
    expect(message_box(page)).to_have_value("Too soon")  # a refused message is not lost

    page.get_by_role("button", name="Stop").click()

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "cancelled", timeout=5_000)
    expect(reply.locator(".badge", has_text="stopped")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_have_count(0)
    expect(reply.get_by_role("button", name="Retry")).to_be_visible()
    expect(page.locator("#composer-error")).to_have_count(0)  # no longer true, so gone
    kept = text.inner_text()
    assert len(kept) > 80
    page.wait_for_timeout(800)
    assert text.inner_text() == kept  # nothing more arrives after Stop

    page.reload()

    expect(last_reply(page)).to_have_attribute("data-status", "cancelled")
    assert _reply_text(page).inner_text() == kept
    expect(message_box(page)).to_be_enabled()


def test_a_relay_error_reads_in_plain_words_and_retry_works_after_switching_model(page,
                                                                                  live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, OUT_OF_QUOTA, "Will this work?")

    reply = last_reply(page)
    expect(reply).to_have_attribute("data-status", "failed", timeout=REPLY_TIMEOUT)
    expect(reply.get_by_role("alert")).to_contain_text("your key has run out of quota")
    expect(reply.locator(".badge", has_text="failed")).to_be_visible()
    retry = reply.get_by_role("button", name="Retry")
    expect(retry).to_be_visible()

    page.locator("summary", has_text="Settings").click()
    pick_model(page, WORKING)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(page.locator("#model-label")).to_contain_text(WORKING)
    page.keyboard.press("Escape")  # closes the settings panel
    expect(page.locator("#settings-panel")).not_to_have_attribute("open", "")

    retry.click()

    # A new version in the failed reply's place, not another card under the question.
    new_reply = last_reply(page)
    expect(new_reply.locator("div.md[id$='-text']")).to_contain_text(
        END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(page.locator("article.message-assistant")).to_have_count(1)
    expect(new_reply).to_have_attribute("data-status", "complete")
    expect(new_reply.locator(".who")).to_have_text(WORKING)
    expect(new_reply.locator(".version-position")).to_have_text("2/2")
    # The failure stays on record as the earlier version.
    new_reply.get_by_role("button", name="Previous").click()
    expect(last_reply(page)).to_contain_text("your key has run out of quota")
    expect(last_reply(page).locator(".version-position")).to_have_text("1/2")


def test_the_conversation_waits_in_the_sidebar_exactly_as_it_was(page, live_app):
    sign_in(page, live_app)
    first_url = start_chat(page, live_app, WORKING, "Remember me tomorrow")
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    answer = _reply_text(page).inner_text()
    start_chat(page, live_app, WORKING, "A newer conversation")
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)

    page.goto(f"{live_app.url}/c/new/")
    items = page.locator("#conversation-list li a")
    expect(items.first).to_contain_text("A newer conversation")  # newest first
    page.locator("#conversation-list a", has_text="Remember me tomorrow").click()

    page.wait_for_url(first_url)
    current = page.locator('#conversation-list li[aria-current="page"]')
    expect(current).to_contain_text("Remember me tomorrow")
    expect(page.locator("article.message-user")).to_have_text(
        re.compile("Remember me tomorrow"))
    assert _reply_text(page).inner_text() == answer

    # Writing to it again moves it to the top of the sidebar.
    message_box(page).fill("Still there?")
    page.get_by_role("button", name="Send").click()
    expect(items.first).to_contain_text("Remember me tomorrow")
    expect(page.locator("article.message-assistant")).to_have_count(2)


def test_sign_out_and_another_user_cannot_open_the_conversation(page, live_app, browser):
    sign_in(page, live_app)
    url = start_chat(page, live_app, WORKING, "Alice's secret plans")
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)

    bob = browser.new_context().new_page()
    sign_in(bob, live_app, "bob")
    response = bob.goto(url)

    assert response is not None and response.status == 404
    assert "Alice's secret plans" not in bob.content()
    bob.goto(f"{live_app.url}/c/new/")
    expect(bob.locator("#conversation-list")).not_to_contain_text("Alice's secret plans")
    bob.context.close()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/login/"))
    page.goto(url)
    page.wait_for_url(re.compile(r".*/login/\?next="))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_the_chat_fits_a_phone_screen(page, live_app):
    page.set_viewport_size({"width": 390, "height": 800})
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Small screens too")
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)

    no_sideways_scroll = page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert no_sideways_scroll
    expect(page.locator("#conversation-list")).to_be_hidden()
    toggle = page.get_by_role("button", name="Chats")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#conversation-list")).to_contain_text("Small screens too")
    page.keyboard.press("Escape")
    expect(page.locator("#conversation-list")).to_be_hidden()

    page.locator("summary", has_text="Settings").click()
    box = page.locator("#settings-form").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


def test_reasoning_is_folded_until_opened_and_copy_gives_the_markdown(page, live_app):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url)
    sign_in(page, live_app)
    start_chat(page, live_app, "Thinking model (simulated)", "Think first")
    reply = last_reply(page)
    reasoning = reply.locator("details.reasoning")
    expect(reasoning.locator(".md-block").first).to_be_attached(timeout=REPLY_TIMEOUT)
    reasoning.locator("summary").click()  # unfolded while the answer is still coming
    expect(_reply_text(page)).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(reply).to_have_attribute("data-status", "complete")
    expect(reasoning).to_have_attribute("open", "")  # the final re-render keeps it open

    page.reload()

    reply = last_reply(page)
    reasoning = reply.locator("details.reasoning")
    expect(reasoning).to_be_visible()
    expect(reasoning).not_to_have_attribute("open", "")
    expect(reasoning.get_by_text("Let me think")).to_be_hidden()
    reasoning.locator("summary").click()
    expect(reasoning.get_by_text("Let me think")).to_be_visible()

    reply.get_by_role("button", name="Copy", exact=True).click()
    expect(reply.get_by_role("button", name="Copied")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "**Markdown** works" in copied  # the source, not the rendered text
    assert copied.rstrip().endswith(END_OF_ANSWER)


def test_keyboard_slash_focuses_the_box_and_escape_stops_the_reply(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, LONG, "Keyboard only")
    _wait_until_longer_than(page, _reply_text(page), 40)
    page.locator("#conversation-title").click()  # focus away from the box
    expect(message_box(page)).not_to_be_focused()

    page.keyboard.press("/")
    expect(message_box(page)).to_be_focused()
    expect(message_box(page)).to_have_value("")
    page.keyboard.press("Escape")

    expect(last_reply(page)).to_have_attribute("data-status", "cancelled", timeout=5_000)
    expect(message_box(page)).to_be_focused()
    expect(page.locator("#composer-hint")).to_contain_text("Shift")


def test_a_follow_up_reply_says_writing_while_it_streams(page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, SLOW, "First question")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    message_box(page).fill("And a follow-up")
    message_box(page).press("Enter")
    reply = last_reply(page)
    expect(reply.locator(".badge", has_text="writing…")).to_be_visible(timeout=10_000)
    expect(reply.locator(".badge", has_text="waiting for the relay")).to_have_count(0)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    expect(reply.locator(".badge", has_text="writing…")).to_have_count(0)


def test_a_finished_reply_is_not_put_back_in_flight_by_an_older_copy(page, live_app):
    """A fast failure's frame can reach the page before the post's own response,
    which still shows the reply waiting: the finished state stays."""
    sign_in(page, live_app)
    page.goto(f"{live_app.url}/c/new/")
    shown = page.evaluate("""() => {
      const list = document.createElement('section');
      list.id = 'test-list';
      document.querySelector('main').appendChild(list);
      const copy = status => '<div hx-swap-oob="beforeend:#test-list" data-upsert>' +
        `<article id="message-999999" data-status="${status}">${status}</article></div>`;
      htmx.swap(list, copy('failed'), {swapStyle: 'none'});
      htmx.swap(list, copy('pending'), {swapStyle: 'none'});
      return [...list.children].map(c => c.dataset.status).join(' ');
    }""")
    assert shown == "failed"


def test_a_message_typed_while_the_settings_save_is_on_its_way_is_sent(page, live_app):
    """The save's answer lands while the person is already in the message box: the
    keyboard stays there, so their Enter sends the message. (It used to move to the
    new Save button, and Enter sent the settings form without script, as a GET that
    left the page and took the message with it.)"""
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Name a colour, please")
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    held = []
    page.route(re.compile(r".*/settings/$"), lambda route: held.append(route))
    page.locator("summary", has_text="Settings").click()
    pick_model(page, OUT_OF_QUOTA)
    page.get_by_role("button", name="Save settings").click()
    deadline = time.monotonic() + 5
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the save never left the page"
    message_box(page).fill("Will this work?")
    held[0].continue_()  # the save's answer arrives now, with the person in the box
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(message_box(page)).to_be_focused()
    message_box(page).press("Enter")
    expect(page.locator("article.message-user").last).to_contain_text("Will this work?")
    expect(last_reply(page)).to_have_attribute("data-status", "failed", timeout=REPLY_TIMEOUT)
    expect(page).to_have_url(re.compile(r".*/c/\d+/$"))
    # A second Save at once finds the form still wired up (its inside was replaced).
    page.unroute(re.compile(r".*/settings/$"))
    save = page.get_by_role("button", name="Save settings")
    save.click()
    save.click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    expect(page).to_have_url(re.compile(r".*/c/\d+/$"))
