"""Markdown as models write it, in Chromium: math, footnotes, task lists, code to copy,
and the dark theme. The simulator answers "You said: <the message>", so a message
written in markdown comes back rendered as a model's reply would be."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, sign_in, start_chat

WORKING = "Gemini 2.5 Flash (simulated)"
END_OF_ANSWER = "That is the end of the simulated answer."
MARKDOWN = (
    "Math $x^2$ and a footnote[^1].\n\n"
    "$$\\int_0^1 x\\,dx$$\n\n"
    "- [x] written\n- [ ] tested\n\n"
    "```python\nprint('copied from the page')\n```\n\n"
    "[^1]: The footnote's own text."
)

# The contrast of an element's text with the first opaque background behind it.
CONTRAST = """el => {
  const rgb = c => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let node = el, bg = null;
  while (node && node.nodeType === 1) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] > 0.9) { bg = c; break; }
    node = node.parentElement;
  }
  bg = bg || [255, 255, 255];
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def _reply_with_markdown(page: Page, live_app):
    sign_in(page, live_app)
    start_chat(page, live_app, WORKING, MARKDOWN)
    reply = last_reply(page)
    expect(reply).to_contain_text(END_OF_ANSWER, timeout=REPLY_TIMEOUT)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    return reply


def test_a_reply_shows_math_footnotes_task_lists_and_code_to_copy(page: Page, live_app):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url)
    reply = _reply_with_markdown(page, live_app)
    text = reply.locator("div.md[id$='-text']")

    math = text.locator("math")
    expect(math).to_have_count(2)
    expect(math.first).to_be_visible()
    box = math.nth(1).bounding_box()
    assert box is not None and box["height"] > 20  # the integral is typeset, not raw TeX
    expect(text).not_to_contain_text("$$")
    expect(math.nth(1).locator("annotation")).to_have_text("\\int_0^1 x\\,dx")

    footnote = text.locator(".footnote")
    expect(footnote).to_be_visible()
    expect(footnote).to_contain_text("The footnote's own text.")
    expect(text).not_to_contain_text("[^1]")
    text.locator("a[data-footnote-ref='1']").click()
    expect(footnote).to_be_focused()

    boxes = text.get_by_role("checkbox")
    expect(boxes).to_have_count(2)
    expect(boxes.first).to_be_disabled()
    expect(boxes.first).to_be_checked()
    expect(boxes.nth(1)).not_to_be_checked()
    boxes.nth(1).click(force=True)
    expect(boxes.nth(1)).not_to_be_checked()  # a model's task list is not a form

    code_block = text.locator(".code-block").first
    copy = code_block.locator("button.code-copy")
    expect(code_block.get_by_role("button", name="Copy code")).to_have_text("Copy")
    copy.click()
    expect(code_block.get_by_role("button", name="Copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "print('copied from the page')\n"
    expect(copy).to_have_text("Copy", timeout=4_000)  # after 2 s


def test_a_dark_screen_gets_the_dark_theme_with_readable_text(page: Page, live_app):
    page.emulate_media(color_scheme="dark")
    reply = _reply_with_markdown(page, live_app)

    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[background.index("(") + 1:-1].split(",")[:3])
    assert max(red, green, blue) < 40, background
    # form controls follow the theme too
    assert page.evaluate("getComputedStyle(document.documentElement).colorScheme") == "dark"

    for element in [
        reply.locator(".md p").first,  # the reply's text
        reply.locator(".message-head").first,  # muted
        reply.locator(".footnote").first,  # muted, smaller
        reply.locator(".md a").first,  # a link
        reply.locator("pre.highlight .k, pre.highlight .nb").first,  # highlighted code
        reply.locator(".code-copy").first,
        page.locator("#id_text"),  # a form control
    ]:
        ratio = element.evaluate(CONTRAST)
        assert ratio >= 4.5, (element, ratio)
    code_bg = reply.locator("pre.highlight").first.evaluate(
        "el => getComputedStyle(el).backgroundColor")
    assert code_bg == "rgb(13, 17, 23)"
