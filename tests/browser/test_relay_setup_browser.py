"""Setting up a relay as staff do: add it, import its models, probe it, read the
report, apply its proposal; then a user's audio is counted.

The relay is the built-in simulator playing a new-api relay (base URL ending
/newapi) set to the `media-url-parts` dialect, like seed 000's mixrouter: it
drops `audio_url` parts without a word.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    PASSWORD,
    REPLY_TIMEOUT,
    last_reply,
    message_box,
    pick_model,
    sign_in,
)
from tests.fixtures import media

RELAY = "Mixrouter (simulated new-api)"


def _flash(page: Page):
    return page.locator("ul.messagelist")


def test_staff_set_up_a_relay_that_drops_audio_and_a_user_then_sends_audio_that_is_counted(
    page: Page, live_app, tmp_path
):
    sign_in(page, live_app, "alice")
    page.goto(f"{live_app.url}/admin/conversations/relay/add/")
    page.get_by_label("Name").fill(RELAY)
    page.get_by_label("Base url").fill(f"{live_app.url}/simulator/newapi")
    page.get_by_label("Api key").fill("sk-staff-typed-key")
    # The simulator answers only the app itself: a relay on it is marked simulated.
    page.get_by_label("Is simulated").check()
    page.get_by_label("Dialect").select_option("media-url-parts")
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator("#relay-import")).to_be_visible()

    page.locator("#relay-import").click()
    expect(_flash(page)).to_contain_text("models listed")
    # Staff probe the one model they mean to use.
    live_app.shell(
        "from conversations.models import ChatModel\n"
        f"ChatModel.objects.filter(relay__name='{RELAY}').exclude("
        "model_id='gemini-2.5-flash-lite').update(is_active=False)\n")

    page.locator("#relay-probe").click()
    expect(_flash(page)).to_contain_text("probe started")
    deadline = time.monotonic() + 90
    report = page.locator("pre.probe-report")
    while report.count() == 0 and time.monotonic() < deadline:
        time.sleep(1)
        page.reload()
    expect(report).to_contain_text("audio media-url-parts   dropped")
    expect(report).to_contain_text("audio image_url-for-all counted")
    expect(report).to_contain_text("Proposed dialect: image_url-for-all")
    expect(report).to_contain_text("at list price")

    page.locator("#relay-apply").click()
    expect(_flash(page)).to_contain_text("dialect media-url-parts → image_url-for-all")
    expect(page.get_by_label("Dialect")).to_have_value("image_url-for-all")

    # A user of their own (other tests spend bob's budget) now sends audio
    # through that relay: it arrives and is counted.
    live_app.shell(
        "from django.contrib.auth.models import User\n"
        "u = User.objects.get_or_create(username='carol')[0]\n"
        f"u.set_password('{PASSWORD}'); u.save()\n")
    page.context.clear_cookies()
    sign_in(page, live_app, "carol")
    page.goto(f"{live_app.url}/c/new/")
    pick_model(page, "gemini-2.5-flash-lite")
    memo = tmp_path / "memo.wav"
    memo.write_bytes(media.wav(1.0))
    page.set_input_files("#id_files", [str(memo)])
    message_box(page).fill("What do you hear?")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r".*/c/\d+/$"))
    reply = last_reply(page)
    expect(reply.locator("div.md[id$='-text']")).to_contain_text("WAV 1.0 s",
                                                                  timeout=REPLY_TIMEOUT)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT)
    expect(reply.locator(".message-warning")).to_have_count(0)
