"""The chat header's searchable model picker (static/js/model_picker.js), on a
desktop and on a phone: opened from the keyboard, filtered by name and by what a
model takes, picked with Enter in one step (the server's chat follows), Escape
back to the button, nothing found said so, and working again after each switch
replaced the header. Also in Chinese, filtered by the Chinese capability words."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    PASSWORD,
    REPLY_TIMEOUT,
    last_reply,
    message_box,
    sign_in,
    start_chat,
)

SCREENS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
WORKING = "Gemini 2.5 Flash (simulated)"
IMAGES_ONLY = "GPT-4o mini (simulated)"
MAKES_PICTURES = "Gemini 2.5 Flash Image (simulated)"
LABEL = "Model for the next replies"


@pytest.fixture(params=list(SCREENS))
def screen(request) -> str:
    return request.param


@pytest.fixture
def page(browser, screen):
    context = browser.new_context(viewport=SCREENS[screen])
    page = context.new_page()
    yield page
    context.close()


def _button(page: Page):
    return page.get_by_role("button", name=re.compile(rf"^{LABEL}: "))


def _search(page: Page):
    return page.get_by_role("combobox", name="Find a model")


def _options(page: Page):
    return page.locator("#model-label [role=option]:visible")


def _finished(page: Page) -> None:
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)


def _chat_model(live_app, url: str) -> str:
    pk = re.search(r"/c/(\d+)/", url)[1]
    return live_app.shell(
        "from conversations.models import Conversation\n"
        f"print(Conversation.objects.get(pk={pk}).model)\n").strip().splitlines()[-1]


def _only_matches(page: Page, pattern: str | None, name: str) -> None:
    """Every option left shows `pattern`, the one named `name` among them; then the
    arrows make it the active one (other tests may add models on other relays)."""
    expect(_options(page).filter(has_text=re.compile(rf"^{re.escape(name)}"))).to_have_count(1)
    if pattern:
        expect(_options(page).filter(has_not_text=re.compile(pattern, re.I))).to_have_count(0)
    wanted = _options(page).filter(has_text=re.compile(rf"^{re.escape(name)}")).get_attribute("id")
    for _ in range(30):
        if _search(page).get_attribute("aria-activedescendant") == wanted:
            return
        page.keyboard.press("ArrowDown")
    raise AssertionError(f"{name} never became the active option")


def _open_with_keyboard(page: Page) -> None:
    _button(page).focus()
    page.keyboard.press("Enter")
    expect(_search(page)).to_be_focused()
    expect(_button(page)).to_have_attribute("aria-expanded", "true")
    expect(_search(page)).to_have_attribute("aria-expanded", "true")


def test_search_and_pick_with_the_keyboard_switches_the_chats_model(page: Page, live_app,
                                                                    screen):
    sign_in(page, live_app)
    url = start_chat(page, live_app, WORKING, "First with Flash")
    _finished(page)
    expect(_button(page)).to_contain_text(WORKING)
    # The select stays the form's field, out of sight.
    expect(page.locator("#header-model")).to_have_attribute("aria-hidden", "true")

    _open_with_keyboard(page)
    expect(_options(page).first).to_be_visible()
    # The chosen model is marked, the active option is the one the chat has.
    chosen = page.locator("#model-label [role=option][aria-selected=true]")
    expect(chosen).to_have_count(1)
    expect(chosen).to_contain_text(WORKING)
    expect(_search(page)).to_have_attribute("aria-activedescendant", chosen.get_attribute("id"))
    # Relays are groups, named.
    group = page.locator("#model-label [role=group]").first
    labelled_by = group.get_attribute("aria-labelledby")
    expect(page.locator(f"[id='{labelled_by}']")).to_have_text("Relay simulator (simulated)")

    page.keyboard.type("4O MINI")  # case does not matter
    _only_matches(page, "4o.mini", IMAGES_ONLY)
    expect(_options(page).filter(has_text=IMAGES_ONLY)).to_contain_text("pictures")
    with page.expect_response(re.compile(r"/model/")) as posted:
        page.keyboard.press("Enter")
    assert posted.value.ok
    expect(_button(page)).to_contain_text(IMAGES_ONLY)
    expect(_button(page)).to_be_focused()  # the new header's button, after the swap
    expect(page.locator(".model-picker-popup:visible")).to_have_count(0)
    assert _chat_model(live_app, url) == IMAGES_ONLY

    # The next reply comes from the new model.
    message_box(page).fill("Now with the other one")
    message_box(page).press("Enter")
    expect(page.locator("article.message-assistant")).to_have_count(2, timeout=REPLY_TIMEOUT)
    _finished(page)
    expect(last_reply(page).locator(".who")).to_have_text(IMAGES_ONLY)

    # Again, after the swap replaced the header: by a capability word, with the shortcut.
    message_box(page).focus()
    page.keyboard.press("Control+Shift+M")
    expect(_search(page)).to_be_focused()
    page.keyboard.type("makes pictures")
    _only_matches(page, "makes pictures", MAKES_PICTURES)
    page.keyboard.press("Enter")
    expect(_button(page)).to_contain_text(MAKES_PICTURES)
    page.wait_for_function(
        "() => document.querySelector('#header-model option[selected]')"
        f".textContent.startsWith({MAKES_PICTURES!r})")
    assert _chat_model(live_app, url) == MAKES_PICTURES
    # attachments.js reads the picked option: the picture model refuses audio at once.
    refusals = page.evaluate(
        "() => { const s = document.getElementById('header-model');"
        " return JSON.parse(s.options[s.selectedIndex].dataset.refusals); }")
    assert "audio" in refusals

    # And back, a third time: still attached.
    _open_with_keyboard(page)
    page.keyboard.type("flash")  # in names and in model ids (the thinking model's)
    _only_matches(page, None, WORKING)
    page.keyboard.press("Enter")
    expect(_button(page)).to_contain_text(WORKING)
    page.wait_for_function(
        "() => document.querySelector('#header-model option[selected]')"
        f".textContent.startsWith({WORKING!r})")
    assert _chat_model(live_app, url) == WORKING


def test_escape_arrows_no_match_and_clicks_outside(page: Page, live_app, screen):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Hello")
    _finished(page)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if "/model/" in r.url else None)

    _open_with_keyboard(page)
    search = _search(page)
    first = _options(page).first
    last = _options(page).last
    page.keyboard.press("Home")
    expect(search).to_have_attribute("aria-activedescendant", first.get_attribute("id"))
    page.keyboard.press("End")
    expect(search).to_have_attribute("aria-activedescendant", last.get_attribute("id"))
    page.keyboard.press("ArrowUp")
    expect(search).not_to_have_attribute("aria-activedescendant", last.get_attribute("id"))
    page.keyboard.press("ArrowDown")
    expect(search).to_have_attribute("aria-activedescendant", last.get_attribute("id"))

    # Nothing found: said, in words; Enter picks nothing.
    page.keyboard.type("no such model at all")
    expect(page.locator("#model-label [role=status]")).to_have_text("No model matches")
    expect(_options(page)).to_have_count(0)
    expect(search).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("Enter")
    expect(search).to_be_focused()

    # Escape closes and gives the keyboard back to the button; nothing was posted.
    page.keyboard.press("Escape")
    expect(_button(page)).to_be_focused()
    expect(_button(page)).to_have_attribute("aria-expanded", "false")
    expect(search).to_be_hidden()
    assert posts == []

    # Alt+ArrowDown opens; Tab closes, also when the list scrolls (a scrolling
    # list is no stop of its own for Tab).
    page.keyboard.press("Alt+ArrowDown")
    expect(search).to_be_focused()
    expect(search).to_have_value("")  # a fresh search each time
    page.locator("#model-label [role=listbox]").evaluate("el => { el.style.maxHeight = '60px'; }")
    page.keyboard.press("Tab")
    expect(search).to_be_hidden()

    # A click opens, a click outside closes.
    _button(page).click()
    expect(search).to_be_visible()
    box = page.locator(".model-picker-popup").bounding_box()
    page.mouse.click(box["x"] - 4, box["y"] + box["height"] / 2)  # just left of it
    expect(search).to_be_hidden()

    # Space opens too, and a click on an option picks it.
    _button(page).focus()
    page.keyboard.press("Space")
    expect(search).to_be_focused()
    _options(page).filter(has_text=IMAGES_ONLY).click()
    expect(_button(page)).to_contain_text(IMAGES_ONLY)
    expect(_button(page)).to_be_focused()
    assert len(posts) == 1


def test_the_popup_fits_the_screen(page: Page, live_app, screen):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Hello")
    _finished(page)
    _button(page).click()
    popup = page.locator(".model-picker-popup")
    expect(popup).to_be_visible()
    box = popup.bounding_box()
    width, height = SCREENS[screen]["width"], SCREENS[screen]["height"]
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert box["y"] + box["height"] <= height  # the list scrolls inside the screen
    for option in _options(page).all():
        assert option.bounding_box()["height"] >= 44
    listbox = page.locator("#model-label [role=listbox]")
    assert listbox.evaluate("el => getComputedStyle(el).overflowY") == "auto"
    # Each option says what its model takes, in words (its icons are decoration).
    gemini = _options(page).filter(has_text=WORKING)
    for word in ("pictures", "audio", "video", "PDF"):
        expect(gemini.locator(".model-picker-mark", has_text=word)).to_have_count(1)
    assert gemini.locator("svg[aria-hidden=true]").count() >= 4


def test_in_chinese_the_search_takes_chinese_words(browser, live_app):
    live_app.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.filter(username='wen').exists() or User.objects.create_user("
        f"'wen', '', '{PASSWORD}')\n")
    context = browser.new_context(locale="zh-CN", viewport=SCREENS["phone"])
    page = context.new_page()
    page.goto(f"{live_app.url}/login/")
    page.get_by_label("用户名").fill("wen")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{live_app.url}/c/**")
    page.goto(f"{live_app.url}/c/new/")
    model = page.get_by_label("模型", exact=True)
    option = model.locator("option").filter(has_text=re.compile(rf"^{re.escape(WORKING)}"))
    model.select_option(option.first.get_attribute("value"))
    page.get_by_label("消息", exact=True).fill("你好")
    page.get_by_label("消息", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    _finished(page)

    page.keyboard.press("Control+Shift+M")
    search = page.get_by_role("combobox", name="查找模型")
    expect(search).to_be_focused()
    expect(search).to_have_attribute("placeholder", "名称、中转站或支持的内容…")
    page.keyboard.type("生成图片")  # part of "可生成图片", makes pictures
    expect(_options(page).filter(has_text=MAKES_PICTURES)).to_have_count(1)
    expect(_options(page).filter(has_not_text="可生成图片")).to_have_count(0)
    page.keyboard.press("Control+A")
    page.keyboard.type("没有这个")
    expect(page.locator("#model-label [role=status]")).to_have_text("没有匹配的模型")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name=re.compile(r"^接下来回复所用的模型"))).to_be_focused()
    context.close()


def test_while_a_reply_is_written_the_picker_stays_open_and_escape_stops_nothing(
        page: Page, live_app, screen):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, "Hello")
    _finished(page)
    with page.expect_response(re.compile(r"/messages/$")):
        message_box(page).fill("Tell me more")
        message_box(page).press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", re.compile("pending|streaming"))
    page.keyboard.press("Control+Shift+M")
    expect(_search(page)).to_be_focused()
    # Escape closes the popup only: the reply goes on.
    page.keyboard.press("Escape")
    expect(_button(page)).to_be_focused()
    page.keyboard.press("Enter")
    expect(_search(page)).to_be_focused()
    page.keyboard.type("flash")
    _finished(page)  # complete, not stopped
    # The page's refreshes after the reply (cost, context meter) leave it open and focused.
    page.wait_for_timeout(1500)
    expect(_search(page)).to_be_focused()
    expect(_search(page)).to_have_value("flash")
    expect(last_reply(page).locator(".md")).to_contain_text("end of the simulated answer")
    page.keyboard.press("Escape")

    # A draft in the message box survives those refreshes too.
    message_box(page).fill("Next question")
    message_box(page).press("Enter")
    expect(page.locator("article.message-assistant")).to_have_count(3, timeout=REPLY_TIMEOUT)
    message_box(page).fill("A draft, not sent")
    _finished(page)
    page.wait_for_timeout(1500)
    expect(message_box(page)).to_have_value("A draft, not sent")
