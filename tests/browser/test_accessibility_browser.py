"""axe-core (Deque's accessibility engine, bundled by axe-playwright-python) on
every page a person uses, on a desktop and on a phone: no violation at all."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import REPLY_TIMEOUT, last_reply, sign_in, start_chat

SCREENS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
PAGES = ["/c/new/", "CHAT", "/costs/", "/search/?q=colour", "/pictures/", "/export/",
         "/account/password/", "/people/", "/relays/"]
AXE = Axe()


def _violations(page: Page) -> list[str]:
    results = AXE.run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(node["target"][0] for node in v["nodes"][:3])
        for v in results.response["violations"]
    ]


@pytest.fixture(scope="module")
def chat_url(browser, live_app) -> str:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, live_app)
    url = start_chat(page, live_app, "Gemini 2.5 Flash (simulated)", "Name a colour, please")
    expect(last_reply(page)).to_have_attribute("data-status", "complete",
                                               timeout=REPLY_TIMEOUT)
    context.close()
    return url


@pytest.mark.parametrize("screen", SCREENS)
def test_no_page_has_an_accessibility_violation(browser, live_app, chat_url, screen):
    context = browser.new_context(viewport=SCREENS[screen])
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
    assert not {path: v for path, v in found.items() if v}
