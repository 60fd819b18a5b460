"""axe-core (Deque's accessibility engine, bundled by axe-playwright-python) on
every page a person uses, on a desktop and on a phone, in the light and the
dark theme: no serious or critical violation (the issue's bar); lesser ones are
printed. The chat header's model picker is checked open too (its list, a
filtered list, and nothing found)."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    REPLY_TIMEOUT,
    last_reply,
    message_box,
    pick_model,
    sign_in,
    start_chat,
)
from tests.fixtures import media

SCREENS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
PAGES = ["/c/new/", "CHAT", "/costs/", "/search/?q=colour", "/pictures/", "/export/",
         "/account/password/", "/people/", "/relays/"]
BLOCKING = {"serious", "critical"}
AXE = Axe()


def _violations(page: Page) -> list[dict]:
    return AXE.run(page).response["violations"]


def _describe(violations: list[dict]) -> list[str]:
    return [f"{v['id']} ({v['impact']}): {v['help']} — "
            + "; ".join(str(node["target"][0]) for node in v["nodes"][:4])
            for v in violations]


def _blocking(found: dict[str, list[dict]]) -> dict[str, list[str]]:
    lesser = {p: _describe([v for v in vs if v["impact"] not in BLOCKING])
              for p, vs in found.items()}
    print({p: v for p, v in lesser.items() if v})
    blocking = {p: _describe([v for v in vs if v["impact"] in BLOCKING])
                for p, vs in found.items()}
    return {p: v for p, v in blocking.items() if v}


@pytest.fixture(scope="module")
def chat_url(browser, live_app, tmp_path_factory) -> str:
    """A chat with a streamed reply, an attachment, a failure and usage shown."""
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, live_app)
    url = start_chat(page, live_app, "Gemini 2.5 Flash (simulated)", "Name a colour, please")
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                               timeout=REPLY_TIMEOUT)
    picture = tmp_path_factory.mktemp("axe") / "colour.png"
    picture.write_bytes(media.png(64, 48))
    page.locator("input[type=file]").set_input_files(str(picture))
    message_box(page).fill("And this one?")
    message_box(page).press("Enter")
    expect(page.locator("article.message-assistant")).to_have_count(2, timeout=REPLY_TIMEOUT)
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                               timeout=REPLY_TIMEOUT)
    page.locator("summary", has_text="Settings").click()
    pick_model(page, "Out-of-quota key (simulated failure)")
    page.get_by_role("button", name="Save").click()
    message_box(page).fill("Will this work?")
    message_box(page).press("Enter")
    expect(last_reply(page)).to_have_attribute("data-status", "failed", timeout=REPLY_TIMEOUT)
    context.close()
    return url


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", SCREENS)
def test_no_page_has_a_serious_accessibility_violation(browser, live_app, chat_url, screen,
                                                        scheme):
    context = browser.new_context(viewport=SCREENS[screen], color_scheme=scheme)
    page = context.new_page()
    found = {}
    page.goto(f"{live_app.url}/login/")
    found["/login/"] = _violations(page)
    sign_in(page, live_app)
    for path in PAGES:
        page.goto(chat_url if path == "CHAT" else f"{live_app.url}{path}")
        page.wait_for_load_state("networkidle")
        found[path] = _violations(page)
    context.close()
    assert not _blocking(found)


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("screen", SCREENS)
def test_the_model_picker_open_has_no_serious_accessibility_violation(
        browser, live_app, chat_url, screen, scheme):
    context = browser.new_context(viewport=SCREENS[screen], color_scheme=scheme)
    page = context.new_page()
    sign_in(page, live_app)
    page.goto(chat_url)
    page.wait_for_load_state("networkidle")
    page.get_by_role("button", name=re.compile(r"^Model for the next replies: ")).click()
    search = page.get_by_role("combobox", name="Find a model")
    expect(search).to_be_focused()
    page.keyboard.press("ArrowDown")  # an active option, highlighted
    found = {"open": _violations(page)}
    page.keyboard.type("flash")
    expect(page.locator("#model-label [role=option]:visible").first).to_be_visible()
    found["filtered"] = _violations(page)
    page.keyboard.type(" nothing like this")
    expect(page.locator("#model-label [role=status]")).to_have_text("No model matches")
    found["nothing found"] = _violations(page)
    context.close()
    assert not _blocking(found)
