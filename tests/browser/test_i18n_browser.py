"""A browser set to Chinese (Accept-Language: zh-CN) uses every page in
Simplified Chinese: sign-in, a chat with an attachment, a relay's error, the
costs page; then the person switches to English from the menu, and back.

What may stay in Latin letters: what people and models wrote (messages,
replies, file names, model and relay names, usernames), and a short list of
names that are the same in Chinese interfaces (PDF, token, Ctrl…).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, REPLY_TIMEOUT, last_reply, pick_model
from tests.fixtures import media

WORKING = "Gemini 2.5 Flash (simulated)"
OUT_OF_QUOTA = "Out-of-quota key (simulated failure)"

# Written the same way in Chinese interfaces (Cherry Studio, LobeChat, ChatGPT's).
SAME_IN_CHINESE = {
    "pdf", "png", "jpeg", "jpg", "gif", "webp", "mp3", "mp4", "wav", "mov", "webm", "csv",
    "json", "zip", "markdown", "token", "tokens", "usd", "cny", "kb", "mb", "gb", "ctrl",
    "shift", "enter", "esc", "alt", "tab", "api", "url", "http", "https", "id", "ai", "utc",
    "html", "sse", "relay", "workbench", "openai", "gemini", "new-api", "one-api", "k",
    "top", "p",  # the "Top P" parameter, so named in Chinese interfaces too
}

# Subtrees that hold what people and models wrote, not the interface's words.
CONTENT = ", ".join([
    ".md", ".user-text", "template", "script", "style", "noscript", "code", "pre", ".who",
    "kbd",  # key names: Ctrl+Shift+O
    "#model-label", ".attachment-name", ".file-name", ".conversation-item .title",
    ".title-text", "#conversation-title", ".sidebar-foot .muted", ".relay-message",
    "textarea", "option", ".picture-prompt", "[data-content]",
])

LEFTOVERS_JS = """([content, names]) => {
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll(content).forEach(el => el.remove());
  const texts = [clone.textContent];
  clone.querySelectorAll('[title], [placeholder], [aria-label], [alt]').forEach(el => {
    for (const a of ['title', 'placeholder', 'aria-label', 'alt']) {
      const v = el.getAttribute(a); if (v) texts.push(v);
    }
  });
  let all = texts.join(' \\n ');
  for (const name of names) all = all.split(name).join(' ');
  return all;
}"""


def english_left(page: Page, names: list[str]) -> list[str]:
    text = page.evaluate(LEFTOVERS_JS, [CONTENT, names])
    text = re.sub(r"https?://\S+|[\w.+-]+@[\w.-]+|\b[\w-]+\.(?:png|pdf|mp4|wav)\b"
                  r"|\b(?:Ctrl|Shift|Alt)\+[\w+]+|\b(?:image|audio|video|application)/[\w.+-]+",
                  " ", text)  # addresses, file names, key combos, file types
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]", text)
    return sorted({w for w in words if w.lower() not in SAME_IN_CHINESE})


@pytest.fixture(scope="module")
def names(live_app) -> list[str]:
    """Names people gave things (models, relays, users): data, not interface."""
    live_app.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.get_or_create(username='lin', defaults={{'password': ''}})\n"
        # Staff: the simulator's failing model (the relay error below) is theirs to try.
        f"u = User.objects.get(username='lin'); u.set_password('{PASSWORD}'); u.is_staff = True\n"
        "u.save()\n"
    )
    out = live_app.shell(
        "from conversations.models import ChatModel, Relay\n"
        "print('\\n'.join(list(ChatModel.objects.values_list('display_name', flat=True))"
        " + list(ChatModel.objects.values_list('model_id', flat=True))"
        " + list(Relay.objects.values_list('name', flat=True)) + ['lin']))\n"
    )
    found = [line for line in out.splitlines() if line.strip()]
    return sorted(set(found), key=len, reverse=True)  # longest first: no half-names left


@pytest.fixture
def chinese(browser):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 860})
    page = context.new_page()
    yield page
    context.close()


def _no_english(page: Page, names: list[str], where: str) -> None:
    left = english_left(page, names)
    assert not left, f"English left on {where}: {left}"


def test_every_page_in_chinese_then_english_from_the_menu_and_back(chinese: Page, live_app,
                                                                   names, tmp_path):
    page = chinese
    page.goto(f"{live_app.url}/login/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    _no_english(page, names, "the sign-in page")
    page.get_by_label("用户名").fill("lin")
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(f"{live_app.url}/c/**")

    # A chat with an attachment.
    page.goto(f"{live_app.url}/c/new/")
    _no_english(page, names, "the new-chat page")
    pick_model(page, WORKING, "模型")
    picture = tmp_path / "照片.png"
    picture.write_bytes(media.png(64, 48))
    page.locator("input[type=file]").set_input_files(str(picture))
    page.get_by_label("消息", exact=True).fill("请描述这张图片")
    page.get_by_label("消息", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    expect(last_reply(page)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    _no_english(page, names, "a conversation with an attachment")

    # A relay's error, explained in Chinese around the relay's own words.
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, OUT_OF_QUOTA, "模型")
    page.get_by_label("消息", exact=True).fill("这次能成功吗？")
    page.get_by_label("消息", exact=True).press("Enter")
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    error = last_reply(page).locator(".message-error")
    expect(error).to_contain_text("中转站", timeout=REPLY_TIMEOUT)
    expect(error).to_contain_text("该令牌额度已用尽")
    _no_english(page, [*names, "该令牌额度已用尽"], "a reply the relay refused")

    page.goto(f"{live_app.url}/costs/")
    _no_english(page, names, "the costs page")

    # English from the menu, remembered; then Chinese again.
    page.get_by_label("语言").select_option("en")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.goto(f"{live_app.url}/c/new/")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    page.get_by_label("Language").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_role("button", name="发送")).to_be_visible()
